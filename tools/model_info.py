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
from dataclasses import dataclass, field
from pathlib import Path

from utils.cli import run_main


@dataclass
class InfoConfig:
    cfg: str | None = None
    weights: Path | None = None
    nc: int | None = None
    imgsz: list[int] = field(default_factory=lambda: [640])
    verbose: bool = False

    def __post_init__(self) -> None:
        if (self.cfg is None) == (self.weights is None):
            raise ValueError("give exactly one of --cfg (a model yaml) and --weights (a checkpoint)")
        if self.weights is not None and not Path(self.weights).is_file():
            raise FileNotFoundError(f"--weights {self.weights}: file not found")
        if self.nc is not None and (self.weights is not None or self.nc < 1):
            raise ValueError(f"--nc {self.nc}: a positive class count, and only with --cfg")
        if len(self.imgsz) not in (1, 2) or any(s < 1 for s in self.imgsz):
            raise ValueError(f"--imgsz {self.imgsz}: give one size or H W, each positive")

    @property
    def size(self) -> int | tuple[int, int]:
        return self.imgsz[0] if len(self.imgsz) == 1 else (self.imgsz[0], self.imgsz[1])


def parse_args(argv: list[str] | None = None) -> InfoConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default=None, help="model yaml (path or name in models/)")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint")
    p.add_argument("--nc", type=int, default=None, help="class count overriding the yaml's (--cfg only)")
    p.add_argument("--imgsz", type=int, nargs="+", default=[640], help="image size: one (square) or H W")
    p.add_argument("--verbose", action="store_true", help="also list every parameter tensor")
    a = p.parse_args(argv)
    return InfoConfig(cfg=a.cfg, weights=a.weights, nc=a.nc, imgsz=a.imgsz, verbose=a.verbose)


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
