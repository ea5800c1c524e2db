"""Image-grid mosaics of a batch with its boxes (``train_batch0.jpg``, ``val_batch0_labels.jpg``, ...).

Drawing is done with OpenCV on a BGR ``uint8`` canvas (text with OpenCV's built-in Hershey font), so nothing is
downloaded and no display is needed. Tensors are accepted wherever arrays are, but the module does not import torch
(see :mod:`utils.plots.drawer`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from utils.box_formats import xywh2xyxy, xyxy2xywh
from utils.plots.annotate import Annotator
from utils.plots.colors import colors

if TYPE_CHECKING:
    import torch

__all__ = ["output_to_targets", "plot_images"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MAX_NAME_CHARS = 40  # file names longer than this are cut on the tile
_MAX_LABELLED_BOXES = 30  # a tile with more boxes than this gets boxes without text, to stay readable
_NORMALISED_LIMIT = 1.01


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def output_to_targets(detections: Sequence[torch.Tensor | np.ndarray], max_det: int | None = None) -> np.ndarray:
    """Turn per-image NMS outputs into the prediction rows that :func:`plot_images` draws.

    Args:
        detections: one ``[n_i, 6]`` tensor (or array) per image of the batch, rows ``(x1, y1, x2, y2, conf, cls)``
            with ``xyxy`` corners in pixels of the network input image. ``n_i`` may be 0.
        max_det: keep at most this many rows per image (the first ones; NMS output is sorted by confidence).

    Returns:
        ``[N, 7]`` float64 array, ``N = sum(n_i)``, rows ``(image index, class, cx, cy, w, h, conf)`` with the
        ``xywh`` box (centre and size) in the same pixels as the input.

    Raises:
        ValueError: an element is not ``[n, 6]``, or ``max_det`` < 1.
    """
    if max_det is not None and (int(max_det) != max_det or max_det < 1):
        raise ValueError(f"max_det={max_det!r} is invalid; it must be a positive integer or None")
    rows = []
    for i, det in enumerate(detections):
        d = _to_numpy(det).astype(np.float64)
        if d.size == 0:
            continue
        if d.ndim != 2 or d.shape[1] != 6:
            raise ValueError(
                f"detections[{i}] has shape {d.shape}; expected [n, 6] rows of (x1, y1, x2, y2, conf, cls) pixels"
            )
        if max_det is not None:
            d = d[: int(max_det)]
        idx = np.full((len(d), 1), i, dtype=np.float64)
        rows.append(np.concatenate((idx, d[:, 5:6], xyxy2xywh(d[:, :4]), d[:, 4:5]), axis=1))
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 7), dtype=np.float64)


def _images_uint8(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` uint8 or float 0..1 -> ``[B, H, W, 3]`` uint8 RGB."""
    arr = _to_numpy(images)
    if arr.ndim != 4 or arr.shape[1] != 3 or 0 in arr.shape:
        raise ValueError(f"images has shape {arr.shape}; expected a non-empty batch [B, 3, H, W] of RGB images")
    if arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"float images have values in [{lo:g}, {hi:g}]; expected 0..1 (give uint8 for 0..255 pixel values)"
            )
        arr = np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
        arr = arr.astype(np.uint8)
    else:
        raise ValueError(f"images has dtype {arr.dtype}; expected uint8 (0..255) or float (0..1)")
    return arr.transpose(0, 2, 3, 1)


