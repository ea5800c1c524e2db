"""Distil a trained teacher into a student: train.py plus a frozen teacher and distillation losses.

    python train_kd.py --teacher runs/train/exp/weights/best.pt --cfg models/yolov5n.yaml --data data/mydata.yaml
    python train_kd.py --teacher best.pt --weights pruned.pt --data data/mydata.yaml --kd-feature fitnet
    python train_kd.py --teacher best.pt --cfg yolov5n.yaml --kd-output bce pseudo --unlabeled extra_images/
    python train_kd.py --teacher best.pt --weights best.pt --data data/mydata.yaml --sparsity 1e-4
    python train_kd.py --resume runs/train_kd/exp/weights/last.pt   # train.py --resume does the same

Every train.py flag works here too; the distillation flags are listed under "distillation".
"""

from __future__ import annotations

import argparse

from utils.cli import config_from_namespace, run_main
from utils.distill.config import KDConfig, add_kd_args
from utils.distill.distiller import Distiller
from utils.log import setup_logging
from utils.pruning.sparsity import add_sparsity_args, sparsity_addons
from utils.training.config import add_train_args, train_config_from_args
from utils.training.engine import TrainResult, train
from utils.training.hyp import load_hyp

DEFAULT_HYP = "data/hyps/hyp.kd.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(parser)
    add_sparsity_args(parser)
    parser.set_defaults(hyp=DEFAULT_HYP, project="runs/train_kd")
    return add_kd_args(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> TrainResult:
    setup_logging()
    ns = parse_args(argv)
    cfg = train_config_from_args(ns)
    if cfg.resume:  # the teacher and every setting of the interrupted run, from its checkpoint
        return train(cfg)
    kd = config_from_namespace(KDConfig, ns)
    return train(cfg, [Distiller(kd, load_hyp(cfg.hyp)), *sparsity_addons(ns.sparsity)])


if __name__ == "__main__":
    run_main(main)
