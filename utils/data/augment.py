"""Image augmentation for detection training (numpy / OpenCV).

Images are BGR ``uint8 [H, W, 3]`` arrays as ``cv2.imread`` returns them. Randomness comes only from the global
``random`` and ``numpy.random`` generators, which the data loader seeds per worker, so a seed reproduces a run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import cv2
import numpy as np

from utils.boxes import xywhn2xyxy

PAD_VALUE = 114

# Augmentation gains used when a dataset is asked to augment without a hyp dict (YOLOv5's low-augmentation set).
DEFAULT_HYP = {
    "hsv_h": 0.015,  # hue gain (fraction of the full hue circle)
    "hsv_s": 0.7,  # saturation gain (fraction)
    "hsv_v": 0.4,  # value gain (fraction)
    "degrees": 0.0,  # rotation (+/- degrees)
    "translate": 0.1,  # translation (+/- fraction of the image size)
    "scale": 0.5,  # scale (+/- gain)
    "shear": 0.0,  # shear (+/- degrees)
    "perspective": 0.0,  # perspective (+/- fraction), 0..0.001
    "flipud": 0.0,  # probability of an up-down flip
    "fliplr": 0.5,  # probability of a left-right flip
    "mosaic": 1.0,  # probability of a 4-image mosaic
    "mixup": 0.0,  # probability of mixing in a second mosaic
}


def letterbox(
    img: np.ndarray,
    new_shape: int | Sequence[int] = 640,
    color: tuple[int, int, int] = (PAD_VALUE, PAD_VALUE, PAD_VALUE),
    auto: bool = True,
    scale_fill: bool = False,
    scaleup: bool = True,
    stride: int = 32,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize an image keeping its aspect ratio and pad it to ``new_shape``.

    Args:
        img: ``[H, W, C]`` image.
        new_shape: target ``(height, width)``, or one int for a square.
        color: padding colour.
        auto: pad only up to the next multiple of ``stride`` (minimum rectangle) instead of to ``new_shape``.
        scale_fill: stretch to ``new_shape`` without padding (aspect ratio not kept).
        scaleup: allow enlarging; when ``False`` the image is only ever shrunk.
        stride: the multiple used by ``auto``.

    Returns:
        ``(image, (w_gain, h_gain), (pad_w, pad_h))``: a pixel ``(x, y)`` of the input maps to
        ``(x * w_gain + pad_w, y * h_gain + pad_h)`` in the output. The padding is split over both sides;
        ``pad_w``/``pad_h`` are the left/top padding actually applied (integers, as floats).
    """
    h0, w0 = img.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    th, tw = int(new_shape[0]), int(new_shape[1])
    r = min(th / h0, tw / w0)
    if not scaleup:
        r = min(r, 1.0)
    if scale_fill:
        nw, nh = tw, th
    else:
        nw, nh = max(1, round(w0 * r)), max(1, round(h0 * r))
    pad_w, pad_h = tw - nw, th - nh
    if auto and not scale_fill:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    if (nw, nh) != (w0, h0):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = pad_w // 2, pad_h // 2
    if pad_w or pad_h:
        img = cv2.copyMakeBorder(img, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=color)
    return img, (nw / w0, nh / h0), (float(left), float(top))


def augment_hsv(img: np.ndarray, hgain: float = 0.5, sgain: float = 0.5, vgain: float = 0.5) -> None:
    """Randomly scale hue, saturation and value of a BGR ``uint8`` image in place (each by ``1 +/- gain``)."""
    if not (hgain or sgain or vgain):
        return
    gains = np.random.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)  # OpenCV hue is 0..179
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    h, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)


def random_flips(img: np.ndarray, labels: np.ndarray, fliplr: float, flipud: float) -> np.ndarray:
    """Flip left-right / up-down with the given probabilities.

    Args:
        img: ``[H, W, C]`` image.
        labels: ``[n, 5]`` rows ``(cls, cx, cy, w, h)`` normalised xywh; updated in place.

    Returns:
        The (possibly flipped) image.
    """
    if random.random() < flipud:
        img = np.flipud(img)
        labels[:, 2] = 1 - labels[:, 2]
    if random.random() < fliplr:
        img = np.fliplr(img)
        labels[:, 1] = 1 - labels[:, 1]
    return img


def box_candidates(
    before: np.ndarray, after: np.ndarray, min_side: float = 2, min_area: float = 0.1, max_ar: float = 20, eps=1e-16
) -> np.ndarray:
    """Which transformed boxes to keep: ``bool [n]``.

    Args:
        before: ``[n, 4]`` xyxy pixels of the transformed boxes before clipping to the image.
        after: ``[n, 4]`` the same boxes after clipping.

    A box is dropped when a side is under ``min_side`` pixels, when clipping left less than ``min_area`` of its
    area, or when its aspect ratio exceeds ``max_ar``.
    """
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > min_side) & (h2 > min_side) & (w2 * h2 / (w1 * h1 + eps) > min_area) & (ar < max_ar)


