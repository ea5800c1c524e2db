"""Datasets: data yaml, image listing, label checking with a cache, augmentation, loaders, inference sources."""

from utils.data.augment import DEFAULT_HYP, augment_hsv, letterbox, mixup, mosaic4, random_flips, random_perspective
from utils.data.cache import SplitCheck, check_split
from utils.data.config import DataConfig, load_data_config
from utils.data.dataset import YoloDataset, create_dataloader
from utils.data.images import IMG_FORMATS, VID_FORMATS, expand_source, img2label_path, list_images, verify_image
from utils.data.labels import check_image, parse_label_file
from utils.data.sources import LoadImages

__all__ = [
    "DEFAULT_HYP",
    "IMG_FORMATS",
    "VID_FORMATS",
    "DataConfig",
    "LoadImages",
    "SplitCheck",
    "YoloDataset",
    "augment_hsv",
    "check_image",
    "check_split",
    "create_dataloader",
    "expand_source",
    "img2label_path",
    "letterbox",
    "list_images",
    "load_data_config",
    "mixup",
    "mosaic4",
    "parse_label_file",
    "random_flips",
    "random_perspective",
    "verify_image",
]
