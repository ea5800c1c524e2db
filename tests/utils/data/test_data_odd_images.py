"""Odd images: each is read correctly (displayed size, 3 channels, 8 bits) or skipped with a warning naming it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from utils.data.images import read_image, verify_image
from utils.data.labels import check_image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(path: Path, side: int = 100_000) -> None:
    """A tiny file whose header claims a ``side`` x ``side`` 8-bit grey PNG (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1))  # one row; the rest would decompress from nothing
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )


def _gradient(w: int, h: int) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)
    return np.repeat(x[None], h, 0).astype(np.uint8)


def make_readable(folder: Path) -> dict[str, tuple[int, int]]:
    """Odd but valid images; returns their displayed ``(width, height)``."""
    grey = _gradient(48, 32)
    Image.fromarray(grey, "L").save(folder / "grey.png")
    Image.fromarray(grey, "L").save(folder / "grey.jpg", quality=95)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 0)])  # fully transparent: colour must survive
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.dstack([grey] * 3)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        folder / "palette_png_named.jpg", format="PNG"
    )
    cv2.imwrite(str(folder / "deep16.png"), (grey.astype(np.uint16) * 257))  # 16-bit grey
    stored = Image.fromarray(np.dstack([grey] * 3))  # 48 x 32 stored, orientation 6: shown 32 x 48
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(folder / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(_gradient(12, 10)).save(folder / "small.png")  # the smallest accepted
    Image.fromarray(_gradient(4000, 12)).save(folder / "long.png")
    return {"grey.png": (48, 32), "grey.jpg": (48, 32), "rgba.png": (48, 32), "palette_png_named.jpg": (48, 32),
            "deep16.png": (48, 32), "rotated.jpg": (32, 48), "small.png": (12, 10), "long.png": (4000, 12)}  # fmt: skip


def make_unusable(folder: Path) -> dict[str, str]:
    """Broken images; returns the reason each must be reported with."""
    Image.fromarray(np.dstack([_gradient(64, 48)] * 3)).save(folder / "full.jpg", quality=95)
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(_gradient(5, 5)).save(folder / "tiny.png")
    huge_png_header(folder / "huge.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    (folder / "full.jpg").unlink()
    return {"truncated.jpg": "truncated", "tiny.png": "both sides must be >=", "huge.png": "cannot decode",
            "empty.jpg": "empty file", "text.png": "cannot decode"}  # fmt: skip


@pytest.fixture
def readable(tmp_path) -> tuple[Path, dict]:
    return tmp_path, make_readable(tmp_path)


def test_odd_but_valid_images_are_read_in_their_displayed_size(readable):
    folder, sizes = readable
    for name, (w, h) in sizes.items():
        path = str(folder / name)
        assert verify_image(path) == (w, h), name
        img = read_image(path)
        assert img is not None and img.dtype == np.uint8 and img.shape == (h, w, 3), name
        check = check_image(path, str(folder / "none.txt"), nc=1)
        assert check.ok and not check.warnings, name


def test_pixel_values_survive_conversion(readable):
    folder, _ = readable
    grey = _gradient(48, 32)
    for name in ("grey.png", "rgba.png", "deep16.png", "palette_png_named.jpg"):
        img = read_image(str(folder / name)).astype(int)
        assert np.abs(img - grey[:, :, None]).max() <= 8, name  # 16 bits scaled to 8, palette quantised
    rotated = read_image(str(folder / "rotated.jpg")).astype(int)
    assert rotated[0, :, 0].std() < 4 and rotated[:, 0, 0].std() > 30  # the gradient now runs down the image


def test_broken_images_are_skipped_with_a_warning_naming_the_file(tmp_path):
    for name, reason in make_unusable(tmp_path).items():
        path = str(tmp_path / name)
        check = check_image(path, str(tmp_path / "none.txt"), nc=1)
        assert not check.ok, name
        assert (
            len(check.warnings) == 1 and check.warnings[0].startswith(path) and reason in check.warnings[0].lower()
        ), check.warnings
        assert "skipped" in check.warnings[0]
