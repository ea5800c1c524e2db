"""``tools/auto_label.py``: label new images with a detector, writing one Pascal VOC XML per image.

Sources as ``detect.py``: an image, a folder, a glob, a ``.txt`` list of paths or a video (its frames are saved as
JPEG images so that every XML points at an image). Output under ``project/name``:

Outputs are named as ``detect.py`` names them (:func:`utils.runners.detect.output_names`): by the file's stem, or,
for files sharing a stem, by their path below the folder common to them (``Annotations/d1/x.xml``,
``Annotations/d2/x.xml``) with the suffix added where still ambiguous (``x_jpg.xml``, ``x_png.xml``).

- ``Annotations/<stem>.xml``: VOC annotation (boxes in integer 1-based pixels clipped to the image, see
  :mod:`utils.voc.write`); none for an image without detections unless ``save_empty``.
- ``labels/<stem>.txt`` with ``save_txt``: YOLO rows ``class cx cy w h`` normalised to the image.
- ``images/<stem>_<frame>.jpg``: the frames of videos.
- ``previews/<name>`` with ``previews``: the image with its boxes drawn.

The result feeds ``tools/voc2yolo.py --images <folder> --annotations <out>/Annotations`` unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from utils.cli import flag, reflag
from utils.data.labels import write_label_file
from utils.files import increment_path
from utils.plots.annotate import Annotator
from utils.runners.detect import output_names
from utils.runners.predict import InferenceConfig, Predictor
from utils.training.results import summary_table
from utils.voc.write import VocBox, voc_pixel_box, write_voc_xml

LOGGER = logging.getLogger(__name__)


@dataclass
class AutoLabelConfig(InferenceConfig):
    weights: str = reflag(
        InferenceConfig, "weights", help="checkpoint (ours, upstream's, pruned) or .onnx / .torchscript"
    )
    source: str = reflag(InferenceConfig, "source", required=True)
    project: str = reflag(InferenceConfig, "project", "runs/auto_label")
    classes: list[str] | None = flag(None, metavar="NAME|ID", help="keep only these classes")
    save_txt: bool = flag(False, help="also write YOLO txt labels")
    save_empty: bool = flag(False, help="write an XML for images without detections too")
    previews: bool = flag(False, help="save images with the boxes drawn")


@dataclass
class AutoLabelResult:
    save_dir: Path
    images: int = 0  # images and video frames processed
    xml_written: int = 0
    empty: int = 0  # images without detections
    per_class: Counter = field(default_factory=Counter)  # class name -> objects written

    def summary(self) -> str:
        rows = [("images", str(self.images)), ("XML files", str(self.xml_written)), ("no detections", str(self.empty))]
        rows += [(f"  {name}", str(n)) for name, n in sorted(self.per_class.items())]
        rows.append(("objects", str(sum(self.per_class.values()))))
        return summary_table(rows)


def resolve_classes(classes: list[str] | None, names: list[str]) -> list[int] | None:
    """Class ids for ``--classes`` given as names or ids of the model's ``names``; raises ``ValueError`` naming an
    unknown one."""
    if not classes:
        return None
    ids = []
    for c in classes:
        if c in names:
            ids.append(names.index(c))
        elif c.isdigit() and int(c) < len(names):
            ids.append(int(c))
        else:
            raise ValueError(
                f"--classes {c!r} is neither a class of the model ({', '.join(names)}) nor an id < {len(names)}"
            )
    return sorted(set(ids))


def run_auto_label(cfg: AutoLabelConfig) -> AutoLabelResult:
    predictor = Predictor(cfg)
    names = predictor.names
    predictor.classes = resolve_classes(cfg.classes, names)
    dataset = predictor.images()
    out_names = output_names(dataset.files)
    save_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok, mkdir=True)
    result = AutoLabelResult(save_dir)
    for path, img, img0, cap, _ in dataset:
        det = predictor(img, img0)
        image_path, name = Path(path), out_names[path]
        if cap is not None:  # a video frame becomes an image the XML can point at
            name = f"{name}_{int(cap.get(cv2.CAP_PROP_POS_FRAMES))}"
            image_path = save_dir / "images" / f"{name}.jpg"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(image_path), img0)
        result.images += 1
        _write_labels(cfg, result, image_path, name, img0, det, names)
    if result.images == 0:
        raise ValueError(
            f"--source {cfg.source}: nothing was labelled: none of its {len(dataset)} files could be read "
            "(see the warnings above)"
        )
    LOGGER.info("Auto-labelled %d images into %s\n%s", result.images, save_dir, result.summary())
    return result


def _write_labels(cfg: AutoLabelConfig, result: AutoLabelResult, image_path: Path, name: str, img0, det, names) -> None:
    """XML (and optionally YOLO txt and a preview) for one image, each at ``<folder>/<name>.<ext>``; ``det``
    ``[n, 6]`` xyxy original pixels."""
    if not len(det):
        result.empty += 1
        if not cfg.save_empty:
            return
    shape = img0.shape if img0.ndim == 3 else (*img0.shape, 1)
    h, w = img0.shape[:2]
    objects = [
        VocBox(names[int(c)], (x1, y1, x2, y2), truncated=x1 <= 0 or y1 <= 0 or x2 >= w or y2 >= h)
        for x1, y1, x2, y2, _, c in det.tolist()
    ]
    kept = [o for o in objects if voc_pixel_box(o.box, w, h) is not None]
    write_voc_xml(result.save_dir / "Annotations" / f"{name}.xml", image_path, shape, kept)
    result.xml_written += 1
    if len(kept) < len(objects):
        LOGGER.info("%s: %d boxes with no area after rounding to pixels left out", image_path, len(objects) - len(kept))
    result.per_class.update(o.name for o in kept)
    if cfg.save_txt:
        _save(result.save_dir / "labels" / f"{name}.txt", lambda f: write_label_file(f, det, img0.shape[:2]))
    if cfg.previews:
        annotated = Annotator(img0, names=names).draw_detections(det).result()
        _save(result.save_dir / "previews" / f"{name}.jpg", lambda f: cv2.imwrite(str(f), annotated))


def _save(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
