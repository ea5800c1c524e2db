"""Box conversions round-trip; IoU and CIoU on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.boxes import (
    bbox_iou,
    box_iou,
    clip_boxes,
    scale_boxes,
    xywh2xyxy,
    xywhn2xyxy,
    xyxy2xywh,
    xyxy2xywhn,
)


def test_xyxy_xywh_round_trip_torch_and_numpy():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 1.0]])
    xywh = xyxy2xywh(boxes)
    assert torch.equal(xywh[0], torch.tensor([30.0, 50.0, 40.0, 60.0]))
    assert torch.allclose(xywh2xyxy(xywh), boxes)
    arr = boxes.numpy()
    assert np.allclose(xywh2xyxy(xyxy2xywh(arr)), arr)
    assert isinstance(xyxy2xywh(arr), np.ndarray)
    assert torch.equal(boxes, torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 1.0]]))  # input untouched


def test_normalised_round_trip_with_padding():
    xywhn = np.array([[0.5, 0.25, 0.2, 0.1]])
    xyxy = xywhn2xyxy(xywhn, w=200, h=100, padw=3, padh=4)
    assert np.allclose(xyxy, [[83, 24, 123, 34]])
    xyxy[:, [0, 2]] -= 3
    xyxy[:, [1, 3]] -= 4
    assert np.allclose(xyxy2xywhn(xyxy, w=200, h=100), xywhn)


def test_clip_and_scale_back_from_letterbox():
    # a 200x100 image letterboxed into 128x128: gain 0.64, pad 32 px top and bottom
    original = torch.tensor([[20.0, 10.0, 120.0, 90.0]])
    letterboxed = original * 0.64 + torch.tensor([0.0, 32.0, 0.0, 32.0])
    back = scale_boxes((128, 128), letterboxed, (100, 200))
    assert torch.allclose(back, original, atol=1e-4)
    assert torch.equal(
        clip_boxes(torch.tensor([[-5.0, -5.0, 300.0, 50.0]]), (100, 200)), torch.tensor([[0.0, 0.0, 200.0, 50.0]])
    )


def test_iou_and_ciou():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0]])
    assert box_iou(a, b).item() == pytest.approx(50 / 150)
    assert bbox_iou(a, b, xywh=False).item() == pytest.approx(50 / 150, rel=1e-5)
    # same aspect ratio: CIoU = IoU - centre distance^2 / enclosing diagonal^2 = 1/3 - 25 / (15^2 + 10^2)
    assert bbox_iou(a, b, xywh=False, ciou=True).item() == pytest.approx(1 / 3 - 25 / 325, rel=1e-5)
    # identical boxes: CIoU is 1; differing aspect ratios are penalised
    assert bbox_iou(a, a, xywh=False, ciou=True).item() == pytest.approx(1.0, abs=1e-6)
    tall = torch.tensor([[0.0, 0.0, 5.0, 20.0]])
    v = 4 / math.pi**2 * (math.atan(5 / 20) - math.atan(1)) ** 2
    alpha = v / (1 - 1 / 3 + v)
    expected = 1 / 3 - 31.25 / 500 - alpha * v  # centres (5, 5) and (2.5, 10); enclosing box 10 x 20
    assert bbox_iou(tall, a, xywh=False, ciou=True).item() == pytest.approx(expected, rel=1e-5)
