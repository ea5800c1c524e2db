"""Reading and validating a hyperparameter yaml (``--hyp``).

Every value must be a finite number within its range; the keys that training reads without a default must be
present; keys this project does not know (often a typo such as ``lr_0``) are reported with a warning and ignored.
Errors name the file, the key and the value.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from utils.files import load_yaml

LOGGER = logging.getLogger(__name__)
INF = math.inf

#: key -> (required, lowest, highest): the allowed closed range of each value
HYP_KEYS: dict[str, tuple[bool, float, float]] = {
    # optimizer and schedule
    "lr0": (True, 1e-12, 10.0),
    "lrf": (True, 0.0, 10.0),
    "momentum": (True, 0.0, 0.999999),
    "weight_decay": (True, 0.0, 1.0),
    "warmup_epochs": (True, 0.0, INF),
    "warmup_momentum": (True, 0.0, 0.999999),
    "warmup_bias_lr": (True, 0.0, 10.0),
    # loss
    "box": (True, 0.0, INF),
    "cls": (True, 0.0, INF),
    "cls_pw": (True, 0.0, INF),
    "obj": (True, 0.0, INF),
    "obj_pw": (True, 0.0, INF),
    "anchor_t": (True, 1.0, INF),
    "fl_gamma": (True, 0.0, INF),
    "iou_t": (False, 0.0, 1.0),
    # augmentation (the data pipeline has defaults for these)
    "hsv_h": (False, 0.0, 1.0),
    "hsv_s": (False, 0.0, 1.0),
    "hsv_v": (False, 0.0, 1.0),
    "degrees": (False, 0.0, 180.0),
    "translate": (False, 0.0, 1.0),
    "scale": (False, 0.0, 1.0),
    "shear": (False, 0.0, 180.0),
    "perspective": (False, 0.0, 0.001),
    "flipud": (False, 0.0, 1.0),
    "fliplr": (False, 0.0, 1.0),
    "mosaic": (False, 0.0, 1.0),
    "mixup": (False, 0.0, 1.0),
    "copy_paste": (False, 0.0, 1.0),
    # distillation gains (train_kd.py; defaults in utils.distill.distiller)
    **{k: (False, 0.0, INF) for k in ("kd_box", "kd_obj", "kd_cls", "kd_l2", "kd_bce", "kd_kl", "kd_pseudo")},
    **{k: (False, 0.0, INF) for k in ("kd_fitnet", "kd_at", "kd_cwd")},
    "kd_cwd_t": (False, 1e-6, INF),
}


def validate_hyp(hyp: dict, source: str | Path) -> dict:
    """Check ``hyp`` against :data:`HYP_KEYS`; returns it with every value as a float. Raises ValueError."""
    missing = [k for k, (required, _, _) in HYP_KEYS.items() if required and k not in hyp]
    if missing:
        raise ValueError(f"{source}: missing hyperparameter(s) {missing}")
    unknown = [k for k in hyp if k not in HYP_KEYS]
    if unknown:
        LOGGER.warning("%s: unknown hyperparameter(s) %s are ignored (a typo?)", source, unknown)
    out = {}
    for key, value in hyp.items():
        if key not in HYP_KEYS:
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: '{key}' must be a number, got {value!r}")
        _, lo, hi = HYP_KEYS[key]
        if not math.isfinite(value):
            raise ValueError(f"{source}: '{key}' must be a finite number, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"{source}: '{key}' is {value!r}, outside the allowed range [{lo:g}, {hi:g}]")
        out[key] = float(value)
    return out


def load_hyp(path: str | Path) -> dict:
    """Read and validate a hyperparameter yaml (see :func:`validate_hyp`)."""
    return validate_hyp(load_yaml(path, "hyperparameter file"), path)
