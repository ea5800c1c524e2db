"""Settings of the compression pipeline: one yaml (``data/pipeline.yaml``), every key optional."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from utils.cli import PlainConfig
from utils.distill.config import DEFAULT_OUTPUT, FEATURE_KINDS, output_kinds
from utils.files import load_yaml


@dataclass
class PipelineConfig(PlainConfig):
    """What the pipeline trains and how; the defaults finish on the bundled sample in minutes on a CPU.

    Scale up for real data by raising ``epochs``/``kd_epochs``/``recover_epochs`` and ``imgsz`` (and bigger
    models), e.g. ``teacher: models/yolov5m.yaml, student: models/yolov5s.yaml, epochs: 100, imgsz: 640``.
    """

    data: str = "data/bccd_sample.yaml"
    teacher: str = "models/yolov5s.yaml"  # model yaml of the teacher
    student: str = "models/yolov5n.yaml"  # model yaml of the baseline and the distilled student
    imgsz: int = 160
    epochs: int = 20  # teacher and baseline student
    kd_epochs: int = 20  # distilled student
    recover_epochs: int = 10  # pruned teacher, fine-tuned by distillation from the unpruned one
    batch_size: int = 16
    hyp: str = "data/hyps/hyp.scratch-low.yaml"
    kd_output: list[str] = field(default_factory=lambda: list(DEFAULT_OUTPUT))  # see train_kd.py --kd-output
    kd_feature: str = "none"  # see train_kd.py --kd-feature
    prune_ratio: float = 0.5  # fraction of channels removed from the teacher (tools/prunmodel.py --ratio)
    device: str = ""  # '' = GPU 0 if there is one, else CPU
    workers: int = 2
    seed: int = 0
    project: str = "runs/compress"
    name: str = "exp"
    latency_runs: int = 20  # timed forward passes (batch 1) per model for the report

    def __post_init__(self) -> None:
        for key in ("imgsz", "epochs", "kd_epochs", "recover_epochs", "batch_size", "latency_runs"):
            if getattr(self, key) < 1:
                raise ValueError(f"pipeline setting {key!r} must be at least 1, got {getattr(self, key)}")
        if not 0 < self.prune_ratio < 1:
            raise ValueError(f"pipeline setting 'prune_ratio' must be in (0, 1), got {self.prune_ratio}")
        self.kd_output = output_kinds(self.kd_output, "pipeline setting 'kd_output'")
        if self.kd_feature not in FEATURE_KINDS:
            raise ValueError(f"pipeline setting 'kd_feature' {self.kd_feature!r} is not one of {FEATURE_KINDS}")


def load_pipeline_config(path: str | None, **overrides) -> PipelineConfig:
    """The settings of ``path`` (None: only the defaults) with non-None ``overrides`` (command-line flags) on top."""
    raw = load_yaml(path, "pipeline settings") if path else {}
    known = {f.name for f in fields(PipelineConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return PipelineConfig.from_dict(raw)
