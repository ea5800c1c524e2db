"""tools/model_info.py: bad sizes and files end in one line naming them; a pruned checkpoint's table says which
layers are narrower than their yaml arguments."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from models.yolo import Model
from tools import model_info, prunmodel
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main


def _exit_2(argv: list[str], caplog) -> str:
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(model_info.main, argv)
    assert e.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    return errors[0]


def test_an_image_size_beyond_the_limit_is_refused_naming_the_flag(caplog):
    message = _exit_2(["--cfg", "yolov5n", "--imgsz", "100000"], caplog)
    assert f"--imgsz must be >= 1 and <= {model_info.MAX_IMGSZ}, got 100000" in message


def test_a_binary_file_given_as_the_yaml_is_named(tmp_path, caplog):
    rand = tmp_path / "rand.pt"
    rand.write_bytes(b"\x80" + np.random.default_rng(0).bytes(2000))
    message = _exit_2(["--cfg", str(rand)], caplog)
    assert str(rand) in message and "not UTF-8" in message


def test_a_pruned_checkpoint_says_its_arguments_are_the_unpruned_widths(tmp_path, caplog):
    torch.manual_seed(0)
    full = save_checkpoint(make_checkpoint(Model("yolov5n.yaml", nc=3), ["a", "b", "c"]), tmp_path / "full.pt")
    pruned = tmp_path / "pruned.pt"
    prunmodel.main(["--weights", str(full), "--ratio", "0.5", "--imgsz", "64", "--out", str(pruned)])
    caplog.set_level(logging.INFO)
    rows = model_info.main(["--weights", str(full), "--imgsz", "64"])["rows"]
    assert not any(r.resized for r in rows) and "pruned layers" not in caplog.text
    caplog.clear()
    rows = model_info.main(["--weights", str(pruned), "--imgsz", "64"])["rows"]
    conv0 = rows[0]
    assert conv0.args[1] == 16 and conv0.output[0] == 8 and conv0.resized
    assert not rows[11].resized  # an Upsample has no width of its own
    assert "* [3, 16, 6, 2, 2]" in caplog.text
    assert "pruned layers: their arguments are the yaml's unpruned widths" in caplog.text


def test_the_limit_is_declared_on_the_flag():
    assert model_info.InfoConfig(cfg="yolov5n", imgsz=[model_info.MAX_IMGSZ]).imgsz == [model_info.MAX_IMGSZ]
    with pytest.raises(ValueError, match="--imgsz"):
        model_info.InfoConfig(cfg="yolov5n", imgsz=[model_info.MAX_IMGSZ + 1])
