"""``val.py``: evaluate a checkpoint on a dataset split and write the metrics to ``metrics.json``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.data import create_dataloader, load_data_config
from utils.evaluation import EvalConfig, EvalResult, evaluate, write_metrics_json
from utils.export.backend import load_backend
from utils.files import increment_path
from utils.torch_utils import select_device

LOGGER = logging.getLogger(__name__)
TASKS = ("train", "val", "test", "speed")


@dataclass
class ValConfig:
    data: str = "data/bccd_sample.yaml"
    weights: str = ""
    batch_size: int = 32
    imgsz: int = 640
    conf_thres: float = 0.001
    iou_thres: float = 0.6
    max_det: int = 300
    task: str = "val"
    device: str = ""
    workers: int = 8
    single_cls: bool = False
    verbose: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_json: bool = False
    project: str = "runs/val"
    name: str = "exp"
    exist_ok: bool = False
    half: bool = False
    noplots: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"--task {self.task!r} is not one of {TASKS}")
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to evaluate")
        if self.imgsz < 1:
            raise ValueError(f"--imgsz must be a positive number of pixels, got {self.imgsz}")
        for name in ("conf_thres", "iou_thres"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be within [0, 1], got {getattr(self, name)}")


def run_val(cfg: ValConfig) -> tuple[EvalResult, Path]:
    """Evaluate ``cfg.weights`` on the ``val`` (or ``test``) split; returns the result and the run directory.

    ``task='speed'`` measures time per image at the thresholds used for deployment (conf 0.25, IoU 0.45),
    without plots or files.
    """
    device = select_device(cfg.device)
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
    result = evaluate(model, loader, data.names, eval_cfg, save_dir=save_dir, desc=split)
    t = result.speed_ms
    LOGGER.info(
        "Speed: %.1f ms pre-process, %.1f ms inference, %.1f ms NMS per image at shape (%d, 3, %d, %d)",
        t["preprocess"], t["inference"], t["nms"], cfg.batch_size, cfg.imgsz, cfg.imgsz,
    )  # fmt: skip
    write_metrics_json(result, save_dir / "metrics.json", data.names, cfg.single_cls, weights=cfg.weights,
                       data=cfg.data, task=cfg.task, settings=asdict(cfg))  # fmt: skip
    LOGGER.info("Results saved to %s", save_dir)
    return result, save_dir
