"""The YOLOv5 loss: determinism, target assignment, scaling, and that it trains."""

from __future__ import annotations

import pytest
import torch

from models.yolo import Model
from utils.loss import LossConfig, YoloLoss

TARGETS = torch.tensor(
    [
        [0, 0, 0.50, 0.50, 0.20, 0.30],
        [0, 1, 0.20, 0.70, 0.10, 0.10],
        [1, 2, 0.60, 0.40, 0.50, 0.40],
        [1, 0, 0.30, 0.30, 0.05, 0.08],
    ]
)


def _setup(seed: int = 0, imgsz: int = 128):
    torch.manual_seed(seed)
    model = Model("yolov5n.yaml", nc=3).train()
    cfg = LossConfig.from_hyp({"box": 0.05, "obj": 1.0, "cls": 0.5, "anchor_t": 4.0}, nl=3, nc=3, imgsz=imgsz)
    return (
        model,
        YoloLoss(model.detect, cfg),
        torch.rand(2, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(7)),
    )


def test_finite_and_deterministic():
    model, loss, x = _setup()
    preds = model(x)
    a, parts_a = loss(preds, TARGETS)
    b, parts_b = loss(preds, TARGETS)
    assert torch.isfinite(a).all() and a.shape == (1,)
    assert torch.equal(a, b)
    assert set(parts_a) == {"box", "obj", "cls"}
    total = (parts_a["box"] + parts_a["obj"] + parts_a["cls"]) * x.shape[0]
    assert torch.allclose(total, a.detach().squeeze())
    model2, loss2, _ = _setup()
    assert torch.equal(loss2(model2(x), TARGETS)[0], a)


def test_gains_are_scaled_like_upstream():
    cfg = LossConfig.from_hyp({"box": 0.05, "obj": 1.0, "cls": 0.5, "lr0": 0.01}, nl=3, nc=3, imgsz=320)
    assert cfg.box == pytest.approx(0.05)
    assert cfg.cls == pytest.approx(0.5 * 3 / 80)
    assert cfg.obj == pytest.approx(0.25)


def test_assignment_uses_neighbour_cells_and_anchor_ratio():
    model, loss, x = _setup(imgsz=64)
    preds = model(x)
    # one box centred at (0.3, 0.3) of grid cell (2, 2) on the 8x8 P3 grid: left and upper neighbours join in
    target = torch.tensor([[0, 0, 2.3 / 8, 2.3 / 8, 12 / 64, 16 / 64]])
    level0 = loss.build_targets(preds, target)[0]
    cells = sorted(set(zip(level0.gx.tolist(), level0.gy.tolist(), strict=True)))
    assert cells == [(1, 2), (2, 1), (2, 2)]
    # anchors at P3 are 10x13, 16x30, 33x23 px: a 12x16 px box is within ratio 4 of all three
    assert sorted(set(level0.anchor.tolist())) == [0, 1, 2]
    # a 230x230 px box in a 256 px image is beyond ratio 4 of every P3 anchor, within it of P5's 116x90
    model, loss, x = _setup(imgsz=256)
    big = torch.tensor([[0, 0, 0.5, 0.5, 0.9, 0.9]])
    per_level = [t.image.numel() for t in loss.build_targets(model(x), big)]
    assert per_level[0] == 0 and per_level[2] > 0


def test_no_targets_gives_objectness_loss_only():
    model, loss, x = _setup()
    total, parts = loss(model(x), torch.zeros((0, 6)))
    assert parts["box"] == 0 and parts["cls"] == 0 and parts["obj"] > 0
    total.backward()


def test_label_smoothing_changes_class_loss():
    model, loss, x = _setup()
    preds = model(x)
    smooth = YoloLoss(model.detect, LossConfig(**{**loss.cfg.__dict__, "label_smoothing": 0.2}))
    assert not torch.equal(loss(preds, TARGETS)[1]["cls"], smooth(preds, TARGETS)[1]["cls"])


def test_loss_halves_while_overfitting_two_images():
    model, loss, x = _setup()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        total, _ = loss(model(x), TARGETS)
        first = total.item() if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert total.item() < 0.5 * first, (first, total.item())


def test_last_of_each_finds_the_last_occurrence_of_every_value():
    from utils.loss import _last_of_each

    index = torch.tensor([3, 1, 3, 2, 1, 3])
    assert _last_of_each(index).tolist() == [4, 3, 5]  # values 1, 2, 3 (sorted), last seen at 4, 3 and 5


def test_loss_and_gradient_repeat_exactly_on_several_threads():
    """Many targets share cells (each box appears three times): the gradient used to be summed in a varying order
    on a multi-threaded CPU, so the same step gave different weights from run to run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        model = Model("yolov5n.yaml", nc=3).train()
        raw = [r.detach() for r in model(torch.rand(4, 3, 128, 128))]
        g = torch.Generator().manual_seed(1)
        n = 400
        image = torch.randint(4, (n, 1), generator=g).float()
        cls = torch.randint(3, (n, 1), generator=g).float()
        centre = torch.rand(n, 2, generator=g) * 0.8 + 0.1
        size = torch.rand(n, 2, generator=g) * 0.3 + 0.05
        boxes = torch.cat((image, cls, centre, size), 1)
        targets = boxes.repeat(3, 1)
        hyp = {"box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0}
        loss_fn = YoloLoss(model.detect, LossConfig.from_hyp(hyp, nl=3, nc=3, imgsz=128))
        runs = []
        for _ in range(8):
            preds = [r.clone().requires_grad_() for r in raw]
            total, _ = loss_fn(preds, targets)
            total.backward()
            runs.append((total.detach(), [p.grad for p in preds]))
        for total, grads in runs[1:]:
            assert torch.equal(total, runs[0][0])
            assert all(torch.equal(a, b) for a, b in zip(grads, runs[0][1], strict=True))
    finally:
        torch.set_num_threads(threads)
