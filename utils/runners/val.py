"""``val.py``: evaluate a checkpoint on a dataset split and write the metrics to ``metrics.json``.

Importing this module does not import torch: :func:`run_val` starts its drawing processes first, so that they
load Matplotlib while this process loads torch (see :mod:`utils.plots.pool`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from utils.cli import check_flags, flag
from utils.plots.pool import start_plotter

if TYPE_CHECKING:
    from utils.evaluation import EvalResult

LOGGER = logging.getLogger(__name__)
TASKS = ("train", "val", "test", "speed")


@dataclass
class ValConfig:
    """What ``val.py`` evaluates, on which split, and what it writes."""

    data: str = flag("data/bccd_sample.yaml", help="dataset yaml")
    weights: str = flag(
        "", required=True, help="checkpoint (ours or upstream YOLOv5's), or an exported .onnx / .torchscript"
    )
    batch_size: int = flag(32, low=1, help="images per batch")
    imgsz: int = flag(640, low=1, aliases=("--img", "--img-size"), help="inference size, px")
    conf_thres: float = flag(0.001, low=0, high=1, help="confidence threshold")
    iou_thres: float = flag(0.6, low=0, high=1, help="NMS IoU threshold")
    max_det: int = flag(300, low=1, help="maximum detections per image")
    task: str = flag("val", choices=TASKS, help="split to evaluate (train, val, test), or 'speed'")
    device: str = flag("", help="cuda device, e.g. 0, or cpu")
    workers: int = flag(8, low=0, help="data loader processes")
    single_cls: bool = flag(False, help="treat as a single-class dataset")
    verbose: bool = flag(False, help="report mAP per class")
    save_txt: bool = flag(False, help="save detections as YOLO txt labels")
    save_conf: bool = flag(False, help="add confidences to --save-txt labels")
    save_json: bool = flag(False, help="save a COCO-style predictions.json")
    project: str = flag("runs/val", help="save to project/name")
    name: str = flag("exp", help="save to project/name")
    exist_ok: bool = flag(False, help="reuse an existing project/name")
    half: bool = flag(False, help="FP16 inference (CUDA only)")
    noplots: bool = flag(False, help="write no plots")

    def __post_init__(self) -> None:
        check_flags(self)
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to evaluate")


def run_val(cfg: ValConfig) -> tuple[EvalResult, Path]:
    """Evaluate ``cfg.weights`` on the ``val`` (or ``test``) split; returns the result and the run directory.

    ``task='speed'`` measures time per image at the thresholds used for deployment (conf 0.25, IoU 0.45),
    without plots or files.
    """
    plots = not (cfg.task == "speed" or cfg.noplots)
    plotter = start_plotter(processes=True) if plots else None
    try:
        return _run_val(cfg, plotter)
    finally:
        if plotter is not None:
            plotter.close()  # after an error too: the drawing processes end with the program's run


def _run_val(cfg: ValConfig, plotter) -> tuple[EvalResult, Path]:
    from utils.data import create_dataloader, load_data_config
    from utils.evaluation import EvalConfig, evaluate, write_metrics_json
    from utils.export.backend import load_backend
    from utils.files import increment_path
    from utils.torch_utils import keep_freed_memory, select_device

    device = select_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    model = load_backend(cfg.weights, device=device, fuse=True)
    data = load_data_config(cfg.data, single_cls=cfg.single_cls)
    if not cfg.single_cls and model.nc != data.nc:
        raise ValueError(f"{cfg.weights} predicts {model.nc} classes but {cfg.data} has {data.nc}")
    split = "val" if cfg.task == "speed" else cfg.task
    images = data.split(split)
    if not images:
        raise ValueError(f"{cfg.data} has no '{split}' split")
    stride = max(int(model.stride.max()), 32)
    loader, _ = create_dataloader(
        images, cfg.imgsz, cfg.batch_size, stride, rect=True, workers=cfg.workers, prefix=f"{split}: ",
        single_cls=cfg.single_cls, nc=data.nc,
    )  # fmt: skip
    save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    speed = cfg.task == "speed"
    eval_cfg = EvalConfig(
        conf_thres=0.25 if speed else cfg.conf_thres,
        iou_thres=0.45 if speed else cfg.iou_thres,
        max_det=cfg.max_det,
        single_cls=cfg.single_cls,
        half=cfg.half,
        plots=not (speed or cfg.noplots),
        save_txt=cfg.save_txt and not speed,
        save_conf=cfg.save_conf,
        save_json=cfg.save_json and not speed,
        verbose=cfg.verbose,
    )
    result = evaluate(model, loader, data.names, eval_cfg, save_dir=save_dir, desc=split, plotter=plotter)
    t = result.speed_ms
    LOGGER.info(
        "Speed: %.1f ms pre-process, %.1f ms inference, %.1f ms NMS per image at shape (%d, 3, %d, %d)",
        t["preprocess"], t["inference"], t["nms"], cfg.batch_size, cfg.imgsz, cfg.imgsz,
    )  # fmt: skip
    write_metrics_json(result, save_dir / "metrics.json", data.names, cfg.single_cls, weights=cfg.weights,
                       data=cfg.data, task=cfg.task, settings=asdict(cfg))  # fmt: skip
    LOGGER.info("Results saved to %s", save_dir)
    return result, save_dir
