"""Reading checkpoints written by upstream YOLOv5 (v6.0 to v7.0) without running pickled code.

Upstream stores whole pickled modules (``models.yolo.Model`` / ``DetectionModel``, ``models.common.Conv`` ...).
We unpickle them with a restricted unpickler that admits only a fixed list of names. Module classes are never
instantiated: each becomes an inert :class:`PickledModule` record holding the stored attributes, from which we read
the yaml description, the class names and the tensors. Our own model is then rebuilt from those. Any other name
in the pickle is refused with an error naming it, before anything is called.
"""

from __future__ import annotations

import codecs
import collections
import pathlib
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from utils.checkpoint import CheckpointError, check_readable

#: Module classes that may appear in an upstream checkpoint; they are read as records, never instantiated.
MODULE_CLASSES = {
    ("models.yolo", "Model"),
    ("models.yolo", "DetectionModel"),
    ("models.yolo", "Detect"),
    ("models.common", "Conv"),
    ("models.common", "Bottleneck"),
    ("models.common", "C3"),
    ("models.common", "SPPF"),
    ("models.common", "Concat"),
    ("torch.nn.modules.conv", "Conv2d"),
    ("torch.nn.modules.batchnorm", "BatchNorm2d"),
    ("torch.nn.modules.activation", "SiLU"),
    ("torch.nn.modules.linear", "Identity"),
    ("torch.nn.modules.pooling", "MaxPool2d"),
    ("torch.nn.modules.upsampling", "Upsample"),
    ("torch.nn.modules.container", "Sequential"),
    ("torch.nn.modules.container", "ModuleList"),
}


def _numpy_names() -> dict[tuple[str, str], Any]:
    """numpy's array/scalar reconstructors (upstream stores ``best_fitness`` as a numpy array)."""
    import numpy as np

    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = np._core.multiarray._reconstruct
        out[(mod, "scalar")] = np._core.multiarray.scalar
    for name in dir(np.dtypes):
        if name.endswith("DType"):
            out[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return out


#: Plain callables and types that may appear: containers, tensor rebuild functions, numpy reconstructors.
SAFE_NAMES: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): codecs.encode,  # protocol-2 pickles store bytes (e.g. numpy data) as encoded text
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("pathlib", "PosixPath"): pathlib.PurePosixPath,
    ("pathlib", "WindowsPath"): pathlib.PureWindowsPath,
    ("pathlib", "PurePosixPath"): pathlib.PurePosixPath,
    ("pathlib", "PureWindowsPath"): pathlib.PureWindowsPath,
}


class PickledModule:
    """Inert stand-in for a pickled ``nn.Module``: its stored ``__dict__`` and the name of its class."""

    class_name = "?"

    def __repr__(self) -> str:
        return f"<pickled {self.class_name}>"


_RECORD_TYPES: dict[tuple[str, str], type] = {
    key: type(key[1], (PickledModule,), {"class_name": ".".join(key)}) for key in MODULE_CLASSES
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names in :data:`SAFE_NAMES` and :data:`MODULE_CLASSES`."""

    _numpy: dict | None = None

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # protocol-2 pickles name the builtins module as Python 2 did
            module = "builtins"
        key = (module, name)
        if key in _RECORD_TYPES:
            return _RECORD_TYPES[key]
        if key in SAFE_NAMES:
            return SAFE_NAMES[key]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith("numpy"):
            if RestrictedUnpickler._numpy is None:
                RestrictedUnpickler._numpy = _numpy_names()
            if key in RestrictedUnpickler._numpy:
                return RestrictedUnpickler._numpy[key]
        raise pickle.UnpicklingError(
            f"refusing to load '{module}.{name}': it is not one of the classes this loader knows, "
            "and loading it could run arbitrary code"
        )


def _restricted_pickle_module() -> types.ModuleType:
    mod = types.ModuleType("restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    mod.loads = None
    return mod


def read_upstream(path: str | Path) -> dict:
    """Unpickle an upstream checkpoint with the restricted unpickler; module entries become records.

    Raises :class:`CheckpointError` naming the file and the refused name for anything outside the allow list.
    """
    path = check_readable(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: {e}") from e
    except Exception as e:  # damaged archives surface as many exception types
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupt file?): {e}") from e


def _entries(state: dict, key: str, where: str) -> dict:
    value = state.get(key, {})
    if not isinstance(value, dict):
        raise TypeError(f"'{where}{key}' is {type(value).__name__}, not a dict")
    return value


def record_state_dict(record: PickledModule, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a pickled module record: parameters and persistent buffers, recursively.

    Raises TypeError naming the entry when the record is not laid out as a pickled ``nn.Module`` is."""
    state = record.__dict__
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for key in ("_parameters", "_buffers"):
        for name, t in _entries(state, key, prefix).items():
            if t is None or (key == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"'{prefix}{name}' in {key} is a {type(t).__name__}, not a tensor")
            out[prefix + str(name)] = t.detach()
    for name, child in _entries(state, "_modules", prefix).items():
        if isinstance(child, PickledModule):
            out.update(record_state_dict(child, f"{prefix}{name}."))
    return out


def _class_names(names: Any) -> list[str] | None:
    """Class names stored as a list or as a dict ``{index: name}`` (keys ints or digit strings, 0..n-1)."""
    if isinstance(names, dict):
        index = {}
        for k, v in names.items():
            ok = (isinstance(k, int) and not isinstance(k, bool)) or (isinstance(k, str) and k.isdigit())
            if not ok:
                raise TypeError(f"'names' keys must be class indices, got {k!r} among {list(names)[:6]!r}")
            index[int(k)] = v
        if sorted(index) != list(range(len(index))):
            raise TypeError(f"'names' keys must be the indices 0..{len(index) - 1}, got {sorted(index)[:6]!r}")
        return [str(index[i]) for i in range(len(index))]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return None


def upstream_model_parts(ckpt: dict, path: str | Path) -> tuple[dict, dict[str, torch.Tensor], list[str] | None]:
    """``(yaml dict, state dict, class names)`` of the model in an upstream checkpoint (EMA preferred)."""
    record = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(record, PickledModule) or record.class_name not in (
        "models.yolo.Model",
        "models.yolo.DetectionModel",
    ):
        raise CheckpointError(f"{path}: no pickled YOLOv5 model under 'ema' or 'model'")
    attrs = record.__dict__
    cfg = attrs.get("yaml")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: the pickled model has no yaml description to rebuild it from")
    try:
        return dict(cfg), record_state_dict(record), _class_names(attrs.get("names"))
    except (TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint (the pickled model is malformed): {e}") from e
