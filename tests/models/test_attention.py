"""Attention blocks: shape, gradients, zero input, half precision, yaml wiring, pruning, fusing and ONNX export."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch
from torch import nn

from models.attention import CBAM, MIN_HIDDEN, SE, CoordAtt, hidden_width
from models.config import ModelConfigError, load_model_yaml
from models.yolo import Model

BLOCKS = [SE, CBAM, CoordAtt]
VARIANTS = ["se", "cbam", "ca"]
BLOCK_OF = {"se": SE, "cbam": CBAM, "ca": CoordAtt}


def _trained_like(block: nn.Module) -> nn.Module:
    """Give BN layers non-trivial statistics, so that eval-mode tests do not run on identity batch norms."""
    g = torch.Generator().manual_seed(0)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return block


@pytest.mark.parametrize("cls", BLOCKS)
def test_output_shape_equals_input_shape(cls):
    block = cls(24)
    for shape in [(2, 24, 8, 8), (1, 24, 5, 11)]:  # square and non-square (CA splits along H and W)
        x = torch.randn(shape)
        assert block(x).shape == x.shape


@pytest.mark.parametrize("cls", BLOCKS)
def test_gradients_reach_every_parameter(cls):
    torch.manual_seed(0)
    block = cls(16).train()
    x = torch.randn(2, 16, 6, 7, requires_grad=True)
    block(x).square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", BLOCKS)
def test_zero_input_gives_finite_output(cls):
    block = _trained_like(cls(32))
    for mode in (block.train, block.eval):
        mode()
        y = block(torch.zeros(2, 32, 4, 4))
        assert torch.isfinite(y).all() and y.abs().sum() == 0  # the gate multiplies x, so zero stays zero
    y = block(torch.full((1, 32, 4, 4), 1e4))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cls", BLOCKS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matches_fp32(cls, dtype):
    torch.manual_seed(0)
    block = _trained_like(cls(32)).eval()
    x = torch.randn(2, 32, 8, 6)
    ref = block(x)
    y = block.to(dtype)(x.to(dtype))
    assert y.dtype == dtype
    tol = 2e-2 if dtype is torch.float16 else 1e-1
    assert torch.allclose(y.float(), ref, atol=tol, rtol=tol)


def test_reduced_width_has_a_floor_and_bad_ratios_are_refused():
    assert hidden_width(512, 16) == 32
    assert hidden_width(16, 16) == MIN_HIDDEN  # yolov5n's first stage at ratio 16
    with pytest.raises(ValueError, match="reduction ratio"):
        SE(64, 0)
    with pytest.raises(ValueError, match="spatial kernel"):
        CBAM(64, 16, 5)


def _blocks_of(model: Model) -> list[nn.Module]:
    return [m for m in model.model if m.type in ("SE", "CBAM", "CoordAtt")]


def _cfg(variant: str, size: str = "s", gw: float | None = None) -> dict:
    cfg, _ = load_model_yaml(f"yolov5{size}-{variant}.yaml")
    if gw is not None:
        cfg["width_multiple"] = gw
    return cfg


@functools.cache
def _plain(size: str, gw: float | None = None, nc: int = 3) -> Model:
    """The plain model a variant is compared with (built once per test session: building measures strides)."""
    cfg, _ = load_model_yaml(f"yolov5{size}.yaml")
    if gw is not None:
        cfg["width_multiple"] = gw
    return Model(cfg, nc=nc)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("gw", [0.25, 0.5, 0.75, 1.0, 1.25])
def test_parser_wires_channels_at_every_width_multiple(variant, gw):
    model, base = Model(_cfg(variant, gw=gw), nc=3), _plain("s", gw)
    blocks = _blocks_of(model)
    assert [m.i for m in blocks] == [3, 6, 9, 12]
    for m in blocks:
        assert isinstance(m, BLOCK_OF[variant])
        c_prev = model.model[m.i - 1].cv3.conv.out_channels  # the C3 stage before it
        convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
        assert convs[0].in_channels == c_prev == m.args[0]
        assert min(c.out_channels for c in convs if c.out_channels != 1) >= MIN_HIDDEN
    # every other layer is the plain model's layer, and Detect reads the same three levels
    others = [m for m in model.model if m.type not in ("SE", "CBAM", "CoordAtt")]
    assert [m.type for m in others] == [m.type for m in base.model]
    assert [m.np for m in others] == [m.np for m in base.model]
    assert model.detect.f == [21, 24, 27] and torch.equal(model.stride, base.stride)
    raw = model(torch.zeros(1, 3, 64, 64))
    assert [r.shape for r in raw] == [(1, 3, 64 // s, 64 // s, 8) for s in (8, 16, 32)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_m_variants_build_and_keep_the_plain_layers(variant):
    model, base = Model(f"yolov5m-{variant}.yaml", nc=80), _plain("m", nc=80)
    extra = sum(m.np for m in _blocks_of(model))
    assert 0 < extra < 0.02 * sum(m.np for m in base.model)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters()) + extra


def test_yaml_errors_name_the_row():
    cfg = _cfg("se")
    cfg["backbone"][3] = [[-1, 2], 1, "SE", [16]]
    with pytest.raises(ModelConfigError, match=r"backbone row 3.*SE reads a single layer"):
        Model(cfg)
    cfg = _cfg("se")
    cfg["backbone"][3] = [-1, 1, "SE", [0]]
    with pytest.raises(ModelConfigError, match=r"backbone row 3.*reduction ratio"):
        Model(cfg)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_variant_matches_unfused(variant):
    torch.manual_seed(0)
    model = _trained_like(Model(_cfg(variant, gw=0.25), nc=3)).eval()
    x = torch.rand(1, 3, 64, 64)
    ref = model(x)[0]
    model.fuse()
    assert model.is_fused()
    assert torch.allclose(model(x)[0], ref, atol=1e-4, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter, which needs no onnxscript
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_export_matches_torch(variant):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = _trained_like(Model(_cfg(variant, gw=0.25), nc=3)).eval()
    x = torch.rand(1, 3, 64, 96)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, opset_version=17, dynamo=False, input_names=["images"])
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": x.numpy()})[0]
    ref = model(x)[0].detach().numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_prunes_with_torch_pruning_and_reloads_at_its_pruned_widths(variant):
    tp = pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    model = Model(_cfg(variant, gw=0.25), nc=3)
    x = torch.rand(1, 3, 64, 64)
    before = sum(p.numel() for p in model.parameters())
    pruner = tp.pruner.MetaPruner(
        model, x, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5,
        ignored_layers=[model.detect], round_to=8,
    )  # fmt: skip
    pruner.step()
    after = sum(p.numel() for p in model.parameters())
    assert after < 0.8 * before
    model.eval()
    ref = model(x)[0]
    rebuilt = Model.from_arch(model.arch())  # yaml + conv/BN channel record describe the pruned blocks fully
    rebuilt.load_state_dict(model.state_dict())
    assert torch.allclose(rebuilt.eval()(x)[0], ref, atol=1e-5)
