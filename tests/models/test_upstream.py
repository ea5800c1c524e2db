"""Upstream YOLOv5 checkpoints: reproduce their reference outputs; refuse pickles that would run code."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_model
from models.upstream import read_upstream, record_state_dict
from models.yolo import Model
from utils.checkpoint import CheckpointError


def _fixture_pairs(fixtures: Path) -> list[tuple[Path, Path]]:
    return [(ref.with_name(ref.name.replace(".ref.pt", ".pt")), ref) for ref in sorted(fixtures.glob("*.ref.pt"))]


@pytest.mark.shared
def test_every_fixture_reproduces_its_reference_outputs(fixtures_dir):
    pairs = _fixture_pairs(fixtures_dir)
    assert pairs, f"no *.ref.pt files in {fixtures_dir}"
    for ckpt_path, ref_path in pairs:
        ref = torch.load(ref_path, map_location="cpu", weights_only=True)
        model = load_model(ckpt_path)
        assert not model.training
        assert sum(p.numel() for p in model.parameters()) == int(ref["params"]), ckpt_path.name
        assert model.nc == int(ref["nc"])
        with torch.no_grad():
            pred, raw = model(ref["input"])
        for ours, theirs in zip(raw, ref["raw"], strict=True):
            assert ours.shape == theirs.shape
            assert (ours - theirs).abs().max().item() < 1e-3, ckpt_path.name
        assert pred.shape == ref["pred"].shape
        assert (pred - ref["pred"]).abs().max().item() < 1e-3, ckpt_path.name


@pytest.mark.shared
def test_fixture_state_dict_layout_equals_ours(fixtures_dir):
    """Key names and shapes of upstream's modules are exactly those of our model for the same yaml."""
    for ckpt_path, ref_path in _fixture_pairs(fixtures_dir):
        ckpt = read_upstream(ckpt_path)
        theirs = record_state_dict(ckpt["model"])
        nc = int(torch.load(ref_path, weights_only=True)["nc"])
        size = re.search(r"yolov5([nsmlx])", ckpt_path.name).group(1)  # e.g. upstream-v6.0-yolov5n-nc3.pt
        ours = Model(f"yolov5{size}.yaml", nc=nc).state_dict()
        assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.shared
def test_trained_fixture_keeps_class_names(fixtures_dir):
    model = load_model(fixtures_dir / "upstream-v7.0-yolov5s-bccd.pt")
    assert model.names == ["RBC", "WBC", "Platelets"]


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker), "epoch": 1}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt.*refusing to load '(posix|os)\.system'"):
        load_model(path)
    assert not marker.exists()


class UnknownThing:
    pass


def test_pickle_of_an_unknown_class_is_refused_naming_it(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"model": UnknownThing()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load '.*UnknownThing'"):
        load_model(path)


def test_upstream_style_training_checkpoint_with_numpy_and_optimizer(tmp_path, as_upstream, monkeypatch):
    """An unstripped last.pt: pickled 'model' and 'ema' modules, optimizer state, numpy best_fitness."""
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=2).eval()
    model.names = ["cat", "dog"]
    as_upstream(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, _ = model(x)
    path = tmp_path / "last.pt"
    torch.save(
        {
            "epoch": 3,
            "best_fitness": np.array([0.42]),
            "model": model,
            "ema": model,
            "updates": 12,
            "optimizer": optimizer.state_dict(),
            "opt": {"imgsz": 64, "save_dir": "runs/train/exp"},
        },
        path,
    )
    monkeypatch.undo()
    loaded = load_model(path)
    assert type(loaded) is Model
    assert loaded.names == ["cat", "dog"]
    with torch.no_grad():
        got, _ = loaded(x)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.shared
def test_records_are_inert(fixtures_dir):
    """Unpickled upstream modules are plain records, never instances of torch or our classes."""
    ckpt = read_upstream(fixtures_dir / "upstream-v6.0-yolov5n-nc3.pt")
    record = ckpt["model"]
    assert not isinstance(record, torch.nn.Module)
    conv = record.__dict__["_modules"]["model"].__dict__["_modules"]["0"]
    assert "Conv" in conv.class_name
