"""Detection metrics: matching, average precision, per-class P/R/F1, fitness and the confusion matrix.

Definitions follow YOLOv5's validation so that numbers are comparable with it:

- a detection is a true positive at IoU threshold ``t`` when it is matched one-to-one to a label of its class with
  IoU ``>= t`` (:func:`match_predictions`);
- AP is the area under the precision envelope, sampled at 101 recall points and integrated with the trapezoid
  rule (:func:`compute_ap`); mAP@0.5:0.95 averages over the 10 IoU thresholds ``0.50, 0.55, ..., 0.95``;
- the reported P, R and F1 are taken at the single confidence that maximises the (smoothed) class-mean F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from utils.boxes import box_iou
from utils.curves import smooth

__all__ = [
    "IOU_THRESHOLDS",
    "APResult",
    "ConfusionMatrix",
    "ap_per_class",
    "compute_ap",
    "fitness",
    "match_predictions",
    "smooth",
]

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)  # the COCO mAP@0.5:0.95 thresholds
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy >= 2 renamed trapz


def _check_2d(name: str, x: torch.Tensor, cols: int) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != cols:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} has shape {shape}; expected a [n, {cols}] tensor")


def _match(iou: torch.Tensor, allowed: torch.Tensor, priority: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One-to-one matching of labels (rows) and detections (columns), YOLOv5's two-step rule.

    Step 1: every detection picks its highest-IoU allowed label. Step 2: every label keeps, among the detections
    that picked it, the one with the highest ``priority`` (first index on ties); the others stay unmatched (they
    do not fall back to their second-best label).

    Args:
        iou: ``[m, n]`` IoU of labels and detections.
        allowed: ``[K, m, n]`` bool, pairs that may match (``K`` independent problems, e.g. IoU thresholds).
        priority: ``[K, m, n]`` (or broadcastable) step-2 priority of each pair.

    Returns:
        ``(k, label, detection)`` index tensors (each ``[M]``) of the matched pairs.
    """
    neg = torch.tensor(-1.0, dtype=iou.dtype, device=iou.device)
    best_label = torch.where(allowed, iou, neg).argmax(1)  # [K, n]
    picked = allowed.any(1)  # [K, n] detection has some allowed label
    rows = torch.arange(iou.shape[0], device=iou.device)
    chose = (rows[None, :, None] == best_label[:, None, :]) & picked[:, None, :]  # [K, m, n]
    never = torch.tensor(float("-inf"), dtype=iou.dtype, device=iou.device)
    prio = torch.where(chose, priority.to(iou.dtype).expand_as(chose), never)
    winner = prio.argmax(2)  # [K, m]
    k, lab = torch.nonzero(chose.any(2), as_tuple=True)
    return k, lab, winner[k, lab]


