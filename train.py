"""Train a YOLOv5 detector.

python train.py --cfg models/yolov5s.yaml --data data/bccd_sample.yaml --imgsz 320 --epochs 30
python train.py --weights runs/train/exp/weights/best.pt --data data/mydata.yaml   # fine-tune
python train.py --resume                                                          # continue the latest run
python train.py --weights best.pt --data data/mydata.yaml --sparsity 1e-4   # L1 on BN scales, then prune (bn)
"""

from __future__ import annotations

import argparse

from utils.cli import run_main
from utils.log import setup_logging
from utils.pruning.sparsity import BNSparsity
from utils.training.config import add_train_args, train_config_from_args
from utils.training.engine import TrainResult, resolve_resume, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(parser)
    parser.add_argument(
        "--sparsity", type=float, default=0.0, help="L1 penalty on BatchNorm scales (network slimming), e.g. 1e-4"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> TrainResult:
    setup_logging()
    ns = parse_args(argv)
    cfg = train_config_from_args(ns)
    sparsity = ns.sparsity
    if cfg.resume:  # the penalty of the interrupted run, not the default
        cfg, ckpt, _ = resolve_resume(cfg)
        sparsity = float(((ckpt.get("train_args") or {}).get("plugin") or {}).get("sparsity") or 0.0)
    return train(cfg, plugin=BNSparsity(sparsity) if sparsity else None)


if __name__ == "__main__":
    run_main(main)
