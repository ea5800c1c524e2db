"""Check how well the detection head's anchors fit a dataset's boxes, and fit new ones when they do not.

All sizes here are box widths and heights in pixels of the training input (images resized so that their longer
side is ``imgsz``), unless a name says otherwise. The fit of a box ``(w, h)`` to an anchor ``(aw, ah)`` is the
worse of the two side ratios, each taken as ``min / max`` so that it lies in ``[0, 1]``::

    r = min(min(w, aw) / max(w, aw), min(h, ah) / max(h, ah))

A box counts as matched by an anchor when ``r > 1 / thr`` (``thr = 4`` allows each side to be up to four times
larger or smaller than the anchor's, as the YOLOv5 loss does with its ``anchor_t`` hyperparameter).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.cluster.vq import kmeans
from tqdm import tqdm

LOGGER = logging.getLogger(__name__)

PREFIX = "AutoAnchor: "
BPR_GOOD_ENOUGH = 0.98  # keep the current anchors when their best possible recall is above this
MIN_SIDE_PX = 2.0  # boxes with a side below this many pixels are left out of the anchor fit
TINY_WARN_FRACTION = 0.01  # warn (rather than just note) when at least this fraction of boxes is tiny
MUTATION_PROB = 0.9
MUTATION_SIGMA = 0.1
MUTATION_CLIP = (0.3, 3.0)
JITTER = 0.1  # label sizes are scaled by a factor drawn uniformly from [1 - JITTER, 1 + JITTER]


# --------------------------------------------------------------------------------------------------- helpers
def _as_wh(x, name: str, allow_empty: bool = True) -> np.ndarray:
    """``x`` as a float64 array ``[N, 2]`` of non-negative, finite widths and heights."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape [N, 2] (width, height), got shape {tuple(a.shape)}")
    if not allow_empty and len(a) == 0:
        raise ValueError(f"{name} is empty; at least one (width, height) row is needed")
    if not np.isfinite(a).all() or (a < 0).any():
        bad = a[~(np.isfinite(a) & (a >= 0)).all(1)]
        raise ValueError(f"{name} must hold finite, non-negative sizes; got rows such as {bad[:3].tolist()}")
    return a


def _check_thr(thr: float) -> float:
    thr = float(thr)
    if not np.isfinite(thr) or thr < 1.0:
        raise ValueError(f"thr must be a finite ratio >= 1 (e.g. 4.0), got {thr}")
    return thr


def _ratio_matrix(anchors: np.ndarray, wh: np.ndarray) -> np.ndarray:
    """Fit ``r`` ``[N, K]`` of every box ``wh`` ``[N, 2]`` to every anchor ``anchors`` ``[K, 2]`` (same units)."""
    a = anchors[None]  # [1, K, 2]
    b = wh[:, None]  # [N, 1, 2]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        side = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), 1.0)  # two zero sizes fit each other perfectly
    return side.min(2)


def _sort_by_area(anchors: np.ndarray) -> np.ndarray:
    return anchors[np.argsort(anchors.prod(1), kind="stable")]


def format_anchors(anchors_px: np.ndarray) -> str:
    """Anchors ``[K, 2]`` in pixels as ``"w,h, w,h, ..."`` rounded to whole pixels, as a model yaml lists them."""
    return ", ".join(f"{round(float(w))},{round(float(h))}" for w, h in np.asarray(anchors_px).reshape(-1, 2))


# --------------------------------------------------------------------------------------------------- metrics
def anchor_metrics(anchors_px, wh_px, thr: float = 4.0) -> tuple[float, float]:
    """Best possible recall and anchors above threshold of a set of anchors for a set of boxes.

    Args:
        anchors_px: ``[K, 2]`` anchor widths and heights in pixels (all > 0). Numpy array or tensor.
        wh_px: ``[N, 2]`` box widths and heights in pixels (N >= 1).
        thr: side-ratio threshold; a box matches an anchor when ``r > 1 / thr`` (see the module docstring).

    Returns:
        ``(bpr, aat)``: ``bpr`` is the fraction of boxes whose best anchor matches them (0..1); ``aat`` is the mean
        number of anchors per box that match it (0..K).
    """
    thr = _check_thr(thr)
    anchors = _as_wh(anchors_px, "anchors_px", allow_empty=False)
    if (anchors <= 0).any():
        raise ValueError(f"anchors_px must be positive sizes in pixels, got {anchors.tolist()}")
    wh = _as_wh(wh_px, "wh_px", allow_empty=False)
    r = _ratio_matrix(anchors, wh)  # [N, K]
    matched = r > 1.0 / thr
    bpr = float(matched.any(1).mean())
    aat = float(matched.sum(1).mean())
    return bpr, aat


