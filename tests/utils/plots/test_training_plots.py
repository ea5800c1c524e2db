import logging

import cv2
import numpy as np
import pytest
import torch

from utils.plots.batches import output_to_targets, plot_images
from utils.plots.labels import plot_labels
from utils.plots.training import load_results, plot_results, plot_results_compare

FULL_COLUMNS = [
    "train/box_loss",
    "train/obj_loss",
    "train/cls_loss",
    "train/kd_out",
    "train/kd_feat",
    "metrics/precision",
    "metrics/recall",
    "metrics/mAP_0.5",
    "metrics/mAP_0.5:0.95",
    "val/box_loss",
    "val/obj_loss",
    "val/cls_loss",
    "x/lr0",
    "x/lr1",
    "x/lr2",
]


def _write_csv(path, columns, rows=12, pad=False, seed=0):
    rng = np.random.default_rng(seed)
    header = ["epoch", *columns]
    fmt = "{:>20}" if pad else "{}"
    lines = [",".join(fmt.format(h) for h in header)]
    for e in range(rows):
        values = [e, *(np.exp(-e / 5) + 0.05 * rng.random(len(columns)))]
        lines.append(",".join(fmt.format(f"{v:.5g}") for v in values))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path):
    im = cv2.imread(str(path))
    assert im is not None, f"cv2 could not read {path}"
    return im


