"""COCO-format detection results and ground truth.

Results follow the COCO "detection results" format: one dict per detection with ``image_id``, ``category_id``,
``bbox = [x, y, w, h]`` (top-left corner and size, original-image pixels) and ``score``. ``image_id`` is the image
file stem, as an ``int`` when it is all digits (COCO's ``000000000139.jpg`` -> ``139``).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "coco80_to_coco91_class",
    "coco_evaluate",
    "coco_gt_from_labels",
    "coco_gt_from_yolo_files",
    "detections_to_coco",
    "image_id_from_path",
    "save_coco_json",
]

_COCO91_UNUSED = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}  # ids 1..90 with no category in COCO 2017


def coco80_to_coco91_class() -> list[int]:
    """Map contiguous COCO class indices 0..79 to the official COCO category ids (1..90 with gaps)."""
    return [i for i in range(1, 91) if i not in _COCO91_UNUSED]


def image_id_from_path(path: str | Path) -> int | str:
    """The COCO ``image_id`` of an image file: its stem, converted to ``int`` when it is all digits."""
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else stem


def _category(cls: int, class_map: Sequence[int] | dict[int, int] | None) -> int:
    if class_map is None:
        return int(cls)
    try:
        return int(class_map[cls])
    except (IndexError, KeyError):
        raise ValueError(f"class {cls} is not in class_map (size {len(class_map)})") from None


def detections_to_coco(
    detections: torch.Tensor | np.ndarray,
    image_id: int | str,
    class_map: Sequence[int] | dict[int, int] | None = None,
) -> list[dict]:
    """Convert one image's detections to COCO result dicts.

    Args:
        detections: ``[n, 6]`` ``(x1, y1, x2, y2, score, class)``, xyxy in original-image pixels (already scaled
            back from the letterboxed network input, e.g. with ``utils.boxes.scale_boxes``).
        image_id: the COCO image id (see :func:`image_id_from_path`).
        class_map: optional ``class index -> category_id`` list or dict (e.g. :func:`coco80_to_coco91_class`).

    Returns:
        ``n`` dicts ``{"image_id", "category_id", "bbox": [x, y, w, h] (3 decimals), "score" (5 decimals)}``.
    """
    det = detections.detach().cpu().double().numpy() if isinstance(detections, torch.Tensor) else detections
    det = np.asarray(det, dtype=np.float64)
    if det.ndim != 2 or det.shape[1] != 6:
        raise ValueError(f"detections has shape {det.shape}; expected [n, 6] (x1, y1, x2, y2, score, class)")
    out = []
    for x1, y1, x2, y2, score, cls in det.tolist():
        out.append(
            {
                "image_id": image_id,
                "category_id": _category(int(cls), class_map),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(score, 5),
            }
        )
    return out


def save_coco_json(results: list[dict], path: str | Path) -> Path:
    """Write COCO result dicts to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def coco_gt_from_labels(
    images: Iterable[tuple[int | str, tuple[int, int], np.ndarray | torch.Tensor]],
    names: Sequence[str] | dict[int, str],
    class_map: Sequence[int] | dict[int, int] | None = None,
    file_names: Sequence[str] | None = None,
) -> dict:
    """Build a COCO ground-truth dict from YOLO labels held in memory.

    Args:
        images: ``(image_id, (height, width), labels)`` per image; ``labels`` is ``[m, 5]``
            ``(class, cx, cy, w, h)`` with the box normalised to 0..1 (YOLO txt format).
        names: class names, index -> name (list or dict).
        class_map: optional ``class index -> category_id``; the same map must be used for the results.
        file_names: optional file name per image (stored as ``file_name``).

    Returns:
        ``{"images", "annotations", "categories"}`` with ``bbox = [x, y, w, h]`` in pixels, ``area = w * h`` and
        ``iscrowd = 0``; annotation ids start at 1.
    """
    names = dict(enumerate(names)) if not isinstance(names, dict) else names
    categories = [{"id": _category(i, class_map), "name": str(n)} for i, n in sorted(names.items())]
    out_images, annotations = [], []
    for idx, (image_id, shape, labels) in enumerate(images):
        h, w = int(shape[0]), int(shape[1])
        if h <= 0 or w <= 0:
            raise ValueError(f"image {image_id!r} has shape {shape}; expected positive (height, width)")
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        lab = lab.reshape(-1, 5) if lab.size else np.zeros((0, 5))
        if lab.ndim != 2 or lab.shape[1] != 5:
            raise ValueError(f"labels of image {image_id!r} have shape {lab.shape}; expected [m, 5]")
        entry = {"id": image_id, "width": w, "height": h}
        entry["file_name"] = file_names[idx] if file_names is not None else str(image_id)
        out_images.append(entry)
        for cls, cx, cy, bw, bh in lab.astype(np.float64).tolist():
            if int(cls) not in names:
                raise ValueError(f"label class {int(cls)} of image {image_id!r} is not in names (0..{len(names) - 1})")
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": _category(int(cls), class_map),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    return {"images": out_images, "annotations": annotations, "categories": categories}


def coco_gt_from_yolo_files(
    image_files: Sequence[str | Path],
    label_files: Sequence[str | Path],
    names: Sequence[str] | dict[int, str],
    class_map: Sequence[int] | dict[int, int] | None = None,
) -> dict:
    """Build a COCO ground-truth dict from image files and their YOLO label txt files.

    Args:
        image_files: image paths (only their size is read, with Pillow); ids come from :func:`image_id_from_path`.
        label_files: one YOLO txt per image (``class cx cy w h`` normalised per line); a missing file means no objects.
        names, class_map: see :func:`coco_gt_from_labels`.
    """
    from PIL import Image

    if len(image_files) != len(label_files):
        raise ValueError(f"got {len(image_files)} image files but {len(label_files)} label files; counts must match")
    entries = []
    for im_file, lb_file in zip(image_files, label_files, strict=True):
        with Image.open(im_file) as im:
            w, h = im.size
        lb_file = Path(lb_file)
        rows = np.zeros((0, 5))
        if lb_file.is_file():
            text = lb_file.read_text().strip()
            if text:
                rows = np.array([line.split()[:5] for line in text.splitlines() if line.strip()], dtype=np.float64)
        entries.append((image_id_from_path(im_file), (h, w), rows))
    return coco_gt_from_labels(entries, names, class_map, file_names=[Path(f).name for f in image_files])


def coco_evaluate(
    gt: dict | str | Path, results: list[dict] | str | Path, verbose: bool = False
) -> tuple[float, float]:
    """Evaluate COCO results with pycocotools (bbox, all areas, up to 100 detections per image).

    Args:
        gt: ground-truth dict (see :func:`coco_gt_from_labels`) or path to a COCO annotation json.
        results: result dicts (see :func:`detections_to_coco`) or path to a results json.
        verbose: print pycocotools' summary table.

    Returns:
        ``(mAP@0.5:0.95, mAP@0.5)``; ``(0.0, 0.0)`` when there are no results.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("coco_evaluate needs pycocotools: pip install pycocotools") from e

    if isinstance(results, (str, Path)):
        results = json.loads(Path(results).read_text())
    if not results:
        return 0.0, 0.0
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_gt = COCO(str(gt)) if isinstance(gt, (str, Path)) else COCO()
        if not isinstance(gt, (str, Path)):
            coco_gt.dataset = json.loads(json.dumps(gt))  # plain-JSON copy, as if read from disk
            coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(list(results))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])
