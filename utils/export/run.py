"""``export.py``: write a checkpoint as TorchScript and/or ONNX, then check each file against PyTorch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils.cli import check_flags, flag
from utils.export.check import DEFAULT_TOLERANCE, ParityResult, check_parity
from utils.export.formats import FORMATS, MAX_OPSET, MIN_OPSET, ExportMetadata, export_onnx, export_torchscript
from utils.export.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_CALIB_IMAGES,
    DEFAULT_METHOD,
    Agreement,
    QuantizeSettings,
    detection_agreement,
    int8_path,
    quantize_onnx,
)
from utils.torch_utils import select_device

LOGGER = logging.getLogger(__name__)
WEAK_AGREEMENT = 0.9  # below this share of matched detections the INT8 file is flagged


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
    opset: int = flag(MIN_OPSET, low=MIN_OPSET, high=MAX_OPSET, help=f"ONNX opset version ({MIN_OPSET} or later)")
    tolerance: float = flag(DEFAULT_TOLERANCE, low=0, help="largest allowed output difference")
    check: bool = flag(True, help="skip the comparison with PyTorch")
    out_dir: str = flag("", help="folder for the exported files (default: beside the weights)")
    int8: bool = flag(False, help="also write <name>-int8.onnx, statically quantized for the CPU (needs --data)")
    data: str = flag("", help="data yaml: --int8 calibrates on its train split and checks on its val split")
    calib_images: int = flag(DEFAULT_CALIB_IMAGES, low=1, help="--int8: training images to calibrate on")
    calib_method: str = flag(DEFAULT_METHOD, choices=CALIBRATION_METHODS, help="--int8: activation range estimator")
    per_channel: bool = flag(True, help="--int8: one weight scale per tensor instead of per output channel")
    reduce_range: bool = flag(False, help="--int8: 7-bit weights, for CPUs without VNNI (avoids U8S8 saturation)")
    check_images: int = flag(50, low=0, help="--int8: validation images to compare INT8 and float detections on")

    def __post_init__(self) -> None:
        check_flags(self)
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to export")
        if not self.include:
            raise ValueError(f"--include: give at least one of {', '.join(FORMATS)}")
        if self.int8:
            if not self.data:
                raise ValueError("--int8 needs --data: a data yaml whose train split calibrates the quantization")
            if "onnx" not in self.include:
                raise ValueError("--int8 quantizes the ONNX file: add onnx to --include")
            if self.half:
                raise ValueError("--int8 quantizes a float32 export: drop --half")


@dataclass
class ExportResult:
    files: dict[str, Path] = field(default_factory=dict)  # format ('onnx', 'torchscript', 'int8') -> path written
    checks: dict[str, ParityResult] = field(default_factory=dict)  # format -> parity and latency
    agreement: Agreement | None = None  # INT8 vs float detections on held-out images (--int8)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export ``cfg.weights`` next to itself (``best.pt`` -> ``best.onnx``, ``best.torchscript``) or into
    ``cfg.out_dir``; with ``cfg.int8`` also ``best-int8.onnx``, quantized after the float ONNX is written and checked.
    A float ``.onnx`` written by export.py as ``cfg.weights`` is only quantized (``cfg.int8`` required).

    The model is loaded, fused and (with ``--half``) cast to fp16; ``--half`` needs a CUDA ``--device`` because
    fp16 convolutions are not supported on the CPU. Each file is then loaded back and compared with PyTorch.
    """
    from models import load_model

    device = select_device(cfg.device)
    if cfg.half and device.type != "cuda":
        raise ValueError(f"--half needs a CUDA --device (fp16 inference is not supported on {device.type})")
    weights = Path(cfg.weights)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else weights.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir} is a file, not a folder")
    if weights.suffix == ".onnx":
        return _quantize_existing(cfg, weights, out_dir)
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
        path = out_dir / weights.with_suffix(suffix).name
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
    if cfg.int8:
        _export_int8(cfg, result, out_dir)
    return result


def _quantize_existing(cfg: ExportConfig, weights: Path, out_dir: Path) -> ExportResult:
    """``--weights`` is a float ONNX file written by export.py: there is nothing to export, only ``--int8`` to do
    (the INT8 file goes beside it, or into ``--out-dir``)."""
    if not cfg.int8:
        raise ValueError(f"--weights {weights} is already ONNX: add --int8 --data <yaml> to quantize it, or give "
                         "the .pt checkpoint to export")  # fmt: skip
    if not weights.is_file():
        raise FileNotFoundError(f"--weights {weights} does not exist")
    result = ExportResult(files={"onnx": weights})
    _export_int8(cfg, result, out_dir)
    return result


def split_images(data: str | Path, split: str, limit: int | None = None) -> list[str]:
    """Up to ``limit`` images of the ``split`` of the data yaml ``data``, spread evenly over the sorted list.
    Raises ValueError naming the yaml and the split when it lists no image or cannot be read."""
    from utils.data.config import load_data_config
    from utils.data.images import list_images

    cfg = load_data_config(data)
    try:
        images = list_images([str(s) for s in cfg.split(split)])
    except (FileNotFoundError, OSError) as e:
        raise ValueError(f"--data {data}: no image in its {split} split ({e})") from e
    if not images:
        raise ValueError(f"--data {data}: its {split} split has no image")
    if limit is not None and len(images) > limit:
        step = len(images) / limit
        images = [images[int(i * step)] for i in range(limit)]
    return images


def _export_int8(cfg: ExportConfig, result: ExportResult, out_dir: Path) -> None:
    """Quantize the float ONNX in ``result`` into ``out_dir``, print both sizes and compare their detections on
    the val split."""
    float_path = result.files["onnx"]
    calib = split_images(cfg.data, "train", cfg.calib_images)
    settings = QuantizeSettings(method=cfg.calib_method, per_channel=cfg.per_channel, reduce_range=cfg.reduce_range)
    path = quantize_onnx(float_path, calib, int8_path(out_dir / float_path.name), settings)
    result.files["int8"] = path
    f_mb, q_mb = float_path.stat().st_size / 1e6, path.stat().st_size / 1e6
    LOGGER.info("Saved %s (%.1f MB; float %s %.1f MB, %.1fx smaller)", path, q_mb, float_path.name, f_mb, f_mb / q_mb)
    if cfg.check_images:
        try:
            held_out = split_images(cfg.data, "val", cfg.check_images)
        except ValueError as e:
            LOGGER.warning("INT8 detections not compared with float: %s", e)
            return
        result.agreement = a = detection_agreement(float_path, path, held_out)
        if min(a.float_matched, a.int8_matched) < WEAK_AGREEMENT:
            LOGGER.warning("%s: INT8 changes the detections; check its mAP with val.py, or try more --calib-images "
                           "or another --calib-method", a.summary())  # fmt: skip
        else:
            LOGGER.info("%s", a.summary())
