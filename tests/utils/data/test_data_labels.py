"""Label parsing, the bad-data corpus and the label cache."""

import json
import logging
import os

import numpy as np
import pytest
import torch
from synth_data import make_split, write_image

from utils.data import cache as cache_mod
from utils.data import labels as labels_mod
from utils.data.cache import check_split
from utils.data.dataset import create_dataloader
from utils.data.images import list_images
from utils.data.labels import parse_label_file

NC = 4


def test_parse_rows_and_reasons(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text(
        "0 0.5 0.5 0.2 0.2\n"  # 1 good
        "1 0.5 0.5 0.2\n"  # 2 four columns
        "1 0.5 nan 0.2 0.2\n"  # 3 NaN
        "99 0.5 0.5 0.2 0.2\n"  # 4 class out of range
        "1 0.5 0.5 -0.2 0.2\n"  # 5 negative width
        "0 0.5 0.5 0.2 0.2\n"  # 6 duplicate of 1
        "\n"  # 7 blank: ignored
        "1.5 0.5 0.5 0.2 0.2\n"  # 8 fractional class
        "2 0.5 0.5 0.2 x\n"  # 9 non-numeric
        "2 1.2 0.5 0.2 0.2\n"  # 10 centre outside
        "2.0 1.0005 0.5 0.2 0.2\n"  # 11 within tolerance: kept, clipped
        "3 0.9 0.9 0.4 0.4\n"  # 12 extends past the edge: kept, clipped to the image
        "1 0.1 0.1 0.3 0.1 0.3 0.4\n"  # 13 polygon -> enclosing box
        "1 0.1 0.1 0.3 0.1 0.3\n"  # 14 six columns
    )
    labels, problems = parse_label_file(str(p), NC)
    reasons = dict(problems)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 8, 9, 10, 14]
    assert "expected 5 columns" in reasons[2] and "got 4" in reasons[2]
    assert "non-finite" in reasons[3]
    assert "class id 99" in reasons[4] and "[0, 4)" in reasons[4]
    assert "non-positive width" in reasons[5]
    assert "duplicate of line 1" in reasons[6]
    assert "class id 1.5" in reasons[8]
    assert "non-numeric value 'x'" in reasons[9]
    assert "outside [0, 1]" in reasons[10]
    assert labels.dtype == np.float32 and labels.shape == (4, 5)
    np.testing.assert_allclose(labels[0], [0, 0.5, 0.5, 0.2, 0.2])
    x1, x2 = labels[1, 1] - labels[1, 3] / 2, labels[1, 1] + labels[1, 3] / 2
    assert labels[1, 0] == 2 and x2 <= 1 and x1 == pytest.approx(0.9005, abs=1e-6)
    np.testing.assert_allclose(labels[2], [3, 0.85, 0.85, 0.3, 0.3], atol=1e-6)
    np.testing.assert_allclose(labels[3], [1, 0.2, 0.25, 0.2, 0.3], atol=1e-6)


