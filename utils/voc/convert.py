"""Converting a Pascal VOC dataset into a YOLO dataset: matching images, splitting, writing labels and yaml."""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image, ImageOps, UnidentifiedImageError

from utils.cli import check_flags, flag
from utils.data.images import exif_size
from utils.voc.parse import VocAnnotation, VocFormatError, parse_voc_xml, voc_box_to_yolo

LOGGER = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # preference order for equal stems
SPLIT_MODES = ("auto", "imagesets", "ratios")


@dataclass
class VocConfig:
    """What to convert and how. Either ``voc_root`` (devkit layout) or both ``images`` and ``annotations``.

    ``voc_root`` supplies ``JPEGImages/``, ``Annotations/`` and ``ImageSets/Main/`` unless ``images``,
    ``annotations`` or ``imagesets`` name other folders. ``split``: ``auto`` uses ``{train,val,test}.txt`` from the
    imagesets folder when there is one, else ``ratios``; ``imagesets`` requires them; ``ratios`` splits a sorted,
    seeded shuffle by ``ratios`` (train, val[, test], relative weights). ``limit`` keeps at most that many images per
    split (train, val[, test]), a seeded random choice. ``max_size`` re-encodes images whose longer side is larger as
    JPEG (``jpeg_quality``) with that longer side; normalised labels stay valid. ``origin`` is subtracted from every
    VOC coordinate (1 for VOC's 1-based pixels). ``data_yaml`` defaults to ``out/data.yaml``.
    """

    out: Path = flag(required=True, help="output dataset folder")
    voc_root: Path | None = flag(None, help="folder with Annotations/, JPEGImages/ and ImageSets/Main/")
    images: Path | None = flag(None, help="image folder (default: VOC_ROOT/JPEGImages)")
    annotations: Path | None = flag(None, help="XML folder (default: VOC_ROOT/Annotations)")
    imagesets: Path | None = flag(None, help="folder with {train,val,test}.txt (default: VOC_ROOT/ImageSets/Main)")
    classes: list[str] | None = flag(None, metavar="NAME", help="class names in id order (default: all found, sorted)")
    split: str = flag("auto", choices=SPLIT_MODES, help="auto (default): imagesets files if present, else ratios")
    ratios: tuple[float, ...] = flag((0.7, 0.2, 0.1), low=0, metavar="R",
                                     help="train val [test] weights (default: 0.7 0.2 0.1)")  # fmt: skip
    seed: int = flag(0, help="seed for the ratio split and --limit (default: 0)")
    limit: tuple[int, ...] | None = flag(
        None, low=0, metavar="N", help="keep at most N images per split: train val [test]"
    )
    skip_difficult: bool = flag(False, help="leave out objects marked <difficult>1</difficult>")
    keep_unannotated: bool = flag(False, help="write images without XML as backgrounds")
    hardlink: bool = flag(False, help="hard-link images instead of copying them")
    max_size: int | None = flag(None, low=1, metavar="PX", help="downscale larger images to this longer side (JPEG)")
    jpeg_quality: int = flag(90, low=1, high=100, help="JPEG quality for --max-size (default: 90)")
    origin: float = 1.0  # --zero-based: 0.0
    data_yaml: Path | None = flag(None, help="where to write the data yaml (default: OUT/data.yaml)")
    absolute_path: bool = flag(False, help="write an absolute 'path' into the data yaml")
    overwrite: bool = flag(False, help="replace existing OUT/images and OUT/labels")

    def __post_init__(self) -> None:
        self.ratios = tuple(self.ratios)
        self.limit = tuple(self.limit) if self.limit is not None else None
        check_flags(self)
        if self.voc_root is None and (self.images is None or self.annotations is None):
            raise ValueError("give --voc-root (a VOC root folder), or both --images and --annotations")
        if len(self.ratios) not in (2, 3):
            raise ValueError(f"--ratios takes 2 or 3 numbers (train val [test]), got {len(self.ratios)}")
        if self.limit is not None and len(self.limit) not in (2, 3):
            raise ValueError(f"--limit takes 2 or 3 counts (train val [test]), got {len(self.limit)}")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"class list has duplicates: {self.classes}")
        if self.classes is not None and not self.classes:
            raise ValueError("class list is empty: every object would be dropped; give at least one class name")


@dataclass
class DroppedBox:
    """A box left out because it has no area: its annotation ``file``, object ``index`` (0-based), class, reason."""

    file: Path
    index: int
    name: str
    reason: str


