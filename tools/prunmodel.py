"""Prune a YOLOv5 checkpoint's channels (torch-pruning dependency graph); the result is really smaller and faster.

    python tools/prunmodel.py --weights best.pt --ratio 0.5 --out pruned.pt
    python tools/prunmodel.py --weights best.pt --target-params 0.4 --importance lamp --global --out pruned.pt
    python tools/prunmodel.py --weights best.pt --ratio 0.3 --importance taylor --data data/mydata.yaml --out p.pt

Then recover the accuracy: ``python train_kd.py --weights pruned.pt --teacher best.pt --data ...``.
The checkpoint records every layer's pruned width, so train.py, train_kd.py, val.py and detect.py load it as is.
"""

from __future__ import annotations

import argparse
import logging

from utils.cli import config_from_namespace, run_main
from utils.pruning.config import IMPORTANCE_KINDS, PruneConfig
from utils.pruning.workflow import PruneResult, prune_checkpoint


def parse_args(argv: list[str] | None = None) -> PruneConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint to prune: ours, upstream YOLOv5's, or already pruned")
    p.add_argument("--out", required=True, help="where to write the pruned checkpoint")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--ratio", type=float, help="fraction of channels removed, e.g. 0.5")
    how.add_argument("--target-params", type=float, help="keep at most this fraction of the parameters")
    how.add_argument("--target-gflops", type=float, help="keep at most this fraction of the GFLOPs")
    p.add_argument("--layers", default="all", help="backbone, neck, all, or layer indices like 0,1,2 (default all)")
    p.add_argument("--importance", default="l1", choices=IMPORTANCE_KINDS, help="channel ranking (default l1)")
    p.add_argument("--global", dest="global_", action="store_true", help="rank channels across layers together")
    p.add_argument("--iterative-steps", type=int, default=1, help="reach the ratio in this many steps")
    p.add_argument("--round-to", type=int, default=8, help="keep channel counts multiples of this (default 8)")
    p.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs and latency (default 640)")
    p.add_argument("--data", default="", help="dataset yaml; --importance taylor uses a few of its batches")
    p.add_argument("--taylor-batches", type=int, default=4, help="batches for --importance taylor (default 4)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size for --importance taylor (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or a CUDA device such as 0")
    return config_from_namespace(PruneConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> PruneResult:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return prune_checkpoint(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
