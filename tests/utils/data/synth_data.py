"""Helpers that write tiny synthetic YOLO datasets (images with coloured rectangles and their labels)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
BCCD_IMAGES = SHARED / "datasets" / "BCCD" / "JPEGImages"

# BGR colours of the filled rectangles; the class id of a rectangle is its colour's index
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]


def write_image(path: Path, w: int, h: int, rects=(), seed: int = 0) -> None:
    """A grey image with filled rectangles ``(cls, x1, y1, x2, y2)`` (pixel edges) in ``COLOURS[cls]``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), 60, np.uint8)
    img += np.random.default_rng(seed).integers(0, 20, img.shape, dtype=np.uint8)
    for cls, x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = COLOURS[cls]
    ok = (
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
        if path.suffix == ".jpg"
        else cv2.imwrite(str(path), img)
    )
    assert ok


def yolo_rows(w: int, h: int, rects) -> str:
    """Label rows ``cls cx cy w h`` (normalised) for pixel rectangles ``(cls, x1, y1, x2, y2)``."""
    return "".join(
        f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"
        for c, x1, y1, x2, y2 in rects
    )


def make_split(root: Path, split: str = "train", n: int = 6, sizes=None, suffix: str = ".png") -> list[Path]:
    """``root/images/<split>/imgK.png`` with one or two coloured rectangles each and matching labels."""
    paths = []
    for k in range(n):
        w, h = sizes[k % len(sizes)] if sizes else (64 + 8 * k, 48 + 4 * (k % 3))
        rects = [(k % 3, 4 + k, 6, 4 + k + w // 3, 6 + h // 3)]
        if k % 2:
            rects.append((3, w // 2, h // 2, w - 3, h - 2))
        img = root / "images" / split / f"img{k}{suffix}"
        write_image(img, w, h, rects, seed=k)
        lbl = root / "labels" / split / f"img{k}.txt"
        lbl.parent.mkdir(parents=True, exist_ok=True)
        lbl.write_text(yolo_rows(w, h, rects))
        paths.append(img)
    return paths


def colour_mask(img: np.ndarray, c: int) -> np.ndarray:
    """``uint8 [H, W]`` 1 where a BGR image shows ``COLOURS[c]`` (within 40 per channel)."""
    return (np.abs(img.astype(int) - COLOURS[c]).max(2) < 40).astype(np.uint8)


def assert_boxes_cover_rectangles(img: np.ndarray, labels: np.ndarray, max_lost_area: float | None, min_side=2):
    """Every pixel of a rectangle's colour in the BGR ``img`` lies in a box of its class (1 px slack).

    ``labels`` are ``[n, 5]`` rows ``(cls, x1, y1, x2, y2)``, xyxy pixels of ``img``.

    With ``max_lost_area=None`` there may be no exception; otherwise a stray patch is allowed only where a box
    was dropped: a sliver (<= 2 px) or a small remnant, away from every kept box of its class.
    """
    h, w = img.shape[:2]
    eps = 1e-3  # float32 round trips of the normalised labels
    assert (
        (labels[:, 1:] >= -eps).all() and (labels[:, [1, 3]] <= w + eps).all() and (labels[:, [2, 4]] <= h + eps).all()
    )
    assert ((labels[:, 3] - labels[:, 1]) >= min_side).all() and ((labels[:, 4] - labels[:, 2]) >= min_side).all()
    for c in range(len(COLOURS)):
        covered = np.zeros((h, w), np.uint8)
        for _, x1, y1, x2, y2 in labels[labels[:, 0] == c]:
            covered[max(0, int(y1) - 1) : int(np.ceil(y2)) + 1, max(0, int(x1) - 1) : int(np.ceil(x2)) + 1] = 1
        stray = colour_mask(img, c) & (1 - covered)
        if max_lost_area is None:
            assert not stray.any(), f"class {c}: {stray.sum()} px of its colour outside its boxes"
            continue
        kernel = np.ones((3, 3), np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(stray)
        for k in range(1, n):
            bw, bh, area = stats[k, 2:5]
            assert min(bw, bh) <= 2 or area <= max_lost_area, f"class {c}: {area} px of its colour outside its boxes"
            touching = cv2.dilate((comp == k).astype(np.uint8), kernel) & covered
            assert not touching.any(), f"class {c}: its colour spills out of a kept box"
