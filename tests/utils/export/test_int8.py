"""export.py --int8: an INT8 ONNX that keeps the head's decode in float, agrees with the float model's detections,
runs in val.py, and bad input that names the problem while the float ONNX is still written."""

from __future__ import annotations

import logging
import runpy
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.export import ExportConfig, QuantizeSettings, detection_agreement, load_backend, quantize_onnx, run_export
from utils.export.quantize import QDQ_OPS, decode_nodes, float_decode_violations
from utils.export.run import split_images

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "bccd_sample"
NAMES = ["RBC", "WBC", "Platelets"]


def _checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=len(NAMES))
    return save_checkpoint(make_checkpoint(model, NAMES), folder / "n.pt")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, tiny_data_writer):
    """yolov5n (random weights) exported at 64 px, float and INT8 (4 calibration images), into another folder."""
    tmp = tmp_path_factory.mktemp("int8")
    data = tiny_data_writer(tmp / "data")
    weights = _checkpoint(tmp)
    cfg = ExportConfig(weights=str(weights), include=["onnx"], imgsz=64, int8=True, data=str(data), calib_images=4,
                       check_images=4, out_dir=str(tmp / "out"))  # fmt: skip
    return data, run_export(cfg)


def test_int8_file_is_written_beside_the_float_one_and_is_smaller(int8_export):
    _, result = int8_export
    f, q = result.files["onnx"], result.files["int8"]
    assert f.parent.name == "out" and q == f.with_name("n-int8.onnx") and q.is_file()
    assert q.stat().st_size < 0.5 * f.stat().st_size
    assert result.agreement is not None and result.agreement.images == 4


def test_int8_graph_quantizes_the_convolutions_and_keeps_the_decode_in_float(int8_export):
    _, result = int8_export
    proto = onnx.load(str(result.files["int8"]))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    head, decode = decode_nodes(proto)
    assert len(head) == 3  # one 1x1 convolution per detection level
    assert {"Sigmoid", "Mul", "Add", "Concat"} <= {n.op_type for n in proto.graph.node if n.name in set(decode)}
    assert float_decode_violations(proto) == []
    # the head's convolutions read quantized features and weights, but their raw outputs stay float
    producer = {o: n for n in proto.graph.node for o in n.output}
    for node in (n for n in proto.graph.node if n.name in set(head)):
        assert producer[node.input[0]].op_type == "DequantizeLinear"
        assert all(c.op_type not in QDQ_OPS for c in proto.graph.node if node.output[0] in c.input)


def test_int8_stem_runs_over_the_image_blocks_and_matches_the_plain_stem(int8_export, tmp_path):
    """The stem convolution reads SpaceToDepth(images) through Q/DQ; without the rewrite it reads the images, and
    the two INT8 files' outputs agree (the rewrite is exact in float; only the calibration ranges may differ)."""
    _, result = int8_export
    proto = onnx.load(str(result.files["int8"]))
    producer = {o: n for n in proto.graph.node for o in n.output}
    s2d = [n for n in proto.graph.node if n.op_type == "SpaceToDepth"]
    assert len(s2d) == 1 and s2d[0].input[0] == "images"
    readers = [n for n in proto.graph.node if s2d[0].output[0] in n.input]
    assert [n.op_type for n in readers] == ["QuantizeLinear"]
    stem = next(n for n in proto.graph.node if n.op_type == "Conv")
    assert producer[producer[stem.input[0]].input[0]] is readers[0]
    images = sorted(str(p) for p in (SAMPLE / "images" / "train").glob("*.jpg"))[:4]
    plain = quantize_onnx(result.files["onnx"], images, tmp_path / "plain.onnx", QuantizeSettings(space_to_depth=False))
    assert "SpaceToDepth" not in {n.op_type for n in onnx.load(str(plain)).graph.node}
    x = torch.rand(1, 3, 64, 64)
    a, _ = load_backend(result.files["int8"])(x)
    b, _ = load_backend(plain)(x)
    rewritten = quantize_onnx(result.files["onnx"], images, tmp_path / "s2d.onnx")
    c, _ = load_backend(rewritten)(x)  # same calibration images as plain: the outputs match closely
    scale = b[..., 4:].abs().max()
    assert (c[..., 4:] - b[..., 4:]).abs().max() <= 0.05 * scale and a.shape == b.shape


