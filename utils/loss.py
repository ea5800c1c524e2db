"""The YOLOv5 v6.0 detection loss, outside the model.

Targets are ``[N, 6]`` rows ``(image index in batch, class, cx, cy, w, h)`` with the box normalised to the
network input (0..1). Predictions are the model's raw per-level outputs ``[B, na, H_i, W_i, 5 + nc]``.

Matching: a target is assigned to every anchor of a level whose width and height ratios to it are all within
``anchor_t`` (4.0), in its own grid cell and in the two neighbouring cells nearest to its centre (offset 0.5).
Box loss ``1 - CIoU``; objectness BCE against the detached IoU clamped at 0 (blended by ``gr``); class BCE with
optional label smoothing; objectness balanced per level (4.0, 1.0, 0.4). The total is the sum of the gained parts
times the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from utils.boxes import bbox_iou

#: Objectness weight per level, for 3 levels (P3-P5) and for 5 levels (P3-P7).
OBJ_BALANCE = {3: (4.0, 1.0, 0.4), 5: (4.0, 1.0, 0.25, 0.06, 0.02)}


@dataclass
class LossConfig:
    """Loss hyperparameters (names as in YOLOv5 hyp yaml files). Use :meth:`from_hyp` to apply the scaling."""

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    cls_pw: float = 1.0  # positive-class weight of the class BCE
    obj_pw: float = 1.0  # positive weight of the objectness BCE
    anchor_t: float = 4.0  # max width/height ratio between a target and an anchor it is matched to
    fl_gamma: float = 0.0  # focal loss gamma (0 = plain BCE)
    label_smoothing: float = 0.0
    gr: float = 1.0  # objectness target: (1 - gr) + gr * IoU

    @classmethod
    def from_hyp(cls, hyp: dict, nl: int = 3, nc: int = 80, imgsz: int = 640, label_smoothing: float = 0.0):
        """Read a hyp dict and scale the gains as YOLOv5's train.py does.

        ``box *= 3 / nl``; ``cls *= nc / 80 * 3 / nl``; ``obj *= (imgsz / 640)^2 * 3 / nl``.
        Unknown keys in ``hyp`` (learning rates, augmentation) are ignored.
        """
        names = {f.name for f in fields(cls)}
        cfg = cls(**{k: float(v) for k, v in hyp.items() if k in names and k != "label_smoothing"})
        cfg.box *= 3 / nl
        cfg.cls *= nc / 80 * 3 / nl
        cfg.obj *= (imgsz / 640) ** 2 * 3 / nl
        cfg.label_smoothing = float(label_smoothing)
        return cfg


class FocalBCE(nn.Module):
    """Focal loss (Lin et al. 2017) around BCE-with-logits: ``BCE * alpha_t * (1 - p_t)^gamma``, mean-reduced."""

    def __init__(self, bce: nn.BCEWithLogitsLoss, gamma: float = 1.5, alpha: float = 0.25):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=bce.pos_weight, reduction="none")
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.bce(logits, target)
        p = torch.sigmoid(logits)
        p_t = target * p + (1 - target) * (1 - p)
        alpha_t = target * self.alpha + (1 - target) * (1 - self.alpha)
        return (loss * alpha_t * (1.0 - p_t) ** self.gamma).mean()


# Cell offsets tried for each target: its own cell, then left, up, right, down (scaled by the 0.5 threshold).
_NEIGHBOURS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32)
_OFFSET = 0.5


@dataclass
class LevelTargets:
    """Targets assigned to one level: indices of the predicting cells and what they should predict."""

    image: torch.Tensor  # [n] image index in the batch
    anchor: torch.Tensor  # [n] anchor index
    gy: torch.Tensor  # [n] grid row
    gx: torch.Tensor  # [n] grid column
    box: torch.Tensor  # [n, 4] (x offset in cell, y offset in cell, w, h) in grid units
    anchor_wh: torch.Tensor  # [n, 2] matched anchor size in grid units
    cls: torch.Tensor  # [n] class index


def _cell_index(p: torch.Tensor, t) -> torch.Tensor:
    """Row of each target's cell ``(image, anchor, gy, gx)`` in ``p [B, na, H, W, 5 + nc]`` viewed as
    ``[B * na * H * W, 5 + nc]``; int64 ``[n]``."""
    _, na, h, w, _ = p.shape
    return ((t.image * na + t.anchor) * h + t.gy) * w + t.gx


def _last_of_each(index: torch.Tensor) -> torch.Tensor:
    """Positions in ``index [n]`` of the last occurrence of each distinct value: writing only those makes a
    scatter with repeated indices give what a serial loop would (the last write wins), on any number of threads."""
    _, inverse = torch.unique(index, return_inverse=True)
    order = torch.arange(index.numel(), device=index.device)
    last = torch.zeros(int(inverse.max()) + 1, dtype=order.dtype, device=index.device)
    return last.scatter_reduce_(0, inverse, order, reduce="amax", include_self=False)


class YoloLoss:
    """Callable YOLOv5 loss for a model with a :class:`models.head.Detect` head.

    ``loss(preds, targets)`` returns ``(total, parts)``: ``total`` is a 1-element tensor to backpropagate,
    ``parts`` a dict of detached scalars ``{"box", "obj", "cls"}`` (the gained per-image losses).
    The head's anchors are read at every call, so anchors changed by autoanchor are used.
    """

    def __init__(self, detect: nn.Module, cfg: LossConfig):
        self.detect = detect
        self.cfg = cfg
        self.nc, self.na, self.nl = detect.nc, detect.na, detect.nl
        if self.nl not in OBJ_BALANCE:
            raise ValueError(f"no objectness balance defined for {self.nl} detection levels; known: {OBJ_BALANCE}")
        self.balance = OBJ_BALANCE[self.nl]
        device = detect.anchors.device
        self.bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([cfg.cls_pw], device=device))
        self.bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([cfg.obj_pw], device=device))
        if cfg.fl_gamma > 0:
            self.bce_cls = FocalBCE(self.bce_cls, cfg.fl_gamma)
            self.bce_obj = FocalBCE(self.bce_obj, cfg.fl_gamma)
        # label smoothing: positive target 1 - eps/2, negative eps/2
        self.cls_pos = 1.0 - 0.5 * cfg.label_smoothing
        self.cls_neg = 0.5 * cfg.label_smoothing

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor):
        device = preds[0].device
        l_box = torch.zeros((), device=device)
        l_obj = torch.zeros((), device=device)
        l_cls = torch.zeros((), device=device)
        for i, (p, t) in enumerate(zip(preds, self.build_targets(preds, targets), strict=True)):
            obj_target = torch.zeros(p.shape[:4], dtype=p.dtype, device=device)
            if t.image.numel():
                cells = _cell_index(p, t)  # [n] row of each target's cell in p viewed as [B * na * H * W, 5 + nc]
                # index_select, not p[image, anchor, gy, gx]: the latter's gradient is an accumulating index_put,
                # which on a multi-threaded CPU adds a cell's duplicates in a varying order (runs that differ)
                ps = p.reshape(-1, p.shape[-1]).index_select(0, cells)  # [n, 5 + nc]
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * t.anchor_wh
                iou = bbox_iou(torch.cat((pxy, pwh), 1), t.box, xywh=True, ciou=True)
                l_box = l_box + (1.0 - iou).mean()
                score = iou.detach().clamp(min=0).to(obj_target.dtype)
                last = _last_of_each(cells)  # a cell given to several targets takes the last one's score
                obj_target.view(-1)[cells[last]] = ((1.0 - self.cfg.gr) + self.cfg.gr * score)[last]
                if self.nc > 1:
                    cls_target = torch.full_like(ps[:, 5:], self.cls_neg)
                    cls_target[torch.arange(len(t.cls), device=device), t.cls] = self.cls_pos
                    l_cls = l_cls + self.bce_cls(ps[:, 5:], cls_target)
            l_obj = l_obj + self.bce_obj(p[..., 4], obj_target) * self.balance[i]

        l_box = l_box * self.cfg.box
        l_obj = l_obj * self.cfg.obj
        l_cls = l_cls * self.cfg.cls
        batch_size = preds[0].shape[0]
        total = (l_box + l_obj + l_cls) * batch_size
        parts = {"box": l_box.detach(), "obj": l_obj.detach(), "cls": l_cls.detach()}
        return total.reshape(1), parts

    def build_targets(self, preds: list[torch.Tensor], targets: torch.Tensor) -> list[LevelTargets]:
        """Assign targets ``[N, 6]`` (image, class, cx, cy, w, h normalised) to anchors and cells of every level."""
        device = targets.device
        anchors_all = self.detect.anchors.to(device)  # [nl, na, 2] in grid units of each level
        neighbours = _NEIGHBOURS.to(device) * _OFFSET
        anchor_idx = torch.arange(self.na, device=device, dtype=targets.dtype)
        # one copy of every target per anchor: [na, N, 7] (image, class, cx, cy, w, h, anchor)
        t_all = torch.cat(
            (targets.unsqueeze(0).expand(self.na, -1, -1), anchor_idx.view(-1, 1, 1).expand(-1, len(targets), 1)), 2
        )
        out = []
        for i, p in enumerate(preds):
            h, w = p.shape[2], p.shape[3]
            anchors = anchors_all[i]
            scale = torch.tensor([1, 1, w, h, w, h, 1], device=device, dtype=targets.dtype)
            t = t_all * scale  # boxes in grid units
            if len(targets):
                ratio = t[..., 4:6] / anchors[:, None]  # [na, N, 2]
                keep = torch.max(ratio, 1 / ratio).amax(2) < self.cfg.anchor_t
                t = t[keep]  # [n, 7]
                xy = t[:, 2:4]
                xy_inv = torch.tensor([w, h], device=device, dtype=t.dtype) - xy
                near_lo = (xy % 1 < _OFFSET) & (xy > 1)  # centre in the left/top half: also use left/up cell
                near_hi = (xy_inv % 1 < _OFFSET) & (xy_inv > 1)  # right/bottom half: also use right/down cell
                use = torch.stack(
                    (torch.ones_like(near_lo[:, 0]), near_lo[:, 0], near_lo[:, 1], near_hi[:, 0], near_hi[:, 1])
                )  # [5, n]
                t = t.unsqueeze(0).expand(5, -1, -1)[use]
                offsets = neighbours[:, None, :].expand(-1, len(xy), -1)[use]
            else:
                t = t_all[0, :0]
                offsets = torch.zeros((0, 2), device=device)
            image, cls = t[:, 0].long(), t[:, 1].long()
            xy, wh = t[:, 2:4], t[:, 4:6]
            cell = (xy - offsets).long()
            gx = cell[:, 0].clamp(0, w - 1)
            gy = cell[:, 1].clamp(0, h - 1)
            anchor = t[:, 6].long()
            box = torch.cat((xy - torch.stack((gx, gy), 1), wh), 1)
            out.append(LevelTargets(image, anchor, gy, gx, box, anchors[anchor], cls))
        return out
