"""Compare training runs: overlay their metrics and losses in one figure and tabulate what each reached.

Examples:
    python tools/plot_results.py runs/train/teacher runs/train/baseline runs/train_kd/student
    python tools/plot_results.py runs/train/exp* --out runs/compare/kd_vs_baseline

Each RUN_DIR is a train.py / train_kd.py run directory. Writes results_compare.png, comparison.md and
comparison.csv to --out (default runs/compare/exp, numbered) and prints the table: best mAP50, best mAP50-95,
epochs, parameters and GFLOPs at 640 px of weights/best.pt (else last.pt), and the teacher of distillation runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import run_main
from utils.files import increment_path
from utils.log import setup_logging
from utils.plots.compare import compare_runs, format_table


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="training run directories")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/compare/exp, numbered)")
    args = p.parse_args(argv)
    setup_logging()
    out = args.out or increment_path(Path("runs/compare/exp"), mkdir=True)
    rows, files = compare_runs(args.runs, out)
    print(format_table(rows))
    print(f"Saved {', '.join(str(f) for f in files.values())}")
    return rows, files


if __name__ == "__main__":
    run_main(main)
