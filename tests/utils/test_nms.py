import pytest
import torch

import utils.nms as nms_module
from utils import tvops
from utils.nms import non_max_suppression


def _pred(rows, nc):
    """rows: (cx, cy, w, h, obj, *cls_probs) -> [1, N, 5 + nc]."""
    t = torch.tensor(rows, dtype=torch.float32).reshape(1, -1, 5 + nc)
    return t


def test_overlapping_same_class_boxes_are_suppressed():
    # two boxes 100x100 offset by 10 px (IoU ~0.82), same class; the higher score survives
    pred = _pred([[100, 100, 100, 100, 0.9, 0.9, 0.1], [110, 100, 100, 100, 0.8, 0.9, 0.1]], nc=2)
    (out,) = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.45)
    assert out.shape == (1, 6)
    torch.testing.assert_close(out[0, :4], torch.tensor([50.0, 50.0, 150.0, 150.0]))
    assert out[0, 5] == 0


def test_non_overlapping_boxes_are_kept():
    pred = _pred([[100, 100, 50, 50, 0.9, 1.0], [300, 300, 50, 50, 0.8, 1.0]], nc=1)
    (out,) = non_max_suppression(pred)
    assert out.shape[0] == 2


def test_different_classes_kept_unless_agnostic():
    pred = _pred([[100, 100, 100, 100, 0.9, 0.9, 0.1], [105, 100, 100, 100, 0.8, 0.1, 0.9]], nc=2)
    (out,) = non_max_suppression(pred, iou_thres=0.45)
    assert sorted(out[:, 5].tolist()) == [0.0, 1.0]
    (out_agn,) = non_max_suppression(pred, iou_thres=0.45, agnostic=True)
    assert out_agn.shape[0] == 1
    assert out_agn[0, 5] == 0  # the higher score 0.81 (class 0) beats 0.72 (class 1)


def test_score_is_objectness_times_class_probability():
    pred = _pred([[50, 60, 20, 40, 0.8, 0.1, 0.6, 0.3]], nc=3)
    (out,) = non_max_suppression(pred, conf_thres=0.25)
    assert out.shape == (1, 6)
    torch.testing.assert_close(out[0], torch.tensor([40.0, 40.0, 60.0, 80.0, 0.8 * 0.6, 1.0]))


def test_low_objectness_or_low_product_is_dropped():
    pred = _pred(
        [
            [50, 50, 20, 20, 0.2, 1.0],  # objectness below threshold although class prob is 1
            [150, 150, 20, 20, 0.5, 0.4],  # obj passes, obj*cls = 0.2 does not
            [250, 250, 20, 20, 0.6, 0.5],  # 0.3 passes
        ],
        nc=1,
    )
    (out,) = non_max_suppression(pred, conf_thres=0.25)
    assert out.shape[0] == 1
    torch.testing.assert_close(out[0, 4], torch.tensor(0.3))


def test_multi_label_keeps_every_class_above_threshold():
    pred = _pred([[100, 100, 50, 50, 1.0, 0.9, 0.7, 0.1]], nc=3)
    (single,) = non_max_suppression(pred, conf_thres=0.25)
    (multi,) = non_max_suppression(pred, conf_thres=0.25, multi_label=True)
    assert single[:, 5].tolist() == [0.0]
    assert sorted(multi[:, 5].tolist()) == [0.0, 1.0]
    assert torch.allclose(multi[:, 4].sort(descending=True).values, torch.tensor([0.9, 0.7]))


def test_classes_filter():
    pred = _pred([[100, 100, 50, 50, 0.9, 0.9, 0.1], [300, 300, 50, 50, 0.9, 0.1, 0.9]], nc=2)
    (out,) = non_max_suppression(pred, classes=[1])
    assert out[:, 5].tolist() == [1.0]
    (none,) = non_max_suppression(pred, classes=torch.tensor([], dtype=torch.long))
    assert none.shape == (0, 6)


def test_max_det_keeps_highest_scores_sorted():
    rows = [[20 + 60 * i, 50, 40, 40, 0.3 + 0.05 * i, 1.0] for i in range(10)]  # disjoint boxes
    (out,) = non_max_suppression(_pred(rows, nc=1), max_det=3)
    assert out.shape[0] == 3
    torch.testing.assert_close(out[:, 4], torch.tensor([0.75, 0.70, 0.65]))


