"""An attention variant through the workflow: train, reload without its yaml, distil as teacher and as student,
and the model summary tool."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models import load_model
from models.yolo import Model
from tools import model_info
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.training.addons import ModelSetup, RunContext, StepBatch
from utils.training.config import TrainConfig
from utils.training.engine import train

HYP = {"kd_box": 0.05, "kd_obj": 1.0, "kd_cls": 0.5, "kd_l2": 1.0, "kd_fitnet": 1.0, "kd_cwd_t": 4.0}


def per_image(d, imgs, preds) -> dict:
    """The add-on's terms for a labelled batch ``imgs``, per image (as results.csv shows them)."""
    n = imgs.shape[0]
    return {k: v / n for k, v in d.losses(StepBatch(imgs, preds, torch.zeros((0, 6)), n)).items()}


def _small_variant_yaml(folder: Path, variant: str = "ca") -> Path:
    """yolov5s-<variant> at yolov5n's widths, written beside the run (so that it can be deleted afterwards)."""
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "models" / f"yolov5s-{variant}.yaml").read_text())
    cfg.update(width_multiple=0.25, nc=3)
    path = folder / f"tiny-{variant}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained_variant(tmp_path_factory, tiny_data_writer) -> tuple[Path, Path]:
    """A coordinate-attention variant trained one epoch at 64 px; returns (best.pt, data yaml)."""
    tmp = tmp_path_factory.mktemp("variant")
    data = tiny_data_writer(tmp / "data", n_train=4, n_val=2)
    cfg_path = _small_variant_yaml(tmp / "cfg")
    cfg = TrainConfig(
        cfg=str(cfg_path), data=str(data), imgsz=64, epochs=1, batch_size=4, workers=0,
        project=str(tmp / "runs"), noplots=True,
    )  # fmt: skip
    result = train(cfg)
    cfg_path.unlink()  # the checkpoint alone must describe the model
    return result.best or result.last, data


def test_variant_trains_and_reloads_from_its_checkpoint_without_its_yaml(trained_variant):
    weights, _ = trained_variant
    model = load_model(weights)
    assert [m.type for m in model.model if m.type == "CoordAtt"] == ["CoordAtt"] * 4
    assert model.detect.f == [21, 24, 27]
    saved = torch.load(weights, weights_only=True)
    state = saved.get("ema") or saved["model"]
    assert all(torch.equal(model.state_dict()[k], v.float()) for k, v in state.items() if v.is_floating_point())
    out, raw = model(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(out).all() and len(raw) == 3


def test_variant_teacher_distils_into_a_plain_student_on_the_layers_feeding_detect(trained_variant, tmp_path):
    weights, data = trained_variant
    kd = KDConfig(teacher=str(weights), kd_output="l2", kd_feature="fitnet")
    cfg = TrainConfig(
        cfg="yolov5n.yaml", data=str(data), imgsz=64, epochs=1, batch_size=4, workers=0,
        project=str(tmp_path / "runs"), noplots=True, noval=True, hyp="data/hyps/hyp.kd.yaml",
    )  # fmt: skip
    plugin = Distiller(kd, HYP)
    result = train(cfg, [plugin])
    assert plugin.layers == [17, 20, 23] and plugin.teacher_layers == [21, 24, 27]
    record = yaml.safe_load((result.save_dir / "kd.yaml").read_text())
    assert record["teacher_layers"] == [21, 24, 27]
    rows = (result.save_dir / "results.csv").read_text().splitlines()
    kd_feat = float(rows[1].split(",")[rows[0].split(",").index("train/kd_feat")])
    assert kd_feat > 0 and torch.isfinite(torch.tensor(kd_feat))


def test_variant_student_learns_from_a_plain_teacher(tmp_path):
    torch.manual_seed(0)
    teacher = save_checkpoint(make_checkpoint(Model("yolov5n.yaml", nc=3), ["a", "b", "c"]), tmp_path / "t.pt")
    student = Model(_small_variant_yaml(tmp_path, "cbam")).train()
    d = Distiller(KDConfig(teacher=str(teacher), kd_feature="fitnet"), HYP)
    d.setup(ModelSetup(student, torch.device("cpu")))
    d.before_training(RunContext(tmp_path, torch.device("cpu"), ["a", "b", "c"], None, None, 64, {}, resumed=True))
    assert d.layers == [21, 24, 27] and d.teacher_layers == [17, 20, 23]
    imgs = torch.rand(2, 3, 64, 64)
    terms = per_image(d, imgs, student(imgs))
    sum(terms.values()).backward()
    blocks = [m for m in student.model if m.type == "CBAM"]
    assert all(p.grad is not None for b in blocks for p in b.parameters())
    d.close()


def test_explicit_kd_layers_must_exist_in_both_models(tmp_path):
    teacher = save_checkpoint(make_checkpoint(Model("yolov5n.yaml", nc=3), ["a", "b", "c"]), tmp_path / "t.pt")
    student = Model(_small_variant_yaml(tmp_path, "se"))
    d = Distiller(KDConfig(teacher=str(teacher), kd_feature="fitnet", kd_layers=[26]), HYP)
    with pytest.raises(ValueError, match="--kd-layers 26"):
        d.setup(ModelSetup(student, torch.device("cpu")))


def test_model_info_tool_prints_the_layer_table(trained_variant, caplog):
    weights, _ = trained_variant
    caplog.set_level("INFO")
    info = model_info.main(["--cfg", "yolov5s-se", "--nc", "3", "--imgsz", "64", "96"])
    rows = info["rows"]
    assert len(rows) == 29 and [r.index for r in rows] == list(range(29))
    se_rows = [r for r in rows if r.module == "SE"]
    assert [r.output for r in se_rows] == [rows[r.index - 1].output for r in se_rows]  # shape kept
    assert rows[0].output == [32, 32, 48] and rows[-1].source == [21, 24, 27]
    assert sum(r.params for r in rows) == info["parameters"] and info["gflops"] > 0
    assert "CoordAtt" not in caplog.text and " SE " in caplog.text and "GFLOPs at 64x96" in caplog.text

    info = model_info.main(["--weights", str(weights), "--imgsz", "64"])
    assert [r.module for r in info["rows"]].count("CoordAtt") == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "exactly one of --cfg"),
        (["--cfg", "yolov5n", "--weights", "x.pt"], "exactly one of --cfg"),
        (["--weights", "missing.pt"], "missing.pt: file not found"),
        (["--cfg", "no-such-model"], "no-such-model"),
        (["--cfg", "yolov5n", "--imgsz", "100"], "not a multiple"),
    ],
)
def test_model_info_tool_bad_input_exits_2(argv, message, caplog, tmp_path, monkeypatch):
    from utils.cli import run_main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        run_main(model_info.main, argv)
    assert e.value.code == 2 and message in caplog.text
