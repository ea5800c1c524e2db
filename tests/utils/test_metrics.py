import numpy as np
import pytest
import torch

from utils.metrics import (
    IOU_THRESHOLDS,
    ConfusionMatrix,
    ap_per_class,
    compute_ap,
    fitness,
    match_predictions,
    smooth,
)


def _det(rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)


def _lab(rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


# ---------------------------------------------------------------- matching


def test_match_predictions_hand_built():
    labels = _lab([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30]])
    dets = _det(
        [
            [0, 0, 10, 10, 0.9, 0],  # exact hit on label 0
            [1, 0, 11, 10, 0.8, 0],  # duplicate of label 0 (IoU 0.82) -> FP, label already taken
            [20, 20, 30, 30, 0.7, 0],  # right place, wrong class -> FP
            [20, 20, 30, 35, 0.6, 1],  # label 1 with IoU 100/150 = 0.667 -> TP up to threshold 0.65
        ]
    )
    correct = match_predictions(dets, labels)
    assert correct.shape == (4, 10) and correct.dtype == torch.bool
    assert correct[0].all()
    assert not correct[1].any()
    assert not correct[2].any()
    assert correct[3].tolist() == [True] * 4 + [False] * 6  # 0.50, 0.55, 0.60, 0.65 <= 0.667 < 0.70


def test_match_predictions_higher_score_wins_then_thresholds_are_independent():
    labels = _lab([[0, 0, 0, 10, 10]])
    dets = _det(
        [
            [0, 0, 10, 15, 0.9, 0],  # IoU 0.667, high score
            [0, 0, 10, 11, 0.5, 0],  # IoU 0.909, low score
        ]
    )
    correct = match_predictions(dets, labels)
    # while both are eligible (t <= 0.65) the higher-scoring detection keeps the label
    assert correct[0].tolist() == [True] * 4 + [False] * 6
    # from t = 0.70 only the better-localised one is eligible, up to 0.90 <= 0.909
    assert correct[1].tolist() == [False] * 4 + [True] * 5 + [False]


def test_match_predictions_detection_picks_its_best_label():
    labels = _lab([[0, 0, 0, 10, 10], [0, 2, 0, 12, 10]])  # two overlapping labels of the same class
    dets = _det([[2, 0, 12, 10, 0.9, 0]])  # exact copy of label 1
    correct = match_predictions(dets, labels, iouv=torch.tensor([0.5]))
    assert correct.tolist() == [[True]]
    dets2 = _det([[2, 0, 12, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 0]])
    assert match_predictions(dets2, labels, iouv=torch.tensor([0.5])).tolist() == [[True], [True]]


def test_match_predictions_empty_and_bad_shapes():
    assert match_predictions(_det([]), _lab([[0, 0, 0, 1, 1]])).shape == (0, 10)
    assert not match_predictions(_det([[0, 0, 1, 1, 0.5, 0]]), _lab([])).any()
    with pytest.raises(ValueError, match="detections"):
        match_predictions(torch.zeros(3, 4), _lab([]))
    with pytest.raises(ValueError, match="labels"):
        match_predictions(_det([]), torch.zeros(2, 4))


# ---------------------------------------------------------------- AP


def test_compute_ap_hand_computed():
    # one of two objects found at precision 1: envelope 1 on [0, 0.5], then the sentinel line down to (1, 0)
    ap, mpre, mrec = compute_ap(np.array([0.5]), np.array([1.0]))
    assert ap == pytest.approx(0.5 + 0.25)
    assert mrec.tolist() == [0.0, 0.5, 1.0] and mpre.tolist() == [1.0, 1.0, 0.0]

    # 3 objects, ranked TP FP TP TP: recall 1/3 1/3 2/3 1, precision 1 1/2 2/3 3/4.
    # envelope = 1 for recall <= 1/3, 0.75 above; on the 101-point grid: f = 1 at 0..0.33 (34 points),
    # 0.75 at 0.34..1.0 (67 points); trapezoid = 0.01 * (34 + 67 * 0.75 - (1 + 0.75) / 2) = 0.83375
    ap, _, _ = compute_ap(np.array([1, 1, 2, 3]) / 3, np.array([1, 1 / 2, 2 / 3, 3 / 4]))
    assert ap == pytest.approx(0.83375)

    ap, _, _ = compute_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0]))
    assert ap == pytest.approx(1.0)


def test_compute_ap_shape_mismatch():
    with pytest.raises(ValueError, match="recall"):
        compute_ap(np.zeros(3), np.zeros(2))


def test_smooth_keeps_length_and_constants():
    y = np.full(1000, 0.3)
    np.testing.assert_allclose(smooth(y, 0.1), y)
    step = np.r_[np.zeros(500), np.ones(500)]
    s = smooth(step, 0.1)
    assert s.shape == (1000,) and 0 < s[500] < 1 and s[0] == 0 and s[-1] == 1


def _random_dataset(rng, n_images=10, nc=3, size=640):
    images = []
    for _ in range(n_images):
        m = int(rng.integers(1, 8))
        wh = rng.uniform(10, 150, (m, 2))
        xy = rng.uniform(0, size - 150, (m, 2))
        images.append((np.concatenate([xy, xy + wh], 1), rng.integers(0, nc, m)))
    return images


