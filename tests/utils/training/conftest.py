"""A tiny dataset for engine tests: 8 training and 4 validation images from the bundled BCCD sample."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

SAMPLE = REPO_ROOT / "data" / "bccd_sample"


def write_tiny_data(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """A data yaml whose splits are txt lists of sample images (labels are found beside them as usual)."""
    train = sorted((SAMPLE / "images" / "train").glob("*.jpg"))[:n_train]
    val = sorted((SAMPLE / "images" / "val").glob("*.jpg"))[:n_val]
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("".join(f"{p}\n" for p in train))
    (root / "val.txt").write_text("".join(f"{p}\n" for p in val))
    data = root / "tiny.yaml"
    data.write_text(f"path: {root}\ntrain: train.txt\nval: val.txt\nnames: [RBC, WBC, Platelets]\n")
    return data


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_data(tmp_path / "data")
