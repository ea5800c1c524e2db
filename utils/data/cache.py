"""Checking every image and label of a split once, and remembering the result in a cache file.

The cache is a UTF-8 JSON file (never a pickle) written beside the labels, by default ``<labels folder>.cache``
(``<list>.cache`` when the split is a single ``.txt`` list)::

    {"format": "yolov5-kd-label-cache", "version": 1, "hash": "<sha256>", "nc": 3,
     "images": [{"image": "/abs/a.jpg", "label_file": "/abs/a.txt", "size": [w, h],
                 "labels": [[cls, cx, cy, w, h], ...]}, ...],       # usable images only
     "warnings": ["...", ...],
     "stats": {"found": 10, "backgrounds": 1, "corrupt": 2, "rows_dropped": 3}}

The hash covers the cache version, ``nc`` and the path, size and modification time of every image and label
file, so any change to the data rebuilds it (quietly). A cache that cannot be read, or whose entries contradict the
files it claims to describe (images not in the split, invalid labels, counts that do not add up: a damaged or
hand-edited file), is never trusted: it is rebuilt, the latter with a warning. A location that cannot be written is
reported as a warning and the check result is used without caching.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.data import labels as _labels
from utils.data.images import MIN_IMAGE_SIDE, img2label_path

LOGGER = logging.getLogger(__name__)

CACHE_FORMAT = "yolov5-kd-label-cache"
CACHE_VERSION = 1
PARALLEL_MIN_IMAGES = 32  # below this, checking in one thread is faster than starting a pool


@dataclass
class SplitCheck:
    """The usable images of a split with their checked labels.

    Attributes:
        images: usable image paths, in input order.
        label_files: label path per usable image (may not exist: background).
        sizes: ``int64 [N, 2]`` displayed ``(width, height)`` per usable image.
        labels: per usable image ``float32 [n, 5]`` rows ``(cls, cx, cy, w, h)``, normalised xywh.
        warnings: every problem found, each naming its file.
        found, backgrounds, corrupt, rows_dropped: counts for the summary line.
        cache_file: the cache used or written (``None`` if caching was off).
        from_cache: whether the result was read from the cache instead of checking the files.
    """

    images: list[str]
    label_files: list[str]
    sizes: np.ndarray
    labels: list[np.ndarray]
    warnings: list[str] = field(default_factory=list)
    found: int = 0
    backgrounds: int = 0
    corrupt: int = 0
    rows_dropped: int = 0
    cache_file: Path | None = None
    from_cache: bool = False

    def summary(self, prefix: str = "") -> str:
        """One line: found / backgrounds / corrupt images skipped / rows dropped."""
        source = "cache" if self.from_cache else "check"
        return (
            f"{prefix}{self.found} images found, {self.backgrounds} backgrounds, {self.corrupt} corrupt images "
            f"skipped, {self.rows_dropped} label rows dropped ({source}: {self.cache_file or 'not cached'})"
        )


def default_cache_path(source: object, label_files: Sequence[str]) -> Path:
    """``<list>.cache`` for a single ``.txt`` list source, else ``<folder of the first label file>.cache``."""
    if isinstance(source, (list, tuple)) and len(source) == 1:
        source = source[0]
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".txt") and os.path.isfile(source):
        return Path(source).with_suffix(".cache")
    return Path(label_files[0]).parent.with_suffix(".cache")


def _stat(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, st.st_size, st.st_mtime_ns]


def files_hash(images: Sequence[str], label_files: Sequence[str], nc: int) -> str:
    """SHA-256 over the cache version, ``nc`` and the path, size and mtime of every image and label file."""
    h = hashlib.sha256(json.dumps([CACHE_FORMAT, CACHE_VERSION, nc]).encode())
    for im, lb in zip(images, label_files, strict=True):
        h.update(json.dumps([_stat(im), _stat(lb)]).encode())
    return h.hexdigest()


def _from_checks(checks: Sequence[_labels.ImageCheck]) -> SplitCheck:
    good = [c for c in checks if c.ok]
    return SplitCheck(
        images=[c.image for c in good],
        label_files=[c.label_file for c in good],
        sizes=np.array([c.size for c in good], dtype=np.int64).reshape(-1, 2),
        labels=[c.labels for c in good],
        warnings=[w for c in checks for w in c.warnings],
        found=len(checks),
        backgrounds=sum(len(c.labels) == 0 for c in good),
        corrupt=len(checks) - len(good),
        rows_dropped=sum(c.rows_dropped for c in checks),
    )


def _to_json(result: SplitCheck, digest: str, nc: int) -> dict:
    images = [
        {"image": im, "label_file": lb, "size": [int(v) for v in size], "labels": lab.tolist()}
        for im, lb, size, lab in zip(result.images, result.label_files, result.sizes, result.labels, strict=True)
    ]
    stats = {k: getattr(result, k) for k in ("found", "backgrounds", "corrupt", "rows_dropped")}
    return {"format": CACHE_FORMAT, "version": CACHE_VERSION, "hash": digest, "nc": nc, "images": images,
            "warnings": result.warnings, "stats": stats}  # fmt: skip


def _read_cache(path: Path, digest: str, nc: int, images: Sequence[str]) -> SplitCheck | None:
    """The cached result if ``path`` holds a valid cache for this hash and these images, else ``None``.

    A cache for other files (a changed dataset) or one that cannot be read is rebuilt quietly; one whose content
    contradicts the files it claims to describe (damaged or edited) is reported with a warning and rebuilt.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data["format"] != CACHE_FORMAT or data["version"] != CACHE_VERSION:
            LOGGER.info("label cache %s is of another format or version; rebuilding it", path)
            return None
        if data["hash"] != digest or data["nc"] != nc:
            LOGGER.info("label cache %s describes other files or another class count; rebuilding it", path)
            return None
        entries = data["images"]
        stats = data["stats"]
        result = SplitCheck(
            images=[str(e["image"]) for e in entries],
            label_files=[str(e["label_file"]) for e in entries],
            sizes=np.array([e["size"] for e in entries], dtype=np.int64).reshape(-1, 2),
            labels=[np.array(e["labels"], dtype=np.float32).reshape(-1, 5) for e in entries],
            warnings=[str(w) for w in data["warnings"]],
            found=int(stats["found"]),
            backgrounds=int(stats["backgrounds"]),
            corrupt=int(stats["corrupt"]),
            rows_dropped=int(stats["rows_dropped"]),
            cache_file=path,
            from_cache=True,
        )
    except Exception as e:  # any unreadable, truncated or foreign file: rebuild
        LOGGER.info("label cache %s cannot be read (%s: %s); rebuilding it", path, type(e).__name__, e)
        return None
    problem = _contradiction(result, images, nc)
    if problem:
        LOGGER.warning("label cache %s %s; ignoring it and checking the files again", path, problem)
        return None
    return result


