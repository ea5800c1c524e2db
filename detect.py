"""Run a detector on images, folders, globs, txt lists of paths, or videos.

    python detect.py --weights runs/train/exp/weights/best.pt --source data/bccd_sample/images/val
    python detect.py --weights best.pt --source "photos/*.jpg" --conf-thres 0.4 --save-txt --save-crop
    python detect.py --weights best.pt --source clip.mp4

Annotated images and videos go to runs/detect/exp*; --save-txt labels are YOLO rows normalised to the original
image (``cls cx cy w h [conf]``).
"""

from __future__ import annotations

import argparse

from utils.cli import config_from_namespace, dataclass_defaults, run_main
from utils.log import setup_logging
from utils.runners.detect import DetectConfig, DetectResult, run_detect
from utils.runners.predict import add_inference_args


def parse_args(argv: list[str] | None = None) -> DetectConfig:
    d = dataclass_defaults(DetectConfig)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--weights", required=True, help="checkpoint (ours or upstream YOLOv5's), or an exported .onnx / .torchscript"
    )
    p.add_argument("--source", default=d.source, help="image, folder, glob, .txt list of paths, or video")
    add_inference_args(p, DetectConfig)
    p.add_argument("--classes", nargs="+", type=int, default=None, help="keep only these class ids")
    p.add_argument("--save-txt", action="store_true", help="save YOLO txt labels")
    p.add_argument("--save-conf", action="store_true", help="add confidences to --save-txt labels")
    p.add_argument("--save-crop", action="store_true", help="save a crop of every detection")
    p.add_argument("--hide-labels", action="store_true", help="draw boxes without labels")
    p.add_argument("--hide-conf", action="store_true", help="draw labels without confidences")
    p.add_argument("--line-thickness", type=int, default=d.line_thickness, help="box line width, px")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images or videos")
    return config_from_namespace(DetectConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> DetectResult:
    setup_logging()
    return run_detect(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