def _targets_array(targets: np.ndarray | torch.Tensor | None) -> np.ndarray:
    arr = np.zeros((0, 6)) if targets is None else _to_numpy(targets)
    if arr.size == 0:
        return np.zeros((0, arr.shape[-1] if arr.ndim == 2 and arr.shape[-1] in (6, 7) else 6), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (6, 7):
        raise ValueError(
            f"targets has shape {arr.shape}; expected [N, 6] (image, class, cx, cy, w, h) ground truth "
            "or [N, 7] (image, class, cx, cy, w, h, conf) predictions"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("targets contains NaN or infinite values")
    if (arr[:, 1] < 0).any():
        raise ValueError(f"targets has class id {arr[arr[:, 1] < 0, 1][0]:g}; class ids must be >= 0")
    return arr


def _class_name(names: Sequence[str] | dict[int, str] | None, c: int) -> str:
    if names is None:
        return str(c)
    lookup = names if isinstance(names, dict) else dict(enumerate(names))
    return str(lookup.get(c, c))


def _draw_name(canvas: np.ndarray, text: str, origin: tuple[int, int], max_width: int, scale: float) -> None:
    """White text on a dark strip whose top-left corner is ``origin``, shortened to fit in ``max_width`` pixels."""
    while text:
        (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, 1)
        if tw + 4 <= max_width:
            break
        text = text[:-1]
    if not text:
        return
    x, y = origin
    cv2.rectangle(canvas, (x, y), (x + tw + 4, y + th + baseline + 4), (40, 40, 40), thickness=-1)
    cv2.putText(canvas, text, (x + 2, y + th + 2), _FONT, scale, (255, 255, 255), thickness=1, lineType=cv2.LINE_AA)


def plot_images(
    images: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor | None,
    paths: Sequence[str | Path] | None = None,
    out_path: str | Path = "images.jpg",
    names: Sequence[str] | dict[int, str] | None = None,
    max_size: int = 1920,
    max_subplots: int = 16,
    conf_thres: float = 0.25,
) -> Path:
    """Draw a batch as a square grid of tiles with its boxes and save it as an image (JPEG by suffix).

    The first ``n = min(B, max_subplots)`` images are laid out row by row on a ``k x k`` grid,
    ``k = ceil(sqrt(n))``, unused cells left white. Tiles are scaled down (never up) by one factor so that the
    whole mosaic is at most ``max_size`` pixels wide and high; each tile gets a thin white border and, when
    ``paths`` is given, its file name (base name, cut to 40 characters) in the top-left corner.

    Boxes are drawn in the class colour with the class name (``names``; the id when missing) and, for predictions,
    the confidence, over the file name. A tile with more than 30 boxes shows the boxes without text.

    Args:
        images: ``[B, 3, H, W]`` RGB batch, tensor or array; ``uint8`` 0..255 or float 0..1.
        targets: boxes of the batch (tensor or array; ``None`` or zero rows draws images only), either
            ground truth ``[N, 6]`` rows ``(image index, class, cx, cy, w, h)`` or predictions ``[N, 7]`` rows
            ``(image index, class, cx, cy, w, h, conf)`` (see :func:`output_to_targets`). Boxes are ``xywh``
            (centre and size), either normalised to 0..1 by the input's ``W`` and ``H`` or in pixels of the
            ``[H, W]`` input images. The unit is decided once for the whole array: normalised when every
            ``cx, cy, w, h`` value is ``<= 1.01``, pixels otherwise. Rows whose image index is not among the
            ``n`` drawn images are ignored.
        paths: file paths of the batch images, ``paths[i]`` for image ``i``; missing entries are skipped.
        out_path: file to write; the format follows the suffix. Parent folders are created.
        names: class names (list, or dict id -> name).
        max_size: largest mosaic side in pixels (>= 1).
        max_subplots: most images drawn (>= 1).
        conf_thres: predictions with ``conf < conf_thres`` are not drawn (ignored for ground truth); 0..1.

    Returns:
        ``out_path`` as a ``Path``.

    Raises:
        ValueError: bad shapes, dtypes, value ranges or settings (the message names the argument).
        OSError: the file could not be written.
    """
    if int(max_size) != max_size or max_size < 1:
        raise ValueError(f"max_size={max_size!r} is invalid; it must be a positive integer")
    if int(max_subplots) != max_subplots or max_subplots < 1:
        raise ValueError(f"max_subplots={max_subplots!r} is invalid; it must be a positive integer")
    if not 0.0 <= conf_thres <= 1.0:
        raise ValueError(f"conf_thres={conf_thres!r} is invalid; it must be in [0, 1]")
    imgs = _images_uint8(images)
    tgt = _targets_array(targets)
    is_pred = tgt.shape[1] == 7
    normalised = tgt.shape[0] == 0 or float(np.abs(tgt[:, 2:6]).max()) <= _NORMALISED_LIMIT

    n = min(len(imgs), int(max_subplots))
    k = math.ceil(math.sqrt(n))
    h, w = imgs.shape[1:3]
    scale = min(1.0, max_size / (k * max(h, w)))
    th, tw = max(1, int(h * scale)), max(1, int(w * scale))
    mosaic = np.full((k * th, k * tw, 3), 255, dtype=np.uint8)
    lw = max(1, round(max(th, tw) / 300))
    border = max(1, lw)
    font_scale = min(0.6, max(0.3, max(th, tw) / 1200))

    origins = []
    for i in range(n):
        y0, x0 = (i // k) * th, (i % k) * tw
        tile = imgs[i][..., ::-1]  # RGB -> BGR
        if (th, tw) != (h, w):
            tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
        mosaic[y0 : y0 + th, x0 : x0 + tw] = tile
        cv2.rectangle(mosaic, (x0, y0), (x0 + tw - 1, y0 + th - 1), (255, 255, 255), thickness=border)
        origins.append((x0, y0))
        if paths is not None and i < len(paths) and paths[i] is not None:
            text = Path(str(paths[i])).name[:_MAX_NAME_CHARS]
            _draw_name(mosaic, text, (x0 + border, y0 + border), tw - 2 * border, font_scale)

    ann = Annotator(mosaic, line_width=lw, names=names)
    ann.font_scale = font_scale
    ann.font_thickness = 1
    unit = np.array([w, h, w, h], dtype=np.float64) if normalised else np.ones(4)
    to_tile = np.array([tw / w, th / h, tw / w, th / h])
    for i, (x0, y0) in enumerate(origins):
        rows = tgt[tgt[:, 0] == i]
        if is_pred:
            rows = rows[rows[:, 6] >= conf_thres]
        if len(rows) == 0:
            continue
        boxes = xywh2xyxy(rows[:, 2:6] * unit) * to_tile + np.array([x0, y0, x0, y0])
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(x0, x0 + tw - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(y0, y0 + th - 1)
        with_text = len(rows) <= _MAX_LABELLED_BOXES
        for box, row in zip(boxes, rows, strict=True):
            c = int(row[1])
            label = ""
            if with_text:
                label = _class_name(names, c) + (f" {row[6]:.2f}" if is_pred else "")
            color = colors(c, bgr=True)
            light = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2] > 150
            ann.box_label(box, label, color=color, txt_color=(0, 0, 0) if light else (255, 255, 255))
    mosaic = ann.result()

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), mosaic):
        raise OSError(f"could not write {out} (is the suffix an image format OpenCV can write?)")
    return out
