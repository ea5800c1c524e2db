"""Optimizer with YOLOv5's parameter groups, learning-rate schedules and warmup."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

LOGGER = logging.getLogger(__name__)

NOMINAL_BATCH = 64  # gradients are accumulated to about this many images per optimizer step


def parameter_groups(modules: Iterable[nn.Module]) -> tuple[list, list, list]:
    """Split trainable parameters into (normalisation weights, other weights, biases).

    Weight decay applies to the second group only: not to BatchNorm weights and not to biases.
    """
    norm_weights, weights, biases = [], [], []
    seen: set[int] = set()
    for module in modules:
        for m in module.modules():
            for name, p in m.named_parameters(recurse=False):
                if not p.requires_grad or id(p) in seen:
                    continue
                seen.add(id(p))
                if name == "bias":
                    biases.append(p)
                elif isinstance(m, nn.modules.batchnorm._NormBase):
                    norm_weights.append(p)
                else:
                    weights.append(p)
    return norm_weights, weights, biases


def build_optimizer(
    modules: Iterable[nn.Module], name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Optimizer over three groups; group 0 = norm weights, 1 = weights (with decay), 2 = biases."""
    norm_weights, weights, biases = parameter_groups(modules)
    if name == "SGD":
        opt = torch.optim.SGD(norm_weights, lr=lr, momentum=momentum, nesterov=True)
    elif name == "Adam":
        opt = torch.optim.Adam(norm_weights, lr=lr, betas=(momentum, 0.999))
    elif name == "AdamW":
        opt = torch.optim.AdamW(norm_weights, lr=lr, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise ValueError(f"unknown optimizer {name!r}; use SGD, Adam or AdamW")
    opt.add_param_group({"params": weights, "weight_decay": weight_decay})
    opt.add_param_group({"params": biases, "weight_decay": 0.0})
    LOGGER.info(
        "optimizer: %s(lr=%g) with parameter groups %d weight(decay=0.0), %d weight(decay=%g), %d bias",
        name,
        lr,
        len(norm_weights),
        len(weights),
        weight_decay,
        len(biases),
    )
    return opt


def lr_lambda(epochs: int, lrf: float, cosine: bool) -> Callable[[int], float]:
    """Learning-rate multiplier per epoch: linear from 1 to ``lrf``, or a cosine ramp between them."""
    if cosine:
        return lambda x: ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf


class Warmup:
    """Ramps learning rates, momentum and gradient accumulation over the first ``n_iters`` iterations.

    Bias learning rate starts at ``warmup_bias_lr`` and falls to the scheduled value; other groups rise from 0.
    Momentum rises from ``warmup_momentum`` to ``momentum``. Accumulation rises from 1 to the nominal value.
    """

    def __init__(self, n_iters: int, hyp: dict, batch_size: int, bias_group: int = 2):
        self.n_iters = n_iters
        self.hyp = hyp
        self.batch_size = batch_size
        self.bias_group = bias_group

    def active(self, ni: int) -> bool:
        return ni <= self.n_iters

    def apply(self, ni: int, optimizer: torch.optim.Optimizer, scheduled_factor: float) -> int:
        """Set the groups' lr/momentum for iteration ``ni``; returns the accumulation to use."""
        xi = [0, self.n_iters]
        accumulate = max(1, int(np.interp(ni, xi, [1, NOMINAL_BATCH / self.batch_size]).round()))
        for j, group in enumerate(optimizer.param_groups):
            start = self.hyp["warmup_bias_lr"] if j == self.bias_group else 0.0
            group["lr"] = float(np.interp(ni, xi, [start, group["initial_lr"] * scheduled_factor]))
            if "momentum" in group:
                group["momentum"] = float(np.interp(ni, xi, [self.hyp["warmup_momentum"], self.hyp["momentum"]]))
        return accumulate
