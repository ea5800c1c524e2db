"""The prune-then-recover benchmark resumes a killed fine-tuning run, skips finished ones, and combines output
losses in one distilled run (``bce+pseudo``)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import prune_bccd


def _args(tmp_path, teacher, tiny_data, *extra):
    return ["--teacher", str(teacher), "--data", str(tiny_data), "--imgsz", "64", "--epochs", "2", "--batch-size",
            "4", "--workers", "0", "--seeds", "0", "--results", str(tmp_path / "res"), "--runs",
            str(tmp_path / "runs"), "--doc", str(tmp_path / "doc.md"), *extra]  # fmt: skip


def test_killed_distillation_continues_and_combined_losses_are_one_run(tmp_path, teacher, tiny_data, kill_run):
    calls = kill_run("distilled-bce+pseudo_s0")
    args = _args(tmp_path, teacher, tiny_data, "--kd-outputs", "bce+pseudo")
    with pytest.raises(KeyboardInterrupt):
        prune_bccd.main(args)
    folder = tmp_path / "res" / "e2"
    assert (folder / "fine-tuned_s0.json").is_file() and not (folder / "distilled-bce+pseudo_s0.json").exists()
    last = tmp_path / "runs" / "e2" / "distilled-bce+pseudo_s0" / "weights" / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 0

    recorded = (folder / "fine-tuned_s0.json").read_text()
    prune_bccd.main(args)
    assert calls == ["fine-tuned_s0", "distilled-bce+pseudo_s0", str(last)]  # only the killed one, resumed
    assert (folder / "fine-tuned_s0.json").read_text() == recorded
    run = json.loads((folder / "distilled-bce+pseudo_s0.json").read_text())
    assert run["kd_output"] == ["bce", "pseudo"] and run["weights"] == str(last)
    rows = (last.parent.parent / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == [0, 1]  # epoch 0 from the first process, 1 from the second
    assert "pruned + distilled `--kd-output bce pseudo`, 2 ep" in (tmp_path / "doc.md").read_text()


def test_unknown_output_loss_is_a_usage_error(tmp_path, teacher, tiny_data, capsys):
    with pytest.raises(SystemExit) as e:
        prune_bccd.main(_args(tmp_path, teacher, tiny_data, "--kd-outputs", "bce+nope"))
    assert e.value.code == 2 and "nope is not an output loss" in capsys.readouterr().err
