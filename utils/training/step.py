"""One training step, as the engine and the speed benchmarks run it.

:class:`TrainModule` holds the student and the add-ons' trainable modules (distillation adapters): the one module
that is optimised and that DDP wraps, so DDP averages every gradient. :class:`Stepper` runs a step on it: the
student's forward pass over the batch and the images add-ons append, the ground-truth loss and the add-ons' terms,
backward, and, when asked, the optimizer step (unscale, clip, step, EMA).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from utils.torch_utils import fast_layout
from utils.training.addons import AddOn, StepBatch

MAX_GRAD_NORM = 10.0
GT_LOSS_NAMES = ("box", "obj", "cls")


class TrainModule(nn.Module):
    """The student (``model``) and the add-ons' trainable modules (``extras``); its forward pass is the student's:
    ``[B, 3, H, W]`` 0..1 -> per level ``[B, na, H_i, W_i, 5 + nc]`` raw outputs."""

    def __init__(self, model: nn.Module, extras: list[nn.Module]):
        super().__init__()
        self.model = model
        self.extras = nn.ModuleList(extras)

    def forward(self, imgs: torch.Tensor) -> list[torch.Tensor]:
        return self.model(imgs)


class Stepper:
    """Runs training steps; see the module docstring.

    Args:
        train_module: the :class:`TrainModule`, or the DDP wrapper around it.
        model: the student inside it (the EMA follows it).
        gt_loss: ``(preds, targets) -> (loss [1], {"box", "obj", "cls"})``, or None for distillation terms alone.
        addons: the run's add-ons, in order.
        optimizer, scaler: the optimizer and the gradient scaler (disabled where AMP is off).
        amp: autocast on ``device``'s type, in ``amp_dtype`` (float16 on CUDA, bfloat16 on the CPU).
        ema: the model average to update after each optimizer step, if any.
        world_size: processes of a DDP run; each scales its share of the loss back to the whole batch.
        agree: ``agree(flag)`` is True in every process when ``flag`` is True in all of them (DDP), else ``flag``.
    """

    def __init__(
        self,
        train_module: nn.Module,
        model: nn.Module,
        gt_loss: Callable | None,
        addons: list[AddOn],
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        device: torch.device,
        amp: bool = False,
        ema=None,
        amp_dtype: torch.dtype | None = None,
        world_size: int = 1,
        agree: Callable[[bool], bool] = bool,
    ):
        self.train_module, self.model, self.gt_loss, self.addons = train_module, model, gt_loss, addons
        self.optimizer, self.scaler, self.device, self.amp, self.ema = optimizer, scaler, device, amp, ema
        self.amp_dtype = amp_dtype or (torch.float16 if device.type == "cuda" else torch.bfloat16)
        self.world_size, self.agree = world_size, agree
        self.last_loss = 0.0  # the value of the last step's loss (for the message about a non-finite one)

    @property
    def loss_names(self) -> tuple[str, ...]:
        gt = GT_LOSS_NAMES if self.gt_loss is not None else ()
        return gt + tuple(n for a in self.addons for n in a.loss_names)

    def losses(self, imgs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss ``[1]`` and its parts per labelled image (detached), for ``imgs`` ``[B, 3, H, W]`` 0..1
        and ``targets`` ``[N, 6]``."""
        n = imgs.shape[0]
        extra = [x for a in self.addons if (x := a.extra_images(imgs)) is not None]
        every = fast_layout(torch.cat([imgs, *extra]) if extra else imgs)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            preds = self.train_module(every)
            if self.amp:  # the losses in float32: box IoUs in bfloat16 would keep 3 significant digits
                preds = [p.float() for p in preds]
            loss, parts = torch.zeros(1, device=self.device), {}
            if self.gt_loss is not None:
                loss, parts = self.gt_loss([p[:n] for p in preds] if extra else preds, targets)
            batch = StepBatch(every, preds, targets, n)
            for addon in self.addons:
                for name, term in addon.losses(batch).items():
                    loss = loss + term
                    parts[name] = term.detach() / n
            # DDP averages gradients over processes; each share of the batch is scaled back to the whole batch
            return loss * self.world_size, parts

    def step(self, imgs: torch.Tensor, targets: torch.Tensor, optimize: bool = True) -> dict[str, torch.Tensor] | None:
        """Forward, losses and backward; then the optimizer step if ``optimize`` (else gradients accumulate).
        Returns the loss parts, or None when the loss was not finite (in any process): nothing is applied, the
        accumulated gradients are dropped, and :attr:`last_loss` holds the value."""
        loss, parts = self.losses(imgs, targets)
        if not self.agree(bool(torch.isfinite(loss).all())):
            self.optimizer.zero_grad()
            self.last_loss = loss.item()
            return None
        self.scaler.scale(loss).backward()
        if optimize:
            self.optimizer_step()
        return parts

    def optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_norm=MAX_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        if self.ema is not None:
            self.ema.update(self.model)
        for addon in self.addons:
            addon.after_optimizer_step()


def bare_stepper(model: nn.Module, addons: list[AddOn], run, device: torch.device, amp: bool = False) -> Stepper:
    """A :class:`Stepper` outside a training run, for the speed benchmarks: the add-ons set up on ``model`` and
    prepared with ``run`` (a RunContext of a resumed run, so that nothing is measured or written), SGD with the
    hyperparameters of ``run.hyp``, the ground-truth loss at ``run.imgsz``; autocast if ``amp`` (float16 with a
    scaler on CUDA, bfloat16 on the CPU), no EMA."""
    from utils.loss import LossConfig, YoloLoss
    from utils.training.addons import ModelSetup
    from utils.training.optim import build_optimizer

    setup = ModelSetup(model, device)
    for addon in addons:
        addon.setup(setup)
    extras = [m.to(device) for a in addons for m in a.trainable_modules()]
    for addon in addons:
        addon.before_training(run)
    hyp, detect = run.hyp, model.detect
    optimizer = build_optimizer([model, *extras], "SGD", hyp.get("lr0", 0.01), hyp.get("momentum", 0.937), 0.0)
    gt_loss = YoloLoss(detect, LossConfig.from_hyp(hyp, detect.nl, detect.nc, run.imgsz)) if setup.gt_loss else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    return Stepper(TrainModule(model, extras), model, gt_loss, addons, optimizer, scaler, device, amp=amp)
