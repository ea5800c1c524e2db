"""Building blocks of the YOLOv5 v6.0 architecture.

Attribute names (``conv``, ``bn``, ``act``, ``cv1``, ``cv2``, ``cv3``, ``m``, ``add``) follow upstream YOLOv5 so that
state-dict keys are interchangeable with upstream checkpoints. All blocks take and return ``[B, C, H, W]`` tensors
(``Concat`` takes a list of them).
"""

from __future__ import annotations

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(kernel: int, padding: int | None = None) -> int:
    """'Same' padding for an odd kernel at stride 1 when ``padding`` is not given."""
    return kernel // 2 if padding is None else padding


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an inference-mode BatchNorm into the preceding convolution; returns a new Conv2d with a bias.

    ``bn(conv(x)) = gamma * (W*x + b - mean) / sqrt(var + eps) + beta``, so the fused kernel is
    ``W * gamma / sqrt(var + eps)`` and the fused bias ``(b - mean) * gamma / sqrt(var + eps) + beta``.
    """
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    ).to(device=conv.weight.device)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    fused.requires_grad_(False)
    return fused.to(dtype=conv.weight.dtype)


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU. After :meth:`fuse`, ``bn`` is None and ``conv`` has a bias."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    def fuse(self) -> None:
        """Fold ``bn`` into ``conv`` in place (inference only)."""
        if self.bn is not None:
            self.conv = fuse_conv_and_bn(self.conv, self.bn)
            self.bn = None


class Bottleneck(nn.Module):
    """1x1 Conv (to ``c2 * e`` channels) -> 3x3 Conv, plus the input when ``shortcut`` and ``c1 == c2``."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden, c2, 3, 1, g=g)
        self.add = bool(shortcut and c1 == c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block with three convolutions: ``cv3(cat(m(cv1(x)), cv2(x)))`` where ``m`` is ``n`` Bottlenecks."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast form: three chained k x k max-pools, concatenated with their input."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        p1 = self.m(x)
        p2 = self.m(p1)
        return self.cv2(torch.cat((x, p1, p2, self.m(p2)), dim=1))


class Concat(nn.Module):
    """Concatenate a list of tensors along ``dimension`` (channels by default)."""

    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        try:
            return torch.cat(xs, dim=self.d)
        except RuntimeError as e:
            # name the layer and its inputs (``i`` and ``f`` are set by the model builder)
            shapes = [tuple(x.shape) for x in xs]
            where = f"layer {self.i} (Concat of layers {self.f})" if hasattr(self, "i") else "Concat"
            raise ValueError(f"{where}: inputs of shapes {shapes} cannot be joined along dim {self.d}: {e}") from e
