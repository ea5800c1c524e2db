"""Prune a checkpoint end to end: load, rank, prune, measure, write ours (plain data, pruned widths recorded)."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from models.loading import build_model, read_weights
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint, strip_checkpoint
from utils.pruning.config import PruneConfig
from utils.pruning.core import (
    MAX_LAYER_RATIO,
    WidthChange,
    accumulate_gradients,
    check_prunable,
    chosen_convs,
    left_whole,
    prune_model,
    resolve_layers,
    search_ratio,
    short_of_ratio,
    why_left_whole,
    width_changes,
)
from utils.pruning.report import ModelCost, format_report, layer_channels, model_cost
from utils.torch_utils import count_parameters, model_flops, select_device

LOGGER = logging.getLogger(__name__)
TAYLOR_HYP = "data/hyps/hyp.scratch-low.yaml"


@dataclass
class PruneResult:
    """The pruned model, where it was written, the ratio used and its cost before and after."""

    model: Model
    out: Path
    ratio: float
    before: ModelCost
    after: ModelCost
    report: str


def load_prunable(path: str | Path) -> Model:
    """The model of any checkpoint we read (ours, upstream, already pruned), unfused, in eval mode on the CPU."""
    model = build_model(read_weights(path), source=path).eval()
    check_prunable(model, source=str(path))
    return model


def taylor_gradients(model: Model, cfg: PruneConfig, device: torch.device) -> int:
    """Fill the parameters' gradients with the detection loss of ``cfg.taylor_batches`` batches of ``cfg.data``."""
    from utils.data import create_dataloader, load_data_config
    from utils.files import load_yaml
    from utils.loss import LossConfig, YoloLoss

    data = load_data_config(cfg.data)
    if data.nc != model.nc:
        raise ValueError(f"--data {cfg.data} has {data.nc} classes but the model {cfg.weights} has {model.nc}")
    stride = max(int(model.stride.max()), 32)
    loader, _ = create_dataloader(
        data.train, cfg.imgsz, cfg.batch_size, stride, augment=False, workers=0, shuffle=True, seed=cfg.seed,
        prefix="taylor: ", nc=data.nc,
    )  # fmt: skip
    hyp = load_yaml(TAYLOR_HYP, "hyperparameter file")
    loss = YoloLoss(model.detect, LossConfig.from_hyp(hyp, model.detect.nl, model.nc, cfg.imgsz))
    return accumulate_gradients(model, itertools.islice(loader, cfg.taylor_batches), loss, device)


def usable_ratio(ratio: float) -> float:
    """``ratio``, or :data:`MAX_LAYER_RATIO` with a warning when it asks for more than any layer may lose."""
    if ratio <= MAX_LAYER_RATIO:
        return ratio
    LOGGER.warning(
        "--ratio %g is above %g, the largest fraction of a layer's channels that may be removed; pruning at %g "
        "instead",
        ratio, MAX_LAYER_RATIO, MAX_LAYER_RATIO,
    )  # fmt: skip
    return MAX_LAYER_RATIO


def _layer_list(changes: list[WidthChange]) -> str:
    """``0, 2, 17``: the layers of ``changes``, each once."""
    return ", ".join(str(i) for i in sorted({c.layer for c in changes}))


