"""Box geometry: format conversions, clipping, rescaling and IoU.

Conventions used across the project:

- ``xyxy``: corners ``(x1, y1, x2, y2)``.
- ``xywh``: centre and size ``(cx, cy, w, h)``.
- A trailing ``n`` (``xywhn``) means normalised to 0..1 by the image width and height; otherwise pixels.

Every function accepts a ``torch.Tensor`` or a ``numpy.ndarray`` of shape ``[..., 4]`` and returns the same type
(a new object; inputs are never modified unless the name says ``_`` / ``inplace``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from utils.box_formats import xywh2xyxy, xyxy2xywh  # noqa: F401  (part of this module's interface)

Array = torch.Tensor | np.ndarray


def xywhn2xyxy(x: Array, w: float, h: float, padw: float = 0.0, padh: float = 0.0) -> Array:
    """Normalised centre/size to pixel corners in an image of size ``w`` x ``h``, shifted by ``(padw, padh)``."""
    y = xywh2xyxy(x)
    y[..., 0] = y[..., 0] * w + padw
    y[..., 2] = y[..., 2] * w + padw
    y[..., 1] = y[..., 1] * h + padh
    y[..., 3] = y[..., 3] * h + padh
    return y


def xyxy2xywhn(x: Array, w: float, h: float, clip: bool = False) -> Array:
    """Pixel corners to normalised centre/size for an image of size ``w`` x ``h``; optionally clip first."""
    if clip:
        x = clip_boxes(x, (h, w))
    y = xyxy2xywh(x)
    y[..., 0] /= w
    y[..., 2] /= w
    y[..., 1] /= h
    y[..., 3] /= h
    return y


def clip_boxes(boxes: Array, shape: tuple[int, int]) -> Array:
    """Clip ``xyxy`` pixel boxes ``[..., 4]`` to an image of ``shape = (height, width)``; returns a copy."""
    h, w = shape[0], shape[1]
    if isinstance(boxes, torch.Tensor):
        out = boxes.clone()
        out[..., 0].clamp_(0, w)
        out[..., 1].clamp_(0, h)
        out[..., 2].clamp_(0, w)
        out[..., 3].clamp_(0, h)
        return out
    out = boxes.copy()
    out[..., [0, 2]] = out[..., [0, 2]].clip(0, w)
    out[..., [1, 3]] = out[..., [1, 3]].clip(0, h)
    return out


def scale_boxes(
    from_shape: tuple[int, int],
    boxes: Array,
    to_shape: tuple[int, int],
    ratio_pad: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> Array:
    """Map ``xyxy`` pixel boxes from a letterboxed image back to the original image, and clip them.

    Args:
        from_shape: ``(height, width)`` of the letterboxed (network input) image.
        boxes: ``[N, 4]`` xyxy pixels in ``from_shape``.
        to_shape: ``(height, width)`` of the original image.
        ratio_pad: ``((gain_h, gain_w), (pad_w, pad_h))`` as returned by the letterbox that made ``from_shape``;
            computed from the two shapes when omitted (centred letterbox, same gain on both axes).
    """
    if ratio_pad is None:
        gain = min(from_shape[0] / to_shape[0], from_shape[1] / to_shape[1])
        pad_w = (from_shape[1] - to_shape[1] * gain) / 2
        pad_h = (from_shape[0] - to_shape[0] * gain) / 2
        gain_w = gain_h = gain
    else:
        (gain_h, gain_w), (pad_w, pad_h) = ratio_pad
    out = boxes.clone() if isinstance(boxes, torch.Tensor) else boxes.copy()
    out[..., [0, 2]] = (out[..., [0, 2]] - pad_w) / gain_w
    out[..., [1, 3]] = (out[..., [1, 3]] - pad_h) / gain_h
    return clip_boxes(out, to_shape)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of ``[N, 4]`` and ``[M, 4]`` xyxy boxes -> ``[N, M]`` (intersection over union; 0 where the
    union is empty)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def bbox_iou(box1: torch.Tensor, box2: torch.Tensor, xywh: bool = True, ciou: bool = False, eps: float = 1e-7):
    """Element-wise IoU (or Complete-IoU) of two aligned box sets ``[..., 4]`` -> ``[...]``.

    CIoU (Zheng et al. 2020) = IoU - centre_distance^2 / enclosing_diagonal^2 - alpha * v, where
    ``v = 4 / pi^2 * (atan(w2 / h2) - atan(w1 / h1))^2`` and ``alpha = v / (1 - IoU + v)`` (alpha is not
    differentiated through, as in the paper).

    Args:
        box1, box2: boxes in ``xywh`` (default) or ``xyxy``; any units, both the same.
        ciou: return CIoU instead of IoU.
    """
    if xywh:
        box1, box2 = xywh2xyxy(box1), xywh2xyxy(box2)
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.unbind(-1)
    w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(min=eps)
    w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(min=eps)

    inter_w = (torch.minimum(b1_x2, b2_x2) - torch.maximum(b1_x1, b2_x1)).clamp(min=0)
    inter_h = (torch.minimum(b1_y2, b2_y2) - torch.maximum(b1_y1, b2_y1)).clamp(min=0)
    inter = inter_w * inter_h
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not ciou:
        return iou

    enclose_w = torch.maximum(b1_x2, b2_x2) - torch.minimum(b1_x1, b2_x1)
    enclose_h = torch.maximum(b1_y2, b2_y2) - torch.minimum(b1_y1, b2_y1)
    diag_sq = enclose_w**2 + enclose_h**2 + eps
    centre_sq = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre_sq / diag_sq + v * alpha)
