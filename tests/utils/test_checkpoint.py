"""Our checkpoint format: plain data, round trips, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import utils.checkpoint as checkpoint
from models import load_model
from models.loading import convert_checkpoint
from models.yolo import Model
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint, strip_checkpoint


def _model() -> Model:
    torch.manual_seed(1)
    model = Model("yolov5n.yaml", nc=2)
    model.names = ["a", "b"]
    return model


def test_round_trip_with_weights_only(tmp_path):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    loss = sum(r.sum() for r in model(torch.rand(1, 3, 64, 64)))
    loss.backward()
    optimizer.step()
    ckpt = make_checkpoint(
        model, model.names, optimizer=optimizer, epoch=4, best_fitness=0.5, train_args={"path": Path("x"), "n": 3}
    )
    path = save_checkpoint(ckpt, tmp_path / "weights" / "last.pt")

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == checkpoint.FORMAT
    assert raw["epoch"] == 4 and raw["best_fitness"] == 0.5
    assert raw["train_args"] == {"path": "x", "n": 3}
    assert raw["optimizer"]["state"]  # momentum buffers survived

    model.eval()
    loaded = load_model(path)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])
    assert loaded.names == ["a", "b"]


def test_strip_prefers_ema_and_halves(tmp_path):
    model = _model()
    ema = _model()
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.01)
    stripped = strip_checkpoint(make_checkpoint(model, model.names, ema=ema, epoch=3))
    assert stripped["optimizer"] is None and stripped["epoch"] == -1 and stripped["ema"] is None
    w = stripped["model"]["model.0.conv.weight"]
    assert w.dtype == torch.float16
    assert torch.allclose(w.float(), ema.state_dict()["model.0.conv.weight"], atol=1e-3)


def test_truncated_and_empty_files_give_clear_errors(tmp_path):
    path = save_checkpoint(make_checkpoint(_model(), ["a", "b"]), tmp_path / "good.pt")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated.pt.*truncated or corrupt"):
        load_model(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt.*empty"):
        load_model(empty)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_model(garbage)


def test_a_crash_while_saving_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint({"format": checkpoint.FORMAT, "epoch": 1}, tmp_path / "last.pt")
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"format": checkpoint.FORMAT, "epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_bare_state_dict_needs_cfg(tmp_path):
    model = _model().eval()
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="pass the model yaml"):
        load_model(path)
    loaded = load_model(path, cfg="yolov5n.yaml")
    assert loaded.nc == 2  # read off the head's weights, whatever the yaml says
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": model.state_dict()}, wrapped)
    assert load_model(wrapped, cfg="yolov5n.yaml").nc == 2


def test_state_dict_for_the_wrong_yaml_is_refused(tmp_path):
    """Widths are read off the tensors (that is how pruned models load); a different depth cannot fit."""
    path = tmp_path / "sd.pt"
    torch.save(_model().state_dict(), path)
    with pytest.raises(CheckpointError, match=r"sd.pt.*(shape|missing)"):
        load_model(path, cfg="yolov5m.yaml")  # deeper C3 stacks: keys that yolov5n does not have


def test_convert_writes_our_format(tmp_path):
    src = tmp_path / "sd.pt"
    model = _model().eval()
    torch.save(model.state_dict(), src)
    out = convert_checkpoint(src, tmp_path / "ours.pt", cfg="yolov5n.yaml")
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["format"] == checkpoint.FORMAT and ckpt["optimizer"] is None
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], load_model(out)(x)[0], atol=0.05, rtol=1e-2)  # fp16 storage
