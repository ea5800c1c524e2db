"""The convergence benchmark resumes: a killed run is continued with --resume, a finished one is never re-run, and
the report is rebuilt from what has finished, naming what is missing."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import kd_bccd


def _args(tmp_path, teacher, tiny_data, *extra):
    return ["--teacher", str(teacher), "--data", str(tiny_data), "--imgsz", "64", "--epochs", "2", "--batch-size",
            "4", "--workers", "0", "--results", str(tmp_path / "res"), "--runs", str(tmp_path / "runs"), "--doc",
            str(tmp_path / "doc.md"), *extra]  # fmt: skip


def test_killed_run_continues_and_finished_runs_are_skipped(tmp_path, teacher, tiny_data, kill_run):
    calls = kill_run("bce_s0")
    args = _args(tmp_path, teacher, tiny_data, "--seeds", "0", "--settings", "alone", "bce")
    with pytest.raises(KeyboardInterrupt):
        kd_bccd.main(args)
    folder = tmp_path / "res" / "e2_64_teacher"
    assert (folder / "alone_s0.json").is_file() and not (folder / "bce_s0.json").exists()
    last = tmp_path / "runs" / "e2_64_teacher" / "bce_s0" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 0

    recorded = (folder / "alone_s0.json").read_text()
    summary = kd_bccd.main(args)
    assert calls == ["alone_s0", "bce_s0", str(last)]  # only the killed one again, resumed
    assert (folder / "alone_s0.json").read_text() == recorded
    rows = (last.parent.parent / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == [0, 1]  # epoch 0 from the first process, 1 from the second
    assert set(summary["students"]) == {"alone", "bce"} and summary["missing"] == []
    assert json.loads((folder / "bce_s0.json").read_text())["kd_output"] == ["bce"]

    kd_bccd.main(args)  # everything recorded: nothing trains
    assert len(calls) == 3


def test_report_names_what_is_missing(tmp_path, teacher, tiny_data):
    folder = tmp_path / "res" / "e2_64_teacher"
    folder.mkdir(parents=True)
    for setting, seed, m in [("alone", 0, 0.40), ("alone", 1, 0.44), ("bce", 0, 0.47)]:
        record = {"run": f"{setting}_s{seed}", "setting": setting, "seed": seed, "epochs": 2, "imgsz": 64,
                  "mAP50": m + 0.3, "mAP50-95": m, "seconds_per_epoch": 1.0, "teacher_warning": "",
                  "commit": "abc"}  # fmt: skip
        (folder / f"{setting}_s{seed}.json").write_text(json.dumps(record))
    summary = kd_bccd.main(_args(tmp_path, teacher, tiny_data, "--seeds", "0", "1", "--settings", "alone", "bce",
                                 "--report-only"))  # fmt: skip
    assert summary["students"]["alone"]["mean"] == pytest.approx(0.42)
    assert summary["students"]["alone"]["spread"] == pytest.approx(0.04)
    assert summary["missing"] == ["bce_s1"]
    doc = (tmp_path / "doc.md").read_text()
    assert "| `--kd-output bce` | 0.470 (s0) | 0.470 | 0.0 pt | +5.0 pt |" in doc
    assert "Not finished yet: bce_s1." in doc


def test_the_report_names_the_measuring_command_not_the_report_or_this_machines_folders():
    from benchmarks.kd_bccd import measuring_command

    args = ["--report-only", "--results", "/work/x/results", "--runs=/tmp/runs", "--seeds", "0", "1", "--workers", "1"]
    assert measuring_command(args) == "python -m benchmarks.kd_bccd --seeds 0 1 --workers 1"
