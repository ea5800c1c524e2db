"""The distillation-cost benchmark on tiny sizes: every setting timed in every round, ratios over the budget, and
the table rebuilt from the saved results."""

from __future__ import annotations

import json

from benchmarks import kd_speed


def test_tiny_run_times_every_setting_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(kd_speed, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(kd_speed, "DOC", tmp_path / "benchmarks.md")
    kd_speed.main(["--teacher", "yolov5n", "--student", "yolov5n", "--imgsz", "64", "--batch-size", "2",
                   "--steps", "1", "--rounds", "2", "--warmup", "0", "--device", "cpu"])  # fmt: skip
    (saved,) = (tmp_path / "results").glob("*.json")
    r = json.loads(saved.read_text())
    seconds, ratios = r["seconds_per_step_median"], r["ratio_to_plain_plus_teacher"]
    assert set(seconds) == {"teacher_forward", *(name for name, _, _ in kd_speed.SETTINGS)}
    budget = seconds["plain"] + seconds["teacher_forward"]
    for name, ratio in ratios.items():
        assert abs(ratio - seconds[name] / budget) < 2e-3, name
    assert r["all_within_goal"] == all(v <= kd_speed.GOAL for v in ratios.values())
    table = (tmp_path / "benchmarks.md").read_text()
    assert "## Cost of distillation" in table and "yolov5n / yolov5n, 64 px, batch 2" in table
    assert table.count("| KD bce | ") == 1 and f"({ratios['kd_bce']:.2f}x)" in table
