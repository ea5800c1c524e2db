"""YoloDataset and create_dataloader."""

import logging
import os
import random

import numpy as np
import pytest
import torch
from synth_data import assert_boxes_cover_rectangles, make_split

from utils.boxes import scale_boxes, xywhn2xyxy
from utils.data.dataset import YoloDataset, create_dataloader

NC = 4
NO_COLOUR_CHANGE = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}


def test_collate_and_item_formats(dataset_root):
    loader, ds = create_dataloader(dataset_root / "images" / "train", 64, 4, 32, workers=0, nc=NC)
    img, labels, path, shapes = ds[1]
    assert img.dtype == torch.uint8 and img.shape == (3, 64, 64) and img.is_contiguous()
    assert labels.dtype == torch.float32 and labels.shape == (2, 6) and (labels[:, 0] == 0).all()
    assert path.endswith("img1.png") and shapes[0] == (52, 72)
    imgs, targets, paths, batch_shapes = next(iter(loader))
    assert imgs.shape == (4, 3, 64, 64) and imgs.dtype == torch.uint8
    counts = [len(lab) for lab in ds.labels[:4]]
    assert targets.shape == (sum(counts), 6)
    assert targets[:, 0].tolist() == [i for i, n in enumerate(counts) for _ in range(n)]
    assert len(paths) == 4 and len(batch_shapes) == 4
    assert len(ds.labels) == 6 and all(lab.shape[1] == 5 for lab in ds.labels)
    assert ds.shapes.shape == (6, 2) and ds.shapes[0].tolist() == [64, 48]


def test_image_is_rgb(tmp_path):
    img_path = make_split(tmp_path, "train", 1, sizes=[(64, 64)])[0]
    ds = YoloDataset(img_path, img_size=64, nc=NC)
    img = ds[0][0].numpy()
    x, y = 10, 10  # inside the class-0 rectangle, BGR (255, 0, 0): blue
    assert img[:, y, x].tolist() == [0, 0, 255]


def test_labels_map_back_to_original_image(tmp_path):
    make_split(tmp_path, "val", 5, sizes=[(90, 40), (40, 70), (64, 64), (100, 30), (33, 77)])
    _, ds = create_dataloader(tmp_path / "images" / "val", 64, 2, 32, rect=True, workers=0, nc=NC)
    for i in range(len(ds)):
        img, labels, _, ((h0, w0), ratio_pad) = ds[i]
        h, w = img.shape[1:]
        boxes = xywhn2xyxy(labels[:, 2:].numpy().astype(np.float64), w, h)
        back = scale_boxes((h, w), boxes, (h0, w0), ratio_pad=ratio_pad)
        expected = xywhn2xyxy(ds.labels[i][:, 1:].astype(np.float64), w0, h0)
        np.testing.assert_allclose(back, expected, atol=0.02)


def test_rect_batches(tmp_path):
    sizes = [(90, 40), (40, 70), (64, 64), (100, 30), (33, 77), (100, 40), (45, 50)]  # h/w 0.3 .. 2.3
    make_split(tmp_path, "val", 7, sizes=sizes)
    loader, ds = create_dataloader(tmp_path / "images" / "val", 64, 3, 32, rect=True, workers=0, nc=NC, shuffle=True)
    aspect = ds.shapes[:, 1] / ds.shapes[:, 0]
    assert (np.diff(aspect) >= 0).all()  # sorted by h / w
    assert ds.batch_shapes.shape == (3, 2) and (ds.batch_shapes % 32 == 0).all()
    assert ds.batch_shapes.tolist() == [[64, 96], [96, 96], [96, 64]]  # ceil(rel * 64 / 32 + 0.5) * 32
    for b, (imgs, _, _, shapes) in enumerate(loader):
        assert tuple(imgs.shape[2:]) == tuple(ds.batch_shapes[b])
        assert all(s is not None for s in shapes)


def _batches(root, seed, workers=0, n=2):
    hyp = {"degrees": 5.0, "shear": 2.0, "mixup": 0.5}
    loader, _ = create_dataloader(
        root / "images" / "train", 64, 3, 32, hyp=hyp, augment=True, workers=workers, shuffle=True, seed=seed, nc=NC
    )
    out = []
    for _ in range(n):  # two epochs
        for imgs, targets, paths, _ in loader:
            out.append((imgs.clone(), targets.clone(), paths))
    return out


def _same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2] == y[2] for x, y in zip(a, b, strict=True)
    )


def test_same_seed_same_batches(dataset_root):
    first = _batches(dataset_root, seed=5)
    assert _same(first, _batches(dataset_root, seed=5))
    assert not _same(first, _batches(dataset_root, seed=6))
    assert not torch.equal(first[0][0], first[2][0])  # epochs differ


def test_same_seed_same_batches_with_workers(dataset_root):
    a = _batches(dataset_root, seed=3, workers=2, n=1)
    assert _same(a, _batches(dataset_root, seed=3, workers=2, n=1))
    assert not _same(a, _batches(dataset_root, seed=4, workers=2, n=1))


