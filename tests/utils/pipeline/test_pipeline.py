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
    with pytest.raises(ValueError, match="prune_params"):
        PipelineConfig(prune_params=1.5)


def test_the_settings_file_holds_the_defaults():
    assert load_pipeline_config(str(REPO / "data" / "pipeline.yaml")) == PipelineConfig()


def test_compress_flags_override_the_settings(monkeypatch):
    import compress

    seen = []
    monkeypatch.setattr(compress, "run_pipeline", seen.append)
    compress.main(["--teacher", "models/yolov5s.yaml", "--epochs", "3", "--imgsz", "96"])
    (cfg,) = seen
    assert (cfg.teacher, cfg.epochs, cfg.kd_epochs, cfg.imgsz) == ("models/yolov5s.yaml", 3, 3, 96)
    assert cfg.recover_epochs == PipelineConfig().recover_epochs and cfg.data == "data/bccd.yaml"


def test_interrupted_training_stage_resumes(tmp_path):
    cfg = PipelineConfig(teacher="models/yolov5s.yaml")
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
    onnx_timed = [name for name, cells in rows.items() if cells[-2].strip().endswith(" ms")]
    assert onnx_timed == [smallest], text  # of the PyTorch models, only the exported one has an ONNX time
    int8 = next(line.split("|") for line in text.splitlines() if line.startswith(f"| {smallest}, INT8 ONNX |"))
    assert int8[2].strip() == f"`{report.parent / 'export' / 'model-int8.onnx'}`"
    assert 0 <= float(int8[4]) <= 1 and int8[-2].strip().endswith(" ms") and int8[7].strip().endswith(" MB")
    assert text.splitlines()[2].startswith("The pruned teacher, recovered by distillation, keeps "), text
    for name in ("teacher", "baseline", "distilled", "recovered"):  # training evaluated best.pt: no second pass
        metrics = json.loads((report.parent / name / "metrics.json").read_text())
        assert metrics["weights"].endswith(f"{name}/weights/best.pt") and 0 <= metrics["mAP50-95"] <= 1
        assert f"{metrics['mAP50-95']:.3f}" in rows[LABELS[name]][4]
    assert sorted(p.name for p in (report.parent / "eval").iterdir()) == ["int8"]  # only the INT8 file is evaluated
    assert out.count("run by hand: python val.py") == 1

    run_pipeline(cfg)  # everything exists: only the report is written again
    out = capsys.readouterr().out
    assert "run by hand" not in out
    assert out.count("already done") >= 4


def test_a_given_teacher_is_evaluated_not_trained(tmp_path):
    cfg = PipelineConfig(teacher="weights/yolov5s-bccd.pt")
    stages = {s.name: s for s in build_stages(cfg, tmp_path, lambda: None)}
    assert "teacher" not in stages
    assert stages["distilled"].commands[0][stages["distilled"].commands[0].index("--teacher") + 1] == cfg.teacher
    assert stages["pruned"].commands[0][stages["pruned"].commands[0].index("--weights") + 1] == cfg.teacher
    planned = stages["evaluate"].plan()
    if Path(REPO / cfg.teacher).is_file():  # the shipped teacher has no metrics in the run yet: it is evaluated
        assert [c[c.index("--name") + 1] for c in planned] == ["teacher"]
    quantize = stages["quantize"].commands[0]
    assert quantize[-3:] == ["--int8", "--data", cfg.data]
    # the quantize stage quantizes the file the export stage wrote; it does not export the model again
    assert quantize[quantize.index("--weights") + 1] == str(tmp_path / "export" / "model.onnx")
    assert "quantize" not in {s.name for s in build_stages(PipelineConfig(int8=False), tmp_path, lambda: None)}


