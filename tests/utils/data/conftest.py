"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_data import make_split


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    """A 6-image train split and a 4-image val split of synthetic PNGs with labels."""
    make_split(tmp_path, "train", 6)
    make_split(tmp_path, "val", 4)
    return tmp_path
