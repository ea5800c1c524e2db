"""Reading and checking YOLO label files.

A label file holds one object per line: ``cls cx cy w h`` with the class id and the box centre and size
normalised to 0..1 by the image width and height. A line of ``cls x1 y1 x2 y2 ... xk yk`` (k >= 3, a polygon as
in segmentation datasets) is accepted too and becomes the box enclosing the polygon.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from utils.data.images import verify_image

COORD_TOLERANCE = 1e-3  # normalised coordinates up to this far outside [0, 1] are clipped, not rejected


@dataclass
class ImageCheck:
    """Outcome of checking one image and its label file.

    Attributes:
        image: image path.
        label_file: label path (it may not exist: the image is then a background).
        size: displayed ``(width, height)`` in pixels; ``None`` when the image is unusable.
        labels: ``float32 [n, 5]`` rows ``(cls, cx, cy, w, h)``, normalised xywh; ``n == 0`` for backgrounds.
        warnings: one message per problem, each naming the file (and line) and what was done about it.
        rows_dropped: number of label rows rejected.
    """

    image: str
    label_file: str
    size: tuple[int, int] | None
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    warnings: list[str] = field(default_factory=list)
    rows_dropped: int = 0

    @property
    def ok(self) -> bool:
        """Whether the image is usable."""
        return self.size is not None


def _parse_row(fields: list[str], nc: int) -> tuple[list[float], str | None]:
    """One label row -> ``([cls, cx, cy, w, h], None)`` or ``([], reason)``."""
    n = len(fields)
    if n != 5 and not (n >= 7 and n % 2 == 1):
        return [], f"expected 5 columns (cls cx cy w h), got {n}"
    try:
        values = [float(v) for v in fields]
    except ValueError:
        bad = next(v for v in fields if not _is_float(v))
        return [], f"non-numeric value {bad!r}"
    if not all(math.isfinite(v) for v in values):
        return [], "non-finite value (nan or inf)"
    cls = values[0]
    if not cls.is_integer() or not 0 <= cls < nc:
        return [], f"class id {fields[0]} is not an integer in [0, {nc})"
    lo, hi = -COORD_TOLERANCE, 1 + COORD_TOLERANCE
    if n == 5:
        cx, cy, w, h = values[1:]
        if w <= 0 or h <= 0:
            return [], f"non-positive width/height ({w:g}, {h:g})"
        if not all(lo <= v <= hi for v in (cx, cy, w, h)):
            return [], f"coordinates outside [0, 1]: {' '.join(fields[1:])}"
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        xs, ys = values[1::2], values[2::2]
        if not all(lo <= v <= hi for v in values[1:]):
            return [], "polygon coordinates outside [0, 1]"
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return [], "box has no area inside the image"
    return [cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], None


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def parse_label_file(path: str, nc: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Parse a YOLO label file, rejecting bad rows.

    Args:
        path: the ``.txt`` label file (must exist).
        nc: number of classes; class ids must be integers in ``[0, nc)``.

    Returns:
        ``labels``: ``float32 [n, 5]`` good rows ``(cls, cx, cy, w, h)``, normalised xywh, boxes clipped to the
        image; ``problems``: ``(line_number, reason)`` for each rejected row (1-based line numbers).

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read as text.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    rows, problems, seen = [], [], {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        row, reason = _parse_row(fields, nc)
        if reason is None:
            key = tuple(np.float32(row).tolist())
            if key in seen:
                reason = f"duplicate of line {seen[key]}"
            else:
                seen[key] = number
                rows.append(row)
        if reason is not None:
            problems.append((number, reason))
    labels = np.array(rows, dtype=np.float32).reshape(-1, 5)
    return labels, problems


def check_image(image: str, label_file: str, nc: int) -> ImageCheck:
    """Verify one image and parse its label file (see :func:`parse_label_file`); never raises for bad data.

    A missing or empty label file makes the image a background. An unreadable label file, or a folder where the
    label file should be, makes the whole image unusable (its objects are unknown, so it must not be trained on as
    a background).
    """
    try:
        size = verify_image(image)
    except ValueError as e:
        return ImageCheck(image, label_file, None, warnings=[f"{image}: {e}; image skipped"])
    result = ImageCheck(image, label_file, size)
    if os.path.isdir(label_file):  # its objects are unknown: training on it as a background would teach misses
        result.size = None
        result.warnings.append(f"{label_file}: is a folder, not a label file; image {image} skipped")
        return result
    if not os.path.isfile(label_file):
        return result
    try:
        labels, problems = parse_label_file(label_file, nc)
    except (OSError, UnicodeDecodeError) as e:
        result.size = None
        result.warnings.append(f"{label_file}: cannot read label file ({e}); image {image} skipped")
        return result
    result.labels = labels
    result.rows_dropped = len(problems)
    result.warnings.extend(f"{label_file}:{line}: {reason}; row dropped" for line, reason in problems)
    return result


def write_label_file(path: str | os.PathLike, detections, shape_hw: tuple[int, int], with_conf: bool = False) -> None:
    """Write detections as a YOLO label file, the counterpart of :func:`parse_label_file`.

    ``detections``: ``[n, 6]`` tensor or array ``(x1, y1, x2, y2, score, class)``, xyxy in pixels of an image of
    ``shape_hw = (height, width)``. Rows are ``class cx cy w h`` normalised to that image, plus ``score`` when
    ``with_conf``.
    """
    det = np.asarray(detections.detach().cpu() if hasattr(detections, "detach") else detections, dtype=np.float64)
    h, w = shape_hw
    lines = []
    for x1, y1, x2, y2, score, cls in det.reshape(-1, 6).tolist():
        row = [int(cls), (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
        row += [score] if with_conf else []
        lines.append(" ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row))
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))