def test_augmented_boxes_cover_objects(tmp_path):
    make_split(tmp_path, "train", 6, sizes=[(64, 48), (48, 64), (80, 80)])
    hyp = {**NO_COLOUR_CHANGE, "degrees": 5.0, "translate": 0.1, "scale": 0.4, "shear": 2.0, "flipud": 0.5}
    for mosaic in (1.0, 0.0):
        ds = YoloDataset(tmp_path / "images" / "train", 64, augment=True, hyp={**hyp, "mosaic": mosaic}, nc=NC)
        random.seed(0)
        np.random.seed(0)
        for i in range(12):
            img, labels, _, shapes = ds[i % len(ds)]
            assert (shapes is None) == (mosaic == 1.0)
            lab = labels[:, 1:].numpy()
            assert ((lab[:, 1:] >= 0) & (lab[:, 1:] <= 1)).all() and (lab[:, 3:] > 0).all()
            bgr = np.ascontiguousarray(img.numpy()[::-1].transpose(1, 2, 0))
            boxes = np.concatenate((lab[:, :1], xywhn2xyxy(lab[:, 1:].astype(np.float64), 64, 64)), 1)
            assert_boxes_cover_rectangles(bgr, boxes, max_lost_area=0.1 * 30 * 30 * 1.4**2)


def test_single_cls_and_ram_cache(dataset_root):
    src = dataset_root / "images" / "train"
    plain = YoloDataset(src, 64, nc=NC)
    cached = YoloDataset(src, 64, nc=NC, cache="ram", single_cls=True)
    assert all(im is not None for im in cached.ims)
    for i in range(len(plain)):
        a, b = plain[i], cached[i]
        assert torch.equal(a[0], b[0]) and a[3] == b[3]
        assert torch.equal(a[1][:, 2:], b[1][:, 2:]) and (b[1][:, 1] == 0).all()
    assert any((lab[:, 0] > 0).any() for lab in plain.labels)
    with pytest.raises(ValueError, match="cache must be 'ram' or None"):
        YoloDataset(src, 64, nc=NC, cache="disk")


def test_augmentation_leaves_ram_cache_intact(tmp_path):
    make_split(tmp_path, "train", 2, sizes=[(64, 64)])
    hyp = {"hsv_h": 0.5, "hsv_s": 0.9, "hsv_v": 0.9, "translate": 0.0, "scale": 0.0, "fliplr": 0.0, "mosaic": 0.0}
    ds = YoloDataset(tmp_path / "images" / "train", 64, augment=True, hyp=hyp, cache="ram", nc=NC)
    before = [im.copy() for im in ds.ims]
    np.random.seed(0)
    changed = [ds[i][0] for i in range(2)]
    assert not np.array_equal(changed[0].numpy()[::-1].transpose(1, 2, 0), before[0])  # HSV did change the item
    for im, ref in zip(ds.ims, before, strict=True):
        np.testing.assert_array_equal(im, ref)


def test_image_removed_after_check_is_replaced_with_warning(dataset_root, caplog):
    ds = YoloDataset(dataset_root / "images" / "train", 64, nc=NC)
    os.remove(ds.im_files[2])
    caplog.set_level(logging.WARNING)
    img, _, path, _ = ds[2]
    assert path != ds.im_files[2] and img.shape == (3, 64, 64)
    assert any("img2.png" in r.getMessage() and "another image" in r.getMessage() for r in caplog.records)


def test_worker_cap_and_sampler(dataset_root):
    loader, ds = create_dataloader(dataset_root / "images" / "train", 64, 2, 32, workers=8, nc=NC)
    assert loader.num_workers <= min(2, os.cpu_count())
    loader, _ = create_dataloader(dataset_root / "images" / "train", 64, 1, 32, workers=8, nc=NC)
    assert loader.num_workers == 0
    sampler = torch.utils.data.SequentialSampler(range(6))
    loader, _ = create_dataloader(dataset_root / "images" / "train", 64, 100, 32, workers=0, nc=NC, sampler=sampler)
    assert loader.sampler is sampler and loader.batch_size == 6
    assert len(next(iter(loader))[2]) == 6


@pytest.mark.shared
def test_bccd_images_as_backgrounds(tmp_path, caplog):
    from synth_data import BCCD_IMAGES

    if not BCCD_IMAGES.is_dir():
        pytest.skip(f"{BCCD_IMAGES} not available")
    img_dir = tmp_path / "images" / "train"
    img_dir.mkdir(parents=True)
    for src in sorted(BCCD_IMAGES.glob("*.jpg"))[:4]:
        (img_dir / src.name).symlink_to(src)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    name = sorted(BCCD_IMAGES.glob("*.jpg"))[0].stem
    (tmp_path / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.3\n")
    caplog.set_level(logging.INFO)
    loader, ds = create_dataloader(img_dir, 128, 4, 32, rect=True, workers=0, nc=3)
    assert len(ds) == 4 and ds.shapes.tolist() == [[640, 480]] * 4
    imgs, targets, _, _ = next(iter(loader))
    assert imgs.shape == (4, 3, 128, 160) and targets.shape == (1, 6)
    assert any("4 images found, 3 backgrounds" in r.getMessage() for r in caplog.records)
