"""Typed configuration of a training run and its command-line flags (upstream YOLOv5's names and defaults)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from utils.cli import PlainConfig, add_flags, check_flags, config_from_namespace, flag

OPTIMIZERS = ("SGD", "Adam", "AdamW")


@dataclass
class TrainConfig(PlainConfig):
    """Everything a training run needs; ``train.py`` fills it from its flags. Paths are as given by the user."""

    weights: str = flag("", help="initial weights: ours, upstream's, a pruned model, or '' to train from scratch")
    cfg: str = flag("", help="model yaml, e.g. models/yolov5s.yaml ('' = the architecture stored in --weights)")
    data: str = flag("data/bccd_sample.yaml", help="dataset yaml")
    hyp: str = flag("data/hyps/hyp.scratch-low.yaml", help="hyperparameter yaml")
    epochs: int = flag(100, low=1, help="training epochs")
    batch_size: int = flag(16, low=1, help="images per batch (the total over all processes of a DDP run)")
    imgsz: int = flag(640, low=1, aliases=("--img", "--img-size"), help="train/val image size, px")
    rect: bool = flag(False, help="rectangular training batches (no mosaic)")
    resume: str | bool = flag(False, nargs="?", const=True, help="resume the most recent run, or the given last.pt")
    nosave: bool = flag(False, help="only save the final checkpoint")
    noval: bool = flag(False, help="only validate after the final epoch")
    noautoanchor: bool = flag(False, help="keep the model's anchors")
    noplots: bool = flag(False, help="write no plots")
    cache: str | None = flag(None, choices=("ram",), nargs="?", const="ram", help="cache decoded images in RAM")
    device: str = flag("", help="cuda device, e.g. 0 or 0,1, or cpu ('' = GPU 0 if there is one)")
    multi_scale: bool = flag(False, help="vary the image size +/- 50%% per batch")
    single_cls: bool = flag(False, help="train all classes as one")
    optimizer: str = flag("SGD", choices=OPTIMIZERS, help="optimizer")
    workers: int = flag(8, low=0, help="data loader processes")
    project: str = flag("runs/train", help="save to project/name")
    name: str = flag("exp", help="save to project/name")
    exist_ok: bool = flag(False, help="reuse an existing project/name")
    cos_lr: bool = flag(False, help="cosine learning-rate schedule")
    label_smoothing: float = flag(0.0, low=0, high=1, high_open=True, help="class label smoothing epsilon")
    patience: int = flag(100, low=0, help="epochs without fitness improvement before stopping early; 0 = never")
    freeze: list[int] = flag(factory=lambda: [0], low=0, help="freeze the first N layers, or layers i j k")
    save_period: int = flag(-1, low=-1, help="also save epoch{N}.pt every this many epochs; -1 = off")
    seed: int = flag(0, help="global training seed")
    deterministic: bool = flag(False, help="ask torch for deterministic algorithms")
    amp: bool = flag(False, help="mixed precision on the CPU too: bfloat16 autocast where the CPU has it (CUDA "
                     "always trains in float16 mixed precision)")  # fmt: skip
    compile: bool = flag(False, help="compile the model with torch.compile: minutes of compiling first, faster "
                         "steps after (see docs/benchmarks.md)")  # fmt: skip
    sync_bn: bool = flag(False, help="BatchNorm statistics over all processes of a torchrun (DDP) run; CUDA only")

    def __post_init__(self) -> None:
        check_flags(self)
        if not self.weights and not self.cfg and not self.resume:
            raise ValueError("give --cfg (a model yaml) to train from scratch, or --weights to start from a checkpoint")


def add_train_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``train.py`` (``train_kd.py`` adds its own on top)."""
    add_flags(p, TrainConfig)
    return p


def train_config_from_args(ns: argparse.Namespace) -> TrainConfig:
    return config_from_namespace(TrainConfig, ns)
