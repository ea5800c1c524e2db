"""Shared test helpers.

Tests that read ``../shared`` (the BCCD dataset and upstream YOLOv5 fixtures, beside the repository) use the
``shared_dir`` / ``fixtures_dir`` fixtures, which skip the test when that folder is absent.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see utils/__init__.py

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep torch to two threads so that tests behave the same on small CI machines."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"needs {SHARED_DIR} (datasets and fixtures beside the repository)")
    return SHARED_DIR


@pytest.fixture
def fixtures_dir(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures"
    if not path.is_dir():
        pytest.skip(f"needs {path}")
    return path


@pytest.fixture
def bccd_dir(shared_dir: Path) -> Path:
    path = shared_dir / "datasets" / "BCCD"
    if not path.is_dir():
        pytest.skip(f"needs {path}")
    return path
