"""Typed configuration of a training run and its command-line flags (upstream YOLOv5's names and defaults)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from utils.cli import PlainConfig, config_from_namespace, dataclass_defaults

OPTIMIZERS = ("SGD", "Adam", "AdamW")


@dataclass
class TrainConfig(PlainConfig):
    """Everything a training run needs; ``train.py`` fills it from its flags. Paths are as given by the user."""

    weights: str = ""  # initial weights: ours, upstream's, a pruned model, or '' to train from scratch
    cfg: str = ""  # model yaml; '' = the architecture stored in --weights
    data: str = "data/bccd_sample.yaml"
    hyp: str = "data/hyps/hyp.scratch-low.yaml"
    epochs: int = 100
    batch_size: int = 16
    imgsz: int = 640
    rect: bool = False
    resume: str | bool = False
    nosave: bool = False  # only save the final checkpoint
    noval: bool = False  # only validate after the final epoch
    noautoanchor: bool = False
    noplots: bool = False
    cache: str | None = None  # 'ram' keeps decoded images in memory
    device: str = ""
    multi_scale: bool = False  # vary the image size +/- 50% per batch
    single_cls: bool = False
    optimizer: str = "SGD"
    workers: int = 8
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    cos_lr: bool = False
    label_smoothing: float = 0.0
    patience: int = 100  # epochs without fitness improvement before stopping early; 0 = never
    freeze: list[int] = field(default_factory=lambda: [0])
    save_period: int = -1  # also save epoch{N}.pt every this many epochs; -1 = off
    seed: int = 0
    deterministic: bool = False
    sync_bn: bool = False  # SyncBatchNorm across the processes of a torchrun (DDP) run; CUDA only

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer {self.optimizer!r} is not one of {OPTIMIZERS}")
        for name in ("epochs", "batch_size", "imgsz"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.cache not in (None, "ram"):
            raise ValueError(f"--cache {self.cache!r}: only 'ram' is supported")
        if self.label_smoothing < 0 or self.label_smoothing >= 1:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.weights and not self.cfg and not self.resume:
            raise ValueError("give --cfg (a model yaml) to train from scratch, or --weights to start from a checkpoint")


def add_train_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``train.py`` (``train_kd.py`` adds its own on top)."""
    d = vars(dataclass_defaults(TrainConfig))

    def default(name):
        return d[name]

    p.add_argument("--weights", type=str, default=default("weights"), help="initial weights path ('' = scratch)")
    p.add_argument("--cfg", type=str, default=default("cfg"), help="model yaml, e.g. models/yolov5s.yaml")
    p.add_argument("--data", type=str, default=default("data"), help="dataset yaml")
    p.add_argument("--hyp", type=str, default=default("hyp"), help="hyperparameter yaml")
    p.add_argument("--epochs", type=int, default=default("epochs"))
    p.add_argument("--batch-size", type=int, default=default("batch_size"), help="images per batch")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=default("imgsz"), help="train/val size, px")
    p.add_argument("--rect", action="store_true", help="rectangular training batches (no mosaic)")
    p.add_argument(
        "--resume", nargs="?", const=True, default=False, help="resume the most recent run, or the given last.pt"
    )
    p.add_argument("--nosave", action="store_true", help="only save the final checkpoint")
    p.add_argument("--noval", action="store_true", help="only validate after the final epoch")
    p.add_argument("--noautoanchor", action="store_true", help="keep the model's anchors")
    p.add_argument("--noplots", action="store_true", help="write no plots")
    p.add_argument("--cache", nargs="?", const="ram", default=None, choices=["ram"], help="cache images in RAM")
    p.add_argument("--device", default=default("device"), help="cuda device, e.g. 0 or 0,1, or cpu")
    p.add_argument("--multi-scale", action="store_true", help="vary the image size +/- 50%% per batch")
    p.add_argument("--single-cls", action="store_true", help="train all classes as one")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=default("optimizer"))
    p.add_argument("--workers", type=int, default=default("workers"), help="data loader processes")
    p.add_argument("--project", default=default("project"), help="save to project/name")
    p.add_argument("--name", default=default("name"), help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name")
    p.add_argument("--cos-lr", action="store_true", help="cosine learning-rate schedule")
    p.add_argument("--label-smoothing", type=float, default=default("label_smoothing"))
    p.add_argument("--patience", type=int, default=default("patience"), help="early-stopping patience (epochs)")
    p.add_argument(
        "--freeze", nargs="+", type=int, default=default("freeze"), help="freeze the first N layers, or layers i j k"
    )
    p.add_argument("--save-period", type=int, default=default("save_period"), help="save a checkpoint every N epochs")
    p.add_argument("--seed", type=int, default=default("seed"), help="global training seed")
    p.add_argument("--deterministic", action="store_true", help="ask torch for deterministic algorithms")
    p.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over all DDP processes (CUDA)")
    return p


def train_config_from_args(ns: argparse.Namespace) -> TrainConfig:
    return config_from_namespace(TrainConfig, ns)
