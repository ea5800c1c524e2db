"""Box format conversions between corners and centre/size, for torch tensors and numpy arrays alike.

Kept apart from :mod:`utils.boxes` because nothing here needs torch: the plotting processes
(:mod:`utils.plots.drawer`) draw boxes without loading it. :mod:`utils.boxes` offers the same functions.

- ``xyxy``: corners ``(x1, y1, x2, y2)``.
- ``xywh``: centre and size ``(cx, cy, w, h)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    Array = torch.Tensor | np.ndarray

__all__ = ["xywh2xyxy", "xyxy2xywh"]


def _empty_like(x: Array) -> Array:
    """An uninitialised array of ``x``'s type, shape, dtype (and device, for a tensor)."""
    return np.empty_like(x) if isinstance(x, np.ndarray) else x.new_empty(x.shape)


def xyxy2xywh(x: Array) -> Array:
    """Corners ``[..., 4]`` to centre/size ``[..., 4]`` (same units)."""
    y = _empty_like(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def xywh2xyxy(x: Array) -> Array:
    """Centre/size ``[..., 4]`` to corners ``[..., 4]`` (same units)."""
    y = _empty_like(x)
    half_w, half_h = x[..., 2] / 2, x[..., 3] / 2
    y[..., 0] = x[..., 0] - half_w
    y[..., 1] = x[..., 1] - half_h
    y[..., 2] = x[..., 0] + half_w
    y[..., 3] = x[..., 1] + half_h
    return y
