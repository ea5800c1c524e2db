"""``detect.py``: run a detector on images, folders, globs, txt lists and videos; save annotated media and labels."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from utils.cli import flag, reflag
from utils.data.labels import write_label_file
from utils.files import increment_path
from utils.plots.annotate import Annotator, save_one_box
from utils.runners.predict import InferenceConfig, Predictor

LOGGER = logging.getLogger(__name__)


@dataclass
class DetectConfig(InferenceConfig):
    weights: str = reflag(
        InferenceConfig, "weights", help="checkpoint (ours or upstream YOLOv5's), or an exported .onnx / .torchscript"
    )
    source: str = reflag(InferenceConfig, "source", "data/bccd_sample/images/val")
    classes: list[int] | None = flag(None, low=0, help="keep only these class ids")
    save_txt: bool = flag(False, help="save YOLO txt labels")
    save_conf: bool = flag(False, help="add confidences to --save-txt labels")
    save_crop: bool = flag(False, help="save a crop of every detection")
    hide_labels: bool = flag(False, help="draw boxes without labels")
    hide_conf: bool = flag(False, help="draw labels without confidences")
    line_thickness: int = flag(3, low=1, help="box line width, px")
    nosave: bool = flag(False, help="do not save annotated images or videos")


@dataclass
class DetectResult:
    save_dir: Path
    images: int = 0
    detections: int = 0
    per_image: dict[str, int] = field(default_factory=dict)


def run_detect(cfg: DetectConfig) -> DetectResult:
    predictor = Predictor(cfg, cfg.classes)
    names = predictor.names
    save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    if cfg.save_txt:
        (save_dir / "labels").mkdir(exist_ok=True)
    dataset = predictor.images()
    out_names = output_names(dataset.files)
    result = DetectResult(save_dir)
    writers: dict[str, cv2.VideoWriter] = {}
    t_inf = 0.0
    try:
        for path, img, img0, cap, desc in dataset:
            t0 = time.perf_counter()
            det = predictor(img, img0)
            t_inf += time.perf_counter() - t0
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