def _grid_px(n_columns):
    """Expected (height, width) of a results figure: 5 subplots per row, 3.2 x 2.6 inches each, 150 dpi."""
    ncols = min(5, n_columns)
    nrows = -(-n_columns // ncols)
    return round(2.6 * nrows * 150), round(3.2 * ncols * 150)


# ----------------------------------------------------------------------------------------------- results curves


def test_plot_results_padded_headers_default_path(tmp_path):
    csv = _write_csv(tmp_path / "exp" / "results.csv", FULL_COLUMNS[:4], pad=True)
    x, df = load_results(csv)
    assert list(df.columns) == FULL_COLUMNS[:4]  # spaces stripped, epoch taken out
    np.testing.assert_array_equal(x, np.arange(12))
    out = plot_results(csv)
    assert out == tmp_path / "exp" / "results.png"
    im = _read(out)
    assert im.shape[:2] == _grid_px(4)
    assert im.std() > 5  # curves and text, not a blank canvas


def test_plot_results_extra_columns_get_their_own_subplots(tmp_path):
    csv = _write_csv(tmp_path / "kd" / "results.csv", [*FULL_COLUMNS[:5], "x/extra"], pad=True)
    out = plot_results(tmp_path / "kd", tmp_path / "elsewhere" / "curves.png")  # run folder accepted
    assert out.is_file()
    assert _read(out).shape[:2] == _grid_px(6)  # a second row for the sixth column
    assert not (csv.parent / "results.png").exists()


def test_plot_results_empty_and_bad_files(tmp_path, caplog):
    csv = _write_csv(tmp_path / "results.csv", FULL_COLUMNS[:3], rows=0)
    with caplog.at_level(logging.WARNING, logger="utils.plots.training"):
        out = plot_results(csv)
    assert "no rows" in caplog.text
    assert _read(out).shape[:2] == _grid_px(3)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        plot_results(tmp_path / "missing.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        plot_results(tmp_path / "blank.csv")
    (tmp_path / "epoch_only.csv").write_text("epoch\n0\n1\n")
    with pytest.raises(ValueError, match="no column"):
        plot_results(tmp_path / "epoch_only.csv")


def test_plot_results_compare_two_runs(tmp_path):
    a = _write_csv(tmp_path / "train" / "exp" / "results.csv", FULL_COLUMNS[:3], pad=True, seed=1)
    b = _write_csv(tmp_path / "kd" / "exp" / "results.csv", FULL_COLUMNS[:5], rows=7, seed=2)
    out = plot_results_compare([a, b], tmp_path / "compare.png")
    im = _read(out)
    assert im.shape[:2] == _grid_px(5)  # union of the runs' columns
    assert im.std() > 5
    with pytest.raises(ValueError, match="empty"):
        plot_results_compare([], tmp_path / "none.png")


# ----------------------------------------------------------------------------------------------- label statistics


def test_plot_labels_random_with_correlogram(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    labels = np.column_stack((rng.integers(0, 3, n), rng.random((n, 2)), 0.05 + 0.3 * rng.random((n, 2))))
    out = plot_labels(torch.from_numpy(labels), ["cat", "dog", "bird"], tmp_path / "labels.jpg", correlogram=True)
    assert out == tmp_path / "labels.jpg"
    im = _read(out)
    assert min(im.shape[:2]) > 500 and im.std() > 5
    assert _read(tmp_path / "labels_correlogram.jpg").std() > 5


def test_plot_labels_empty_and_invalid(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="utils.plots.labels"):
        out = plot_labels(np.zeros((0, 5)), ["a", "b"], tmp_path / "labels.jpg", correlogram=True)
    assert _read(out).std() > 5
    assert not (tmp_path / "labels_correlogram.jpg").exists()
    assert "no labels" in caplog.text
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        plot_labels(np.zeros((4, 4)), None, tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="class id"):
        plot_labels(np.array([[-1, 0.5, 0.5, 0.1, 0.1]]), None, tmp_path / "bad.jpg")


# ----------------------------------------------------------------------------------------------- batch mosaics

GREY = 128


def _grey_batch(b=1, h=200, w=200):
    return np.full((b, 3, h, w), GREY, dtype=np.uint8)


def test_plot_images_draws_ground_truth_normalised_and_pixels_alike(tmp_path):
    imgs = _grey_batch()
    norm = np.array([[0, 1, 0.25, 0.5, 0.2, 0.3]])  # x 30..70, y 70..130 in a 200 x 200 image
    pix = norm.copy()
    pix[:, 2:] *= 200
    a = _read(plot_images(imgs, norm, out_path=tmp_path / "a.png", names=["x", "y"]))
    b = _read(plot_images(torch.from_numpy(imgs), torch.from_numpy(pix), out_path=tmp_path / "b.png", names=["x", "y"]))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 200, 3)
    assert (a[100, 29:32] != GREY).any()  # the left edge of the box
    assert (a[100, 100] == GREY).all()  # inside, away from edges and text
    assert (a[180, 150] == GREY).all()  # outside


def test_plot_images_predictions_respect_conf_thres_and_colours(tmp_path):
    imgs = _grey_batch()
    imgs[0, 0] = 200  # red channel up: the mosaic is written as BGR
    dets = [torch.tensor([[20.0, 60.0, 80.0, 110.0, 0.9, 0.0], [120.0, 150.0, 190.0, 190.0, 0.1, 1.0]])]
    targets = output_to_targets(dets)
    im = _read(plot_images(imgs, targets, out_path=tmp_path / "pred.png", conf_thres=0.25))
    assert tuple(im[100, 100]) == (GREY, GREY, 200)
    assert (im[85, 19:22] != im[100, 100]).any()  # confident box drawn
    assert (im[170, 119:122] == im[100, 100]).all()  # low-confidence box not drawn
    im_all = _read(plot_images(imgs, targets, out_path=tmp_path / "pred_all.png", conf_thres=0.0))
    assert (im_all[170, 119:122] != im[100, 100]).any()
    with pytest.raises(ValueError, match="conf_thres"):
        plot_images(imgs, targets, out_path=tmp_path / "bad.png", conf_thres=1.5)


def test_plot_images_grid_size_names_and_inputs(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.random((5, 3, 320, 240)).astype(np.float32)  # float 0..1
    targets = np.column_stack((np.arange(5), np.zeros(5), np.full((5, 2), 0.5), np.full((5, 2), 0.3)))
    out = plot_images(imgs, targets, out_path=tmp_path / "train_batch0.jpg", max_size=500)
    im = _read(out)
    assert im.shape == (3 * 166, 3 * 125, 3)  # 3 x 3 grid, 320 x 240 scaled by 500 / 960
    assert max(im.shape[:2]) <= 500
    assert (im[-50:, -50:] == 255).all()  # unused cells stay white

    plain = _read(plot_images(_grey_batch(), None, out_path=tmp_path / "plain.png"))
    named = _read(plot_images(_grey_batch(), None, paths=["/data/img_001.jpg"], out_path=tmp_path / "named.png"))
    assert (plain[:30, :120] != named[:30, :120]).any()  # file name written in the corner
    assert (plain == GREY)[5:-5, 5:-5].all()

    with pytest.raises(ValueError, match="0..1"):
        plot_images(imgs * 255, None, out_path=tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        plot_images(np.zeros((3, 32, 32), np.uint8), None, out_path=tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        plot_images(_grey_batch(), np.zeros((2, 5)), out_path=tmp_path / "bad.png")


def test_output_to_targets_exact():
    dets = [
        torch.tensor([[10.0, 20.0, 30.0, 60.0, 0.9, 2.0], [0.0, 0.0, 4.0, 4.0, 0.5, 1.0]]),
        torch.zeros((0, 6)),
        np.array([[1.0, 1.0, 3.0, 5.0, 0.75, 0.0]]),
    ]
    expected = np.array(
        [
            [0, 2, 20, 40, 20, 40, 0.9],
            [0, 1, 2, 2, 4, 4, 0.5],
            [2, 0, 2, 3, 2, 4, 0.75],
        ]
    )
    np.testing.assert_allclose(output_to_targets(dets), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(output_to_targets(dets, max_det=1), expected[[0, 2]], rtol=0, atol=1e-6)
    assert output_to_targets([]).shape == (0, 7)
    with pytest.raises(ValueError, match=r"detections\[0\]"):
        output_to_targets([torch.zeros((2, 5))])
