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

from utils.cli import add_flags, config_from_namespace, run_main
from utils.pruning.config import PruneConfig
from utils.pruning.workflow import PruneResult, prune_checkpoint


def parse_args(argv: list[str] | None = None) -> PruneConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, PruneConfig)
    return config_from_namespace(PruneConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> PruneResult:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return prune_checkpoint(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
