"""Bad input to val.py and detect.py: one-line errors with exit status 2, and outputs that never overwrite."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.runners.detect import DetectConfig, output_names, run_detect

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "bccd_sample" / "images" / "val"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """An untrained yolov5n checkpoint for the three BCCD classes (enough to run detect and val)."""
    model = Model("yolov5n.yaml", nc=3)
    path = tmp_path_factory.mktemp("weights") / "n.pt"
    return save_checkpoint(make_checkpoint(model, ["RBC", "WBC", "Platelets"]), path)


def program(name: str):
    return runpy.run_path(str(REPO / name))["main"]


@pytest.mark.parametrize("script", ["detect.py", "val.py"])
@pytest.mark.parametrize("imgsz", ["0", "-64"])
def test_imgsz_zero_or_negative_is_refused(script, imgsz, weights, tiny_data, caplog):
    argv = ["--weights", str(weights), "--imgsz", imgsz, "--data", str(tiny_data)][: 4 if script == "detect.py" else 6]
    with pytest.raises(SystemExit) as e:
        run_main(program(script), argv)
    assert e.value.code == 2
    assert f"--imgsz must be >= 1, got {imgsz}" in caplog.text


def test_output_names_keep_files_with_the_same_name_apart():
    names = output_names(["/a/d1/x.jpg", "/a/d2/x.jpg", "/a/d2/y.jpg", "/b/x.png", "/b/z.jpg", "/b/z.png"])
    assert names == {"/a/d1/x.jpg": "a/d1/x", "/a/d2/x.jpg": "a/d2/x", "/a/d2/y.jpg": "y", "/b/x.png": "b/x",
                     "/b/z.jpg": "z_jpg", "/b/z.png": "z_png"}  # fmt: skip
    assert len(set(names.values())) == len(names)


def test_detect_on_two_images_of_the_same_name_keeps_both(weights, tmp_path):
    sample = sorted(SAMPLE.glob("*.jpg"))[:2]
    for folder, src in zip(("d1", "d2"), sample, strict=True):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes(src.read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_text("d1/x.jpg\nd2/x.jpg\n")
    cfg = DetectConfig(weights=str(weights), source=str(listing), imgsz=64, conf_thres=0.0, save_txt=True,
                       save_conf=True, project=str(tmp_path / "out"), device="cpu")  # fmt: skip
    result = run_detect(cfg)
    assert result.images == 2 and len(result.per_image) == 2
    for folder in ("d1", "d2"):
        assert (result.save_dir / folder / "x.jpg").is_file()
        assert (result.save_dir / "labels" / folder / "x.txt").is_file()
    rows = [(result.save_dir / "labels" / f / "x.txt").read_text() for f in ("d1", "d2")]
    assert rows[0].count("\n") + rows[1].count("\n") == result.detections  # nothing overwritten


def test_detect_on_a_corrupt_video_only_says_nothing_was_processed(weights, tmp_path, caplog):
    (tmp_path / "clip.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    argv = ["--weights", str(weights), "--source", str(tmp_path / "clip.mp4"), "--imgsz", "64",
            "--project", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    caplog.set_level(logging.WARNING)
    with pytest.raises(SystemExit) as e:
        run_main(program("detect.py"), argv)
    assert e.value.code == 2
    assert "clip.mp4" in caplog.text and "nothing was processed" in caplog.text


def test_detect_on_a_video_without_readable_frames_warns(weights, tmp_path, caplog):
    """A video that opens but yields no frame (a header and nothing else) is named in a warning."""
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    writer.release()
    caplog.set_level(logging.WARNING)
    with pytest.raises(ValueError, match="nothing was processed"):
        run_detect(DetectConfig(weights=str(weights), source=str(path), imgsz=64, project=str(tmp_path / "o")))
    assert "empty.avi" in caplog.text


def test_detect_skips_truncated_and_tiny_images_with_a_warning(weights, tmp_path, caplog):
    good = sorted(SAMPLE.glob("*.jpg"))[0]
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / good.name).write_bytes(good.read_bytes())
    (folder / "cut.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cv2.imwrite(str(folder / "tiny.png"), np.full((5, 5, 3), 128, np.uint8))
    caplog.set_level(logging.WARNING)
    result = run_detect(DetectConfig(weights=str(weights), source=str(folder), imgsz=64, project=str(tmp_path / "o")))
    assert result.images == 1 and list(result.per_image) == [good.stem]
    assert "cut.jpg: truncated JPEG" in caplog.text and "tiny.png: image is 5x5 pixels" in caplog.text