@pytest.fixture
def bad_root(tmp_path):
    """4 good images plus every kind of bad data."""
    make_split(tmp_path, "train", 4, suffix=".jpg")
    img_dir, lbl_dir = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    good = (img_dir / "img0.jpg").read_bytes()
    (img_dir / "trunc.jpg").write_bytes(good[: len(good) // 2])
    (lbl_dir / "trunc.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (img_dir / "zero.png").write_bytes(b"")
    for name in ("rows", "empty", "nolabel", "binary"):
        write_image(img_dir / f"{name}.png", 50, 40, [(1, 5, 5, 30, 30)])
    (lbl_dir / "rows.txt").write_text(
        "1 0.35 0.4375 0.5 0.625\n1 0.5 0.5 0.2\n2 0.5 nan 0.1 0.1\n99 0.5 0.5 0.1 0.1\n"
        "0 0.5 0.5 -0.1 0.1\n1 0.35 0.4375 0.5 0.625\n"
    )
    (lbl_dir / "empty.txt").write_text("")
    (lbl_dir / "binary.txt").write_bytes(b"\xff\xfe\x00\x81garbage")
    return tmp_path


def test_bad_corpus_warns_skips_and_keeps_good_data(bad_root, caplog):
    caplog.set_level(logging.INFO)
    loader, ds = create_dataloader(bad_root / "images" / "train", 64, 4, 32, workers=0, nc=NC, prefix="train: ")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    def warned(*parts):
        return any(all(p in m for p in parts) for m in messages)

    assert warned("trunc.jpg", "truncated JPEG", "image skipped")
    assert warned("zero.png", "empty file", "image skipped")
    assert warned("binary.txt", "cannot read label file", "binary.png", "skipped")
    assert warned("rows.txt:2:", "expected 5 columns", "row dropped")
    assert warned("rows.txt:3:", "non-finite", "row dropped")
    assert warned("rows.txt:4:", "class id 99", "row dropped")
    assert warned("rows.txt:5:", "non-positive width", "row dropped")
    assert warned("rows.txt:6:", "duplicate of line 1", "row dropped")
    assert not any("empty.png" in m or "nolabel.png" in m for m in messages)
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "images found" in r.getMessage()]
    assert summary == [
        f"train: 10 images found, 2 backgrounds, 3 corrupt images skipped, 5 label rows dropped "
        f"(check: {bad_root / 'labels' / 'train.cache'})"
    ]

    names = [os.path.basename(p) for p in ds.im_files]
    assert names == ["empty.png", "img0.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "nolabel.png", "rows.png"]
    by_name = dict(zip(names, ds.labels, strict=True))
    np.testing.assert_allclose(by_name["rows.png"], [[1, 0.35, 0.4375, 0.5, 0.625]], atol=1e-6)
    assert by_name["empty.png"].shape == (0, 5) and by_name["nolabel.png"].shape == (0, 5)
    assert by_name["img1.jpg"].shape == (2, 5)
    assert ds.shapes.tolist()[names.index("rows.png")] == [50, 40]

    imgs, targets, paths, shapes = next(iter(loader))
    assert imgs.shape == (4, 3, 64, 64) and imgs.dtype == torch.uint8
    assert targets.shape[1] == 6 and len(paths) == 4 and len(shapes) == 4


def _images(root):
    return list_images(root / "images" / "train")


def test_cache_written_reused_and_invalidated(dataset_root, monkeypatch, caplog):
    images = _images(dataset_root)
    (dataset_root / "labels" / "train" / "img2.txt").write_text("0 0.5 0.5 0.1\n0 0.5 0.5 0.1 0.1\n")
    cache_file = dataset_root / "labels" / "train.cache"
    first = check_split(images, NC, cache_file)
    assert not first.from_cache and cache_file.is_file()
    data = json.loads(cache_file.read_text())  # plain JSON, no pickle
    assert data["nc"] == NC and len(data["images"]) == 6 and data["stats"]["rows_dropped"] == 1

    calls = []
    real = labels_mod.check_image

    def counting(*args):
        calls.append(args[0])
        return real(*args)

    def forbidden(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(labels_mod, "check_image", forbidden)
    caplog.clear()
    caplog.set_level(logging.WARNING)
    second = check_split(images, NC, cache_file)
    assert second.from_cache
    assert [m.getMessage() for m in caplog.records] == [first.warnings[0]]  # warnings re-emitted from the cache
    assert "img2.txt:1:" in first.warnings[0]
    assert second.images == first.images and second.sizes.tolist() == first.sizes.tolist()
    for a, b in zip(first.labels, second.labels, strict=True):
        np.testing.assert_array_equal(a, b)

    monkeypatch.setattr(labels_mod, "check_image", counting)
    lbl = dataset_root / "labels" / "train" / "img3.txt"
    lbl.write_text(lbl.read_text() + "2 0.5 0.5 0.25 0.25\n")
    third = check_split(images, NC, cache_file)
    assert not third.from_cache and len(calls) == 6
    assert len(third.labels[3]) == len(first.labels[3]) + 1

    calls.clear()
    assert check_split(images, NC, cache_file).from_cache and not calls
    assert not check_split(images, NC + 1, cache_file).from_cache  # nc is part of the key
    calls.clear()
    os.remove(dataset_root / "labels" / "train" / "img0.txt")  # a label file disappearing also invalidates
    result = check_split(images, NC, cache_file)
    assert len(calls) == 6 and result.backgrounds == 1


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b'{"format": "other"}', b"[1, 2]"])
def test_unreadable_cache_is_rebuilt_silently(dataset_root, caplog, content):
    cache_file = dataset_root / "labels" / "train.cache"
    cache_file.write_bytes(content)
    caplog.set_level(logging.WARNING)
    result = check_split(_images(dataset_root), NC, cache_file)
    assert not result.from_cache and not caplog.records
    assert json.loads(cache_file.read_text())["format"] == cache_mod.CACHE_FORMAT


def test_unwritable_cache_location_warns(dataset_root, caplog):
    blocker = dataset_root / "not_a_dir"
    blocker.write_text("x")
    caplog.set_level(logging.WARNING)
    result = check_split(_images(dataset_root), NC, blocker / "train.cache")
    assert len(result.images) == 6 and result.cache_file is None
    assert any("cannot write label cache" in r.getMessage() for r in caplog.records)


def test_read_only_cache_location_warns(dataset_root, caplog, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_mod.tempfile, "mkstemp", denied)
    caplog.set_level(logging.WARNING)
    result = check_split(_images(dataset_root), NC, dataset_root / "labels" / "train.cache")
    assert len(result.images) == 6 and result.cache_file is None
    assert any("Permission denied" in r.getMessage() for r in caplog.records)
    assert not (dataset_root / "labels" / "train.cache").exists()


def test_parallel_check_matches_serial(dataset_root, monkeypatch):
    images = _images(dataset_root)
    label_files = [p.replace("/images/", "/labels/").rsplit(".", 1)[0] + ".txt" for p in images]
    serial = cache_mod.run_checks(images, label_files, NC, workers=1)
    monkeypatch.setattr(cache_mod, "PARALLEL_MIN_IMAGES", 2)
    monkeypatch.setattr(cache_mod.os, "cpu_count", lambda: 4)
    used = []
    real_pool = cache_mod.ThreadPoolExecutor

    def spy_pool(*a, **k):
        used.append(k.get("max_workers"))
        return real_pool(*a, **k)

    monkeypatch.setattr(cache_mod, "ThreadPoolExecutor", spy_pool)
    parallel = cache_mod.run_checks(images, label_files, NC, workers=3)
    assert used == [3]
    assert parallel.images == serial.images
    for a, b in zip(parallel.labels, serial.labels, strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable images among the 1 found"):
        check_split(list_images(tmp_path / "images"), NC, None)


def test_cache_location(dataset_root):
    lst = dataset_root / "train.txt"
    lst.write_text("images/train/img0.png\nimages/train/img1.png\n")
    _, ds = create_dataloader([lst], 64, 2, 32, workers=0, nc=NC)
    assert ds.check.cache_file == dataset_root / "train.cache" and len(ds) == 2
    _, ds = create_dataloader(dataset_root / "images" / "val", 64, 2, 32, workers=0, nc=NC)
    assert ds.check.cache_file == dataset_root / "labels" / "val.cache"
