"""Label new images with a detector: one Pascal VOC XML per image (and optionally YOLO txt).

Examples:
    python tools/auto_label.py --weights best.pt --source new_images/ --conf-thres 0.4
    python tools/auto_label.py --weights best.onnx --source "shots/*.jpg" --classes RBC WBC --save-txt --previews
    python tools/auto_label.py --weights best.pt --source clip.mp4 --vid-stride 10 --save-empty

Then, to train on the result:
    python tools/voc2yolo.py --images new_images --annotations runs/auto_label/exp/Annotations --out datasets/new

The weights may be ours, upstream YOLOv5's, a pruned checkpoint, or an exported .onnx / .torchscript file.
Images without detections get no XML unless --save-empty. Unreadable images are skipped with a warning.
"""

from __future__ import annotations

import argparse

from utils.cli import config_from_namespace, run_main
from utils.log import setup_logging
from utils.runners.auto_label import AutoLabelConfig, AutoLabelResult, run_auto_label
from utils.runners.predict import add_runner_args


def parse_args(argv: list[str] | None = None) -> AutoLabelConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_runner_args(p, AutoLabelConfig)
    return config_from_namespace(AutoLabelConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> AutoLabelResult:
    setup_logging()
    return run_auto_label(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