@dataclass
class VocResult:
    """Counts from :func:`convert_voc`. ``objects`` counts written boxes per class name, ``images`` images per split."""

    out: Path
    data_yaml: Path
    classes: list[str]
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    objects: dict[str, int] = field(default_factory=dict)
    objects_per_split: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    backgrounds: int = 0
    clipped: int = 0
    dropped: list[DroppedBox] = field(default_factory=list)
    difficult_skipped: int = 0
    unknown_classes: dict[str, int] = field(default_factory=dict)
    bad_objects: int = 0
    skipped_files: list[Path] = field(default_factory=list)
    unannotated_images: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        LOGGER.warning(message)
        self.warnings.append(message)

    def summary(self) -> str:
        """Human-readable report of the conversion."""
        splits = ", ".join(f"{s} {self.images[s]}" for s in SPLITS)
        lines = [
            f"images: {sum(self.images.values())} ({splits}), backgrounds {self.backgrounds}",
            f"objects: {sum(self.objects.values())}",
            *(f"  {i} {name}: {self.objects.get(name, 0)}" for i, name in enumerate(self.classes)),
            f"clipped to the image: {self.clipped}",
            f"dropped degenerate boxes: {len(self.dropped)}",
            *(f"  {d.file} object {d.index} ({d.name}): {d.reason}" for d in self.dropped),
            f"skipped difficult: {self.difficult_skipped}",
            f"skipped unknown classes: {dict(sorted(self.unknown_classes.items())) or 'none'}",
            f"skipped unreadable objects: {self.bad_objects}",
            f"skipped annotation files: {len(self.skipped_files)}",
            f"images without annotation (not written): {self.unannotated_images}",
            f"warnings: {len(self.warnings)}",
            f"data yaml: {self.data_yaml}",
        ]
        return "\n".join(lines)


def split_by_ratios(stems: list[str], ratios: tuple[float, ...], seed: int = 0) -> dict[str, list[str]]:
    """Sort ``stems``, shuffle with ``random.Random(seed)``, split by ``ratios`` (train, val[, test]).

    Ratios are non-negative relative weights; counts are rounded by largest remainder so they add up to the total.
    """
    if len(ratios) not in (2, 3) or any(not math.isfinite(r) or r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(
            f"ratios must be 2 or 3 non-negative numbers (train val [test]) with a positive sum, got {ratios}"
        )
    weights = [r / sum(ratios) for r in ratios] + [0.0] * (3 - len(ratios))
    order = sorted(stems)
    random.Random(seed).shuffle(order)
    exact = [w * len(order) for w in weights]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: len(order) - sum(counts)]:
        counts[i] += 1
    bounds = [0, counts[0], counts[0] + counts[1], len(order)]
    return {s: order[bounds[i] : bounds[i + 1]] for i, s in enumerate(SPLITS)}


def read_imagesets(folder: str | Path) -> dict[str, list[str]] | None:
    """Image ids per split from ``folder/{train,val,test}.txt`` (first token of each line); None when none exist."""
    folder = Path(folder)
    found = {s: folder / f"{s}.txt" for s in SPLITS if (folder / f"{s}.txt").is_file()}
    if not found:
        return None
    ids = {s: [] for s in SPLITS}
    for split, file in found.items():
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ids[split].append(line.split()[0])
    return ids


