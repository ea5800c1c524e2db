"""Reading Pascal VOC XML annotations and converting their boxes to YOLO rows.

VOC ``<bndbox>`` holds ``xmin, ymin, xmax, ymax`` in 1-based pixels; YOLO rows are ``class cx cy w h`` normalised
to 0..1. XML is parsed with ``defusedxml`` (annotation files come from anywhere). See :mod:`utils.voc` for the
conventions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException


class VocFormatError(ValueError):
    """An annotation file that cannot be used at all (malformed XML, not a VOC annotation)."""


@dataclass
class VocObject:
    """One ``<object>``: class ``name``, raw VOC ``box`` (xmin, ymin, xmax, ymax; 1-based pixels), ``index`` in file."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool
    index: int


@dataclass
class VocAnnotation:
    """A parsed VOC file. ``size`` is the ``<size>`` (width, height) in pixels, or None when missing or zero.

    ``problems`` holds one message per object that could not be read as written (``skipped_objects`` of them were
    left out).
    """

    path: Path
    filename: str | None
    size: tuple[int, int] | None
    objects: list[VocObject]
    problems: list[str] = field(default_factory=list)
    skipped_objects: int = 0


class YoloBox(NamedTuple):
    """Result of :func:`voc_box_to_yolo`: ``xywhn`` (cx, cy, w, h normalised) or None with the ``reason``."""

    xywhn: tuple[float, float, float, float] | None
    clipped: bool
    reason: str


def _number(element: Element, tag: str) -> float | None:
    text = element.findtext(tag)
    try:
        value = float(text.strip()) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_voc_xml(path: str | Path) -> VocAnnotation:
    """Parse one VOC annotation file; raises :class:`VocFormatError` when the file as a whole is unusable.

    Objects without a name or with missing / non-numeric ``<bndbox>`` values are left out and described in
    ``problems``. Boxes are returned as written (xmin, ymin, xmax, ymax, 1-based pixels), not yet validated.
    """
    path = Path(path)
    try:
        root = DefusedET.parse(path).getroot()
    except (ParseError, DefusedXmlException) as e:
        raise VocFormatError(f"{path}: not a readable XML file ({e})") from e
    if root.tag != "annotation":
        raise VocFormatError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    size = None
    size_el = root.find("size")
    if size_el is not None:
        w, h = _number(size_el, "width"), _number(size_el, "height")
        if w and h and w > 0 and h > 0:
            size = (int(w), int(h))
    filename = (root.findtext("filename") or "").strip() or None
    ann = VocAnnotation(path=path, filename=filename, size=size, objects=[])
    for index, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        bndbox = obj.find("bndbox")
        if not name:
            ann.problems.append(f"{path}: object {index} has no <name>; skipped")
            ann.skipped_objects += 1
            continue
        if bndbox is None:
            ann.problems.append(f"{path}: object {index} ({name}) has no <bndbox>; skipped")
            ann.skipped_objects += 1
            continue
        values = [_number(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in values):
            ann.problems.append(f"{path}: object {index} ({name}) has missing or non-numeric <bndbox> values; skipped")
            ann.skipped_objects += 1
            continue
        difficult = (obj.findtext("difficult") or "0").strip()
        try:
            is_difficult = bool(int(float(difficult)))
        except ValueError:
            ann.problems.append(f"{path}: object {index} ({name}) has <difficult>{difficult}</difficult>; read as 0")
            is_difficult = False
        ann.objects.append(VocObject(name=name, box=tuple(values), difficult=is_difficult, index=index))
    return ann


def voc_box_to_yolo(box: tuple[float, float, float, float], width: int, height: int, origin: float = 1.0) -> YoloBox:
    """VOC ``box`` (xmin, ymin, xmax, ymax; pixels counted from ``origin``) to normalised ``(cx, cy, w, h)``.

    The box is clipped to the ``width`` x ``height`` image; ``xywhn`` is None when it has no area (zero or negative
    width or height, or nothing left inside the image), with ``reason`` saying why.
    """
    x1, y1, x2, y2 = (v - origin for v in box)
    bad = [
        f"{'zero' if d == 0 else 'negative'} {what}" for what, d in (("width", x2 - x1), ("height", y2 - y1)) if d <= 0
    ]
    if bad:
        return YoloBox(
            None, False, " and ".join(bad) + f" (xmin={box[0]:g} ymin={box[1]:g} xmax={box[2]:g} ymax={box[3]:g})"
        )
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return YoloBox(None, clipped, f"outside the {width}x{height} image")
    xywhn = ((cx1 + cx2) / 2 / width, (cy1 + cy2) / 2 / height, (cx2 - cx1) / width, (cy2 - cy1) / height)
    return YoloBox(xywhn, clipped, "")


def load_class_names(path: str | Path) -> list[str]:
    """Class names from a text file, one per line; blank lines and lines starting with ``#`` are ignored.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not UTF-8 text or names no class (every object would be dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"class list {path} is not UTF-8 text ({e})") from None
    names = [n for n in (line.strip() for line in lines) if n and not n.startswith("#")]
    if not names:
        raise ValueError(f"class list {path} names no class (it is empty or holds only blank and # lines)")
    return names
