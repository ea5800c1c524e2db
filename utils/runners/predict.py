"""What ``detect.py`` and ``tools/auto_label.py`` share: the inference settings, their command-line flags, and a
:class:`Predictor` that turns one loaded image into detections in the original image's pixels."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from utils.boxes import scale_boxes
from utils.cli import dataclass_defaults
from utils.data import LoadImages
from utils.export.backend import load_backend
from utils.nms import non_max_suppression
from utils.torch_utils import select_device


@dataclass
class InferenceConfig:
    """Model, source and NMS settings of one inference run; the runners add their own outputs."""

    weights: str = ""
    source: str = ""
    imgsz: int = 640
    device: str = ""
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 1000
    agnostic_nms: bool = False
    half: bool = False  # FP16, CUDA only (ignored on CPU)
    vid_stride: int = 1
    project: str = "runs/detect"
    name: str = "exp"
    exist_ok: bool = False

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint or exported model to run")
        if not self.source:
            raise ValueError("--source is required: an image, folder, glob, .txt list of paths or video")
        if self.imgsz < 1:
            raise ValueError(f"--imgsz must be a positive number of pixels, got {self.imgsz}")
        for name in ("conf_thres", "iou_thres"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be within [0, 1], got {getattr(self, name)}")
        if self.max_det < 1:
            raise ValueError(f"--max-det must be at least 1, got {self.max_det}")
        if self.vid_stride < 1:
            raise ValueError(f"--vid-stride must be at least 1, got {self.vid_stride}")


def add_inference_args(p: argparse.ArgumentParser, cls: type[InferenceConfig]) -> argparse.ArgumentParser:
    """The flags of :class:`InferenceConfig` other than ``--weights`` and ``--source`` (whose help differs per
    tool), with the defaults of ``cls`` (a subclass may change them)."""
    d = dataclass_defaults(cls)
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="inference size, px")
    p.add_argument("--device", default=d.device, help="cuda device, e.g. 0, or cpu")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=d.iou_thres, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=d.max_det, help="maximum detections per image")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--project", default=d.project, help="save to project/name")
    p.add_argument("--name", default=d.name, help="save to project/name")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name")
    p.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    p.add_argument("--vid-stride", type=int, default=d.vid_stride, help="use every N-th video frame")
    return p


class Predictor:
    """A detector loaded once (checkpoint, ``.onnx`` or ``.torchscript``, fused) with its NMS settings.

    ``predictor(img, img0)`` takes one item of :meth:`images` (``img`` the letterboxed ``[3, h, w]`` uint8 CHW RGB
    array, ``img0`` the original BGR image) and returns ``[n, 6]`` float32 on the CPU: ``x1, y1, x2, y2`` in
    ``img0``'s pixels, confidence, class id.
    """

    def __init__(self, cfg: InferenceConfig, classes: list[int] | None = None) -> None:
        self.cfg, self.classes = cfg, classes
        self.device = select_device(cfg.device)
        self.model = load_backend(cfg.weights, device=self.device, fuse=True)
        self.half = cfg.half and self.device.type == "cuda"
        if self.half:
            self.model.half()
        self.names: list[str] = list(self.model.names)
        self.stride = max(int(self.model.stride.max()), 32)

    def images(self) -> LoadImages:
        """The configured source, letterboxed to ``imgsz`` at the model's stride."""
        return LoadImages(self.cfg.source, img_size=self.cfg.imgsz, stride=self.stride, vid_stride=self.cfg.vid_stride)

    @torch.no_grad()
    def __call__(self, img: np.ndarray, img0: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(img).to(self.device)
        x = (x.half() if self.half else x.float()).unsqueeze(0) / 255
        pred, _ = self.model(x)
        c = self.cfg
        det = non_max_suppression(
            pred.float(), c.conf_thres, c.iou_thres, self.classes, c.agnostic_nms, max_det=c.max_det
        )[0].cpu()
        det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], img0.shape[:2])
        return det
