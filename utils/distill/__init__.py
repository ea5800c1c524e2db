"""Knowledge distillation losses: output (head response) distillation and feature distillation."""

from utils.distill.feature_losses import (
    FEATURE_LOSSES,
    NEEDS_ADAPTER,
    Adapter,
    attention_loss,
    attention_map,
    cwd_loss,
    fitnet_loss,
)
from utils.distill.output_losses import OUTPUT_LOSSES, bce_output_loss, kl_output_loss, l2_output_loss

__all__ = [
    "FEATURE_LOSSES",
    "NEEDS_ADAPTER",
    "OUTPUT_LOSSES",
    "Adapter",
    "attention_loss",
    "attention_map",
    "bce_output_loss",
    "cwd_loss",
    "fitnet_loss",
    "kl_output_loss",
    "l2_output_loss",
]
