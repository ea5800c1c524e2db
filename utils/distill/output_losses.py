"""Output (response) distillation between two YOLOv5 detection heads.

Every loss here takes the raw head outputs of a student and of a teacher, one tensor per detection level shaped
``[B, na, H_i, W_i, 5 + nc]`` holding the logits ``(tx, ty, tw, th, obj, cls...)`` (see :class:`models.head.Detect`),
and returns ``{"box": ..., "obj": ..., "cls": ...}``: three scalar tensors, each a sum over levels of a per-level
mean, so that the caller can weight the parts separately. Being means, the terms do not grow with the batch size;
the training engine scales them by the batch size exactly as it scales the ground-truth loss.

Conventions shared by all three losses:

- The teacher's outputs are detached and cast, like the student's, to float32 (float64 stays float64), so that an
  fp16 teacher or a student run under autocast is compared at full precision. Gradients reach only the student.
- ``w = sigmoid(t_obj)`` ``[B, na, H, W]`` is the teacher's objectness. The box and class terms are means over the
  cells the teacher believes in: ``sum(w * err) / sum(w)``. A plain mean over all cells would make them vanish
  next to the ground-truth loss (most cells are background) and shrink as the image, hence the grid, grows.
- ``obj_thres`` (``None`` or a float in ``[0, 1)``) gates the box and class terms further: a cell contributes
  only where ``w > obj_thres``. It and ``temperature > 0`` are checked once, with the other settings, by
  :class:`~utils.distill.config.KDConfig`, not on every step. The gate is a 0/1 mask multiplied into the weight;
  a weighted mean is bounded by the largest error, so a gate letting few cells through cannot blow the term up,
  and one letting none through gives 0.
- The objectness term is compared on **every** cell, unweighted and never gated, so that the student also learns
  where the teacher sees nothing.
- Box term (all losses): YOLOv5 decodes every box channel through a sigmoid
  (``xy = 2 * sigmoid(t_xy) - 0.5``, ``wh = (2 * sigmoid(t_wh))^2``), so boxes are compared as the sigmoids of the
  ``xywh`` logits, a bounded quantity in ``(0, 1)``:
  ``box = sum_i sum(w * mean_4((sigmoid(p_xywh) - sigmoid(t_xywh))^2)) / sum(w)``.
- Scale: each term has the form of the ground-truth part it mirrors (objectness a mean over every cell; box and
  class means over the cells with objects), so the caller scales them as the ground-truth gains are scaled
  (:func:`part_scales`), and their ratio to the ground-truth loss does not drift with image size or class count.

The losses:

- :func:`l2_output_loss` (after Mehta & Ozturk, "Object detection at 200 Frames Per Second", ECCV Workshops 2018):
  squared errors, all in sigmoid (decoded score) space.
- :func:`bce_output_loss`: binary cross-entropy against the teacher's sigmoid scores. YOLO classifies with
  independent sigmoids, so this is the principled choice for the class term.
- :func:`kl_output_loss` (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015): softmax
  Kullback-Leibler divergence over the class logits, kept for parity with earlier distillation projects.

``OUTPUT_LOSSES`` maps the names ``"l2"``, ``"bce"`` and ``"kl"`` to these functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["OUTPUT_LOSSES", "bce_output_loss", "kl_output_loss", "l2_output_loss", "part_scales"]

#: index of the objectness logit and of the first class logit in the last dimension of a raw head output
_OBJ, _CLS = 4, 5


def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _pairs(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """Check that the two heads agree level by level; return ``(p, t)`` pairs in a common float dtype.

    ``p`` keeps its graph; ``t`` is detached. Both are float32, or float64 when the student is float64.
    """
    if isinstance(student, torch.Tensor) or isinstance(teacher, torch.Tensor):
        raise TypeError("student and teacher must be lists of per-level tensors [B, na, H, W, 5 + nc], not a tensor")
    if len(student) != len(teacher):
        raise ValueError(f"student has {len(student)} detection levels but teacher has {len(teacher)}")
    if len(student) == 0:
        raise ValueError("student and teacher outputs are empty lists: need at least one detection level")
    pairs = []
    for i, (p, t) in enumerate(zip(student, teacher, strict=True)):
        if p.dim() != 5 or p.shape[-1] < _CLS + 1:
            raise ValueError(f"level {i}: student output shape {_shape(p)} is not [B, na, H, W, 5 + nc] with nc >= 1")
        if p.shape != t.shape:
            raise ValueError(
                f"level {i}: student output shape {_shape(p)} does not match teacher output shape {_shape(t)} "
                "(expected the same batch, anchors per level, grid size and 5 + nc)"
            )
        if not p.is_floating_point():
            raise ValueError(f"level {i}: student output dtype {p.dtype} is not a floating-point type")
        dtype = torch.promote_types(p.dtype, torch.float32)
        pairs.append((p.to(dtype), t.detach().to(device=p.device, dtype=dtype)))
    return pairs


def _cell_weight(t: torch.Tensor, obj_thres: float | None) -> torch.Tensor:
    """Teacher objectness ``sigmoid(t_obj)`` ``[B, na, H, W]``, zeroed where it is ``<= obj_thres``."""
    w = t[..., _OBJ].sigmoid()
    if obj_thres is not None:
        w = w * (w > obj_thres).to(w.dtype)
    return w


def _weighted_mean(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum(w * err) / sum(w)``: ``err`` and ``w`` ``[B, na, H, W]``; 0 where every weight is 0."""
    return (w * err).sum() / w.sum().clamp(min=torch.finfo(w.dtype).tiny)


