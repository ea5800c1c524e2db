"""Inference inputs for ``detect.py``: images and video files, one network input at a time."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import cv2
import numpy as np

from utils.data.augment import letterbox
from utils.data.images import IMG_FORMATS, VID_FORMATS, Source, expand_source, read_image, verify_image

LOGGER = logging.getLogger(__name__)

SourceItem = tuple[str, np.ndarray, np.ndarray, "cv2.VideoCapture | None", str]


class LoadImages:
    """Iterate over images and videos, yielding one letterboxed network input per image or video frame.

    Args:
        source: an image or video file, a folder (not recursive), a glob, a ``.txt`` list, or a list of those.
        img_size: network input size (the longer side after letterboxing).
        stride: model stride; with ``auto`` the padded size is the smallest multiple of it.
        auto: pad to a multiple of ``stride`` instead of to a square ``img_size``.
        vid_stride: use every ``vid_stride``-th video frame.

    Each item is ``(path, img, img0, cap, description)``:

    - ``img``: ``uint8 [3, H, W]`` RGB numpy array, letterboxed, contiguous (the network input).
    - ``img0``: the original ``uint8 [h0, w0, 3]`` BGR image or frame.
    - ``cap``: the ``cv2.VideoCapture`` for video frames, ``None`` for images.
    - ``description``: ``'image 3/10 path'`` or ``'video 1/1 (frame 5/120) path'``.

    Images come first, then videos, each in sorted order. Images the trainer would skip (unreadable, truncated,
    smaller than ``MIN_IMAGE_SIDE`` pixels: :func:`utils.data.images.verify_image`) and videos that cannot be opened
    are skipped with a warning naming the file and the reason.
    """

    def __init__(self, source: Source, img_size: int = 640, stride: int = 32, auto: bool = True, vid_stride: int = 1):
        files = expand_source(source, IMG_FORMATS + VID_FORMATS, recursive=False)
        is_video = [os.path.splitext(f)[1][1:].lower() in VID_FORMATS for f in files]
        images = [f for f, v in zip(files, is_video, strict=True) if not v]
        videos = [f for f, v in zip(files, is_video, strict=True) if v]
        self.files = images + videos  # images first, then videos, each sorted
        self.is_video = [False] * len(images) + [True] * len(videos)
        self.n_images, self.n_videos = len(images), len(videos)
        self.img_size, self.stride, self.auto = img_size, stride, auto
        self.vid_stride = max(1, int(vid_stride))
        self.cap: cv2.VideoCapture | None = None
        self.frame = 0
        self.frames = 0

    def __len__(self) -> int:
        """Number of files (a video counts once)."""
        return len(self.files)

    def _prepare(self, img0: np.ndarray) -> np.ndarray:
        img = letterbox(img0, self.img_size, stride=self.stride, auto=self.auto)[0]
        return np.ascontiguousarray(img.transpose(2, 0, 1)[::-1])  # HWC BGR -> CHW RGB

    def _frames(self, path: str, number: int) -> Iterator[SourceItem]:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            LOGGER.warning("cannot open video %s; skipped", path)
            return
        self.cap = cap
        self.frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) / self.vid_stride)
        self.frame = 0
        try:
            while True:
                for _ in range(self.vid_stride - 1):
                    if not cap.grab():
                        return
                ok, img0 = cap.read()
                if not ok or img0 is None:
                    if self.frame == 0:
                        LOGGER.warning("cannot read any frame of video %s (corrupt or empty); skipped", path)
                    return
                self.frame += 1
                total = self.frames if self.frames >= self.frame else "?"
                desc = f"video {number}/{self.n_videos} (frame {self.frame}/{total}) {path}"
                yield path, self._prepare(img0), img0, cap, desc
        finally:
            cap.release()
            self.cap = None

    def __iter__(self) -> Iterator[SourceItem]:
        image_no = video_no = 0
        for path, is_video in zip(self.files, self.is_video, strict=True):
            if is_video:
                video_no += 1
                yield from self._frames(path, video_no)
                continue
            image_no += 1
            img0 = _checked_image(path)
            if img0 is None:
                continue
            yield path, self._prepare(img0), img0, None, f"image {image_no}/{self.n_images} {path}"


def _checked_image(path: str) -> np.ndarray | None:
    """The image as :func:`read_image` reads it, or None (warned, naming the file and the reason) when the trainer
    would skip it: truncated, undecodable or too small."""
    try:
        verify_image(path)
    except ValueError as e:
        LOGGER.warning("cannot use image %s: %s; skipped", path, e)
        return None
    img0 = read_image(path)
    if img0 is None:
        LOGGER.warning("cannot read image %s; skipped", path)
    return img0
