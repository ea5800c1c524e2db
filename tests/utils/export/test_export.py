"""Export to ONNX / TorchScript: outputs match PyTorch, metadata travels, exported files run like checkpoints."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from models.resize import conv_channels
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.export import ExportConfig, check_parity, load_backend, run_export

NAMES = ["RBC", "WBC", "Platelets"]


def _checkpoint(tmp_path, cfg="yolov5n.yaml", channels=None, name="model.pt"):
    torch.manual_seed(0)
    model = Model(cfg, nc=len(NAMES), channels=channels)
    model.names = list(NAMES)
    return save_checkpoint(make_checkpoint(model, NAMES), tmp_path / name), model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """yolov5n (random weights) exported to both formats at 64 px with a free batch size."""
    tmp = tmp_path_factory.mktemp("export")
    weights, _ = _checkpoint(tmp)
    result = run_export(ExportConfig(weights=str(weights), imgsz=64, dynamic=True, include=["onnx", "torchscript"]))
    return weights, result


def test_export_writes_both_formats_that_match_pytorch(exported):
    weights, result = exported
    assert set(result.files) == {"onnx", "torchscript"}
    assert result.files["onnx"] == weights.with_suffix(".onnx") and result.files["onnx"].is_file()
    for check in result.checks.values():
        assert check.ok and check.max_rel <= 1e-3
        assert check.torch_ms > 0 and check.exported_ms > 0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_file_runs_like_the_model_on_other_shapes(exported, fmt):
    weights, result = exported
    from models import load_model

    model = load_model(weights, fuse=True)
    backend = load_backend(result.files[fmt])
    assert backend.names == NAMES and backend.nc == 3 and backend.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(2, 3, 96, 128)  # another batch size and a non-square size
    with torch.no_grad():
        ref = model(x)[0]
    out, raw = backend(x)
    assert raw == [] and out.shape == ref.shape == (2, 3 * (12 * 16 + 6 * 8 + 3 * 4), 8)
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-3)


def test_static_batch_export_runs_larger_batches_image_by_image(tmp_path):
    weights, model = _checkpoint(tmp_path)
    result = run_export(ExportConfig(weights=str(weights), imgsz=64, include=["onnx"]))
    backend = load_backend(result.files["onnx"])
    assert not backend.meta.dynamic
    x = torch.rand(3, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(backend(x)[0], model.fuse()(x)[0], atol=1e-3, rtol=1e-3)


def test_a_narrower_pruned_model_exports_at_its_own_widths(tmp_path):
    # yolov5s whose convolutions carry yolov5n's channel counts: what a pruned checkpoint records
    narrow = conv_channels(Model("yolov5n.yaml", nc=3))
    weights, model = _checkpoint(tmp_path, "yolov5s.yaml", channels=narrow, name="pruned.pt")
    assert model.yaml["width_multiple"] == 0.5 and model.model[0].conv.out_channels == 16
    result = run_export(ExportConfig(weights=str(weights), imgsz=64, include=["onnx"]))
    assert result.ok
    import onnx

    first = onnx.load(str(result.files["onnx"])).graph.initializer
    shapes = {tuple(t.dims) for t in first}
    assert (16, 3, 6, 6) in shapes and (32, 3, 6, 6) not in shapes  # the stem stayed at the pruned width
    check = check_parity(model.fuse(), result.files["onnx"], torch.rand(1, 3, 64, 96))
    assert check.ok, check.summary()


def test_parity_check_reports_a_mismatch(exported):
    weights, result = exported
    from models import load_model

    other = load_model(weights, fuse=True)
    with torch.no_grad():
        other.detect.m[0].bias += 1.0  # the exported file no longer matches this model
    check = check_parity(other, result.files["onnx"], torch.rand(1, 3, 64, 64))
    assert not check.ok and "MISMATCH" in check.summary()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"include": ["tflite"]}, "--include 'tflite' is not one of"),
        ({"opset": 16}, "--opset must be >= 17 and <= 40, got 16"),
        ({"opset": 99}, "--opset must be >= 17 and <= 40, got 99"),
        ({"opset": 39, "imgsz": 64}, "--opset 39: torch .*'s ONNX exporter cannot write it"),
        ({"tolerance": -1.0}, "--tolerance must be >= 0, got -1.0"),
        ({"tolerance": float("nan")}, "--tolerance must be a finite number, got nan"),
        ({"half": True, "device": "cpu"}, "--half needs a CUDA"),
        ({"imgsz": 100}, "--imgsz 100 is not a multiple"),
    ],
)
def test_bad_export_settings_name_the_flag(tmp_path, kwargs, message):
    weights, _ = _checkpoint(tmp_path)
    with pytest.raises(ValueError, match=message):
        run_export(ExportConfig(weights=str(weights), **kwargs))


def test_simplify_without_onnxsim_warns_and_still_exports(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # import fails as if not installed
    weights, _ = _checkpoint(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = run_export(ExportConfig(weights=str(weights), imgsz=64, include=["onnx"], simplify=True))
    assert result.ok and "onnxsim" in caplog.text


def test_load_backend_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_backend(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx"):
        load_backend(junk)
    junk_ts = tmp_path / "junk.torchscript"
    junk_ts.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.torchscript"):
        load_backend(junk_ts)


@pytest.mark.shared
@pytest.mark.slow
def test_val_on_the_exported_onnx_matches_the_checkpoint(fixtures_dir, tmp_path):
    """A trained yolov5s (upstream v7.0 checkpoint) on the bundled sample: same mAP through onnxruntime."""
    import shutil

    from utils.runners.val import ValConfig, run_val

    weights = shutil.copy(fixtures_dir / "upstream-v7.0-yolov5s-bccd.pt", tmp_path / "bccd.pt")
    export = run_export(ExportConfig(weights=str(weights), imgsz=320, include=["onnx"], dynamic=True))
    assert export.ok
    data = Path(__file__).resolve().parents[3] / "data" / "bccd_sample.yaml"
    common = {"data": str(data), "imgsz": 320, "workers": 0, "project": str(tmp_path), "noplots": True}
    pt, _ = run_val(ValConfig(weights=str(weights), name="pt", **common))
    onnx_, _ = run_val(ValConfig(weights=str(export.files["onnx"]), name="onnx", **common))
    assert pt.map50 > 0.5  # the checkpoint detects the cells, so the comparison means something
    assert abs(onnx_.map50 - pt.map50) <= 0.002 and abs(onnx_.map - pt.map) <= 0.002


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_val_and_detect_take_exported_weights(exported, fmt, tmp_path, tiny_data):
    """The runners accept an exported file as --weights and give what the checkpoint gives."""
    from utils.runners.detect import DetectConfig, run_detect
    from utils.runners.val import ValConfig, run_val

    weights, result = exported
    source = Path(__file__).resolve().parents[3] / "data" / "bccd_sample" / "images" / "val"
    common = {"imgsz": 64, "device": "cpu", "project": str(tmp_path), "nosave": True, "conf_thres": 1e-4}
    pt = run_detect(DetectConfig(weights=str(weights), source=str(source), name="pt", max_det=20, **common))
    ex = run_detect(DetectConfig(weights=str(result.files[fmt]), source=str(source), name=fmt, max_det=20, **common))
    assert ex.per_image == pt.per_image and pt.detections > 0
    common = {"data": str(tiny_data), "imgsz": 64, "workers": 0, "project": str(tmp_path), "noplots": True}
    pt_val, _ = run_val(ValConfig(weights=str(weights), name="vpt", **common))
    ex_val, _ = run_val(ValConfig(weights=str(result.files[fmt]), name="vex", batch_size=3, **common))
    assert ex_val.images == pt_val.images == 4
    assert ex_val.map50 == pytest.approx(pt_val.map50, abs=2e-3) and ex_val.map == pytest.approx(pt_val.map, abs=2e-3)
