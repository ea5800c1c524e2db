"""Run a detector on images, folders, globs, txt lists of paths, or videos.

    python detect.py --weights runs/train/exp/weights/best.pt --source data/bccd_sample/images/val
    python detect.py --weights best.pt --source "photos/*.jpg" --conf-thres 0.4 --save-txt --save-crop
    python detect.py --weights best.pt --source clip.mp4

Annotated images and videos go to runs/detect/exp*; --save-txt labels are YOLO rows normalised to the original
image (``cls cx cy w h [conf]``).
"""

from __future__ import annotations

import argparse

from utils.cli import config_from_namespace, run_main
from utils.log import setup_logging
from utils.runners.detect import DetectConfig, DetectResult, run_detect
from utils.runners.predict import add_runner_args


def parse_args(argv: list[str] | None = None) -> DetectConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_runner_args(p, DetectConfig)
    return config_from_namespace(DetectConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> DetectResult:
    setup_logging()
    return run_detect(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
