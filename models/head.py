"""The YOLOv5 detection head and the decoding of its raw outputs."""

from __future__ import annotations

import math

import torch
from torch import nn


class Detect(nn.Module):
    """Per-level 1x1 convolutions that predict ``na`` anchors x ``(5 + nc)`` values per grid cell.

    Raw outputs (training mode, and the second element in eval mode) are one tensor per level, shaped
    ``[B, na, H_i, W_i, 5 + nc]``: ``(tx, ty, tw, th, obj, cls...)`` logits.

    Decoded outputs (eval mode) are ``[B, N, 5 + nc]`` with ``N = sum_i na * H_i * W_i``: box centre and size
    ``(cx, cy, w, h)`` in input-image pixels, then sigmoid objectness and sigmoid class scores. Decoding follows
    YOLOv5 v6.0: ``xy = (2 * sigmoid(t_xy) - 0.5 + cell) * stride``, ``wh = (2 * sigmoid(t_wh))^2 * anchor``.

    ``anchors`` is a buffer ``[nl, na, 2]`` in units of each level's stride (pixels / stride), as upstream stores it.
    ``stride`` is set by the model after a dry run and is not part of the state dict.
    """

    def __init__(self, nc: int, anchors: list[list[float]], ch: list[int]):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        if len(ch) != self.nl:
            raise ValueError(f"Detect: {len(ch)} input layers but {self.nl} anchor levels")
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2))
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self._grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, xs: list[torch.Tensor]):
        """``xs``: one feature map ``[B, C_i, H_i, W_i]`` per level.

        Returns the raw list in training mode, and ``(decoded, raw)`` in eval mode.
        """
        raw = []
        for i, x in enumerate(xs):
            y = self.m[i](x)
            b, _, h, w = y.shape
            raw.append(y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous())
        if self.training:
            return raw
        return self.decode(raw), raw

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """Turn raw per-level outputs into ``[B, N, 5 + nc]`` boxes (xywh pixels) and sigmoid scores."""
        out = []
        for i, p in enumerate(raw):
            b, _, h, w, _ = p.shape
            cells, anchor_px = self._grid(i, h, w, p.device, p.dtype)
            y = p.sigmoid()
            xy = (y[..., 0:2] * 2 - 0.5 + cells) * self.stride[i]
            wh = (y[..., 2:4] * 2) ** 2 * anchor_px
            out.append(torch.cat((xy, wh, y[..., 4:]), dim=-1).view(b, -1, self.no))
        return torch.cat(out, dim=1)

    def _grid(self, i: int, h: int, w: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell offsets ``[1, 1, h, w, 2]`` (x, y) and anchor sizes in pixels ``[1, na, 1, 1, 2]`` for level ``i``."""
        anchor_px = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2).to(dtype)
        key = (i, h, w, device, dtype)
        cells = self._grids.get(key)
        if cells is None:
            ys, xs = torch.meshgrid(
                torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
            )
            cells = torch.stack((xs, ys), dim=-1).view(1, 1, h, w, 2)
            self._grids[key] = cells
        return cells, anchor_px

    def initialize_biases(self, class_frequencies: torch.Tensor | None = None) -> None:
        """Objectness and class bias priors, so that early training is not swamped by false positives.

        Objectness starts at the logit of about 8 objects per 640 x 640 image spread over a level's cells
        (``log(8 / (640 / stride)^2)``); classes at ``log(0.6 / (nc - 0.99))``, or at the log of the given
        per-class frequencies.
        """
        with torch.no_grad():
            for conv, s in zip(self.m, self.stride.tolist(), strict=True):
                bias = conv.bias.view(self.na, -1)
                bias[:, 4] += math.log(8 / (640 / s) ** 2)
                if class_frequencies is None:
                    bias[:, 5:] += math.log(0.6 / (self.nc - 0.99))
                else:
                    bias[:, 5:] += torch.log(class_frequencies / class_frequencies.sum()).to(bias)

    def _apply(self, fn, recurse=True):
        self._grids = {}
        return super()._apply(fn, recurse)
