"""The teacher the project ships (weights/yolov5s-bccd.pt): the file weights/README.md describes, loadable without
running pickled code, and a real detector on the bundled sample."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from models import load_model
from utils.runners.val import ValConfig, run_val

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "weights" / "yolov5s-bccd.pt"
FLOOR = 0.40  # mAP50-95 on the sample's 12 val images at 160 px; measured 0.518 (weights/README.md)


def test_the_checksum_is_the_one_the_readme_gives():
    readme = (REPO / "weights" / "README.md").read_text()
    stated = re.search(r"sha256\W+`([0-9a-f]{64})`", readme)
    assert stated, "weights/README.md states no sha256"
    assert hashlib.sha256(TEACHER.read_bytes()).hexdigest() == stated.group(1)


def test_it_loads_with_the_safe_loader_as_plain_fp16_tensors():
    ckpt = torch.load(TEACHER, map_location="cpu", weights_only=True)  # no pickled code can run
    assert ckpt["optimizer"] is None and ckpt["ema"] is None
    assert {v.dtype for v in ckpt["model"].values() if v.is_floating_point()} == {torch.float16}
    model = load_model(TEACHER)
    assert model.names == ["RBC", "WBC", "Platelets"] and sum(p.numel() for p in model.parameters()) > 7e6


def test_it_detects_on_the_bundled_sample(tmp_path):
    cfg = ValConfig(data=str(REPO / "data" / "bccd_sample.yaml"), weights=str(TEACHER), imgsz=160, batch_size=12,
                    device="cpu", workers=0, project=str(tmp_path), noplots=True)  # fmt: skip
    result, _ = run_val(cfg)
    assert result.map > FLOOR
