"""``kill -9`` in the middle of an epoch and during checkpoint writes, then ``--resume``, for train.py and train_kd.py.

Every run is a real subprocess that gets SIGKILLed (see ``tests/faults/sigkill_run.py``); the kill points are drawn
from a seeded generator. After each kill: ``last.pt`` loads and holds the last completed epoch, ``best.pt`` loads.
At the end: every planned epoch is in ``results.csv`` exactly once and ``best.pt`` holds the best fitness so far.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "faults" / "sigkill_run.py"
pytestmark = pytest.mark.slow

BATCHES_PER_EPOCH = 2  # 8 training images, batch 4
TINY = ["--cfg", "yolov5n.yaml", "--imgsz", "64", "--batch-size", "4", "--workers", "0", "--noplots",
        "--noautoanchor", "--seed", "3"]  # fmt: skip


def launch(cwd: Path, script: str, args: list[str], at: str | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` (killed with SIGKILL at ``at``, see the driver) and check how it ended."""
    cmd = [sys.executable, str(DRIVER), "--at", at, script] if at else [sys.executable, str(REPO / script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    expected = -signal.SIGKILL if at else 0
    assert proc.returncode == expected, f"{script} at {at}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def fitness(row: dict) -> float:
    return 0.1 * float(row["metrics/mAP_0.5"]) + 0.9 * float(row["metrics/mAP_0.5:0.95"])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_after_kill(run: Path, epoch: int) -> None:
    """``last.pt`` holds the completed ``epoch`` with its training state; ``best.pt`` is the best epoch so far."""
    last = load(run / "weights" / "last.pt")
    assert last["epoch"] == epoch and last["optimizer"] is not None
    best = load(run / "weights" / "best.pt")
    done = [r for r in rows(run) if int(r["epoch"]) <= epoch]
    assert best["epoch"] <= epoch
    assert fitness(done[best["epoch"]]) == pytest.approx(max(fitness(r) for r in done), abs=1e-7)


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_data_writer) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("kill")
    return tmp, tiny_data_writer(tmp / "data")


@pytest.fixture(scope="module")
def train_run(work) -> Path:
    """train.py for 3 epochs, SIGKILLed three times on the way and resumed each time; returns the run folder."""
    tmp, data = work
    rng = random.Random(13)
    run = tmp / "runs" / "train"
    last = run / "weights" / "last.pt"
    args = [*TINY, "--data", str(data), "--epochs", "3", "--project", str(tmp / "runs"), "--name", "train"]
    resume = ["--resume", str(last)]

    launch(tmp, "train.py", args, at=f"batch:{BATCHES_PER_EPOCH + rng.randint(1, BATCHES_PER_EPOCH)}")  # epoch 1
    check_after_kill(run, 0)
    before = digest(last)
    launch(tmp, "train.py", resume, at="midsave:1")  # half of epoch 1's last.pt written
    assert digest(last) == before
    check_after_kill(run, 0)
    launch(tmp, "train.py", resume, at=f"batch:{BATCHES_PER_EPOCH + rng.randint(1, BATCHES_PER_EPOCH)}")  # epoch 2
    check_after_kill(run, 1)
    launch(tmp, "train.py", resume)
    return run


def test_train_survives_kill_9_and_finishes_the_planned_epochs(train_run):
    table = rows(train_run)
    assert [int(r["epoch"]) for r in table] == [0, 1, 2]
    last, best = load(train_run / "weights" / "last.pt"), load(train_run / "weights" / "best.pt")
    assert last["optimizer"] is None and best["optimizer"] is None  # finished runs are stripped
    assert best["best_fitness"] == pytest.approx(max(fitness(r) for r in table), abs=1e-7)
    assert last["train_args"]["epochs"] == 3


def same_tensors(a: dict, b: dict, where: str) -> None:
    """Every tensor of two nested state dicts is equal (resuming on the CPU repeats the computation exactly)."""
    assert a.keys() == b.keys(), where
    for k, v in a.items():
        if isinstance(v, dict):
            same_tensors(v, b[k], f"{where}.{k}")
        elif isinstance(v, torch.Tensor):
            assert torch.allclose(v.float(), b[k].float(), rtol=1e-5, atol=1e-9), f"{where}.{k}"


def test_train_kd_survives_kill_9_with_adapters_and_settings_restored(work, train_run):
    tmp, data = work
    teacher = train_run / "weights" / "best.pt"
    kd = ["--teacher", str(teacher), "--kd-output", "l2", "--kd-feature", "fitnet", "--kd-weight", "0.5"]
    common = [*TINY, "--data", str(data), "--epochs", "3", "--project", str(tmp / "runs" / "kd"), *kd]
    # the uninterrupted run, stopped in epoch 2 so that its last.pt keeps epoch 1 with the training state
    launch(tmp, "train_kd.py", [*common, "--name", "reference"], at=f"batch:{2 * BATCHES_PER_EPOCH + 1}")
    reference_last = load(tmp / "runs" / "kd" / "reference" / "weights" / "last.pt")

    rng = random.Random(14)
    run = tmp / "runs" / "kd" / "cut"
    last = run / "weights" / "last.pt"
    launch(tmp, "train_kd.py", [*common, "--name", "cut"], at=f"batch:{BATCHES_PER_EPOCH + rng.randint(1, 2)}")
    check_after_kill(run, 0)
    assert load(last)["extra"]["addons"]["distill"]["adapters"], "the adapters are part of last.pt"
    before = digest(last)
    launch(tmp, "train_kd.py", ["--resume", str(last)], at="fsync:1")  # epoch 1's last.pt written, not renamed
    assert digest(last) == before
    check_after_kill(run, 0)
    # train.py resumes a distillation run as one: the checkpoint rebuilds the teacher and the adapters
    launch(tmp, "train.py", ["--resume", str(last)], at=f"batch:{BATCHES_PER_EPOCH + rng.randint(1, 2)}")
    check_after_kill(run, 1)
    # epoch 1 trained by the resumed process equals the uninterrupted run's epoch 1: student, EMA, optimizer
    # moments and adapters (adapters that were not restored would start again from their initial values)
    resumed_last = load(last)
    for key in ("model", "ema", "extra"):
        same_tensors(resumed_last[key], reference_last[key], key)
    same_tensors(resumed_last["optimizer"]["state"], reference_last["optimizer"]["state"], "optimizer")
    launch(tmp, "train.py", ["--resume"])  # bare: the newest last.pt under runs/, this one

    reference, resumed = rows(tmp / "runs" / "kd" / "reference"), rows(run)
    assert [int(r["epoch"]) for r in resumed] == [0, 1, 2]
    for column in ("train/kd_out", "train/kd_feat", "train/box"):
        assert float(resumed[1][column]) == pytest.approx(float(reference[1][column]), rel=1e-4), column
    addons = load(last)["train_args"]["addons"]
    assert addons == reference_last["train_args"]["addons"] and [a["kind"] for a in addons] == ["distill"]
    assert addons[0]["settings"]["kd"]["kd_feature"] == "fitnet" and addons[0]["settings"]["kd"]["kd_weight"] == 0.5
    assert "at epoch 3 of 3, with distill" in (run / "train.log").read_text()  # the bare resume kept the teacher


def test_kill_9_while_writing_the_final_best_pt_still_ends_with_a_best_pt(work):
    tmp, data = work
    run = tmp / "runs" / "final"
    args = [*TINY, "--data", str(data), "--epochs", "1", "--project", str(tmp / "runs"), "--name", "final"]
    launch(tmp, "train.py", args, at="fsync:2")  # 1st write: last.pt, 2nd: best.pt of the only epoch
    assert load(run / "weights" / "last.pt")["epoch"] == 0
    subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--resume", str(run / "weights" / "last.pt")],
        cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert (run / "weights" / "best.pt").is_file()
    assert not list((run / "weights").glob(".*.tmp")), "a killed write leaves its temporary file behind"
