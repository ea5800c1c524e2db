"""The compression pipeline: stages, skipping and resuming, settings, and one tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch

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
