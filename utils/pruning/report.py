"""What pruning changed: per-layer output channels, parameters, GFLOPs (thop) and latency."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from models.probe import probe_outputs
from utils.torch_utils import count_parameters, forward_ms, model_flops


@dataclass
class ModelCost:
    """Size and speed of a model at one image size; ``*_ms`` are medians of single-image forward passes."""

    parameters: int
    gflops: float | None
    imgsz: int
    cpu_ms: float | None = None
    gpu_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _channels(y) -> int | None:
    """Channels of a ``[B, C, H, W]`` output; None for Detect's (decoded, raw) pair."""
    return int(y.shape[1]) if isinstance(y, torch.Tensor) else None


def layer_channels(model: nn.Module) -> list[tuple[int, str, int | None]]:
    """``(index, module type, output channels)`` of every top-level layer (None for the multi-output Detect)."""
    x = torch.zeros(1, model.yaml.get("ch", 3), 64, 64)
    out = probe_outputs(model, x, range(len(model.model)), _channels)
    return [(i, type(layer).__name__, out.get(i)) for i, layer in enumerate(model.model)]


def latency_ms(model: nn.Module, imgsz: int, device: torch.device | str = "cpu", runs: int = 10, warmup: int = 2):
    """Median milliseconds of one ``[1, 3, imgsz, imgsz]`` fp32 forward pass of the fused model in eval mode."""
    device = torch.device(device)
    m = copy.deepcopy(model).to(device).eval().fuse()
    return forward_ms(m, torch.zeros(1, model.yaml.get("ch", 3), imgsz, imgsz, device=device), runs, warmup)


def model_cost(model: nn.Module, imgsz: int, timing: bool = True, runs: int = 10) -> ModelCost:
    """Parameters and GFLOPs at ``imgsz``; with ``timing`` also CPU latency and, where CUDA exists, GPU latency."""
    cost = ModelCost(parameters=count_parameters(model), gflops=model_flops(model, imgsz), imgsz=imgsz)
    if timing:
        cost.cpu_ms = latency_ms(model, imgsz, "cpu", runs=runs)
        if torch.cuda.is_available():
            cost.gpu_ms = latency_ms(model, imgsz, "cuda", runs=runs * 5)
    return cost


def format_report(before_layers, after_layers, before: ModelCost, after: ModelCost) -> str:
    """Plain-text table of per-layer channels before/after and the totals with their ratios."""
    lines = [f"{'layer':>5}  {'module':<10} {'channels before':>15} {'after':>7} {'kept':>6}"]
    for (i, kind, c0), (_, _, c1) in zip(before_layers, after_layers, strict=True):
        if c0 is None:
            lines.append(f"{i:>5}  {kind:<10} {'(outputs keep na*(5+nc))':>30}")
            continue
        lines.append(f"{i:>5}  {kind:<10} {c0:>15} {c1:>7} {c1 / c0:>6.0%}")

    def row(name: str, a, b, fmt: str) -> str:
        if a is None or b is None:
            return f"{name:<16} {'n/a':>14}"
        return f"{name:<16} {format(a, fmt):>14} -> {format(b, fmt):>14}  ({b / a:.1%})"

    lines += [
        "",
        row("parameters", before.parameters, after.parameters, ",d"),
        row(f"GFLOPs @{after.imgsz}", before.gflops, after.gflops, ".2f"),
        row(f"CPU ms @{after.imgsz}", before.cpu_ms, after.cpu_ms, ".1f"),
    ]
    if before.gpu_ms is not None:
        lines.append(row(f"GPU ms @{after.imgsz}", before.gpu_ms, after.gpu_ms, ".2f"))
    return "\n".join(lines)
