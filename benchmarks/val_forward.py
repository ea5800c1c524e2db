"""Do val.py's forward passes run as fast as the bare model? Its inference time against the fused model alone.

    python -m benchmarks.val_forward --weights ../shared/fixtures/upstream-v7.0-yolov5s-bccd.pt --imgsz 320

Each round runs the evaluation val.py runs (utils.evaluation.evaluate over the BCCD val split, batch 16, its
loader workers, plots drawn on their thread into a temporary folder) and reads the forward-pass time it measures
per image; then it runs the same fused model alone on the very batches the loader produced (already in memory,
same shapes, same layout), and times that. The ratio of the two, per round and its median over the rounds, says
what the evaluation loop costs the forward passes (loader workers and plots competing for the cores); the goal
is at most 1.10. Writes JSON under benchmarks/results/ and prints the table row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import REPO, bccd_data_yaml, environment, write_json
from utils.cli import run_main
from utils.data import create_dataloader, load_data_config
from utils.evaluation import EvalConfig, evaluate
from utils.export.backend import load_backend
from utils.torch_utils import fast_layout, keep_freed_memory

FIXTURE = REPO.parent / "shared" / "fixtures" / "upstream-v7.0-yolov5s-bccd.pt"
GOAL = 1.10


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(FIXTURE))
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    if not Path(a.weights).is_file():
        raise FileNotFoundError(f"--weights {a.weights}: not found")
    keep_freed_memory()  # as val.py does
    device = torch.device("cpu")
    model = load_backend(a.weights, device=device, fuse=True)
    data = load_data_config(bccd_data_yaml())
    stride = max(int(model.stride.max()), 32)
    loader, _ = create_dataloader(data.val, a.imgsz, a.batch_size, stride, rect=True, workers=a.workers,
                                  prefix="val: ", nc=data.nc)  # fmt: skip
    batches = [imgs for imgs, *_ in loader]
    images = sum(len(b) for b in batches)
    rounds = []
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        model(fast_layout(batches[0].float() / 255))  # warm-up

        def in_val(r: int) -> float:
            result = evaluate(model, loader, data.names, EvalConfig(), save_dir=Path(tmp) / f"r{r}")
            return result.speed_ms["inference"]

        def bare() -> float:
            total = 0.0
            for imgs in batches:
                x = fast_layout(imgs.float() / 255)
                t0 = time.perf_counter()
                model(x)
                total += time.perf_counter() - t0
            return total / images * 1e3

        for r in range(a.rounds):  # the order swaps every round
            if r % 2:
                b, v = bare(), in_val(r)
            else:
                v, b = in_val(r), bare()
            rounds.append({"val_ms_per_image": round(v, 2), "bare_ms_per_image": round(b, 2), "ratio": round(v / b, 3)})
            print(f"round {r + 1}/{a.rounds}: {rounds[-1]}", flush=True)
    median = statistics.median(x["ratio"] for x in rounds)
    return write_json(REPO / "benchmarks" / "results" / f"val_forward_{Path(a.weights).stem}_{a.imgsz}.json", {
        "benchmark": "val_forward",
        "command": "python -m benchmarks.val_forward " + " ".join(sys.argv[1:] if argv is None else argv),
        "weights": Path(a.weights).name, "imgsz": a.imgsz, "batch_size": a.batch_size, "workers": a.workers,
        "images": images, "rounds": rounds, "median_ratio": round(median, 3), "within_goal": median <= GOAL,
        "environment": environment(),
    })  # fmt: skip


if __name__ == "__main__":
    run_main(main)
