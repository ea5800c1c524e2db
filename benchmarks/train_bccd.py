"""Train a model on BCCD and record its final metrics and the time per epoch as JSON.

    python benchmarks/train_bccd.py --model yolov5n --imgsz 320 --epochs 30
    python benchmarks/train_bccd.py --model yolov5s --imgsz 320 --epochs 60 --out benchmarks/results/s320.json

Needs ../shared/datasets/BCCD (converted to YOLO format once, into benchmarks/.cache). The run itself goes to
benchmarks/runs/ (ignored by git); the JSON (default benchmarks/results/bccd_<model>_<imgsz>_e<epochs>.json) holds
mAP50, mAP50-95, precision and recall of best.pt on the validation split, seconds per epoch and images per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, bccd_data_yaml, environment, write_json
from utils.cli import run_main
from utils.data import load_data_config
from utils.data.images import list_images
from utils.log import setup_logging
from utils.training.config import TrainConfig
from utils.training.engine import train


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolov5n", help="model yaml name")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    setup_logging()
    data = bccd_data_yaml()
    n_train = len(list_images(load_data_config(data).train))
    name = f"bccd_{a.model}_{a.imgsz}_e{a.epochs}_s{a.seed}"
    cfg = TrainConfig(
        cfg=f"{a.model}.yaml", data=str(data), imgsz=a.imgsz, epochs=a.epochs, batch_size=a.batch_size,
        workers=a.workers, seed=a.seed, device=a.device, project=str(REPO / "benchmarks" / "runs"), name=name,
        exist_ok=True, noplots=False,
    )  # fmt: skip
    t0 = time.time()
    result = train(cfg)
    total = time.time() - t0
    out = a.out or REPO / "benchmarks" / "results" / f"{name}.json"
    return write_json(
        out,
        {
            "benchmark": "train_bccd",
            "command": "python benchmarks/train_bccd.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "model": a.model,
            "imgsz": a.imgsz,
            "epochs": result.epochs_completed,
            "batch_size": a.batch_size,
            "seed": a.seed,
            "train_images": n_train,
            "seconds_total": round(total, 1),
            "seconds_per_epoch": round(result.seconds_per_epoch, 2),
            "train_images_per_second": round(n_train / result.seconds_per_epoch, 2),
            "final": {k.split("/")[-1]: round(v, 4) for k, v in result.final_metrics.items()},
            "best_fitness": round(result.best_fitness, 4),
            "run_dir": str(result.save_dir.relative_to(REPO)),
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    run_main(main)
