"""Feature distillation: the adapter, FitNet, attention transfer and channel-wise distillation."""

from __future__ import annotations

import math

import pytest
import torch

from utils.distill.feature_losses import (
    FEATURE_LOSSES,
    NEEDS_ADAPTER,
    Adapter,
    attention_loss,
    attention_map,
    cwd_loss,
    fitnet_loss,
)

NAMES = ["fitnet", "at", "cwd"]


def _maps(seed: int, shape=(2, 8, 5, 6)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ adapter
def test_adapter_maps_channels_and_is_trainable():
    torch.manual_seed(0)
    adapter = Adapter(4, 8)
    assert adapter.conv.bias is None and adapter.conv.kernel_size == (1, 1)
    assert torch.equal(adapter.bn.weight, torch.ones(8)) and torch.equal(adapter.bn.bias, torch.zeros(8))
    x = _maps(0, (2, 4, 3, 3)).requires_grad_(True)
    y = adapter(x)
    assert y.shape == (2, 8, 3, 3)
    fitnet_loss(y, _maps(1, (2, 8, 3, 3))).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())


def test_adapter_init_preserves_scale():
    torch.manual_seed(0)
    adapter = Adapter(256, 128)
    # Kaiming for a linear map: weight variance 1 / c_student
    assert adapter.conv.weight.var().item() == pytest.approx(1 / 256, rel=0.1)
    adapter.eval()  # BN with fresh running statistics is (almost) the identity
    x = _maps(2, (4, 256, 6, 6))
    assert adapter(x).std().item() == pytest.approx(x.std().item(), rel=0.1)


def test_adapter_errors():
    adapter = Adapter(4, 8)
    with pytest.raises(ValueError, match=r"\[B, 4, H, W\].*\(2, 5, 3, 3\)"):
        adapter(torch.zeros(2, 5, 3, 3))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="c_student"):
            Adapter(bad, 8)
        with pytest.raises(ValueError, match="c_teacher"):
            Adapter(8, bad)


# ----------------------------------------------------------------------------------- common loss properties
def _student_for(name: str, t: torch.Tensor) -> torch.Tensor:
    """A student map that differs from ``t`` in a way each loss can see (``at`` compares a channel-free map)."""
    s = _maps(99, tuple(t.shape))
    return s[:, :3] if name == "at" else s


@pytest.mark.parametrize("name", NAMES)
def test_zero_when_equal(name):
    t = _maps(3)
    assert FEATURE_LOSSES[name](t.clone().requires_grad_(True), t).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_positive_finite_differentiable_and_teacher_untouched(name):
    t = _maps(4)
    t0 = t.clone()
    s = _student_for(name, t).requires_grad_(True)
    loss = FEATURE_LOSSES[name](s, t)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert not t.requires_grad and t.grad is None and torch.equal(t, t0)


