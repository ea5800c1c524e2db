"""The curve figures drawn at the end of an evaluation: one task per figure, and a failing one costs nothing."""

from __future__ import annotations

import logging

import numpy as np

from utils.evaluation import CURVE_FIGURES, _plot_curve, _plotter
from utils.metrics import ConfusionMatrix, ap_per_class


def _ap():
    rng = np.random.default_rng(0)
    tp = rng.random((40, 10)) > 0.4
    conf = rng.random(40)
    pred_cls = rng.integers(0, 2, 40)
    target_cls = rng.integers(0, 2, 30)
    return ap_per_class(tp, conf, pred_cls, target_cls)


def test_every_curve_figure_is_written_by_the_plotting_threads(tmp_path):
    ap, confusion = _ap(), ConfusionMatrix(nc=2)
    pool = _plotter()
    for figure in CURVE_FIGURES:
        pool.submit(_plot_curve, figure, ap, confusion, ["a", "b"], tmp_path)
    pool.shutdown(wait=True)
    for figure in CURVE_FIGURES:
        assert (tmp_path / f"{figure}.png").stat().st_size > 1000, figure


def test_a_failing_figure_is_a_warning_not_an_error(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _plot_curve("F1_curve", None, ConfusionMatrix(nc=2), ["a", "b"], tmp_path)  # no AP result to draw
    assert "plotting F1_curve failed" in caplog.text
    assert not (tmp_path / "F1_curve.png").exists()
