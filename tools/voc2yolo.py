"""Convert Pascal VOC XML annotations into a YOLO dataset (images/, labels/, data yaml).

Examples:
    python tools/voc2yolo.py --voc-root VOCdevkit/VOC2012 --out datasets/voc
    python tools/voc2yolo.py --images photos --annotations xml --classes cat dog --ratios 0.8 0.2 --out datasets/pets
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

from utils.cli import add_flags, config_from_namespace
from utils.voc import VocConfig, convert_voc, load_class_names

INPUT = ("voc_root", "images", "annotations", "imagesets")
OUTPUT = ("out", "data_yaml", "absolute_path", "overwrite")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Convert Pascal VOC XML annotations into YOLO labels, split them and write a data yaml.",
    )
    add_flags(p.add_argument_group("input (a VOC root, or --images with --annotations)"), VocConfig, only=INPUT)
    add_flags(p, VocConfig, only=OUTPUT)
    cls = p.add_mutually_exclusive_group()
    add_flags(cls, VocConfig, only=("classes",))
    cls.add_argument("--classes-file", type=Path, help="text file with one class name per line")
    add_flags(p, VocConfig, only=[f.name for f in fields(VocConfig) if f.name not in (*INPUT, *OUTPUT, "classes")])
    p.add_argument("--zero-based", action="store_true", help="XML coordinates start at 0 instead of VOC's 1")
    return p


def parse_args(argv: list[str] | None = None) -> VocConfig:
    """Command line to a :class:`utils.voc.VocConfig`."""
    parser = build_parser()
    a = parser.parse_args(argv)
    a.origin = 0.0 if a.zero_based else 1.0
    try:
        if a.classes_file is not None:
            a.classes = load_class_names(a.classes_file)
        return config_from_namespace(VocConfig, a)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))


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
