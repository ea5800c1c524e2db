"""The compression pipeline: stages, skipping and resuming, settings, and one tiny end-to-end run."""

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

from tests.conftest import REPO_ROOT as REPO
from tests.conftest import write_tiny_data
from utils.pipeline import PipelineConfig, load_pipeline_config, run_pipeline
from utils.pipeline.report import LABELS
from utils.pipeline.stages import build_stages


def test_settings_file_and_overrides(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("epochs: 3\nimgsz: 96\n")
    cfg = load_pipeline_config(str(f), imgsz=128, device=None)
    assert (cfg.epochs, cfg.imgsz, cfg.device) == (3, 128, "")
    f.write_text("epoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['epoch'\]"):
        load_pipeline_config(str(f))
    with pytest.raises(ValueError, match="prune_ratio"):
        PipelineConfig(prune_ratio=1.5)


def test_interrupted_training_stage_resumes(tmp_path):
    cfg = PipelineConfig()
    last = tmp_path / "teacher" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save({"optimizer": {"state": {}}}, last)  # a run stopped part-way keeps its optimizer state
    stages = {s.name: s for s in build_stages(cfg, tmp_path, lambda: None)}
    assert not stages["teacher"].done()
    assert stages["teacher"].commands[0][1:] == ["train.py", "--resume", str(last)]
    assert "--cfg" in stages["baseline"].commands[0]
    torch.save({"optimizer": None}, last)  # finished
    assert build_stages(cfg, tmp_path, lambda: None)[0].done()


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_and_rerun_skips(tmp_path, capsys):
    data = write_tiny_data(tmp_path / "data", n_train=8, n_val=4)
    cfg = PipelineConfig(
        data=str(data), teacher="models/yolov5n.yaml", imgsz=64, epochs=1, kd_epochs=1, recover_epochs=1,
        batch_size=4, workers=0, device="cpu", project=str(tmp_path / "runs"), name="p", latency_runs=2,
    )  # fmt: skip
    report = run_pipeline(cfg)
    out = capsys.readouterr().out
    assert "run by hand: python train.py --cfg models/yolov5n.yaml" in out
    assert "run by hand: python train_kd.py --cfg models/yolov5n.yaml --teacher" in out
    text = report.read_text()
    labels = ("| teacher |", "| student, trained alone |", "| student, distilled |",
              "| pruned teacher, recovered by distillation |")  # fmt: skip
    for label in labels:
        assert label in text, label
    assert (report.parent / "compare.png").is_file()
    assert (report.parent / "export" / "model.onnx").is_file()
    rows = {line.split("|")[1].strip(): line.split("|") for line in text.splitlines() if line.startswith(labels)}
    params = {name: int(cells[5].strip().replace(",", "")) for name, cells in rows.items()}
    assert params["pruned teacher, recovered by distillation"] < params["teacher"] / 2
    smallest = min(params, key=params.get)
    assert smallest == "pruned teacher, recovered by distillation"
    assert rows[smallest][-2].strip().endswith(" ms"), text  # only the exported (smallest) model has an ONNX time
    for name in ("teacher", "baseline", "distilled", "recovered"):  # training evaluated best.pt: no second pass
        metrics = json.loads((report.parent / name / "metrics.json").read_text())
        assert metrics["weights"].endswith(f"{name}/weights/best.pt") and 0 <= metrics["mAP50-95"] <= 1
        assert f"{metrics['mAP50-95']:.3f}" in rows[LABELS[name]][4]
    assert not (report.parent / "eval").exists()
    assert "run by hand: python val.py" not in out

    run_pipeline(cfg)  # everything exists: only the report is written again
    out = capsys.readouterr().out
    assert "run by hand" not in out
    assert out.count("already done") >= 4


# ------------------------------------------------------------------------------------------------ faults
def test_a_run_made_with_other_settings_is_not_continued(tmp_path):
    from utils.files import save_yaml
    from utils.pipeline.run import check_same_settings

    saved = tmp_path / "exp" / "pipeline.yaml"
    saved.parent.mkdir()
    save_yaml(saved, PipelineConfig(epochs=1, prune_ratio=0.5).to_dict())
    check_same_settings(PipelineConfig(epochs=1, prune_ratio=0.5, device="cpu", workers=0), saved)  # may change
    with pytest.raises(ValueError) as e:
        check_same_settings(PipelineConfig(epochs=2, prune_ratio=0.3), saved)
    msg = str(e.value)
    assert "epochs: 1 -> 2" in msg and "prune_ratio: 0.5 -> 0.3" in msg and "--name exp2" in msg


def test_a_failed_stage_is_one_error_naming_it():
    from utils.pipeline.stages import Stage, StageFailed, run_stages

    stage = Stage("teacher", "train", Path("/nonexistent/out"), [[sys.executable, "-c", "raise SystemExit(3)"]])
    with pytest.raises(StageFailed, match=r"stage 'teacher' failed \(exit status 3"):
        run_stages([stage])
    assert issubclass(StageFailed, ValueError)  # programs turn it into one line and exit status 2


_PARENT = """
import sys, time
from utils.pipeline.stages import run_child
run_child([sys.executable, "-c", "import os, time; print(os.getpid(), os.environ['RESUME_HINT'], flush=True); "
           "time.sleep(120)"])
"""


def _child_of(parent: subprocess.Popen) -> tuple[int, str]:
    line = parent.stdout.readline().split(maxsplit=1)
    return int(line[0]), line[1].strip()


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True  # exited, not yet reaped
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_training_child_stops_with_the_pipeline(how):
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pid, hint = _child_of(parent)
        assert hint == "run the same compress.py command again"  # the child's "Continue:" line says so
        parent.send_signal(how)
        parent.wait(timeout=30)
        assert _gone(pid), f"the child {pid} kept running after the pipeline got {how.name}"
    finally:
        parent.kill()