def _evaluate(images, det_boxes):
    stats = []
    for (boxes, cls), pred in zip(images, det_boxes, strict=True):
        labels = torch.tensor(np.c_[cls, boxes], dtype=torch.float32)
        det = torch.tensor(pred, dtype=torch.float32)
        order = det[:, 4].argsort(descending=True)
        det = det[order]
        stats.append((match_predictions(det, labels), det[:, 4], det[:, 5], labels[:, 0]))
    tp, conf, pcls, tcls = (torch.cat(x) for x in zip(*stats, strict=True))
    return ap_per_class(tp, conf, pcls, tcls)


def test_perfect_predictions_give_map_one():
    rng = np.random.default_rng(0)
    images = _random_dataset(rng)
    preds = [np.c_[boxes, rng.uniform(0.3, 1.0, len(cls)), cls] for boxes, cls in images]
    res = _evaluate(images, preds)
    assert res.map50 == pytest.approx(1.0, abs=1e-9)
    assert res.map == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(res.p, 1.0, atol=1e-6)
    np.testing.assert_allclose(res.r, 1.0, atol=1e-6)
    assert fitness(res.mean_results()) == pytest.approx(1.0)
    assert res.classes.tolist() == sorted({int(c) for _, cls in images for c in cls})


def test_shuffled_boxes_give_low_map():
    rng = np.random.default_rng(1)
    images = _random_dataset(rng, n_images=20)
    all_boxes = np.concatenate([b for b, _ in images])
    shuffled = all_boxes[rng.permutation(len(all_boxes))]
    preds, start = [], 0
    for _, cls in images:  # every object keeps its class and gets some other object's box
        n = len(cls)
        preds.append(np.c_[shuffled[start : start + n], rng.uniform(0.3, 1.0, n), cls])
        start += n
    res = _evaluate(images, preds)
    assert res.map50 < 0.3
    assert res.map < 0.3


def test_ap_per_class_class_without_predictions_and_curves():
    # class 0: one object, found; class 1: one object, never predicted
    tp = np.ones((1, 10), bool)
    res = ap_per_class(tp, np.array([0.9]), np.array([0]), np.array([0, 1]))
    assert res.classes.tolist() == [0, 1]
    assert res.ap.shape == (2, 10)
    assert res.ap[0] == pytest.approx(np.ones(10))
    assert not res.ap[1].any()
    assert res.map50 == pytest.approx(0.5)
    assert res.px.shape == (1000,) and res.pr_curve.shape == res.f1_curve.shape == (2, 1000)
    assert res.r[0] == pytest.approx(1.0) and res.r[1] == 0
    assert 0.0 <= res.best_conf <= 0.9
    with pytest.raises(ValueError, match="same first dimension"):
        ap_per_class(np.ones((2, 10), bool), np.array([0.9]), np.array([0]), np.array([0]))


def test_fitness_weights():
    assert fitness([0.5, 0.6, 0.4, 0.2]) == pytest.approx(0.1 * 0.4 + 0.9 * 0.2)
    np.testing.assert_allclose(fitness(np.array([[1, 1, 1, 0], [0, 0, 0, 1]])), [0.1, 0.9])
    with pytest.raises(ValueError, match="metrics"):
        fitness([0.1, 0.2])


def test_iou_thresholds():
    np.testing.assert_allclose(IOU_THRESHOLDS.numpy(), np.arange(10) * 0.05 + 0.5, atol=1e-6)


# ---------------------------------------------------------------- confusion matrix


def test_confusion_matrix_hand_built():
    cm = ConfusionMatrix(nc=2, conf=0.25, iou_thres=0.45)
    labels = _lab([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30], [1, 50, 50, 60, 60]])
    dets = _det(
        [
            [0, 0, 10, 10, 0.9, 0],  # correct
            [20, 20, 30, 30, 0.8, 0],  # class 1 object predicted as class 0
            [100, 100, 110, 110, 0.7, 1],  # false positive
            [50, 50, 60, 60, 0.1, 1],  # below conf: ignored -> third object is missed
        ]
    )
    cm.process_batch(dets, labels)
    expected = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(cm.matrix, expected)

    # duplicates: only one detection takes the object, the other is background FP
    cm.process_batch(_det([[0, 0, 10, 10, 0.9, 0], [1, 0, 11, 10, 0.8, 0]]), _lab([[0, 0, 0, 10, 10]]))
    expected += np.array([[1, 0, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(cm.matrix, expected)

    cm.process_batch(None, _lab([[1, 0, 0, 5, 5]]))  # no detections: missed object
    cm.process_batch(_det([[0, 0, 5, 5, 0.5, 1]]), _lab([]))  # no labels: false positive
    expected += np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(cm.matrix, expected)

    tp = np.diag(cm.matrix)[:2]  # per class: predicted as the true class
    assert tp.tolist() == [2, 0]
    assert (cm.matrix.sum(1)[:2] - tp).tolist() == [2, 2]  # per class: predicted as it, but something else


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match="nc"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="conf"):
        ConfusionMatrix(2, conf=3)
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="class ids"):
        cm.process_batch(_det([[0, 0, 5, 5, 0.9, 7]]), _lab([]))