def _contradiction(result: SplitCheck, images: Sequence[str], nc: int) -> str:
    """Why a cached result cannot describe ``images`` (``''`` if it can): the checks that a damaged or edited cache
    whose hash still matches would fail."""
    if result.found != len(images) or len(result.images) + result.corrupt != result.found:
        return f"counts {len(result.images)} usable + {result.corrupt} corrupt images, but the split has {len(images)}"
    position = {p: i for i, p in enumerate(images)}
    order = [position.get(p, -1) for p in result.images]
    if min(order, default=0) < 0 or order != sorted(set(order)):
        return "lists images that are not in the split, twice, or out of order"
    if result.label_files != [img2label_path(p) for p in result.images]:
        return "names label files that do not belong to its images"
    if len(result.sizes) != len(result.images) or (result.sizes < MIN_IMAGE_SIDE).any():
        return "holds image sizes that are missing or too small"
    for image, lab in zip(result.images, result.labels, strict=True):
        cls, xywh = lab[:, 0], lab[:, 1:]
        if not np.isfinite(lab).all() or (cls != np.round(cls)).any() or ((cls < 0) | (cls >= nc)).any():
            return f"holds an invalid class id or number for {image}"
        if (xywh < 0).any() or (xywh > 1).any() or (xywh[:, 2:] <= 0).any():
            return f"holds a box outside [0, 1] or without area for {image}"
    if result.backgrounds != sum(len(lab) == 0 for lab in result.labels) or result.rows_dropped < 0:
        return "has summary counts that disagree with its entries"
    return ""


def _write_cache(path: Path, payload: dict) -> bool:
    if not path.parent.is_dir():
        LOGGER.warning(
            "cannot write label cache %s (folder %s does not exist); continuing without it", path, path.parent
        )
        return False
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f)
        os.replace(tmp, path)
        return True
    except OSError as e:
        LOGGER.warning("cannot write label cache %s (%s); continuing without it", path, e)
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        return False


def run_checks(images: Sequence[str], label_files: Sequence[str], nc: int, workers: int = 8) -> SplitCheck:
    """Check every image and label (see :func:`utils.data.labels.check_image`), in a thread pool when many."""
    workers = max(1, min(workers, os.cpu_count() or 1))
    args = (images, label_files, [nc] * len(images))
    if workers > 1 and len(images) >= PARALLEL_MIN_IMAGES:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            checks = list(pool.map(_labels.check_image, *args))
    else:
        checks = list(map(_labels.check_image, *args))
    return _from_checks(checks)


def check_split(
    images: Sequence[str],
    nc: int,
    cache_file: str | os.PathLike | None = None,
    prefix: str = "",
    workers: int = 8,
) -> SplitCheck:
    """Check a split's images and labels, using and refreshing a cache; log the warnings and a summary line.

    Args:
        images: image paths (see :func:`utils.data.images.list_images`); label paths follow
            :func:`utils.data.images.img2label_path`.
        nc: number of classes the labels may use.
        cache_file: cache location, or ``None`` to check without caching.
        prefix: text put before the summary line (for example ``'train: '``).
        workers: threads used to check the images.

    Raises:
        ValueError: no usable image is left.
    """
    images = list(images)
    label_files = [img2label_path(p) for p in images]
    path = None if cache_file is None else Path(cache_file)
    digest = files_hash(images, label_files, nc) if path is not None else ""
    result = _read_cache(path, digest, nc, images) if path is not None and path.is_file() else None
    if result is None:
        result = run_checks(images, label_files, nc, workers)
        if path is not None and _write_cache(path, _to_json(result, digest, nc)):
            result.cache_file = path
    for message in result.warnings:
        LOGGER.warning("%s%s", prefix, message)
    LOGGER.info(result.summary(prefix))
    if not result.images:
        raise ValueError(f"{prefix}no usable images among the {result.found} found (see the warnings above)")
    if not any(len(lab) for lab in result.labels):
        LOGGER.warning("%sno labels found: every image is a background", prefix)
    return result
