"""Feature (intermediate-layer) distillation between a student and a teacher network.

Each loss compares one layer of the student with the matching layer of the teacher, both feature maps
``[B, C, H, W]`` with the same batch and spatial size, and returns a scalar tensor that is a mean over the batch
(it does not grow with the batch size). The teacher's map is detached inside; both maps are cast to float32
(float64 stays float64) so that fp16 inputs, e.g. from a teacher run in half precision or a student under autocast,
are compared at full precision.

- :func:`fitnet_loss` (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015): squared error after an
  :class:`Adapter` has mapped the student's channels to the teacher's.
- :func:`attention_loss` (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017): compares
  normalised spatial attention maps; channel counts may differ, so no adapter is needed.
- :func:`cwd_loss` (Shu et al., "Channel-wise Knowledge Distillation for Dense Prediction", ICCV 2021): per
  channel, a softmax over the spatial positions; KL divergence from the teacher's distribution to the student's.

``FEATURE_LOSSES`` maps ``"fitnet"``, ``"at"`` and ``"cwd"`` to these functions and ``NEEDS_ADAPTER`` says which of
them expect the student's map to have passed through an :class:`Adapter` first.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FEATURE_LOSSES",
    "NEEDS_ADAPTER",
    "Adapter",
    "attention_loss",
    "attention_map",
    "cwd_loss",
    "fitnet_loss",
    "grad_in_layout",
]


def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32)) if x.is_floating_point() else x.float()


def _check_4d(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = _shape(x) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a feature map [B, C, H, W], got {shape}")


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class _GradInLayout(torch.autograd.Function):
    """Identity whose backward hands the gradient back in the memory layout of its input.

    The gradient of a mean over a feature map comes back in the default (NCHW) layout even when the map is
    channels-last, as the engine's CPU step makes it; BatchNorm's backward on a channels-last input with an NCHW
    gradient then takes a slow path (10-20x: 167 ms against 10 ms for a ``[16, 128, 40, 40]`` map on one core).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.channels_last = _is_channels_last(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last) if ctx.channels_last else grad


def grad_in_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged; its gradient comes back channels-last when ``x`` is channels-last (:class:`_GradInLayout`)."""
    return _GradInLayout.apply(x) if x.requires_grad else x


class _SquaredError(torch.autograd.Function):
    """``mean((s - t)^2)`` over all elements of two ``[B, C, H, W]`` maps, ``t`` constant.

    The same value and gradient as the composition of ``sub``, ``pow`` and ``mean``, in fewer passes over the
    maps: the difference is kept from the forward pass and the gradient ``2 (s - t) / n`` is one multiplication,
    in ``s``'s memory layout (on the CPU the whole loss is memory-bound: a ``[16, 128, 40, 40]`` map is 13 MB).
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        d = s - t
        ctx.save_for_backward(d)
        return torch.linalg.vector_norm(d).square() / d.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (d,) = ctx.saved_tensors
        return d * (grad * (2.0 / d.numel())), None


