"""After an export: do the exported file's outputs match PyTorch's, and how fast is each?"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from utils.export.backend import load_backend

DEFAULT_TOLERANCE = 1e-3


@dataclass
class ParityResult:
    """Comparison of an exported file with the PyTorch model on one input.

    ``max_abs`` is the largest absolute difference of the decoded outputs (pixels for boxes, 0..1 for scores);
    ``max_rel`` the largest difference relative to ``max(1, |reference|)``, which is what ``ok`` tests against
    ``tolerance``. Latencies are the median over ``runs`` calls, in milliseconds.
    """

    path: Path
    max_abs: float
    max_rel: float
    tolerance: float
    torch_ms: float
    exported_ms: float

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance

    def summary(self) -> str:
        verdict = "match" if self.ok else "MISMATCH"
        return (
            f"{self.path.name}: outputs {verdict} PyTorch (max abs diff {self.max_abs:.2e}, relative "
            f"{self.max_rel:.2e}, tolerance {self.tolerance:g}); latency PyTorch {self.torch_ms:.1f} ms, "
            f"exported {self.exported_ms:.1f} ms per call"
        )


def _median_ms(fn, x: torch.Tensor, runs: int) -> tuple[torch.Tensor, float]:
    out = fn(x)  # warm-up (graph optimisation, allocations)
    times = []
    for _ in range(runs):
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        out = fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - t0)
    return out, sorted(times)[len(times) // 2] * 1e3


@torch.no_grad()
def check_parity(
    model: nn.Module, path: str | Path, x: torch.Tensor, tolerance: float = DEFAULT_TOLERANCE, runs: int = 5
) -> ParityResult:
    """Run ``model`` (eval mode) and the exported ``path`` on ``x`` ``[B, 3, H, W]``; compare and time both."""
    model.eval()
    exported = load_backend(path, device=x.device)
    ref, torch_ms = _median_ms(lambda t: model(t)[0], x, runs)
    out, exported_ms = _median_ms(lambda t: exported(t)[0], x, runs)
    ref, out = ref.float(), out.float()
    if ref.shape != out.shape:
        raise ValueError(f"{path}: output shape {tuple(out.shape)} differs from PyTorch's {tuple(ref.shape)}")
    diff = (out - ref).abs()
    rel = diff / ref.abs().clamp(min=1.0)
    return ParityResult(Path(path), float(diff.max()), float(rel.max()), tolerance, torch_ms, exported_ms)
