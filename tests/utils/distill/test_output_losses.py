"""Output distillation losses: minima, weighting and gating, scaling, temperature, shapes and dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from utils.distill.output_losses import OUTPUT_LOSSES, bce_output_loss, kl_output_loss, l2_output_loss, part_scales

NA, NC = 3, 4
GRIDS = ((4, 4), (2, 2))


def _head(seed: int, batch: int = 2, nc: int = NC, grids=GRIDS, scale: float = 2.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, NA, h, w, 5 + nc, generator=g) * scale for h, w in grids]


def _leaf(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [x.clone().requires_grad_(True) for x in xs]


def _bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid()
    return -(p * p.log() + (1 - p) * (1 - p).log())


def _one_cell(box, obj, cls) -> list[torch.Tensor]:
    """One level, one image, one anchor, a 1x1 grid: ``[1, 1, 1, 1, 5 + nc]``."""
    return [torch.tensor([*box, obj, *cls], dtype=torch.float32).view(1, 1, 1, 1, -1)]


# --------------------------------------------------------------------------------------------- minima and sign
@pytest.mark.parametrize("name", ["l2", "kl"])
def test_zero_when_student_equals_teacher(name):
    t = _head(0)
    out = OUTPUT_LOSSES[name](_leaf(t), t)
    assert set(out) == {"box", "obj", "cls"}
    assert out["box"].item() == 0.0
    assert out["cls"].item() == pytest.approx(0.0, abs=1e-7)
    if name == "l2":
        assert out["obj"].item() == 0.0


@pytest.mark.parametrize("name", ["bce", "kl"])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_cross_entropy_terms_at_minimum_when_equal(name, temperature):
    t = _head(1)
    s = _leaf(t)
    out = OUTPUT_LOSSES[name](s, t, temperature=temperature)
    sum(out.values()).backward()
    for g in (x.grad for x in s):
        assert g.abs().max().item() < 1e-6
    # the objectness minimum is the mean entropy of the teacher's objectness
    expected_obj = sum(_bernoulli_entropy(x[..., 4]).mean() for x in t)
    assert out["obj"].item() == pytest.approx(expected_obj.item(), rel=1e-5)
    # any other student is strictly worse
    moved = [x + 0.5 * torch.randn_like(x) for x in t]
    worse = OUTPUT_LOSSES[name](moved, t, temperature=temperature)
    assert worse["obj"] > out["obj"] and worse["cls"] > out["cls"] and worse["box"] > 0


def test_bce_class_minimum_is_weighted_entropy_of_soft_targets():
    t = _head(2)
    temperature = 2.0
    out = bce_output_loss(t, t, temperature=temperature)
    expected = sum(
        (x[..., 4].sigmoid() * _bernoulli_entropy(x[..., 5:] / temperature).mean(-1)).sum()
        / x[..., 4].sigmoid().sum()
        * temperature**2
        for x in t
    )
    assert out["cls"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_positive_finite_and_gradient_reaches_only_student(name):
    t = [x.clone() for x in _head(3)]
    before = [x.clone() for x in t]
    s = _leaf(_head(4))
    out = OUTPUT_LOSSES[name](s, t)
    for key, value in out.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        assert value.item() > 0, key
    sum(out.values()).backward()
    for x in s:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        # every part of the raw output receives gradient: box, obj and class channels
        for sl in (slice(0, 4), slice(4, 5), slice(5, None)):
            assert x.grad[..., sl].abs().sum() > 0
    for x, x0 in zip(t, before, strict=True):
        assert not x.requires_grad and x.grad is None
        assert torch.equal(x, x0)


@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_teacher_with_grad_is_detached(name):
    t = _leaf(_head(5))
    s = _leaf(_head(6))
    sum(OUTPUT_LOSSES[name](s, t).values()).backward()
    assert all(x.grad is None for x in t)
    assert all(x.grad is not None for x in s)


# ------------------------------------------------------------------------------------ weighting and the gate
@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_background_cells_contribute_nothing_to_box_and_cls(name):
    t = _head(7)
    s = [x.clone() for x in t]
    # teacher sees background at level 0, anchor 1, every cell; student disagrees there only, in box and classes
    t[0][:, 1, ..., 4] = -40.0
    s[0][:, 1, ..., 4] = -40.0
    s[0][:, 1, ..., :4] += 3.0
    s[0][:, 1, ..., 5:] = -s[0][:, 1, ..., 5:] + 1.0
    out = OUTPUT_LOSSES[name](s, t)
    ref = OUTPUT_LOSSES[name](t, t)
    assert out["box"].item() < 1e-12
    assert out["cls"].item() == pytest.approx(ref["cls"].item(), abs=1e-9)
    # the same disagreement where the teacher is confident counts
    t[0][:, 1, ..., 4] = 40.0
    s[0][:, 1, ..., 4] = 40.0
    out, ref = OUTPUT_LOSSES[name](s, t), OUTPUT_LOSSES[name](t, t)
    assert out["box"].item() > 1e-3 and out["cls"].item() > ref["cls"].item() + 1e-3


@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_obj_gate_zeroes_box_and_cls_below_threshold(name):
    # two cells: teacher objectness 0.3 (gated out at 0.5) and 0.7 (kept)
    lo, hi = math.log(0.3 / 0.7), math.log(0.7 / 0.3)
    t = [torch.zeros(1, 1, 1, 2, 5 + NC)]
    t[0][0, 0, 0, 0, 4], t[0][0, 0, 0, 1, 4] = lo, hi
    t[0][..., 5:] = torch.tensor([1.0, -1.0, 0.5, 2.0])
    s_low = [t[0].clone()]
    s_low[0][0, 0, 0, 0, :4] += 2.0
    s_low[0][0, 0, 0, 0, 5:] = torch.tensor([-2.0, 3.0, 0.0, -1.0])
    s_low[0][0, 0, 0, 0, 4] += 1.0  # objectness is never gated
    ref = OUTPUT_LOSSES[name](t, t, obj_thres=0.5)
    gated = OUTPUT_LOSSES[name](s_low, t, obj_thres=0.5)
    ungated = OUTPUT_LOSSES[name](s_low, t)
    assert gated["box"].item() == 0.0
    assert gated["cls"].item() == pytest.approx(ref["cls"].item(), abs=1e-7)
    assert ungated["box"].item() > 0 and ungated["cls"].item() > ref["cls"].item() + 1e-4
    assert gated["obj"].item() == pytest.approx(ungated["obj"].item())
    assert gated["obj"].item() > ref["obj"].item() + 1e-4


def test_box_and_cls_are_means_over_the_teachers_objects():
    # two cells with teacher objectness 0.3 and 0.7; the student errs only in the second: the box term is
    # (0.7 * err) / (0.3 + 0.7), not a mean over all cells (which would halve it)
    lo, hi = math.log(0.3 / 0.7), math.log(0.7 / 0.3)
    t = [torch.zeros(1, 1, 1, 2, 6)]
    t[0][0, 0, 0, 0, 4], t[0][0, 0, 0, 1, 4] = lo, hi
    s = [t[0].clone()]
    s[0][0, 0, 0, 1, 0] = math.log(3.0)  # sigmoid 0.75 vs teacher's 0.5 in one of the 4 box channels
    s[0][0, 0, 0, 1, 5] = math.log(3.0)  # and in the class score
    out = l2_output_loss(s, t)
    assert out["box"].item() == pytest.approx(0.7 * 0.25**2 / 4 / 1.0, rel=1e-5)
    assert out["cls"].item() == pytest.approx(0.7 * 0.25**2 / 1.0, rel=1e-5)
    # with the gate at 0.5 only the second cell counts: its own error
    gated = l2_output_loss(s, t, obj_thres=0.5)
    assert gated["box"].item() == pytest.approx(0.25**2 / 4, rel=1e-5)
    # a gate that lets no cell through gives 0, not a division by zero
    none = l2_output_loss(s, t, obj_thres=0.9)
    assert none["box"].item() == 0.0 and none["cls"].item() == 0.0


def test_weighted_means_do_not_shrink_with_the_grid():
    # the same object on a grid four times larger (more background cells) gives the same box and class terms
    t, s = _one_cell([0.0] * 4, 2.0, [1.0]), _one_cell([1.0, 0.0, 0.0, 0.0], 2.0, [-1.0])
    small = l2_output_loss(s, t)
    big_t = torch.full((1, 1, 2, 2, 6), -30.0)  # background: objectness logit -30
    big_s = big_t.clone()
    big_t[0, 0, 0, 0], big_s[0, 0, 0, 0] = t[0].flatten(), s[0].flatten()
    big = l2_output_loss([big_s], [big_t])
    for key in ("box", "cls"):
        assert big[key].item() == pytest.approx(small[key].item(), rel=1e-6), key


def test_l2_objectness_is_unweighted_on_background():
    # the teacher sees nothing (w ~ 0) and the student sees an object there: l2 objectness still counts it
    t = _one_cell([0.0] * 4, -30.0, [0.0])
    s = _one_cell([0.0] * 4, math.log(3.0), [0.0])
    out = l2_output_loss(s, t)
    assert out["obj"].item() == pytest.approx(0.75**2, rel=1e-5)


def test_part_scales_follow_the_ground_truth_gains():
    assert part_scales(640, 3, 80) == {"box": 1.0, "obj": 1.0, "cls": 1.0}
    half = part_scales(320, 3, 3)
    assert half["obj"] == pytest.approx(0.25) and half["box"] == 1.0 and half["cls"] == pytest.approx(3 / 80)
    assert part_scales(640, 4, 80)["box"] == pytest.approx(0.75)


def test_l2_hand_checked_single_cell():
    t = _one_cell([0.0, 0.0, 0.0, 0.0], 0.0, [0.0, 0.0])
    s = _one_cell([math.log(3.0), 0.0, 0.0, 0.0], math.log(3.0), [math.log(3.0), -math.log(3.0)])
    out = l2_output_loss(s, t)
    # sigmoid(log 3) = 0.75; w = sigmoid(0) = 0.5 weights the only cell, so the weighted means are its errors
    assert out["box"].item() == pytest.approx(0.25**2 / 4, rel=1e-6)
    assert out["obj"].item() == pytest.approx(0.25**2, rel=1e-6)  # unweighted
    assert out["cls"].item() == pytest.approx(0.25**2, rel=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.5", float("nan")])
def test_obj_thres_out_of_range_is_refused_by_the_settings(bad, tmp_path):
    from utils.distill.config import KDConfig

    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"")
    with pytest.raises(ValueError, match="--kd-obj-thres"):
        KDConfig(teacher=str(teacher), kd_obj_thres=bad)


# ------------------------------------------------------------------------------------------------- scaling
@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_batch_size_invariance(name):
    t, s = _head(9), _head(10)
    one = OUTPUT_LOSSES[name](s, t)
    two = OUTPUT_LOSSES[name]([torch.cat([x, x]) for x in s], [torch.cat([x, x]) for x in t])
    for key in one:
        assert two[key].item() == pytest.approx(one[key].item(), rel=1e-6), key


@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_levels_are_summed(name):
    t, s = _head(11), _head(12)
    whole = OUTPUT_LOSSES[name](s, t)
    parts = [OUTPUT_LOSSES[name]([a], [b]) for a, b in zip(s, t, strict=True)]
    for key in whole:
        assert whole[key].item() == pytest.approx(sum(p[key].item() for p in parts), rel=1e-6), key


# --------------------------------------------------------------------------------------------- temperature
def test_bce_class_term_hand_checked_with_temperature():
    # w = sigmoid(0) = 0.5; class logits: student 0, teacher 2 ln 3 -> at T = 2 the soft target is sigmoid(ln 3) = 3/4
    t = _one_cell([0.0] * 4, 0.0, [2 * math.log(3.0)])
    s = _one_cell([0.0] * 4, 0.0, [0.0])
    out = bce_output_loss(s, t, temperature=2.0)
    bce = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))  # student sigmoid(0 / 2) = 0.5
    assert out["cls"].item() == pytest.approx(bce * 4.0, rel=1e-6)  # the only cell: its weight cancels
    assert out["obj"].item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_kl_class_term_hand_checked_with_temperature():
    # teacher logits (0, 2 ln 3) at T = 2 -> softmax (1/4, 3/4); student (0, 0) -> (1/2, 1/2); w = sigmoid(ln 3) = 3/4
    t = _one_cell([0.0] * 4, math.log(3.0), [0.0, 2 * math.log(3.0)])
    s = _one_cell([0.0] * 4, math.log(3.0), [0.0, 0.0])
    out = kl_output_loss(s, t, temperature=2.0)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert out["cls"].item() == pytest.approx(4.0 * kl, rel=1e-6)  # the only cell: its weight cancels


def test_high_temperature_limits():
    # T^2 * KL(softmax(t/T) || softmax(p/T)) -> sum_c (d_c - mean d)^2 / (2 nc) with d = t - p (logit matching), and
    # T^2 * (BCE(p/T, sigmoid(t/T)) - its minimum) -> (t - p)^2 / 8, per class (Hinton et al. 2015)
    d = torch.tensor([1.0, -0.5, 2.0, 0.0])
    t = _one_cell([0.0] * 4, 50.0, (d + 0.3).tolist())
    s = _one_cell([0.0] * 4, 50.0, [0.3] * 4)
    temperature = 200.0
    kl = kl_output_loss(s, t, temperature=temperature)["cls"].item()
    assert kl == pytest.approx(((d - d.mean()) ** 2).sum().item() / (2 * 4), rel=1e-3)
    excess = (
        bce_output_loss([s[0].double()], [t[0].double()], temperature=temperature)["cls"]
        - bce_output_loss([t[0].double()], [t[0].double()], temperature=temperature)["cls"]
    ).item()
    assert excess == pytest.approx((d**2).mean().item() / 8, rel=1e-3)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), None, "2"])
def test_bad_temperature_is_refused_by_the_settings(bad, tmp_path):
    from utils.distill.config import KDConfig

    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"")
    with pytest.raises(ValueError, match="--temperature"):
        KDConfig(teacher=str(teacher), temperature=bad)


def test_kl_single_class_warns():
    t = _head(14, nc=1)
    with pytest.warns(UserWarning, match="nc = 1"):
        out = kl_output_loss(_head(15, nc=1), t)
    assert out["cls"].item() == 0.0


# ------------------------------------------------------------------------------------------ shapes and dtypes
@pytest.mark.parametrize(
    ("teacher", "level"),
    [
        (_head(0, nc=NC + 1), 0),  # class count
        ([torch.randn(2, NA + 1, 4, 4, 5 + NC), torch.randn(2, NA, 2, 2, 5 + NC)], 0),  # anchors per level
        ([torch.randn(2, NA, 4, 4, 5 + NC), torch.randn(2, NA, 3, 3, 5 + NC)], 1),  # grid size
    ],
)
@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_shape_mismatch_names_both_shapes_and_level(name, teacher, level):
    student = _head(1)
    with pytest.raises(ValueError) as err:
        OUTPUT_LOSSES[name](student, teacher)
    msg = str(err.value)
    assert f"level {level}" in msg
    assert str(tuple(student[level].shape)) in msg and str(tuple(teacher[level].shape)) in msg


@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_level_count_mismatch(name):
    student = _head(1)
    with pytest.raises(ValueError, match="2 detection levels but teacher has 1"):
        OUTPUT_LOSSES[name](student, student[:1])
    with pytest.raises(ValueError, match="empty"):
        OUTPUT_LOSSES[name]([], [])


def test_not_a_raw_head_output():
    x = [torch.randn(2, 3, 4, 4, 5)]  # no class channel
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4, 5\)"):
        l2_output_loss(x, x)
    with pytest.raises(TypeError, match="lists"):
        l2_output_loss(x[0], x[0])


@pytest.mark.parametrize("name", ["l2", "bce", "kl"])
def test_fp16_teacher(name):
    t, s = _head(16), _leaf(_head(17))
    t16 = [x.half() for x in t]
    out16 = OUTPUT_LOSSES[name](s, t16)
    out32 = OUTPUT_LOSSES[name](s, [x.float() for x in t16])
    sum(out16.values()).backward()
    for key in out16:
        assert out16[key].dtype == torch.float32
        assert out16[key].item() == pytest.approx(out32[key].item(), rel=1e-6)
    assert all(torch.isfinite(x.grad).all() for x in s)


def test_registry():
    assert {"l2": l2_output_loss, "bce": bce_output_loss, "kl": kl_output_loss} == OUTPUT_LOSSES
