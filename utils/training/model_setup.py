"""Building the model to train: from scratch, from weights (ours, upstream, pruned), or from a resume point."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from models.loading import build_model, read_weights
from models.yolo import Model

LOGGER = logging.getLogger(__name__)


def transfer_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], exclude: tuple[str, ...] = ()) -> int:
    """Copy every tensor of ``state`` whose name and shape match ``model``'s; returns the number copied."""
    own = model.state_dict()
    matched = {
        k: v for k, v in state.items() if k in own and own[k].shape == v.shape and not any(x in k for x in exclude)
    }
    own.update({k: v.to(own[k].dtype) for k, v in matched.items()})
    model.load_state_dict(own)
    LOGGER.info("Transferred %d/%d items from the pretrained weights", len(matched), len(own))
    return len(matched)


def check_same_architecture(model: Model, state: dict[str, torch.Tensor], weights: str, cfg: str) -> None:
    """Raise ValueError naming both files when tensors of ``weights`` outside the detection head have other shapes
    than ``cfg``'s model (a pruned model, or another model size): they would silently not be transferred."""
    head = f"model.{len(model.model) - 1}."
    own = model.state_dict()
    differ = [k for k, v in state.items() if k in own and not k.startswith(head) and own[k].shape != v.shape]
    if differ:
        k = differ[0]
        raise ValueError(
            f"--weights {weights} does not match --cfg {cfg}: {len(differ)} tensors differ in shape, e.g. '{k}' "
            f"{tuple(state[k].shape)} in the weights, {tuple(own[k].shape)} in the yaml (a pruned model or another "
            "model size?); leave out --cfg to train the weights' own architecture"
        )


def check_class_order(weight_names: list[str], data_names: list[str], weights: str) -> None:
    """Raise ValueError when the weights know the data's classes in another order (indices would be swapped);
    warn when the same number of classes has other names (the head is reused for them)."""
    if list(weight_names) == list(data_names) or weight_names == [str(i) for i in range(len(weight_names))]:
        return
    if len(weight_names) != len(data_names):
        return  # the head is rebuilt for the data's classes
    if sorted(weight_names) == sorted(data_names):
        raise ValueError(
            f"--weights {weights} has the data's classes in another order: weights {list(weight_names)}, data "
            f"{list(data_names)}; every class index would be swapped (reorder 'names' in the data yaml)"
        )
    LOGGER.warning(
        "--weights %s was trained on classes %s, the data has %s: the head is reused for the new classes",
        weights, list(weight_names), list(data_names),
    )  # fmt: skip


def build_training_model(weights: str, cfg: str, nc: int, names: list[str]) -> Model:
    """The model to train, with ``nc`` classes.

    - ``cfg`` only: a fresh model from the yaml.
    - ``weights`` only: the checkpoint's own architecture (pruned widths included) with its weights; if its class
      count differs from ``nc``, the head is rebuilt for ``nc`` and everything else transferred.
    - both: the yaml's architecture, with every checkpoint tensor of matching name and shape transferred.
    """
    if not weights:
        model = Model(cfg, nc=nc)
    else:
        loaded = read_weights(weights)
        if cfg:
            model = Model(cfg, nc=nc)
            check_same_architecture(model, loaded.state_dict, weights, cfg)
            transfer_weights(model, loaded.state_dict)
        else:
            model = build_model(loaded, source=weights)
            check_class_order(model.names, names, weights)
            if model.nc != nc:
                LOGGER.info(
                    "%s has %d classes, the data %d: the detection head is re-initialised", weights, model.nc, nc
                )
                head = f"model.{len(model.model) - 1}."
                channels = {k: v for k, v in loaded.channels.items() if not k.startswith(head)}
                fresh = Model(loaded.yaml, nc=nc, channels=channels, source=f"{weights} (its model yaml)")
                transfer_weights(fresh, loaded.state_dict, exclude=(head,))
                model = fresh
        LOGGER.info("Initialised from %s (%s format)", weights, loaded.kind)
    model.names = list(names)
    return model


def latest_checkpoint(search_dir: str | Path = "runs") -> Path:
    """The most recently written ``last.pt`` under ``search_dir`` (what a bare ``--resume`` continues)."""
    candidates = sorted(Path(search_dir).rglob("last.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"--resume: no last.pt found under {Path(search_dir).resolve()}; give its path")
    return candidates[-1]
