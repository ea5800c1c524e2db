"""Inference sources: image folders and videos."""

import logging

import cv2
import numpy as np
import pytest
from synth_data import make_split

from utils.data.sources import LoadImages


def test_image_folder(tmp_path, caplog):
    paths = make_split(tmp_path, "test", 3, sizes=[(64, 48), (40, 90), (70, 70)])
    folder = tmp_path / "images" / "test"
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "nested").mkdir()
    make_split(folder / "nested", "x", 1)  # folders are not searched recursively
    caplog.set_level(logging.WARNING)
    src = LoadImages(folder, img_size=64, stride=32)
    assert len(src) == 4
    items = list(src)
    assert [p for p, *_ in items] == [str(p) for p in paths]
    assert any("broken.jpg" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    for k, (path, img, img0, cap, desc) in enumerate(items):
        assert cap is None and desc == f"image {k + 2}/4 {path}"  # broken.jpg sorts first and is number 1
        assert img0.shape[2] == 3 and img0.dtype == np.uint8
        assert img.dtype == np.uint8 and img.shape[0] == 3 and img.flags.c_contiguous
        assert max(img.shape[1:]) == 64 and img.shape[1] % 32 == 0 and img.shape[2] % 32 == 0
    # RGB order: the class-0 rectangle is BGR (255, 0, 0)
    assert items[0][1][:, 24, 16].tolist() == [0, 0, 255]


def test_square_inputs_without_auto(tmp_path):
    make_split(tmp_path, "test", 2, sizes=[(64, 48), (40, 90)])
    shapes = {item[1].shape for item in LoadImages(tmp_path / "images" / "test", img_size=64, auto=False)}
    assert shapes == {(3, 64, 64)}


def _write_video(path, n_frames, size=(64, 48)):
    for fourcc in ("MJPG", "mp4v"):
        p = path.with_suffix(".avi" if fourcc == "MJPG" else ".mp4")
        writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*fourcc), 10, size)
        if not writer.isOpened():
            continue
        for i in range(n_frames):
            frame = np.full((size[1], size[0], 3), 20 * i, np.uint8)
            writer.write(frame)
        writer.release()
        cap = cv2.VideoCapture(str(p))
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if ok:
            return p
    return None


def test_video_and_image_together(tmp_path):
    video = _write_video(tmp_path / "clip", 5)
    if video is None:
        pytest.skip("no video codec (MJPG or mp4v) available to OpenCV")
    make_split(tmp_path, "x", 1, sizes=[(64, 48)])
    image = tmp_path / "images" / "x" / "img0.png"
    items = list(LoadImages([image, video], img_size=64, vid_stride=2))
    path, img, img0, cap, desc = items[0]
    assert cap is None and desc == f"image 1/1 {image}"
    frames = items[1:]
    assert len(frames) == 2  # frames 2 and 4 of 5
    for k, (path, img, img0, cap, desc) in enumerate(frames, start=1):
        assert path == str(video) and cap is not None and img0.shape == (48, 64, 3)
        assert desc == f"video 1/1 (frame {k}/2) {video}"
        assert img.shape == (3, 64, 64)
    assert abs(int(frames[0][2].mean()) - 20) <= 6 and abs(int(frames[1][2].mean()) - 60) <= 6


def test_unopenable_video_skipped(tmp_path, caplog):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    caplog.set_level(logging.WARNING)
    assert list(LoadImages(tmp_path)) == []
    assert any("bad.mp4" in r.getMessage() for r in caplog.records)
