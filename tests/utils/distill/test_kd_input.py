"""Distillation input that is not what it claims: non-finite flags, a teacher trained on other classes."""

from __future__ import annotations

import logging

import pytest

import train_kd
from models.yolo import Model
from utils.cli import run_main
from utils.distill.config import KDConfig
from utils.distill.teacher import check_compatible


@pytest.mark.parametrize("flag", ["kd_weight", "temperature", "unlabeled_ratio"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_distillation_numbers_are_refused(tmp_path, flag, value):
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"x")
    with pytest.raises(ValueError, match=rf"--{flag.replace('_', '-')} must be a finite number, got {value}"):
        KDConfig(teacher=str(teacher), **{flag: value})


def test_train_kd_exits_2_on_a_nan_kd_weight(tmp_path, tiny_data, caplog):
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"x")
    argv = ["--teacher", str(teacher), "--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--kd-weight", "nan"]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        run_main(train_kd.main, argv + ["--project", str(tmp_path / "runs")])
    assert e.value.code == 2
    assert "--kd-weight must be a finite number, got nan" in caplog.text
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_a_teacher_with_another_class_list_is_refused_naming_both():
    student, teacher = Model("yolov5n.yaml", nc=3), Model("yolov5n.yaml", nc=3)
    student.names, teacher.names = ["RBC", "WBC", "Platelets"], ["cat", "dog", "bird"]
    with pytest.raises(ValueError, match=r"teacher t.pt .*other classes.*teacher \['cat', .*data \['RBC'"):
        check_compatible(student, teacher, "t.pt")
    teacher.names = ["0", "1", "2"]  # a teacher that stored no names (a bare state dict) is not second-guessed
    check_compatible(student, teacher, "t.pt")
