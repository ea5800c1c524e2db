from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from models.yolo import Model
from utils import autoanchor
from utils.autoanchor import anchor_fitness, anchor_metrics, check_anchors, kmean_anchors, label_wh_pixels

CENTRES = np.array([[12.0, 20.0], [60.0, 45.0], [200.0, 260.0]])


def _clustered_boxes(seed: int = 0, per_cluster: int = 60) -> np.ndarray:
    """Boxes [3 * per_cluster, 2] in pixels, scattered by +-8 % around the three CENTRES."""
    rng = np.random.default_rng(seed)
    return np.concatenate([c * rng.uniform(0.92, 1.08, size=(per_cluster, 2)) for c in CENTRES])


def _dataset(wh_px: np.ndarray, imgsz: int = 640):
    """One square ``imgsz`` image per box: labels [[cls, cx, cy, w, h]] normalised, shapes [N, 2]."""
    labels = [np.array([[0, 0.5, 0.5, w / imgsz, h / imgsz]]) for w, h in wh_px]
    return labels, np.full((len(wh_px), 2), imgsz, dtype=np.float64)


@pytest.fixture(scope="module")
def yolov5n_detect():
    """The Detect head of a yolov5n model (strides 8, 16, 32 and the yaml's default anchors)."""
    return Model("yolov5n.yaml", nc=3).detect


@pytest.fixture
def detect(yolov5n_detect):
    """A fresh copy of the head for each test, so that replaced anchors do not leak between tests."""
    return copy.deepcopy(yolov5n_detect)


def _anchors_px(detect) -> torch.Tensor:
    return (detect.anchors * detect.stride.view(-1, 1, 1)).view(-1, 2)


# ------------------------------------------------------------------------------------------- anchor_metrics
def test_anchor_metrics_hand_computed():
    anchors = np.array([[10.0, 10.0], [40.0, 20.0]])
    wh = np.array([[20.0, 10.0], [100.0, 100.0], [10.0, 5.0]])
    # box 1: r = min(10/20, 10/10) = 0.5 and min(20/40, 10/20) = 0.5 -> both anchors match (> 1/4)
    # box 2: r = 0.1 and min(0.4, 0.2) = 0.2 -> no anchor matches
    # box 3: r = min(1, 0.5) = 0.5 and min(0.25, 0.25) = 0.25 (not > 0.25) -> one anchor matches
    bpr, aat = anchor_metrics(anchors, wh, thr=4.0)
    assert bpr == pytest.approx(2 / 3)
    assert aat == pytest.approx(3 / 3)
    # best r per box: 0.5, 0.2 (below 1/4 -> 0), 0.5
    assert anchor_fitness(anchors, wh, thr=4.0) == pytest.approx(1.0 / 3)
    # a looser threshold (r > 1/6) lets box 2 and box 3's second anchor match
    bpr, aat = anchor_metrics(anchors, wh, thr=6.0)
    assert bpr == pytest.approx(1.0)
    assert aat == pytest.approx((2 + 1 + 2) / 3)


def test_anchor_metrics_perfect_anchors_and_tensors():
    anchors = torch.tensor([[10.0, 13.0], [33.0, 23.0], [116.0, 90.0]])
    bpr, aat = anchor_metrics(anchors, anchors.clone())
    assert bpr == 1.0
    assert aat >= 1.0
    assert anchor_fitness(anchors.numpy(), anchors.numpy()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("anchors", "wh", "thr", "match"),
    [
        ([[10.0, 10.0]], [[5.0, 5.0]], 0.5, "thr"),
        ([[10.0, 0.0]], [[5.0, 5.0]], 4.0, "positive"),
        ([[10.0, 10.0]], np.zeros((0, 2)), 4.0, "empty"),
        ([[10.0, 10.0]], [[5.0, 5.0, 1.0]], 4.0, r"\[N, 2\]"),
        ([[10.0, 10.0]], [[-5.0, 5.0]], 4.0, "non-negative"),
    ],
)
def test_anchor_metrics_bad_input(anchors, wh, thr, match):
    with pytest.raises(ValueError, match=match):
        anchor_metrics(np.array(anchors), np.array(wh), thr=thr)


# ------------------------------------------------------------------------------------------ label_wh_pixels
def test_label_wh_pixels_scaling():
    labels = [
        np.array([[0, 0.5, 0.5, 0.5, 0.25], [2, 0.1, 0.1, 0.1, 0.2]]),  # 1280 x 640 image -> 640 x 320
        np.zeros((0, 5)),  # no boxes
        np.array([[1, 0.5, 0.5, 1.0, 0.5]]),  # 200 x 400 image -> 320 x 640
    ]
    shapes = np.array([[1280, 640], [500, 500], [200, 400]])
    exact = label_wh_pixels(labels, shapes, 640, rng=None)
    np.testing.assert_allclose(exact, [[320.0, 80.0], [64.0, 64.0], [320.0, 320.0]])

    jittered = label_wh_pixels(labels, shapes, 640, np.random.default_rng(3))
    factor = jittered / exact
    np.testing.assert_allclose(factor[:, 0], factor[:, 1])  # one factor per box keeps its aspect ratio
    assert ((factor >= 0.9) & (factor <= 1.1)).all()
    assert len(np.unique(factor[:, 0].round(12))) == 3  # a factor per box, not one for all
    np.testing.assert_array_equal(jittered, label_wh_pixels(labels, shapes, 640, np.random.default_rng(3)))

    many = label_wh_pixels(
        [np.array([[0, 0.5, 0.5, 0.5, 0.5]] * 2000)], np.array([[640, 640]]), 640, np.random.default_rng(0)
    )
    factor = many[:, 0] / 320.0
    assert factor.min() >= 0.9 and factor.max() <= 1.1
    assert factor.min() < 0.91 and factor.max() > 1.09  # the whole range is used


