"""The default output loss is declared once and every place that states it agrees."""

from __future__ import annotations

import re
from pathlib import Path

import train_kd
from utils.distill.config import DEFAULT_OUTPUT, KDConfig
from utils.pipeline.config import PipelineConfig

REPO = Path(__file__).resolve().parents[3]


def test_train_kd_the_pipeline_and_the_readme_share_the_default(tmp_path):
    assert DEFAULT_OUTPUT == ("pseudo",)  # chosen from the convergence benchmark (docs/benchmarks.md)
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"")  # the settings check that the file exists, not what is in it
    assert KDConfig(teacher=str(teacher)).kd_output == list(DEFAULT_OUTPUT)
    assert PipelineConfig().kd_output == list(DEFAULT_OUTPUT)
    assert list(train_kd.parse_args(["--teacher", str(teacher)]).kd_output) == list(DEFAULT_OUTPUT)
    marked = re.findall(r"\| `--kd-output ([a-z0-9 ]+)` \(default\)", (REPO / "README.md").read_text())
    assert marked == [" ".join(DEFAULT_OUTPUT)]
