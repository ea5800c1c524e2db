"""``export.py``: write a checkpoint as TorchScript and/or ONNX, then check each file against PyTorch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils.cli import check_flags, flag
from utils.export.check import DEFAULT_TOLERANCE, ParityResult, check_parity
from utils.export.formats import FORMATS, MIN_OPSET, ExportMetadata, export_onnx, export_torchscript
from utils.torch_utils import select_device

LOGGER = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    """Which checkpoint ``export.py`` writes, to which formats and how, and how the files are checked."""

    weights: str = flag("", required=True, help="checkpoint to export: ours, upstream YOLOv5's, or pruned")
    include: list[str] = flag(factory=lambda: ["torchscript", "onnx"], choices=tuple(FORMATS),
                              help=f"formats: {' '.join(FORMATS)}")  # fmt: skip
    imgsz: int = flag(640, low=1, aliases=("--img", "--img-size"), help="example input size, px")
    batch_size: int = flag(1, low=1, help="example batch size")
    device: str = flag("cpu", help="cpu, or a cuda device such as 0")
    half: bool = flag(False, help="fp16 weights and inputs (needs a CUDA --device)")
    dynamic: bool = flag(False, help="free batch size (height and width are always free)")
    simplify: bool = flag(False, help="simplify the ONNX graph (needs onnx-simplifier)")
    opset: int = flag(MIN_OPSET, low=MIN_OPSET, help=f"ONNX opset version ({MIN_OPSET} or later)")
    tolerance: float = flag(DEFAULT_TOLERANCE, low=0, help="largest allowed output difference")
    check: bool = flag(True, help="skip the comparison with PyTorch")

    def __post_init__(self) -> None:
        check_flags(self)
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to export")
        if not self.include:
            raise ValueError(f"--include: give at least one of {', '.join(FORMATS)}")


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
