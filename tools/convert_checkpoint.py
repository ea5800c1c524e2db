"""Convert a YOLOv5 checkpoint (upstream pickle or bare state dict) to this project's plain-data format.

    python tools/convert_checkpoint.py --weights yolov5s.pt --out yolov5s-converted.pt
    python tools/convert_checkpoint.py --weights state_dict.pt --cfg models/yolov5s.yaml --out model.pt

The output loads with ``torch.load(..., weights_only=True)`` and with ``models.load_model``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from models.loading import convert_checkpoint
from utils.cli import add_flags, config_from_namespace, flag, run_main


@dataclass
class ConvertConfig:
    weights: Path = flag(required=True, help="checkpoint to convert")
    out: Path = flag(required=True, help="where to write the converted checkpoint")
    cfg: Path | None = flag(None, help="model yaml, needed only for a bare state dict")
    fp32: bool = flag(False, help="keep fp32 weights (default: fp16, as upstream stores them)")
    pruned: bool = flag(
        False,
        help="the bare state dict is a pruned model of --cfg: take its widths from the tensors (default: the "
        "tensors must have the yaml's shapes)",
    )


def parse_args(argv: list[str] | None = None) -> ConvertConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, ConvertConfig)
    return config_from_namespace(ConvertConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_args(argv)
    out = convert_checkpoint(cfg.weights, cfg.out, cfg=cfg.cfg, half=not cfg.fp32, pruned=cfg.pruned)
    logging.getLogger(__name__).info("Wrote %s", out)
    return out


if __name__ == "__main__":
    run_main(main)
