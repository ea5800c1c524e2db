"""Compress a detector in one command: evaluate the teacher (or train it first), prune it and recover it by
distillation, distil a small student and train the same student alone for comparison, evaluate all of them on the
same split, export the smallest (of equally small, the most accurate) to ONNX, quantize it to INT8, and report.

    python compress.py                                   # the bundled BCCD and teacher, settings of data/pipeline.yaml
    python compress.py --data data/mydata.yaml --teacher runs/train/exp/weights/best.pt --imgsz 640 --epochs 100
    python compress.py --data data/mydata.yaml --teacher models/yolov5s.yaml   # train the teacher first
    python compress.py --settings my_pipeline.yaml --name bigger

Every stage prints the command that runs it by hand; a stage whose output exists is skipped, so running the
same command again continues an interrupted pipeline. The report is <project>/<name>/report.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import add_flags, run_main
from utils.log import setup_logging
from utils.pipeline import PipelineConfig, load_pipeline_config, run_pipeline
from utils.pipeline.config import COMMAND_LINE

DEFAULT_SETTINGS = "data/pipeline.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default=DEFAULT_SETTINGS, help="pipeline settings yaml")
    add_flags(p.add_argument_group("overriding the settings"), PipelineConfig, only=COMMAND_LINE, defaults=False)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    setup_logging()
    ns = parse_args(argv)
    settings = ns.settings if ns.settings != DEFAULT_SETTINGS or Path(ns.settings).is_file() else None
    cfg = load_pipeline_config(
        settings, data=ns.data, teacher=ns.teacher, epochs=ns.epochs, kd_epochs=ns.epochs, imgsz=ns.imgsz,
        device=ns.device, project=ns.project, name=ns.name,
    )  # fmt: skip
    return run_pipeline(cfg)


if __name__ == "__main__":
    run_main(main)