def anchor_fitness(anchors_px: np.ndarray, wh_px: np.ndarray, thr: float = 4.0) -> float:
    """Mean over boxes ``wh_px`` ``[N, 2]`` of the best anchor's fit ``r``, counted as 0 where ``r <= 1 / thr``.

    ``anchors_px`` is ``[K, 2]``; both in pixels. This is the score the anchor evolution maximises.
    """
    best = _ratio_matrix(np.asarray(anchors_px, dtype=np.float64), np.asarray(wh_px, dtype=np.float64)).max(1)
    return float(np.where(best > 1.0 / thr, best, 0.0).mean())


# ---------------------------------------------------------------------------------------------------- labels
def label_wh_pixels(labels: Sequence[np.ndarray], shapes, imgsz: int, rng: np.random.Generator | None) -> np.ndarray:
    """Box sizes in pixels of the training input, gathered over a dataset.

    Args:
        labels: one array per image, ``[n_i, 5]`` rows ``(class, cx, cy, w, h)`` with the box normalised to 0..1 by
            the image width and height (YOLO txt format). Extra columns after the fifth are ignored; an image
            without boxes may give an empty array of any shape with zero elements.
        shapes: ``[N, 2]`` original image sizes ``(width, height)`` in pixels, one row per entry of ``labels``.
        imgsz: training input size in pixels; each image is scaled so that its longer side equals ``imgsz``
            (``shape * imgsz / max(shape)``).
        rng: numpy random generator; each box's size is multiplied by its own factor drawn uniformly from
            ``[0.9, 1.1]`` (both sides by the same factor), so that the fit does not hinge on exact sizes.
            ``None`` leaves the sizes unscaled.

    Returns:
        ``[M, 2]`` float64 widths and heights in pixels, ``M`` the total number of boxes, in image then box order.
    """
    if isinstance(shapes, torch.Tensor):
        shapes = shapes.detach().cpu().numpy()
    shapes = np.asarray(shapes, dtype=np.float64)
    if shapes.ndim != 2 or shapes.shape[1] != 2:
        raise ValueError(f"shapes must have shape [N, 2] (width, height), got shape {tuple(shapes.shape)}")
    if len(shapes) != len(labels):
        raise ValueError(f"shapes has {len(shapes)} rows but labels has {len(labels)} entries; they must match")
    if len(shapes) and (~np.isfinite(shapes) | (shapes <= 0)).any():
        bad = np.flatnonzero((~np.isfinite(shapes) | (shapes <= 0)).any(1))
        raise ValueError(f"image shapes must be positive (width, height); image {bad[0]} has {shapes[bad[0]].tolist()}")
    if not isinstance(imgsz, (int, np.integer)) or isinstance(imgsz, bool) or imgsz <= 0:
        raise ValueError(f"imgsz must be a positive integer number of pixels, got {imgsz!r}")

    scaled = shapes * (imgsz / shapes.max(1, keepdims=True))  # [N, 2] input-image size of each image
    parts = []
    for i, lab in enumerate(labels):
        lab = lab.detach().cpu().numpy() if isinstance(lab, torch.Tensor) else np.asarray(lab, dtype=np.float64)
        if lab.size == 0:
            continue
        if lab.ndim != 2 or lab.shape[1] < 5:
            raise ValueError(f"labels[{i}] must have shape [n, 5] (class, cx, cy, w, h), got {tuple(lab.shape)}")
        parts.append(lab[:, 3:5].astype(np.float64) * scaled[i])
    if not parts:
        return np.zeros((0, 2), dtype=np.float64)
    wh = np.concatenate(parts, 0)
    if rng is not None:
        wh = wh * rng.uniform(1.0 - JITTER, 1.0 + JITTER, size=(len(wh), 1))
    return wh