@pytest.mark.parametrize("name", NAMES)
def test_teacher_with_grad_is_detached(name):
    t = _maps(5).requires_grad_(True)
    s = _student_for(name, t.detach()).requires_grad_(True)
    FEATURE_LOSSES[name](s, t).backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_invariance(name):
    t = _maps(6)
    s = _student_for(name, t)
    one = FEATURE_LOSSES[name](s, t)
    two = FEATURE_LOSSES[name](torch.cat([s, s]), torch.cat([t, t]))
    assert two.item() == pytest.approx(one.item(), rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_student_gets_its_gradient_channels_last(name):
    """The engine's CPU step runs channels-last; a gradient handed back in NCHW would send BatchNorm's backward
    down its slow path. Same loss and same gradient values as with NCHW maps, only the layout differs."""
    cl = torch.channels_last
    t = _maps(8, (2, 8, 5, 6))
    s = _student_for(name, t)
    s_cl = s.to(memory_format=cl).requires_grad_(True)
    s_nchw = s.clone().requires_grad_(True)
    loss_cl = FEATURE_LOSSES[name](s_cl, t.to(memory_format=cl))
    loss_nchw = FEATURE_LOSSES[name](s_nchw, t)
    # autograd.grad: the gradient as the layer below receives it (``.grad`` would be re-laid out like the leaf)
    (g_cl,) = torch.autograd.grad(loss_cl, s_cl)
    (g_nchw,) = torch.autograd.grad(loss_nchw, s_nchw)
    assert loss_cl.item() == pytest.approx(loss_nchw.item(), rel=1e-6)
    assert g_cl.is_contiguous(memory_format=cl) and not g_cl.is_contiguous()
    assert g_nchw.is_contiguous()
    torch.testing.assert_close(g_cl, g_nchw)


@pytest.mark.parametrize("name", NAMES)
def test_fp16_inputs_computed_in_fp32(name):
    t = _maps(7).half()
    s = _student_for(name, t.float()).half().requires_grad_(True)
    loss = FEATURE_LOSSES[name](s, t)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(FEATURE_LOSSES[name](s.detach().float(), t.float()).item(), rel=1e-5)
    loss.backward()
    assert s.grad.dtype == torch.float16 and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_spatial_or_batch_mismatch_names_both_shapes(name):
    s = _maps(8, (2, 8, 5, 6))
    for t in (_maps(9, (2, 8, 5, 5)), _maps(9, (3, 8, 5, 6))):
        with pytest.raises(ValueError) as err:
            FEATURE_LOSSES[name](s, t)
        assert str(tuple(s.shape)) in str(err.value) and str(tuple(t.shape)) in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_not_a_feature_map(name):
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*\(8, 5, 6\)"):
        FEATURE_LOSSES[name](torch.zeros(8, 5, 6), torch.zeros(8, 5, 6))


@pytest.mark.parametrize("name", ["fitnet", "cwd"])
def test_channel_mismatch_needs_adapter(name):
    s, t = _maps(10, (2, 4, 5, 6)), _maps(11, (2, 8, 5, 6))
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 6\).*\(2, 8, 5, 6\).*Adapter"):
        FEATURE_LOSSES[name](s, t)
    assert FEATURE_LOSSES[name](Adapter(4, 8)(s), t).item() > 0


def test_registries():
    assert {"fitnet": fitnet_loss, "at": attention_loss, "cwd": cwd_loss} == FEATURE_LOSSES
    assert NEEDS_ADAPTER == {"fitnet": True, "at": False, "cwd": True}


# ------------------------------------------------------------------------------------------------- fitnet
def test_fitnet_hand_checked():
    t = torch.zeros(1, 2, 1, 2)
    s = torch.tensor([1.0, -2.0, 0.0, 3.0]).view(1, 2, 1, 2)
    assert fitnet_loss(s, t).item() == pytest.approx((1 + 4 + 0 + 9) / 4)


# ------------------------------------------------------------------------------------------------ attention
def test_attention_map_shape_unit_norm_and_value():
    x = _maps(12, (3, 8, 5, 6))
    a = attention_map(x)
    assert a.shape == (3, 30) and a.dtype == torch.float32
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(attention_map(4.0 * x), a, atol=1e-6)  # scale-free
    # channels (1, 1) and (0, 2) at two positions: mean of squares (1, 2) -> (1, 2) / sqrt(5)
    tiny = torch.tensor([[1.0, 0.0], [1.0, 2.0]]).view(1, 2, 1, 2)
    assert torch.allclose(attention_map(tiny), torch.tensor([[1.0, 2.0]]) / math.sqrt(5))
    assert torch.equal(attention_map(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 4))
    assert attention_map(x.half()).dtype == torch.float32


def test_attention_loss_hand_checked_and_channel_free():
    # student attention (1, 0), teacher (0, 1): mean of squared differences = (1 + 1) / 2
    s = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    t = torch.tensor([[0.0, 3.0], [0.0, 4.0]]).view(1, 2, 1, 2)
    assert attention_loss(s, t).item() == pytest.approx(1.0)
    # any channel counts, the same spatial layout: a student whose energy is spread like the teacher's costs 0
    t = _maps(13, (2, 16, 4, 4))
    s = t.pow(2).mean(dim=1, keepdim=True).sqrt().expand(2, 3, 4, 4) * 2.0
    assert attention_loss(s, t).item() == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------------------------ cwd
