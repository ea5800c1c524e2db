"""Running the whole pipeline: stages in order, then the report from whatever models exist."""

from __future__ import annotations

import shutil
from pathlib import Path

from utils.files import load_yaml, save_yaml
from utils.pipeline.config import PipelineConfig
from utils.pipeline.report import Row, measure, plot_comparison, write_report
from utils.pipeline.stages import (
    MODEL_NAMES,
    REPO,
    Models,
    Stage,
    build_stages,
    given_teacher,
    read_metrics,
    run_stages,
)
from utils.torch_utils import count_parameters


def smallest(models: Models) -> str | None:
    """The name of the model with the fewest parameters; of several equally small, the most accurate (mAP50-95 of
    its metrics file; one without metrics counts as the least accurate)."""
    from models import load_model

    def key(name: str) -> tuple[int, float]:
        metrics = read_metrics(models.run, name)
        return count_parameters(load_model(models.weights(name))), -(metrics["mAP50-95"] if metrics else -1.0)

    found = [n for n in MODEL_NAMES if models.weights(n).is_file()]
    return min(found, key=key, default=None)


#: settings that do not change what a stage makes (where it runs, how fast, how long the report's timings are)
FREE_TO_CHANGE = ("device", "workers", "latency_runs", "project", "name")


def check_same_settings(cfg: PipelineConfig, saved: Path) -> None:
    """Refuse to continue a run made with other settings: its finished stages would be reported as if made with
    these. ValueError names each setting that changed, with both values, and says how to start a new run."""
    if not saved.is_file():
        return
    before = load_yaml(saved, "pipeline settings")
    changed = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in cfg.to_dict().items()
               if k not in FREE_TO_CHANGE and k in before and before[k] != v]  # fmt: skip
    if changed:
        raise ValueError(
            f"{saved.parent} was made with other settings ({'; '.join(changed)}); its models are not what these "
            f"settings ask for: start a new run with --name (e.g. --name {saved.parent.name}2), or delete the folder"
        )


def check_teacher(cfg: PipelineConfig) -> None:
    """A teacher given as a checkpoint must exist and know the data's classes; ValueError names both otherwise."""
    teacher = given_teacher(cfg)
    if teacher is None:
        return
    from models import load_model
    from utils.data.config import load_data_config
    from utils.distill.teacher import has_class_names

    if not teacher.is_file():
        raise ValueError(f"pipeline setting 'teacher': {teacher}: file not found (a checkpoint, or a model yaml to "
                         "train one)")  # fmt: skip
    names, data_names = list(load_model(teacher).names), list(load_data_config(cfg.data).names)
    if names != data_names and (has_class_names(names) or len(names) != len(data_names)):
        raise ValueError(
            f"teacher {teacher} knows the classes {names}, --data {cfg.data} has {data_names}: give a teacher trained "
            "on this data, or a model yaml (e.g. teacher: models/yolov5s.yaml in the settings) to train one first"
        )


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage not done yet in ``project/name`` and return the path of ``report.md``."""
    # the stages run from the repository root: paths given relative to elsewhere are made absolute
    for key in ("data", "hyp", "teacher", "student"):
        value = Path(getattr(cfg, key))
        if not value.is_absolute() and value.exists() and not (REPO / value).exists():
            setattr(cfg, key, str(value.resolve()))
    check_teacher(cfg)
    run = (Path(cfg.project) / cfg.name).resolve()
    run.mkdir(parents=True, exist_ok=True)
    check_same_settings(cfg, run / "pipeline.yaml")
    save_yaml(run / "pipeline.yaml", cfg.to_dict())
    models = Models(run, given_teacher(cfg))

    def report() -> None:
        rows = [Row(n, models.weights(n)) for n in MODEL_NAMES if models.weights(n).is_file()]
        exported = smallest(models) if models.onnx.is_file() else None
        measure(rows, models, cfg.imgsz, cfg.latency_runs, cfg.device, exported)
        plot = plot_comparison(rows, run / "compare.png")
        trained = "teacher, baseline" if models.teacher is None else "baseline; the teacher was given"
        facts = {
            "data": cfg.data,
            "image size": f"{cfg.imgsz} px",
            "epochs": f"{cfg.epochs} ({trained}), {cfg.kd_epochs} (distilled), {cfg.recover_epochs} "
            f"(recovery after pruning to {cfg.prune_params:.0%} of the parameters, {cfg.prune_importance} "
            f"{'global' if cfg.prune_global else 'per-layer'})",
            "distillation": f"output {cfg.kd_output} (recovery: {cfg.recover_kd_output}), feature {cfg.kd_feature}",
            "settings": str(run / "pipeline.yaml"),
        }
        write_report(rows, run / "report.md", facts, plot)

    def prepare_export(stage: Stage) -> None:
        name = smallest(models)
        if name is None:
            raise FileNotFoundError(f"no trained model under {run} to export")
        target = run / "export" / "model.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(models.weights(name), target)
        print(f"  exporting {models.weights(name)} ({name}: the smallest, and of equally small the most accurate)",
              flush=True)  # fmt: skip

    stages = build_stages(cfg, run, report)
    run_stages(stages, before={"export": prepare_export})
    print(f"report: {run / 'report.md'}", flush=True)
    return run / "report.md"
