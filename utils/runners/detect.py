"""``detect.py``: run a detector on images, folders, globs, txt lists and videos; save annotated media and labels."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import torch

from utils.boxes import scale_boxes
from utils.data import LoadImages
from utils.data.labels import write_label_file
from utils.export.backend import load_backend
from utils.files import increment_path
from utils.nms import non_max_suppression
from utils.plots.annotate import Annotator, save_one_box
from utils.torch_utils import select_device

LOGGER = logging.getLogger(__name__)


@dataclass
class DetectConfig:
    weights: str = ""
    source: str = "data/bccd_sample/images/val"
    imgsz: int = 640
    device: str = ""
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 1000
    classes: list[int] | None = None
    agnostic_nms: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_crop: bool = False
    hide_labels: bool = False
    hide_conf: bool = False
    line_thickness: int = 3
    nosave: bool = False
    project: str = "runs/detect"
    name: str = "exp"
    exist_ok: bool = False
    half: bool = False
    vid_stride: int = 1

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to run")
        if self.imgsz < 1:
            raise ValueError(f"--imgsz must be a positive number of pixels, got {self.imgsz}")
        for name in ("conf_thres", "iou_thres"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be within [0, 1], got {getattr(self, name)}")


@dataclass
class DetectResult:
    save_dir: Path
    images: int = 0
    detections: int = 0
    per_image: dict[str, int] = field(default_factory=dict)


def run_detect(cfg: DetectConfig) -> DetectResult:
    device = select_device(cfg.device)
    model = load_backend(cfg.weights, device=device, fuse=True)
    half = cfg.half and device.type == "cuda"
    if half:
        model.half()
    stride = max(int(model.stride.max()), 32)
    names = model.names
    save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    if cfg.save_txt:
        (save_dir / "labels").mkdir(exist_ok=True)
    dataset = LoadImages(cfg.source, img_size=cfg.imgsz, stride=stride, vid_stride=cfg.vid_stride)
    out_names = output_names(dataset.files)
    result = DetectResult(save_dir)
    writers: dict[str, cv2.VideoWriter] = {}
    t_inf = 0.0
    try:
        for path, img, img0, cap, desc in dataset:
            x = torch.from_numpy(img).to(device)
            x = (x.half() if half else x.float()).unsqueeze(0) / 255
            t0 = time.perf_counter()
            with torch.no_grad():
                pred, _ = model(x)
            det = non_max_suppression(
                pred.float(), cfg.conf_thres, cfg.iou_thres, cfg.classes, cfg.agnostic_nms, max_det=cfg.max_det
            )[0].cpu()
            t_inf += time.perf_counter() - t0
            det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], img0.shape[:2])
            p, name = Path(path), out_names[path]
            stem = name if cap is None else f"{name}_{int(cap.get(cv2.CAP_PROP_POS_FRAMES))}"
            result.images += 1
            result.detections += len(det)
            result.per_image[stem] = len(det)
            counts = (
                ", ".join(f"{int((det[:, 5] == c).sum())} {names[int(c)]}" for c in det[:, 5].unique().tolist())
                or "no detections"
            )
            LOGGER.info("%s: %s", desc, counts)
            if cfg.save_txt:
                label_file = save_dir / "labels" / f"{stem}.txt"
                label_file.parent.mkdir(parents=True, exist_ok=True)
                write_label_file(label_file, det, img0.shape[:2], cfg.save_conf)
            if cfg.save_crop:
                for *xyxy, _, cls in det.tolist():
                    crop_dir = save_dir / "crops" / names[int(cls)]
                    crop_dir.mkdir(parents=True, exist_ok=True)
                    save_one_box(xyxy, img0.copy(), file=crop_dir / f"{name.replace('/', '_')}.jpg")
            if not cfg.nosave:
                annotated = Annotator(
                    img0, line_width=cfg.line_thickness, names=names, hide_labels=cfg.hide_labels,
                    hide_conf=cfg.hide_conf,
                ).draw_detections(det).result()  # fmt: skip
                out = save_dir / (f"{name}{p.suffix}" if cap is None else f"{name}.mp4")
                out.parent.mkdir(parents=True, exist_ok=True)
                if cap is None:
                    cv2.imwrite(str(out), annotated)
                else:
                    _write_frame(writers, out, annotated, cap)
    finally:
        for w in writers.values():
            w.release()
    if result.images == 0:
        raise ValueError(
            f"--source {cfg.source}: nothing was processed: none of its {len(dataset)} files could be read "
            "(see the warnings above)"
        )
    LOGGER.info(
        "%d images, %d detections, %.1f ms inference+NMS per image; results saved to %s",
        result.images, result.detections, t_inf / max(result.images, 1) * 1e3, save_dir,
    )  # fmt: skip
    return result


def output_names(files: list[str]) -> dict[str, str]:
    """A unique output name (without suffix) per input file, so that results never overwrite each other.

    A file whose stem no other file shares keeps its stem (``a/x.jpg -> x``), as users expect. Files sharing a stem
    are named by their path below the folder common to them (``d1/x.jpg, d2/x.jpg -> d1/x, d2/x``: the outputs go
    to sub-folders), with the suffix added where that is still ambiguous (``x.jpg, x.png -> x_jpg, x_png``).
    """
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_stem.setdefault(Path(f).stem, []).append(f)
    names = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        base = os.path.commonpath([os.path.dirname(f) for f in group])
        rel = {f: Path(os.path.relpath(f, base)).with_suffix("").as_posix() for f in group}
        counts = Counter(rel.values())
        for f in group:
            suffix = Path(f).suffix.lstrip(".")
            names[f] = rel[f] if counts[rel[f]] == 1 else f"{rel[f]}_{suffix}"
    return names


def _write_frame(writers: dict, path: Path, frame, cap: cv2.VideoCapture) -> None:
    key = str(path)
    if key not in writers:
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        h, w = frame.shape[:2]
        writers[key] = cv2.VideoWriter(key, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    writers[key].write(frame)
