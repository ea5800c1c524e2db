"""The check of the teacher before training: the rule, the warning in the log and kd.yaml, pseudo labels off."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml

from models.yolo import Model
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.distill.teacher import teacher_warning
from utils.training.addons import ModelSetup, RunContext
from utils.training.config import TrainConfig
from utils.training.engine import train

RANDOM_TEACHER = "upstream-v6.0-yolov5n-nc3.pt"  # random weights: a teacher that learnt nothing


@pytest.mark.parametrize(
    ("teacher", "student", "weak", "words"),
    [
        (0.01, 0.0, True, "below --min-teacher-map 0.05"),
        (0.30, 0.40, True, "below the student's own 0.400"),
        (0.30, 0.30, False, ""),
        (0.06, 0.0, False, ""),
    ],
)
def test_rule(teacher, student, weak, words):
    msg = teacher_warning("t.pt", teacher, student, 0.05)
    assert bool(msg) is weak
    if weak:
        assert "t.pt" in msg and f"{teacher:.3f}" in msg and words in msg


def test_floor_zero_keeps_a_teacher_that_ties_an_untrained_student():
    assert teacher_warning("t.pt", 0.0, 0.0, 0.0) == ""


def _resumed_distiller(teacher: str, check: dict, outputs: list[str], tmp_path) -> Distiller:
    d = Distiller(KDConfig(teacher=teacher, kd_output=outputs), {})
    d.setup(ModelSetup(Model("yolov5n.yaml", nc=3), torch.device("cpu")))
    d.load_state_dict({"teacher_check": check})
    d.before_training(RunContext(tmp_path, torch.device("cpu"), ["a", "b", "c"], None, None, 64, {}, resumed=True))
    return d


def test_a_resumed_run_keeps_the_verdict(fixtures_dir, tmp_path):
    teacher = str(fixtures_dir / RANDOM_TEACHER)
    weak = {"warning": teacher_warning(teacher, 0.0, 0.0, 0.05)}
    d = _resumed_distiller(teacher, weak, ["bce", "pseudo"], tmp_path)
    assert d.outputs == ["bce"] and d.pseudo_loss is None and d.loss_names == ("kd_out",)
    assert d.state_dict()["teacher_check"] == weak
    fine = _resumed_distiller(teacher, {"warning": ""}, ["bce", "pseudo"], tmp_path)
    assert fine.outputs == ["bce", "pseudo"] and fine.pseudo_loss is not None


def test_pseudo_alone_from_a_weak_teacher_with_no_gt_is_refused(fixtures_dir, tmp_path):
    teacher = str(fixtures_dir / RANDOM_TEACHER)
    d = Distiller(KDConfig(teacher=teacher, kd_output=["pseudo"], no_gt=True), {})
    d.setup(ModelSetup(Model("yolov5n.yaml", nc=3), torch.device("cpu")))
    d.load_state_dict({"teacher_check": {"warning": "weak teacher: x"}})
    with pytest.raises(ValueError, match="nothing is left to learn from"):
        d.before_training(RunContext(tmp_path, torch.device("cpu"), ["a"], None, None, 64, {}, resumed=True))


def test_a_teacher_that_learnt_nothing_warns_and_training_completes(fixtures_dir, tiny_data, tmp_path, caplog):
    teacher = fixtures_dir / RANDOM_TEACHER
    cfg = TrainConfig(
        cfg="yolov5n.yaml", data=str(tiny_data), imgsz=64, epochs=1, batch_size=4, workers=0,
        project=str(tmp_path / "runs"), noplots=True, hyp="data/hyps/hyp.kd.yaml",
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = train(cfg, [Distiller(KDConfig(teacher=str(teacher), kd_output=["bce", "pseudo"]), {})])
    assert result.epochs_completed == 1 and result.best is not None
    record = yaml.safe_load((result.save_dir / "kd.yaml").read_text())
    t_map = record["teacher_metrics"]["mAP_0.5:0.95"]
    assert record["warning"].startswith(f"weak teacher: {teacher} scores mAP50-95 {t_map:.3f}")
    assert record["outputs_used"] == ["bce"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert record["warning"] in logged and "Pseudo labels are off" in logged
    assert record["warning"] in (result.save_dir / "train.log").read_text()
