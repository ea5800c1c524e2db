"""The compression pipeline: teacher, baseline, distilled student, pruned and recovered teacher, report."""

from utils.pipeline.config import PipelineConfig, load_pipeline_config
from utils.pipeline.run import run_pipeline

__all__ = ["PipelineConfig", "load_pipeline_config", "run_pipeline"]