def test_a_given_teacher_must_know_the_data_classes(tmp_path):
    from utils.pipeline.run import check_teacher

    data = write_tiny_data(tmp_path / "data", n_train=1, n_val=1)
    check_teacher(PipelineConfig(data=str(data), teacher="models/yolov5s.yaml"))  # trained here: nothing to check
    with pytest.raises(ValueError, match=r"pipeline setting 'teacher': .*nope\.pt: file not found"):
        check_teacher(PipelineConfig(data=str(data), teacher=str(tmp_path / "nope.pt")))
    other = tmp_path / "other.yaml"
    other.write_text(data.read_text().replace("names: [RBC, WBC, Platelets]", "names: [a, b, c]"))
    shipped = REPO / "weights" / "yolov5s-bccd.pt"
    with pytest.raises(ValueError, match=r"knows the classes \['RBC', 'WBC', 'Platelets'\], --data .*other\.yaml has "
                       r"\['a', 'b', 'c'\]: give a teacher trained on this data"):  # fmt: skip
        run_pipeline(PipelineConfig(data=str(other), teacher=str(shipped), project=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists()  # refused before anything was made


def test_the_smallest_model_ties_go_to_the_more_accurate(tmp_path, monkeypatch):
    from utils.pipeline import run as run_module
    from utils.pipeline.run import smallest
    from utils.pipeline.stages import Models

    models = Models(tmp_path)
    sizes = {"teacher": 7, "baseline": 2, "distilled": 2, "recovered": 2}
    scores = {"teacher": 0.5, "baseline": 0.2, "distilled": 0.3, "recovered": 0.45}
    for name in sizes:
        models.weights(name).parent.mkdir(parents=True)
        models.weights(name).write_text(name)
        (tmp_path / name / "metrics.json").write_text(json.dumps({"mAP50-95": scores[name]}))
    monkeypatch.setattr("models.load_model", lambda p: Path(p).read_text())
    monkeypatch.setattr(run_module, "count_parameters", lambda name: sizes[name])
    assert smallest(models) == "recovered"
    scores["recovered"] = 0.1
    (tmp_path / "recovered" / "metrics.json").write_text(json.dumps({"mAP50-95": 0.1}))
    assert smallest(models) == "distilled"
    (tmp_path / "distilled" / "metrics.json").unlink()  # no metrics: the least accurate
    assert smallest(models) == "baseline"
    sizes["teacher"] = 1
    assert smallest(models) == "teacher"


def test_the_report_leads_with_what_the_user_acts_on():
    from utils.pipeline.report import Row, headline

    rows = [
        Row("teacher", Path("t.pt"), map=0.50, params=7_000_000, latency_ms=30.0),
        Row("baseline", Path("b.pt"), map=0.30, params=1_750_000, latency_ms=10.0),
        Row("distilled", Path("d.pt"), map=0.35, params=1_750_000, latency_ms=10.0),
        Row("recovered", Path("r.pt"), map=0.48, params=1_750_000, latency_ms=12.0, onnx_ms=8.0),
        Row("int8", Path("r-int8.onnx"), map=0.47, params=1_750_000, onnx_ms=4.0, mb=2.0),
    ]
    assert headline(rows) == [
        "The pruned teacher, recovered by distillation, keeps 96% of the teacher's mAP50-95 (0.480 vs 0.500) at "
        "25% of its parameters and runs 2.5x faster here.",
        "Distillation gained the student 5.0 points of mAP50-95 over training it alone (0.350 vs 0.300).",
        "INT8 runs the exported model 2.0x faster than float ONNX in a 2.0 MB file, mAP50-95 0.470 vs 0.480.",
    ]
    rows[3].latency_ms, rows[4].onnx_ms = 40.0, 16.0
    assert headline(rows)[0].endswith("runs 1.3x slower here.") and " 2.0x slower than float ONNX" in headline(rows)[2]
    rows[2].map = 0.28
    assert headline(rows[:3]) == [
        "Distillation lost the student 2.0 points of mAP50-95 over training it alone (0.280 vs 0.300)."
    ]


def test_alternating_timings_run_every_call_each_round():
    from utils.pipeline.report import alternating_ms

    order = []
    ms = alternating_ms({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, runs=3, warmup=1)
    assert order == ["a", "b"] * 4 and set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())


# ------------------------------------------------------------------------------------------------ faults
def test_a_run_made_with_other_settings_is_not_continued(tmp_path):
    from utils.files import save_yaml
    from utils.pipeline.run import check_same_settings

    saved = tmp_path / "exp" / "pipeline.yaml"
    saved.parent.mkdir()
    save_yaml(saved, PipelineConfig(epochs=1, prune_params=0.5).to_dict())
    check_same_settings(PipelineConfig(epochs=1, prune_params=0.5, device="cpu", workers=0), saved)  # may change
    with pytest.raises(ValueError) as e:
        check_same_settings(PipelineConfig(epochs=2, prune_params=0.3), saved)
    msg = str(e.value)
    assert "epochs: 1 -> 2" in msg and "prune_params: 0.5 -> 0.3" in msg and "--name exp2" in msg


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


def _kd_output_of(stage) -> list[str]:
    """The --kd-output values of the stage's training command."""
    cmd = stage.commands[-1]
    start = cmd.index("--kd-output") + 1
    end = next(i for i in range(start, len(cmd)) if cmd[i].startswith("--"))
    return cmd[start:end]


def test_distillation_and_recovery_use_their_own_output_losses(tmp_path):
    stages = {s.name: s for s in build_stages(PipelineConfig(teacher=str(tmp_path / "t.pt")), tmp_path, lambda: None)}
    assert _kd_output_of(stages["distilled"]) == ["pseudo"]  # train_kd.py's default
    assert _kd_output_of(stages["recovered"]) == ["bce"]  # a teacher the pruned model can match
    cfg = PipelineConfig(teacher=str(tmp_path / "t.pt"), kd_output="l2", recover_kd_output=["bce", "pseudo"])
    stages = {s.name: s for s in build_stages(cfg, tmp_path, lambda: None)}
    assert _kd_output_of(stages["distilled"]) == ["l2"]
    assert _kd_output_of(stages["recovered"]) == ["bce", "pseudo"]
    with pytest.raises(ValueError, match="recover_kd_output"):
        PipelineConfig(recover_kd_output="soft")
