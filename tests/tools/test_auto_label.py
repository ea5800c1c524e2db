"""tools/auto_label.py: VOC XML per image, class filter, empty images, videos, bad input; and the round trip
auto-label -> tools/voc2yolo.py -> train.py."""

from __future__ import annotations

import logging
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools import voc2yolo
from tools.auto_label import main as auto_label_main
from utils.cli import run_main
from utils.runners.auto_label import AutoLabelConfig, resolve_classes, run_auto_label
from utils.voc import parse_voc_xml

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "bccd_sample" / "images"
NAMES = ["RBC", "WBC", "Platelets"]


@pytest.fixture
def weights(random_bccd_weights) -> Path:
    return random_bccd_weights


@pytest.fixture
def images(tmp_path) -> Path:
    """Four sample images and one unreadable file with an image suffix."""
    folder = tmp_path / "images"
    folder.mkdir()
    for p in sorted(SAMPLE.glob("train/*.jpg"))[:4]:
        shutil.copy(p, folder)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    return folder


def _cfg(weights, source, tmp_path, **kw) -> AutoLabelConfig:
    base = {"imgsz": 64, "conf_thres": 1e-4, "max_det": 5, "device": "cpu", "project": str(tmp_path / "out")}
    return AutoLabelConfig(weights=str(weights), source=str(source), **{**base, **kw})