def test_cwd_hand_checked_with_temperature():
    # one channel, two positions; teacher (0, 2 ln 3) at T = 2 -> softmax (1/4, 3/4); student (0, 0) -> (1/2, 1/2)
    t = torch.tensor([0.0, 2 * math.log(3.0)]).view(1, 1, 1, 2)
    s = torch.zeros(1, 1, 1, 2)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert cwd_loss(s, t, temperature=2.0).item() == pytest.approx(4.0 * kl, rel=1e-6)
    # T = 1: teacher softmax (1/10, 9/10)
    kl1 = 0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5)
    assert cwd_loss(s, t, temperature=1.0).item() == pytest.approx(kl1, rel=1e-6)


def test_cwd_direction_and_normalisation():
    # KL(teacher || student), not the reverse; summed over channels and images, divided by B * C
    t = torch.tensor([0.0, math.log(9.0)]).view(1, 1, 1, 2)  # (1/10, 9/10)
    s = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)  # (1/4, 3/4)
    forward = 0.1 * math.log(0.1 / 0.25) + 0.9 * math.log(0.9 / 0.75)
    assert cwd_loss(s, t, temperature=1.0).item() == pytest.approx(forward, rel=1e-5)
    # a second channel that matches exactly halves the loss (mean over channels)
    s2, t2 = torch.cat([s, t], dim=1), torch.cat([t, t], dim=1)
    assert cwd_loss(s2, t2, temperature=1.0).item() == pytest.approx(forward / 2, rel=1e-5)


def test_cwd_high_temperature_limit_and_shift_invariance():
    # T^2 * KL -> sum_positions (d - mean d)^2 / (2 * H * W) as T grows, with d = t - s per channel
    t = _maps(14, (1, 1, 2, 3)).double()
    s = _maps(15, (1, 1, 2, 3)).double()
    d = (t - s).flatten()
    limit = ((d - d.mean()) ** 2).sum().item() / (2 * 6)
    assert cwd_loss(s, t, temperature=500.0).item() == pytest.approx(limit, rel=1e-3)
    assert cwd_loss(t + 5.0, t, temperature=4.0).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan"), float("inf"), None])
def test_cwd_bad_temperature(bad):
    t = _maps(16)
    with pytest.raises(ValueError, match="temperature"):
        cwd_loss(t, t, temperature=bad)


def _reference(name: str, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The losses written as plain compositions of torch operations, to compare the fused ones with."""
    if name == "fitnet":
        return (s - t).pow(2).mean()
    b, c = s.shape[:2]
    log_qs = torch.log_softmax(s.flatten(2) / 3.0, dim=-1)
    log_qt = torch.log_softmax(t.flatten(2) / 3.0, dim=-1)
    return (log_qt.exp() * (log_qt - log_qs)).sum() * (9.0 / (b * c))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", ["fitnet", "cwd"])
def test_fused_losses_match_the_plain_formula_in_value_and_gradient(name, channels_last):
    g = torch.Generator().manual_seed(3)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    s = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64).contiguous(memory_format=layout)
    t = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64).contiguous(memory_format=layout)
    fn = (lambda a, b: cwd_loss(a, b, 3.0)) if name == "cwd" else fitnet_loss
    assert torch.autograd.gradcheck(lambda x: fn(x, t), (s.clone().requires_grad_(),))
    mine, ref = s.clone().requires_grad_(), s.clone().requires_grad_()
    fn(mine, t).backward(torch.tensor(2.5, dtype=torch.float64))
    (_reference(name, ref, t) * 2.5).backward()
    assert torch.allclose(fn(s, t), _reference(name, s, t), rtol=1e-12, atol=1e-12)
    assert torch.allclose(mine.grad, ref.grad, rtol=1e-10, atol=1e-12)
    assert mine.grad.is_contiguous(memory_format=layout)
