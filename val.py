"""Evaluate a trained detector on a labelled dataset split (mAP@0.5, mAP@0.5:0.95, P, R, speed).

python val.py --weights runs/train/exp/weights/best.pt --data data/bccd_sample.yaml --imgsz 320
python val.py --weights best.pt --data data/mydata.yaml --task test --verbose --save-json
"""

from __future__ import annotations

import argparse

from utils.cli import add_flags, config_from_namespace, run_main
from utils.log import setup_logging
from utils.runners.val import ValConfig, run_val


def parse_args(argv: list[str] | None = None) -> ValConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, ValConfig)
    return config_from_namespace(ValConfig, p.parse_args(argv))


def main(argv: list[str] | None = None):
    setup_logging()
    return run_val(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