def _box_term(p: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Squared error of the ``xywh`` sigmoids (mean of the 4), averaged over cells with weights ``w``."""
    return _weighted_mean((p[..., :4].sigmoid() - t[..., :4].sigmoid()).pow(2).mean(-1), w)


def _bce_obj_term(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``mean(BCE(p_obj, sigmoid(t_obj)))`` over ``[B, na, H, W]``, with logits, unweighted and ungated."""
    return F.binary_cross_entropy_with_logits(p[..., _OBJ], t[..., _OBJ].sigmoid())


def _sum_levels(terms: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack(v).sum() for k, v in terms.items()}


def part_scales(imgsz: int, nl: int, nc: int) -> dict[str, float]:
    """Factors of the ``box``, ``obj`` and ``cls`` terms: those of the ground-truth loss's gains (as YOLOv5 scales
    them), ``box: 3 / nl``, ``obj: (imgsz / 640)^2 * 3 / nl``, ``cls: nc / 80 * 3 / nl``.

    Each distillation part has the form of the ground-truth part it mirrors: objectness a mean over every cell (the
    grid grows with the image's area), box and class means over the cells with objects, class scores a mean over
    ``nc``. Scaled alike, their ratio to the ground-truth loss does not drift with the image size or class count.
    """
    return {"box": 3 / nl, "obj": (imgsz / 640) ** 2 * 3 / nl, "cls": nc / 80 * 3 / nl}


def l2_output_loss(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], obj_thres: float | None = None
) -> dict[str, torch.Tensor]:
    """Squared errors between student and teacher scores (Mehta & Ozturk 2018).

    Args:
        student: per level ``[B, na, H_i, W_i, 5 + nc]`` raw logits of the student (with gradients).
        teacher: the teacher's raw logits, same shapes; detached inside, any float dtype (fp16 is fine).
        obj_thres: ``None``, or a float in ``[0, 1)``: box and class terms only where ``sigmoid(t_obj) > obj_thres``.

    Every term compares **sigmoids** of the logits, i.e. the decoded box offsets and scores, which are bounded in
    ``(0, 1)``; squared errors of logits would be dominated by confidently-negative background cells whose logits
    differ by large but meaningless amounts. With ``w = sigmoid(t_obj)`` ``[B, na, H, W]``:

    - ``obj = sum_i mean((sigmoid(p_obj) - sigmoid(t_obj))^2)`` over every cell, unweighted and never gated: the
      student learns where the teacher sees an object and where it sees none
    - ``box = sum_i sum(w * mean_4((sigmoid(p_xywh) - sigmoid(t_xywh))^2)) / sum(w)``
    - ``cls = sum_i sum(w * mean_nc((sigmoid(p_cls) - sigmoid(t_cls))^2)) / sum(w)``

    The price of sigmoid space is a vanishing gradient where the student's logit is saturated on the wrong side;
    :func:`bce_output_loss` does not have that problem for objectness and classes.

    Returns:
        ``{"box", "obj", "cls"}``: scalar tensors, each a sum over levels. All are exactly 0 when the student equals
        the teacher.

    Raises:
        ValueError: the levels differ in number or shape (the message names both shapes and the level).
    """
    terms: dict[str, list[torch.Tensor]] = {"box": [], "obj": [], "cls": []}
    for p, t in _pairs(student, teacher):
        w = _cell_weight(t, obj_thres)
        terms["box"].append(_box_term(p, t, w))
        terms["obj"].append((p[..., _OBJ].sigmoid() - t[..., _OBJ].sigmoid()).pow(2).mean())
        terms["cls"].append(_weighted_mean((p[..., _CLS:].sigmoid() - t[..., _CLS:].sigmoid()).pow(2).mean(-1), w))
    return _sum_levels(terms)


