"""Settings of the compression pipeline: one yaml (``data/pipeline.yaml``), every key optional."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from utils.cli import PlainConfig, check_flags, flag, flag_name
from utils.distill.config import DEFAULT_OUTPUT, FEATURE_KINDS, RECOVER_OUTPUT, output_kinds
from utils.files import load_yaml
from utils.pruning.config import IMPORTANCE_KINDS

# The settings compress.py also takes as flags; the other flag(...) fields are yaml keys whose range is declared
# the same way, and their errors name the key.
COMMAND_LINE = ("data", "teacher", "epochs", "imgsz", "device", "project", "name")


@dataclass
class PipelineConfig(PlainConfig):
    """What the pipeline trains and how; the defaults finish on the bundled sample in minutes on a CPU.

    Scale up for real data by raising ``epochs``/``kd_epochs``/``recover_epochs`` and ``imgsz`` (and bigger
    models), e.g. ``teacher: models/yolov5m.yaml, student: models/yolov5s.yaml, epochs: 100, imgsz: 640``.
    """

    data: str = flag("data/bccd.yaml", help="dataset yaml")
    teacher: str = flag(
        "weights/yolov5s-bccd.pt", help="a trained checkpoint (used as it is), or a model yaml to train first"
    )
    student: str = "models/yolov5n.yaml"  # model yaml of the baseline and the distilled student
    imgsz: int = flag(160, low=1, aliases=("--img",), help="image size, px")
    epochs: int = flag(
        25, low=1, help="epochs of the baseline student (and of a teacher to train); the flag sets kd_epochs too"
    )
    kd_epochs: int = flag(25, low=1, help="epochs of the distilled student")
    recover_epochs: int = flag(
        20, low=1, help="epochs of the pruned teacher, fine-tuned by distillation from the unpruned one"
    )
    batch_size: int = flag(16, low=1, help="images per batch")
    noval: bool = True  # validate the trained models only after their last epoch (train.py --noval): faster
    hyp: str = "data/hyps/hyp.scratch-low.yaml"
    kd_output: list[str] = field(default_factory=lambda: list(DEFAULT_OUTPUT))  # see train_kd.py --kd-output
    # the pruned model's recovery distils from a teacher it can match: pseudo labels would repeat the teacher's
    # mistakes (BCCD, 50 epochs, 3 seeds: bce 0.534, fine-tuning alone 0.528, pseudo 0.522; docs/benchmarks.md)
    recover_kd_output: list[str] = field(default_factory=lambda: list(RECOVER_OUTPUT))
    kd_feature: str = flag("none", choices=FEATURE_KINDS, help="see train_kd.py --kd-feature")
    prune_params: float = flag(
        0.3, low=0, high=1, low_open=True, high_open=True,
        help="fraction of the teacher's parameters the pruned model keeps at most (tools/prunmodel.py --target-params)",
    )  # fmt: skip
    prune_importance: str = flag("lamp", choices=IMPORTANCE_KINDS, help="channel ranking (--importance)")
    prune_global: bool = True  # rank channels across layers (--global) instead of the same share per layer
    device: str = flag("", help="cuda device, e.g. 0, or cpu ('' = GPU 0 if there is one, else CPU)")
    workers: int = 2
    seed: int = 0
    project: str = flag("runs/compress", help="save to project/name")
    name: str = flag("exp", help="save to project/name")
    int8: bool = True  # quantize the exported model to INT8 for the CPU and evaluate it (export.py --int8)
    latency_runs: int = flag(20, low=1, help="timed forward passes (batch 1) per model for the report")

    def __post_init__(self) -> None:
        check_flags(self, setting_name)
        self.kd_output = output_kinds(self.kd_output, "pipeline setting 'kd_output'")
        self.recover_kd_output = output_kinds(self.recover_kd_output, "pipeline setting 'recover_kd_output'")


def setting_name(key: str) -> str:
    """How an error names the setting ``key``: as the flag of ``compress.py`` that sets it, else as the yaml key."""
    return flag_name(key) if key in COMMAND_LINE else f"pipeline setting {key!r}"


def load_pipeline_config(path: str | None, **overrides) -> PipelineConfig:
    """The settings of ``path`` (None: only the defaults) with non-None ``overrides`` (command-line flags) on top."""
    raw = load_yaml(path, "pipeline settings") if path else {}
    known = {f.name for f in fields(PipelineConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return PipelineConfig.from_dict(raw)
