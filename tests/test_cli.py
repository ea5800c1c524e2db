"""End-to-end runs of the command-line programs on the bundled sample data (small sizes, few images)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a program of the repository from another working directory, as a user would."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data_writer) -> Path:
    """Train yolov5n for 2 epochs at 64 px on a tiny subset of the sample data; returns the run directory."""
    tmp = tmp_path_factory.mktemp("cli")
    data = tiny_data_writer(tmp / "data")
    run(
        [str(REPO / "train.py"), "--cfg", "yolov5n.yaml", "--data", str(data), "--imgsz", "64", "--epochs", "2",
         "--batch-size", "4", "--workers", "1", "--project", str(tmp / "runs"), "--name", "smoke"],
        cwd=tmp,
    )  # fmt: skip
    return tmp


def test_train_outputs(trained):
    run_dir = trained / "runs" / "smoke"
    assert (run_dir / "weights" / "best.pt").is_file()
    lines = (run_dir / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 3  # header + 2 epochs


def test_val_writes_metrics_json(trained):
    weights = trained / "runs" / "smoke" / "weights" / "best.pt"
    run(
        [str(REPO / "val.py"), "--weights", str(weights), "--data", str(trained / "data" / "tiny.yaml"),
         "--imgsz", "64", "--project", str(trained / "val"), "--save-json", "--save-txt", "--verbose"],
        cwd=trained,
    )  # fmt: skip
    metrics = json.loads((trained / "val" / "exp" / "metrics.json").read_text())
    assert metrics["images"] == 4 and metrics["instances"] > 0
    assert 0.0 <= metrics["mAP50-95"] <= metrics["mAP50"] <= 1.0
    assert (trained / "val" / "exp" / "predictions.json").is_file()


def test_detect_on_a_folder(trained):
    weights = trained / "runs" / "smoke" / "weights" / "best.pt"
    source = REPO / "data" / "bccd_sample" / "images" / "val"
    run(
        [str(REPO / "detect.py"), "--weights", str(weights), "--source", str(source), "--imgsz", "64",
         "--conf-thres", "0.001", "--save-txt", "--save-conf", "--project", str(trained / "detect")],
        cwd=trained,
    )  # fmt: skip
    out = trained / "detect" / "exp"
    assert len(list(out.glob("*.jpg"))) == len(list(source.glob("*.jpg")))
    rows = [line.split() for f in (out / "labels").glob("*.txt") for line in f.read_text().splitlines()]
    assert rows and all(len(r) == 6 for r in rows)
    assert all(0 <= float(v) <= 1 for r in rows for v in r[1:5])


def test_ctrl_c_keeps_last_checkpoint_and_resume_continues(tmp_path, tiny_data):
    data = tiny_data
    args = [sys.executable, str(REPO / "train.py"), "--cfg", "yolov5n.yaml", "--data", str(data), "--imgsz", "64",
            "--epochs", "40", "--batch-size", "4", "--workers", "0", "--project", str(tmp_path / "runs"),
            "--noplots", "--noautoanchor"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    last = tmp_path / "runs" / "exp" / "weights" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "no checkpoint was written"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "--resume" in err.decode()
    ckpt = torch.load(last, weights_only=True)
    stopped_at = ckpt["epoch"]
    assert 0 <= stopped_at < 39 and ckpt["optimizer"] is not None

    # resume from the interrupted checkpoint, but only check that it continues from the right epoch: shorten the
    # remaining run by editing the stored epoch count, as a user cannot (upstream does not allow it either)
    ckpt["train_args"]["epochs"] = stopped_at + 2
    torch.save(ckpt, last)
    run([str(REPO / "train.py"), "--resume", str(last)], cwd=tmp_path)
    rows = (tmp_path / "runs" / "exp" / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == list(range(stopped_at + 2))


def test_train_kd_with_pseudo_labels_unlabelled_images_and_resume(trained, tmp_path):
    """train_kd.py end to end: pseudo-label distillation with extra unlabelled images, then Ctrl-C and --resume."""
    teacher = trained / "runs" / "smoke" / "weights" / "best.pt"
    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    for img in sorted((REPO / "data" / "bccd_sample" / "images" / "val").glob("*.jpg"))[:3]:
        (unlabeled / img.name).write_bytes(img.read_bytes())
    args = [str(REPO / "train_kd.py"), "--teacher", str(teacher), "--cfg", "yolov5n.yaml",
            "--data", str(trained / "data" / "tiny.yaml"), "--imgsz", "64", "--epochs", "1", "--batch-size", "4",
            "--workers", "0", "--project", str(tmp_path / "kd"), "--kd-output", "pseudo", "--pseudo-conf", "0.01",
            "--min-teacher-map", "0", "--kd-feature", "at", "--unlabeled", str(unlabeled), "--noplots"]  # fmt: skip
    proc = run(args, cwd=tmp_path)
    run_dir = tmp_path / "kd" / "exp"
    header = (run_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert {"train/box", "train/kd_out", "train/kd_feat"} <= set(header)
    record = (run_dir / "kd.yaml").read_text()
    assert "teacher_metrics" in record and "pseudo" in record
    assert "Label-free distillation on 3 images" in proc.stderr


def test_train_kd_refuses_a_mismatched_teacher_before_training(trained, tmp_path):
    teacher = trained / "runs" / "smoke" / "weights" / "best.pt"
    one_class = tmp_path / "one.yaml"
    one_class.write_text((trained / "data" / "tiny.yaml").read_text().replace("[RBC, WBC, Platelets]", "[cell]"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_kd.py"), "--teacher", str(teacher), "--cfg", "yolov5n.yaml",
         "--data", str(one_class), "--imgsz", "64", "--epochs", "1", "--project", str(tmp_path / "kd")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "class count: teacher 3, student 1" in proc.stderr
    assert not list((tmp_path / "kd").rglob("results.csv"))


def test_val_evaluates_the_split_named_by_task(trained):
    """--task train/val/test picks the data yaml's split (upstream's choices; train checks a model's fit)."""
    from utils.runners.val import ValConfig, run_val

    weights = trained / "runs" / "smoke" / "weights" / "best.pt"
    data = trained / "data" / "tiny.yaml"
    for task, n in [("train", 8), ("val", 4)]:
        cfg = ValConfig(data=str(data), weights=str(weights), imgsz=64, device="cpu", workers=0, task=task,
                        project=str(trained / "val_tasks"), name=task, noplots=True)  # fmt: skip
        result, _ = run_val(cfg)
        assert result.images == n
    with pytest.raises(ValueError, match="test"):
        run_val(ValConfig(data=str(data), weights=str(weights), imgsz=64, device="cpu", task="test"))
