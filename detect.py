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


def parse_args(argv: list[str] | None = None) -> DetectConfig:
    d = dataclass_defaults(DetectConfig)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--weights", required=True, help="checkpoint (ours or upstream YOLOv5's), or an exported .onnx / .torchscript"
    )
    p.add_argument("--source", default=d.source, help="image, folder, glob, .txt list of paths, or video")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="inference size, px")
    p.add_argument("--device", default=d.device, help="cuda device, e.g. 0, or cpu")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=d.iou_thres, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=d.max_det, help="maximum detections per image")
    p.add_argument("--classes", nargs="+", type=int, default=None, help="keep only these class ids")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--save-txt", action="store_true", help="save YOLO txt labels")
    p.add_argument("--save-conf", action="store_true", help="add confidences to --save-txt labels")
    p.add_argument("--save-crop", action="store_true", help="save a crop of every detection")
    p.add_argument("--hide-labels", action="store_true", help="draw boxes without labels")
    p.add_argument("--hide-conf", action="store_true", help="draw labels without confidences")
    p.add_argument("--line-thickness", type=int, default=d.line_thickness, help="box line width, px")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images or videos")
    p.add_argument("--project", default=d.project, help="save to project/name")
    p.add_argument("--name", default=d.name, help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name")
    p.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    p.add_argument("--vid-stride", type=int, default=d.vid_stride, help="use every N-th video frame")
    return config_from_namespace(DetectConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> DetectResult:
    setup_logging()
    return run_detect(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
