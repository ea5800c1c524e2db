"""Validation: run a model over a labelled split and measure mAP the way YOLOv5 does.

Used by ``val.py`` and, after every epoch, by the training engine.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.boxes import scale_boxes, xywh2xyxy
from utils.coco import detections_to_coco, image_id_from_path, save_coco_json
from utils.data.labels import write_label_file
from utils.metrics import IOU_THRESHOLDS, APResult, ConfusionMatrix, ap_per_class, match_predictions
from utils.nms import non_max_suppression
from utils.plots.annotate import class_names
from utils.plots.batches import output_to_targets
from utils.plots.pool import ThreadPlotter
from utils.torch_utils import fast_layout

LOGGER = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Settings of one evaluation (``val.py``'s flags; defaults as upstream's validation)."""

    conf_thres: float = 0.001
    iou_thres: float = 0.6
    max_det: int = 300
    single_cls: bool = False
    half: bool = False
    plots: bool = False  # PR/F1 curves, confusion matrix, a few val_batch images
    save_txt: bool = False  # YOLO txt labels of the detections, normalised to the original image
    save_conf: bool = False  # add the score to each txt row
    save_json: bool = False  # COCO-style predictions.json
    verbose: bool = False  # per-class table


@dataclass
class EvalResult:
    """Metrics of one evaluation. ``maps`` holds mAP50-95 per class id (the overall mAP for absent classes)."""

    mp: float = 0.0
    mr: float = 0.0
    map50: float = 0.0
    map: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)  # mean validation loss parts, if a loss was given
    maps: np.ndarray | None = None
    ap: APResult | None = None
    speed_ms: dict[str, float] = field(default_factory=dict)  # per image: preprocess, inference, nms
    images: int = 0
    instances: int = 0

    def metrics(self) -> dict[str, float]:
        return {
            "metrics/precision": self.mp,
            "metrics/recall": self.mr,
            "metrics/mAP_0.5": self.map50,
            "metrics/mAP_0.5:0.95": self.map,
        }

    def fitness(self) -> float:
        """0.1 x mAP@0.5 + 0.9 x mAP@0.5:0.95, the model-selection score."""
        return 0.1 * self.map50 + 0.9 * self.map


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    names: list[str],
    cfg: EvalConfig | None = None,
    loss_fn=None,
    save_dir: str | Path | None = None,
    desc: str = "val",
    plotter=None,
) -> EvalResult:
    """Measure detection metrics of ``model`` on ``loader`` (batches of ``YoloDataset.collate_fn``).

    Detections and labels are compared in original-image pixels after mapping back through each image's
    letterbox. ``loss_fn`` (a :class:`utils.loss.YoloLoss`), if given, also yields validation losses.

    With ``cfg.plots`` and a ``save_dir``, plots are drawn by ``plotter`` (a :mod:`utils.plots.pool` plotter,
    closed here) or, without one, by threads of this process; every plot is written when this returns.
    """
    cfg = cfg or EvalConfig()
    first = next(model.parameters())
    device, stored_half = first.device, first.dtype == torch.float16
    half = device.type == "cuda" and (cfg.half or stored_half)  # an fp16 model (e.g. a teacher) stays fp16
    was_training = model.training
    model.eval()
    if half and not stored_half:
        model.half()
    save_dir = Path(save_dir) if save_dir is not None else None
    if not (cfg.plots and save_dir is not None):
        if plotter is not None:
            plotter.close()
        plotter = None
    elif plotter is None:
        plotter = ThreadPlotter()
    try:
        return _evaluate(model, loader, names, cfg, loss_fn, save_dir, desc, plotter, device, half)
    finally:
        if plotter is not None:
            plotter.close()  # every plot is written when evaluate returns
        if half and not stored_half:
            model.float()
        model.train(was_training)


