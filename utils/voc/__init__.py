"""Convert Pascal VOC XML annotations into a YOLO dataset (``images/``, ``labels/``, data yaml).

Box formats:

- VOC ``<bndbox>`` holds ``xmin, ymin, xmax, ymax`` in 1-based pixel coordinates (the top-left pixel is ``(1, 1)``).
  Every corner is shifted by the origin (``1``; ``0`` for tools that write 0-based values), so a box keeps the size
  ``xmax - xmin`` by ``ymax - ymin``: the convention of YOLOv5's own VOC conversion. A box with ``xmin == xmax`` or
  ``ymin == ymax`` therefore has zero size; it is dropped and reported, as is a box that lies outside the image.
  Coordinates are read as floats and never truncated; boxes are clipped to ``[0, W] x [0, H]`` pixels.
- YOLO label rows: ``class cx cy w h``, box centre and size normalised to 0..1 by the image width and height, written
  with 6 decimals; one ``.txt`` per image, empty for an image without objects (a background image).

XML files may come from anywhere, so they are parsed with ``defusedxml``. A file that cannot be used (malformed XML,
no matching image, unreadable image) is skipped with a warning naming it; an object that cannot be used (missing or
non-numeric ``<bndbox>`` values, unknown class) is skipped with a warning naming the file and the object.
"""

from utils.voc.convert import (
    SPLIT_MODES,
    SPLITS,
    DroppedBox,
    VocConfig,
    VocResult,
    convert_voc,
    read_imagesets,
    split_by_ratios,
    write_data_yaml,
)
from utils.voc.parse import (
    VocAnnotation,
    VocFormatError,
    VocObject,
    YoloBox,
    load_class_names,
    parse_voc_xml,
    voc_box_to_yolo,
)
from utils.voc.write import VocBox, voc_pixel_box, write_voc_xml

__all__ = [
    "SPLITS",
    "SPLIT_MODES",
    "DroppedBox",
    "VocAnnotation",
    "VocBox",
    "VocConfig",
    "VocFormatError",
    "VocObject",
    "VocResult",
    "YoloBox",
    "convert_voc",
    "load_class_names",
    "parse_voc_xml",
    "read_imagesets",
    "split_by_ratios",
    "voc_box_to_yolo",
    "voc_pixel_box",
    "write_data_yaml",
    "write_voc_xml",
]