def test_label_wh_pixels_empty_and_bad_input():
    assert label_wh_pixels([np.zeros((0, 5))], np.array([[640, 480]]), 640, None).shape == (0, 2)
    with pytest.raises(ValueError, match="2 rows but labels has 1"):
        label_wh_pixels([np.zeros((0, 5))], np.array([[640, 480], [1, 1]]), 640, None)
    with pytest.raises(ValueError, match=r"labels\[0\]"):
        label_wh_pixels([np.zeros((2, 4))], np.array([[640, 480]]), 640, None)
    with pytest.raises(ValueError, match="imgsz"):
        label_wh_pixels([np.zeros((0, 5))], np.array([[640, 480]]), 0, None)
    with pytest.raises(ValueError, match="positive"):
        label_wh_pixels([np.zeros((0, 5))], np.array([[640, 0]]), 640, None)


# ------------------------------------------------------------------------------------------- kmean_anchors
def test_kmean_anchors_finds_clusters():
    wh = _clustered_boxes()
    anchors = kmean_anchors(wh, n=3, generations=200, seed=0)
    assert anchors.shape == (3, 2)
    assert (np.diff(anchors.prod(1)) > 0).all()  # sorted by area
    np.testing.assert_allclose(anchors, CENTRES, rtol=0.15)
    bpr, _ = anchor_metrics(anchors, wh)
    assert bpr >= 0.99


