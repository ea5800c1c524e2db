"""How a training add-on (distillation) plugs into the engine without forking the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass
class RunContext:
    """What a plugin may use of the run once the data is loaded."""

    save_dir: Path
    device: torch.device
    names: list[str]
    train_loader: object
    val_loader: object
    imgsz: int
    hyp: dict
    resumed: bool
    main: bool = True  # False in the other processes of a multi-process (DDP) run: no files, no validation
    #: ``share(obj)`` returns the main process's ``obj`` in every process (a decision only it can take)
    share: Callable[[object], object] = lambda obj: obj  # noqa: E731


class TrainingPlugin:
    """Base class: adds named loss terms and trainable modules to a training run. Every hook is optional.

    Life cycle, as the engine calls it:

    1. :meth:`setup` once, after the student model is built and placed on its device, before the optimizer exists.
    2. :meth:`trainable_modules` once: their parameters join the optimizer (and :meth:`state_dict` saves them).
    3. :meth:`before_training` once, when the data loaders exist (e.g. to measure a teacher on the validation set).
    4. :meth:`losses` every batch, after the student's forward pass.
    5. :meth:`state_dict` at every checkpoint (stored in ``last.pt``'s ``extra``; left out of ``best.pt``),
       :meth:`load_state_dict` on resume.
    6. :meth:`close` at the end of the run, also after an error.
    """

    #: names of the loss terms that :meth:`losses` returns; they become results.csv columns ``train/<name>``
    loss_names: tuple[str, ...] = ()
    #: when False the ground-truth loss is not computed (training on distillation terms alone)
    use_gt_loss: bool = True
    #: when True the student keeps its anchors (autoanchor is skipped)
    fixed_anchors: bool = False

    def setup(self, model: nn.Module, device: torch.device) -> None:
        pass

    def trainable_modules(self) -> list[nn.Module]:
        return []

    def before_training(self, run: RunContext) -> None:
        pass

    def losses(self, imgs: torch.Tensor, preds: list[torch.Tensor], targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra loss terms for one batch, each a scalar mean over the batch (the engine scales them by the batch
        size exactly as the ground-truth loss is scaled). ``imgs``: ``[B, 3, H, W]`` 0..1; ``preds``: the
        student's raw outputs; ``targets``: ``[N, 6]`` (image, class, cx, cy, w, h normalised)."""
        return {}

    def run_info(self) -> dict:
        """Plain data recorded in the run directory (``kd.yaml``) describing the add-on's settings."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def close(self) -> None:
        pass