def test_whole_graph_quantization_would_be_caught(int8_export, tmp_path):
    """The check that the test above relies on does see QDQ nodes in the decode when they are there."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from utils.export.quantize import _Calibration, load_batches

    data, result = int8_export
    images = sorted(str(p) for p in (SAMPLE / "images" / "train").glob("*.jpg"))[:2]
    out = tmp_path / "all.onnx"
    quantize_static(str(result.files["onnx"]), str(out), _Calibration(load_batches(images, 64)),
                    quant_format=QuantFormat.QDQ)  # fmt: skip
    assert float_decode_violations(onnx.load(str(out)))


def test_int8_file_runs_like_any_onnx_in_val_speed_and_detect(int8_export, tmp_path):
    from utils.runners.detect import DetectConfig, run_detect
    from utils.runners.val import ValConfig, run_val

    data, result = int8_export
    model = load_backend(result.files["int8"])
    assert model.names == NAMES and model.meta.imgsz == 64
    out, _ = model(torch.rand(1, 3, 96, 64))  # other sizes: height and width stay free
    assert out.shape == (1, 3 * (12 * 8 + 6 * 4 + 3 * 2), 8)
    common = {"data": str(data), "imgsz": 64, "workers": 0, "project": str(tmp_path), "noplots": True}
    val, _ = run_val(ValConfig(weights=str(result.files["int8"]), name="val", **common))
    speed, _ = run_val(ValConfig(weights=str(result.files["int8"]), name="speed", task="speed", **common))
    assert val.images == 4 and speed.speed_ms["inference"] > 0
    source = SAMPLE / "images" / "val"
    detect = run_detect(DetectConfig(weights=str(result.files["int8"]), source=str(source), imgsz=64, conf_thres=1e-4,
                                     project=str(tmp_path), nosave=True, device="cpu"))  # fmt: skip
    assert len(detect.per_image) == 12


@pytest.mark.shared
def test_int8_detections_agree_with_float_for_a_trained_model(fixtures_dir, tmp_path):
    """Upstream's yolov5s trained on BCCD at 160 px, 8 calibration images: the detections after NMS agree."""
    weights = shutil.copy(fixtures_dir / "upstream-v7.0-yolov5s-bccd.pt", tmp_path / "s.pt")
    export = run_export(ExportConfig(weights=str(weights), include=["onnx"], imgsz=160, check=False))
    train = sorted(str(p) for p in (SAMPLE / "images" / "train").glob("*.jpg"))[:8]
    val = sorted(str(p) for p in (SAMPLE / "images" / "val").glob("*.jpg"))
    q = quantize_onnx(export.files["onnx"], train, settings=QuantizeSettings())
    agreement = detection_agreement(export.files["onnx"], q, val)
    assert agreement.float_detections > 50  # a trained model: enough detections for the fractions to mean something
    assert agreement.float_matched >= 0.9 and agreement.int8_matched >= 0.9, agreement.summary()


def _main():
    return runpy.run_path(str(REPO / "export.py"))["main"]


def _run_cli(argv: list[str], caplog) -> str:
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(_main(), argv)
    assert e.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    return errors[0]


def test_an_exported_onnx_is_quantized_without_exporting_again(int8_export, tmp_path, monkeypatch):
    import models

    data, result = int8_export
    onnx_file = Path(shutil.copy(result.files["onnx"], tmp_path / "m.onnx"))
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the checkpoint was loaded again"))
    out = run_export(ExportConfig(weights=str(onnx_file), int8=True, data=str(data), calib_images=2, check_images=2))
    assert out.files == {"onnx": onnx_file, "int8": tmp_path / "m-int8.onnx"} and out.agreement is not None
    assert float_decode_violations(onnx.load(str(out.files["int8"]))) == []
    into = run_export(ExportConfig(weights=str(onnx_file), int8=True, data=str(data), calib_images=2, check_images=0,
                                   out_dir=str(tmp_path / "q")))  # fmt: skip
    assert into.files["int8"] == tmp_path / "q" / "m-int8.onnx" and into.files["int8"].is_file()


def test_an_int8_file_is_not_quantized_again(int8_export, tmp_path, caplog):
    data, result = int8_export
    int8_file = Path(shutil.copy(result.files["int8"], tmp_path / "m-int8.onnx"))
    message = _run_cli(["--weights", str(int8_file), "--int8", "--data", str(data), "--calib-images", "2"], caplog)
    assert "m-int8.onnx is already quantized" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-int8.onnx"]  # nothing written


def test_a_corrupt_onnx_is_refused_in_one_line(tmp_path, caplog):
    image = next((SAMPLE / "images" / "train").glob("*.jpg"))
    data = _data(tmp_path, {"a.jpg": image.read_bytes()})
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    message = _run_cli(["--weights", str(tmp_path / "bad.onnx"), "--int8", "--data", str(data)], caplog)
    assert "bad.onnx: not a readable ONNX file" in message


def test_an_onnx_without_int8_or_missing_is_refused(tmp_path, caplog):
    message = _run_cli(["--weights", str(tmp_path / "m.onnx")], caplog)
    assert "is already ONNX: add --int8" in message and "m.onnx" in message
    data = _data(tmp_path, {})
    message = _run_cli(["--weights", str(tmp_path / "m.onnx"), "--int8", "--data", str(data)], caplog)
    assert "does not exist" in message and "m.onnx" in message


def test_int8_without_data_is_refused_before_anything_is_written(tmp_path, caplog):
    weights = _checkpoint(tmp_path)
    message = _run_cli(["--weights", str(weights), "--include", "onnx", "--imgsz", "64", "--int8"], caplog)
    assert "--int8 needs --data" in message
    assert not weights.with_suffix(".onnx").exists()


