"""Comparing training runs: one figure of their curves and one table of what each run reached.

A run directory is what ``train.py`` / ``train_kd.py`` write: ``results.csv``, ``opt.yaml``, ``weights/best.pt``
(or ``last.pt``) and, for distillation, ``kd.yaml`` naming the teacher. Columns are matched by name, so plain runs
and distillation runs (extra ``train/kd_*`` columns) share one figure.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from utils.plots.training import _run_labels, load_results, plot_results_compare

LOGGER = logging.getLogger(__name__)

MAP50_COLUMN = "metrics/mAP_0.5"
MAP_COLUMN = "metrics/mAP_0.5:0.95"
FLOPS_IMGSZ = 640  # GFLOPs are quoted at 640 px, as upstream's model summaries do, so runs compare directly


@dataclass
class RunSummary:
    """One row of the comparison table. Numbers are None where the run directory does not tell."""

    run: str
    best_map50: float | None
    best_map: float | None
    epochs: int
    params: int | None
    gflops: float | None
    teacher: str

    def cells(self) -> list[str]:
        def num(v, fmt):
            return "-" if v is None else format(v, fmt)

        return [
            self.run, num(self.best_map50, ".4f"), num(self.best_map, ".4f"), str(self.epochs),
            num(self.params, ","), num(self.gflops, ".2f"), self.teacher or "-",
        ]  # fmt: skip


HEADERS = ["run", "best mAP50", "best mAP50-95", "epochs", "params", f"GFLOPs@{FLOPS_IMGSZ}", "teacher"]


def _best(df, column: str) -> float | None:
    if column not in df.columns:
        return None
    values = df[column].to_numpy(dtype=float)
    return float(np.nanmax(values)) if np.isfinite(values).any() else None


def _weights_file(run_dir: Path) -> Path | None:
    for name in ("best.pt", "last.pt"):
        if (run_dir / "weights" / name).is_file():
            return run_dir / "weights" / name
    return None


def _model_size(run_dir: Path) -> tuple[int | None, float | None]:
    """Parameters and GFLOPs of the run's best (else last) weights; (None, None) when there are none to read."""
    from models import load_model
    from utils.checkpoint import CheckpointError
    from utils.torch_utils import count_parameters, model_flops

    weights = _weights_file(run_dir)
    if weights is None:
        LOGGER.warning("%s: no weights/best.pt or weights/last.pt; parameters and GFLOPs left blank", run_dir)
        return None, None
    try:
        model = load_model(weights)
    except (CheckpointError, ValueError, OSError) as e:
        LOGGER.warning("%s: cannot read (%s); parameters and GFLOPs left blank", weights, e)
        return None, None
    return count_parameters(model), model_flops(model, FLOPS_IMGSZ)


def _teacher(run_dir: Path) -> str:
    """The teacher named by ``kd.yaml`` (distillation runs), else ``''``."""
    from utils.files import load_yaml

    kd = run_dir / "kd.yaml"
    if not kd.is_file():
        return ""
    info = load_yaml(kd) or {}
    teacher = info.get("teacher") or (info.get("settings") or {}).get("teacher") or ""
    return str(teacher)


def summarise_run(run_dir: str | Path, label: str | None = None) -> RunSummary:
    """Read one run directory into a :class:`RunSummary`; raises ``FileNotFoundError`` without ``results.csv``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    x, df = load_results(run_dir / "results.csv")
    params, gflops = _model_size(run_dir)
    return RunSummary(
        run=label or run_dir.name, best_map50=_best(df, MAP50_COLUMN), best_map=_best(df, MAP_COLUMN),
        epochs=int(np.nanmax(x)) + 1 if len(x) else 0, params=params, gflops=gflops, teacher=_teacher(run_dir),
    )  # fmt: skip


def format_table(rows: Sequence[RunSummary]) -> str:
    """A Markdown table of the runs (readable as plain text too)."""
    cells = [HEADERS, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> tuple[list[RunSummary], dict[str, Path]]:
    """Overlay the runs' curves in ``out_dir/results_compare.png`` and write the table as ``comparison.md`` and
    ``comparison.csv``. Returns the table rows and the files written."""
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("give at least one run directory")
    for d in dirs:
        if not (d / "results.csv").is_file():
            raise FileNotFoundError(f"{d}: no results.csv; is it a training run directory?")
    labels = _run_labels([d / "results.csv" for d in dirs])
    rows = [summarise_run(d, label) for d, label in zip(dirs, labels, strict=True)]
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; give a folder for the figure and the tables")
    try:
        return rows, _write_outputs(dirs, rows, out_dir)
    except OSError as e:
        where = e.filename or out_dir
        raise ValueError(f"--out {out_dir}: cannot write {where}: {e.strerror or e}") from None


def _write_outputs(dirs: list[Path], rows: list[RunSummary], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"figure": plot_results_compare([d / "results.csv" for d in dirs], out_dir / "results_compare.png")}
    files["markdown"] = out_dir / "comparison.md"
    files["markdown"].write_text(format_table(rows) + "\n")
    files["csv"] = out_dir / "comparison.csv"
    with files["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([fl.name for fl in fields(RunSummary)])
        writer.writerows([[("" if v is None else v) for v in asdict(r).values()] for r in rows])
    return files
