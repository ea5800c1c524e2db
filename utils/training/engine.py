"""The training loop shared by ``train.py`` and ``train_kd.py``.

One loop; add-ons (:mod:`utils.training.addons`: distillation, the sparsity penalty) add loss terms and trainable
modules to it, and pruned fine-tuning is the same loop started from pruned weights. The engine owns the add-ons: a
checkpoint records each by kind and settings, and a resumed run rebuilds exactly those.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import random
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.yolo import Model
from utils.checkpoint import load_plain, make_checkpoint, remove_unfinished_writes, save_checkpoint, strip_checkpoint
from utils.data import create_dataloader, load_data_config
from utils.evaluation import EvalConfig, EvalResult, evaluate, write_metrics_json
from utils.files import increment_path, make_dir, save_yaml
from utils.log import add_file_log
from utils.loss import LossConfig, YoloLoss
from utils.torch_utils import fused_copy, init_seeds, keep_freed_memory, select_device
from utils.training import distributed as ddp
from utils.training.addons import AddOn, ModelSetup, RunContext
from utils.training.config import TrainConfig
from utils.training.ema import ModelEMA
from utils.training.guards import NonFiniteGuard
from utils.training.hyp import load_hyp
from utils.training.lock import RunLock
from utils.training.model_setup import build_training_model
from utils.training.optim import NOMINAL_BATCH, Warmup, build_optimizer, lr_lambda
from utils.training.registry import addon_records, build_addons, check_addons, legacy_records
from utils.training.results import ResultsCSV, summary_table, wait_summary
from utils.training.resume_checks import load_entry, load_resume
from utils.training.step import GT_LOSS_NAMES, Stepper, TrainModule
from utils.training.tensorboard import TensorBoardLogger

LOGGER = logging.getLogger(__name__)
LOG_EVERY = 10  # steps between updates of the progress bar's running losses


@dataclass
class TrainResult:
    save_dir: Path
    last: Path
    best: Path | None
    epochs_completed: int
    best_fitness: float
    final_metrics: dict[str, float] = field(default_factory=dict)
    seconds_per_epoch: float = 0.0


class Trainer:
    """Runs one training job described by a :class:`TrainConfig`, with the given add-ons.

    A resumed run (``cfg.resume``) takes its configuration and its add-ons from the checkpoint; giving add-ons
    too is an error, since the checkpoint's are the ones the run was started with.
    """

    def __init__(self, cfg: TrainConfig, addons: list[AddOn] | tuple[AddOn, ...] = ()):
        self.dist, self.device_spec = ddp.init_distributed(cfg.device)
        self.resume_ckpt: dict | None = None
        self.new_dir = False
        self.stepper: Stepper | None = None
        self.final_result: EvalResult | None = None  # the validation of the last epoch, when it ran
        # plots are drawn on this thread while training goes on; run() waits for them before it returns
        self.plotter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plots")
        self.plot_jobs: list[Future] = []
        if cfg.resume:
            if addons:
                raise ValueError("--resume continues a run with the add-ons its checkpoint records; give none")
            self.resume_ckpt, path = load_resume(cfg.resume)
            train_args = self.resume_ckpt.get("train_args") or {}
            cfg = TrainConfig.from_dict(train_args)
            cfg.resume, cfg.weights, cfg.exist_ok = str(path), str(path), True
            addons = build_addons(train_args.get("addons") or legacy_records(train_args), str(path))
            self.save_dir = path.parent.parent
        else:
            new_dir = None
            if self.dist.main:
                new_dir = increment_path(Path(cfg.project) / cfg.name, exist_ok=cfg.exist_ok)
                self.new_dir = not new_dir.exists()  # removed again if the run fails before its first checkpoint
                make_dir(new_dir)
            self.save_dir = ddp.broadcast_object(new_dir, self.dist)  # one run directory for all processes
        check_addons(list(addons))
        self.cfg, self.addons = cfg, list(addons)
        # before anything in the run directory is written; in a multi-process run the main process holds it
        self.lock = RunLock(self.save_dir).acquire() if self.dist.main else None
        self.weights_dir = self.save_dir / "weights"
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        for tmp in remove_unfinished_writes(self.weights_dir):  # left by a process killed while saving
            LOGGER.info("Removed %s, an unfinished checkpoint write of an earlier process", tmp)
        self.last, self.best = self.weights_dir / "last.pt", self.weights_dir / "best.pt"

    # ----------------------------------------------------------------------------------------------- set-up
    def _setup(self) -> None:
        cfg = self.cfg
        if self.resume_ckpt is not None:
            LOGGER.info("Resuming %s at epoch %d of %d%s", self.save_dir, self.resume_ckpt["epoch"] + 2, cfg.epochs,
                        "".join(f", with {a.kind}" for a in self.addons))  # fmt: skip
        self.device = select_device(self.device_spec)
        if "," in str(cfg.device) and not self.dist.enabled:
            LOGGER.warning("--device %s: one process trains on one GPU (%s); for several GPUs start it with "
                           "torchrun --nproc_per_node N", cfg.device, self.device)  # fmt: skip
        self.amp = mixed_precision(self.device, cfg.amp)
        if self.device.type == "cpu":
            keep_freed_memory()
        init_seeds(cfg.seed, deterministic=cfg.deterministic)
        self.hyp = load_hyp(cfg.hyp)
        self.data = load_data_config(cfg.data, single_cls=cfg.single_cls)
        self.names = self.data.names
        if self.dist.main:
            save_yaml(self.save_dir / "hyp.yaml", self.hyp)
            save_yaml(self.save_dir / "opt.yaml", cfg.to_dict())
        self.model = self._build_model()
        self.model_setup = ModelSetup(self.model, self.device)
        for addon in self.addons:
            addon.setup(self.model_setup)
        extras = [m.to(self.device) for a in self.addons for m in a.trainable_modules()]
        self.train_module = TrainModule(self.model, extras)
        self.stride = max(int(self.model.stride.max()), 32)
        if cfg.imgsz % self.stride:
            new = math.ceil(cfg.imgsz / self.stride) * self.stride
            LOGGER.warning("--imgsz %d is not a multiple of the stride %d; using %d", cfg.imgsz, self.stride, new)
            cfg.imgsz = new
        self._build_optimizer([self.model, *extras])
        if self.resume_ckpt is not None:
            self._restore(self.resume_ckpt)
        self._build_loaders()
        if self.resume_ckpt is None and self.dist.main:
            self._before_first_epoch()
        wrapped = ddp.wrap_model(self.train_module, self.dist, self.device, cfg.sync_bn)
        if cfg.compile:
            LOGGER.info("Compiling the model (torch.compile): the first steps take minutes")
            wrapped = torch.compile(wrapped)
        ddp.broadcast_module(self.ema.ema, self.dist)  # the main process's average (after autoanchor)
        run = RunContext(self.save_dir, self.device, self.names, self.train_loader, self.val_loader, cfg.imgsz,
                         self.hyp, resumed=self.resume_ckpt is not None, main=self.dist.main,
                         batch_size=ddp.per_process_batch(cfg.batch_size, self.dist),
                         share=lambda obj: ddp.broadcast_object(obj, self.dist))  # fmt: skip
        for addon in self.addons:
            addon.before_training(run)
        self.loss_cfg = LossConfig.from_hyp(self.hyp, self.model.detect.nl, self.data.nc, cfg.imgsz,
                                            cfg.label_smoothing)  # fmt: skip
        gt_loss = YoloLoss(self.model.detect, self.loss_cfg) if self.model_setup.gt_loss else None
        self.stepper = Stepper(
            wrapped, self.model, gt_loss, self.addons, self.optimizer, self.scaler, self.device, amp=self.amp,
            ema=self.ema, world_size=self.dist.world_size, agree=lambda ok: ddp.all_processes(ok, self.dist),
        )  # fmt: skip

    def _build_model(self) -> Model:
        cfg = self.cfg
        if self.resume_ckpt is not None:
            model = Model.from_arch(self.resume_ckpt["arch"], source=str(cfg.resume))
            load_entry(model, {k: v.float() for k, v in self.resume_ckpt["model"].items()}, "model", cfg.resume)
            model.names = list(self.names)
        else:
            model = build_training_model(cfg.weights, cfg.cfg, self.data.nc, self.names)
        if model.nc != self.data.nc:
            raise ValueError(f"model has {model.nc} classes but {cfg.data} has {self.data.nc}")
        model = model.to(self.device)
        layers = cfg.freeze if len(cfg.freeze) > 1 else range(cfg.freeze[0])
        prefixes = tuple(f"model.{i}." for i in layers)
        for name, p in model.named_parameters():
            p.requires_grad = not name.startswith(prefixes) if prefixes else True
        if prefixes:
            LOGGER.info("Freezing layers %s", list(layers))
        return model

    def _build_optimizer(self, modules: list[nn.Module]) -> None:
        cfg = self.cfg
        self.accumulate = max(round(NOMINAL_BATCH / cfg.batch_size), 1)
        weight_decay = self.hyp["weight_decay"] * cfg.batch_size * self.accumulate / NOMINAL_BATCH
        self.optimizer = build_optimizer(modules, cfg.optimizer, self.hyp["lr0"], self.hyp["momentum"], weight_decay)
        self.lf = lr_lambda(cfg.epochs, self.hyp["lrf"], cfg.cos_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)
        self.ema = ModelEMA(self.model)
        # bfloat16 has float32's range: only float16 (CUDA) needs its loss scaled
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.device.type == "cuda")
        self.start_epoch, self.best_fitness, self.best_epoch = 0, 0.0, -1
        self.nonfinite_guard = NonFiniteGuard()

    def _build_loaders(self) -> None:
        cfg = self.cfg
        batch = ddp.per_process_batch(cfg.batch_size, self.dist)
        common = dict(hyp=self.hyp, cache=cfg.cache, workers=cfg.workers, seed=cfg.seed, single_cls=cfg.single_cls,
                      nc=self.data.nc)  # fmt: skip
        with ddp.main_process_first(self.dist):  # the main process writes the label cache, the others read it
            # endless, epoch after epoch from the one to train next: its workers live for the whole run
            self.train_loader, self.train_set = create_dataloader(
                self.data.train, cfg.imgsz, batch, self.stride, augment=True, rect=cfg.rect, shuffle=not cfg.rect,
                prefix="train: ", epochs_from=self.start_epoch, rank=max(self.dist.rank, 0),
                world=self.dist.world_size, **common,
            )  # fmt: skip
        self.val_loader = None  # only the main process validates
        if self.dist.main:
            self.val_loader, _ = create_dataloader(
                self.data.val, cfg.imgsz, cfg.batch_size * 2, self.stride, augment=False, rect=True, prefix="val: ",
                **common,
            )  # fmt: skip

    def _before_first_epoch(self) -> None:
        labels = np.concatenate(self.train_set.labels, 0) if len(self.train_set.labels) else np.zeros((0, 5))
        if not self.cfg.noplots:
            self._plot("labels", self.save_dir / "labels.jpg", labels)
        if not self.model_setup.autoanchor:
            LOGGER.info("AutoAnchor: skipped, an add-on fixed the anchors")
        elif not self.cfg.noautoanchor:
            from utils.autoanchor import check_anchors

            check_anchors(
                self.model.detect, self.train_set.labels, self.train_set.shapes, self.cfg.imgsz,
                thr=self.hyp["anchor_t"], seed=self.cfg.seed,
            )  # fmt: skip
            self.ema = ModelEMA(self.model)  # the average starts from the checked anchors

    def _restore(self, ckpt: dict) -> None:
        path = self.cfg.resume
        load_entry(self.optimizer, ckpt["optimizer"], "optimizer", path)
        if ckpt.get("scheduler"):
            load_entry(self.scheduler, ckpt["scheduler"], "scheduler", path)
        if ckpt.get("scaler") and self.scaler.is_enabled():
            load_entry(self.scaler, ckpt["scaler"], "scaler", path)
        if ckpt.get("ema"):
            load_entry(self.ema.ema, {k: v.float() for k, v in ckpt["ema"].items()}, "ema", path)
            self.ema.updates = int(ckpt.get("updates", 0))
        extra = ckpt.get("extra") or {}
        states = extra.get("addons") or ({self.addons[0].kind: extra["plugin"]} if extra.get("plugin") else {})
        for addon in self.addons:
            addon.load_state_dict(states.get(addon.kind) or {})
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_fitness = float(ckpt.get("best_fitness") or 0.0)
        self.best_epoch = int(extra.get("best_epoch", -1))
        if self.best_epoch >= 0 and self.best_epoch == int(ckpt["epoch"]) and not self._best_holds(self.best_epoch):
            # killed between writing last.pt and best.pt: best.pt does not hold the best epoch
            LOGGER.warning("%s does not hold the best epoch %d; writing it from %s", self.best, self.best_epoch, path)
            save_checkpoint({**ckpt, "extra": {}}, self.best)
        if self.start_epoch >= self.cfg.epochs:  # killed after its last epoch was saved, before it was finished
            LOGGER.info("All %d epochs were trained; finishing the run", self.cfg.epochs)

    def _best_holds(self, epoch: int) -> bool:
        return self.best.exists() and load_plain(self.best).get("epoch") == epoch

    # -------------------------------------------------------------------------------------------- training
    def run(self) -> TrainResult:
        log_handler = add_file_log(self.save_dir / "train.log") if self.dist.main else logging.NullHandler()
        try:
            self._setup()
            return self._train()
        except KeyboardInterrupt:
            if self.last.exists():  # a pipeline that runs this training says how it continues instead
                LOGGER.warning("Interrupted. Continue: %s", os.environ.get("RESUME_HINT", f"--resume {self.last}"))
            raise
        finally:
            self.plotter.shutdown(wait=True)
            if self.lock is not None:
                self.lock.release()
            for addon in self.addons:
                addon.close()
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()
            self._remove_if_empty()
            # the DDP wrapper (its reducer uses the process group) goes first, then the group: in the other order
            # a process could hang at exit in the group's destructor
            self.stepper = None
            gc.collect()
            ddp.cleanup(self.dist)

    def _remove_if_empty(self) -> None:
        """Remove the run directory this process created when the run wrote no checkpoint (it failed or was
        stopped before its first epoch ended), so that no empty run is left for ``--resume`` or a pipeline."""
        if self.new_dir and self.dist.main and not any(self.weights_dir.glob("*.pt")):
            shutil.rmtree(self.save_dir, ignore_errors=True)

    def _train(self) -> TrainResult:
        cfg = self.cfg
        self.csv = ResultsCSV(self.save_dir / "results.csv")
        self.csv.truncate_after(self.start_epoch - 1)
        self.tb = TensorBoardLogger(self.save_dir) if self.dist.main else None  # no-op without tensorboard
        nb = len(self.train_loader)
        warmup = Warmup(max(round(self.hyp["warmup_epochs"] * nb), 100), self.hyp, cfg.batch_size)
        self.patience_left, stop = cfg.patience, False
        LOGGER.info(
            "Image sizes %d train, %d val; %d dataloader workers; logging to %s\nStarting training for %d epochs...",
            cfg.imgsz, cfg.imgsz, self.train_loader.num_workers, self.save_dir, cfg.epochs,
        )  # fmt: skip
        t_start, epochs_done = time.time(), 0
        self.last_result = EvalResult()
        self.batches = iter(self.train_loader)  # one pass over all epochs: the workers run ahead across epochs
        self.first_batch_waits: list[float] = []  # seconds each epoch waited for its first batch
        for epoch in range(self.start_epoch, cfg.epochs):
            self._seed_epoch(epoch)
            mean_losses = self._train_epoch(epoch, nb, warmup)
            for addon in self.addons:
                addon.end_epoch(epoch)
            lrs = [g["lr"] for g in self.optimizer.param_groups]
            self.scheduler.step()
            if self.dist.main:
                stop = self._end_epoch(epoch, mean_losses, lrs)
            epochs_done += 1
            if ddp.broadcast_object(stop, self.dist):  # the main process decides; the others follow
                break
        seconds = (time.time() - t_start) / max(epochs_done, 1)
        if not self.dist.main:
            return TrainResult(self.save_dir, self.last, None, self.start_epoch + epochs_done, 0.0, {}, seconds)
        result = self._finish(epochs_done, seconds)
        self._plots_drawn()
        self.tb.close(self.start_epoch + epochs_done - 1)
        return result

    def _end_epoch(self, epoch: int, mean_losses: dict[str, float], lrs: list[float]) -> bool:
        """Validate (unless --noval), log, save; return whether to stop early."""
        cfg = self.cfg
        final_epoch = epoch + 1 == cfg.epochs
        validated = not cfg.noval or final_epoch
        improved = epoch == 0  # best.pt exists from the start; validated epochs replace it
        if validated:
            # the last epoch's validation is the run's final one when best.pt ends up holding these weights: it
            # writes the plots and prints per class, and _finish does not evaluate the same weights again
            final_plots = final_epoch and not cfg.noplots
            self.last_result = evaluate(
                fused_copy(self.ema.ema), self.val_loader, self.names,
                EvalConfig(single_cls=cfg.single_cls, plots=final_plots, verbose=final_epoch),
                loss_fn=YoloLoss(self.ema.ema.detect, self.loss_cfg), desc=f"val {epoch + 1}/{cfg.epochs}",
                save_dir=self.save_dir if final_plots else None,
            )  # fmt: skip
            if final_epoch:
                self.final_result = self.last_result
            fitness = self.last_result.fitness()
            improved = fitness > self.best_fitness or epoch == 0
            if improved:
                self.best_fitness, self.patience_left = max(fitness, self.best_fitness), cfg.patience
            else:
                self.patience_left -= 1
        if improved:
            self.best_epoch = epoch
        row = {"epoch": epoch, **{f"train/{k}": v for k, v in mean_losses.items()}}
        # epochs without validation leave the metric columns empty rather than repeating old values
        row.update({k: (v if validated else "") for k, v in self.last_result.metrics().items()})
        row.update({f"val/{k}_loss": self.last_result.losses.get(k, "") if validated else "" for k in GT_LOSS_NAMES})
        row.update({f"x/lr{j}": lr for j, lr in enumerate(lrs)})
        self.csv.append(row)
        if self.tb.enabled:
            self._plots_drawn()  # normally long done: they were asked for at the start of the epoch
        self.tb.log_epoch(epoch, row)
        if not cfg.nosave or final_epoch:
            self._save(epoch, improved)
        if cfg.patience > 0 and self.patience_left <= 0 and not final_epoch:
            LOGGER.info("Stopping early: no improvement in the last %d epochs", cfg.patience)
            return True
        return False

    def _seed_epoch(self, epoch: int) -> None:
        """Re-seed this process's random sources from (seed, epoch), so a resumed run repeats an uninterrupted one
        (the loader seeds each item's augmentation itself, see :mod:`utils.data.sampler`)."""
        seed = self.cfg.seed * 1000 + epoch
        random.seed(seed + self.dist.rank)
        np.random.seed(seed + self.dist.rank)
        torch.manual_seed(seed)

    def _train_epoch(self, epoch: int, nb: int, warmup: Warmup) -> dict[str, float]:
        cfg = self.cfg
        self.train_module.train()
        names = self.stepper.loss_names
        # running sums stay on the device; they are read (a host-device synchronisation) once per LOG_EVERY steps
        sums = {k: torch.zeros((), device=self.device) for k in names}
        steps, accumulate, last_opt_step = 0, self.accumulate, -1
        self.optimizer.zero_grad()
        pbar = tqdm(islice(self.batches, nb), total=nb, desc=f"{epoch + 1}/{cfg.epochs}", leave=False,
                    disable=not self.dist.main)  # fmt: skip
        asked = time.perf_counter()
        for i, (imgs, targets, paths, _) in enumerate(pbar):
            if i == 0:
                self.first_batch_waits.append(time.perf_counter() - asked)
            ni = i + nb * epoch
            if epoch == 0 and i < 3 and not cfg.noplots and self.dist.main:
                self._plot("batch", self.save_dir / f"train_batch{i}.jpg", imgs, targets, paths)
            imgs = imgs.to(self.device, non_blocking=True).float() / 255
            targets = targets.to(self.device, non_blocking=True)
            if warmup.active(ni):
                accumulate = warmup.apply(ni, self.optimizer, self.lf(epoch))
            if cfg.multi_scale:
                imgs = self._rescale(imgs)
            optimize = ni - last_opt_step >= accumulate
            parts = self.stepper.step(imgs, targets, optimize=optimize)
            if parts is None:
                self.nonfinite_guard.skip(self.stepper.last_loss, epoch, i, paths)  # raises after too many in a row
                continue
            self.nonfinite_guard.ok()
            last_opt_step = ni if optimize else last_opt_step
            steps += 1
            for k in names:
                if k in parts:
                    sums[k] += parts[k].detach().reshape(())
            if steps % LOG_EVERY == 1 or i == nb - 1:
                pbar.set_postfix({k: f"{float(v) / steps:.4g}" for k, v in sums.items()} | {"n": len(paths)})
        self.nonfinite_guard.end_epoch(epoch, steps)
        return {k: float(v) / max(steps, 1) for k, v in sums.items()}

    def _rescale(self, imgs: torch.Tensor) -> torch.Tensor:
        size = random.randrange(int(self.cfg.imgsz * 0.5), int(self.cfg.imgsz * 1.5) + self.stride)
        size = max(self.stride, size // self.stride * self.stride)
        scale = size / max(imgs.shape[2:])
        if scale == 1:
            return imgs
        new_shape = [max(self.stride, math.ceil(x * scale / self.stride) * self.stride) for x in imgs.shape[2:]]
        return nn.functional.interpolate(imgs, size=new_shape, mode="bilinear", align_corners=False)

    # ------------------------------------------------------------------------------------------ checkpoints
    def _save(self, epoch: int, improved: bool) -> None:
        ckpt = make_checkpoint(
            self.model, self.names, ema=self.ema.ema, updates=self.ema.updates, optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=self.scaler if self.scaler.is_enabled() else None, epoch=epoch,
            best_fitness=self.best_fitness, train_args={**self.cfg.to_dict(), "addons": addon_records(self.addons)},
            extra={"addons": {a.kind: a.state_dict() for a in self.addons}, "best_epoch": self.best_epoch},
        )  # fmt: skip
        save_checkpoint(ckpt, self.last)
        deployable = {**ckpt, "extra": {}}  # distillation adapters stay out of best.pt
        if improved:
            save_checkpoint(deployable, self.best)
        if self.cfg.save_period > 0 and (epoch + 1) % self.cfg.save_period == 0:
            save_checkpoint(deployable, self.weights_dir / f"epoch{epoch}.pt")

    def _finish(self, epochs_done: int, seconds_per_epoch: float) -> TrainResult:
        """Strip the checkpoints, evaluate best.pt (``metrics.json``), plot, and print the summary."""
        for path in (self.last, self.best):
            if path.exists():
                save_checkpoint(strip_checkpoint(load_plain(path)), path)
        best = self.best if self.best.exists() else None
        metrics: dict[str, float] = {}
        if best is not None:
            last_epoch = self.start_epoch + epochs_done - 1
            if self.final_result is not None and self.best_epoch == last_epoch:
                result = self.final_result
                LOGGER.info("%s holds the last epoch's weights (in fp16), validated above", best)
            else:
                from models import load_model

                LOGGER.info("Validating %s...", best)
                result = evaluate(
                    load_model(best, device=self.device), self.val_loader, self.names,
                    EvalConfig(single_cls=self.cfg.single_cls, plots=not self.cfg.noplots, verbose=True),
                    save_dir=self.save_dir, desc="best.pt",
                )  # fmt: skip
            metrics = result.metrics()
            write_metrics_json(result, self.save_dir / "metrics.json", self.names, self.cfg.single_cls,
                               weights=str(best), data=self.cfg.data, task="val", epoch=self.best_epoch,
                               settings=self.cfg.to_dict())  # fmt: skip
        if not self.cfg.noplots:
            self._plot("results", self.save_dir / "results.csv")
        rows = [
            ("run", str(self.save_dir)),
            ("epochs", f"{epochs_done} this session, {self.start_epoch + epochs_done} in all"),
            ("time per epoch", f"{seconds_per_epoch:.1f} s"),
            ("first batch of an epoch", wait_summary(self.first_batch_waits)),
            ("best fitness", f"{self.best_fitness:.4f}"),
            *((k.split("/")[-1], f"{v:.4f}") for k, v in metrics.items()),
            ("weights", f"{self.last}" + (f", {best}" if best else "")),
        ]
        LOGGER.info("Training complete\n%s", summary_table(rows))
        return TrainResult(
            self.save_dir, self.last, best, self.start_epoch + epochs_done, self.best_fitness, metrics,
            seconds_per_epoch,
        )  # fmt: skip

    def _plot(self, kind: str, path: Path, *args) -> None:
        """Draw a plot on the plotting thread; plots never stop training: failures are logged."""
        self.plot_jobs.append(self.plotter.submit(self._draw, kind, path, *args))

    def _plots_drawn(self) -> None:
        """Wait for the plots asked for so far (TensorBoard logs the images it finds on disk)."""
        wait(self.plot_jobs)
        self.plot_jobs.clear()

    def _draw(self, kind: str, path: Path, *args) -> None:
        try:
            if kind == "labels":
                from utils.plots.labels import plot_labels

                plot_labels(args[0], self.names, path)
            elif kind == "batch":
                from utils.plots.batches import plot_images

                plot_images(args[0], args[1], args[2], path, names=self.names)
            elif kind == "results":
                from utils.plots.training import plot_results

                plot_results(path)
        except Exception as e:
            LOGGER.warning("plot %s failed: %s", path.name, e)


def mixed_precision(device: torch.device, asked: bool) -> bool:
    """Whether the run trains under autocast: always on CUDA (float16), on the CPU when ``--amp`` asks for it and
    the CPU computes in bfloat16 (AVX-512 BF16 or AMX; elsewhere autocast would be slower than float32)."""
    if device.type == "cuda":
        return True
    if not asked:
        return False
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return True
    LOGGER.warning("--amp: this %s has no bfloat16 arithmetic; training in float32", device.type)
    return False


def train(cfg: TrainConfig, addons: list[AddOn] | tuple[AddOn, ...] = ()) -> TrainResult:
    """Run a training job; the library entry point behind ``train.py`` and ``train_kd.py``."""
    return Trainer(cfg, addons).run()
