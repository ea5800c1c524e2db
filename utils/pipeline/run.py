"""Running the whole pipeline: stages in order, then the report from whatever models exist."""

from __future__ import annotations

import shutil
from pathlib import Path

from utils.files import save_yaml
from utils.pipeline.config import PipelineConfig
from utils.pipeline.report import Row, measure, plot_comparison, write_report
from utils.pipeline.stages import MODEL_NAMES, REPO, Models, Stage, build_stages, run_stages
from utils.torch_utils import count_parameters


def _smallest(models: Models) -> Path | None:
    """The trained model with the fewest parameters."""
    from models import load_model

    found = [models.weights(n) for n in MODEL_NAMES if models.weights(n).is_file()]
    return min(found, key=lambda p: count_parameters(load_model(p)), default=None)


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage not done yet in ``project/name`` and return the path of ``report.md``."""
    # the stages run from the repository root: paths given relative to elsewhere are made absolute
    for key in ("data", "hyp", "teacher", "student"):
        value = Path(getattr(cfg, key))
        if not value.is_absolute() and value.exists() and not (REPO / value).exists():
            setattr(cfg, key, str(value.resolve()))
    run = (Path(cfg.project) / cfg.name).resolve()
    run.mkdir(parents=True, exist_ok=True)
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