def test_writes_one_voc_xml_per_image_and_skips_an_unreadable_one(weights, images, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = run_auto_label(_cfg(weights, images, tmp_path, save_txt=True, previews=True))
    assert "broken.jpg" in caplog.text
    assert result.images == 4 and result.xml_written == 4
    xmls = sorted((result.save_dir / "Annotations").glob("*.xml"))
    assert [x.stem for x in xmls] == sorted(p.stem for p in images.glob("BloodImage*.jpg"))
    total = 0
    for xml in xmls:
        ann = parse_voc_xml(xml)
        h, w = cv2.imread(str(images / ann.filename)).shape[:2]
        assert ann.size == (w, h) and 1 <= len(ann.objects) <= 5 and not ann.problems
        for obj in ann.objects:
            assert obj.name in NAMES
            x1, y1, x2, y2 = obj.box
            assert all(float(v).is_integer() for v in obj.box)
            assert 1 <= x1 < x2 <= w and 1 <= y1 < y2 <= h
        txt = (result.save_dir / "labels" / f"{xml.stem}.txt").read_text().splitlines()
        assert len(txt) == len(ann.objects)
        assert (result.save_dir / "previews" / f"{xml.stem}.jpg").is_file()
        total += len(ann.objects)
    assert sum(result.per_class.values()) == total
    assert f"objects        {total}" in result.summary()


def test_class_filter_by_name_or_id(weights, images, tmp_path):
    assert resolve_classes(["Platelets", "0"], NAMES) == [0, 2]
    with pytest.raises(ValueError, match="'dog'"):
        resolve_classes(["dog"], NAMES)
    result = run_auto_label(_cfg(weights, images, tmp_path, classes=["WBC"], max_det=50))
    assert set(result.per_class) <= {"WBC"}
    for xml in (result.save_dir / "Annotations").glob("*.xml"):
        assert {o.name for o in parse_voc_xml(xml).objects} <= {"WBC"}


def test_no_xml_without_detections_unless_save_empty(weights, images, tmp_path):
    result = run_auto_label(_cfg(weights, images, tmp_path, conf_thres=1.0))
    assert result.empty == 4 and result.xml_written == 0
    assert not list(result.save_dir.glob("Annotations/*.xml"))
    result = run_auto_label(_cfg(weights, images, tmp_path, conf_thres=1.0, save_empty=True))
    xmls = list((result.save_dir / "Annotations").glob("*.xml"))
    assert len(xmls) == 4 and all(parse_voc_xml(x).objects == [] for x in xmls)


def test_video_frames_become_images_the_xml_points_at(weights, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for i in range(3):
        writer.write(np.full((64, 96, 3), 60 * i, np.uint8))
    writer.release()
    result = run_auto_label(_cfg(weights, video, tmp_path))
    assert result.images == 3
    for xml in (result.save_dir / "Annotations").glob("*.xml"):
        ann = parse_voc_xml(xml)
        assert (result.save_dir / "images" / ann.filename).is_file() and ann.size == (96, 64)


def test_missing_model_is_a_one_line_error(images, tmp_path, caplog):
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        run_main(auto_label_main, ["--weights", str(tmp_path / "nope.pt"), "--source", str(images)])
    assert e.value.code == 2 and "nope.pt does not exist" in caplog.text


def test_onnx_weights_label_the_same_boxes(weights, images, tmp_path):
    from utils.export import ExportConfig, run_export

    local = shutil.copy(weights, tmp_path / "n.pt")
    onnx_file = run_export(ExportConfig(weights=str(local), imgsz=64, include=["onnx"], check=False)).files["onnx"]
    a = run_auto_label(_cfg(local, images, tmp_path, name="pt"))
    b = run_auto_label(_cfg(onnx_file, images, tmp_path, name="onnx"))
    for xml in (a.save_dir / "Annotations").glob("*.xml"):
        boxes_a = [o.box for o in parse_voc_xml(xml).objects]
        boxes_b = [o.box for o in parse_voc_xml(b.save_dir / "Annotations" / xml.name).objects]
        assert len(boxes_a) == len(boxes_b)
        assert np.abs(np.array(boxes_a) - np.array(boxes_b)).max() <= 1  # at most one pixel of rounding


@pytest.mark.slow
def test_round_trip_auto_label_voc2yolo_train(weights, tmp_path):
    from train import main as train_main

    images = tmp_path / "new"
    images.mkdir()
    for p in sorted(SAMPLE.glob("train/*.jpg"))[:6]:
        shutil.copy(p, images)
    result = run_auto_label(_cfg(weights, images, tmp_path))
    assert result.xml_written == 6
    dataset = tmp_path / "dataset"
    args = ["--images", str(images), "--annotations", str(result.save_dir / "Annotations"), "--out", str(dataset)]
    assert voc2yolo.main([*args, "--classes", *NAMES, "--ratios", "0.5", "0.5"]) == 0
    labels = list((dataset / "labels").rglob("*.txt"))
    assert len(labels) == 6 and sum(len(f.read_text().splitlines()) for f in labels) == sum(result.per_class.values())
    train_args = ["--cfg", "yolov5n.yaml", "--data", str(dataset / "data.yaml"), "--imgsz", "64", "--epochs", "1"]
    train_args += ["--batch-size", "4", "--workers", "0", "--project", str(tmp_path / "runs"), "--noplots"]
    run = train_main(train_args)
    assert (run.save_dir / "weights" / "last.pt").is_file() and run.epochs_completed == 1


def test_images_with_the_same_stem_keep_their_own_xml_and_the_summary_counts_what_was_written(weights, tmp_path):
    sample = sorted(SAMPLE.glob("train/*.jpg"))[:3]
    for folder, src in zip(("d1", "d2"), sample, strict=False):
        (tmp_path / folder).mkdir()
        shutil.copy(src, tmp_path / folder / "x.jpg")
    cv2.imwrite(str(tmp_path / "x.png"), cv2.imread(str(sample[2])))
    listing = tmp_path / "list.txt"
    listing.write_text("d1/x.jpg\nd2/x.jpg\nx.png\n")
    result = run_auto_label(_cfg(weights, listing, tmp_path, save_txt=True))
    ann_dir = result.save_dir / "Annotations"
    xmls = sorted(ann_dir.rglob("*.xml"))
    assert [x.relative_to(ann_dir).as_posix() for x in xmls] == ["d1/x.xml", "d2/x.xml", "x.xml"]
    assert result.xml_written == len(xmls) == 3
    objects = [parse_voc_xml(x).objects for x in xmls]
    assert sum(result.per_class.values()) == sum(len(o) for o in objects)
    pointed = [ET.parse(x).getroot().findtext("path") for x in xmls]
    assert pointed == [str((tmp_path / f).resolve()) for f in ("d1/x.jpg", "d2/x.jpg", "x.png")]
    assert len(list((result.save_dir / "labels").rglob("*.txt"))) == 3


def test_truncated_and_tiny_images_are_skipped_as_detect_skips_them(weights, tmp_path, caplog):
    folder = tmp_path / "odd"
    folder.mkdir()
    good = sorted(SAMPLE.glob("train/*.jpg"))[0]
    shutil.copy(good, folder)
    data = good.read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(folder / "tiny.png"), np.full((5, 5, 3), 128, np.uint8))
    with caplog.at_level(logging.WARNING):
        result = run_auto_label(_cfg(weights, folder, tmp_path, save_empty=True))
    assert result.images == 1 and result.xml_written == 1
    assert [x.stem for x in (result.save_dir / "Annotations").glob("*.xml")] == [good.stem]
    assert "cut.jpg" in caplog.text and "truncated JPEG" in caplog.text
    assert "tiny.png" in caplog.text and "5x5" in caplog.text


def test_a_corrupt_video_alone_exits_2(weights, tmp_path, caplog):
    (tmp_path / "clip.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    argv = ["--weights", str(weights), "--source", str(tmp_path / "clip.mp4"), "--imgsz", "64",
            "--project", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    caplog.set_level(logging.WARNING)
    with pytest.raises(SystemExit) as e:
        run_main(auto_label_main, argv)
    assert e.value.code == 2
    assert "clip.mp4" in caplog.text and "nothing was labelled" in caplog.text


def _exif_rotated_jpeg(path: Path) -> Path:
    """A JPEG stored 96 wide and 64 high whose EXIF orientation 6 displays it 64 wide and 96 high."""
    from PIL import Image

    stored = cv2.resize(cv2.imread(str(sorted(SAMPLE.glob("train/*.jpg"))[0])), (96, 64))
    img = Image.fromarray(stored[:, :, ::-1])
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif)
    return path


def test_exif_rotated_images_keep_one_frame_from_detection_to_yolo_labels(weights, tmp_path):
    from utils.data.images import read_image

    images = tmp_path / "rot"
    images.mkdir()
    image = _exif_rotated_jpeg(images / "r.jpg")
    assert read_image(str(image)).shape[:2] == (96, 64)  # the trainer reads the displayed frame
    result = run_auto_label(_cfg(weights, images, tmp_path, max_det=20, save_txt=True))
    ann = parse_voc_xml(result.save_dir / "Annotations" / "r.xml")
    assert ann.size == (64, 96) and len(ann.objects) > 3
    txt = np.loadtxt(result.save_dir / "labels" / "r.txt", ndmin=2)  # normalised to the displayed frame
    for extra in ([], ["--max-size", "48"]):
        out = tmp_path / f"ds{len(extra)}"
        args = ["--images", str(images), "--annotations", str(result.save_dir / "Annotations"), "--out", str(out)]
        assert voc2yolo.main([*args, "--classes", *NAMES, "--ratios", "1", "0", *extra]) == 0
        rows = np.loadtxt(out / "labels" / "train" / "r.txt", ndmin=2)
        assert len(rows) == len(ann.objects)  # no box dropped as outside the image
        assert np.abs(np.sort(rows, axis=0) - np.sort(txt, axis=0)).max() < 0.02  # the same frame (pixel rounding)
        h, w = read_image(str(out / "images" / "train" / "r.jpg")).shape[:2]
        assert h > w  # the copy, downscaled or not, is read in the displayed frame
