"""The YOLOv5 model: a stack of layers built from a yaml description, ending in :class:`Detect`."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

from models.common import Conv
from models.config import ModelConfigError, build_layers, load_model_yaml, validate_model_dict
from models.head import Detect
from models.resize import apply_channels, conv_channels

LOGGER = logging.getLogger(__name__)

_STRIDE_PROBE = 256  # input size of the dry run that measures the strides


class Model(nn.Module):
    """YOLOv5 detection model built from a yaml file, a model name or a parsed dict.

    ``Model(cfg, ch=3, nc=None, anchors=None)`` as upstream: ``nc`` / ``anchors`` override the yaml's values.

    ``forward(x)`` takes ``[B, ch, H, W]`` images (H, W multiples of the largest stride, values 0..1) and returns
    what :class:`Detect` returns: the raw per-level list in training mode, ``(decoded, raw)`` in eval mode.
    Loss and post-processing (NMS) live outside the model.

    Attributes: ``yaml`` (the description, with overrides applied), ``model`` (``nn.Sequential`` of layers, each
    carrying ``i`` (index), ``f`` (input layer(s)), ``type`` (yaml module name), ``n`` (repeats), ``args``
    (constructor arguments at the yaml's widths) and ``np`` (parameter count)),
    ``save`` (indices of layers whose outputs are kept for later rows), ``stride`` (``[nl]`` tensor), ``names``.
    """

    def __init__(
        self,
        cfg: str | Path | dict = "yolov5s.yaml",
        ch: int = 3,
        nc: int | None = None,
        anchors: list | None = None,
        channels: dict[str, list[int]] | None = None,
        source: str | None = None,
    ):
        super().__init__()
        self.yaml, source = load_model_yaml(cfg, source)
        self.yaml_source = source
        self.yaml.setdefault("ch", ch)
        ch = self.yaml["ch"]
        if nc is not None and nc != self.yaml.get("nc"):
            LOGGER.info("Overriding nc=%s of %s with nc=%s", self.yaml.get("nc"), source, nc)
            self.yaml["nc"] = nc
        if anchors is not None:
            LOGGER.info("Overriding the anchors of %s", source)
            self.yaml["anchors"] = anchors
        validate_model_dict(self.yaml, source)

        layers, self.save = build_layers(self.yaml, ch, source)
        for layer in layers:
            m = layer.module
            m.i, m.f, m.type = layer.index, layer.source, layer.type_name
            m.n, m.args = layer.number, layer.args
            m.np = sum(p.numel() for p in m.parameters())
        self.model = nn.Sequential(*(layer.module for layer in layers))
        self.names = [str(i) for i in range(self.yaml["nc"])]

        detect = self.detect
        try:
            detect.stride = self._measure_strides(ch)
        except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError) as e:
            probe = f"dry run at {_STRIDE_PROBE} px"
            raise ModelConfigError(f"{source}: the layers do not fit together ({probe}): {e}") from e
        _check_anchor_order(detect)
        detect.anchors /= detect.stride.view(-1, 1, 1)
        detect.initialize_biases()
        if channels:
            apply_channels(self, channels)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor):
        """Run every layer on ``x`` ``[B, ch, H, W]``; returns Detect's output (see :class:`models.head.Detect`)."""
        kept: list[torch.Tensor | None] = []
        for m in self.model:
            if m.f != -1:
                x = kept[m.f] if isinstance(m.f, int) else [x if j == -1 else kept[j] for j in m.f]
            x = m(x)
            kept.append(x if m.i in self.save else None)
        return x

    # --------------------------------------------------------------- properties
    @property
    def detect(self) -> Detect:
        """The detection head (the last layer)."""
        return self.model[-1]

    @property
    def stride(self) -> torch.Tensor:
        return self.detect.stride

    @property
    def nc(self) -> int:
        return self.detect.nc

    def arch(self) -> dict:
        """Plain-data description that rebuilds this model exactly: the yaml and every conv/BN channel count."""
        return {"yaml": copy.deepcopy(self.yaml), "channels": conv_channels(self)}

    @classmethod
    def from_arch(cls, arch: dict, source: str | None = None) -> Model:
        """Build a model (random weights) from :meth:`arch`'s description, at its recorded (e.g. pruned) widths.

        ``source`` names the file the description came from in error messages."""
        yaml_dict = arch["yaml"]
        return cls(yaml_dict, ch=yaml_dict.get("ch", 3), channels=arch.get("channels"), source=source)

    # ----------------------------------------------------------------- helpers
    def _measure_strides(self, ch: int) -> torch.Tensor:
        was_training = self.training
        self.train()
        with torch.no_grad():
            raw = self.forward(torch.zeros(1, ch, _STRIDE_PROBE, _STRIDE_PROBE))
        self.train(was_training)
        return torch.tensor([_STRIDE_PROBE / r.shape[-2] for r in raw], dtype=torch.float32)

    def fuse(self) -> Model:
        """Fold every BatchNorm into its convolution (in place; inference only). Returns ``self``."""
        for m in self.modules():
            if isinstance(m, Conv):
                m.fuse()
        return self

    def is_fused(self) -> bool:
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())

    def info(self, img_size: int | tuple[int, int] = 640, verbose: bool = False, table: bool = False) -> dict:
        """Layers, parameters, gradients and GFLOPs at ``img_size``; logs one summary line and returns it.

        With ``table``, also logs the per-layer table of :mod:`models.summary` (index, from, repeats, parameters,
        module, arguments, output shape at ``img_size``) and returns its rows under ``"rows"``. With ``verbose``,
        logs every parameter tensor.
        """
        from models.summary import format_rows, layer_rows
        from utils.torch_utils import model_info

        out = {}
        if table:
            out["rows"] = layer_rows(self, img_size)
            LOGGER.info("%s", format_rows(out["rows"]))
        return {**model_info(self, img_size=img_size, verbose=verbose), **out}


def _check_anchor_order(detect: Detect) -> None:
    """Reverse the anchor levels if their areas run opposite to the strides (a yaml written largest-first)."""
    area = detect.anchors.prod(-1).mean(-1).view(-1)
    d_area, d_stride = area[-1] - area[0], detect.stride[-1] - detect.stride[0]
    if d_area and d_stride and d_area.sign() != d_stride.sign():
        LOGGER.info("Reversing anchor order to match the strides")
        detect.anchors[:] = detect.anchors.flip(0)


DetectionModel = Model  # the name upstream YOLOv5 v7.0 uses
