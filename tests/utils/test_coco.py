import contextlib
import io
import json

import numpy as np
import pytest
import torch

from utils.coco import detections_to_coco, image_id_from_path, save_coco_json
from utils.metrics import ap_per_class, match_predictions

# ---------------------------------------------------------------- format helpers


def test_image_id_from_path():
    assert image_id_from_path("/data/coco/images/000000000139.jpg") == 139
    assert image_id_from_path("dog_01.png") == "dog_01"


def test_detections_to_coco_format_and_rounding():
    det = torch.tensor([[10.12345, 20.5, 30.0, 60.25, 0.876543, 2.0], [0.0, 0.0, 1.0, 1.0, 0.1, 0.0]])
    out = detections_to_coco(det, 42, class_map=[5, 6, 7])
    assert out[0] == {"image_id": 42, "category_id": 7, "bbox": [10.123, 20.5, 19.877, 39.75], "score": 0.87654}
    assert out[1]["category_id"] == 5 and out[1]["bbox"] == [0.0, 0.0, 1.0, 1.0]
    assert detections_to_coco(torch.zeros(0, 6), 1) == []
    with pytest.raises(ValueError, match="class 2"):
        detections_to_coco(det, 42, class_map=[5, 6])
    with pytest.raises(ValueError, match="detections"):
        detections_to_coco(torch.zeros(3, 4), 1)


def test_save_coco_json(tmp_path):
    res = detections_to_coco(np.array([[1, 2, 3, 4, 0.5, 0]]), "a")
    path = save_coco_json(res, tmp_path / "sub" / "pred.json")
    assert json.loads(path.read_text()) == res


# ---------------------------------------------------------------- agreement with pycocotools


def _synthetic_validation_set(seed, n_images=20, nc=3, height=480, width=640):
    """Ground truths and val-like detections (a confident set, duplicates, false positives, then low-confidence
    clutter up to 100 detections per image, as a model run at a tiny conf_thres produces).

    Returns per image ``(image_id, gt_xyxy [m, 4], gt_cls [m], det [n, 6] sorted by score)``.
    """
    rng = np.random.default_rng(seed)
    size = np.array([width, height])
    data = []
    for image_id in range(1, n_images + 1):
        m = int(rng.integers(1, 9))
        wh = rng.uniform(20, 200, (m, 2))
        xy = rng.uniform(0, 1, (m, 2)) * (size - wh)
        gt = np.concatenate([xy, xy + wh], 1)
        cls = rng.integers(0, nc, m)
        dets = []
        for box, c in zip(gt, cls, strict=True):
            scale = np.tile(box[2:] - box[:2], 2)
            if rng.random() < 0.85:  # detected, sometimes twice, sometimes with the wrong class
                c_pred = c if rng.random() < 0.9 else rng.integers(0, nc)
                dets.append([*(box + rng.normal(0, 0.08, 4) * scale), rng.uniform(0.3, 1.0), c_pred])
                if rng.random() < 0.2:
                    dets.append([*(box + rng.normal(0, 0.18, 4) * scale), rng.uniform(0.2, 0.6), c])
            elif rng.random() < 0.9:  # only found with low confidence
                dets.append([*(box + rng.normal(0, 0.1, 4) * scale), rng.uniform(0.001, 0.1), c])
        for low, high, count in ((0.05, 0.7, rng.integers(0, 4)), (0.001, 0.03, None)):
            count = 100 - len(dets) if count is None else count
            for _ in range(count):
                wh2 = rng.uniform(10, 200, 2)
                xy2 = rng.uniform(0, 1, 2) * (size - wh2)
                dets.append([*xy2, *(xy2 + wh2), rng.uniform(low, high), rng.integers(0, nc)])
        det = np.array(dets, dtype=np.float64)
        det[:, [0, 2]] = det[:, [0, 2]].clip(0, width)
        det[:, [1, 3]] = det[:, [1, 3]].clip(0, height)
        det[:, :4] = det[:, :4].round(3)  # what the json holds
        det = det[np.argsort(-det[:, 4], kind="stable")][:100]
        data.append((image_id, gt, cls, det))
    return data


def _coco_ground_truth(
    data: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], nc: int, height: int, width: int
) -> dict:
    """The COCO ground-truth dict of :func:`_synthetic_validation_set`'s images (all ``height`` x ``width``).

    Each image's ``gt_xyxy`` ``[m, 4]`` (pixels) becomes ``m`` annotations with ``bbox = [x, y, w, h]``,
    ``area = w * h`` and ``category_id`` = the class index; annotation ids count from 1.
    """
    images, annotations = [], []
    for image_id, gt, cls, _ in data:
        images.append({"id": image_id, "width": width, "height": height, "file_name": str(image_id)})
        for (x1, y1, x2, y2), c in zip(gt.tolist(), cls.tolist(), strict=True):
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(c),
                 "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": c, "name": str(c)} for c in range(nc)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _pycocotools_eval(gt_dict, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its summary table
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_pycocotools(seed):
    pytest.importorskip("pycocotools")
    height, width = 480, 640
    data = _synthetic_validation_set(seed, height=height, width=width)

    stats, results = [], []
    for image_id, gt, cls, det in data:
        labels = torch.tensor(np.c_[cls, gt])
        det_t = torch.tensor(det)
        stats.append((match_predictions(det_t, labels), det_t[:, 4], det_t[:, 5], labels[:, 0]))
        results += detections_to_coco(det_t, image_id)
    tp, conf, pred_cls, target_cls = (torch.cat(x) for x in zip(*stats, strict=True))
    ours = ap_per_class(tp, conf, pred_cls, target_cls)

    ev = _pycocotools_eval(_coco_ground_truth(data, 3, height, width), results)
    coco_map, coco_map50 = ev.stats[0], ev.stats[1]

    # the matching itself: our TP flags vs COCO's per-detection matches (detection ids follow the results order)
    coco_tp = np.zeros((len(results), 10), bool)
    for e in ev.evalImgs:
        if e is not None and e["aRng"] == [0, 1e10]:
            for j, det_id in enumerate(e["dtIds"]):
                coco_tp[det_id - 1] = e["dtMatches"][:, j] > 0
    np.testing.assert_array_equal(coco_tp, tp.numpy())

    print(f"seed {seed} ours vs COCO: mAP50 {ours.map50:.4f} vs {coco_map50:.4f}", end=", ")
    print(f"mAP50-95 {ours.map:.4f} vs {coco_map:.4f}")
    assert 0.3 < coco_map < coco_map50 < 0.95  # a realistic, non-trivial set
    assert ours.map50 == pytest.approx(coco_map50, abs=0.005)
    assert ours.map == pytest.approx(coco_map, abs=0.005)
