"""Channel pruning of YOLOv5 models: size, shapes, criteria, layer choice, targets, refusals, saved checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch

from models import load_model
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.pruning.config import IMPORTANCE_KINDS, PruneConfig
from utils.pruning.core import prune_model, resolve_layers, search_ratio
from utils.pruning.workflow import prune_checkpoint
from utils.torch_utils import count_parameters


def _params(m: torch.nn.Module) -> int:
    return count_parameters(m)


@pytest.fixture(scope="module")
def yolov5s() -> Model:
    torch.manual_seed(0)
    return Model("yolov5s.yaml", nc=3).eval()


@pytest.fixture(scope="module")
def yolov5n() -> Model:
    """A fresh yolov5n whose BN scales differ (as after training; freshly initialised they are all 1)."""
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.1, 1.0)
    return model


@pytest.fixture
def yolov5n_ckpt(tmp_path):
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    model.names = ["RBC", "WBC", "Platelets"]
    return save_checkpoint(make_checkpoint(model, model.names), tmp_path / "full.pt")


def test_half_the_channels_of_yolov5s_is_less_than_half_the_parameters(yolov5s):
    model = copy.deepcopy(yolov5s)
    x = torch.rand(2, 3, 64, 64)
    raw_before = [t.shape for t in model(x)[1]]
    prune_model(model, 0.5, resolve_layers(model, "all"), "l1", imgsz=64)
    assert _params(model) < _params(yolov5s) / 2
    decoded, raw = model(x)
    assert [t.shape for t in raw] == raw_before  # Detect outputs keep na * (5 + nc) and the grids
    assert all(c.out_channels == 3 * (5 + 3) for c in model.detect.m)
    assert torch.isfinite(decoded).all()
    model.train()
    assert [t.shape for t in model(x)] == raw_before
    for name, conv in model.named_modules():  # round_to=8: every pruned width stays a multiple of 8
        if isinstance(conv, torch.nn.Conv2d) and not name.startswith("model.24"):
            assert conv.out_channels % 8 == 0, name


def test_backbone_only_keeps_the_neck_widths(yolov5s):
    model = copy.deepcopy(yolov5s)
    prune_model(model, 0.5, resolve_layers(model, "backbone"), "l2", imgsz=64)
    before, after = dict(yolov5s.named_modules()), dict(model.named_modules())
    for name, m in after.items():
        if isinstance(m, torch.nn.Conv2d):
            layer = int(name.split(".")[1])
            if layer >= 10:
                assert m.out_channels == before[name].out_channels, name
    assert after["model.0.conv"].out_channels == before["model.0.conv"].out_channels // 2


def test_layer_choice(yolov5s):
    assert resolve_layers(yolov5s, "backbone") == list(range(10))
    assert resolve_layers(yolov5s, "neck") == list(range(10, 24))
    assert resolve_layers(yolov5s, "all") == list(range(24))
    assert resolve_layers(yolov5s, "3,1,3") == [1, 3]
    for bad, message in (("99", "unknown layer 99"), ("24", "Detect head"), ("head", "expected backbone")):
        with pytest.raises(ValueError, match=message):
            resolve_layers(yolov5s, bad)


def test_fused_model_is_refused(yolov5s):
    fused = copy.deepcopy(yolov5s).fuse()
    with pytest.raises(ValueError, match="fused"):
        prune_model(fused, 0.5, list(range(24)), imgsz=64)


def test_target_parameters_are_reached_and_impossible_targets_refused(yolov5n):
    def prune(m, r):
        return prune_model(m, r, list(range(24)), "l1", imgsz=64)

    ratio, reached = search_ratio(yolov5n, 0.6, count_parameters, prune, step=0.2, refine=2)
    assert 0.4 < reached <= 0.6 and 0 < ratio < 0.95
    assert _params(prune(copy.deepcopy(yolov5n), ratio)) / _params(yolov5n) == pytest.approx(reached)
    with pytest.raises(ValueError, match="below what the kept layers need"):
        search_ratio(yolov5n, 0.001, count_parameters, prune, step=0.3)


@pytest.mark.parametrize("importance", [k for k in IMPORTANCE_KINDS if k != "taylor"])
def test_each_importance_criterion_prunes(importance, yolov5n):
    model = prune_model(copy.deepcopy(yolov5n), 0.5, list(range(24)), importance, global_pruning=True, imgsz=64)
    assert _params(model) < 0.5 * _params(yolov5n)
    assert model(torch.rand(1, 3, 64, 64))[0].shape[-1] == 5 + 3


def test_taylor_importance_uses_gradients_of_real_batches(yolov5n_ckpt, tmp_path, tiny_data):
    cfg = PruneConfig(weights=str(yolov5n_ckpt), out=str(tmp_path / "p.pt"), ratio=0.5, importance="taylor",
                      imgsz=64, data=str(tiny_data), taylor_batches=1, batch_size=4)  # fmt: skip
    result = prune_checkpoint(cfg)
    assert result.after.parameters < 0.5 * result.before.parameters
    assert result.after.gflops < result.before.gflops
    assert all(p.grad is None for p in result.model.parameters())  # gradients are not left on the saved model


def test_pruned_checkpoint_reloads_at_its_size_with_identical_outputs(yolov5n_ckpt, tmp_path):
    out = tmp_path / "pruned.pt"
    result = prune_checkpoint(
        PruneConfig(weights=str(yolov5n_ckpt), out=str(out), ratio=0.5, imgsz=64, global_=True, iterative_steps=2)
    )
    ckpt = torch.load(out, weights_only=True)  # plain data only
    assert ckpt["arch"]["channels"]["model.0.conv"] == [3, result.model.model[0].conv.out_channels]
    loaded = load_model(out)
    assert _params(loaded) == result.after.parameters < result.before.parameters
    assert loaded.names == ["RBC", "WBC", "Platelets"]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], result.model.eval()(x)[0])
    again = prune_checkpoint(PruneConfig(weights=str(out), out=str(tmp_path / "again.pt"), ratio=0.25, imgsz=64))
    assert again.after.parameters < again.before.parameters == result.after.parameters  # pruned models prune again


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(ratio=1.0), "--ratio must be > 0 and < 1"),
        (dict(ratio=0.0), "--ratio must be > 0 and < 1"),
        (dict(ratio=0.5, target_params=0.5), "exactly one"),
        (dict(), "exactly one"),
        (dict(ratio=0.5, importance="magic"), "magic"),
        (dict(ratio=0.5, importance="taylor"), "needs --data"),
        (dict(ratio=0.5, imgsz=100), "multiple of 32"),
    ],
)
def test_bad_configs_name_the_problem(kw, message, yolov5n_ckpt, tmp_path):
    with pytest.raises(ValueError, match=message):
        PruneConfig(weights=str(yolov5n_ckpt), out=str(tmp_path / "p.pt"), **kw)


def _conv_widths(model: Model) -> dict[str, int]:
    """Output channels of every convolution outside the Detect head."""
    detect = f"model.{len(model.model) - 1}."
    return {
        n: m.out_channels
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Conv2d) and not n.startswith(detect)
    }


def test_higher_ratios_never_keep_more_and_no_layer_is_skipped(yolov5n):
    kept = []
    for ratio in (0.5, 0.8, 0.9, 0.95):
        model = prune_model(copy.deepcopy(yolov5n), ratio, list(range(24)), "l1", imgsz=64)
        kept.append(_params(model))
    assert kept == sorted(kept, reverse=True) and len(set(kept)) == len(kept), kept
    # at 0.95 every layer (16 to 256 channels) is at the smallest width round_to=8 allows, none left whole
    assert set(_conv_widths(model).values()) == {8}


def test_ratio_above_the_per_layer_maximum_is_refused(yolov5n):
    with pytest.raises(ValueError, match="ratio 0.99 is above 0.95"):
        prune_model(copy.deepcopy(yolov5n), 0.99, list(range(24)), imgsz=64)
