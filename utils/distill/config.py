"""Typed configuration of distillation and its command-line flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from utils.cli import PlainConfig, add_flags, check_flags, flag

OUTPUT_KINDS = ("l2", "kl", "bce", "pseudo", "none")
FEATURE_KINDS = ("fitnet", "at", "cwd", "none")
# The teacher's detections as labels: the one output loss that beat training alone at convergence on every seed
# (BCCD, yolov5n from scratch, 100 epochs: docs/benchmarks.md, "Distillation at convergence on BCCD").
DEFAULT_OUTPUT = ("pseudo",)
# Recovering a pruned model from the unpruned one, a teacher the student can match: soft scores, not its detections
# as truth (BCCD, 50 epochs, 3 seeds: docs/benchmarks.md, "Pruning and recovery on BCCD").
RECOVER_OUTPUT = ("bce",)


def output_kinds(value: str | list[str] | tuple[str, ...], where: str = "--kd-output") -> list[str]:
    """The output losses named by ``value`` (one name, or several that combine), checked; ``["none"]`` for none.

    Raises ValueError naming ``where`` and the bad value: an unknown name, a repeated one, or ``none`` with others.
    """
    kinds = [value] if isinstance(value, str) else list(value)
    if not kinds:
        raise ValueError(f"{where}: give at least one of {OUTPUT_KINDS}")
    for k in kinds:
        if k not in OUTPUT_KINDS:
            raise ValueError(f"{where} {k!r} is not one of {OUTPUT_KINDS}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"{where} {' '.join(kinds)}: each loss may be named once")
    if "none" in kinds and len(kinds) > 1:
        raise ValueError(f"{where} {' '.join(kinds)}: 'none' cannot be combined with other losses")
    return kinds


@dataclass
class KDConfig(PlainConfig):
    """How to distil: which teacher, which output and feature losses, their weights, and label-free options."""

    teacher: str = flag("", help="teacher checkpoint (ours, upstream, pruned, any size)")
    kd_output: list[str] = flag(
        factory=lambda: list(DEFAULT_OUTPUT),
        choices=OUTPUT_KINDS,
        metavar="LOSS",
        help=f"output distillation loss(es) {OUTPUT_KINDS}; several combine, e.g. bce pseudo "
        f"(default: {' '.join(DEFAULT_OUTPUT)})",
    )
    kd_feature: str = flag("none", choices=FEATURE_KINDS, help="feature distillation loss")
    kd_layers: list[int] | None = flag(None, low=0, help="layers for feature KD (default: the layers feeding Detect)")
    kd_weight: float = flag(1.0, low=0, help="multiplies every distillation term")
    temperature: float = flag(1.0, low=0, low_open=True, help="temperature of --kd-output kl / bce")
    kd_obj_thres: float | None = flag(
        None,
        low=0,
        high=1,
        high_open=True,
        help="box/class output terms only where the teacher's objectness is above it",
    )
    pseudo_conf: float = flag(
        0.5,
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        help="--kd-output pseudo: minimum teacher confidence of a pseudo label",
    )
    min_teacher_map: float = flag(0.05, low=0, high=1,
                                  help="teacher mAP50-95 on the val split below which it is weak (warning, no pseudo "
                                  "labels)")  # fmt: skip
    unlabeled: str | None = flag(None, help="images without labels (a folder, list or glob; label-free distillation)")
    unlabeled_ratio: float = flag(0.5, low=0, low_open=True, help="unlabelled images per labelled image in each step")
    no_gt: bool = flag(False, help="train on distillation terms alone")

    def __post_init__(self) -> None:
        if not self.teacher:
            raise ValueError("--teacher is required: the checkpoint of the trained teacher")
        if not Path(self.teacher).is_file():
            raise FileNotFoundError(f"--teacher {self.teacher}: file not found")
        self.kd_output = output_kinds(self.kd_output)  # a single name (older checkpoints) becomes a list
        check_flags(self)
        if self.kd_output == ["none"] and self.kd_feature == "none":
            raise ValueError("--kd-output none and --kd-feature none: nothing to distil")

    @property
    def outputs(self) -> list[str]:
        """The output losses in use (``[]`` for ``--kd-output none``)."""
        return [k for k in self.kd_output if k != "none"]


def add_kd_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_flags(p.add_argument_group("distillation"), KDConfig)
    return p
