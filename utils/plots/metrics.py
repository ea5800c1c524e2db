"""Evaluation plots: precision-recall curve, metric-vs-confidence curves and the confusion matrix.

Figures are built with Matplotlib's object API on an Agg canvas (no pyplot state, no display, no downloads), so
they work on headless machines and in worker threads. The module does not import torch (see
:mod:`utils.plots.drawer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.curves import smooth
from utils.plots.annotate import class_names

if TYPE_CHECKING:
    from utils.metrics import APResult, ConfusionMatrix

__all__ = ["class_names", "plot_ap_result", "plot_confusion_matrix", "plot_mc_curve", "plot_pr_curve"]

_MAX_LEGEND_CLASSES = 20  # above this, per-class curves are drawn grey without legend entries


def _new_figure(size: tuple[float, float] = (9, 6)) -> Figure:
    fig = Figure(figsize=size, tight_layout=True)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, dpi: int = 200) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_pr_curve(
    px: np.ndarray,
    py: np.ndarray,
    ap50: np.ndarray,
    path: str | Path,
    names: Sequence[str] | None = None,
) -> Path:
    """Precision-recall curves per class and their mean, with AP@0.5 in the legend.

    Args:
        px: ``[k]`` recall grid.
        py: ``[c, k]`` precision per class at ``px``.
        ap50: ``[c]`` AP@0.5 per class (the mean is shown as mAP@0.5).
        path: output PNG.
        names: ``c`` legend names (class ids when absent).
    """
    py = np.atleast_2d(np.asarray(py)) if np.size(py) else np.zeros((0, len(px)))
    ap50 = np.asarray(ap50).reshape(-1)
    if py.shape[0] != ap50.shape[0] or py.shape[1] != len(px):
        raise ValueError(f"py {py.shape}, ap50 {ap50.shape} and px {np.shape(px)} do not fit: need [c, k], [c], [k]")
    labels = list(names) if names is not None else [str(i) for i in range(py.shape[0])]
    fig = _new_figure()
    ax = fig.add_subplot()
    legend = py.shape[0] <= _MAX_LEGEND_CLASSES
    for i, y in enumerate(py):
        kw = {"label": f"{labels[i]} {ap50[i]:.3f}"} if legend else {"color": "grey"}
        ax.plot(px, y, linewidth=1, **kw)
    if py.shape[0]:
        ax.plot(px, py.mean(0), linewidth=3, color="tab:blue", label=f"all classes {ap50.mean():.3f} mAP@0.5")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Precision-Recall curve")
    if py.shape[0]:
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    return _save(fig, path)


def plot_mc_curve(
    px: np.ndarray,
    py: np.ndarray,
    path: str | Path,
    names: Sequence[str] | None = None,
    xlabel: str = "Confidence",
    ylabel: str = "Metric",
) -> Path:
    """A metric (F1, precision or recall) against confidence, per class and for the class mean.

    Args:
        px: ``[k]`` confidence grid.
        py: ``[c, k]`` metric per class at ``px``.
        path: output PNG.
        names: ``c`` legend names (class ids when absent).
        xlabel, ylabel: axis labels.
    """
    py = np.atleast_2d(np.asarray(py)) if np.size(py) else np.zeros((0, len(px)))
    if py.shape[1] != len(px):
        raise ValueError(f"py {py.shape} does not fit px {np.shape(px)}: need [c, k] and [k]")
    labels = list(names) if names is not None else [str(i) for i in range(py.shape[0])]
    fig = _new_figure()
    ax = fig.add_subplot()
    legend = py.shape[0] <= _MAX_LEGEND_CLASSES
    for i, y in enumerate(py):
        ax.plot(px, y, linewidth=1, **({"label": labels[i]} if legend else {"color": "grey"}))
    if py.shape[0]:
        mean = smooth(py.mean(0), 0.05)
        best = int(mean.argmax())
        ax.plot(px, mean, linewidth=3, color="tab:blue", label=f"all classes {mean[best]:.2f} at {px[best]:.3f}")
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{ylabel}-{xlabel} curve")
    return _save(fig, path)


def plot_ap_result(
    result: APResult, save_dir: str | Path, names: Sequence[str] | dict[int, str] | None = None
) -> list[Path]:
    """Write ``PR_curve.png``, ``F1_curve.png``, ``P_curve.png`` and ``R_curve.png`` for an :class:`APResult`.

    ``names`` maps class ids (``result.classes``) to names. Returns the written paths.
    """
    save_dir = Path(save_dir)
    labels = class_names(names, result.classes)
    return [
        plot_pr_curve(result.px, result.pr_curve, result.ap50, save_dir / "PR_curve.png", labels),
        plot_mc_curve(result.px, result.f1_curve, save_dir / "F1_curve.png", labels, ylabel="F1"),
        plot_mc_curve(result.px, result.p_curve, save_dir / "P_curve.png", labels, ylabel="Precision"),
        plot_mc_curve(result.px, result.r_curve, save_dir / "R_curve.png", labels, ylabel="Recall"),
    ]


def plot_confusion_matrix(
    matrix: ConfusionMatrix | np.ndarray,
    path: str | Path,
    names: Sequence[str] | dict[int, str] | None = None,
    normalize: bool = True,
) -> Path:
    """Heatmap of a ``[nc + 1, nc + 1]`` confusion matrix (rows predicted, columns true, last = background).

    Args:
        matrix: a :class:`ConfusionMatrix` or its ``matrix`` array.
        path: output PNG.
        names: ``nc`` class names; class ids when absent. Tick labels are shown up to 30 classes.
        normalize: divide each column by its total (fraction of each true class); values below 0.005 are blank.
    """
    m = np.asarray(getattr(matrix, "matrix", matrix))  # a ConfusionMatrix or its array
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"matrix has shape {m.shape}; expected a square [nc + 1, nc + 1] array with nc >= 1")
    nc = m.shape[0] - 1
    labels = [*class_names(names, range(nc)), "background"]
    if normalize:
        data = m / np.maximum(m.sum(0, keepdims=True), 1e-9)
        data = np.where(data < 0.005, np.nan, data)
    else:
        data = m.astype(np.float64)
    ticks = nc <= 30
    side = 4 + 0.45 * (nc + 1) if ticks else 12
    fig = _new_figure((min(side + 2, 16), min(side, 14)))
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(np.nanmax(data)) if np.isfinite(data).any() else 1.0, 1.0)
    image = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=vmax)  # NaN cells (below 0.005) stay blank
    fig.colorbar(image, ax=ax, shrink=0.8)
    if nc < 30:  # the value in each cell, dark text on light cells and light text on dark ones
        for (row, col), value in np.ndenumerate(data):
            if np.isfinite(value):
                ax.text(col, row, f"{value:.2f}" if normalize else f"{value:.0f}", ha="center", va="center",
                        size=8, color="white" if value > 0.6 * vmax else "black")  # fmt: skip
    if ticks:
        ax.set_xticks(range(nc + 1), labels, rotation=90)
        ax.set_yticks(range(nc + 1), labels)
    ax.set_xlabel("True")
    ax.set_ylabel("Predicted")
    ax.set_title("Confusion matrix" + (" (normalised by true class)" if normalize else ""))
    return _save(fig, path, dpi=150)
