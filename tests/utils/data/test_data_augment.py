"""Letterbox, affine/perspective, mosaic, HSV, flips and mixup."""

import random

import numpy as np
import pytest
from synth_data import COLOURS, assert_boxes_cover_rectangles, colour_mask

from utils.boxes import scale_boxes, xywhn2xyxy
from utils.data.augment import (
    augment_hsv,
    box_candidates,
    letterbox,
    mixup,
    mosaic4,
    random_flips,
    random_perspective,
)


def seed(n: int) -> None:
    random.seed(n)
    np.random.seed(n)


def canvas(h: int, w: int, rects) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with filled rectangles and its labels ``[n, 5]`` (cls, cx, cy, w, h) normalised."""
    img = np.full((h, w, 3), 70, np.uint8)
    labels = []
    for c, x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = COLOURS[c]
        labels.append([c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
    return img, np.array(labels, np.float32).reshape(-1, 5)


@pytest.mark.parametrize(
    "shape, new, kwargs, out",
    [
        ((30, 60), 64, {"auto": False}, (64, 64)),
        ((30, 60), 64, {"auto": True}, (32, 64)),
        ((30, 60), (40, 96), {"auto": False}, (40, 96)),
        ((30, 60), 64, {"scale_fill": True}, (64, 64)),
        ((30, 60), 640, {"auto": False, "scaleup": False}, (640, 640)),
        ((45, 20), 64, {"auto": True, "stride": 16}, (64, 32)),
    ],
)
def test_letterbox_shapes(shape, new, kwargs, out):
    img = np.zeros((*shape, 3), np.uint8)
    res, ratio, pad = letterbox(img, new, **kwargs)
    assert res.shape[:2] == out
    if kwargs.get("scaleup") is False:
        assert ratio == (1.0, 1.0)
    if kwargs.get("scale_fill"):
        assert ratio == (64 / 60, 64 / 30) and pad == (0.0, 0.0)


def test_letterbox_pads_both_sides_with_colour():
    img = np.full((20, 40, 3), 255, np.uint8)
    res, (gw, gh), (pw, ph) = letterbox(img, 40, auto=False, color=(1, 2, 3))
    assert res.shape == (40, 40, 3) and (gw, gh) == (1.0, 1.0) and (pw, ph) == (0.0, 10.0)
    assert (res[:10] == (1, 2, 3)).all() and (res[30:] == (1, 2, 3)).all() and (res[10:30] == 255).all()
    res, _, (pw, ph) = letterbox(np.full((21, 40, 3), 255, np.uint8), 40, auto=False)
    assert ph == 9.0 and (res[:9] == 114).all() and (res[9:30] == 255).all() and (res[30:] == 114).all()


@pytest.mark.parametrize("shape, new, auto", [((37, 91), 64, False), ((91, 37), 64, True), ((50, 50), (32, 96), False)])
def test_letterbox_round_trip_with_scale_boxes(shape, new, auto):
    img = np.zeros((*shape, 3), np.uint8)
    box = np.array([[3.0, 5.0, shape[1] - 7.0, shape[0] - 2.0]])
    res, (gw, gh), (pw, ph) = letterbox(img, new, auto=auto)
    mapped = box * [gw, gh, gw, gh] + [pw, ph, pw, ph]
    assert mapped[:, [0, 2]].max() <= res.shape[1] and mapped[:, [1, 3]].max() <= res.shape[0]
    back = scale_boxes(res.shape[:2], mapped, shape, ratio_pad=((gh, gw), (pw, ph)))
    np.testing.assert_allclose(back, box, atol=1e-6)


def test_identity_perspective_changes_nothing():
    img, lab = canvas(48, 64, [(0, 5, 6, 30, 40)])
    boxes = np.concatenate((lab[:, :1], xywhn2xyxy(lab[:, 1:], 64, 48)), 1)
    out, out_lab = random_perspective(img, boxes, 0, 0, 0, 0, 0)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(out_lab, boxes)


def test_box_candidates_rules():
    before = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 50, 10], [0, 0, 10, 10.0]])
    after = np.array([[0, 0, 10, 10], [0, 0, 1.5, 10], [0, 0, 3, 3], [0, 0, 50, 2.1], [0, 0, 4, 3.0]])
    assert box_candidates(before, after).tolist() == [True, False, False, False, True]


@pytest.mark.parametrize("trial", range(40))
def test_mosaic_and_affine_keep_boxes_consistent(trial):
    s = 64
    images, labels = [], []
    for k in range(4):
        hh, ww = (64, 48) if k % 2 else (40, 64)
        img, lab = canvas(hh, ww, [(k, 4 + k, 5, 4 + k + 20, 5 + 18), (3 - k, ww - 22, hh - 17, ww - 3, hh - 3)])
        images.append(img)
        labels.append(lab)
    seed(trial)
    mosaic, mlabels = mosaic4(images, labels, s)
    assert mosaic.shape == (2 * s, 2 * s, 3) and mlabels.shape[1] == 5
    assert_boxes_cover_rectangles(mosaic, mlabels, max_lost_area=None, min_side=0)  # nothing dropped yet
    out, olabels = random_perspective(mosaic, mlabels, 10, 0.1, 0.5, 2, 0.0, border=(-s // 2, -s // 2))
    assert out.shape == (s, s, 3)
    assert_boxes_cover_rectangles(out, olabels, max_lost_area=0.1 * 20 * 18 * 1.5**2)


def test_perspective_warp_keeps_boxes_consistent():
    img, lab = canvas(64, 64, [(0, 10, 12, 40, 50), (2, 44, 4, 60, 20)])
    boxes = np.concatenate((lab[:, :1], xywhn2xyxy(lab[:, 1:], 64, 64)), 1)
    for n in range(10):
        seed(n)
        out, out_lab = random_perspective(img, boxes, 5, 0.05, 0.2, 2, 0.001)
        assert_boxes_cover_rectangles(out, out_lab, max_lost_area=0.1 * 30 * 38 * 1.2**2)


def test_hsv_is_seeded_and_zero_gain_is_identity():
    img, _ = canvas(16, 16, [(0, 0, 0, 8, 8), (1, 8, 8, 16, 16)])
    same = img.copy()
    augment_hsv(same, 0, 0, 0)
    np.testing.assert_array_equal(same, img)
    a, b = img.copy(), img.copy()
    seed(3)
    augment_hsv(a, 0.5, 0.5, 0.5)
    seed(3)
    augment_hsv(b, 0.5, 0.5, 0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img) and a.dtype == np.uint8


def test_flips_move_pixels_and_labels_together():
    img, lab = canvas(40, 60, [(0, 2, 3, 20, 13)])
    seed(0)
    out = random_flips(img, lab, fliplr=1.0, flipud=1.0)
    x1, y1, x2, y2 = xywhn2xyxy(lab[:, 1:], 60, 40)[0].round().astype(int)
    assert (x1, y1, x2, y2) == (40, 27, 58, 37)
    assert (colour_mask(out, 0)[y1:y2, x1:x2] == 1).all() and colour_mask(out, 0).sum() == 18 * 10
    out2 = random_flips(img, lab.copy(), fliplr=0.0, flipud=0.0)
    np.testing.assert_array_equal(out2, img)


def test_mixup_blends_and_concatenates():
    a, b = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    seed(1)
    img, lab = mixup(a, np.ones((2, 5)), b, np.zeros((1, 5)))
    assert img.dtype == np.uint8 and 60 < img.mean() < 140 and lab.shape == (3, 5)


def test_mosaic4_rejects_wrong_count():
    with pytest.raises(ValueError, match="4 images"):
        mosaic4([np.zeros((8, 8, 3), np.uint8)] * 3, [np.zeros((0, 5))] * 3, 8)
