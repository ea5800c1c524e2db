"""detect.py and tools/auto_label.py with an --imgsz that is not a multiple of the model's stride, with checkpoints
and ONNX files (free size, and fixed size)."""

from __future__ import annotations

import logging
import runpy
import shutil
from pathlib import Path

import onnx
import pytest

from tools.auto_label import main as auto_label_main
from utils.cli import run_main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "bccd_sample" / "images" / "val"


@pytest.fixture(scope="module")
def models(random_bccd_weights, tmp_path_factory) -> dict[str, Path]:
    """The random yolov5n checkpoint, its ONNX export (free height and width) and a copy of that export whose
    input is fixed at 64x64."""
    from utils.export import ExportConfig, run_export

    tmp = tmp_path_factory.mktemp("imgsz")
    pt = Path(shutil.copy(random_bccd_weights, tmp / "n.pt"))
    free = run_export(ExportConfig(weights=str(pt), imgsz=64, include=["onnx"], check=False)).files["onnx"]
    proto = onnx.load(str(free))
    for dim, size in zip(proto.graph.input[0].type.tensor_type.shape.dim[2:], (64, 64), strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = size
    fixed = tmp / "fixed.onnx"
    onnx.save(proto, str(fixed))
    return {"pt": pt, "onnx": Path(free), "fixed": fixed}


def _argv(weights: Path, tmp_path: Path, imgsz: str) -> list[str]:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for p in sorted(SAMPLE.glob("*.jpg"))[:2]:
        shutil.copy(p, images)
    return ["--weights", str(weights), "--source", str(images), "--imgsz", imgsz, "--conf-thres", "0.0001",
            "--project", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip


def _program(name: str):
    return auto_label_main if name == "auto_label" else runpy.run_path(str(REPO / "detect.py"))["main"]


@pytest.mark.parametrize("program", ["detect", "auto_label"])
@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_an_imgsz_off_the_stride_is_rounded_up_and_said(program, kind, models, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    result = _program(program)(_argv(models[kind], tmp_path, "100"))
    assert result.images == 2
    assert "--imgsz 100 is not a multiple of the model's stride 32; using 128" in caplog.text


@pytest.mark.parametrize("program", ["detect", "auto_label"])
def test_a_fixed_size_onnx_refuses_another_imgsz_naming_both(program, models, tmp_path, caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(_program(program), _argv(models["fixed"], tmp_path, "100"))
    assert e.value.code == 2
    assert "--imgsz 100" in caplog.text and "fixed input of 64x64 pixels" in caplog.text
    result = _program(program)(_argv(models["fixed"], tmp_path, "64"))
    assert result.images == 2