def _data(tmp_path: Path, train_files: dict[str, bytes]) -> Path:
    train = tmp_path / "calib"
    train.mkdir()
    for name, content in train_files.items():
        (train / name).write_bytes(content)
    val = SAMPLE / "images" / "val"
    data = tmp_path / "d.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: {train}\nval: {val}\nnames: [RBC, WBC, Platelets]\n")
    return data


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no image in its train split"),  # an empty folder
        ({"a.jpg": b"not an image", "b.png": b""}, "no readable calibration image among 2"),
    ],
)
def test_empty_or_unreadable_calibration_split_fails_with_the_float_onnx_written(tmp_path, caplog, files, message):
    weights = _checkpoint(tmp_path)
    data = _data(tmp_path, files)
    argv = ["--weights", str(weights), "--include", "onnx", "--imgsz", "64", "--int8", "--data", str(data)]
    assert message in _run_cli([*argv, "--no-check"], caplog)
    assert weights.with_suffix(".onnx").is_file() and not (tmp_path / "n-int8.onnx").exists()


def test_a_model_onnxruntime_cannot_quantize_fails_with_the_float_onnx_written(tmp_path, caplog, monkeypatch):
    import onnxruntime.quantization

    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", refuse)
    weights = _checkpoint(tmp_path)
    data = _data(tmp_path, {"a.jpg": (SAMPLE / "images" / "train").glob("*.jpg").__next__().read_bytes()})
    argv = ["--weights", str(weights), "--include", "onnx", "--imgsz", "64", "--int8", "--data", str(data)]
    message = _run_cli([*argv, "--no-check"], caplog)
    assert "n.onnx: onnxruntime could not quantize it (RuntimeError: unsupported operator)" in message
    assert weights.with_suffix(".onnx").is_file() and not (tmp_path / "n-int8.onnx").exists()


def test_onnxruntime_leftovers_stay_out_of_the_working_directory(int8_export, tmp_path, monkeypatch):
    """onnxruntime writes sym_shape_infer_temp.onnx into the working directory when shape inference is incomplete;
    quantization runs elsewhere, so a user's folder (here a relative output path in it) gets only the INT8 file."""
    import onnxruntime.quantization

    real = onnxruntime.quantization.quantize_static

    def leaves_a_file(*args, **kwargs):
        Path("sym_shape_infer_temp.onnx").write_bytes(b"left behind")
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", leaves_a_file)
    data, result = int8_export
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(result.files["onnx"], work / "m.onnx")
    monkeypatch.chdir(work)
    images = split_images(data, "train", 2)
    assert quantize_onnx("m.onnx", images, "m-int8.onnx") == Path("m-int8.onnx")
    assert sorted(p.name for p in work.iterdir()) == ["m-int8.onnx", "m.onnx"]


def test_a_graph_without_convolutions_is_not_quantizable():
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["images"], ["output0"], name="relu")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 8, 8])],
    )  # fmt: skip
    with pytest.raises(ValueError, match="no convolution in the graph"):
        decode_nodes(helper.make_model(graph))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"include": ["torchscript"]}, "add onnx to --include"),
    ({"calib_images": 0}, "--calib-images must be >= 1"),
    ({"calib_method": "kl"}, "--calib-method 'kl' is not one of"),
])  # fmt: skip
def test_bad_int8_settings_name_the_flag(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExportConfig(weights="x.pt", int8=True, data="d.yaml", **kwargs)


@pytest.mark.parametrize("settings", [
    QuantizeSettings(method="minmax", per_channel=False, reduce_range=True),
    QuantizeSettings(method="entropy", quantize_head=False),
])  # fmt: skip
def test_other_settings_write_a_runnable_int8_file_with_a_float_decode(int8_export, tmp_path, settings):
    _, result = int8_export
    images = sorted(str(p) for p in (SAMPLE / "images" / "train").glob("*.jpg"))[:2]
    q = quantize_onnx(result.files["onnx"], images, tmp_path / "q.onnx", settings)
    proto = onnx.load(str(q))
    assert float_decode_violations(proto) == []
    head, _ = decode_nodes(proto)
    producer = {o: n for n in proto.graph.node for o in n.output}
    weights_quantized = {n.input[1] in producer for n in proto.graph.node if n.name in set(head)}
    assert weights_quantized == {settings.quantize_head}  # float weights are initializers, quantized ones DQ outputs
    out, _ = load_backend(q)(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 8) and torch.isfinite(out).all()


@pytest.mark.parametrize(("batches", "chunk"), [(4, None), (8, 7), (100, 8), (840, None)])
def test_minmax_folds_batches_in_chunks_that_never_divide_the_count(batches, chunk):
    """onnxruntime's MinMax calibration fails when the batch count is a multiple of its chunk size."""
    from utils.export.quantize import _extra_options

    options = _extra_options(QuantizeSettings(method="minmax"), batches)
    assert options.get("CalibMaxIntermediateOutputs") == chunk
    assert "CalibMaxIntermediateOutputs" not in _extra_options(QuantizeSettings(method="percentile"), batches)