def _spatial_exp(x: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unnormalised spatial softmax of a ``[B, C, H, W]`` map at temperature ``T``, read as ``[B, H*W, C]``.

    Returns ``v`` (the map as ``[B, H*W, C]``: a view of a channels-last map, the engine's layout; a copy of any
    other), ``e = exp((v - top) / T)``, its sum over the positions ``total [B, 1, C]`` and ``top [B, 1, C]`` (the
    largest value of each channel), so that ``softmax = e / total`` and ``log-sum-exp(v / T) = top / T + log(total)``.
    Written as max, subtract, scale, exp and sum, each a vectorised pass (torch's softmax over a dimension that is
    not the last one is not vectorised).
    """
    b, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).reshape(b, h * w, c).contiguous()
    top = v.amax(dim=1, keepdim=True)
    e = torch.sub(v, top).mul_(1.0 / temperature).exp_()
    return v, e, e.sum(dim=1, keepdim=True), top


class _ChannelKL(torch.autograd.Function):
    """``T^2 / (B * C) * sum_{b, c} KL(softmax_hw(t / T) || softmax_hw(s / T))`` for ``[B, C, H, W]`` maps.

    With ``q = softmax(x / T)`` over the positions and ``lse`` its log-sum-exp, one channel's divergence is
    ``sum_hw q_t (t - s) / T - lse_t + lse_s``: two dot products and per-channel terms, no ``log q`` map. The
    gradient ``(q_s - q_t) * T / (B * C)`` is formed in the forward pass, so the backward pass is one
    multiplication, in the student's memory layout. The three maps of a yolov5s teacher, forward and backward,
    2 threads: 25 ms at batch 16, 116 ms at batch 64 (a log-softmax form: 43 and 160 ms).
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
        b, c, h, w = s.shape
        v_s, e_s, total_s, top_s = _spatial_exp(s, temperature)
        v_t, q_t, total_t, top_t = _spatial_exp(t, temperature)
        q_t.div_(total_t)
        cross = torch.dot(q_t.view(-1), v_t.view(-1)) - torch.dot(q_t.view(-1), v_s.view(-1))
        lse_gap = (top_t - top_s) / temperature + total_t.log() - total_s.log()
        kl = cross / temperature - lse_gap.sum()
        scale = temperature / (b * c)
        grad = e_s.div_(total_s / scale).sub_(q_t, alpha=scale).view(b, h, w, c).permute(0, 3, 1, 2)
        ctx.save_for_backward(grad if _is_channels_last(s) else grad.contiguous())
        return kl * (temperature * scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (g,) = ctx.saved_tensors
        return g * grad, None, None


def _same_shape(s: torch.Tensor, t: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that student and teacher maps are both ``[B, C, H, W]`` of one shape; return them as floats, the
    student's with its gradient in its own memory layout (:func:`grad_in_layout`)."""
    _check_4d(s, "student feature map")
    _check_4d(t, "teacher feature map")
    if s.shape != t.shape:
        raise ValueError(
            f"{what}: student feature shape {_shape(s)} does not match teacher feature shape {_shape(t)} "
            "(map the student's channels with an Adapter; batch and spatial sizes must already agree)"
        )
    return grad_in_layout(_as_float(s)), _as_float(t.detach()).to(s.device)


class Adapter(nn.Module):
    """A 1x1 convolution (no bias) and BatchNorm mapping student channels to teacher channels.

    Input ``[B, c_student, H, W]``, output ``[B, c_teacher, H, W]``. The adapter is trained together with the
    student (its parameters belong in the optimizer and in the training checkpoint) but is never part of the
    deployable model: it exists only to make the student's features comparable with the teacher's.

    Initialisation: the convolution weight is Kaiming-normal for a linear layer (variance ``1 / c_student``, so the
    output keeps the input's scale); BatchNorm starts as the identity affine map (weight 1, bias 0).
    """

    def __init__(self, c_student: int, c_teacher: int):
        super().__init__()
        for name, c in (("c_student", c_student), ("c_teacher", c_teacher)):
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"Adapter: {name} must be a positive int, got {c!r}")
        self.c_student, self.c_teacher = c_student, c_teacher
        self.conv = nn.Conv2d(c_student, c_teacher, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(c_teacher)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="linear")
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, c_student, H, W]`` -> ``[B, c_teacher, H, W]``."""
        if x.dim() != 4 or x.shape[1] != self.c_student:
            raise ValueError(f"Adapter expects [B, {self.c_student}, H, W], got {_shape(x)}")
        return self.bn(self.conv(x))

    def extra_repr(self) -> str:
        return f"c_student={self.c_student}, c_teacher={self.c_teacher}"


def fitnet_loss(s_adapted: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """FitNet hint loss (Romero et al. 2015): ``mean((s - t)^2)`` over all ``B * C * H * W`` elements.

    Args:
        s_adapted: the student's map after its :class:`Adapter`, ``[B, C, H, W]``.
        t: the teacher's map ``[B, C, H, W]`` (detached inside).

    Returns:
        A scalar tensor, 0 when the maps are equal.

    Raises:
        ValueError: the shapes differ (both are named).
    """
    s, t = _same_shape(s_adapted, t, "fitnet_loss")
    return _SquaredError.apply(s, t)


def attention_map(x: torch.Tensor) -> torch.Tensor:
    """Spatial attention map (Zagoruyko & Komodakis 2017): ``normalize(mean_c(x^2).flatten(1))``.

    Args:
        x: a feature map ``[B, C, H, W]``.

    Returns:
        ``[B, H * W]``, float32 (float64 for float64 input), each row of unit L2 norm (an all-zero map stays 0).
    """
    _check_4d(x, "attention_map input")
    return F.normalize(_as_float(x).pow(2).mean(dim=1).flatten(1), p=2.0, dim=1)


def attention_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Attention transfer (Zagoruyko & Komodakis 2017): ``mean((A(s) - A(t))^2)`` with ``A`` = :func:`attention_map`.

    The mean runs over ``B * H * W`` values and each ``A`` row has unit norm, so the loss is at most ``4 / (H * W)``:
    small numbers that call for a larger weight than the other feature losses.

    Args:
        s: the student's map ``[B, C_s, H, W]`` (no adapter needed: only the spatial map is compared).
        t: the teacher's map ``[B, C_t, H, W]`` (detached inside); ``C_t`` may differ from ``C_s``.

    Returns:
        A scalar tensor, 0 when the attention maps are equal.

    Raises:
        ValueError: batch or spatial sizes differ (both shapes are named).
    """
    _check_4d(s, "student feature map")
    _check_4d(t, "teacher feature map")
    if s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
        raise ValueError(
            f"attention_loss: student feature shape {_shape(s)} and teacher feature shape {_shape(t)} "
            "must agree in batch size and spatial size (H, W)"
        )
    return (attention_map(grad_in_layout(s)) - attention_map(t.detach()).to(s.device)).pow(2).mean()


def cwd_loss(s_adapted: torch.Tensor, t: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Channel-wise distillation (Shu et al. 2021).

    Each channel of each image becomes a distribution over its ``H * W`` positions,
    ``q = softmax(x / T)`` over ``H * W``; the loss is ``T^2 / (B * C) * sum_{b, c} KL(q_t[b, c] || q_s[b, c])``.

    Args:
        s_adapted: the student's map after its :class:`Adapter`, ``[B, C, H, W]``.
        t: the teacher's map ``[B, C, H, W]`` (detached inside).
        temperature: ``T > 0``; larger values soften the spatial distributions.

    Returns:
        A scalar tensor, 0 when the maps are equal (and, softmax being shift-invariant, when they differ by a
        per-channel constant).

    Raises:
        ValueError: the shapes differ (both are named) or ``temperature`` is not a positive number.
    """
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not (math.isfinite(temperature) and temperature > 0)
    ):
        raise ValueError(f"cwd_loss: temperature must be a positive finite number, got {temperature!r}")
    s, t = _same_shape(s_adapted, t, "cwd_loss")
    return _ChannelKL.apply(s, t, float(temperature))


#: name -> feature distillation loss ``(student_map, teacher_map) -> scalar``
FEATURE_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "fitnet": fitnet_loss,
    "at": attention_loss,
    "cwd": cwd_loss,
}

#: name -> whether the student's map must go through an :class:`Adapter` (to the teacher's channels) first
NEEDS_ADAPTER: dict[str, bool] = {"fitnet": True, "at": False, "cwd": True}
