"""The training/validation dataset and its data loader."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.boxes import xywhn2xyxy, xyxy2xywhn
from utils.data import augment as aug
from utils.data.cache import check_split, default_cache_path
from utils.data.images import Source, img2label_path, list_images, read_image
from utils.data.sampler import EpochBatchSampler

LOGGER = logging.getLogger(__name__)

Shapes = tuple[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]]


class ImageReadError(RuntimeError):
    """An image that passed the check could not be read at training time (changed or removed since)."""


class YoloDataset(Dataset):
    """Images and YOLO labels of one split, checked once (see :mod:`utils.data.cache`), with augmentation.

    Each item is ``(img, labels, path, shapes)``:

    - ``img``: ``uint8 [3, H, W]`` RGB, contiguous.
    - ``labels``: ``float32 [n, 6]`` rows ``(0, cls, cx, cy, w, h)``, xywh normalised to ``img``; column 0 is
      filled with the index in the batch by :meth:`collate_fn`.
    - ``path``: the image file.
    - ``shapes``: ``((h0, w0), ((h_gain, w_gain), (pad_w, pad_h)))`` mapping ``img`` pixels back to the original
      image (pass ``shapes[1]`` as ``ratio_pad`` to :func:`utils.boxes.scale_boxes`); ``None`` for mosaics.

    Attributes:
        im_files, label_files: usable images and their label paths (in rect mode sorted by aspect ratio).
        labels: per image ``float32 [n, 5]`` rows ``(cls, cx, cy, w, h)``, normalised xywh (checked; class 0 with
            ``single_cls``).
        shapes: ``int64 [N, 2]`` original ``(width, height)`` per image.
        batch_shapes: in rect mode ``int64 [n_batches, 2]`` ``(height, width)`` per batch, else ``None``.
        check: the :class:`utils.data.cache.SplitCheck` with warnings and counts.

    Mixup (``hyp['mixup']``) blends a second mosaic into a mosaic with a Beta(32, 32) ratio; it only applies
    when the mosaic does.
    """

    def __init__(
        self,
        source: Source,
        img_size: int = 640,
        batch_size: int = 16,
        augment: bool = False,
        hyp: dict | None = None,
        rect: bool = False,
        cache: str | bool | None = None,
        single_cls: bool = False,
        stride: int = 32,
        pad: float = 0.0,
        prefix: str = "",
        nc: int = 80,
        check_workers: int = 8,
    ):
        if cache is True:
            cache = "ram"
        if cache not in (None, False, "ram"):
            raise ValueError(f"cache must be 'ram' or None, got {cache!r}")
        if img_size % stride:
            LOGGER.warning("%simg_size %d is not a multiple of stride %d", prefix, img_size, stride)
        self.img_size, self.stride, self.augment, self.rect = int(img_size), int(stride), augment, rect
        self.hyp = {**aug.DEFAULT_HYP, **(hyp or {})}
        self.mosaic = augment and not rect
        self.prefix = prefix

        images = list_images(source)
        label_files = [img2label_path(p) for p in images]
        self.check = check_split(images, nc, default_cache_path(source, label_files), prefix, check_workers)
        self.im_files = list(self.check.images)
        self.label_files = list(self.check.label_files)
        self.labels = [lab.copy() for lab in self.check.labels]
        self.shapes = self.check.sizes.copy()
        if single_cls:
            for lab in self.labels:
                lab[:, 0] = 0

        n = len(self.im_files)
        self.batch_index = np.arange(n) // max(1, batch_size)
        self.batch_shapes = None
        if rect:
            self._make_rect_batches(max(1, batch_size), pad)

        self.ims: list[np.ndarray | None] = [None] * n
        if cache:
            self._cache_in_ram()

    def _make_rect_batches(self, batch_size: int, pad: float) -> None:
        aspect = self.shapes[:, 1] / self.shapes[:, 0]  # h / w
        order = aspect.argsort(kind="stable")
        self.im_files = [self.im_files[i] for i in order]
        self.label_files = [self.label_files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        self.shapes = self.shapes[order]
        aspect = aspect[order]
        n_batches = int(self.batch_index[-1]) + 1
        rel = np.ones((n_batches, 2))  # (h, w) relative to img_size
        for b in range(n_batches):
            ar = aspect[self.batch_index == b]
            if ar.max() < 1:  # all wider than tall
                rel[b] = (ar.max(), 1)
            elif ar.min() > 1:  # all taller than wide
                rel[b] = (1, 1 / ar.min())
        self.batch_shapes = (np.ceil(rel * self.img_size / self.stride + pad) * self.stride).astype(np.int64)

    def _cache_in_ram(self) -> None:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            loaded = list(pool.map(self._read_resized, range(len(self))))
        self.ims = [im for im, _ in loaded]
        gb = sum(im.nbytes for im in self.ims) / 1e9
        LOGGER.info("%scached %d images in RAM (%.2f GB)", self.prefix, len(self.ims), gb)

    def __len__(self) -> int:
        return len(self.im_files)

    def _read_resized(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Image ``i`` as BGR, resized so that its longer side is ``img_size``; and its original ``(h0, w0)``."""
        path = self.im_files[i]
        img = read_image(path)
        if img is None:
            raise ImageReadError(f"cannot read image {path} (it was readable when the labels were checked)")
        h0, w0 = img.shape[:2]
        r = self.img_size / max(h0, w0)
        if r != 1:
            interp = cv2.INTER_LINEAR if (self.augment or r > 1) else cv2.INTER_AREA
            img = cv2.resize(img, (max(1, round(w0 * r)), max(1, round(h0 * r))), interpolation=interp)
        return img, (h0, w0)

    def load_image(self, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """``(image BGR uint8 [h, w, 3], (h0, w0), (h, w))`` with the longer side resized to ``img_size``."""
        if self.ims[i] is not None:
            img = self.ims[i]
            w0, h0 = (int(v) for v in self.shapes[i])
        else:
            img, (h0, w0) = self._read_resized(i)
        return img, (h0, w0), img.shape[:2]

    def _perspective(self, img: np.ndarray, labels: np.ndarray, border: tuple[int, int]):
        h = self.hyp
        return aug.random_perspective(
            img, labels, h["degrees"], h["translate"], h["scale"], h["shear"], h["perspective"], border
        )

    def load_mosaic(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """A ``img_size`` square mosaic of image ``index`` and three random others, affine-augmented.

        Returns ``(image BGR uint8 [s, s, 3], labels [m, 5] (cls, x1, y1, x2, y2) xyxy pixels)``.
        """
        indices = [index] + random.choices(range(len(self)), k=3)
        images = [self.load_image(i)[0] for i in indices]
        canvas, labels = aug.mosaic4(images, [self.labels[i] for i in indices], self.img_size)
        border = -self.img_size // 2
        return self._perspective(canvas, labels, (border, border))

    def _get(self, index: int) -> tuple[np.ndarray, np.ndarray, Shapes | None]:
        if self.mosaic and random.random() < self.hyp["mosaic"]:
            img, labels = self.load_mosaic(index)
            shapes = None
            if random.random() < self.hyp["mixup"]:
                img2, labels2 = self.load_mosaic(random.randrange(len(self)))
                img, labels = aug.mixup(img, labels, img2, labels2)
        else:
            img, (h0, w0), (h, w) = self.load_image(index)
            if self.augment and self.ims[index] is not None:
                img = img.copy()  # the augmentations below may work in place; keep the RAM cache intact
            shape = self.batch_shapes[self.batch_index[index]] if self.rect else (self.img_size, self.img_size)
            img, (gw, gh), (pw, ph) = aug.letterbox(img, tuple(shape), auto=False, scaleup=self.augment)
            shapes = (h0, w0), ((h / h0 * gh, w / w0 * gw), (pw, ph))
            labels = self.labels[index].copy()
            if len(labels):
                labels[:, 1:] = xywhn2xyxy(labels[:, 1:], w * gw, h * gh, pw, ph)
            if self.augment:
                img, labels = self._perspective(img, labels, (0, 0))

        out_h, out_w = img.shape[:2]
        if len(labels):
            labels[:, 1:5] = xyxy2xywhn(labels[:, 1:5], out_w, out_h, clip=True)
        labels = labels.astype(np.float32).reshape(-1, 5)
        if self.augment:
            aug.augment_hsv(img, self.hyp["hsv_h"], self.hyp["hsv_s"], self.hyp["hsv_v"])
            img = aug.random_flips(img, labels, self.hyp["fliplr"], self.hyp["flipud"])
        return img, labels, shapes

    def __getitem__(self, item: int | tuple[int, int]):
        """Item ``index``, or ``(index, seed)``: then ``random`` and ``numpy`` are seeded with ``seed`` first, so that
        its augmentation does not depend on the process that loads it (see :mod:`utils.data.sampler`)."""
        index = item
        if isinstance(item, tuple):
            index, seed = item
            random.seed(seed)
            np.random.seed(seed)
        for attempt in range(10):
            try:
                img, labels, shapes = self._get(index)
                break
            except ImageReadError as e:
                if attempt == 9:
                    raise
                LOGGER.warning("%s%s; using another image instead", self.prefix, e)
                index = random.randrange(len(self))
        out = np.zeros((len(labels), 6), dtype=np.float32)
        out[:, 1:] = labels
        chw = np.ascontiguousarray(img.transpose(2, 0, 1)[::-1])  # HWC BGR -> CHW RGB
        return torch.from_numpy(chw), torch.from_numpy(out), self.im_files[index], shapes

    @staticmethod
    def collate_fn(batch):
        """Batch items: ``(imgs uint8 [B, 3, H, W], targets float32 [N, 6], paths tuple, shapes tuple)``.

        ``targets`` rows are ``(image index in batch, cls, cx, cy, w, h)``, normalised xywh.
        """
        imgs, labels, paths, shapes = zip(*batch, strict=True)
        targets = []
        for i, lab in enumerate(labels):
            lab = lab.clone()
            lab[:, 0] = i
            targets.append(lab)
        return torch.stack(imgs, 0), torch.cat(targets, 0), paths, shapes


def seed_worker(worker_id: int) -> None:
    """Seed ``numpy`` and ``random`` in a loader worker from the seed torch gave that worker."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class SeededDataLoader(DataLoader):
    """A DataLoader that, when it loads in the main process (``num_workers=0``), seeds ``numpy`` and ``random``
    from its generator at the start of every epoch, as worker processes are seeded by :func:`seed_worker`."""

    def __iter__(self) -> Iterator:
        if self.num_workers == 0 and self.generator is not None:
            seed = int(torch.randint(0, 2**32 - 1, (1,), generator=self.generator))
            np.random.seed(seed)
            random.seed(seed)
        return super().__iter__()


def create_dataloader(
    source: Source,
    img_size: int,
    batch_size: int,
    stride: int,
    hyp: dict | None = None,
    augment: bool = False,
    cache: str | bool | None = None,
    rect: bool = False,
    workers: int = 8,
    shuffle: bool = False,
    seed: int = 0,
    prefix: str = "",
    single_cls: bool = False,
    nc: int = 80,
    pad: float | None = None,
    sampler: Sampler | None = None,
    epochs_from: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> tuple[DataLoader, YoloDataset]:
    """Build a :class:`YoloDataset` and a deterministic loader over it. Its worker processes live as long as it.

    Args:
        source: images (see :func:`utils.data.images.list_images`).
        img_size, batch_size, stride: network input size, batch size and maximum model stride.
        hyp: augmentation gains (keys of a YOLOv5 hyp yaml; missing keys use ``augment.DEFAULT_HYP``).
        augment, cache, rect, single_cls, nc: see :class:`YoloDataset`.
        workers: loader processes, capped by the CPU count and the batch size.
        shuffle: shuffle every epoch (ignored, with a warning, with ``rect``, which needs the sorted order).
        seed: seeds the order and the augmentation.
        pad: rect-batch padding in strides; default 0.5 for validation (``rect`` without ``augment``), else 0.
        sampler: a sampler to use instead of shuffling.
        epochs_from: a training loader: endless, epoch after epoch from this one, each epoch ``len(loader)``
            batches (see :class:`~utils.data.sampler.EpochBatchSampler`); iterate it once and take that many
            batches per epoch, so that the workers prefetch across the end of an epoch. ``rank``/``world``: this
            process's share in a DDP run.

    Returns:
        ``(loader, dataset)``; the loader yields the batches of :meth:`YoloDataset.collate_fn`.
    """
    if rect and shuffle:
        LOGGER.warning("%srect batches are incompatible with shuffle; shuffle turned off", prefix)
        shuffle = False
    if pad is None:
        pad = 0.5 if rect and not augment else 0.0
    dataset = YoloDataset(
        source, img_size, batch_size, augment, hyp, rect, cache, single_cls, stride, pad, prefix, nc, workers
    )
    batch_size = max(1, min(batch_size, len(dataset)))
    nw = max(0, min(os.cpu_count() or 1, batch_size if batch_size > 1 else 0, workers))
    common = dict(num_workers=nw, persistent_workers=nw > 0, pin_memory=torch.cuda.is_available(),
                  collate_fn=YoloDataset.collate_fn, worker_init_fn=seed_worker)  # fmt: skip
    if epochs_from is not None:
        batches = EpochBatchSampler(len(dataset), batch_size, shuffle, seed, epochs_from, rank, world)
        return DataLoader(dataset, batch_sampler=batches, **common), dataset
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = SeededDataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler, generator=generator,
        **common,
    )  # fmt: skip
    return loader, dataset
