"""Train a YOLOv5 detector.

python train.py --cfg models/yolov5s.yaml --data data/bccd_sample.yaml --imgsz 320 --epochs 30
python train.py --weights runs/train/exp/weights/best.pt --data data/mydata.yaml   # fine-tune
python train.py --resume                                                          # continue the latest run
"""

from __future__ import annotations

import argparse

from utils.cli import run_main
from utils.log import setup_logging
from utils.training.config import add_train_args, train_config_from_args
from utils.training.engine import TrainResult, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_train_args(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> TrainResult:
    setup_logging()
    return train(train_config_from_args(parse_args(argv)))


if __name__ == "__main__":
    run_main(main)
