"""Writing Pascal VOC XML annotations (the counterpart of :mod:`utils.voc.parse`).

Detections arrive as ``xyxy`` boxes in 0-based continuous pixels of the original image. VOC ``<bndbox>`` values
are written as integers in the convention :mod:`utils.voc` reads: 1-based, every corner shifted by the origin 1
(``xmin = round(x1) + 1``), clipped to ``1..width`` / ``1..height``, so a box keeps its size ``xmax - xmin``
up to rounding. Boxes that lose all area to rounding or clipping are left out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ORIGIN = 1  # VOC pixels are counted from 1


@dataclass
class VocBox:
    """One object to write: class ``name`` and ``box`` (x1, y1, x2, y2) in 0-based pixels of the image."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


def voc_pixel_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer VOC ``(xmin, ymin, xmax, ymax)`` of a 0-based pixel ``xyxy`` box, clipped to the image; None when
    nothing with area is left."""
    x1, y1, x2, y2 = box
    xmin = min(max(round(x1) + ORIGIN, ORIGIN), width)
    ymin = min(max(round(y1) + ORIGIN, ORIGIN), height)
    xmax = min(max(round(x2) + ORIGIN, ORIGIN), width)
    ymax = min(max(round(y2) + ORIGIN, ORIGIN), height)
    if xmax <= xmin or ymax <= ymin:
        return None
    return int(xmin), int(ymin), int(xmax), int(ymax)


def _text(parent: ET.Element, tag: str, value) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(value)
    return el


def voc_tree(image_path: str | Path, shape_hwc: tuple[int, int, int], objects: list[VocBox]) -> ET.ElementTree:
    """The ``<annotation>`` tree of one image: folder, filename, path, source, size (width, height, depth),
    segmented, and one ``<object>`` per box that keeps some area inside the image."""
    image_path = Path(image_path)
    height, width, depth = shape_hwc
    root = ET.Element("annotation")
    _text(root, "folder", image_path.parent.name)
    _text(root, "filename", image_path.name)
    _text(root, "path", str(image_path.resolve()))
    _text(ET.SubElement(root, "source"), "database", "Unknown")
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        _text(size, tag, value)
    _text(root, "segmented", 0)
    for obj in objects:
        pixels = voc_pixel_box(obj.box, width, height)
        if pixels is None:
            continue
        el = ET.SubElement(root, "object")
        _text(el, "name", obj.name)
        _text(el, "pose", obj.pose)
        _text(el, "truncated", int(obj.truncated))
        _text(el, "difficult", int(obj.difficult))
        bndbox = ET.SubElement(el, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), pixels, strict=True):
            _text(bndbox, tag, value)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="    ")
    return tree


def write_voc_xml(
    path: str | Path, image_path: str | Path, shape_hwc: tuple[int, int, int], objects: list[VocBox]
) -> int:
    """Write the annotation of ``image_path`` (of ``shape_hwc`` = height, width, depth) to ``path`` (UTF-8).

    Returns the number of objects written.
    """
    tree = voc_tree(image_path, shape_hwc, objects)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return len(tree.getroot().findall("object"))
