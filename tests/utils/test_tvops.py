"""torchvision's NMS kernel without the torchvision package: same results, and the package stays unimported."""

import subprocess
import sys

import torch

from utils.boxes import box_iou
from utils.tvops import batched_nms, nms


def _random_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 300
    wh = torch.rand(n, 2, generator=g) * 80 + 1
    return torch.cat((xy, xy + wh), 1), torch.rand(n, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_nms_and_batched_nms_keep_what_torchvision_keeps():
    import torchvision.ops as tv

    for seed in range(3):
        boxes, scores, groups = _random_boxes(400, seed)
        assert torch.equal(nms(boxes, scores, 0.45), tv.nms(boxes, scores, 0.45))
        assert torch.equal(batched_nms(boxes, scores, groups, 0.45), tv.batched_nms(boxes, scores, groups, 0.45))


def test_many_boxes_run_one_nms_per_group_and_keep_the_same_boxes(monkeypatch):
    """Above PER_GROUP_ABOVE boxes, one NMS per group: the same boxes as the shifted single NMS (and as
    torchvision's batched_nms), by descending score."""
    import torchvision.ops as tv

    import utils.tvops as tvops

    boxes, scores, groups = _random_boxes(3000, 11)
    calls = []
    real = tvops.nms
    monkeypatch.setattr(tvops, "nms", lambda *a: calls.append(len(a[0])) or real(*a))
    many = batched_nms(boxes, scores, groups, 0.45)
    assert len(calls) == 4 and sum(calls) == 3000  # one call per group
    monkeypatch.setattr(tvops, "PER_GROUP_ABOVE", 10_000)
    single = batched_nms(boxes, scores, groups, 0.45)
    assert len(calls) == 5 and calls[-1] == 3000  # one call over all
    assert torch.equal(many.sort().values, single.sort().values)
    assert torch.equal(many.sort().values, tv.batched_nms(boxes, scores, groups, 0.45).sort().values)
    assert torch.all(scores[many][:-1] >= scores[many][1:])


def test_batched_nms_of_nothing_is_empty():
    kept = batched_nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert kept.shape == (0,) and kept.dtype == torch.int64


def test_box_iou_by_hand_and_against_torchvision():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    expected = torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.0, 0.0]])  # overlap 1 of union 4 + 4 - 1; empty box: 0
    assert torch.allclose(box_iou(a, b), expected)
    import torchvision.ops as tv

    boxes, _, _ = _random_boxes(50, 7)
    assert torch.allclose(box_iou(boxes[:20], boxes[20:]), tv.box_iou(boxes[:20], boxes[20:]), atol=1e-6)


def test_nms_does_not_import_the_torchvision_package():
    code = (
        "import sys, torch\n"
        "from utils.nms import non_max_suppression\n"
        "pred = torch.rand(1, 50, 8)\n"
        "pred[..., 2:4] *= 20\n"
        "out = non_max_suppression(pred, 0.1, 0.5)\n"
        "print(len(out[0]) > 0, 'torchvision' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "False"], proc.stdout + proc.stderr
