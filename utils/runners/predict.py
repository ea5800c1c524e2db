"""What ``detect.py`` and ``tools/auto_label.py`` share: the inference settings, their command-line flags, and a
:class:`Predictor` that turns one loaded image into detections in the original image's pixels."""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from utils.boxes import scale_boxes
from utils.cli import add_flags, check_flags, flag
from utils.data import LoadImages
from utils.export.backend import load_backend
from utils.nms import non_max_suppression
from utils.torch_utils import select_device

LOGGER = logging.getLogger(__name__)


@dataclass
class InferenceConfig:
    """Model, source and NMS settings of one inference run; the runners add their own outputs and may declare
    ``weights``, ``source`` or a default again with :func:`utils.cli.reflag`."""

    weights: str = flag("", required=True, help="checkpoint or exported .onnx / .torchscript model to run")
    source: str = flag("", help="image, folder, glob, .txt list of paths, or video")
    imgsz: int = flag(640, low=1, aliases=("--img", "--img-size"), help="inference size, px")
    device: str = flag("", help="cuda device, e.g. 0, or cpu")
    conf_thres: float = flag(0.25, low=0, high=1, help="confidence threshold")
    iou_thres: float = flag(0.45, low=0, high=1, help="NMS IoU threshold")
    max_det: int = flag(1000, low=1, help="maximum detections per image")
    agnostic_nms: bool = flag(False, help="class-agnostic NMS")
    project: str = flag("runs/detect", help="save to project/name")
    name: str = flag("exp", help="save to project/name")
    exist_ok: bool = flag(False, help="reuse an existing project/name")
    half: bool = flag(False, help="FP16 inference (CUDA only)")  # ignored on CPU
    vid_stride: int = flag(1, low=1, help="use every N-th video frame")

    def __post_init__(self) -> None:
        check_flags(self)
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint or exported model to run")
        if not self.source:
            raise ValueError("--source is required: an image, folder, glob, .txt list of paths or video")


_INFERENCE_FIELDS = tuple(f.name for f in fields(InferenceConfig))
SHARED_FLAGS = tuple(n for n in _INFERENCE_FIELDS if n not in ("weights", "source"))


def add_inference_args(p: argparse.ArgumentParser, cls: type[InferenceConfig]) -> argparse.ArgumentParser:
    """The flags of :class:`InferenceConfig` other than ``--weights`` and ``--source`` (whose help differs per
    tool), with the defaults of ``cls`` (a subclass may change them)."""
    add_flags(p, cls, only=SHARED_FLAGS)
    return p


def add_runner_args(p: argparse.ArgumentParser, cls: type[InferenceConfig]) -> argparse.ArgumentParser:
    """All flags of the runner config ``cls``: its ``--weights`` and ``--source``, the shared inference flags,
    then its own."""
    add_flags(p, cls, only=("weights", "source"))
    add_inference_args(p, cls)
    add_flags(p, cls, only=[f.name for f in fields(cls) if f.name not in _INFERENCE_FIELDS])
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
        self.fixed_size = fixed_input_size(self.model)
        self.imgsz = inference_size(cfg.imgsz, self.stride, self.fixed_size, cfg.weights)

    def images(self) -> LoadImages:
        """The configured source, letterboxed to :attr:`imgsz` at the model's stride (padded to the square
        ``imgsz`` for a model exported at a fixed size)."""
        return LoadImages(
            self.cfg.source, img_size=self.imgsz, stride=self.stride, auto=self.fixed_size is None,
            vid_stride=self.cfg.vid_stride,
        )  # fmt: skip

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


def fixed_input_size(model: torch.nn.Module) -> tuple[int, int] | None:
    """``(height, width)`` of an ONNX model whose input has a fixed spatial size; None when it is free (as
    ``export.py`` writes them) or the model is not an ONNX file."""
    session = getattr(getattr(model, "_runner", None), "session", None)
    if session is None:
        return None
    shape = session.get_inputs()[0].shape
    h, w = (shape[2], shape[3]) if len(shape) == 4 else (None, None)
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


def inference_size(imgsz: int, stride: int, fixed: tuple[int, int] | None, weights: str | Path) -> int:
    """The network input size for ``--imgsz``: rounded up to a multiple of the model's ``stride`` (with a warning,
    as train.py does); for a model exported at a ``fixed`` size, that size, or ``ValueError`` naming both."""
    if fixed is not None:
        h, w = fixed
        if h != w or imgsz != h:
            raise ValueError(
                f"--imgsz {imgsz}: {weights} was exported for a fixed input of {h}x{w} pixels; use --imgsz {h} "
                "(square inputs only), or export the model again"
            )
        return imgsz
    if imgsz % stride:
        rounded = math.ceil(imgsz / stride) * stride
        LOGGER.warning("--imgsz %d is not a multiple of the model's stride %d; using %d", imgsz, stride, rounded)
        return rounded
    return imgsz
