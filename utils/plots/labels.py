"""Dataset label statistics: how many boxes per class, where box centres fall, how large boxes are.

Figures use Matplotlib's object API on an Agg canvas, so they work headless and offline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.plots.colors import colors

__all__ = ["plot_labels"]

LOGGER = logging.getLogger(__name__)

_DPI = 150
_CANVAS = 1000  # side of the box-drawing panel, pixels
_CORRELOGRAM_ROWS = 5000
_VARIABLES = ("x", "y", "width", "height")


def _as_labels(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.size == 0:
        return np.zeros((0, 5), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError(f"labels has shape {arr.shape}; expected [N, 5] rows of (class, cx, cy, w, h) normalised")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("labels contains NaN or infinite values; every (class, cx, cy, w, h) must be finite")
    cls = arr[:, 0]
    if (cls < 0).any() or (cls != np.round(cls)).any():
        bad = cls[(cls < 0) | (cls != np.round(cls))][0]
        raise ValueError(f"class id {bad!r} in labels is invalid; class ids must be non-negative integers")
    return arr


def _class_names(names: Sequence[str] | dict[int, str] | None, nc: int) -> list[str]:
    lookup = names if isinstance(names, dict) else dict(enumerate(names or []))
    return [str(lookup.get(i, i)) for i in range(nc)]


def _bins(n: int) -> int:
    """Histogram bins per axis for ``n`` points: about sqrt(n), between 10 and 50."""
    return int(np.clip(round(np.sqrt(n)), 10, 50))


def _no_boxes(ax) -> None:
    ax.text(0.5, 0.5, "no boxes", ha="center", va="center", transform=ax.transAxes, color="grey")


def _box_canvas(labels: np.ndarray, max_boxes: int, rng: np.random.Generator) -> np.ndarray:
    """``[_CANVAS, _CANVAS, 3]`` RGB white canvas with up to ``max_boxes`` boxes centred, sizes to scale."""
    canvas = np.full((_CANVAS, _CANVAS, 3), 255, dtype=np.uint8)
    rows = labels if len(labels) <= max_boxes else labels[rng.choice(len(labels), max_boxes, replace=False)]
    half = _CANVAS / 2
    for c, _, _, w, h in rows.tolist():
        dx, dy = w * half, h * half
        p1 = (round(half - dx), round(half - dy))
        p2 = (round(half + dx), round(half + dy))
        cv2.rectangle(canvas, p1, p2, colors(int(c)), thickness=1, lineType=cv2.LINE_AA)
    return canvas


def _correlogram(labels: np.ndarray, path: Path, rng: np.random.Generator) -> Path:
    """Pairwise 2-D histograms of (x, y, width, height), 1-D histograms on the diagonal."""
    data = labels[:, 1:5]
    if len(data) > _CORRELOGRAM_ROWS:
        data = data[rng.choice(len(data), _CORRELOGRAM_ROWS, replace=False)]
    k = len(_VARIABLES)
    bins = _bins(len(data))
    fig = Figure(figsize=(8, 8))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.98, wspace=0.08, hspace=0.08)
    axes = fig.subplots(k, k, squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                ax.hist(data[:, j], bins=bins, range=(0, 1), color="tab:blue", alpha=0.8)
                ax.set_yticks([])
            else:
                ax.hist2d(data[:, j], data[:, i], bins=bins, range=[[0, 1], [0, 1]], cmap="Blues", cmin=1, vmin=0)
                ax.set_ylim(0, 1)
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=7)
            if i == k - 1:
                ax.set_xlabel(_VARIABLES[j], fontsize=9)
            else:
                ax.set_xticklabels([])
            if j == 0 and i != 0:
                ax.set_ylabel(_VARIABLES[i], fontsize=9)
            elif i != j:
                ax.set_yticklabels([])
    axes[0, 0].set_ylabel(_VARIABLES[0], fontsize=9)
    fig.savefig(path, dpi=100)
    return path


def plot_labels(
    labels: np.ndarray | torch.Tensor,
    names: Sequence[str] | dict[int, str] | None,
    out_path: str | Path,
    correlogram: bool = False,
    max_boxes: int = 1000,
    seed: int = 0,
) -> Path:
    """Summarise a dataset's boxes in one image (``labels.jpg``).

    Four panels: box count per class (bars coloured with the class palette, class names on the x axis); a 2-D
    histogram of box centres (x right, y down, as in the image); a 2-D histogram of box width vs height; and up to
    ``max_boxes`` boxes (a seeded random subset) drawn centred on a white square, sizes to scale.

    With no labels at all the image is still written (zero-height bars for the named classes, "no boxes" in the
    other panels) and a warning is logged; the correlogram is then skipped with a warning.

    Args:
        labels: ``[N, 5]`` array or tensor of ``(class, cx, cy, w, h)``, box centre and size normalised to 0..1 by
            the image width and height, all images of the dataset together. ``N`` may be 0.
        names: class names (list, or dict id -> name); classes without a name are shown by id. May be ``None``.
        out_path: image to write (e.g. ``runs/train/exp/labels.jpg``); parent folders are created.
        correlogram: also write pairwise histograms of (x, y, width, height) beside it as
            ``<stem>_correlogram<suffix>`` (e.g. ``labels_correlogram.jpg``), from at most 5000 random boxes.
        max_boxes: most boxes drawn in the fourth panel.
        seed: seed of the random subsets.

    Returns:
        ``out_path`` as a ``Path``.

    Raises:
        ValueError: ``labels`` has the wrong shape, non-finite values or invalid class ids; ``max_boxes`` < 1.
    """
    arr = _as_labels(labels)
    if int(max_boxes) != max_boxes or max_boxes < 1:
        raise ValueError(f"max_boxes={max_boxes!r} is invalid; it must be a positive integer")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if isinstance(names, dict):
        n_named = max((int(k) + 1 for k in names), default=0)
    else:
        n_named = len(names) if names is not None else 0
    classes = arr[:, 0].astype(np.int64)
    nc = max(n_named, int(classes.max()) + 1 if len(classes) else 0)
    counts = np.bincount(classes, minlength=nc)
    if len(arr) == 0:
        LOGGER.warning("no labels to plot; %s shows empty panels", out)

    fig = Figure(figsize=(9, 9), tight_layout=True)
    FigureCanvasAgg(fig)
    (ax_cls, ax_xy), (ax_wh, ax_boxes) = fig.subplots(2, 2)

    # class counts
    if nc:
        ax_cls.bar(np.arange(nc), counts, color=[tuple(v / 255 for v in colors(i)) for i in range(nc)])
        ax_cls.set_xticks(np.arange(nc))
        ax_cls.set_xticklabels(_class_names(names, nc), rotation=90, fontsize=max(4.0, min(9.0, 300 / nc)))
        ax_cls.set_xlim(-0.6, nc - 0.4)
        if nc <= 20:
            for i, n in enumerate(counts.tolist()):
                ax_cls.annotate(str(n), (i, n), ha="center", va="bottom", fontsize=7)
    else:
        _no_boxes(ax_cls)
    ax_cls.set_ylabel("instances")
    ax_cls.set_title(f"{len(arr)} boxes, {int((counts > 0).sum())} classes", fontsize=10)

    # centres and sizes
    for ax, cols, (xl, yl) in ((ax_xy, (1, 2), ("x", "y")), (ax_wh, (3, 4), ("width", "height"))):
        if len(arr):
            ax.hist2d(
                arr[:, cols[0]],
                arr[:, cols[1]],
                bins=_bins(len(arr)),
                range=[[0, 1], [0, 1]],
                cmap="Blues",
                cmin=1,
                vmin=0,
            )
        else:
            _no_boxes(ax)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_aspect("equal")
    ax_xy.invert_yaxis()  # image convention: y grows downwards
    ax_xy.set_title("box centres", fontsize=10)
    ax_wh.set_title("box sizes", fontsize=10)

    # boxes to scale
    ax_boxes.imshow(_box_canvas(arr, int(max_boxes), rng))
    ax_boxes.set_title(f"{min(len(arr), int(max_boxes))} boxes to scale", fontsize=10)
    ax_boxes.axis("off")
    fig.savefig(out, dpi=_DPI)

    if correlogram:
        target = out.with_name(f"{out.stem}_correlogram{out.suffix}")
        if len(arr):
            _correlogram(arr, target, rng)
        else:
            LOGGER.warning("no labels; skipping %s", target)
    return out
