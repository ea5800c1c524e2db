"""Reading and validating model yaml files, and building their layers.

The format is YOLOv5's: top-level ``nc``, ``depth_multiple``, ``width_multiple``, ``anchors`` and two lists of rows,
``backbone`` and ``head``, each row ``[from, number, module, args]``. Module names map to classes through the
explicit table :data:`MODULES`; nothing from a file is ever evaluated as code.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.attention import ATTENTION_BLOCKS
from models.common import C3, SPPF, Bottleneck, Concat, Conv
from models.head import Detect
from utils.files import load_yaml

MODELS_DIR = Path(__file__).resolve().parent

#: Module names allowed in a model yaml and the classes they build.
MODULES: dict[str, type[nn.Module]] = {
    "Conv": Conv,
    "Bottleneck": Bottleneck,
    "C3": C3,
    "SPPF": SPPF,
    "Concat": Concat,
    "Detect": Detect,
    "nn.Upsample": nn.Upsample,
    "Upsample": nn.Upsample,
    **ATTENTION_BLOCKS,
}

#: Blocks whose first argument is an output channel count that scales with ``width_multiple``.
_CHANNEL_BLOCKS = (Conv, Bottleneck, C3, SPPF)
#: Blocks that keep their input width: the parser passes the input channel count as their first argument, and the
#: yaml gives only the block's own arguments (e.g. ``[16]``, a reduction ratio).
_SAME_WIDTH_BLOCKS = tuple(ATTENTION_BLOCKS.values())
#: Blocks that take the scaled ``number`` as their own repeat count instead of being stacked.
_REPEAT_BLOCKS = (C3,)
REQUIRED_KEYS = ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head")

# Bounds checked before anything is allocated, far above the largest YOLOv5 model (yolov5x: 86.7M parameters,
# 1280 channels, 12 bottlenecks in one C3) and far below what would exhaust a machine's memory.
MAX_CHANNELS = 4096  # output channels of one layer, after width_multiple
MAX_REPEATS = 64  # blocks in one row, after depth_multiple
MAX_PARAMS = 250_000_000  # parameters of the whole model (yolov5x: 86.7M)
MAX_SMALL_ARG = 64  # kernel size, stride, padding, groups
MAX_UPSAMPLE = 8  # scale factor of nn.Upsample


class ModelConfigError(ValueError):
    """A model yaml that cannot be built; the message names the source, the row and the problem."""


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``x``."""
    return int(math.ceil(x / divisor) * divisor)


def resolve_cfg_path(cfg: str | Path) -> Path:
    """Find a model yaml: the path as given, or a bare name (``yolov5s`` / ``yolov5s.yaml``) in ``models/``."""
    path = Path(cfg)
    if path.is_file():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml"
    candidate = MODELS_DIR / name
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(f"model config '{cfg}' not found (looked for it as a path and as models/{name})")


def load_model_yaml(cfg: str | Path | dict, source: str | None = None) -> tuple[dict, str]:
    """Return ``(config dict, source name)`` for a yaml path, a bare model name, or an already parsed dict.

    ``source`` names where a parsed dict came from (e.g. the checkpoint that embeds it) in error messages.
    """
    if isinstance(cfg, dict):
        return copy.deepcopy(cfg), source or str(cfg.get("yaml_file", "<dict>"))
    path = resolve_cfg_path(cfg)
    try:
        data = load_yaml(path, "model config")
    except ValueError as e:
        raise ModelConfigError(str(e)) from e
    data["yaml_file"] = path.name
    return data, str(path)


def validate_model_dict(d: dict, source: str) -> None:
    """Check the top-level keys and the shape of every row; raise :class:`ModelConfigError` naming the problem."""
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ModelConfigError(f"{source}: missing key(s) {missing}; a model yaml needs {list(REQUIRED_KEYS)}")
    for key in ("depth_multiple", "width_multiple"):
        v = d[key]
        if not _is_number(v) or not math.isfinite(v) or v <= 0:
            raise ModelConfigError(f"{source}: '{key}' must be a positive number, got {v!r}")
        if v > 100:
            raise ModelConfigError(f"{source}: '{key}' {v!r} is out of range (at most 100; yolov5x uses 1.33/1.25)")
    if not isinstance(d["nc"], int) or isinstance(d["nc"], bool) or d["nc"] < 1:
        raise ModelConfigError(f"{source}: 'nc' must be a positive integer, got {d['nc']!r}")
    _check_anchors(d["anchors"], source)
    for section in ("backbone", "head"):
        if not isinstance(d[section], list) or not d[section]:
            raise ModelConfigError(f"{source}: '{section}' must be a non-empty list of rows")


