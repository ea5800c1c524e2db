"""Typed configuration of distillation and its command-line flags."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

from utils.cli import PlainConfig, dataclass_defaults

OUTPUT_KINDS = ("l2", "kl", "bce", "pseudo", "none")
FEATURE_KINDS = ("fitnet", "at", "cwd", "none")
DEFAULT_OUTPUT = ("l2",)


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

    teacher: str = ""
    kd_output: list[str] = field(default_factory=lambda: list(DEFAULT_OUTPUT))  # several combine, each with its gain
    kd_feature: str = "none"
    kd_layers: list[int] | None = None  # student/teacher layer indices; None = the layers that feed Detect
    kd_weight: float = 1.0  # multiplies every distillation term
    temperature: float = 1.0  # for --kd-output kl / bce
    kd_obj_thres: float | None = None  # box/class output terms only where the teacher's objectness is above it
    pseudo_conf: float = 0.5  # --kd-output pseudo: minimum teacher confidence of a pseudo label
    min_teacher_map: float = 0.05  # a teacher below this mAP50-95 on the val split is weak: warning, no pseudo labels
    unlabeled: str | None = None  # folder (or list/glob) of images without labels
    unlabeled_ratio: float = 0.5  # unlabelled images per labelled image in each step
    no_gt: bool = False  # train on distillation terms alone

    def __post_init__(self) -> None:
        if not self.teacher:
            raise ValueError("--teacher is required: the checkpoint of the trained teacher")
        if not Path(self.teacher).is_file():
            raise FileNotFoundError(f"--teacher {self.teacher}: file not found")
        self.kd_output = output_kinds(self.kd_output)  # a single name (older checkpoints) becomes a list
        if self.kd_feature not in FEATURE_KINDS:
            raise ValueError(f"--kd-feature {self.kd_feature!r} is not one of {FEATURE_KINDS}")
        if self.kd_output == ["none"] and self.kd_feature == "none":
            raise ValueError("--kd-output none and --kd-feature none: nothing to distil")
        for name in ("kd_weight", "temperature", "kd_obj_thres", "pseudo_conf", "unlabeled_ratio", "min_teacher_map"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.kd_weight < 0:
            raise ValueError(f"--kd-weight must be >= 0, got {self.kd_weight}")
        if self.temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {self.temperature}")
        if self.kd_obj_thres is not None and not 0 <= self.kd_obj_thres < 1:
            raise ValueError(f"--kd-obj-thres must be in [0, 1), got {self.kd_obj_thres}")
        if not 0 < self.pseudo_conf < 1:
            raise ValueError(f"--pseudo-conf must be in (0, 1), got {self.pseudo_conf}")
        if self.unlabeled_ratio <= 0:
            raise ValueError(f"--unlabeled-ratio must be positive, got {self.unlabeled_ratio}")
        if not 0 <= self.min_teacher_map <= 1:
            raise ValueError(f"--min-teacher-map must be in [0, 1], got {self.min_teacher_map}")

    @property
    def outputs(self) -> list[str]:
        """The output losses in use (``[]`` for ``--kd-output none``)."""
        return [k for k in self.kd_output if k != "none"]


def add_kd_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    d = dataclass_defaults(KDConfig)
    g = p.add_argument_group("distillation")
    g.add_argument("--teacher", default=d.teacher, help="teacher checkpoint (ours, upstream, pruned, any size)")
    g.add_argument(
        "--kd-output",
        nargs="+",
        choices=OUTPUT_KINDS,
        default=d.kd_output,
        metavar="LOSS",
        help=f"output distillation loss(es) {OUTPUT_KINDS}; several combine, e.g. bce pseudo",
    )
    g.add_argument("--kd-feature", choices=FEATURE_KINDS, default=d.kd_feature, help="feature distillation loss")
    g.add_argument("--kd-layers", nargs="+", type=int, default=d.kd_layers, help="layers for feature KD")
    g.add_argument("--kd-weight", type=float, default=d.kd_weight, help="weight of all distillation terms")
    g.add_argument("--temperature", type=float, default=d.temperature, help="temperature for kl / bce")
    g.add_argument("--kd-obj-thres", type=float, default=d.kd_obj_thres, help="teacher-objectness gate")
    g.add_argument("--pseudo-conf", type=float, default=d.pseudo_conf, help="min confidence of pseudo labels")
    g.add_argument(
        "--min-teacher-map",
        type=float,
        default=d.min_teacher_map,
        help="teacher mAP50-95 on the val split below which it is weak (warning, no pseudo labels)",
    )
    g.add_argument("--unlabeled", default=d.unlabeled, help="images without labels (label-free distillation)")
    g.add_argument("--unlabeled-ratio", type=float, default=d.unlabeled_ratio, help="unlabelled per labelled image")
    g.add_argument("--no-gt", action="store_true", help="train on distillation terms alone")
    return p