def bce_output_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    temperature: float = 1.0,
    obj_thres: float | None = None,
) -> dict[str, torch.Tensor]:
    """Binary cross-entropy against the teacher's soft sigmoid scores (the principled choice for YOLO's classes).

    Args:
        student: per level ``[B, na, H_i, W_i, 5 + nc]`` raw logits of the student (with gradients).
        teacher: the teacher's raw logits, same shapes; detached inside, any float dtype (fp16 is fine).
        temperature: ``T > 0`` softening the class scores (class term only).
        obj_thres: ``None``, or a float in ``[0, 1)``: box and class terms only where ``sigmoid(t_obj) > obj_thres``.

    With ``w = sigmoid(t_obj)`` ``[B, na, H, W]`` and ``BCE(x, y) = -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))``
    evaluated from the logit ``x``:

    - ``box``: as in :func:`l2_output_loss` (boxes are a regression, not a probability)
    - ``obj = sum_i mean(BCE(p_obj, sigmoid(t_obj)))`` (logits in, every cell, unweighted, ungated)
    - ``cls = sum_i sum(w * mean_nc(BCE(p_cls / T, sigmoid(t_cls / T)))) / sum(w) * T^2`` (the ``T^2`` keeps the
      gradient magnitude roughly independent of ``T``, as in Hinton et al. 2015)

    A cross-entropy against soft targets is not 0 at ``student == teacher``: ``obj`` and ``cls`` are then at their
    minimum, the (weighted) entropy of the teacher's scores, and their gradient w.r.t. the student is exactly 0.
    That constant has no effect on training. ``box`` is 0 there.

    Returns:
        ``{"box", "obj", "cls"}``: scalar tensors, each a sum over levels.

    Raises:
        ValueError: the levels differ in number or shape (the message names both shapes and the level).
    """
    terms: dict[str, list[torch.Tensor]] = {"box": [], "obj": [], "cls": []}
    for p, t in _pairs(student, teacher):
        w = _cell_weight(t, obj_thres)
        terms["box"].append(_box_term(p, t, w))
        terms["obj"].append(_bce_obj_term(p, t))
        soft = (t[..., _CLS:] / temperature).sigmoid()
        bce = F.binary_cross_entropy_with_logits(p[..., _CLS:] / temperature, soft, reduction="none")
        terms["cls"].append(_weighted_mean(bce.mean(-1), w) * temperature**2)
    return _sum_levels(terms)


def kl_output_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    temperature: float = 1.0,
    obj_thres: float | None = None,
) -> dict[str, torch.Tensor]:
    """Softmax Kullback-Leibler divergence over the class logits (Hinton et al., 2015), objectness-weighted.

    **Caveat:** YOLOv5 scores each class with an independent sigmoid; this loss nevertheless treats the ``nc`` class
    logits of a cell as one softmax distribution. It only matches the logits up to a per-cell additive constant and
    ignores the absolute class scores. It is kept for parity with earlier distillation projects;
    :func:`bce_output_loss` is the principled choice. With ``nc == 1`` the softmax is constant, so the class term is
    identically 0 (a warning says so).

    Args:
        student: per level ``[B, na, H_i, W_i, 5 + nc]`` raw logits of the student (with gradients).
        teacher: the teacher's raw logits, same shapes; detached inside, any float dtype (fp16 is fine).
        temperature: ``T > 0`` softening both softmaxes (class term only).
        obj_thres: ``None``, or a float in ``[0, 1)``: box and class terms only where ``sigmoid(t_obj) > obj_thres``.

    With ``w = sigmoid(t_obj)`` ``[B, na, H, W]``, ``q_t = softmax(t_cls / T)`` and ``q_s = softmax(p_cls / T)`` over
    the class dimension:

    - ``box``: as in :func:`l2_output_loss`
    - ``obj = sum_i mean(BCE(p_obj, sigmoid(t_obj)))`` (as in :func:`bce_output_loss`)
    - ``cls = sum_i sum(w * T^2 * sum_c q_t log(q_t / q_s)) / sum(w)`` (sum over classes, weighted mean over cells)

    Returns:
        ``{"box", "obj", "cls"}``: scalar tensors, each a sum over levels. ``box`` and ``cls``
        are exactly 0 when the student equals the teacher; ``obj`` is then at its minimum (zero gradient).

    Raises:
        ValueError: the levels differ in number or shape (the message names both shapes and the level).
    """
    pairs = _pairs(student, teacher)
    if pairs[0][0].shape[-1] == _CLS + 1:
        warnings.warn(
            "kl_output_loss: nc = 1, so the softmax over classes is constant and the class term is always 0; "
            "use bce_output_loss to distil a single-class head",
            stacklevel=2,
        )
    terms: dict[str, list[torch.Tensor]] = {"box": [], "obj": [], "cls": []}
    for p, t in pairs:
        w = _cell_weight(t, obj_thres)
        terms["box"].append(_box_term(p, t, w))
        terms["obj"].append(_bce_obj_term(p, t))
        log_qs = F.log_softmax(p[..., _CLS:] / temperature, dim=-1)
        log_qt = F.log_softmax(t[..., _CLS:] / temperature, dim=-1)
        kl = (log_qt.exp() * (log_qt - log_qs)).sum(-1)  # [B, na, H, W]
        terms["cls"].append(_weighted_mean(kl, w) * temperature**2)
    return _sum_levels(terms)


#: name -> output distillation loss; every entry returns ``{"box", "obj", "cls"}`` scalar tensors
OUTPUT_LOSSES: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "l2": l2_output_loss,
    "bce": bce_output_loss,
    "kl": kl_output_loss,
}
