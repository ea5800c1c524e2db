"""Training curves: one small subplot per column of a ``results.csv``, for one run or several runs side by side.

A ``results.csv`` has a header row and one row per finished epoch. Its first column is normally ``epoch``; the
others are numbers (losses, metrics, learning rates). Header names may carry surrounding spaces (the file is
written with padded columns), and the set of columns is not fixed: distillation adds ``train/kd_*`` terms, for
example. Every column except ``epoch`` gets its own subplot.

Figures use Matplotlib's object API on an Agg canvas, so they work headless and offline.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["load_results", "plot_results", "plot_results_compare"]

LOGGER = logging.getLogger(__name__)

_MAX_COLS = 5  # subplots per row
_CELL_SIZE = (3.2, 2.6)  # inches per subplot
_DPI = 150


def load_results(csv_path: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a ``results.csv`` into ``(x, data)``.

    Args:
        csv_path: the csv file, or a run folder holding ``results.csv``.

    Returns:
        ``x``: ``[n]`` float array, the ``epoch`` column when there is one (matched after stripping spaces,
        case-insensitive), else ``0..n-1``. ``data``: a DataFrame with the ``n`` rows and every other column
        (names stripped of spaces), as floats; empty cells are NaN. A malformed row (another number of cells than
        the header, a cell that is not a number, an epoch that is not a finite number: e.g. a row cut short by a
        killed run, or text appended to the file) is skipped with a warning naming the file and line.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not UTF-8 text, is empty or has no column besides ``epoch``.
    """
    path = Path(csv_path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"results file {path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "expected the results.csv that training writes"
        ) from None
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = next((row for row in reader if row), None)
    if header is None:
        raise ValueError(f"results file {path} is empty; expected a header row such as 'epoch, train/box_loss'")
    columns = [c.strip() for c in header]
    epoch_cols = [i for i, c in enumerate(columns) if c.lower() == "epoch"]
    rows = []
    for row in reader:
        if not row:
            continue
        values, problem = _parse_row(row, len(columns), epoch_cols[0] if epoch_cols else None)
        if problem:
            LOGGER.warning("%s:%d: malformed row (%s); skipped", path, reader.line_num, problem)
            continue
        rows.append(values)
    df = pd.DataFrame(np.array(rows, dtype=float).reshape(len(rows), len(columns)), columns=columns)
    if epoch_cols:
        x = df.iloc[:, epoch_cols[0]].to_numpy(dtype=float)
        df = df.drop(columns=columns[epoch_cols[0]])
    else:
        x = np.arange(len(df), dtype=float)
    if df.shape[1] == 0:
        raise ValueError(f"results file {path} has no column to plot besides 'epoch'")
    return x, df


def _parse_row(row: list[str], n_columns: int, epoch_col: int | None) -> tuple[list[float], str]:
    """The row's numbers (NaN for empty cells) and ``''``, or ``([], reason)`` when the row is malformed."""
    if len(row) != n_columns:
        return [], f"{len(row)} cells, the header has {n_columns}"
    values = []
    for i, cell in enumerate(row):
        cell = cell.strip()
        try:
            values.append(float(cell) if cell else math.nan)
        except ValueError:
            return [], f"cell {i + 1} is {cell[:40]!r}, not a number"
    if epoch_col is not None and not math.isfinite(values[epoch_col]):
        return [], f"epoch is {row[epoch_col].strip()[:40]!r}, not a finite number"
    return values, ""


def _smooth(y: np.ndarray) -> np.ndarray:
    """Centred moving average of ``[n]`` values over ~10% of the points (at least 3; none below 5 points).

    NaN cells are ignored inside each window; edges use the points that exist.
    """
    n = len(y)
    if n < 5:
        return np.asarray(y, dtype=float)
    window = max(3, int(round(0.1 * n)) | 1)  # odd
    return pd.Series(y).rolling(window, center=True, min_periods=1).mean().to_numpy()


