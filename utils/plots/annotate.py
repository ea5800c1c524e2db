"""Drawing detections on images (OpenCV, BGR uint8) and saving box crops.

Text is drawn with OpenCV's built-in Hershey font, so nothing is downloaded and no font file is needed. Tensors
are accepted wherever arrays are, but the module does not import torch (see :mod:`utils.plots.drawer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from utils.box_formats import xywh2xyxy, xyxy2xywh
from utils.plots.colors import colors

if TYPE_CHECKING:
    import torch

__all__ = ["Annotator", "class_names", "save_one_box", "unique_path"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _check_image(im: np.ndarray) -> None:
    if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
        desc = f"{im.dtype} {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
        raise ValueError(f"image is {desc}; expected a uint8 BGR array of shape [H, W, 3]")


def class_names(names: Sequence[str] | dict[int, str] | None, classes: Sequence[int]) -> list[str]:
    """The legend names of class ids ``classes``: ``names[c]`` (a list or an id -> name dict), the id itself where
    ``names`` is absent or lacks it."""
    if names is None:
        return [str(int(c)) for c in classes]
    lookup = names if isinstance(names, dict) else dict(enumerate(names))
    return [str(lookup.get(int(c), int(c))) for c in classes]


class Annotator:
    """Draw boxes and labels on a BGR ``uint8`` image of shape ``[H, W, 3]``.

    The image is drawn on in place when it is C-contiguous (otherwise a contiguous copy is used); :meth:`result`
    returns the annotated array.

    Args:
        im: ``[H, W, 3]`` uint8 BGR image.
        line_width: box line thickness in pixels; default ``max(1, round(max(H, W) / 320))``.
        names: class names (list or dict) used by :meth:`draw_detections`; class ids are shown when absent.
        hide_labels: draw boxes only, no text.
        hide_conf: show class names without the confidence.
    """

    def __init__(
        self,
        im: np.ndarray,
        line_width: int | None = None,
        names: Sequence[str] | dict[int, str] | None = None,
        hide_labels: bool = False,
        hide_conf: bool = False,
    ):
        _check_image(im)
        if line_width is not None and (int(line_width) != line_width or line_width < 1):
            raise ValueError(f"line_width={line_width!r} is invalid; it must be a positive integer or None")
        self.im = np.ascontiguousarray(im)
        h, w = self.im.shape[:2]
        self.lw = int(line_width) if line_width is not None else max(1, round(max(h, w) / 320))
        self.names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else names
        self.hide_labels, self.hide_conf = hide_labels, hide_conf
        self.font_scale = max(self.lw / 3, 0.35)
        self.font_thickness = max(self.lw - 1, 1)

    def box_label(
        self,
        box: Sequence[float] | torch.Tensor | np.ndarray,
        label: str = "",
        color: tuple[int, int, int] = (128, 128, 128),
        txt_color: tuple[int, int, int] = (255, 255, 255),
    ) -> None:
        """Draw one ``xyxy`` pixel box in BGR ``color`` with an optional ``label`` on a filled tag above it."""
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(self.im, (x1, y1), (x2, y2), color, thickness=self.lw, lineType=cv2.LINE_AA)
        if not label:
            return
        (tw, th), baseline = cv2.getTextSize(label, _FONT, self.font_scale, self.font_thickness)
        th += baseline
        above = y1 - th - 2 >= 0  # tag above the box when it fits, else inside the top edge
        ty1, ty2 = (y1 - th - 2, y1) if above else (y1, y1 + th + 2)
        cv2.rectangle(self.im, (x1, ty1), (x1 + tw + 2, ty2), color, thickness=-1, lineType=cv2.LINE_AA)
        cv2.putText(
            self.im,
            label,
            (x1 + 1, ty2 - baseline - 1),
            _FONT,
            self.font_scale,
            txt_color,
            thickness=self.font_thickness,
            lineType=cv2.LINE_AA,
        )

    def label_text(self, cls: int, conf: float) -> str:
        """The text shown for a detection, honouring ``hide_labels`` / ``hide_conf``."""
        if self.hide_labels:
            return ""
        name = self.names.get(cls, str(cls)) if self.names else str(cls)
        return name if self.hide_conf else f"{name} {conf:.2f}"

    def draw_detections(self, detections: torch.Tensor | np.ndarray) -> Annotator:
        """Draw ``[n, 6]`` detections ``(x1, y1, x2, y2, score, class)`` (xyxy pixels of this image)."""
        det = detections.detach().cpu().numpy() if hasattr(detections, "detach") else np.asarray(detections)
        if det.size and (det.ndim != 2 or det.shape[1] != 6):
            raise ValueError(f"detections has shape {det.shape}; expected [n, 6] (x1, y1, x2, y2, score, class)")
        for *xyxy, conf, cls in det.reshape(-1, 6).tolist():
            c = int(cls)
            color = colors(c, bgr=True)
            light = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2] > 150  # perceived brightness
            self.box_label(
                xyxy, self.label_text(c, conf), color=color, txt_color=(0, 0, 0) if light else (255, 255, 255)
            )
        return self

    def text(self, xy: tuple[int, int], text: str, txt_color: tuple[int, int, int] = (255, 255, 255)) -> None:
        """Write ``text`` with its bottom-left corner at pixel ``xy``."""
        cv2.putText(self.im, text, tuple(int(v) for v in xy), _FONT, self.font_scale, txt_color, self.font_thickness)

    def result(self) -> np.ndarray:
        """The annotated ``[H, W, 3]`` uint8 BGR image."""
        return self.im


def unique_path(path: str | Path, sep: str = "") -> Path:
    """``path`` if it does not exist, else the first free ``stem{sep}2.ext``, ``stem{sep}3.ext``, ..."""
    path = Path(path)
    if not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}{sep}{n}{path.suffix}")).exists():
        n += 1
    return candidate


def save_one_box(
    xyxy: Sequence[float] | torch.Tensor | np.ndarray,
    im: np.ndarray,
    file: str | Path = "crop.jpg",
    gain: float = 1.02,
    pad: int = 10,
    square: bool = False,
    save: bool = True,
) -> np.ndarray:
    """Crop a box (enlarged) out of a BGR image and optionally save it as JPEG, never overwriting a file.

    The box's width and height are multiplied by ``gain`` and then ``pad`` pixels are added (``square`` first
    makes it square on its longer side); the result is clipped to the image.

    Args:
        xyxy: ``[4]`` box ``(x1, y1, x2, y2)`` in pixels of ``im``.
        im: ``[H, W, 3]`` uint8 BGR image.
        file: target path; saved with a ``.jpg`` suffix, as ``name2.jpg``, ``name3.jpg``, ... when taken.
        gain, pad: enlargement factor and extra pixels.
        square: make the crop square.
        save: write the file (parent folders created).

    Returns:
        The ``[h, w, 3]`` BGR crop (a copy).
    """
    _check_image(im)
    if gain <= 0 or pad < 0:
        raise ValueError(f"gain={gain!r} and pad={pad!r} are invalid; need gain > 0 and pad >= 0")
    box = np.asarray(xyxy, dtype=np.float64).reshape(-1)
    if box.size != 4:
        raise ValueError(f"xyxy has {box.size} values; expected 4 (x1, y1, x2, y2)")
    b = xyxy2xywh(box.reshape(1, 4))
    if square:
        b[:, 2:] = b[:, 2:].max(1, keepdims=True)
    b[:, 2:] = b[:, 2:] * gain + pad
    h, w = im.shape[:2]
    x1, y1, x2, y2 = np.round(np.clip(xywh2xyxy(b)[0], 0, (w, h, w, h))).astype(int).tolist()
    crop = im[y1:y2, x1:x2].copy()
    if crop.size == 0:
        raise ValueError(f"box {box.tolist()} lies outside the {im.shape[1]}x{im.shape[0]} image; nothing to crop")
    if save:
        target = Path(file).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target = unique_path(target)
        if not cv2.imwrite(str(target), crop):
            raise OSError(f"could not write crop to {target}")
    return crop