def _check_anchors(anchors: Any, where: str) -> None:
    """Check an ``anchors`` value (the top-level key, or Detect's second argument) and raise
    :class:`ModelConfigError` naming ``where`` and the value unless it is a non-empty list of per-level
    ``[w1, h1, w2, h2, ...]`` lists of positive pixel sizes, with the same number of anchors on every level.

    A bare count (``anchors: 3``, which upstream YOLOv5 accepts and leaves to autoanchor) is refused: the head would
    start from placeholder sizes that autoanchor cannot score, and that training keeps with ``--noautoanchor``.
    """
    if isinstance(anchors, int) and not isinstance(anchors, bool):
        raise ModelConfigError(
            f"{where}: 'anchors: {anchors}' (a count) is not supported; give the sizes per level in pixels, e.g. "
            "anchors: [[10,13, 16,30, 33,23], [30,61, 62,45, 59,119], [116,90, 156,198, 373,326]] (autoanchor "
            "then adapts them to the data)"
        )
    if not isinstance(anchors, list):
        raise ModelConfigError(f"{where}: 'anchors' must be a list of per-level lists, got {anchors!r}")
    if not anchors or any(not isinstance(a, list) or len(a) % 2 or not a for a in anchors):
        raise ModelConfigError(
            f"{where}: 'anchors' must be a list of per-level [w1, h1, w2, h2, ...] lists, got {anchors!r}"
        )
    if len({len(a) for a in anchors}) != 1:
        raise ModelConfigError(f"{where}: every level needs the same number of anchors, got {anchors!r}")
    bad = [x for a in anchors for x in a if not _is_number(x) or not math.isfinite(x) or x <= 0]
    if bad:
        raise ModelConfigError(f"{where}: anchor sizes must be positive numbers (pixels), got {bad[0]!r}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_bounds(label: str, cls: type, name: str, args: list) -> None:
    """Refuse sizes that would exhaust memory while building or probing the model (see ``MAX_*``)."""
    if cls in _CHANNEL_BLOCKS:
        c_out = args[1]
        if c_out < 1:
            raise ModelConfigError(f"{label}: {name} would have {c_out} output channels; it needs at least 1")
        if c_out > MAX_CHANNELS:
            raise ModelConfigError(f"{label}: {name} would have {c_out} output channels; at most {MAX_CHANNELS}")
        small = [a for a in args[3 if cls in _REPEAT_BLOCKS else 2 :] if isinstance(a, int) and abs(a) > MAX_SMALL_ARG]
        if small:
            raise ModelConfigError(f"{label}: {name} argument {small[0]} is out of range (at most {MAX_SMALL_ARG})")
    if cls is nn.Upsample:
        size = args[0] if args else None
        scale = args[1] if len(args) > 1 else None
        if size is not None or not _is_number(scale) or not 0 < scale <= MAX_UPSAMPLE:
            raise ModelConfigError(
                f"{label}: Upsample needs args [None, scale, mode] with 0 < scale <= {MAX_UPSAMPLE}, got {args!r}"
            )


def _count_params(cls: type[nn.Module], args: list, n: int) -> int:
    """Parameters of ``n`` modules ``cls(*args)``, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        one = sum(p.numel() for p in cls(*args).parameters())
    return one * n


@dataclass
class Layer:
    """One built row: the module, where its input comes from, and bookkeeping for the forward pass."""

    module: nn.Module
    index: int
    source: int | list[int]
    type_name: str
    number: int = 1  # repeats after depth scaling (stacked copies, or the block's own repeat count)
    args: list = field(default_factory=list)  # constructor arguments after channel resolution


def _row_label(source: str, i: int, n_backbone: int) -> str:
    section, j = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
    return f"{source}: {section} row {j} (layer {i})"


def _resolve_from(f: Any, i: int, label: str) -> int | list[int]:
    """Check a ``from`` entry: -1/negative = relative to this layer; non-negative = absolute earlier layer."""
    items = f if isinstance(f, list) else [f]
    if not items:
        raise ModelConfigError(f"{label}: 'from' is an empty list")
    for x in items:
        if not isinstance(x, int) or isinstance(x, bool):
            raise ModelConfigError(f"{label}: 'from' must be an int or list of ints, got {f!r}")
        if i == 0:
            if x != -1:
                raise ModelConfigError(f"{label}: the first layer must read the input (from = -1), got {f!r}")
            continue
        if not (-i <= x < i):
            raise ModelConfigError(f"{label}: 'from' index {x} does not refer to an earlier layer (0..{i - 1} or -1)")
    return f


def _substitute_args(args: list, d: dict, label: str) -> list:
    """Replace the names ``nc`` and ``anchors`` by their values and the word ``None`` by None (YOLOv5 yaml files
    write ``nn.Upsample`` args as ``[None, 2, 'nearest']``); other values pass through unchanged."""
    if not isinstance(args, list):
        raise ModelConfigError(f"{label}: 'args' must be a list, got {args!r}")
    out = []
    for a in args:
        if a == "nc":
            out.append(d["nc"])
        elif a == "anchors":
            out.append(d["anchors"])
        elif a == "None":
            out.append(None)
        else:
            out.append(a)
    return out


def build_layers(d: dict, ch: int, source: str) -> tuple[list[Layer], list[int]]:
    """Build every row of a validated model dict for ``ch`` input channels.

    Returns the layers in order and ``save``: the sorted indices of layers whose outputs later rows read.
    """
    gd, gw = d["depth_multiple"], d["width_multiple"]
    rows = d["backbone"] + d["head"]
    n_backbone = len(d["backbone"])
    channels: list[int] = []
    layers: list[Layer] = []
    save: set[int] = set()
    total_params = 0

    for i, row in enumerate(rows):
        label = _row_label(source, i, n_backbone)
        if not isinstance(row, list) or len(row) != 4:
            raise ModelConfigError(f"{label}: a row must be [from, number, module, args], got {row!r}")
        f, n, name, args = row
        f = _resolve_from(f, i, label)
        if not isinstance(name, str) or name not in MODULES:
            raise ModelConfigError(f"{label}: unknown module {name!r}; known modules: {sorted(MODULES)}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ModelConfigError(f"{label}: 'number' must be a positive int, got {n!r}")
        cls = MODULES[name]
        args = _substitute_args(args, d, label)
        n = max(round(n * gd), 1) if n > 1 else n
        if n > MAX_REPEATS:
            raise ModelConfigError(f"{label}: {n} repeats of {name} after depth_multiple; at most {MAX_REPEATS}")
        repeats = n
        c_in = channels[f] if isinstance(f, int) and i > 0 else (ch if i == 0 else None)

        try:
            if cls in _CHANNEL_BLOCKS:
                if not args or not isinstance(args[0], int):
                    raise ModelConfigError(f"{label}: {name} needs an output channel count as its first arg")
                c_out = make_divisible(args[0] * gw, 8)
                args = [c_in, c_out, *args[1:]]
                if cls in _REPEAT_BLOCKS:
                    args.insert(2, n)
                    n = 1
            elif cls in _SAME_WIDTH_BLOCKS:
                if c_in is None:
                    raise ModelConfigError(f"{label}: {name} reads a single layer; 'from' must be an int, got {f!r}")
                args = [c_in, *args]
                c_out = c_in
            elif cls is Concat:
                c_out = sum(channels[x] for x in (f if isinstance(f, list) else [f]))
            elif cls is Detect:
                if not isinstance(f, list):
                    raise ModelConfigError(f"{label}: Detect needs a list of input layers in 'from'")
                if len(args) < 2:
                    raise ModelConfigError(f"{label}: Detect args must be [nc, anchors]")
                _check_anchors(args[1], f"{label}: Detect")
                args = [args[0], args[1], [channels[x] for x in f]]
                c_out = 0
            else:
                c_out = c_in
            _check_bounds(label, cls, name, args)
            total_params += _count_params(cls, args, n)
            if total_params > MAX_PARAMS:
                raise ModelConfigError(
                    f"{label}: the model would have over {MAX_PARAMS:,} parameters by this layer "
                    f"(width_multiple {gw}, depth_multiple {gd}); refusing to build it"
                )
            module = nn.Sequential(*(cls(*args) for _ in range(n))) if n > 1 else cls(*args)
        except ModelConfigError:
            raise
        except (TypeError, ValueError, IndexError, RuntimeError, OverflowError) as e:
            raise ModelConfigError(f"{label}: cannot build {name} with args {args!r}: {e}") from e

        layers.append(Layer(module, i, f, name, repeats, args))
        save.update(x % i for x in (f if isinstance(f, list) else [f]) if x != -1)
        channels.append(c_out)
    if layers[-1].type_name != "Detect":
        raise ModelConfigError(f"{source}: the last head row must be Detect, got {layers[-1].type_name}")
    return layers, sorted(save)
