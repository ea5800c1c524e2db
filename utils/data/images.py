"""Finding image files, mapping them to label files, verifying and reading them."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

LOGGER = logging.getLogger(__name__)

IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp")
VID_FORMATS = ("asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv")
MIN_IMAGE_SIDE = 10  # pixels; smaller images are rejected as corrupt

Source = str | os.PathLike | Sequence[str | os.PathLike]

_EXIF_ORIENTATION = 0x0112
_GLOB_CHARS = "*?["


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1][1:].lower()


def _read_list_file(txt: str, formats: tuple[str, ...]) -> list[str]:
    folder = os.path.dirname(os.path.abspath(txt))
    out, skipped = [], 0
    with open(txt, encoding="utf-8") as f:
        for line in f:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if _suffix(entry) not in formats:
                skipped += 1
                continue
            entry = os.path.expanduser(entry)
            out.append(entry if os.path.isabs(entry) else os.path.join(folder, entry))
    if skipped:
        LOGGER.warning("%s: %d entries without a known suffix (%s) ignored", txt, skipped, ", ".join(formats))
    return out


def expand_source(source: Source, formats: tuple[str, ...] = IMG_FORMATS, recursive: bool = True) -> list[str]:
    """Expand a source into a sorted list of absolute file paths with a suffix in ``formats``.

    A source is a folder (searched recursively unless ``recursive=False``), a ``.txt`` file listing one path per
    line (relative entries resolve against the list's folder; blank lines and ``#`` comments are ignored), a glob
    pattern, a single file, or a list of those. Entries of a ``.txt`` list are not checked for existence here;
    the label checker reports missing ones.

    Raises:
        FileNotFoundError: a source does not exist or yields no file; the message names it.
    """
    sources: Iterable = [source] if isinstance(source, (str, os.PathLike)) else source
    files: list[str] = []
    for src in sources:
        s = os.path.expanduser(os.fspath(src))
        if any(c in s for c in _GLOB_CHARS) and not os.path.exists(s):
            found = [p for p in glob.glob(s, recursive=True) if os.path.isfile(p) and _suffix(p) in formats]
        elif os.path.isdir(s):
            found = _walk_folder(s, formats, recursive)
        elif os.path.isfile(s) and _suffix(s) == "txt":
            found = _read_list_file(s, formats)
        elif os.path.isfile(s):
            if _suffix(s) not in formats:
                raise FileNotFoundError(f"{s}: not a supported file type; expected one of {', '.join(formats)}")
            found = [s]
        else:
            raise FileNotFoundError(f"{s} does not exist")
        if not found:
            raise FileNotFoundError(f"{s}: no files with a supported suffix ({', '.join(formats)}) found")
        files.extend(found)
    return _unique_files(files, source)


def _walk_folder(folder: str, formats: tuple[str, ...], recursive: bool) -> list[str]:
    """Files of ``folder`` with a suffix in ``formats``; links are followed, but every real folder is read once
    (a symlink loop or two links to one folder would otherwise list the same images many times)."""
    out, seen = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            LOGGER.warning("%s: the same folder as %s (a symlink loop or a second link); not read again", root, real)
            dirs.clear()
            continue
        seen.add(real)
        if not recursive:
            dirs.clear()
        dirs.sort()
        out.extend(os.path.join(root, n) for n in sorted(names) if _suffix(n) in formats)
    return [p for p in out if os.path.isfile(p)]


def _unique_files(files: list[str], source: object) -> list[str]:
    """Absolute, sorted, and one path per real file: of several paths to one file (links), the first in sort order."""
    by_real: dict[str, str] = {}
    for p in sorted({os.path.normpath(os.path.abspath(p)) for p in files}):
        by_real.setdefault(os.path.realpath(p), p)
    unique = sorted(by_real.values())
    if len(unique) < len(files):
        LOGGER.warning(
            "%s: %d duplicate entries ignored (the same file listed twice or reached by links)",
            source, len(files) - len(unique),
        )  # fmt: skip
    return unique


def list_images(source: Source) -> list[str]:
    """Image files of a source (see :func:`expand_source`), sorted, absolute."""
    return expand_source(source, IMG_FORMATS, recursive=True)


def img2label_path(image_path: str | os.PathLike) -> str:
    """The YOLO label file of an image.

    The last ``images`` folder of the path becomes ``labels`` and the suffix becomes ``.txt``:
    ``data/images/train/a.jpg -> data/labels/train/a.txt``. Without an ``images`` folder the label lies beside
    the image.
    """
    p = Path(image_path)
    parts = list(p.parent.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return str(Path(*parts, p.stem + ".txt")) if parts else p.stem + ".txt"


def exif_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of a PIL image as displayed, i.e. after applying its EXIF orientation."""
    w, h = img.size
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # malformed EXIF must not reject an otherwise good image
        orientation = None
    if orientation in (5, 6, 7, 8):  # these orientations transpose the image
        w, h = h, w
    return w, h


def _jpeg_is_complete(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read().rstrip(b"\x00")  # some writers pad after the end marker
    return tail.endswith(b"\xff\xd9")


class _Rejected(ValueError):
    pass


def verify_image(path: str) -> tuple[int, int]:
    """Check that an image file is complete and decodable; return its displayed ``(width, height)``.

    Raises:
        ValueError: the reason the image is unusable (missing, empty, unknown format, undecodable, truncated JPEG,
            smaller than ``MIN_IMAGE_SIDE`` pixels).
    """
    if not os.path.isfile(path):
        raise ValueError("image file not found")
    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            fmt = (im.format or "").lower()
            if fmt not in IMG_FORMATS:
                raise _Rejected(f"unsupported image format {fmt!r}; expected one of {', '.join(IMG_FORMATS)}")
            if fmt in ("jpeg", "mpo") and not _jpeg_is_complete(path):
                raise _Rejected("truncated JPEG (no end-of-image marker)")
            im.verify()
        with Image.open(path) as im:
            size = exif_size(im)
            im.load()
    except _Rejected:
        raise
    except Exception as e:
        raise ValueError(f"cannot decode image ({type(e).__name__}: {e})") from None
    if min(size) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is {size[0]}x{size[1]} pixels; both sides must be >= {MIN_IMAGE_SIDE}")
    return size


def read_image(path: str) -> np.ndarray | None:
    """Read an image as BGR ``uint8 [H, W, 3]`` with EXIF orientation applied; ``None`` if it cannot be read.

    OpenCV is tried first; formats it cannot decode fall back to PIL. The file is never modified.
    """
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is not None:
        return img
    try:
        with Image.open(path) as im:
            rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception:
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])
