"""Export a checkpoint (ours, upstream YOLOv5's, or a pruned one) to TorchScript and ONNX.

    python export.py --weights runs/train/exp/weights/best.pt --include torchscript onnx
    python export.py --weights best.pt --include onnx --dynamic --simplify
    python export.py --weights best.pt --include onnx --half --device 0

Files are written next to the weights (best.onnx, best.torchscript). Each takes [B, 3, H, W] RGB images 0..1 and
returns the decoded predictions [B, N, 5 + nc] (cx, cy, w, h in pixels, objectness, class scores) before NMS;
image height and width are free, the batch is free with --dynamic. After writing, each file is run with
onnxruntime (or TorchScript) and compared with PyTorch; both latencies are printed. val.py, detect.py and
tools/auto_label.py accept the files as --weights.
"""

from __future__ import annotations

import argparse
import sys

from utils.cli import config_from_namespace, dataclass_defaults, run_main
from utils.export import FORMATS, ExportConfig, ExportResult, run_export
from utils.log import setup_logging


def parse_args(argv: list[str] | None = None) -> ExportConfig:
    d = dataclass_defaults(ExportConfig)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint to export: ours, upstream YOLOv5's, or pruned")
    p.add_argument("--include", nargs="+", default=d.include, help=f"formats: {' '.join(FORMATS)}")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="example input size, px")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="example batch size")
    p.add_argument("--device", default=d.device, help="cpu, or a cuda device such as 0")
    p.add_argument("--half", action="store_true", help="fp16 weights and inputs (needs a CUDA --device)")
    p.add_argument("--dynamic", action="store_true", help="free batch size (height and width are always free)")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX graph (needs onnx-simplifier)")
    p.add_argument("--opset", type=int, default=d.opset, help="ONNX opset version (17 or later)")
    p.add_argument("--tolerance", type=float, default=d.tolerance, help="largest allowed output difference")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the comparison with PyTorch")
    return config_from_namespace(ExportConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> ExportResult:
    setup_logging()
    result = run_export(parse_args(argv))
    if not result.ok:
        sys.exit(1)
    return result


if __name__ == "__main__":
    run_main(main)
