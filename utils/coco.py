"""COCO-format detection results (what ``val.py --save-json`` writes).

Results follow the COCO "detection results" format: one dict per detection with ``image_id``, ``category_id``,
``bbox = [x, y, w, h]`` (top-left corner and size, original-image pixels) and ``score``. ``image_id`` is the image
file stem, as an ``int`` when it is all digits (COCO's ``000000000139.jpg`` -> ``139``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["detections_to_coco", "image_id_from_path", "save_coco_json"]


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
        class_map: optional ``class index -> category_id`` list or dict (class indices when absent).

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
