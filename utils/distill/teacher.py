"""The frozen teacher: loading, freezing, and checking that it fits the student."""

from __future__ import annotations

import logging

import torch

from models import load_model
from models.yolo import Model

LOGGER = logging.getLogger(__name__)


def load_teacher(path: str, device: torch.device) -> Model:
    """Load a teacher for distillation: eval mode, BN folded into the convolutions, no gradients, fp16 on CUDA.

    A fused model has no BatchNorm left, so no running statistics can drift; eval mode keeps it that way.
    """
    teacher = load_model(path, device=device, fuse=True)
    teacher.eval().requires_grad_(False)
    if device.type == "cuda":
        teacher.half()
    return teacher


def check_compatible(student: Model, teacher: Model, teacher_path: str) -> None:
    """Raise ValueError naming both values when teacher and student outputs cannot be compared."""
    s, t = student.detect, teacher.detect
    checks = [
        ("class count", s.nc, t.nc),
        ("detection levels", s.nl, t.nl),
        ("anchors per level", s.na, t.na),
        ("strides", s.stride.tolist(), t.stride.tolist()),
    ]
    for what, sv, tv in checks:
        if sv != tv:
            raise ValueError(f"teacher {teacher_path} and student differ in {what}: teacher {tv}, student {sv}")
    named = has_class_names(teacher.names) and has_class_names(student.names)
    if named and list(teacher.names) != list(student.names):
        raise ValueError(
            f"teacher {teacher_path} was trained on other classes than the data: teacher {list(teacher.names)}, "
            f"data {list(student.names)}; its outputs would teach the wrong class for each index"
        )


def has_class_names(names) -> bool:
    """False for the placeholder names '0', '1', ... of a checkpoint that stored none."""
    return list(names) != [str(i) for i in range(len(names))]


def adopt_teacher_anchors(student: Model, teacher: Model) -> None:
    """Give the student the teacher's anchors, so that their raw outputs describe the same boxes."""
    with torch.no_grad():
        student.detect.anchors.copy_(teacher.detect.anchors.to(student.detect.anchors))
    px = (teacher.detect.anchors * teacher.detect.stride.view(-1, 1, 1)).view(-1, 2).round().int().tolist()
    LOGGER.info("Distillation: the student uses the teacher's anchors %s (autoanchor is off)", px)


def teacher_warning(path: str, teacher_map: float, student_map: float, floor: float) -> str:
    """The warning for a weak teacher, or ``''`` for a usable one. Maps are mAP50-95 on the validation split.

    Rule: a teacher is weak when its mAP50-95 is below ``floor`` (``--min-teacher-map``, 0.05 by default: it learnt
    next to nothing), or below the student's own before training (a student started from trained or pruned weights
    that is already better). How far a student trained alone would get is not known before training; these are
    the cases known up front.
    """
    if teacher_map < floor:
        why = f"below --min-teacher-map {floor:g} (it has learnt next to nothing)"
    elif teacher_map < student_map:
        why = f"below the student's own {student_map:.3f} before training"
    else:
        return ""
    return (
        f"weak teacher: {path} scores mAP50-95 {teacher_map:.3f} on the validation split, {why}; "
        "distilling from it can make the student worse than training it alone"
    )
