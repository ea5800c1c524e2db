"""``export.py``: write a checkpoint as TorchScript and/or ONNX, then check each file against PyTorch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils.export.check import DEFAULT_TOLERANCE, ParityResult, check_parity
from utils.export.formats import FORMATS, MIN_OPSET, ExportMetadata, export_onnx, export_torchscript
from utils.torch_utils import select_device

LOGGER = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    weights: str = ""
    include: list[str] = field(default_factory=lambda: ["torchscript", "onnx"])
    imgsz: int = 640
    batch_size: int = 1
    device: str = "cpu"
    half: bool = False
    dynamic: bool = False
    simplify: bool = False
    opset: int = MIN_OPSET
    tolerance: float = DEFAULT_TOLERANCE
    check: bool = True

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to export")
        bad = [f for f in self.include if f not in FORMATS]
        if bad or not self.include:
            raise ValueError(f"--include {' '.join(bad) or '(nothing)'}: choose from {', '.join(FORMATS)}")
        if self.opset < MIN_OPSET:
            raise ValueError(f"--opset {self.opset} is too old: at least {MIN_OPSET} is required")
        if self.imgsz <= 0 or self.batch_size <= 0:
            raise ValueError(f"--imgsz ({self.imgsz}) and --batch-size ({self.batch_size}) must be positive")


@dataclass
class ExportResult:
    files: dict[str, Path] = field(default_factory=dict)  # format -> path written
    checks: dict[str, ParityResult] = field(default_factory=dict)  # format -> parity and latency

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export ``cfg.weights`` next to itself (``best.pt`` -> ``best.onnx``, ``best.torchscript``).

    The model is loaded, fused and (with ``--half``) cast to fp16; ``--half`` needs a CUDA ``--device`` because
    fp16 convolutions are not supported on the CPU. Each file is then loaded back and compared with PyTorch.
    """
    from models import load_model

    device = select_device(cfg.device)
    if cfg.half and device.type != "cuda":
        raise ValueError(f"--half needs a CUDA --device (fp16 inference is not supported on {device.type})")
    weights = Path(cfg.weights)
    model = load_model(weights, device=device, fuse=True)
    stride = int(max(model.stride.max(), 32))
    if cfg.imgsz % stride:
        raise ValueError(f"--imgsz {cfg.imgsz} is not a multiple of the model's largest stride {stride}")
    if cfg.half:
        model.half()
    meta = ExportMetadata(
        names=list(model.names),
        stride=model.stride.tolist(),
        imgsz=cfg.imgsz,
        dynamic=cfg.dynamic,
        half=cfg.half,
        batch=cfg.batch_size,
    )
    x = torch.zeros(cfg.batch_size, 3, cfg.imgsz, cfg.imgsz, device=device, dtype=torch.half if cfg.half else None)
    result = ExportResult()
    for fmt in cfg.include:
        suffix, _ = FORMATS[fmt]
        path = weights.with_suffix(suffix)
        LOGGER.info("Exporting %s to %s (%s) ...", weights, path, fmt)
        if fmt == "onnx":
            export_onnx(model, x, path, meta, opset=cfg.opset, simplify=cfg.simplify)
        else:
            export_torchscript(model, x, path, meta)
        result.files[fmt] = path
        LOGGER.info("Saved %s (%.1f MB)", path, path.stat().st_size / 1e6)
        if cfg.check:
            probe = torch.rand_like(x)
            check = check_parity(model, path, probe, tolerance=cfg.tolerance)
            result.checks[fmt] = check
            (LOGGER.info if check.ok else LOGGER.error)("%s", check.summary())
    return result
