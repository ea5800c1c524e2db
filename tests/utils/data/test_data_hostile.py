"""Hostile datasets: label folders, symlink loops, damaged or stale label caches."""

from __future__ import annotations

import json
import logging
import os

import pytest
from synth_data import make_split

from utils.data.cache import check_split
from utils.data.images import list_images

NC = 4


def _images(root):
    return list_images(root / "images" / "train")


def test_a_folder_where_a_label_file_should_be_skips_the_image_with_a_warning(dataset_root, caplog):
    label = dataset_root / "labels" / "train" / "img2.txt"
    label.unlink()
    label.mkdir()
    caplog.set_level(logging.WARNING)
    result = check_split(_images(dataset_root), NC, None)
    assert len(result.images) == 5 and result.corrupt == 1
    assert not any(p.endswith("img2.png") for p in result.images)
    assert any("img2.txt: is a folder, not a label file" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlink_loop_lists_every_image_once(tmp_path, caplog):
    make_split(tmp_path, "train", 4)
    folder = tmp_path / "images" / "train"
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "loop")  # sub/loop -> train: an endless tree
    os.symlink(folder, folder / "again")  # a second link to the same folder
    os.symlink(folder / "img0.png", folder / "sub" / "alias.png")  # a second path to one image
    caplog.set_level(logging.WARNING)
    found = list_images(folder)
    assert [os.path.basename(p) for p in found] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert all(os.path.dirname(p) == str(folder) for p in found)
    assert any("symlink loop" in r.getMessage() for r in caplog.records)


def _tamper(cache_file, edit):
    data = json.loads(cache_file.read_text())
    edit(data)
    cache_file.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["images"][0]["labels"].append([9, 0.5, 0.5, 0.1, 0.1]),  # class id out of range
        lambda d: d["images"][0]["labels"].append([0, 0.5, 0.5, -0.1, 0.1]),  # box without area
        lambda d: d["images"][0]["labels"].append([0.5, 0.5, 0.5, 0.1, 0.1]),  # fractional class
        lambda d: d["images"][1].update(image="/etc/passwd"),  # an image not in the split
        lambda d: d["images"].append(d["images"][0]),  # an image twice
        lambda d: d["images"].pop(),  # an image lost
        lambda d: d["images"][0].update(label_file="/tmp/other.txt"),
        lambda d: d["images"][0].update(size=[1, 1]),
        lambda d: d["stats"].update(backgrounds=5),
    ],
    ids=["class", "area", "fraction", "foreign", "twice", "lost", "label-file", "size", "stats"],
)
def test_a_cache_that_contradicts_its_files_is_rebuilt(dataset_root, caplog, edit):
    cache_file = dataset_root / "labels" / "train.cache"
    first = check_split(_images(dataset_root), NC, cache_file)
    _tamper(cache_file, edit)
    caplog.set_level(logging.WARNING)
    again = check_split(_images(dataset_root), NC, cache_file)
    assert not again.from_cache
    assert any("ignoring it and checking the files again" in r.getMessage() for r in caplog.records)
    assert again.images == first.images
    assert all((a == b).all() for a, b in zip(again.labels, first.labels, strict=True))
    assert check_split(_images(dataset_root), NC, cache_file).from_cache  # the rebuilt cache is good


def test_a_cache_is_rebuilt_when_a_label_file_changes(dataset_root):
    cache_file = dataset_root / "labels" / "train.cache"
    check_split(_images(dataset_root), NC, cache_file)
    label = dataset_root / "labels" / "train" / "img0.txt"
    label.write_text("1 0.5 0.5 0.25 0.25\n")
    st = os.stat(label)
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # file systems with coarse timestamps
    result = check_split(_images(dataset_root), NC, cache_file)
    assert not result.from_cache
    assert result.labels[0].tolist() == [[1.0, 0.5, 0.5, 0.25, 0.25]]


def test_a_cache_is_rebuilt_when_an_image_is_replaced(dataset_root):
    cache_file = dataset_root / "labels" / "train.cache"
    check_split(_images(dataset_root), NC, cache_file)
    (dataset_root / "images" / "train" / "img1.png").write_bytes(b"not an image any more")
    result = check_split(_images(dataset_root), NC, cache_file)
    assert not result.from_cache and result.corrupt == 1 and len(result.images) == 5
