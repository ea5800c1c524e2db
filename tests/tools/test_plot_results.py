"""tools/plot_results.py on two tiny runs, a plain one and a distilled one: files written, table right."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest

from models import load_model
from tools.plot_results import main as plot_main
from utils.cli import run_main
from utils.torch_utils import count_parameters

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data_writer):
    """A 2-epoch yolov5n run and a 1-epoch distillation run that uses it as the teacher."""
    from train import main as train_main
    from train_kd import main as train_kd_main

    tmp = tmp_path_factory.mktemp("runs")
    data = tiny_data_writer(tmp / "data")
    common = ["--data", str(data), "--imgsz", "64", "--batch-size", "4", "--workers", "0", "--noplots"]
    common += ["--project", str(tmp / "runs"), "--cfg", "yolov5n.yaml"]
    base = train_main([*common, "--epochs", "2", "--name", "base"]).save_dir
    teacher = base / "weights" / "best.pt"
    kd = train_kd_main(
        [*common, "--epochs", "1", "--name", "kd", "--teacher", str(teacher), "--kd-output", "bce"]
    ).save_dir
    return base, kd, teacher


def _column_max(run_dir, column):
    with open(run_dir / "results.csv", newline="") as f:
        return max(float(r[column]) for r in csv.DictReader(f))


def test_plot_tool_writes_the_figure_and_a_right_table(runs, tmp_path, capsys):
    base, kd, teacher = runs
    rows, files = plot_main([str(base), str(kd), "--out", str(tmp_path / "cmp")])
    assert {k: p.name for k, p in files.items()} == {
        "figure": "results_compare.png", "markdown": "comparison.md", "csv": "comparison.csv",
    }  # fmt: skip
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.values())
    by_run = {r.run: r for r in rows}
    assert set(by_run) == {"base", "kd"}
    for run_dir, epochs in ((base, 2), (kd, 1)):
        r = by_run[run_dir.name]
        assert r.epochs == epochs
        assert r.best_map50 == pytest.approx(_column_max(run_dir, "metrics/mAP_0.5"))
        assert r.best_map == pytest.approx(_column_max(run_dir, "metrics/mAP_0.5:0.95"))
        assert r.params == count_parameters(load_model(run_dir / "weights" / "best.pt"))
        assert r.gflops is not None and 3.0 < r.gflops < 6.0  # yolov5n at 640 px is about 4 GFLOPs
    assert by_run["base"].teacher == "" and by_run["kd"].teacher == str(teacher)
    printed = capsys.readouterr().out
    assert "best mAP50-95" in printed and str(teacher) in printed
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert table.count("\n") == 4  # header, rule, two runs
    with open(files["csv"], newline="") as f:
        saved = list(csv.DictReader(f))
    assert [s["run"] for s in saved] == ["base", "kd"]
    assert float(saved[1]["best_map50"]) == pytest.approx(by_run["kd"].best_map50)


def test_columns_are_matched_by_name_so_plain_and_kd_runs_mix(runs, tmp_path):
    from utils.plots.training import load_results

    base, kd, _ = runs
    _, base_df = load_results(base)
    _, kd_df = load_results(kd)
    assert "train/kd_out" in kd_df.columns and "train/kd_out" not in base_df.columns
    rows, _ = plot_main([str(kd), str(base), "--out", str(tmp_path / "mixed")])
    assert [r.run for r in rows] == ["kd", "base"]
    assert np.isfinite([r.best_map for r in rows]).all()


def test_run_without_weights_leaves_size_blank_with_a_warning(runs, tmp_path, caplog):
    import shutil

    base, _, _ = runs
    copy = tmp_path / "copy"
    shutil.copytree(base, copy, ignore=shutil.ignore_patterns("*.pt"))
    with caplog.at_level(logging.WARNING):
        rows, _ = plot_main([str(copy), "--out", str(tmp_path / "o")])
    assert rows[0].params is None and "no weights" in caplog.text
    assert rows[0].cells()[4] == "-"


def test_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path, caplog):
    with pytest.raises(SystemExit) as e, caplog.at_level(logging.ERROR):
        run_main(plot_main, [str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "no results.csv" in caplog.text
