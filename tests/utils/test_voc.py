"""Tests for utils/voc.py: VOC XML parsing, box conversion, splits and the whole conversion on tiny synthetic sets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image

from utils.voc import (
    VocConfig,
    VocFormatError,
    convert_voc,
    load_class_names,
    parse_voc_xml,
    read_imagesets,
    split_by_ratios,
    voc_box_to_yolo,
    write_data_yaml,
)

REPO = Path(__file__).resolve().parents[2]


def write_image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 30, 160)).save(path)
    return path


def write_xml(path: Path, filename: str | None, size: tuple[int, int] | None, objects: list) -> Path:
    """objects: (name, (xmin, ymin, xmax, ymax)) or (name, box, difficult); box values are written as given."""
    parts = ["<annotation>", "<folder>whatever</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, box, *rest in objects:
        difficult = rest[0] if rest else 0
        coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>")
    parts.append("</annotation>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def read_labels(out: Path) -> dict[str, list[str]]:
    """{image stem: label rows} over all splits."""
    return {p.stem: p.read_text().splitlines() for p in sorted((out / "labels").glob("*/*.txt"))}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- box conversion


def test_box_conversion_shifts_one_based_pixels_and_keeps_fractions():
    # VOC 11..31 x 6..26 on a 100x50 image -> 0-based corners 10..30 x 5..25
    box = voc_box_to_yolo((11, 6, 31, 26), 100, 50)
    assert box.xywhn == pytest.approx((0.2, 0.3, 0.2, 0.4))
    assert not box.clipped
    # fractional coordinates are not truncated
    box = voc_box_to_yolo((10.5, 1, 21.25, 11), 100, 50)
    assert box.xywhn == pytest.approx(((9.5 + 20.25) / 2 / 100, 5 / 50, 10.75 / 100, 10 / 50))
    # zero-based input: no shift
    assert voc_box_to_yolo((10, 5, 30, 25), 100, 50, origin=0).xywhn == pytest.approx((0.2, 0.3, 0.2, 0.4))


def test_box_conversion_clips_to_the_image():
    box = voc_box_to_yolo((-19, 6, 41, 70), 100, 50)  # 0-based -20..40 x 5..69 -> clipped 0..40 x 5..50
    assert box.clipped
    assert box.xywhn == pytest.approx((0.2, 27.5 / 50, 0.4, 0.9))


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        ((50, 10, 50, 20), "zero width"),
        ((50, 20, 60, 20), "zero height"),
        ((60, 10, 50, 20), "negative width"),
        ((120, 10, 130, 20), "outside the 100x50 image"),
    ],
)
def test_box_conversion_rejects_boxes_without_area(box, reason):
    result = voc_box_to_yolo(box, 100, 50)
    assert result.xywhn is None
    assert reason in result.reason


# ---------------------------------------------------------------- parsing


def test_parse_reads_objects_and_reports_unreadable_ones(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(
        "<annotation><filename>a.jpg</filename><size><width>64</width><height>0</height></size>"
        "<object><name> cat </name><difficult>1</difficult>"
        "<bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><ymax>12</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>two</ymin><xmax>9</xmax><ymax>12</ymax></bndbox></object>"
        "<object><name>dog</name></object>"
        "<object><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>12</ymax></bndbox></object>"
        "</annotation>"
    )
    ann = parse_voc_xml(xml)
    assert ann.filename == "a.jpg"
    assert ann.size is None  # a zero height means "unknown"
    assert [(o.name, o.box, o.difficult, o.index) for o in ann.objects] == [("cat", (1.5, 2, 10, 12), True, 0)]
    assert ann.skipped_objects == 4
    assert len(ann.problems) == 4 and all(str(xml) in p for p in ann.problems)
    assert "object 1 (dog)" in ann.problems[0] and "object 4 has no <name>" in ann.problems[3]


@pytest.mark.parametrize(
    "text",
    [
        "<annotation><object><name>cat</name>",  # truncated
        "<labels><object/></labels>",  # not a VOC annotation
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><annotation>&e;</annotation>',  # entity definitions
    ],
)
def test_parse_rejects_unusable_files_naming_them(tmp_path, text):
    xml = tmp_path / "bad.xml"
    xml.write_text(text)
    with pytest.raises(VocFormatError, match="bad.xml"):
        parse_voc_xml(xml)


# ---------------------------------------------------------------- splits and small helpers


def test_split_by_ratios_is_seeded_and_ignores_input_order():
    stems = [f"img{i:03d}" for i in range(50)]
    a = split_by_ratios(stems, (0.7, 0.2, 0.1), seed=3)
    assert [len(a[s]) for s in ("train", "val", "test")] == [35, 10, 5]
    assert sorted(a["train"] + a["val"] + a["test"]) == stems
    assert split_by_ratios(list(reversed(stems)), (0.7, 0.2, 0.1), seed=3) == a
    assert split_by_ratios(stems, (0.7, 0.2, 0.1), seed=4) != a


def test_split_by_ratios_counts_add_up():
    stems = [str(i) for i in range(11)]
    counts = {k: len(v) for k, v in split_by_ratios(stems, (0.7, 0.2, 0.1)).items()}
    assert counts == {"train": 8, "val": 2, "test": 1}  # 7.7 / 2.2 / 1.1: the spare image goes to train
    counts = {k: len(v) for k, v in split_by_ratios(stems, (8, 2)).items()}  # relative weights, no test
    assert counts == {"train": 9, "val": 2, "test": 0}


@pytest.mark.parametrize("ratios", [(0.5,), (0.5, -0.1, 0.6), (0, 0, 0), (0.2, 0.2, 0.2, 0.4)])
def test_split_by_ratios_rejects_bad_ratios(ratios):
    with pytest.raises(ValueError, match="ratios"):
        split_by_ratios(["a", "b"], ratios)


def test_read_imagesets_takes_first_token(tmp_path):
    (tmp_path / "train.txt").write_text("a\nb  1\n\n")
    (tmp_path / "val.txt").write_text("c\n")
    assert read_imagesets(tmp_path) == {"train": ["a", "b"], "val": ["c"], "test": []}
    assert read_imagesets(tmp_path / "nothing") is None


def test_load_class_names(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("# ids in order\nRBC\n\n WBC \nPlatelets\n")
    assert load_class_names(f) == ["RBC", "WBC", "Platelets"]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_class_names(tmp_path / "missing.txt")


def test_data_yaml_paths_are_relative_to_the_yaml(tmp_path):
    yaml_path = tmp_path / "configs" / "set.yaml"
    write_data_yaml(yaml_path, tmp_path / "datasets" / "set", ["a", "yes"], ["train", "val"])
    data = yaml.safe_load(yaml_path.read_text())
    assert data == {
        "path": "../datasets/set",
        "train": "images/train",
        "val": "images/val",
        "nc": 2,
        "names": ["a", "yes"],
    }
    write_data_yaml(yaml_path, tmp_path / "set", ["a"], ["train", "val", "test"], absolute=True)
    data = yaml.safe_load(yaml_path.read_text())
    assert data["path"] == str((tmp_path / "set").resolve()) and data["test"] == "images/test"


# ---------------------------------------------------------------- whole conversion


@pytest.fixture
def messy_set(tmp_path):
    """A small VOC set in arbitrarily named folders with the usual defects."""
    pics, notes = tmp_path / "pics", tmp_path / "notes"
    write_image(pics / "a.jpg", 100, 50)
    write_xml(
        notes / "a.xml",
        "wrong_name.jpg",
        (100, 50),
        [
            ("cat", (11, 6, 31, 26)),
            ("dog", (-19, 6, 41, 70)),  # clipped
            ("cat", (50, 10, 50, 20)),  # zero width
            ("dog", (21, 11, 61, 41), 1),  # difficult
            ("bird", (1, 1, 10, 10)),  # unknown when classes are given
        ],
    )
    write_image(pics / "b.png", 200, 100)
    write_xml(notes / "b.xml", "b.png", None, [("dog", (1, 1, 202, 101)), ("cat", (100.5, 50.5, 120.5, 60.5))])
    write_image(pics / "c.jpg", 100, 100)
    write_xml(notes / "c.xml", "c.jpg", (640, 480), [("cat", (51, 51, 101, 71))])  # wrong <size>
    (notes / "d.xml").write_text("<annotation><object><name>cat</name></annotation>")  # malformed
    write_image(pics / "d.jpg", 10, 10)  # its XML is broken: an image without usable annotation
    write_image(pics / "e.jpg", 40, 20)
    write_xml(notes / "e.xml", "e.jpg", (40, 20), [])  # background
    write_image(pics / "photo_f.jpg", 80, 40)
    write_xml(notes / "f.xml", "/some/where/photo_f.jpg", (80, 40), [("dog", (41, 21, 81, 41))])  # via <filename>
    write_xml(notes / "g.xml", "g.jpg", (10, 10), [("cat", (1, 1, 5, 5))])  # no image
    return tmp_path


EXPECTED = {
    "a": ["0 0.200000 0.300000 0.200000 0.400000", "1 0.200000 0.550000 0.400000 0.900000"],
    "b": ["1 0.500000 0.500000 1.000000 1.000000", "0 0.547500 0.545000 0.100000 0.100000"],
    "c": ["0 0.750000 0.600000 0.500000 0.200000"],
    "e": [],
    "photo_f": ["1 0.750000 0.750000 0.500000 0.500000"],
}


def test_convert_messy_set(messy_set, caplog):
    src_before = snapshot(messy_set)
    out = messy_set / "yolo"
    cfg = VocConfig(
        out=out,
        images=messy_set / "pics",
        annotations=messy_set / "notes",
        classes=["cat", "dog"],
        ratios=(1, 0),
        skip_difficult=True,
    )
    with caplog.at_level(logging.WARNING, logger="utils.voc"):
        res = convert_voc(cfg)

    assert read_labels(out) == EXPECTED
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == [
        "a.jpg",
        "b.png",
        "c.jpg",
        "e.jpg",
        "photo_f.jpg",
    ]
    assert snapshot(messy_set / "pics") == {
        k[len("pics/") :]: v for k, v in src_before.items() if k.startswith("pics/")
    }
    assert snapshot(messy_set / "notes") == {
        k[len("notes/") :]: v for k, v in src_before.items() if k.startswith("notes/")
    }

    assert res.classes == ["cat", "dog"]
    assert res.objects == {"cat": 3, "dog": 3}
    assert res.images == {"train": 5, "val": 0, "test": 0}
    assert res.objects_per_split == {"train": 6, "val": 0, "test": 0}
    assert res.backgrounds == 1
    assert res.clipped == 2  # a's dog and b's dog (201 > 200 after the shift)
    assert [(d.file.name, d.index, d.name) for d in res.dropped] == [("a.xml", 2, "cat")]
    assert "zero width" in res.dropped[0].reason
    assert res.difficult_skipped == 1
    assert res.unknown_classes == {"bird": 1}
    assert sorted(p.name for p in res.skipped_files) == ["d.xml", "g.xml"]
    assert res.unannotated_images == 1  # d.jpg

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert res.warnings == [r.getMessage() for r in caplog.records]
    for fragment in (
        "d.xml: not a readable XML file",
        "g.xml: no image",
        "c.xml: <size> says 640x480",
        "a.xml: object 2",
    ):
        assert fragment in logged
    assert "the val split is empty" in logged

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": ".", "train": "images/train", "val": "images/val", "nc": 2, "names": ["cat", "dog"]}
    summary = res.summary()
    assert "dropped degenerate boxes: 1" in summary and "a.xml object 2 (cat)" in summary and "1 dog: 3" in summary


def test_convert_discovers_sorted_classes_and_keeps_difficult(messy_set):
    out = messy_set / "yolo"
    res = convert_voc(VocConfig(out=out, images=messy_set / "pics", annotations=messy_set / "notes", ratios=(1, 0)))
    assert res.classes == ["bird", "cat", "dog"]
    assert res.objects == {"bird": 1, "cat": 3, "dog": 4}
    rows = read_labels(out)["a"]
    assert rows[0] == "1 0.200000 0.300000 0.200000 0.400000"
    assert rows[2] == "2 0.400000 0.500000 0.400000 0.600000"  # the difficult dog
    assert rows[3] == "0 0.045000 0.090000 0.090000 0.180000"  # bird


def test_convert_keep_unannotated_and_hardlink(messy_set):
    out = messy_set / "yolo"
    kw = {"images": messy_set / "pics", "annotations": messy_set / "notes", "ratios": (1, 0)}
    res = convert_voc(VocConfig(out=out, keep_unannotated=True, hardlink=True, **kw))
    assert read_labels(out)["d"] == []
    assert res.unannotated_images == 0 and res.backgrounds == 2
    src, dst = messy_set / "pics" / "a.jpg", out / "images" / "train" / "a.jpg"
    assert os.path.samefile(src, dst)


def test_convert_devkit_layout_uses_imagesets(tmp_path, caplog):
    root = tmp_path / "VOC"
    for i in range(6):
        write_image(root / "JPEGImages" / f"{i:04d}.jpg", 20, 20)
        write_xml(root / "Annotations" / f"{i:04d}.xml", f"{i:04d}.jpg", (20, 20), [("x", (1, 1, 11, 11), i % 2)])
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("0000\n0001\n0002\n")
    (main / "val.txt").write_text("0003\n0002\n9999\n")  # 0002 twice, 9999 has no files; 0004/0005 listed nowhere
    (main / "x_train.txt").write_text("0000  1\n")  # per-class lists are ignored
    with caplog.at_level(logging.WARNING, logger="utils.voc"):
        res = convert_voc(VocConfig(out=tmp_path / "out", voc_root=root, skip_difficult=True))
    assert res.images == {"train": 3, "val": 1, "test": 0}
    assert sorted(p.stem for p in (tmp_path / "out" / "labels" / "train").iterdir()) == ["0000", "0001", "0002"]
    assert res.objects == {"x": 2} and res.difficult_skipped == 2
    logged = caplog.text
    assert "0002 is in train.txt and val.txt" in logged
    assert "1 listed ids have no usable annotation/image (e.g. 9999)" in logged
    assert "2 images are in no split file" in logged
    assert "test" not in yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())

    res = convert_voc(VocConfig(out=tmp_path / "out2", voc_root=root, split="ratios", ratios=(0.5, 0.5)))
    assert res.images == {"train": 3, "val": 3, "test": 0}


def test_convert_is_deterministic_and_limit_and_max_size(tmp_path):
    pics, xmls = tmp_path / "p", tmp_path / "x"
    for i in range(20):
        write_image(pics / f"im{i:02d}.jpg", 64, 48)
        write_xml(xmls / f"im{i:02d}.xml", None, (64, 48), [("a", (17, 13, 49, 37))])
    kw = {"images": pics, "annotations": xmls, "seed": 7}
    first = convert_voc(VocConfig(out=tmp_path / "o1", **kw))
    second = convert_voc(VocConfig(out=tmp_path / "o2", max_size=32, limit=(5, 2, 0), **kw))
    assert first.images == {"train": 14, "val": 4, "test": 2}
    assert second.images == {"train": 5, "val": 2, "test": 0}
    for split in ("train", "val"):
        full = {p.name for p in (tmp_path / "o1" / "images" / split).iterdir()}
        part = {p.name for p in (tmp_path / "o2" / "images" / split).iterdir()}
        assert part < full  # the limited run picks from the same seeded split
    again = convert_voc(VocConfig(out=tmp_path / "o3", max_size=32, limit=(5, 2, 0), **kw))
    assert again.images == second.images
    assert snapshot(tmp_path / "o3" / "labels") == snapshot(tmp_path / "o2" / "labels")
    small = next((tmp_path / "o2" / "images" / "train").iterdir())
    with Image.open(small) as im:
        assert im.size == (32, 24)
    assert small.with_suffix("").name + ".txt" in os.listdir(tmp_path / "o2" / "labels" / "train")
    row = "0 0.500000 0.500000 0.500000 0.500000"
    assert set(sum(read_labels(tmp_path / "o2").values(), [])) == {row}
    assert "test" not in yaml.safe_load((tmp_path / "o2" / "data.yaml").read_text())


def test_convert_refuses_to_mix_with_old_output(messy_set):
    kw = {"images": messy_set / "pics", "annotations": messy_set / "notes", "ratios": (1, 0)}
    out = messy_set / "yolo"
    convert_voc(VocConfig(out=out, **kw))
    stale = out / "labels" / "train" / "stale.txt"
    stale.write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_voc(VocConfig(out=out, **kw))
    convert_voc(VocConfig(out=out, overwrite=True, **kw))
    assert not stale.exists()
    with pytest.raises(ValueError, match="inside the output folder"):  # never delete the sources
        convert_voc(VocConfig(out=out, images=out / "images" / "train", annotations=kw["annotations"], overwrite=True))
    assert (out / "images" / "train" / "a.jpg").is_file()


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"images": "nope"}, FileNotFoundError, "images folder .*nope"),
        ({"annotations": "pics"}, FileNotFoundError, "no .xml files"),
        ({"images": None}, ValueError, "VOC root"),
        ({"classes": ["cat", "cat"]}, ValueError, "duplicates"),
        ({"split": "imagesets"}, FileNotFoundError, "imagesets"),
        ({"split": "random"}, ValueError, "--split 'random' is not one of"),
        ({"ratios": (1, -1)}, ValueError, "ratios"),
        ({"limit": (1,)}, ValueError, "limit"),
        ({"max_size": 0}, ValueError, "--max-size must be >= 1, got 0"),
    ],
)
def test_convert_rejects_bad_configuration(messy_set, changes, error, match):
    kw = {"out": messy_set / "yolo", "images": messy_set / "pics", "annotations": messy_set / "notes"}
    kw.update({k: messy_set / v if k in ("images", "annotations") and v else v for k, v in changes.items()})
    with pytest.raises(error, match=match):
        convert_voc(VocConfig(**kw))


# ---------------------------------------------------------------- real data


@pytest.mark.shared
def test_convert_bccd(tmp_path, bccd_dir):
    res = convert_voc(VocConfig(out=tmp_path / "bccd", voc_root=bccd_dir, classes=["RBC", "WBC", "Platelets"]))
    # published totals 4155 RBC / 372 WBC / 361 Platelets; the two degenerate boxes are zero-size RBCs
    assert res.objects == {"RBC": 4153, "WBC": 372, "Platelets": 361}
    assert sorted((d.file.name, d.index, d.name) for d in res.dropped) == [
        ("BloodImage_00338.xml", 12, "RBC"),
        ("BloodImage_00343.xml", 3, "RBC"),
    ]
    assert res.images == {"train": 205, "val": 87, "test": 72}
    assert res.clipped == 0 and not res.skipped_files and res.backgrounds == 0
    data = yaml.safe_load(res.data_yaml.read_text())
    assert data["names"] == ["RBC", "WBC", "Platelets"] and data["nc"] == 3 and data["test"] == "images/test"
    rows = sum(read_labels(tmp_path / "bccd").values(), [])
    assert len(rows) == 4153 + 372 + 361
    values = [float(v) for r in rows for v in r.split()[1:]]
    assert min(values) > 0 and max(values) <= 1


# ---------------------------------------------------------------- the sample dataset shipped in data/


def test_bccd_sample_is_consistent():
    data = yaml.safe_load((REPO / "data" / "bccd_sample.yaml").read_text())
    assert data["path"] == "bccd_sample" and data["nc"] == 3 and data["names"] == ["RBC", "WBC", "Platelets"]
    root = REPO / "data" / data["path"]
    assert (root / "LICENSE").read_text().startswith("MIT License")
    counts = {}
    for split in ("train", "val"):
        images = sorted((root / data[split]).iterdir())
        labels = sorted((root / "labels" / split).iterdir())
        assert [p.stem for p in images] == [p.stem for p in labels]
        counts[split] = len(images)
        for image, label in zip(images, labels, strict=True):
            with Image.open(image) as im:
                assert im.size == (320, 240)
            for row in label.read_text().splitlines():
                cls, *box = row.split()
                assert int(cls) in (0, 1, 2) and len(box) == 4
                assert all(0 <= float(v) <= 1 for v in box)
    assert counts == {"train": 36, "val": 12}
