"""Evaluate a trained detector on a labelled dataset split (mAP@0.5, mAP@0.5:0.95, P, R, speed).

python val.py --weights runs/train/exp/weights/best.pt --data data/bccd_sample.yaml --imgsz 320
python val.py --weights best.pt --data data/mydata.yaml --task test --verbose --save-json
"""

from __future__ import annotations

import argparse

from utils.cli import config_from_namespace, dataclass_defaults, run_main
from utils.log import setup_logging
from utils.runners.val import TASKS, ValConfig, run_val


def parse_args(argv: list[str] | None = None) -> ValConfig:
    d = dataclass_defaults(ValConfig)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=d.data, help="dataset yaml")
    p.add_argument(
        "--weights", required=True, help="checkpoint (ours or upstream YOLOv5's), or an exported .onnx / .torchscript"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="inference size, px")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=d.iou_thres, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=d.max_det, help="maximum detections per image")
    p.add_argument("--task", default=d.task, choices=TASKS, help="split to evaluate (train, val, test), or 'speed'")
    p.add_argument("--device", default=d.device, help="cuda device, e.g. 0, or cpu")
    p.add_argument("--workers", type=int, default=d.workers, help="data loader processes")
    p.add_argument("--single-cls", action="store_true", help="treat as a single-class dataset")
    p.add_argument("--verbose", action="store_true", help="report mAP per class")
    p.add_argument("--save-txt", action="store_true", help="save detections as YOLO txt labels")
    p.add_argument("--save-conf", action="store_true", help="add confidences to --save-txt labels")
    p.add_argument("--save-json", action="store_true", help="save a COCO-style predictions.json")
    p.add_argument("--project", default=d.project, help="save to project/name")
    p.add_argument("--name", default=d.name, help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name")
    p.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    p.add_argument("--noplots", action="store_true", help="write no plots")
    return config_from_namespace(ValConfig, p.parse_args(argv))


def main(argv: list[str] | None = None):
    setup_logging()
    return run_val(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
