import cv2
import numpy as np
import pytest
import torch

from utils.plots import Annotator, Colors, colors, save_one_box


def test_colors_palette():
    assert len(colors) >= 20
    assert colors(0) != colors(1)
    r, g, b = colors(3)
    assert colors(3, bgr=True) == (b, g, r)
    assert colors(len(colors)) == colors(0)  # wraps around
    assert Colors.hex2rgb("#FF8000") == (255, 128, 0)
    with pytest.raises(ValueError, match="colour"):
        Colors.hex2rgb("12345")
    with pytest.raises(ValueError, match="index"):
        colors(-1)


def test_annotator_draws_inside_box_and_labels():
    im = np.zeros((200, 300, 3), np.uint8)
    ann = Annotator(im, line_width=2, names=["cat", "dog"])
    ann.draw_detections(torch.tensor([[50.0, 60.0, 150.0, 160.0, 0.87, 1.0]]))
    out = ann.result()
    assert out.shape == (200, 300, 3) and out.dtype == np.uint8
    box_region = out[58:163, 48:153]
    assert box_region.any()  # box edges drawn
    assert not out[170:, 200:].any()  # far from the box: untouched
    np.testing.assert_array_equal(out[100, 50], colors(1, bgr=True))  # left edge in the class colour
    assert out[30:60, 50:150].any()  # label tag above the box
    assert ann.label_text(1, 0.87) == "dog 0.87"


def test_annotator_hide_options_and_thickness():
    det = np.array([[50, 60, 150, 160, 0.87, 0]])
    full = Annotator(np.zeros((200, 300, 3), np.uint8), line_width=2).draw_detections(det).result()
    no_lab = Annotator(np.zeros((200, 300, 3), np.uint8), line_width=2, hide_labels=True).draw_detections(det).result()
    no_conf = Annotator(np.zeros((200, 300, 3), np.uint8), line_width=2, hide_conf=True)
    assert no_conf.label_text(0, 0.5) == "0"
    assert not no_lab[30:57, 60:150].any()  # no tag
    assert full[30:57, 60:150].any()
    thick = Annotator(np.zeros((200, 300, 3), np.uint8), line_width=6, hide_labels=True).draw_detections(det).result()
    assert (thick.any(2).sum()) > (no_lab.any(2).sum())
    with pytest.raises(ValueError, match="image"):
        Annotator(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="line_width"):
        Annotator(np.zeros((10, 10, 3), np.uint8), line_width=0)


def test_save_one_box_crops_and_never_overwrites(tmp_path):
    im = np.zeros((100, 200, 3), np.uint8)
    im[20:40, 50:90] = (0, 0, 255)
    crop = save_one_box([50, 20, 90, 40], im, tmp_path / "crops" / "cat" / "img.jpg", gain=1.0, pad=0, save=False)
    assert crop.shape == (20, 40, 3) and (crop[..., 2] == 255).all()
    padded = save_one_box(torch.tensor([50, 20, 90, 40]), im, tmp_path / "x.jpg", gain=1.02, pad=10, save=False)
    assert padded.shape[0] > 20 and padded.shape[1] > 40

    target = tmp_path / "crops" / "cat" / "img.png"
    save_one_box([50, 20, 90, 40], im, target)
    save_one_box([50, 20, 90, 40], im, target)
    save_one_box([50, 20, 90, 40], im, target)
    files = sorted(p.name for p in target.parent.iterdir())
    assert files == ["img.jpg", "img2.jpg", "img3.jpg"]
    assert cv2.imread(str(target.parent / "img2.jpg")).shape[:2] == padded.shape[:2]

    sq = save_one_box([50, 20, 90, 40], im, tmp_path / "s.jpg", gain=1.0, pad=0, square=True, save=False)
    assert sq.shape[0] == sq.shape[1] == 40
    with pytest.raises(ValueError, match="outside"):
        save_one_box([300, 300, 400, 400], im, tmp_path / "n.jpg", save=False)
    with pytest.raises(ValueError, match="xyxy"):
        save_one_box([1, 2, 3], im, tmp_path / "n.jpg", save=False)
