"""Models at recorded (pruned) widths rebuild at that size instead of re-inflating to the yaml's widths."""

from __future__ import annotations

import pytest
import torch

from models import load_model
from models.resize import apply_channels, channels_from_state_dict, conv_channels
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint


def _shrink_bottleneck(model: Model, layer: int, keep: int) -> None:
    """Keep the first ``keep`` hidden channels of the first bottleneck in C3 ``layer`` (a minimal 'pruning')."""
    prefix = f"model.{layer}.m.0"
    state = model.state_dict()
    record = conv_channels(model)
    c_in = record[f"{prefix}.cv1.conv"][0]
    record[f"{prefix}.cv1.conv"] = [c_in, keep]
    record[f"{prefix}.cv1.bn"] = [keep]
    record[f"{prefix}.cv2.conv"] = [keep, record[f"{prefix}.cv2.conv"][1]]
    apply_channels(model, record)
    new_state = model.state_dict()
    for k, v in state.items():
        if k.startswith(f"{prefix}.cv1.") and v.ndim >= 1:
            new_state[k] = v[:keep].clone()
        elif k == f"{prefix}.cv2.conv.weight":
            new_state[k] = v[:, :keep].clone()
        elif k not in new_state or new_state[k].shape == v.shape:
            new_state[k] = v
    model.load_state_dict(new_state)


def test_pruned_model_round_trips_at_its_size(tmp_path):
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    full = sum(p.numel() for p in model.parameters())
    _shrink_bottleneck(model, layer=4, keep=8)
    pruned = sum(p.numel() for p in model.parameters())
    assert pruned < full

    path = save_checkpoint(make_checkpoint(model, ["a", "b", "c"]), tmp_path / "pruned.pt")
    loaded = load_model(path)
    assert sum(p.numel() for p in loaded.parameters()) == pruned
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])

    rebuilt = Model.from_arch(torch.load(path, weights_only=True)["arch"])
    assert sum(p.numel() for p in rebuilt.parameters()) == pruned


def test_pruned_bare_state_dict_is_read_off_the_shapes(tmp_path):
    model = Model("yolov5n.yaml", nc=3)
    _shrink_bottleneck(model, layer=2, keep=4)
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path, cfg="yolov5n.yaml")
    assert loaded.model[2].m[0].cv1.conv.out_channels == 4


def test_channel_record_matches_state_dict():
    model = Model("yolov5n.yaml", nc=3)
    assert channels_from_state_dict(model.state_dict()) == conv_channels(model)


def test_bad_record_is_named():
    model = Model("yolov5n.yaml", nc=3)
    with pytest.raises(ValueError, match="model.99.conv"):
        apply_channels(model, {"model.99.conv": [3, 8]})