def match_predictions(
    detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor = IOU_THRESHOLDS
) -> torch.Tensor:
    """Mark which detections are true positives at each IoU threshold.

    For every threshold independently, detection-label pairs of the same class with IoU ``>= threshold`` are
    eligible. Each detection picks its highest-IoU eligible label; each label then keeps only the highest-scoring
    detection that picked it. Kept detections are true positives. This is YOLOv5's val.py matching (which relies on
    NMS output being sorted by score); on typical data it equals COCO's score-ordered greedy matching, differing only
    when a detection loses its best label to a higher-scoring one (COCO would try its next-best label).

    Args:
        detections: ``[n, 6]`` ``(x1, y1, x2, y2, score, class)``, xyxy pixels.
        labels: ``[m, 5]`` ``(class, x1, y1, x2, y2)``, xyxy pixels in the same frame as ``detections``.
        iouv: ``[t]`` IoU thresholds (default ``0.5:0.05:0.95``).

    Returns:
        ``[n, t]`` bool tensor on the device of ``detections``.
    """
    _check_2d("detections", detections, 6)
    _check_2d("labels", labels, 5)
    iouv = torch.as_tensor(iouv, dtype=torch.float32, device=detections.device).reshape(-1)
    correct = torch.zeros(detections.shape[0], iouv.numel(), dtype=torch.bool, device=detections.device)
    if not detections.shape[0] or not labels.shape[0]:
        return correct
    labels = labels.to(detections.device)
    iou = box_iou(labels[:, 1:].float(), detections[:, :4].float())  # [m, n]
    same_cls = labels[:, 0:1] == detections[:, 5]  # [m, n]
    allowed = (iou[None] >= iouv[:, None, None]) & same_cls[None]  # [t, m, n]
    t, _, d = _match(iou, allowed, detections[:, 4].to(iou.dtype)[None, None, :])
    correct[d, t] = True
    return correct


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Average precision from one recall/precision curve (YOLOv5's definition).

    Sentinels ``(recall 0, precision 1)`` and ``(recall 1, precision 0)`` are added, precision is replaced by its
    envelope (the maximum precision at any higher recall), the envelope is linearly interpolated at the 101 recall
    points ``0, 0.01, ..., 1`` and integrated with the trapezoid rule. Because of the end sentinel, the envelope
    falls linearly from the last reached recall to recall 1 (as in YOLOv5; COCO counts zero there instead, so
    this AP exceeds COCO's when detections stop well short of full recall, e.g. at a high confidence threshold).

    One deliberate difference from YOLOv5: when the curve already reaches recall 1, the end sentinel takes the last
    precision instead of 0. YOLOv5 lets the sentinel's 0 win at recall 1, which caps AP at 0.995 for perfect
    detections; here perfect detections score 1.0. Nothing else changes.

    Args:
        recall: ``[k]`` recall after each detection, sorted by descending confidence (non-decreasing).
        precision: ``[k]`` precision after each detection.

    Returns:
        ``(ap, mpre, mrec)``: the AP and the ``[k + 2]`` envelope precision / recall with sentinels.
    """
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    if recall.shape != precision.shape:
        raise ValueError(f"recall has shape {recall.shape} but precision has shape {precision.shape}; must match")
    mrec = np.concatenate(([0.0], recall, [1.0]))
    end = precision[-1] if recall.size and recall[-1] >= 1.0 - 1e-9 else 0.0
    mpre = np.concatenate(([1.0], precision, [end]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # envelope: non-increasing in recall
    grid = np.linspace(0.0, 1.0, 101)
    ap = float(_trapezoid(np.interp(grid, mrec, mpre), grid))
    return ap, mpre, mrec


@dataclass
class APResult:
    """Output of :func:`ap_per_class`; ``k`` = number of classes present in the targets.

    Attributes:
        classes: ``[k]`` class ids present in the targets (sorted); rows of every per-class array follow this order.
        tp, fp: ``[k]`` true/false positive counts at the chosen confidence (from recall and precision).
        p, r, f1: ``[k]`` precision, recall, F1 at the confidence maximising the smoothed mean F1.
        ap: ``[k, t]`` AP per class and IoU threshold (``t`` = 10 for 0.5:0.95).
        px: ``[1000]`` x grid of all curves (confidence for P/R/F1 curves, recall for the PR curve).
        pr_curve: ``[k, 1000]`` precision envelope vs recall ``px`` at the first IoU threshold (0.5).
        p_curve, r_curve, f1_curve: ``[k, 1000]`` precision / recall / F1 vs confidence ``px`` (IoU 0.5).
        best_conf: the confidence at which ``p``, ``r`` and ``f1`` are reported.
    """

    classes: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    p: np.ndarray
    r: np.ndarray
    f1: np.ndarray
    ap: np.ndarray
    px: np.ndarray
    pr_curve: np.ndarray
    p_curve: np.ndarray
    r_curve: np.ndarray
    f1_curve: np.ndarray
    best_conf: float

    @property
    def ap50(self) -> np.ndarray:
        """``[k]`` AP at IoU 0.5."""
        return self.ap[:, 0] if self.ap.size else np.zeros(0)

    @property
    def ap50_95(self) -> np.ndarray:
        """``[k]`` AP averaged over all IoU thresholds."""
        return self.ap.mean(1) if self.ap.size else np.zeros(0)

    @property
    def mp(self) -> float:
        """Mean precision over classes."""
        return float(self.p.mean()) if self.p.size else 0.0

    @property
    def mr(self) -> float:
        """Mean recall over classes."""
        return float(self.r.mean()) if self.r.size else 0.0

    @property
    def map50(self) -> float:
        """mAP at IoU 0.5."""
        return float(self.ap50.mean()) if self.ap.size else 0.0

    @property
    def map(self) -> float:
        """mAP averaged over IoU 0.5:0.95."""
        return float(self.ap.mean()) if self.ap.size else 0.0

    def mean_results(self) -> tuple[float, float, float, float]:
        """``(mean P, mean R, mAP@0.5, mAP@0.5:0.95)``; the input of :func:`fitness`."""
        return self.mp, self.mr, self.map50, self.map

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """``(P, R, AP@0.5, AP@0.5:0.95)`` of the ``i``-th present class (row ``i``, class id ``classes[i]``)."""
        return float(self.p[i]), float(self.r[i]), float(self.ap50[i]), float(self.ap50_95[i])


def ap_per_class(
    tp: np.ndarray | torch.Tensor,
    conf: np.ndarray | torch.Tensor,
    pred_cls: np.ndarray | torch.Tensor,
    target_cls: np.ndarray | torch.Tensor,
    eps: float = 1e-16,
) -> APResult:
    """Per-class AP, P, R and F1 over a whole dataset.

    Args:
        tp: ``[n, t]`` bool, detection ``i`` is a true positive at IoU threshold ``j`` (see
            :func:`match_predictions`), for all detections of all images.
        conf: ``[n]`` detection scores.
        pred_cls: ``[n]`` detection class ids.
        target_cls: ``[m]`` class ids of all ground-truth objects.
        eps: guards divisions.

    Returns:
        :class:`APResult`; classes are the unique ids in ``target_cls``. Classes without detections get zeros.
    """

    def as_np(x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    tp, conf, pred_cls, target_cls = as_np(tp), as_np(conf), as_np(pred_cls), as_np(target_cls)
    if tp.ndim == 1:
        tp = tp[:, None]
    conf, pred_cls, target_cls = conf.reshape(-1), pred_cls.reshape(-1), target_cls.reshape(-1)
    if not (tp.shape[0] == conf.shape[0] == pred_cls.shape[0]):
        raise ValueError(
            f"tp {tp.shape}, conf {conf.shape} and pred_cls {pred_cls.shape} must have the same first dimension"
        )
    tp = tp.astype(np.float64)

    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, n_targets = np.unique(target_cls, return_counts=True)
    k, t = classes.shape[0], tp.shape[1]

    px = np.linspace(0, 1, 1000)
    ap = np.zeros((k, t))
    pr_curve, p_curve, r_curve = np.zeros((k, 1000)), np.zeros((k, 1000)), np.zeros((k, 1000))
    for ci, (c, n_l) in enumerate(zip(classes, n_targets, strict=True)):
        sel = pred_cls == c
        if not sel.any():
            continue
        tpc = tp[sel].cumsum(0)
        fpc = (1 - tp[sel]).cumsum(0)
        recall = tpc / (n_l + eps)
        precision = tpc / (tpc + fpc)
        # curves vs confidence; np.interp needs increasing x, confidence is decreasing -> negate both
        r_curve[ci] = np.interp(-px, -conf[sel], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-px, -conf[sel], precision[:, 0], left=1)
        for j in range(t):
            ap[ci, j], mpre, mrec = compute_ap(recall[:, j], precision[:, j])
            if j == 0:
                pr_curve[ci] = np.interp(px, mrec, mpre)

    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    best = int(smooth(f1_curve.mean(0), 0.1).argmax()) if k else 0
    p, r, f1 = p_curve[:, best], r_curve[:, best], f1_curve[:, best]
    tp_count = (r * n_targets).round()
    fp_count = (tp_count / (p + eps) - tp_count).round()
    return APResult(
        classes=classes.astype(np.int64),
        tp=tp_count,
        fp=fp_count,
        p=p,
        r=r,
        f1=f1,
        ap=ap,
        px=px,
        pr_curve=pr_curve,
        p_curve=p_curve,
        r_curve=r_curve,
        f1_curve=f1_curve,
        best_conf=float(px[best]),
    )


FITNESS_WEIGHTS = np.array([0.0, 0.0, 0.1, 0.9])  # [P, R, mAP@0.5, mAP@0.5:0.95]


def fitness(metrics) -> np.ndarray | float:
    """Model fitness for checkpoint selection: ``0.1 * mAP@0.5 + 0.9 * mAP@0.5:0.95``.

    Args:
        metrics: ``[..., 4]`` values ``(P, R, mAP@0.5, mAP@0.5:0.95)`` (at least these 4 leading columns; further
            columns such as losses are ignored).

    Returns:
        ``[...]`` fitness (a float for a single row).
    """
    m = np.asarray(metrics, dtype=np.float64)
    if m.ndim == 0 or m.shape[-1] < 4:
        raise ValueError(f"metrics has shape {m.shape}; expected [..., 4+] as (P, R, mAP@0.5, mAP@0.5:0.95, ...)")
    out = (m[..., :4] * FITNESS_WEIGHTS).sum(-1)
    return float(out) if out.ndim == 0 else out


class ConfusionMatrix:
    """Detection confusion matrix with a background class.

    ``matrix[p, t]`` counts objects predicted as class ``p`` whose true class is ``t``; index ``nc`` is background:
    column ``nc`` holds detections that match no label (false positives), row ``nc`` holds labels that no
    detection matches (missed objects). Detections with score ``<= conf`` are ignored; a detection and a label
    match when IoU ``> iou_thres`` (regardless of class), one-to-one: each detection picks its highest-IoU label,
    and each label keeps the highest-IoU detection among those that picked it.
    """

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45):
        if int(nc) != nc or nc < 1:
            raise ValueError(f"nc={nc!r} is invalid; it must be a positive integer")
        for name, v in (("conf", conf), ("iou_thres", iou_thres)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name}={v!r} is invalid; it must be within [0, 1]")
        self.nc, self.conf, self.iou_thres = int(nc), float(conf), float(iou_thres)
        self.matrix = np.zeros((self.nc + 1, self.nc + 1), dtype=np.int64)

    def process_batch(self, detections: torch.Tensor | None, labels: torch.Tensor) -> None:
        """Accumulate one image.

        Args:
            detections: ``[n, 6]`` ``(x1, y1, x2, y2, score, class)`` xyxy pixels, or ``None`` for no detections.
            labels: ``[m, 5]`` ``(class, x1, y1, x2, y2)`` xyxy pixels in the same frame.
        """
        if detections is None:
            detections = torch.zeros((0, 6))
        _check_2d("detections", detections, 6)
        _check_2d("labels", labels, 5)
        detections = detections[detections[:, 4] > self.conf].detach().cpu().float()
        labels = labels.detach().cpu().float()
        gt_cls, det_cls = labels[:, 0].long(), detections[:, 5].long()
        for name, c in (("label", gt_cls), ("detection", det_cls)):
            if c.numel() and (c.min() < 0 or c.max() >= self.nc):
                bad = sorted(set(c.tolist()))
                raise ValueError(f"{name} class ids {bad} are invalid; they must be within [0, {self.nc - 1}]")

        det_matched = torch.zeros(detections.shape[0], dtype=torch.bool)
        gt_matched = torch.zeros(labels.shape[0], dtype=torch.bool)
        if detections.shape[0] and labels.shape[0]:
            iou = box_iou(labels[:, 1:], detections[:, :4])  # [m, n]
            _, gi, di = _match(iou, (iou > self.iou_thres)[None], iou[None])
            np.add.at(self.matrix, (det_cls[di].numpy(), gt_cls[gi].numpy()), 1)
            det_matched[di], gt_matched[gi] = True, True
        np.add.at(self.matrix, (self.nc, gt_cls[~gt_matched].numpy()), 1)  # missed objects
        np.add.at(self.matrix, (det_cls[~det_matched].numpy(), self.nc), 1)  # false positives
