"""Convert Pascal VOC XML annotations into a YOLO dataset (images/, labels/, data yaml).

Examples:
    python tools/voc2yolo.py --voc-root VOCdevkit/VOC2012 --out datasets/voc
    python tools/voc2yolo.py --images photos --annotations xml --classes cat dog --ratios 0.8 0.2 --out datasets/pets
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from utils.voc import SPLIT_MODES, VocConfig, convert_voc, load_class_names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Convert Pascal VOC XML annotations into YOLO labels, split them and write a data yaml.",
    )
    src = p.add_argument_group("input (a VOC root, or --images with --annotations)")
    src.add_argument("--voc-root", type=Path, help="folder with Annotations/, JPEGImages/ and ImageSets/Main/")
    src.add_argument("--images", type=Path, help="image folder (default: VOC_ROOT/JPEGImages)")
    src.add_argument("--annotations", type=Path, help="XML folder (default: VOC_ROOT/Annotations)")
    src.add_argument(
        "--imagesets", type=Path, help="folder with {train,val,test}.txt (default: VOC_ROOT/ImageSets/Main)"
    )
    p.add_argument("--out", type=Path, required=True, help="output dataset folder")
    p.add_argument("--data-yaml", type=Path, help="where to write the data yaml (default: OUT/data.yaml)")
    p.add_argument("--absolute-path", action="store_true", help="write an absolute 'path' into the data yaml")
    p.add_argument("--overwrite", action="store_true", help="replace existing OUT/images and OUT/labels")
    cls = p.add_mutually_exclusive_group()
    cls.add_argument(
        "--classes", nargs="+", metavar="NAME", help="class names in id order (default: all found, sorted)"
    )
    cls.add_argument("--classes-file", type=Path, help="text file with one class name per line")
    p.add_argument(
        "--split", choices=SPLIT_MODES, default="auto", help="auto (default): imagesets files if present, else ratios"
    )
    p.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=[0.7, 0.2, 0.1],
        metavar="R",
        help="train val [test] weights (default: 0.7 0.2 0.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the ratio split and --limit (default: 0)")
    p.add_argument(
        "--limit", type=int, nargs="+", metavar="N", help="keep at most N images per split: train val [test]"
    )
    p.add_argument("--skip-difficult", action="store_true", help="leave out objects marked <difficult>1</difficult>")
    p.add_argument("--keep-unannotated", action="store_true", help="write images without XML as backgrounds")
    p.add_argument("--hardlink", action="store_true", help="hard-link images instead of copying them")
    p.add_argument("--max-size", type=int, metavar="PX", help="downscale larger images to this longer side (JPEG)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality for --max-size (default: 90)")
    p.add_argument("--zero-based", action="store_true", help="XML coordinates start at 0 instead of VOC's 1")
    return p


def parse_args(argv: list[str] | None = None) -> VocConfig:
    """Command line to a :class:`utils.voc.VocConfig`."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.voc_root is None and (a.images is None or a.annotations is None):
        parser.error("give --voc-root, or both --images and --annotations")
    if len(a.ratios) not in (2, 3):
        parser.error(f"--ratios takes 2 or 3 numbers (train val [test]), got {len(a.ratios)}")
    if a.limit is not None and len(a.limit) not in (2, 3):
        parser.error(f"--limit takes 2 or 3 counts (train val [test]), got {len(a.limit)}")
    try:
        classes = load_class_names(a.classes_file) if a.classes_file is not None else a.classes
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    return VocConfig(
        out=a.out,
        voc_root=a.voc_root,
        images=a.images,
        annotations=a.annotations,
        imagesets=a.imagesets,
        classes=classes,
        split=a.split,
        ratios=tuple(a.ratios),
        seed=a.seed,
        limit=tuple(a.limit) if a.limit is not None else None,
        skip_difficult=a.skip_difficult,
        keep_unannotated=a.keep_unannotated,
        hardlink=a.hardlink,
        max_size=a.max_size,
        jpeg_quality=a.jpeg_quality,
        origin=0.0 if a.zero_based else 1.0,
        data_yaml=a.data_yaml,
        absolute_path=a.absolute_path,
        overwrite=a.overwrite,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        result = convert_voc(cfg)
    except (ValueError, OSError) as e:
        print(f"voc2yolo: error: {e}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