def _evaluate(model, loader, names, cfg: EvalConfig, loss_fn, save_dir, desc, plotter, device, half) -> EvalResult:
    nc = 1 if cfg.single_cls else len(names)
    iouv = IOU_THRESHOLDS.to(device)
    confusion = ConfusionMatrix(nc=nc)
    if save_dir is not None and cfg.save_txt:
        (save_dir / "labels").mkdir(parents=True, exist_ok=True)
    stats: list[tuple[torch.Tensor, ...]] = []
    json_rows: list[dict] = []
    loss_sums: dict[str, float] = {}
    times = [0.0, 0.0, 0.0]
    seen = 0
    for batch_i, (images, targets, paths, shapes) in enumerate(tqdm(loader, desc=f"{desc:>10}", leave=False)):
        t0 = time.perf_counter()
        imgs = images.to(device, non_blocking=True)
        imgs = fast_layout((imgs.half() if half else imgs.float()) / 255)
        targets = targets.to(device)
        batch, _, height, width = imgs.shape
        _sync(device)
        t1 = time.perf_counter()
        pred, raw = model(imgs)
        _sync(device)
        t2 = time.perf_counter()
        if loss_fn is not None:
            _, parts = loss_fn([r.float() for r in raw], targets)
            for k, v in parts.items():
                loss_sums[k] = loss_sums.get(k, 0.0) + float(v)
        dets = non_max_suppression(
            pred.float(), cfg.conf_thres, cfg.iou_thres, agnostic=cfg.single_cls, multi_label=True, max_det=cfg.max_det
        )
        _sync(device)
        t3 = time.perf_counter()
        times = [times[0] + t1 - t0, times[1] + t2 - t1, times[2] + t3 - t2]

        targets_px = targets.clone()
        targets_px[:, 2:] *= torch.tensor((width, height, width, height), device=device)
        for si, det in enumerate(dets):
            seen += 1
            labels = targets_px[targets_px[:, 0] == si, 1:]  # [m, 5] cls, cx, cy, w, h (input pixels)
            path, shape = Path(paths[si]), shapes[si]
            orig_hw, ratio_pad = shape if shape is not None else ((height, width), None)
            if cfg.single_cls:
                det[:, 5] = 0
            det_native = det.clone()
            det_native[:, :4] = scale_boxes((height, width), det_native[:, :4], orig_hw, ratio_pad)
            if len(labels):
                boxes = scale_boxes((height, width), xywh2xyxy(labels[:, 1:5]), orig_hw, ratio_pad)
                labels_native = torch.cat((labels[:, :1], boxes), 1)
            else:
                labels_native = torch.zeros((0, 5), device=device)
            correct = match_predictions(det_native, labels_native, iouv)
            stats.append((correct.cpu(), det[:, 4].cpu(), det[:, 5].cpu(), labels[:, 0].cpu()))
            if cfg.plots:
                confusion.process_batch(det_native, labels_native)
            if save_dir is not None and cfg.save_txt:
                write_label_file(save_dir / "labels" / f"{path.stem}.txt", det_native, orig_hw, cfg.save_conf)
            if cfg.save_json:
                json_rows += detections_to_coco(det_native, image_id_from_path(path))
        if plotter is not None and batch_i < 3:
            _plot_batch(plotter, images, targets, dets, paths, names, save_dir, batch_i)

    result = _summarise(stats, nc, names, cfg, save_dir, confusion, seen, plotter)
    result.losses = {k: v / max(len(loader), 1) for k, v in loss_sums.items()}
    result.speed_ms = {
        k: t / max(seen, 1) * 1e3 for k, t in zip(("preprocess", "inference", "nms"), times, strict=True)
    }
    if cfg.save_json and save_dir is not None:
        save_coco_json(json_rows, save_dir / "predictions.json")
    return result


def _summarise(stats, nc, names, cfg: EvalConfig, save_dir, confusion, seen: int, plotter=None) -> EvalResult:
    result = EvalResult(maps=np.zeros(nc), images=seen)
    if not stats:
        return result
    correct, conf, pred_cls, target_cls = (torch.cat(x, 0).numpy() for x in zip(*stats, strict=True))
    result.instances = len(target_cls)
    if not len(target_cls):
        LOGGER.warning("no labels in the validation set: metrics cannot be computed")
    if len(correct) and len(target_cls):
        ap = ap_per_class(correct, conf, pred_cls, target_cls)
        result.ap = ap
        result.mp, result.mr, result.map50, result.map = ap.mean_results()
        result.maps = np.full(nc, result.map)
        for i, c in enumerate(ap.classes):
            result.maps[int(c)] = ap.ap50_95[i]
        if plotter is not None:
            _plot_curves(plotter, ap, confusion, names if not cfg.single_cls else ["item"], save_dir)
    counts = np.bincount(target_cls.astype(int), minlength=nc)
    images_with = np.zeros(nc, dtype=int)
    for s in stats:
        images_with[np.unique(s[3].numpy().astype(int))] += 1
    _log_table(result, names, counts, images_with, cfg.verbose and nc > 1)
    return result


