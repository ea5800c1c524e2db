"""TensorBoard logging: scalars per epoch, mosaics and final plots when tensorboard is installed; nothing without."""

from __future__ import annotations

import csv
import sys

import cv2
import numpy as np
import pytest

from utils.training.config import TrainConfig
from utils.training.engine import train
from utils.training.tensorboard import TensorBoardLogger


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.fixture
def hide_tensorboard(monkeypatch):
    """Make ``import torch.utils.tensorboard`` fail as it does when the package is not installed."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)


def test_logger_writes_scalars_and_images(tmp_path):
    pytest.importorskip("tensorboard")
    cv2.imwrite(str(tmp_path / "train_batch0.jpg"), np.full((32, 48, 3), 128, np.uint8))
    logger = TensorBoardLogger(tmp_path)
    assert logger.writer is not None
    logger.log_epoch(0, {"epoch": 0, "train/box": 0.5, "metrics/mAP_0.5": ""})
    logger.log_epoch(1, {"epoch": 1, "train/box": 0.25, "metrics/mAP_0.5": 0.1})
    cv2.imwrite(str(tmp_path / "results.png"), np.zeros((20, 30, 3), np.uint8))
    logger.close(1)
    acc = _events(tmp_path)
    box = [(e.step, e.value) for e in acc.Scalars("train/box")]
    assert box == [(0, 0.5), (1, 0.25)]
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("metrics/mAP_0.5")] == [(1, 0.1)]  # blank cell skipped
    images = acc.Tags()["images"]
    assert "train_batch0" in images and "results" in images
    assert len(acc.Images("train_batch0")) == 1  # logged once, not every epoch


def test_without_tensorboard_the_logger_does_nothing(tmp_path, hide_tensorboard):
    logger = TensorBoardLogger(tmp_path)
    assert logger.writer is None
    logger.log_epoch(0, {"epoch": 0, "train/box": 0.5})
    logger.close()
    assert list(tmp_path.iterdir()) == []


def _train(tmp_path, data, name):
    cfg = TrainConfig(
        cfg="yolov5n.yaml", data=str(data), imgsz=64, epochs=1, batch_size=4, workers=0,
        project=str(tmp_path / "runs"), name=name, noautoanchor=True,
    )  # fmt: skip
    return train(cfg).save_dir


def test_training_logs_every_results_column_and_the_plots(tmp_path, tiny_data):
    pytest.importorskip("tensorboard")
    run_dir = _train(tmp_path, tiny_data, "tb")
    with open(run_dir / "results.csv", newline="") as f:
        columns = [c for c in next(csv.reader(f)) if c != "epoch"]
    acc = _events(run_dir)
    assert set(acc.Tags()["scalars"]) == set(columns)
    assert {"train_batch0", "labels", "results", "PR_curve"} <= set(acc.Tags()["images"])


def test_training_without_tensorboard_writes_no_event_files(tmp_path, tiny_data, hide_tensorboard):
    run_dir = _train(tmp_path, tiny_data, "plain")
    assert (run_dir / "results.csv").is_file()
    assert not list(run_dir.glob("events.out.tfevents*"))