def _examples(changes: list[WidthChange], ratio: float | None = None, most: int = 4) -> str:
    """``model.0.conv 16 -> 8 (asked 4), ...`` for the first ``most`` of ``changes``."""
    shown = [
        f"{c.name} {c.before} -> {c.after}" + ("" if ratio is None else f" (asked {c.before * (1 - ratio):.3g})")
        for c in changes[:most]
    ]
    more = len(changes) - most
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def warn_shortfalls(
    model: Model, changes: list[WidthChange], cfg: PruneConfig, ratio: float, kept_fraction: float
) -> None:
    """Warn when the chosen layers lost fewer channels than ``ratio`` asks, naming them, the reason and the fraction
    of the parameters kept: layers torch-pruning left whole, and layers held at the ``round_to`` minimum."""
    kept = f"the model keeps {kept_fraction:.1%} of its parameters"
    if cfg.global_:
        before = sum(c.before for c in changes)
        removed = 1 - sum(c.after for c in changes) / before
        if removed < ratio - 0.02:
            whole = [c for c in changes if c.after == c.before]
            LOGGER.warning(
                "global ranking removed %.1f%% of the chosen layers' channels, less than ratio %g asks: torch-pruning "
                "leaves a layer whole when the ranking would remove all of its channels (layers left whole: %s); %s",
                100 * removed, ratio, _layer_list(whole) or "none", kept,
            )  # fmt: skip
        return
    whole = left_whole(changes, ratio, cfg.round_to)
    if whole:
        LOGGER.warning(
            "%d convolutions in layers %s were kept at full width although ratio %g would shrink them: %s; %s; %s",
            len(whole), _layer_list(whole), ratio, _examples(whole, most=len(whole)), why_left_whole(model), kept,
        )  # fmt: skip
    short = short_of_ratio([c for c in changes if c not in whole], ratio)
    if short:
        LOGGER.warning(
            "%d convolutions in layers %s keep more channels than ratio %g asks, since a pruned layer keeps at least "
            "--round-to %d channels (or all it has when fewer): %s; %s",
            len(short), _layer_list(short), ratio, cfg.round_to, _examples(short, ratio), kept,
        )  # fmt: skip


def prune_checkpoint(cfg: PruneConfig) -> PruneResult:
    """Run one pruning job (see :class:`PruneConfig`) and write the pruned checkpoint to ``cfg.out``."""
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.device)
    model = load_prunable(cfg.weights).to(device)
    layers = resolve_layers(model, cfg.layers)
    before_layers, before = layer_channels(model), model_cost(model, cfg.imgsz)
    if cfg.importance == "taylor":
        n = taylor_gradients(model, cfg, device)
        LOGGER.info("Taylor importance from %d batches of %s", n, cfg.data)

    def prune(m: Model, ratio: float, log_steps: bool = False) -> Model:
        return prune_model(
            m, ratio, layers, cfg.importance, cfg.global_, cfg.iterative_steps, cfg.round_to, min(cfg.imgsz, 128),
            log_steps=log_steps,
        )  # fmt: skip

    ratio = None if cfg.ratio is None else usable_ratio(cfg.ratio)
    if ratio is None:
        if cfg.target_params is not None:
            target, what = cfg.target_params, "parameters"
            measure = count_parameters
        else:
            target, what = cfg.target_gflops, "GFLOPs"

            def measure(m: Model) -> float:
                flops = model_flops(m, cfg.imgsz)
                if flops is None:
                    raise ValueError("--target-gflops needs thop to count FLOPs (pip install thop)")
                return flops

        ratio, reached = search_ratio(model, target, measure, prune)
        LOGGER.info("Target %s <= %.3f of the original: ratio %.4f keeps %.3f", what, target, ratio, reached)
    widths = {name: conv.out_channels for name, conv in chosen_convs(model, layers).items()}
    prune(model, ratio, log_steps=cfg.iterative_steps > 1)
    model.zero_grad(set_to_none=True)
    after_layers, after = layer_channels(model), model_cost(model, cfg.imgsz)
    if after.parameters == before.parameters:
        raise ValueError(
            f"nothing was pruned: torch-pruning could not remove any channel of the chosen layers ({cfg.layers}): "
            + why_left_whole(model)
        )
    report = format_report(before_layers, after_layers, before, after)
    LOGGER.info("%s", report)
    warn_shortfalls(model, width_changes(widths, model), cfg, ratio, after.parameters / before.parameters)

    model = model.cpu()
    train_args = {
        "pruned_from": str(cfg.weights),
        "prune": cfg.to_dict(),
        "prune_ratio": float(ratio),
        "cost_before": before.to_dict(),
        "cost_after": after.to_dict(),
    }
    ckpt = make_checkpoint(model, model.names, train_args=train_args)
    out = save_checkpoint(strip_checkpoint(ckpt, half=False), cfg.out)
    LOGGER.info("Wrote %s (ratio %.4f, %d layers chosen)", out, ratio, len(layers))
    return PruneResult(model, out, float(ratio), before, after, report)
