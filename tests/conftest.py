"""Shared test helpers.

Tests that read ``../shared`` (the BCCD dataset and upstream YOLOv5 fixtures, beside the repository) use the
``shared_dir`` / ``fixtures_dir`` fixtures, which skip the test when that folder is absent.
"""

from __future__ import annotations

import os
import signal

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see utils/__init__.py

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # A shell starts a background job (`... &`, nohup) with Ctrl-C ignored, and the programs it starts inherit
    # that; the tests that interrupt a run, here and in the programs they start, need SIGINT delivered.
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


SAMPLE_DIR = REPO_ROOT / "data" / "bccd_sample"


def write_tiny_data(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """A data yaml over a few images of the bundled BCCD sample; splits are txt lists of image paths."""
    train = sorted((SAMPLE_DIR / "images" / "train").glob("*.jpg"))[:n_train]
    val = sorted((SAMPLE_DIR / "images" / "val").glob("*.jpg"))[:n_val]
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("".join(f"{p}\n" for p in train))
    (root / "val.txt").write_text("".join(f"{p}\n" for p in val))
    data = root / "tiny.yaml"
    data.write_text(f"path: {root}\ntrain: train.txt\nval: val.txt\nnames: [RBC, WBC, Platelets]\n")
    return data


@pytest.fixture(scope="session")
def tiny_data_writer():
    """:func:`write_tiny_data`, for fixtures of wider scope."""
    return write_tiny_data


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """8 training and 4 validation images of the bundled sample, as a data yaml."""
    return write_tiny_data(tmp_path / "data")


@pytest.fixture(scope="session")
def random_bccd_weights(tmp_path_factory) -> Path:
    """A randomly initialised yolov5n checkpoint (seed 0) with the BCCD class names: its scores are tiny but not
    zero, so a very low confidence threshold gives boxes. Shared read-only by the inference tests."""
    from models.yolo import Model
    from utils.checkpoint import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3)
    model.names = ["RBC", "WBC", "Platelets"]
    return save_checkpoint(make_checkpoint(model, model.names), tmp_path_factory.mktemp("weights") / "n.pt")
