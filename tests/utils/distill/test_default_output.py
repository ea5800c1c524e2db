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


def test_the_shipped_settings_and_hyp_name_the_same_default():
    from utils.files import load_yaml

    assert load_yaml(REPO / "data" / "pipeline.yaml")["kd_output"] in (" ".join(DEFAULT_OUTPUT), list(DEFAULT_OUTPUT))
    hyp_lines = (REPO / "data" / "hyps" / "hyp.kd.yaml").read_text().splitlines()
    said_default = [line.split(":")[0] for line in hyp_lines if "the default" in line and line.startswith("kd_")]
    assert said_default == [f"kd_{kind}" for kind in DEFAULT_OUTPUT]
