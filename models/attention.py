"""Attention blocks that re-weight a feature map without changing its shape: SE, CBAM and coordinate attention.

Every block takes ``[B, C, H, W]`` and returns ``[B, C, H, W]``. In a model yaml a block's row gives only its own
arguments (the reduction ratio); the parser passes the input channel count ``C`` as the first constructor argument,
and the block's output has the same ``C``, so rows after it read the width they would read without it.

The blocks are built only from ``nn.Conv2d`` (a 1x1 convolution plays the part of a fully connected layer),
:class:`~models.common.Conv` where the paper has a batch norm, activations, and pooling written as ``torch.mean`` /
``torch.amax`` over tensor dimensions. That keeps three things working: the per-layer channel record of
:mod:`models.resize` (conv and BN sizes) describes a pruned block fully, torch-pruning's dependency graph can trace
and shrink the blocks, and they export to ONNX with standard operators.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import Conv

#: The reduced (bottleneck) width never drops below this, so narrow models (width multiple 0.25) keep a usable gate.
MIN_HIDDEN = 8


def hidden_width(channels: int, reduction: int, minimum: int = MIN_HIDDEN) -> int:
    """Width of a block's bottleneck: ``channels // reduction``, but at least ``minimum``."""
    if not isinstance(reduction, int) or isinstance(reduction, bool) or reduction < 1:
        raise ValueError(f"reduction ratio must be a positive int, got {reduction!r}")
    if channels < 1:
        raise ValueError(f"channel count must be positive, got {channels}")
    return max(channels // reduction, minimum)


class SE(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

    ``fc1`` maps ``C -> hidden_width(C, r)`` and ``fc2`` back to ``C``; both are 1x1 convolutions with bias acting on
    the ``[B, C, 1, 1]`` channel descriptor.
    """

    def __init__(self, c1: int, r: int = 16):
        super().__init__()
        c_ = hidden_width(c1, r)
        self.fc1 = nn.Conv2d(c1, c_, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(c_, c1, 1)
        self.gate = nn.Sigmoid()

    def mlp(self, w: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(w)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.mlp(x.mean(dim=(2, 3), keepdim=True)))  # descriptor [B, C, 1, 1]


class ChannelGate(SE):
    """CBAM's channel attention: SE's MLP shared by the average- and max-pooled descriptors, summed, sigmoid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        mx = x.amax(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        return x * self.gate(self.mlp(avg) + self.mlp(mx))


class SpatialGate(nn.Module):
    """CBAM's spatial attention: a ``k x k`` convolution over the channel-wise mean and max maps ``[B, 2, H, W]``."""

    def __init__(self, k: int = 7):
        super().__init__()
        if k not in (3, 7):
            raise ValueError(f"CBAM spatial kernel must be 3 or 7, got {k!r}")
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        desc = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)  # [B, 2, H, W]
        return x * self.gate(self.conv(desc))


class CBAM(nn.Module):
    """Convolutional block attention module (Woo et al. 2018): channel attention, then spatial attention.

    Args: ``c1`` input (= output) channels, ``r`` reduction ratio of the channel MLP, ``k`` spatial kernel (3 or 7).
    """

    def __init__(self, c1: int, r: int = 16, k: int = 7):
        super().__init__()
        self.ca = ChannelGate(c1, r)
        self.sa = SpatialGate(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sa(self.ca(x))


class CoordAtt(nn.Module):
    """Coordinate attention (Hou et al. 2021): direction-aware gates along the height and the width.

    The map is averaged along W (giving ``[B, C, H, 1]``) and along H (``[B, C, W, 1]`` after a transpose); the two
    are joined along the spatial axis, pass one shared 1x1 conv + BN + h-swish to ``hidden_width(C, r)`` channels,
    are split again, and each is mapped back to ``C`` channels by its own 1x1 conv and a sigmoid. Output:
    ``x * a_h * a_w`` with ``a_h`` of shape ``[B, C, H, 1]`` and ``a_w`` of shape ``[B, C, 1, W]``.
    """

    def __init__(self, c1: int, r: int = 32):
        super().__init__()
        c_ = hidden_width(c1, r)
        self.cv1 = Conv(c1, c_, 1, act=False)  # conv + BN; fused by Model.fuse like every Conv
        self.act = nn.Hardswish(inplace=True)
        self.conv_h = nn.Conv2d(c_, c1, 1)
        self.conv_w = nn.Conv2d(c_, c1, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        x_h = x.mean(dim=3, keepdim=True)  # [B, C, H, 1]
        x_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # [B, C, W, 1]
        y = self.act(self.cv1(torch.cat((x_h, x_w), dim=2)))  # [B, c_, H + W, 1]
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = self.gate(self.conv_h(y_h))  # [B, C, H, 1]
        a_w = self.gate(self.conv_w(y_w.transpose(2, 3)))  # [B, C, 1, W]
        return x * a_h * a_w


#: The attention blocks by their yaml names.
ATTENTION_BLOCKS: dict[str, type[nn.Module]] = {"SE": SE, "CBAM": CBAM, "CoordAtt": CoordAtt}
