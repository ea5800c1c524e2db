"""Helpers of the resumable-benchmark tests."""

from __future__ import annotations

import pytest
import torch

import utils.training.engine as engine
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint


@pytest.fixture
def teacher(tmp_path):
    """A random-weight yolov5n checkpoint with BCCD's classes."""
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    return save_checkpoint(make_checkpoint(model, ["RBC", "WBC", "Platelets"]), tmp_path / "teacher.pt")


@pytest.fixture
def kill_run(monkeypatch):
    """``kill_run(name)`` makes the training run named ``name`` die (KeyboardInterrupt) right after its first
    epoch's checkpoint, once; returns the list to which every ``train`` call appends its run name or resume path."""
    real_train, real_save, calls, killed = engine.train, engine.Trainer._save, [], []

    def recording_train(cfg, plugin=None):
        calls.append(cfg.resume or cfg.name)
        return real_train(cfg, plugin)

    def arm(name: str) -> list:
        def save_then_die(self, epoch, improved):
            real_save(self, epoch, improved)
            if self.save_dir.name == name and not killed:
                killed.append(epoch)
                raise KeyboardInterrupt  # as a kill right after the first epoch's checkpoint

        monkeypatch.setattr(engine, "train", recording_train)
        monkeypatch.setattr(engine.Trainer, "_save", save_then_die)
        return calls

    return arm
