import numpy as np
import pytest
import torch
from PIL import Image

from utils.metrics import ConfusionMatrix, ap_per_class
from utils.plots import plot_ap_result, plot_confusion_matrix, plot_mc_curve, plot_pr_curve


def _assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 0  # something was drawn


def _result():
    rng = np.random.default_rng(0)
    n = 60
    tp = rng.random((n, 10)) < np.linspace(0.8, 0.2, 10)
    return ap_per_class(tp, rng.random(n), rng.integers(0, 3, n), rng.integers(0, 3, 40))


def test_plot_ap_result_writes_four_pngs(tmp_path):
    res = _result()
    paths = plot_ap_result(res, tmp_path / "val", names={0: "cat", 1: "dog", 2: "bird"})
    assert [p.name for p in paths] == ["PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png"]
    for p in paths:
        _assert_png(p)


def test_curves_many_classes_and_empty(tmp_path):
    px = np.linspace(0, 1, 1000)
    py = np.random.default_rng(1).random((25, 1000))
    _assert_png(plot_pr_curve(px, py, py.mean(1), tmp_path / "pr.png"))
    _assert_png(plot_mc_curve(px, py, tmp_path / "f1.png", ylabel="F1"))
    _assert_png(plot_pr_curve(px, np.zeros((0, 1000)), np.zeros(0), tmp_path / "empty.png"))
    with pytest.raises(ValueError, match="py"):
        plot_pr_curve(px, py, np.zeros(3), tmp_path / "bad.png")


def test_confusion_matrix_plot(tmp_path):
    cm = ConfusionMatrix(nc=3)
    cm.process_batch(
        torch.tensor([[0, 0, 10, 10, 0.9, 0], [20, 20, 30, 30, 0.9, 2], [50, 50, 60, 60, 0.9, 1]]),
        torch.tensor([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30], [2, 80, 80, 90, 90]]),
    )
    _assert_png(plot_confusion_matrix(cm, tmp_path / "cm.png", names=["cat", "dog", "bird"]))
    _assert_png(plot_confusion_matrix(cm.matrix, tmp_path / "cm_counts.png", normalize=False))
    with pytest.raises(ValueError, match="matrix"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "bad.png")
