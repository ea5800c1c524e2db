"""Running the whole pipeline: stages in order, then the report from whatever models exist."""

from __future__ import annotations

import shutil
from pathlib import Path

from utils.files import load_yaml, save_yaml
from utils.pipeline.config import PipelineConfig
from utils.pipeline.report import Row, measure, plot_comparison, write_report
from utils.pipeline.stages import MODEL_NAMES, REPO, Models, Stage, build_stages, run_stages
from utils.torch_utils import count_parameters


def _smallest(models: Models) -> Path | None:
    """The trained model with the fewest parameters."""
    from models import load_model

    found = [models.weights(n) for n in MODEL_NAMES if models.weights(n).is_file()]
    return min(found, key=lambda p: count_parameters(load_model(p)), default=None)


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


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage not done yet in ``project/name`` and return the path of ``report.md``."""
    # the stages run from the repository root: paths given relative to elsewhere are made absolute
    for key in ("data", "hyp", "teacher", "student"):
        value = Path(getattr(cfg, key))
        if not value.is_absolute() and value.exists() and not (REPO / value).exists():
            setattr(cfg, key, str(value.resolve()))
    run = (Path(cfg.project) / cfg.name).resolve()
    run.mkdir(parents=True, exist_ok=True)
    check_same_settings(cfg, run / "pipeline.yaml")
    save_yaml(run / "pipeline.yaml", cfg.to_dict())
    models = Models(run)

    def report() -> None:
        rows = [Row(n, models.weights(n)) for n in MODEL_NAMES if models.weights(n).is_file()]
        measure(rows, run, cfg.imgsz, cfg.latency_runs, cfg.device, run / "export" / "model.onnx")
        plot = plot_comparison(rows, run / "compare.png")
        facts = {
            "data": cfg.data,
            "image size": f"{cfg.imgsz} px",
            "epochs": f"{cfg.epochs} (teacher, baseline), {cfg.kd_epochs} (distilled), {cfg.recover_epochs} "
            f"(recovery after pruning {cfg.prune_ratio:.0%} of the channels)",
            "distillation": f"output {cfg.kd_output}, feature {cfg.kd_feature}",
            "settings": str(run / "pipeline.yaml"),
        }
        write_report(rows, run / "report.md", facts, plot)

    def prepare_export(stage: Stage) -> None:
        smallest = _smallest(models)
        if smallest is None:
            raise FileNotFoundError(f"no trained model under {run} to export")
        target = run / "export" / "model.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(smallest, target)
        print(f"  exporting {smallest}", flush=True)

    stages = build_stages(cfg, run, report)
    run_stages(stages, before={"export": prepare_export})
    print(f"report: {run / 'report.md'}", flush=True)
    return run / "report.md"
