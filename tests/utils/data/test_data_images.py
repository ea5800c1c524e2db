"""Image listing, label paths and image verification."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from synth_data import make_split, write_image

from utils.data.images import expand_source, img2label_path, list_images, read_image, verify_image


def test_list_folder_recursive_sorted_and_filtered(tmp_path):
    make_split(tmp_path, "train", 3)
    write_image(tmp_path / "images" / "train" / "sub" / "z.jpg", 32, 32)
    (tmp_path / "images" / "train" / "notes.md").write_text("x")
    (tmp_path / "images" / "train" / "UPPER.PNG").write_bytes(b"")
    files = list_images(tmp_path / "images")
    names = [os.path.relpath(f, tmp_path / "images") for f in files]
    assert names == sorted(names)
    assert names == ["train/UPPER.PNG", "train/img0.png", "train/img1.png", "train/img2.png", "train/sub/z.jpg"]
    assert all(os.path.isabs(f) for f in files)


def test_list_txt_glob_file_and_list(tmp_path):
    imgs = make_split(tmp_path, "train", 3)
    lst = tmp_path / "lists" / "train.txt"
    lst.parent.mkdir()
    lst.write_text(f"../images/train/img1.png\n\n# comment\n{imgs[2]}\nreadme.md\n")
    assert list_images(lst) == [str(imgs[1]), str(imgs[2])]
    assert list_images(str(tmp_path / "images" / "train" / "img[02].png")) == [str(imgs[0]), str(imgs[2])]
    assert list_images(imgs[0]) == [str(imgs[0])]
    assert list_images([imgs[0], lst, imgs[1]]) == [str(p) for p in imgs]  # duplicates merged


def test_empty_or_missing_source_names_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        list_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        list_images(tmp_path / "missing_dir")
    with pytest.raises(FileNotFoundError, match=r"\*\.gif"):
        list_images(str(tmp_path / "*.gif"))
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(FileNotFoundError, match="a.csv"):
        list_images(tmp_path / "a.csv")


def test_expand_source_non_recursive(tmp_path):
    write_image(tmp_path / "a.png", 16, 16)
    write_image(tmp_path / "sub" / "b.png", 16, 16)
    assert [Path(p).name for p in expand_source(tmp_path, recursive=False)] == ["a.png"]


@pytest.mark.parametrize(
    "image, label",
    [
        ("/d/images/train/a.jpg", "/d/labels/train/a.txt"),
        ("/images/x/images/b.v1.png", "/images/x/labels/b.v1.txt"),  # only the last images/ component
        ("/d/imgs/c.jpeg", "/d/imgs/c.txt"),  # no images/ folder: beside the image
        ("/d/myimages/c.jpeg", "/d/myimages/c.txt"),  # a folder merely containing 'images' is kept
    ],
)
def test_img2label_path(image, label):
    assert img2label_path(image) == label


def test_verify_image_reports_reasons(tmp_path):
    good = tmp_path / "good.jpg"
    write_image(good, 40, 30)
    assert verify_image(str(good)) == (40, 30)
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not an image at all" * 10)
    write_image(tmp_path / "tiny.png", 5, 40)
    (tmp_path / "padded.jpg").write_bytes(data + b"\x00" * 16)
    reasons = {
        "trunc.jpg": "truncated JPEG|cannot decode",
        "empty.png": "empty file",
        "junk.png": "cannot decode",
        "tiny.png": "5x40 pixels",
        "missing.png": "not found",
    }
    for name, reason in reasons.items():
        with pytest.raises(ValueError, match=reason):
            verify_image(str(tmp_path / name))
    assert verify_image(str(tmp_path / "padded.jpg")) == (40, 30)


def test_jpeg_without_end_marker_is_truncated(tmp_path):
    good = tmp_path / "good.jpg"
    write_image(good, 40, 30)
    data = good.read_bytes()
    assert data.endswith(b"\xff\xd9")
    (tmp_path / "noeoi.jpg").write_bytes(data[:-2])
    with pytest.raises(ValueError, match="truncated JPEG"):
        verify_image(str(tmp_path / "noeoi.jpg"))
    assert (tmp_path / "noeoi.jpg").read_bytes() == data[:-2]  # never repaired in place


def test_exif_orientation_swaps_size(tmp_path):
    path = tmp_path / "rot.jpg"
    img = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(path, exif=exif)
    assert verify_image(str(path)) == (20, 40)
    assert read_image(str(path)).shape == (40, 20, 3)


def test_read_image_falls_back_to_pil(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    write_image(path, 24, 16, [(2, 0, 0, 8, 8)])
    expected = cv2.imread(str(path))
    monkeypatch.setattr(cv2, "imread", lambda *a, **k: None)
    got = read_image(str(path))
    np.testing.assert_array_equal(got, expected)
    assert read_image(str(tmp_path / "missing.png")) is None
