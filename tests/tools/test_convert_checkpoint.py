"""tools/convert_checkpoint.py: a bare state dict must have the tensors its --cfg describes."""

from __future__ import annotations

import logging

import pytest
import torch

from models import load_model
from models.yolo import Model
from tools import convert_checkpoint
from utils.cli import run_main


def test_a_yaml_of_another_model_size_is_refused_naming_the_first_tensor(tmp_path, caplog):
    src = tmp_path / "s.pt"
    torch.save(Model("yolov5s.yaml", nc=3).state_dict(), src)
    out = tmp_path / "out.pt"
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(convert_checkpoint.main, ["--weights", str(src), "--cfg", "yolov5n.yaml", "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
    assert "'model.0.conv.weight' is (32, 3, 6, 6) in the weights but (16, 3, 6, 6) in the yaml" in caplog.text
    assert "does not match --cfg yolov5n.yaml" in caplog.text


def test_a_yaml_with_other_tensor_names_is_refused(tmp_path, caplog):
    src = tmp_path / "n.pt"
    torch.save(Model("yolov5n.yaml", nc=3).state_dict(), src)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        argv = ["--weights", str(src), "--cfg", "yolov5m.yaml", "--out", str(tmp_path / "o.pt")]
        run_main(convert_checkpoint.main, argv)
    assert e.value.code == 2 and "not in the weights" in caplog.text


def test_the_matching_yaml_converts_and_a_pruned_state_dict_needs_pruned(tmp_path):
    model = Model("yolov5n.yaml", nc=3)
    src = tmp_path / "n.pt"
    torch.save(model.state_dict(), src)
    argv = ["--weights", str(src), "--cfg", "yolov5n.yaml", "--out", str(tmp_path / "n-ours.pt")]
    out = convert_checkpoint.main(argv)
    assert load_model(out).nc == 3
    from models.resize import apply_channels

    apply_channels(model, {"model.0.conv": [3, 8], "model.0.bn": [8], "model.1.conv": [8, 32]})
    torch.save(model.state_dict(), src)
    args = ["--weights", str(src), "--cfg", "yolov5n.yaml", "--out", str(tmp_path / "p.pt")]
    with pytest.raises(Exception, match="model.0.conv.weight"):
        convert_checkpoint.main(args)
    assert load_model(convert_checkpoint.main([*args, "--pruned"])).model[0].conv.out_channels == 8
