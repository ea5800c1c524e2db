"""Train a YOLOv5 detector.

python train.py --cfg models/yolov5s.yaml --data data/bccd_sample.yaml --imgsz 320 --epochs 30
python train.py --weights runs/train/exp/weights/best.pt --data data/mydata.yaml   # fine-tune
python train.py --resume                                                          # continue the latest run
python train.py --weights best.pt --data data/mydata.yaml --sparsity 1e-4   # L1 on BN scales, then prune (bn)

A resumed run continues with what its checkpoint records, distillation included.
"""

from __future__ import annotations

import argparse

from utils.cli import run_main
from utils.log import setup_logging
from utils.pruning.sparsity import add_sparsity_args, sparsity_addons
from utils.training.config import add_train_args, train_config_from_args
from utils.training.engine import TrainResult, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(parser)
    return add_sparsity_args(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> TrainResult:
    setup_logging()
    ns = parse_args(argv)
    cfg = train_config_from_args(ns)
    if cfg.resume:  # the run's own settings and add-ons, from its checkpoint
        return train(cfg)
    return train(cfg, sparsity_addons(ns.sparsity))


if __name__ == "__main__":
    run_main(main)