def _grid(n: int) -> tuple[Figure, list]:
    ncols = max(1, min(_MAX_COLS, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(_CELL_SIZE[0] * ncols, _CELL_SIZE[1] * nrows), tight_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path


def plot_results(csv_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Plot every column of one run's ``results.csv`` against the epoch.

    Each column (all but ``epoch``, in file order) gets a subplot with the raw values (thin line with dots) and a
    lightly smoothed curve (centred moving average over ~10% of the epochs). A csv with a header but no rows still
    gives a figure, with "no data" in each subplot and a logged warning.

    Args:
        csv_path: ``results.csv``, or a run folder that holds it.
        out_path: image to write; default ``results.png`` beside the csv.

    Returns:
        The path written.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_results`.
    """
    csv_file = Path(csv_path)
    if csv_file.is_dir():
        csv_file = csv_file / "results.csv"
    x, df = load_results(csv_file)
    out = Path(out_path) if out_path is not None else csv_file.with_name("results.png")
    if len(df) == 0:
        LOGGER.warning("%s has no rows yet; plotting empty axes", csv_file)
    fig, axes = _grid(df.shape[1])
    for ax, name in zip(axes, df.columns, strict=True):
        y = df[name].to_numpy()
        ax.set_title(name, fontsize=10)
        if not np.isfinite(y).any():
            _no_data(ax)
            continue
        ax.plot(x, y, marker=".", markersize=4, linewidth=0.8, alpha=0.6, color="tab:blue", label="raw")
        ax.plot(x, _smooth(y), linewidth=1.6, color="tab:orange", label="smoothed")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    shown = [ax for ax in axes if ax.lines]
    if shown:
        shown[0].legend(fontsize=7)
    return _save(fig, out)


def _run_labels(paths: Sequence[Path]) -> list[str]:
    """Label each run by its folder name, adding parent folders until the labels are unique."""
    parents = [p.parent.resolve() for p in paths]
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) if p.parts[-depth:] else str(p) for p in parents]
        if len(set(labels)) == len(labels) or all(depth >= len(p.parts) for p in parents):
            return labels
        depth += 1


def plot_results_compare(csv_paths: Sequence[str | Path], out_path: str | Path) -> Path:
    """Plot several runs' ``results.csv`` on shared subplots: one line per run, labelled by its run folder.

    Subplots are the union of the runs' columns (besides ``epoch``), in order of first appearance; a run lacking a
    column simply has no line there. Runs with the same folder name are told apart by their parent folders.

    Args:
        csv_paths: the ``results.csv`` files (or run folders holding them); at least one.
        out_path: image to write.

    Returns:
        The path written.

    Raises:
        ValueError: ``csv_paths`` is empty or a file cannot be read as results (see :func:`load_results`).
        FileNotFoundError: a file does not exist.
    """
    if isinstance(csv_paths, (str, Path)):
        csv_paths = [csv_paths]
    files = [Path(p) / "results.csv" if Path(p).is_dir() else Path(p) for p in csv_paths]
    if not files:
        raise ValueError("csv_paths is empty; give at least one results.csv")
    runs = [load_results(f) for f in files]
    labels = _run_labels(files)
    columns: list[str] = []
    for _, df in runs:
        columns += [c for c in df.columns if c not in columns]
    fig, axes = _grid(len(columns))
    for ax, name in zip(axes, columns, strict=True):
        ax.set_title(name, fontsize=10)
        for i, ((x, df), label) in enumerate(zip(runs, labels, strict=True)):
            if name in df.columns and np.isfinite(df[name].to_numpy()).any():
                ax.plot(
                    x, df[name].to_numpy(), marker=".", markersize=3, linewidth=1.2, color=f"C{i % 10}", label=label
                )
        if not ax.lines:
            _no_data(ax)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes:
        for line in ax.lines:
            handles.setdefault(line.get_label(), line)
    if handles:
        fig.legend(
            list(handles.values()), list(handles.keys()), loc="lower center", ncol=min(4, len(handles)), fontsize=8
        )
        fig.set_layout_engine("tight", rect=(0, 0.06, 1, 1))
    return _save(fig, Path(out_path))
