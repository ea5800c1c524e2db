"""Our checkpoint file format: plain data only, written atomically.

A checkpoint is a dict that ``torch.load(path, weights_only=True)`` reads (tensors, dicts, lists, str, int, float,
bool, None; no pickled classes):

======================  =================================================================================
``format``              :data:`FORMAT` - marks the file as ours
``format_version``      :data:`FORMAT_VERSION`
``arch``                ``{"yaml": model description dict, "channels": {module name: sizes}}``
                        (see :meth:`models.yolo.Model.arch`); channels record pruned widths
``names``               list of class names
``model``               state dict of the trained model (fp32 in training checkpoints, fp16 once stripped)
``ema``                 state dict of the EMA model or None; :func:`models.load_model` prefers it
``updates``             EMA update count
``optimizer``           optimizer state dict or None
``scheduler``           LR scheduler state dict or None
``scaler``              AMP grad-scaler state dict or None
``epoch``               last completed epoch (0-based), -1 for a finished/stripped checkpoint
``best_fitness``        float or None
``train_args``          the run's arguments as plain data, or None
``extra``               dict of further plain state (e.g. distillation adapters), may be empty
``date``                ISO-8601 time of writing
======================  =================================================================================
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from utils.files import TMP_SUFFIX, WriteError, write_atomically, write_failure

FORMAT = "yolov5-kd-checkpoint"
FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 or later


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not hold what was asked for; the message names the file."""


def is_our_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def remove_unfinished_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files that :func:`save_checkpoint` left in ``folder`` when its process was killed
    mid-write. Call it only while holding the folder's run lock (no other process can be writing there).
    Returns the paths removed."""
    removed = []
    for tmp in Path(folder).glob(f".*.pt.*{TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def _ctrl_c_after_write():
    """Hold a Ctrl-C (SIGINT) that arrives during a checkpoint write until the write is complete.

    Raised inside ``torch.save``, a KeyboardInterrupt surfaces as a RuntimeError about zip offsets and the file is
    lost; held back, the checkpoint is written and the interrupt is raised right after. Only the main thread can
    handle signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
    elif pending and previous != signal.SIG_IGN:
        raise KeyboardInterrupt


def save_checkpoint(ckpt: dict, path: str | Path) -> Path:
    """Write ``ckpt`` to ``path`` atomically (:func:`utils.files.write_atomically`: a temporary file in the same
    folder, fsync, then rename), with a Ctrl-C held until the write is complete.

    A crash while saving leaves the previous file (if any) untouched, never a truncated one. A write that fails
    (disk full, read-only file system, ``path`` a directory) raises :class:`CheckpointError` saying so.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write the checkpoint {path}: it is a directory; give a file name")
    try:
        with _ctrl_c_after_write():
            write_atomically(path, lambda f: torch.save(ckpt, f))
    except WriteError as e:
        raise CheckpointError(str(e)) from e
    except RuntimeError as e:  # torch wraps a failed write in a RuntimeError about zip offsets
        raise CheckpointError(write_failure(path, e)) from e
    return path


def check_readable(path: str | Path) -> Path:
    """Raise a clear error when ``path`` is missing, not a file, or empty."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); it is not a checkpoint")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK\x03\x04); its legacy format and upstream's older files start as pickles
    if not head.startswith(_ZIP_MAGIC) and head[:1] != _PICKLE_PROTO:
        raise CheckpointError(
            f"{path}: not a checkpoint (it starts with bytes {head!r}; torch.save writes a zip archive or a pickle)"
        )
    return path


def load_plain(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU; raises :class:`pickle.UnpicklingError` for pickled classes.

    Truncated or corrupt files raise :class:`CheckpointError` naming the file.
    """
    path = check_readable(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise
    except Exception as e:  # torch raises many types for damaged archives (RuntimeError, EOFError, IndexError...)
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupt file?): {e}") from e


def make_checkpoint(
    model: torch.nn.Module,
    names: list[str],
    *,
    ema: torch.nn.Module | None = None,
    updates: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int = -1,
    best_fitness: float | None = None,
    train_args: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """Assemble a checkpoint dict (see the module docstring) from live training objects."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": model.arch(),
        "names": [str(n) for n in names],
        "model": _cpu_state(model),
        "ema": _cpu_state(ema) if ema is not None else None,
        "updates": int(updates),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "best_fitness": None if best_fitness is None else float(best_fitness),
        "train_args": _plain(train_args) if train_args is not None else None,
        "extra": extra or {},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def strip_checkpoint(ckpt: dict, half: bool = True) -> dict:
    """The deployable part of a training checkpoint: EMA weights (if any) as ``model``, fp16, no training state."""
    weights = ckpt.get("ema") or ckpt["model"]
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    out = dict(ckpt)
    out.update(model=weights, ema=None, updates=0, optimizer=None, scheduler=None, scaler=None, epoch=-1, extra={})
    return out


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _plain(obj: Any) -> Any:
    """Convert arguments (dataclasses, Paths, tuples, numpy scalars) to types ``weights_only`` loading accepts."""
    if hasattr(obj, "__dataclass_fields__"):
        obj = {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return str(obj)