def test_kmean_anchors_nine_anchors_and_determinism():
    wh = _clustered_boxes(seed=1)
    a = kmean_anchors(wh, n=9, generations=200, seed=5)
    b = kmean_anchors(wh, n=9, generations=200, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (9, 2)
    assert (np.diff(a.prod(1)) >= 0).all()
    # every cluster centre has an anchor within 25 %
    for c in CENTRES:
        assert (np.abs(a / c - 1).max(1) < 0.25).any(), (c, a)
    assert anchor_metrics(a, wh)[0] >= 0.99


def test_kmean_anchors_evolution_improves_fitness():
    rng = np.random.default_rng(0)
    wh = np.exp(rng.uniform(np.log(4), np.log(500), size=(400, 2)))  # broad, unclustered sizes
    start = kmean_anchors(wh, n=4, generations=0, seed=0)
    evolved = kmean_anchors(wh, n=4, generations=200, seed=0)
    assert anchor_fitness(evolved, wh) > anchor_fitness(start, wh)


def test_kmean_anchors_constant_side():
    """All boxes share one width (as up to rounding after rescaling): k-means must still converge."""
    wh = np.stack([np.full(60, 6.0), np.linspace(300, 600, 60)], 1) * 0.9171
    anchors = kmean_anchors(wh, n=9, generations=20, seed=0)
    assert anchors.shape == (9, 2)
    assert anchor_metrics(anchors, wh)[0] == 1.0


def test_kmean_anchors_falls_back_when_kmeans_finds_fewer_clusters(caplog):
    wh = np.repeat([[10.0, 20.0], [100.0, 80.0]], 20, axis=0)  # two distinct sizes, three anchors asked for
    with caplog.at_level(logging.WARNING, logger="utils.autoanchor"):
        anchors = kmean_anchors(wh, n=3, generations=100, seed=0)
    assert "found 2 distinct clusters" in caplog.text
    assert anchors.shape == (3, 2)
    assert (np.diff(anchors.prod(1)) > 0).all()
    assert anchor_metrics(anchors, wh)[0] == 1.0


def test_kmean_anchors_drops_tiny_boxes(caplog):
    wh = np.concatenate([_clustered_boxes(), np.full((20, 2), 1.0)])
    with caplog.at_level(logging.WARNING, logger="utils.autoanchor"):
        anchors = kmean_anchors(wh, n=3, generations=50, seed=0)
    assert "20 of 200" in caplog.text
    assert anchors.min() >= 2.0
    np.testing.assert_allclose(anchors, CENTRES, rtol=0.15)


def test_kmean_anchors_bad_input():
    with pytest.raises(ValueError, match="n=3"):
        kmean_anchors(np.array([[10.0, 10.0], [1.0, 1.0], [20.0, 20.0]]), n=3)
    with pytest.raises(ValueError, match="n must"):
        kmean_anchors(_clustered_boxes(), n=0)
    with pytest.raises(ValueError, match="generations"):
        kmean_anchors(_clustered_boxes(), n=3, generations=-1)


# -------------------------------------------------------------------------------------------- check_anchors
def test_check_anchors_replaces_poor_anchors(detect, caplog):
    rng = np.random.default_rng(0)
    thin = np.stack([rng.uniform(5, 10, 150), rng.uniform(300, 600, 150)], 1)  # very tall, narrow boxes
    labels, shapes = _dataset(thin)
    old = detect.anchors.clone()
    wh = label_wh_pixels(labels, shapes, 640, np.random.default_rng(0))
    old_bpr, _ = anchor_metrics(_anchors_px(detect), wh)
    assert old_bpr < 0.5

    with caplog.at_level(logging.INFO, logger="utils.autoanchor"):
        assert check_anchors(detect, labels, shapes, 640, seed=0, generations=200) is True
    assert f"{old_bpr:.3f} Best Possible Recall (BPR)" in caplog.text

    assert detect.anchors.shape == old.shape == (3, 3, 2)
    assert detect.anchors.dtype == old.dtype
    expected = kmean_anchors(wh, n=9, img_size=640, thr=4.0, generations=200, seed=0)
    torch.testing.assert_close(_anchors_px(detect).double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-4)
    new_px = _anchors_px(detect)
    assert (new_px[:, 0] < new_px[:, 1]).all()  # narrow anchors for narrow boxes
    area = new_px.prod(1)
    assert (area[1:] >= area[:-1]).all()  # small anchors on the small-stride levels
    new_bpr, _ = anchor_metrics(new_px, wh)
    assert new_bpr > old_bpr and new_bpr >= 0.99


def test_check_anchors_decreasing_strides(detect):
    """A head listed largest stride first gets its largest anchors on level 0."""
    px = _anchors_px(detect).view(3, 3, 2).flip(0)
    detect.stride = detect.stride.flip(0)  # 32, 16, 8
    detect.anchors[:] = px / detect.stride.view(-1, 1, 1)
    labels, shapes = _dataset(np.stack([np.full(60, 6.0), np.linspace(300, 600, 60)], 1))
    assert check_anchors(detect, labels, shapes, 640, generations=50) is True
    area = _anchors_px(detect).view(3, 3, 2).prod(-1).mean(-1)
    assert area[0] > area[1] > area[2]


def test_check_anchors_keeps_good_anchors(detect, caplog):
    old = detect.anchors.clone()
    labels, shapes = _dataset(np.repeat(_anchors_px(detect).numpy(), 10, axis=0))
    with caplog.at_level(logging.INFO, logger="utils.autoanchor"):
        assert check_anchors(detect, labels, shapes, 640, generations=50) is False
    assert "1.000 Best Possible Recall (BPR)" in caplog.text
    torch.testing.assert_close(detect.anchors, old, rtol=0, atol=0)


def test_check_anchors_keeps_anchors_above_bpr_threshold(detect):
    """99 % of the boxes fit the defaults (BPR 0.99 > 0.98): no refit, though a refit could reach 1.0."""
    old = detect.anchors.clone()
    boxes = np.concatenate([np.repeat(_anchors_px(detect).numpy(), 22, axis=0), [[6.0, 500.0], [6.0, 550.0]]])
    labels, shapes = _dataset(boxes)
    wh = label_wh_pixels(labels, shapes, 640, np.random.default_rng(0))
    assert 0.98 < anchor_metrics(_anchors_px(detect), wh)[0] < 1.0
    assert check_anchors(detect, labels, shapes, 640, generations=50) is False
    torch.testing.assert_close(detect.anchors, old, rtol=0, atol=0)


def test_check_anchors_keeps_anchors_when_fit_is_worse(detect, monkeypatch):
    old = detect.anchors.clone()
    monkeypatch.setattr(autoanchor, "kmean_anchors", lambda wh, n, **kwargs: np.full((n, 2), 5000.0))
    labels, shapes = _dataset(np.stack([np.full(30, 6.0), np.linspace(300, 600, 30)], 1))
    assert check_anchors(detect, labels, shapes, 640) is False
    torch.testing.assert_close(detect.anchors, old, rtol=0, atol=0)


def test_check_anchors_empty_labels_keep_anchors(detect):
    old = detect.anchors.clone()
    assert check_anchors(detect, [np.zeros((0, 5))] * 2, np.array([[640, 480], [320, 320]]), 640) is False
    torch.testing.assert_close(detect.anchors, old, rtol=0, atol=0)


def test_check_anchors_accepts_model_and_rejects_bad_head(detect):
    class Wrapper:
        pass

    wrapper = Wrapper()
    wrapper.detect = detect
    labels, shapes = _dataset(np.stack([np.full(30, 6.0), np.linspace(300, 600, 30)], 1))
    assert check_anchors(wrapper, labels, shapes, 640, generations=20) is True
    detect.stride = torch.tensor([8.0, 16.0])
    with pytest.raises(ValueError, match="2 entries"):
        check_anchors(detect, labels, shapes, 640)
