"""Network slimming (Liu et al. 2017): an L1 penalty on BatchNorm scales during training.

Channels whose BN scale is driven towards zero carry little signal, so ``tools/prunmodel.py --importance bn``
removes them with little loss afterwards. The penalty is an add-on of the training engine
(:class:`~utils.training.addons.AddOn`), so it needs no change to the training loop and combines with
distillation.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from utils.training.addons import AddOn, ModelSetup, StepBatch

LOGGER = logging.getLogger(__name__)
SMALL_SCALE = 0.01  # BN scales below this are counted at the end of each epoch (candidates for pruning)


def bn_scales(model: nn.Module) -> list[torch.Tensor]:
    """The scale (``weight``, shape ``[C]``) of every BatchNorm2d of ``model``."""
    return [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight is not None]


class BNSparsity(AddOn):
    """Adds ``sparsity = strength * sum(|gamma|)`` over every BN scale of the model to each training step.

    The term is added to the step's loss as it is, not per image: the gradient on each scale is
    ``strength * sign(gamma)`` per step whatever the batch size, the subgradient step of network slimming
    (results.csv shows it divided by the batch size, like every term). Typical strengths: 1e-4 to 1e-3.
    """

    kind = "sparsity"
    loss_names = ("sparsity",)

    def __init__(self, strength: float):
        if not (isinstance(strength, int | float) and math.isfinite(strength) and strength > 0):
            raise ValueError(f"--sparsity must be a finite number > 0, got {strength}")
        self.strength = float(strength)
        self.scales: list[torch.Tensor] = []

    def settings(self) -> dict:
        return {"strength": self.strength}

    @classmethod
    def from_settings(cls, settings: dict) -> BNSparsity:
        return cls(settings.get("strength", 0.0))

    def setup(self, s: ModelSetup) -> None:
        self.scales = bn_scales(s.model)
        if not self.scales:
            raise ValueError("--sparsity: the model has no BatchNorm layers (is it fused?)")

    def losses(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        return {"sparsity": self.strength * torch.stack([s.abs().sum() for s in self.scales]).sum()}

    def end_epoch(self, epoch: int) -> None:
        with torch.no_grad():
            gammas = torch.cat([s.detach().abs().flatten() for s in self.scales])
        LOGGER.info("Sparsity: %.1f%% of %d BN scales are below %g", 100 * float((gammas < SMALL_SCALE).float().mean()),
                    gammas.numel(), SMALL_SCALE)  # fmt: skip


def add_sparsity_args(p):
    """The ``--sparsity`` flag of ``train.py`` and ``train_kd.py``."""
    p.add_argument(
        "--sparsity", type=float, default=0.0, help="L1 penalty on BatchNorm scales (network slimming), e.g. 1e-4"
    )
    return p


def sparsity_addons(strength: float) -> list[BNSparsity]:
    """``[BNSparsity(strength)]``, or ``[]`` for ``--sparsity 0`` (off)."""
    return [BNSparsity(strength)] if strength else []
