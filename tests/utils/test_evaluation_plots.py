"""The plots of an evaluation: the five curve figures and the batch mosaics, drawn by threads or by drawing
processes alike, and a failing one costs nothing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from utils.evaluation import _plot_batch, _plot_curves
from utils.metrics import ConfusionMatrix, ap_per_class
from utils.plots.pool import ProcessPlotter, ThreadPlotter

CURVES = ("PR_curve", "F1_curve", "P_curve", "R_curve", "confusion_matrix")


def _ap():
    rng = np.random.default_rng(0)
    tp = rng.random((40, 10)) > 0.4
    conf = rng.random(40)
    pred_cls = rng.integers(0, 2, 40)
    target_cls = rng.integers(0, 2, 30)
    return ap_per_class(tp, conf, pred_cls, target_cls)


@pytest.mark.parametrize("plotter_type", [ThreadPlotter, ProcessPlotter])
def test_every_curve_figure_and_mosaic_is_written(tmp_path, plotter_type):
    ap, confusion = _ap(), ConfusionMatrix(nc=2)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.3], [1, 0, 0.3, 0.4, 0.1, 0.1]])
    dets = [torch.tensor([[10.0, 10, 30, 40, 0.9, 1]]), torch.zeros((0, 6))]
    plotter = plotter_type()
    _plot_curves(plotter, ap, confusion, ["a", "b"], tmp_path)
    _plot_batch(plotter, images, targets, dets, ["x/0.jpg", "x/1.jpg"], ["a", "b"], tmp_path, 0)
    plotter.close()
    for figure in CURVES:
        assert (tmp_path / f"{figure}.png").stat().st_size > 1000, figure
    for mosaic in ("val_batch0_labels.jpg", "val_batch0_pred.jpg"):
        assert (tmp_path / mosaic).stat().st_size > 1000, mosaic


def test_a_failing_figure_is_a_warning_not_an_error(tmp_path, caplog):
    ap = _ap()
    ap.f1_curve = ap.f1_curve[:, :-1]  # one point short of the confidence grid
    plotter = ThreadPlotter()
    with caplog.at_level(logging.WARNING):
        _plot_curves(plotter, ap, ConfusionMatrix(nc=2), ["a", "b"], tmp_path)
        plotter.close()
    assert "plotting F1_curve failed: ValueError" in caplog.text
    assert not (tmp_path / "F1_curve.png").exists()
    assert (tmp_path / "P_curve.png").exists()
