"""How a training add-on (distillation, the sparsity penalty) plugs into the engine without forking the loop.

The engine owns the list of add-ons of a run: it records each as its kind and settings in the checkpoint and, on
resume, rebuilds exactly those from :data:`utils.training.registry.ADDONS`, whichever program resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn


def _same(obj):
    return obj


@dataclass
class ModelSetup:
    """What add-ons may decide about the run while the model is set up (:meth:`AddOn.setup`)."""

    model: nn.Module
    device: torch.device
    #: False when an add-on fixes the anchors (a distilled student uses its teacher's)
    autoanchor: bool = True
    #: False when no add-on wants the ground-truth loss (distillation terms alone)
    gt_loss: bool = True


@dataclass
class RunContext:
    """What an add-on may use of the run once the data is loaded."""

    save_dir: Path
    device: torch.device
    names: list[str]
    train_loader: object
    val_loader: object
    imgsz: int
    hyp: dict
    resumed: bool
    main: bool = True  # False in the other processes of a multi-process (DDP) run: no files, no validation
    batch_size: int = 16  # labelled images per step in this process
    #: ``share(obj)`` returns the main process's ``obj`` in every process (a decision only it can take)
    share: Callable[[object], object] = _same


@dataclass
class StepBatch:
    """One training step's data as add-ons see it.

    ``imgs``: ``[B + U, 3, H, W]`` 0..1, the ``B`` labelled images then the ``U`` images add-ons appended
    (:meth:`AddOn.extra_images`); ``preds``: the student's raw outputs for all of them, per level
    ``[B + U, na, H_i, W_i, 5 + nc]``; ``targets``: ``[N, 6]`` (image, class, cx, cy, w, h normalised) of the
    labelled images; ``labelled``: ``B``.
    """

    imgs: torch.Tensor
    preds: list[torch.Tensor]
    targets: torch.Tensor
    labelled: int


class AddOn:
    """Base class: adds named loss terms and trainable modules to a training run. Every hook is optional.

    Life cycle, as the engine calls it:

    1. :meth:`setup` once, after the student is built and placed on its device, before the optimizer exists.
    2. :meth:`trainable_modules` once: trained with the student, inside the module that DDP wraps.
    3. :meth:`before_training` once, when the data loaders exist (e.g. to measure a teacher on the validation set).
    4. Every step: :meth:`extra_images` before the student's forward pass, :meth:`losses` after it,
       :meth:`after_optimizer_step` after each optimizer step.
    5. :meth:`end_epoch` after each epoch's training.
    6. :meth:`state_dict` at every checkpoint (in ``last.pt``; left out of ``best.pt``), :meth:`load_state_dict` on
       resume, before :meth:`before_training`.
    7. :meth:`close` at the end of the run, also after an error.

    A subclass sets :attr:`kind` (its key in the registry) and implements :meth:`settings` and
    :meth:`from_settings`, so that a resumed run rebuilds it exactly.
    """

    #: name in :data:`utils.training.registry.ADDONS` and in checkpoints
    kind: ClassVar[str] = ""
    #: names of the loss terms that :meth:`losses` returns; they become results.csv columns ``train/<name>``
    loss_names: tuple[str, ...] = ()

    def settings(self) -> dict:
        """Plain data from which :meth:`from_settings` rebuilds this add-on (recorded in every checkpoint)."""
        return {}

    @classmethod
    def from_settings(cls, settings: dict) -> AddOn:
        """Rebuild from :meth:`settings`. Raises ValueError or FileNotFoundError naming what can no longer be
        rebuilt (a teacher file that moved)."""
        raise NotImplementedError(f"add-on {cls.kind!r} cannot be rebuilt from its settings")

    def setup(self, s: ModelSetup) -> None:
        pass

    def trainable_modules(self) -> list[nn.Module]:
        return []

    def before_training(self, run: RunContext) -> None:
        pass

    def extra_images(self, imgs: torch.Tensor) -> torch.Tensor | None:
        """Images ``[U, 3, H, W]`` (0..1, the size of ``imgs``) to append to this step's batch, or None."""
        return None

    def losses(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        """Loss terms of one step, each a scalar on the scale of the ground-truth loss: a per-image mean times the
        number of images it covers (results.csv shows each divided by the number of labelled images)."""
        return {}

    def after_optimizer_step(self) -> None:
        pass

    def end_epoch(self, epoch: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def close(self) -> None:
        pass