def random_perspective(
    img: np.ndarray,
    labels: np.ndarray,
    degrees: float = 10,
    translate: float = 0.1,
    scale: float = 0.1,
    shear: float = 10,
    perspective: float = 0.0,
    border: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation, scale, shear, translation and perspective of an image and its boxes.

    Args:
        img: ``[H, W, C]`` image.
        labels: ``[n, 5]`` rows ``(cls, x1, y1, x2, y2)``, xyxy pixels of ``img``.
        degrees, translate, scale, shear, perspective: ranges (``+/-``) of the random transform; ``translate`` is
            a fraction of the output size, ``scale`` a gain around 1, ``shear`` in degrees.
        border: ``(top/bottom, left/right)`` pixels added (negative: removed) on each side; a mosaic of a
            ``2s x 2s`` canvas uses ``(-s // 2, -s // 2)`` to come out ``s x s``.

    Returns:
        ``(image, labels)``: the output image ``[H + 2 * border[0], W + 2 * border[1], C]`` and the kept labels
        ``[m, 5]`` (xyxy pixels of the output, clipped; see :func:`box_candidates`).
    """
    height, width = img.shape[0] + border[0] * 2, img.shape[1] + border[1] * 2

    centre = np.eye(3)  # move the image centre to the origin
    centre[0, 2], centre[1, 2] = -img.shape[1] / 2, -img.shape[0] / 2
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = random.uniform(-perspective, perspective), random.uniform(-perspective, perspective)
    rot = np.eye(3)
    angle, s = random.uniform(-degrees, degrees), random.uniform(1 - scale, 1 + scale)
    rot[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=s)
    shr = np.eye(3)
    shr[0, 1] = math.tan(math.radians(random.uniform(-shear, shear)))
    shr[1, 0] = math.tan(math.radians(random.uniform(-shear, shear)))
    move = np.eye(3)  # back from the origin to a randomly shifted output centre
    move[0, 2] = random.uniform(0.5 - translate, 0.5 + translate) * width
    move[1, 2] = random.uniform(0.5 - translate, 0.5 + translate) * height
    m = move @ shr @ rot @ persp @ centre

    if border[0] or border[1] or (m != np.eye(3)).any():
        fill = (PAD_VALUE, PAD_VALUE, PAD_VALUE)
        if perspective:
            img = cv2.warpPerspective(img, m, dsize=(width, height), borderValue=fill)
        else:
            img = cv2.warpAffine(img, m[:2], dsize=(width, height), borderValue=fill)

    n = len(labels)
    if not n:
        return img, labels.reshape(0, 5)
    corners = np.ones((n * 4, 3))
    corners[:, :2] = labels[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)  # x1y1, x2y2, x1y2, x2y1
    corners = corners @ m.T
    xy = corners[:, :2] / corners[:, 2:3] if perspective else corners[:, :2]
    xy = xy.reshape(n, 8)
    xs, ys = xy[:, 0::2], xy[:, 1::2]
    before = np.stack((xs.min(1), ys.min(1), xs.max(1), ys.max(1)), axis=1)
    after = before.copy()
    after[:, [0, 2]] = after[:, [0, 2]].clip(0, width)
    after[:, [1, 3]] = after[:, [1, 3]].clip(0, height)
    keep = box_candidates(before, after)
    out = np.concatenate((labels[keep, :1], after[keep]), axis=1).astype(labels.dtype)
    return img, out


def mosaic4(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile four images around a random centre of a ``2 size x 2 size`` canvas.

    Args:
        images: four ``[h, w, 3]`` images, each already resized so that its longer side is ``size``.
        labels: four ``[n, 5]`` arrays ``(cls, cx, cy, w, h)``, normalised xywh of their image.
        size: the final output side ``s``; pass the canvas to :func:`random_perspective` with
            ``border=(-s // 2, -s // 2)`` to get an ``s x s`` image.

    Returns:
        ``(canvas, labels)``: ``uint8 [2s, 2s, 3]`` and ``[m, 5]`` rows ``(cls, x1, y1, x2, y2)``, xyxy pixels of the
        canvas, clipped to it. Boxes cut to nothing are filtered later by :func:`random_perspective`.
    """
    if len(images) != 4 or len(labels) != 4:
        raise ValueError(f"mosaic4 needs 4 images and 4 label arrays, got {len(images)} and {len(labels)}")
    s = int(size)
    xc, yc = (int(random.uniform(s / 2, 3 * s / 2)) for _ in range(2))
    canvas = np.full((2 * s, 2 * s, images[0].shape[2]), PAD_VALUE, dtype=np.uint8)
    out = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        h, w = img.shape[:2]
        # (x1, y1) of this image's slot on the canvas; the slots meet at (xc, yc)
        x0 = xc - w if i in (0, 2) else xc
        y0 = yc - h if i in (0, 1) else yc
        cx1, cy1 = max(x0, 0), max(y0, 0)
        cx2, cy2 = min(x0 + w, 2 * s), min(y0 + h, 2 * s)
        canvas[cy1:cy2, cx1:cx2] = img[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        if len(lab):
            boxes = xywhn2xyxy(lab[:, 1:5].astype(np.float64), w, h, x0, y0)
            out.append(np.concatenate((lab[:, :1], boxes), axis=1))
    merged = np.concatenate(out, 0) if out else np.zeros((0, 5))
    merged[:, 1:] = merged[:, 1:].clip(0, 2 * s)
    return canvas, merged.astype(np.float32)


def mixup(
    img1: np.ndarray, labels1: np.ndarray, img2: np.ndarray, labels2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Blend two same-size images with a ratio drawn from Beta(32, 32) and keep the labels of both.

    Labels are ``[n, 5]`` in any common box format; the result is ``(image uint8, concatenated labels)``.
    """
    r = np.random.beta(32.0, 32.0)
    img = (img1.astype(np.float32) * r + img2.astype(np.float32) * (1 - r)).round().astype(np.uint8)
    return img, np.concatenate((labels1, labels2), 0)