def _log_table(result: EvalResult, names, counts, images_with, per_class: bool) -> None:
    header = f"{'Class':>20}{'Images':>11}{'Instances':>11}{'P':>11}{'R':>11}{'mAP50':>11}{'mAP50-95':>11}"
    LOGGER.info(header)
    row = "%20s%11i%11i%11.3g%11.3g%11.3g%11.3g"
    LOGGER.info(row, "all", result.images, counts.sum(), result.mp, result.mr, result.map50, result.map)
    if per_class and result.ap is not None:
        for i, c in enumerate(result.ap.classes):
            p, r, ap50, ap = result.ap.class_result(i)
            LOGGER.info(row, names[int(c)], images_with[int(c)], counts[int(c)], p, r, ap50, ap)


def _plot_curves(plotter, ap: APResult, confusion: ConfusionMatrix, names, save_dir: Path) -> None:
    """PR, F1, P and R curves and the confusion matrix as ``<name>.png`` in ``save_dir``, one task each (so they
    spread over the plotter's threads or processes), the slowest first."""
    labels = class_names(names, ap.classes)
    plotter.submit("confusion_matrix", "confusion_matrix", confusion.matrix, save_dir / "confusion_matrix.png", names)
    plotter.submit("PR_curve", "pr_curve", ap.px, ap.pr_curve, ap.ap50, save_dir / "PR_curve.png", labels)
    for name, ylabel, curve in (("F1_curve", "F1", ap.f1_curve), ("P_curve", "Precision", ap.p_curve),
                                ("R_curve", "Recall", ap.r_curve)):  # fmt: skip
        plotter.submit(name, "mc_curve", ap.px, curve, save_dir / f"{name}.png", labels, "Confidence", ylabel)


def _plot_batch(plotter, images: torch.Tensor, targets: torch.Tensor, dets, paths, names, save_dir: Path, i: int):
    """``val_batch<i>_labels.jpg`` and ``val_batch<i>_pred.jpg``: the loader's ``[B, 3, H, W]`` uint8 ``images``
    with the ``[N, 6]`` normalised labels and with the detections (``[n, 6]`` xyxy input pixels per image)."""
    pixels, paths, names = images.cpu().numpy(), [str(p) for p in paths], list(names)
    plotter.submit(f"val_batch{i}_labels", "batch", pixels, targets.cpu().numpy(), paths,
                   save_dir / f"val_batch{i}_labels.jpg", names)  # fmt: skip
    plotter.submit(f"val_batch{i}_pred", "batch", pixels, output_to_targets(dets), paths,
                   save_dir / f"val_batch{i}_pred.jpg", names)  # fmt: skip


def write_metrics_json(result: EvalResult, path: Path, names: list[str], single_cls: bool, **facts) -> None:
    """The printed metrics as JSON (``val.py`` and the end of training write the same form): ``facts`` (weights,
    data, task, settings), then overall and per-class precision, recall, mAP50, mAP50-95, and speeds."""
    per_class = {}
    if result.ap is not None:
        for i, c in enumerate(result.ap.classes):
            p, r, ap50, ap = result.ap.class_result(i)
            per_class[names[int(c)] if not single_cls else "item"] = {
                "precision": p, "recall": r, "mAP50": ap50, "mAP50-95": ap,
            }  # fmt: skip
    payload = {
        **facts,
        "images": result.images,
        "instances": result.instances,
        "precision": result.mp,
        "recall": result.mr,
        "mAP50": result.map50,
        "mAP50-95": result.map,
        "fitness": result.fitness(),
        "per_class": per_class,
        "speed_ms_per_image": result.speed_ms,
    }
    path.write_text(json.dumps(payload, indent=2))
