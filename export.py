"""Export a checkpoint (ours, upstream YOLOv5's, or a pruned one) to TorchScript and ONNX.

    python export.py --weights runs/train/exp/weights/best.pt --include torchscript onnx
    python export.py --weights best.pt --include onnx --dynamic --simplify
    python export.py --weights best.pt --include onnx --half --device 0
    python export.py --weights best.pt --include onnx --int8 --data data/bccd.yaml --out-dir exports/
    python export.py --weights best.onnx --int8 --data data/bccd.yaml     # quantize an exported file

Files are written next to the weights (best.onnx, best.torchscript) or into --out-dir, each to a temporary name
renamed when complete. --int8 also writes best-int8.onnx, quantized for the CPU with onnxruntime and calibrated on
--calib-images images of the data's train split (the head's decode stays float); its detections are compared with
the float file's on the val split. Each takes [B, 3, H, W] RGB images 0..1 and
returns the decoded predictions [B, N, 5 + nc] (cx, cy, w, h in pixels, objectness, class scores) before NMS;
image height and width are free, the batch is free with --dynamic. After writing, each file is run with
onnxruntime (or TorchScript) and compared with PyTorch; both latencies are printed. val.py, detect.py and
tools/auto_label.py accept the files as --weights.
"""

from __future__ import annotations

import argparse
import sys

from utils.cli import add_flags, config_from_namespace, run_main
from utils.export import ExportConfig, ExportResult, run_export
from utils.log import setup_logging


def parse_args(argv: list[str] | None = None) -> ExportConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, ExportConfig)
    return config_from_namespace(ExportConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> ExportResult:
    setup_logging()
    result = run_export(parse_args(argv))
    if not result.ok:
        sys.exit(1)
    return result


if __name__ == "__main__":
    run_main(main)
