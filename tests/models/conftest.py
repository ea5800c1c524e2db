"""Helpers shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import models.yolo
from models.head import Detect
from models.yolo import Model


@pytest.fixture
def as_upstream(monkeypatch) -> Callable[[Model], Model]:
    """Make models pickle as upstream YOLOv5's do: whole modules whose classes are ``models.yolo.Model`` and
    ``models.yolo.Detect``. Returns a function that re-classes one model in place; the stand-in classes stay
    importable under those names until the test calls ``monkeypatch.undo()`` (after saving) or ends."""

    class UpstreamModel(Model):
        pass

    class UpstreamDetect(Detect):
        pass

    for cls, name in ((UpstreamModel, "Model"), (UpstreamDetect, "Detect")):
        cls.__module__, cls.__qualname__ = "models.yolo", name
        monkeypatch.setattr(models.yolo, name, cls, raising=False)

    def disguise(model: Model) -> Model:
        model.__class__ = UpstreamModel
        model.model[-1].__class__ = UpstreamDetect
        return model

    return disguise
