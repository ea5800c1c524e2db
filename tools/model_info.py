"""Print a model's summary: the layer table, parameters, gradients, GFLOPs and per-layer output shapes.

    python tools/model_info.py --cfg models/yolov5s-se.yaml
    python tools/model_info.py --cfg yolov5m-ca --nc 3 --imgsz 320
    python tools/model_info.py --weights runs/train/exp/weights/best.pt --imgsz 640 480

``--weights`` reads any checkpoint that ``models.load_model`` reads (ours, pruned ones at their recorded widths,
upstream YOLOv5); ``--cfg`` builds the yaml with random weights. ``--imgsz`` is one size (square) or H W, each
a multiple of the model's largest stride; GFLOPs and output shapes are given at that size.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from utils.cli import add_flags, check_flags, config_from_namespace, flag, run_main

MAX_IMGSZ = 4096  # px; the table is measured by a dry run at this size, so memory grows with its square


@dataclass
class InfoConfig:
    cfg: str | None = flag(None, help="model yaml (path or name in models/)")
    weights: Path | None = flag(None, help="checkpoint")
    nc: int | None = flag(None, low=1, help="class count overriding the yaml's (--cfg only)")
    imgsz: list[int] = flag(factory=lambda: [640], low=1, high=MAX_IMGSZ, help="image size: one (square) or H W")
    verbose: bool = flag(False, help="also list every parameter tensor")

    def __post_init__(self) -> None:
        check_flags(self)
        if (self.cfg is None) == (self.weights is None):
            raise ValueError("give exactly one of --cfg (a model yaml) and --weights (a checkpoint)")
        if self.weights is not None and not Path(self.weights).is_file():
            raise FileNotFoundError(f"--weights {self.weights}: file not found")
        if self.nc is not None and self.weights is not None:
            raise ValueError(f"--nc {self.nc}: only with --cfg (a checkpoint has its classes)")
        if len(self.imgsz) not in (1, 2):
            raise ValueError(f"--imgsz {self.imgsz}: give one size or H W")

    @property
    def size(self) -> int | tuple[int, int]:
        return self.imgsz[0] if len(self.imgsz) == 1 else (self.imgsz[0], self.imgsz[1])


def parse_args(argv: list[str] | None = None) -> InfoConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, InfoConfig)
    return config_from_namespace(InfoConfig, p.parse_args(argv))


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_args(argv)
    if cfg.weights is not None:
        from models.loading import load_model

        model = load_model(cfg.weights)
    else:
        from models.yolo import Model

        model = Model(cfg.cfg, nc=cfg.nc)
    return model.info(img_size=cfg.size, verbose=cfg.verbose, table=True)


if __name__ == "__main__":
    run_main(main)