def test_max_nms_limits_candidates():
    rows = [[20 + 60 * i, 50, 40, 40, 0.3 + 0.05 * i, 1.0] for i in range(10)]
    (out,) = non_max_suppression(_pred(rows, nc=1), max_nms=4)
    assert out.shape[0] == 4
    torch.testing.assert_close(out[:, 4], torch.tensor([0.75, 0.70, 0.65, 0.60]))


def test_batch_and_empty_inputs():
    empty = torch.zeros(2, 0, 7)
    outs = non_max_suppression(empty)
    assert len(outs) == 2 and all(o.shape == (0, 6) for o in outs)
    low = torch.full((3, 5, 7), 0.01)
    assert all(o.shape == (0, 6) for o in non_max_suppression(low))
    # tuple output of an inference model: (decoded, raw)
    pred = _pred([[100, 100, 50, 50, 0.9, 0.9, 0.1]], nc=2)
    (out,) = non_max_suppression((pred, None))
    assert out.shape == (1, 6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"conf_thres": 1.5}, "conf_thres"),
        ({"conf_thres": -0.1}, "conf_thres"),
        ({"iou_thres": 2.0}, "iou_thres"),
        ({"max_det": 0}, "max_det"),
        ({"classes": [5]}, "classes"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    pred = _pred([[100, 100, 50, 50, 0.9, 0.9, 0.1]], nc=2)
    with pytest.raises(ValueError, match=name):
        non_max_suppression(pred, **kwargs)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="prediction"):
        non_max_suppression(torch.zeros(4, 7))


def test_images_in_threads_give_the_serial_result_in_order(monkeypatch):
    """With several intra-op threads, images are suppressed on a thread pool; each image's detections and the
    order of the images are those of the one-thread path."""
    import threading

    import utils.nms as nms_module

    g = torch.Generator().manual_seed(0)
    n, nc = 400, 3
    xy = torch.rand(5, n, 2, generator=g) * 300
    wh = 10 + torch.rand(5, n, 2, generator=g) * 60
    pred = torch.cat([xy, wh, torch.rand(5, n, 1 + nc, generator=g)], 2)
    pred[3, :, 4] = 0.0  # an image without candidates keeps its place
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    serial = non_max_suppression(pred, conf_thres=0.1, multi_label=True)
    names = set()
    one_image = nms_module._nms_one_image

    def recording(*args, **kwargs):
        names.add(threading.current_thread().name)
        return one_image(*args, **kwargs)

    monkeypatch.setattr(nms_module, "_nms_one_image", recording)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    threaded = non_max_suppression(pred, conf_thres=0.1, multi_label=True)
    assert names and all(name.startswith("nms") for name in names)
    assert len(threaded) == 5 and threaded[3].shape == (0, 6)
    assert all(torch.equal(a, b) for a, b in zip(serial, threaded, strict=True))
    assert sum(len(d) for d in serial) > 20


def _clustered_candidates(n: int, clusters: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` xyxy boxes jittered around ``clusters`` centres (few clusters: most boxes suppress each other)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(clusters, 2, generator=g) * 600
    xy = centres[torch.randint(clusters, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 4
    wh = 20 + torch.rand(n, 2, generator=g) * 10
    boxes = torch.cat((xy, xy + wh), 1)
    scores = torch.rand(n, generator=g).round(decimals=3)  # rounded: equal scores occur
    return boxes, scores, torch.randint(3, (n,), generator=g)


@pytest.mark.parametrize(("clusters", "max_det", "first_try"), [(4000, 50, True), (2, 50, False), (5, 300, False)])
def test_nms_on_the_best_candidates_first_is_exact(monkeypatch, clusters, max_det, first_try):
    boxes, scores, groups = _clustered_candidates(5000, clusters, seed=clusters)
    full = tvops.batched_nms(boxes, scores, groups, 0.6).tolist()
    expected = sorted(full, key=lambda i: (-float(scores[i]), i))[:max_det]  # by score, ties by index

    sizes = []
    real = nms_module.batched_nms
    monkeypatch.setattr(nms_module, "batched_nms", lambda b, *a: sizes.append(len(b)) or real(b, *a))
    got = nms_module._first_kept(boxes, scores, groups, 0.6, max_det)
    assert got.tolist() == expected
    assert sizes[0] == 4 * max_det  # it starts with the best 4 * max_det candidates
    assert (len(sizes) == 1) == first_try  # and takes more only when those keep fewer than max_det