# ------------------------------------------------------------------------------------------------ fit anchors
def _kmeans(obs: np.ndarray, n: int, seed: int) -> np.ndarray:
    """scipy k-means with a seeded generator (``rng=`` on recent scipy, ``seed=`` before it existed)."""
    try:
        return kmeans(obs, n, iter=30, rng=np.random.default_rng(seed))[0]
    except TypeError:
        return kmeans(obs, n, iter=30, seed=seed)[0]


def kmean_anchors(
    wh_px,
    n: int = 9,
    img_size: int = 640,
    thr: float = 4.0,
    generations: int = 1000,
    seed: int = 0,
    verbose: bool = False,
) -> np.ndarray:
    """Fit ``n`` anchors to box sizes: k-means, then a mutation-and-selection search on the fitness.

    Args:
        wh_px: ``[M, 2]`` box widths and heights in pixels of the training input (see :func:`label_wh_pixels`).
            Boxes with a side below 2 pixels are left out.
        n: number of anchors (``nl * na`` for a detection head).
        img_size: training input size in pixels; only bounds the random anchors used when k-means fails.
        thr: side-ratio threshold of the fitness (see :func:`anchor_fitness`).
        generations: number of mutation steps; each keeps its mutation only if the fitness improves.
        seed: seeds k-means and the mutations; the result is a deterministic function of the inputs.
        verbose: show a progress bar and log the anchors found.

    Returns:
        ``[n, 2]`` float64 anchor widths and heights in pixels, sorted by area (smallest first).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of anchors, got {n!r}")
    if not isinstance(generations, (int, np.integer)) or isinstance(generations, bool) or generations < 0:
        raise ValueError(f"generations must be a non-negative integer, got {generations!r}")
    if img_size <= 0:
        raise ValueError(f"img_size must be a positive number of pixels, got {img_size!r}")
    thr = _check_thr(thr)
    wh_all = _as_wh(wh_px, "wh_px")

    tiny = (wh_all < MIN_SIDE_PX).any(1)
    n_tiny = int(tiny.sum())
    if n_tiny:
        level = logging.WARNING if n_tiny >= TINY_WARN_FRACTION * len(wh_all) else logging.INFO
        LOGGER.log(
            level,
            "%sleaving out %d of %d boxes smaller than %g pixels on a side",
            PREFIX,
            n_tiny,
            len(wh_all),
            MIN_SIDE_PX,
        )
    wh = wh_all[~tiny]
    if len(wh) < n:
        raise ValueError(
            f"kmean_anchors needs at least n={n} boxes of {MIN_SIDE_PX:g}+ pixels a side, got {len(wh)} "
            f"(of {len(wh_all)} boxes)"
        )

    rng = np.random.default_rng(seed)
    if verbose:
        LOGGER.info("%srunning k-means for %d anchors on %d boxes", PREFIX, n, len(wh))
    # Whiten by the spread of each side; a side that is (numerically) constant is left unscaled, since dividing by
    # a rounding-error spread blows the rounding error up and keeps k-means from converging.
    scale = wh.std(0)
    scale[scale <= 1e-6 * wh.mean(0)] = 1.0
    centres = _kmeans(wh / scale, n, seed) * scale
    if len(centres) != n:
        LOGGER.warning(
            "%sk-means found %d distinct clusters for n=%d anchors; starting from random anchors instead",
            PREFIX,
            len(centres),
            n,
        )
        centres = rng.uniform(MIN_SIDE_PX, img_size, size=(n, 2))
    anchors = _sort_by_area(centres)

    best = anchor_fitness(anchors, wh, thr)
    steps = range(generations)
    bar = tqdm(steps, desc=f"{PREFIX}evolving anchors", disable=not verbose)
    low, high = MUTATION_CLIP
    for _ in bar:
        factor = np.ones_like(anchors)
        while (factor == 1).all():  # redraw until at least one size changes
            mutate = rng.random(anchors.shape) < MUTATION_PROB
            noise = rng.normal(1.0, MUTATION_SIGMA, size=anchors.shape).clip(low, high)
            factor = np.where(mutate, noise, 1.0)
        candidate = (anchors * factor).clip(min=MIN_SIDE_PX)
        fit = anchor_fitness(candidate, wh, thr)
        if fit > best:
            best, anchors = fit, candidate
            bar.set_description(f"{PREFIX}evolving anchors, fitness {best:.4f}")
    anchors = _sort_by_area(anchors)

    if verbose:
        bpr, aat = anchor_metrics(anchors, wh, thr)
        LOGGER.info(
            "%sthr=%.2f: %.4f best possible recall, %.2f anchors past thr, fitness %.4f; n=%d, img_size=%d, "
            "anchors: %s",
            PREFIX,
            thr,
            bpr,
            aat,
            best,
            n,
            img_size,
            format_anchors(anchors),
        )
    return anchors


# ------------------------------------------------------------------------------------------------- the head
def check_anchors(
    detect,
    labels: Sequence[np.ndarray],
    shapes,
    imgsz: int,
    thr: float = 4.0,
    seed: int = 0,
    generations: int = 1000,
) -> bool:
    """Check the head's anchors against a dataset and replace them when a better set is found.

    Args:
        detect: the detection head (``models.head.Detect``, or a model exposing it as ``.detect``). Its
            ``anchors`` buffer ``[nl, na, 2]`` is in units of each level's stride; ``stride`` ``[nl]`` must be set.
        labels, shapes, imgsz: the dataset, as :func:`label_wh_pixels` takes it.
        thr: side-ratio threshold (the loss's ``anchor_t``).
        seed: seeds the label size jitter and the anchor fit.
        generations: mutation steps of :func:`kmean_anchors`.

    When the current anchors' best possible recall is at most 0.98, fits ``nl * na`` anchors with
    ``kmean_anchors(label_wh_pixels(labels, shapes, imgsz, np.random.default_rng(seed)), nl * na, imgsz, thr,
    generations, seed)`` and, if they recall more boxes, writes them into ``detect.anchors`` in place (same
    shape, dtype and device), divided by each level's stride. The smallest anchors go to the level with the
    smallest stride (for increasing strides, areas increase across levels and within each level).

    Returns:
        ``True`` if the anchors were replaced, ``False`` if they were kept.
    """
    head = detect.detect if hasattr(detect, "detect") else detect
    anchors, stride = head.anchors, head.stride
    if anchors.ndim != 3 or anchors.shape[-1] != 2:
        raise ValueError(f"detect.anchors must have shape [nl, na, 2], got {tuple(anchors.shape)}")
    nl, na, _ = anchors.shape
    if stride.numel() != nl:
        raise ValueError(f"detect.stride has {stride.numel()} entries but the head has {nl} anchor levels")

    wh = label_wh_pixels(labels, shapes, imgsz, np.random.default_rng(seed))
    if len(wh) == 0:
        LOGGER.info("%sno boxes in the labels; keeping the current anchors", PREFIX)
        return False

    stride_col = stride.detach().to(anchors).view(-1, 1, 1)
    current_px = (anchors.detach() * stride_col).view(-1, 2).cpu().double().numpy()
    bpr, aat = anchor_metrics(current_px, wh, thr)
    LOGGER.info("%s%.2f anchors/target, %.3f Best Possible Recall (BPR)", PREFIX, aat, bpr)
    if bpr > BPR_GOOD_ENOUGH:
        LOGGER.info("%scurrent anchors are a good fit to the dataset", PREFIX)
        return False

    LOGGER.warning("%sanchors are a poor fit to the dataset (BPR %.3f); fitting new anchors", PREFIX, bpr)
    new_px = kmean_anchors(wh, n=nl * na, img_size=imgsz, thr=thr, generations=generations, seed=seed)
    new_bpr, new_aat = anchor_metrics(new_px, wh, thr)
    if new_bpr <= bpr:
        LOGGER.info("%snew anchors recall no more boxes (BPR %.3f); keeping the current anchors", PREFIX, new_bpr)
        return False

    new = torch.as_tensor(new_px, dtype=anchors.dtype, device=anchors.device).view(nl, na, 2)
    stride_flat = stride.detach().view(-1)
    if nl > 1 and bool(stride_flat[-1] < stride_flat[0]):  # levels listed largest stride first
        new = new.flip(0)
    with torch.no_grad():
        anchors.copy_(new / stride_col)
    LOGGER.info(
        "%snew anchors (pixels): %s; %.2f anchors/target, %.3f BPR (was %.3f)",
        PREFIX,
        format_anchors(new.view(-1, 2).cpu().numpy()),
        new_aat,
        new_bpr,
        bpr,
    )
    return True
