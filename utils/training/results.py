"""Per-epoch results: ``results.csv`` rows and the final summary table."""

from __future__ import annotations

import csv
from pathlib import Path


class ResultsCSV:
    """Appends one row per epoch to ``results.csv``; columns are fixed by the first row written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.exists():  # resuming: keep the existing header and rows
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), None)
            self.columns = [c.strip() for c in header] if header else None

    def append(self, row: dict[str, float]) -> None:
        if self.columns is None:
            self.columns = list(row)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch`` (written before an interruption that a resume repeats)."""
        if not self.path.exists() or self.columns is None:
            return
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= epoch]
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerows(kept)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def summary_table(rows: list[tuple[str, str]]) -> str:
    """A two-column text table."""
    width = max(len(k) for k, _ in rows) + 2
    line = "-" * (width + max(len(v) for _, v in rows) + 2)
    return "\n".join([line, *(f"{k:<{width}}{v}" for k, v in rows), line])


def wait_summary(waits: list[float]) -> str:
    """How long epochs waited for their first batch: the first epoch (workers starting), then the others."""
    if len(waits) < 2:
        return f"{waits[0]:.2f} s" if waits else "-"
    later = sorted(waits[1:])
    return f"epoch 1 {waits[0]:.2f} s, later median {later[len(later) // 2]:.3f} s, max {later[-1]:.3f} s"
