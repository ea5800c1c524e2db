"""Network slimming (Liu et al. 2017): an L1 penalty on BatchNorm scales during training.

Channels whose BN scale is driven towards zero carry little signal, so ``tools/prunmodel.py --importance bn``
removes them with little loss afterwards. The penalty is a :class:`~utils.training.plugin.TrainingPlugin` term,
so it needs no change to the training loop.
"""

from __future__ import annotations

import torch
from torch import nn

from utils.training.plugin import TrainingPlugin


def bn_scales(model: nn.Module) -> list[torch.Tensor]:
    """The scale (``weight``, shape ``[C]``) of every BatchNorm2d of ``model``."""
    return [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight is not None]


class BNSparsity(TrainingPlugin):
    """Adds ``sparsity = strength * sum(|gamma|)`` over every BN scale of the model to each training step.

    The engine multiplies plugin terms by the batch size, so :meth:`losses` returns the term divided by it: the
    gradient on each scale is ``strength * sign(gamma)`` per step whatever the batch size, the subgradient step of
    network slimming. Typical strengths: 1e-4 to 1e-3.
    """

    loss_names = ("sparsity",)

    def __init__(self, strength: float):
        if not strength > 0:
            raise ValueError(f"--sparsity must be > 0, got {strength}")
        self.strength = float(strength)
        self.scales: list[torch.Tensor] = []

    def setup(self, model: nn.Module, device: torch.device) -> None:
        self.scales = bn_scales(model)
        if not self.scales:
            raise ValueError("--sparsity: the model has no BatchNorm layers (is it fused?)")

    def losses(self, imgs: torch.Tensor, preds: list[torch.Tensor], targets: torch.Tensor) -> dict[str, torch.Tensor]:
        l1 = torch.stack([s.abs().sum() for s in self.scales]).sum()
        return {"sparsity": self.strength * l1 / imgs.shape[0]}

    def run_info(self) -> dict:
        return {"sparsity": self.strength}