def _image_index(folder: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    rank = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in rank:
            index.setdefault(p.stem, []).append(p)
    for paths in index.values():
        paths.sort(key=lambda p: rank[p.suffix.lower()])
    return index


def _resolve_folders(cfg: VocConfig) -> tuple[Path, Path, Path | None]:
    root = Path(cfg.voc_root) if cfg.voc_root is not None else None
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"VOC root {root} is not a folder")
    images = Path(cfg.images) if cfg.images is not None else root / "JPEGImages"
    annotations = Path(cfg.annotations) if cfg.annotations is not None else root / "Annotations"
    for what, folder in (("images", images), ("annotations", annotations)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder {folder} does not exist")
    imagesets = Path(cfg.imagesets) if cfg.imagesets is not None else (root / "ImageSets" / "Main" if root else None)
    if cfg.imagesets is not None and not imagesets.is_dir():
        raise FileNotFoundError(f"imagesets folder {imagesets} does not exist")
    return images, annotations, imagesets


def _prepare_output(cfg: VocConfig, sources: list[Path]) -> None:
    out = Path(cfg.out)
    targets = [out / "images", out / "labels"]
    for src in sources:
        for t in targets:
            if src.resolve().is_relative_to(t.resolve()):
                raise ValueError(f"source folder {src} lies inside the output folder {t}; choose another output")
    for t in targets:
        if t.exists() and any(t.iterdir()):
            if not cfg.overwrite:
                raise FileExistsError(f"{t} is not empty; remove it or pass overwrite (--overwrite) to replace it")
            shutil.rmtree(t)


class _ImageWriter:
    """Copies, hard-links or downscales images into the output; falls back from hard links to copies once."""

    def __init__(self, cfg: VocConfig, res: VocResult):
        self.cfg, self.res, self.hardlink = cfg, res, cfg.hardlink

    def __call__(self, src: Path, dst_dir: Path) -> Path:
        cfg = self.cfg
        if cfg.max_size is not None:
            with Image.open(src) as im:
                if max(im.size) > cfg.max_size:
                    shown = ImageOps.exif_transpose(im)  # the labels refer to the displayed image; the copy has no EXIF
                    scale = cfg.max_size / max(shown.size)
                    new_size = (max(1, round(shown.width * scale)), max(1, round(shown.height * scale)))
                    dst = dst_dir / f"{src.stem}.jpg"
                    small = shown.convert("RGB").resize(new_size, Image.Resampling.LANCZOS)
                    small.save(dst, format="JPEG", quality=cfg.jpeg_quality)
                    return dst
        dst = dst_dir / src.name
        if self.hardlink:
            try:
                os.link(src, dst)
                return dst
            except OSError as e:
                self.res.warn(f"cannot hard-link {src} into {dst_dir} ({e}); copying images instead")
                self.hardlink = False
        shutil.copyfile(src, dst)
        return dst


def write_data_yaml(path: Path, dataset: Path, classes: list[str], splits: list[str], absolute: bool = False) -> None:
    """YOLOv5 data yaml: ``path`` (relative to the yaml's folder unless ``absolute``), split folders, nc, names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = (
        str(dataset.resolve())
        if absolute
        else Path(os.path.relpath(dataset.resolve(), path.parent.resolve())).as_posix()
    )
    data = {"path": root, **{s: f"images/{s}" for s in splits}, "nc": len(classes), "names": list(classes)}
    header = "# YOLO dataset written by tools/voc2yolo.py; a relative path is relative to this file's folder\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def convert_voc(cfg: VocConfig) -> VocResult:
    """Convert VOC annotations and images into ``cfg.out/{images,labels}/{train,val,test}`` and a data yaml.

    Each XML is matched to the image with the same file stem, falling back to its ``<filename>``. Image sizes come
    from the image files; a disagreeing ``<size>`` is reported. Sources are never modified.
    """
    images_dir, ann_dir, imagesets_dir = _resolve_folders(cfg)
    xml_files = sorted(p for p in ann_dir.iterdir() if p.is_file() and p.suffix.lower() == ".xml")
    if not xml_files:
        raise FileNotFoundError(f"no .xml files in annotations folder {ann_dir}")
    out = Path(cfg.out)
    data_yaml = Path(cfg.data_yaml) if cfg.data_yaml is not None else out / "data.yaml"
    res = VocResult(out=out, data_yaml=data_yaml, classes=list(cfg.classes or []))
    items = _match_images(xml_files, images_dir, cfg.keep_unannotated, res)
    if cfg.classes is None:
        res.classes = sorted({o.name for _, ann in items.values() if ann for o in ann.objects})
        LOGGER.info("classes found in the annotations: %s", res.classes)
        if not res.classes:
            raise ValueError(f"no object with a class name in the {len(xml_files)} annotations of {ann_dir}")
    res.objects = dict.fromkeys(res.classes, 0)
    split_ids = _assign_splits(items, cfg, imagesets_dir, res)

    _prepare_output(cfg, [images_dir, ann_dir])
    class_id = {name: i for i, name in enumerate(res.classes)}
    write_image = _ImageWriter(cfg, res)
    for split in SPLITS:
        if not split_ids[split]:
            continue
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for stem in split_ids[split]:
            image, ann = items[stem]
            rows = _label_rows(image, ann, class_id, cfg, res)
            if rows is None:
                continue
            dst = write_image(image, out / "images" / split)
            (out / "labels" / split / f"{dst.stem}.txt").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
            res.images[split] += 1
            res.objects_per_split[split] += len(rows)
            res.backgrounds += not rows
    for split in ("train", "val"):
        if not res.images[split]:
            res.warn(f"the {split} split is empty")
    yaml_splits = ["train", "val"] + (["test"] if res.images["test"] else [])
    write_data_yaml(data_yaml, out, res.classes, yaml_splits, cfg.absolute_path)
    return res


def _label_rows(
    image: Path, ann: VocAnnotation | None, class_id: dict[str, int], cfg: VocConfig, res: VocResult
) -> list[str] | None:
    """YOLO rows for one image, or None when the image cannot be read (warned, skipped).

    Boxes and ``<size>`` refer to the displayed image (EXIF orientation applied), as ``tools/auto_label.py`` writes
    them and as the trainer reads images, so rows are normalised by the displayed width and height."""
    try:
        with Image.open(image) as im:
            width, height = exif_size(im)
    except (OSError, UnidentifiedImageError) as e:
        res.warn(f"{image}: cannot read the image ({e}); skipped")
        if ann is not None:
            res.skipped_files.append(ann.path)
        return None
    if ann is None:
        return []
    if ann.size is not None and ann.size != (width, height):
        w, h = ann.size
        res.warn(f"{ann.path}: <size> says {w}x{h} but {image.name} is {width}x{height}; using the image size")
    for problem in ann.problems:
        res.warn(problem)
    res.bad_objects += ann.skipped_objects
    rows = []
    for obj in ann.objects:
        if obj.name not in class_id:
            if obj.name not in res.unknown_classes:
                res.warn(
                    f"{ann.path}: object {obj.index} has class {obj.name!r}, not in the class list; skipping this class"
                )
            res.unknown_classes[obj.name] = res.unknown_classes.get(obj.name, 0) + 1
            continue
        if obj.difficult and cfg.skip_difficult:
            res.difficult_skipped += 1
            continue
        box = voc_box_to_yolo(obj.box, width, height, cfg.origin)
        res.clipped += box.clipped and box.xywhn is not None
        if box.xywhn is None:
            res.dropped.append(DroppedBox(ann.path, obj.index, obj.name, box.reason))
            res.warn(f"{ann.path}: object {obj.index} ({obj.name}) dropped: {box.reason}")
            continue
        res.objects[obj.name] += 1
        rows.append(f"{class_id[obj.name]} " + " ".join(f"{v:.6f}" for v in box.xywhn))
    return rows


def _match_images(
    xml_files: list[Path], images_dir: Path, keep_unannotated: bool, res: VocResult
) -> dict[str, tuple[Path, VocAnnotation | None]]:
    """Parse the XML files and pair each with its image: {id (XML stem): (image, annotation or None)}."""
    index = _image_index(images_dir)
    by_name = {p.name: p for paths in index.values() for p in paths}
    items: dict[str, tuple[Path, VocAnnotation | None]] = {}
    used: dict[Path, Path] = {}  # image -> the XML that claimed it
    for xml in xml_files:
        try:
            ann = parse_voc_xml(xml)
        except VocFormatError as e:
            res.warn(f"{e}; file skipped")
            res.skipped_files.append(xml)
            continue
        image = index[xml.stem][0] if xml.stem in index else None
        if image is None and ann.filename:  # <filename> is often stale, so it is only the fallback
            name = Path(ann.filename.replace("\\", "/")).name
            image = by_name.get(name) or (index[name][0] if name in index else None)
        if image is None:
            res.warn(f"{xml}: no image named {xml.stem}.* or {ann.filename!r} in {images_dir}; file skipped")
            res.skipped_files.append(xml)
            continue
        if len(index[image.stem]) > 1:
            res.warn(f"{xml}: several images share the stem {image.stem!r}; using {image.name}")
        if image in used:
            res.warn(f"{xml}: image {image.name} is already annotated by {used[image].name}; file skipped")
            res.skipped_files.append(xml)
            continue
        used[image] = xml
        items[xml.stem] = (image, ann)
    for paths in index.values():
        if paths[0] not in used:
            if keep_unannotated and paths[0].stem not in items:
                items[paths[0].stem] = (paths[0], None)
            else:
                res.unannotated_images += 1
    return items


def _assign_splits(items: dict, cfg: VocConfig, imagesets_dir: Path | None, res: VocResult) -> dict[str, list[str]]:
    """Item ids per split: from the imagesets files or by seeded ratios, then cut to ``cfg.limit``."""
    sets = read_imagesets(imagesets_dir) if imagesets_dir is not None and imagesets_dir.is_dir() else None
    if cfg.split == "imagesets" and sets is None:
        where = imagesets_dir or "an imagesets folder (give a VOC root or imagesets)"
        raise FileNotFoundError(f"split 'imagesets' needs {{train,val,test}}.txt in {where}")
    if sets is not None and cfg.split != "ratios":
        assigned: dict[str, str] = {}
        for split in SPLITS:
            for stem in sets[split]:
                first = assigned.setdefault(stem, split)
                if first != split:
                    res.warn(f"{imagesets_dir}: {stem} is in {first}.txt and {split}.txt; kept in {first}")
        missing = sorted(s for s in assigned if s not in items)
        if missing:
            res.warn(f"{imagesets_dir}: {len(missing)} listed ids have no usable annotation/image (e.g. {missing[0]})")
        unlisted = sorted(s for s in items if s not in assigned)
        if unlisted:
            res.warn(f"{len(unlisted)} images are in no split file of {imagesets_dir} (e.g. {unlisted[0]}); skipped")
        split_ids = {s: sorted(i for i, sp in assigned.items() if sp == s and i in items) for s in SPLITS}
    else:
        split_ids = split_by_ratios(list(items), cfg.ratios, cfg.seed)
    for split, n in zip(SPLITS, cfg.limit or (), strict=False):  # a 2-value limit leaves test unlimited
        if len(split_ids[split]) > n:
            split_ids[split] = sorted(random.Random(cfg.seed).sample(split_ids[split], n))
    return split_ids
