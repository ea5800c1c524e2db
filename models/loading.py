"""Turn any checkpoint we can read into a :class:`models.yolo.Model`.

Readable: our own format (:mod:`utils.checkpoint`), upstream YOLOv5 v6.0-v7.0 pickles (:mod:`models.upstream`),
and bare state dicts (a dict of tensors, possibly under ``model`` / ``state_dict``) given a model ``cfg``.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from models.config import MAX_CHANNELS
from models.resize import apply_channels, channels_from_state_dict
from models.upstream import read_upstream, upstream_model_parts
from models.yolo import Model
from utils.checkpoint import CheckpointError, is_our_checkpoint, load_plain

LOGGER = logging.getLogger(__name__)


@dataclass
class LoadedWeights:
    """What a checkpoint holds for building a model: the description, the tensors and where they came from."""

    yaml: dict
    state_dict: dict[str, torch.Tensor]
    channels: dict[str, list[int]]
    names: list[str] | None
    kind: str  # "ours", "upstream" or "state_dict"
    checkpoint: dict  # the whole checkpoint as read (records for upstream modules)


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_weights(path: str | Path, cfg: str | Path | dict | None = None) -> LoadedWeights:
    """Read ``path`` in whichever supported format it is; ``cfg`` is needed only for a bare state dict."""
    try:
        ckpt = load_plain(path)
    except pickle.UnpicklingError:
        ckpt = read_upstream(path)
        yaml_dict, state, names = upstream_model_parts(ckpt, path)
        return LoadedWeights(yaml_dict, state, channels_from_state_dict(state), names, "upstream", ckpt)

    if is_our_checkpoint(ckpt):
        state = ckpt.get("ema") or ckpt.get("model")
        if not _is_state_dict(state):
            raise CheckpointError(f"{path}: our checkpoint format, but it holds no model weights")
        arch = ckpt.get("arch") or {}
        if "yaml" not in arch:
            raise CheckpointError(f"{path}: our checkpoint format, but 'arch' has no model description")
        channels = arch.get("channels") or channels_from_state_dict(state)
        return LoadedWeights(arch["yaml"], state, channels, ckpt.get("names"), "ours", ckpt)

    state = None
    if _is_state_dict(ckpt):
        state = ckpt
    elif isinstance(ckpt, dict):
        state = next((ckpt[k] for k in ("model", "state_dict", "ema") if _is_state_dict(ckpt.get(k))), None)
    if state is None:
        raise CheckpointError(
            f"{path}: not a checkpoint this project can read (expected our format, an upstream YOLOv5 "
            "checkpoint, or a state dict)"
        )
    if cfg is None:
        raise CheckpointError(f"{path}: holds a bare state dict; pass the model yaml (cfg=...) that describes it")
    from models.config import load_model_yaml

    yaml_dict, _ = load_model_yaml(cfg)
    anchor_keys = [k for k in state if k.endswith(".anchors")]
    if anchor_keys:  # the Detect head: nc follows from its output channels, na * (5 + nc)
        prefix = anchor_keys[0][: -len(".anchors")]
        na = state[anchor_keys[0]].shape[1]
        head_conv = state.get(f"{prefix}.m.0.weight")
        if head_conv is not None:
            yaml_dict["nc"] = head_conv.shape[0] // na - 5
    return LoadedWeights(yaml_dict, state, channels_from_state_dict(state), None, "state_dict", ckpt)


def check_channels(channels, source: str | Path) -> None:
    """Refuse a channel record that is not ``{name: [sizes]}`` or asks for absurd sizes, before building."""
    if not isinstance(channels, dict):
        raise CheckpointError(f"{source}: the channel record is a {type(channels).__name__}, not a dict")
    for name, sizes in channels.items():
        if not (isinstance(sizes, (list, tuple)) and sizes and all(isinstance(c, int) for c in sizes)):
            raise CheckpointError(f"{source}: channel record of '{name}' is {sizes!r}, not a list of ints")
        if any(not 0 < c <= MAX_CHANNELS for c in sizes):
            raise CheckpointError(f"{source}: channel record of '{name}' is {sizes!r}; sizes must be 1..{MAX_CHANNELS}")


def build_model(weights: LoadedWeights, source: str | Path = "") -> Model:
    """Build our model at the recorded widths and load the tensors (fp16 weights are cast to fp32).

    The model description comes from inside the checkpoint, so errors in it name the checkpoint ``source``.
    """
    if not isinstance(weights.yaml, dict):
        raise CheckpointError(f"{source}: the model description is a {type(weights.yaml).__name__}, not a dict")
    check_channels(weights.channels, source)
    try:
        model = Model(weights.yaml, ch=weights.yaml.get("ch", 3), source=f"{source} (its embedded model yaml)")
        apply_channels(model, weights.channels)
    except (TypeError, RuntimeError, IndexError, KeyError) as e:
        raise CheckpointError(f"{source}: cannot build the model it describes: {e}") from e
    state = {k: v for k, v in weights.state_dict.items() if not k.endswith("anchor_grid")}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not fit the model described by its yaml: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    bad = [k for k, v in state.items() if own[k].shape != v.shape]
    if bad:
        k = bad[0]
        raise CheckpointError(
            f"{source}: tensor '{k}' has shape {tuple(state[k].shape)} but the model has {tuple(own[k].shape)}"
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    if weights.names and len(weights.names) == model.nc:
        model.names = list(weights.names)
    elif weights.names:
        LOGGER.warning(
            "%s: %d class names %s for a model with %d classes; using the names 0..%d instead",
            source, len(weights.names), list(weights.names)[:8], model.nc, model.nc - 1,
        )  # fmt: skip
    return model


def load_model(
    path: str | Path, device: str | torch.device = "cpu", fuse: bool = False, cfg: str | Path | dict | None = None
) -> Model:
    """Load a model in eval mode (fp32) from our checkpoint, an upstream YOLOv5 checkpoint, or a bare state dict.

    Args:
        path: the checkpoint file.
        device: where to put the model.
        fuse: fold BatchNorm into the convolutions (faster inference; not for training).
        cfg: model yaml describing a bare state dict; ignored for other formats.
    """
    weights = read_weights(path, cfg=cfg)
    model = build_model(weights, source=path)
    LOGGER.debug("Loaded %s checkpoint %s", weights.kind, path)
    model.eval()
    if fuse:
        model.fuse()
    return model.to(device)


def check_yaml_fits_state_dict(weights: LoadedWeights, source: str | Path, cfg: str | Path | dict) -> None:
    """Refuse a model yaml ``cfg`` whose tensors (names or shapes, at the yaml's own widths) differ from those of the
    bare state dict ``weights``, naming the first tensor that differs."""
    reference = Model(weights.yaml).state_dict()
    state = {k: v for k, v in weights.state_dict.items() if not k.endswith("anchor_grid")}
    own = {k: v for k, v in reference.items() if not k.endswith("anchor_grid")}
    where = f"{source} does not match --cfg {cfg}"
    extra, missing = [k for k in state if k not in own], [k for k in own if k not in state]
    if extra or missing:
        raise CheckpointError(
            f"{where}: {len(extra)} tensors of the weights are not in the yaml (e.g. {extra[:2]}) and {len(missing)} "
            f"of the yaml are not in the weights (e.g. {missing[:2]}); give the yaml of the model they come from"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{where}: tensor '{k}' is {tuple(v.shape)} in the weights but {tuple(own[k].shape)} in the yaml "
                "(another model size, or a pruned model?); give the yaml of the model they come from"
            )


def convert_checkpoint(
    src: str | Path, dst: str | Path, cfg: str | Path | dict | None = None, half: bool = True, pruned: bool = False
):
    """Rewrite any readable checkpoint (upstream pickle, bare state dict, ours) in our plain-data format.

    The result holds the model weights (fp16 when ``half``), its architecture and class names, and no training
    state. Returns the path written. A bare state dict must have the tensors ``cfg`` describes, shapes included,
    unless ``pruned``: then its convolution widths are taken from the tensors.
    """
    from utils.checkpoint import make_checkpoint, save_checkpoint, strip_checkpoint

    weights = read_weights(src, cfg=cfg)
    if weights.kind == "state_dict" and not pruned:
        check_yaml_fits_state_dict(weights, src, cfg)
    model = build_model(weights, source=src)
    ckpt = make_checkpoint(model, model.names, train_args={"converted_from": str(src), "source_format": weights.kind})
    return save_checkpoint(strip_checkpoint(ckpt, half=half), dst)
