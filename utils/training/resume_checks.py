"""What a ``last.pt`` must hold to resume from it, checked before anything is built from it.

Errors say what is wrong with the file (a missing or damaged entry), rather than failing deep inside
``load_state_dict``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from utils.checkpoint import CheckpointError, is_our_checkpoint, load_plain
from utils.training.model_setup import latest_checkpoint


def check_resume_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Raise :class:`CheckpointError` naming ``path`` and the entry when ``ckpt`` cannot continue a run."""
    epoch = ckpt.get("epoch", -1)
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise CheckpointError(f"{path}: 'epoch' is {epoch!r}, not an epoch number; the file is damaged")
    optimizer = ckpt.get("optimizer")
    if epoch < 0:
        raise CheckpointError(f"{path}: this run already finished (the checkpoint holds no training state)")
    if optimizer is None:
        raise CheckpointError(
            f"{path}: epoch {epoch} is recorded but the optimizer state is missing, so the run cannot continue "
            f"exactly; the file was edited or damaged (start a new run with --weights {path} to keep its weights)"
        )
    if not (
        isinstance(optimizer, dict)
        and isinstance(optimizer.get("state"), dict)
        and isinstance(optimizer.get("param_groups"), list)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in optimizer["param_groups"])
    ):
        raise CheckpointError(
            f"{path}: the optimizer entry is damaged (expected a dict with 'state' and 'param_groups', got "
            f"{_describe(optimizer)}); start a new run with --weights {path} to keep its weights"
        )
    for key in ("model", "ema"):
        state = ckpt.get(key)
        if key == "ema" and state is None:
            continue
        if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
            raise CheckpointError(f"{path}: the '{key}' entry is {_describe(state)}, not a state dict of tensors")
    if not isinstance(ckpt.get("arch"), dict) or not isinstance(ckpt["arch"].get("yaml"), dict):
        raise CheckpointError(f"{path}: the 'arch' entry (the model description) is missing or damaged")


def load_entry(target, state, what: str, path: str | Path) -> None:
    """``target.load_state_dict(state)``, with a failure reported as a damaged ``what`` entry of ``path``."""
    try:
        target.load_state_dict(state)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the {what} entry does not fit this run (damaged file?): {e}") from e


def _describe(value) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:6]}"
    return f"a {type(value).__name__}"


def load_resume(resume: str | bool) -> tuple[dict, Path]:
    """Read the checkpoint that ``--resume`` names (``True``: the newest ``last.pt`` under ``runs/``), once, and
    check that it can continue a run. Returns the checkpoint and its path."""
    path = latest_checkpoint() if resume is True else Path(str(resume))
    try:
        ckpt = load_plain(path)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"--resume {path}: a checkpoint written by upstream YOLOv5 (or another program) cannot be resumed, only "
            f"used as --weights {path} to start a new run"
        ) from e
    if not is_our_checkpoint(ckpt):
        raise CheckpointError(f"{path}: --resume needs a last.pt written by this project's training")
    check_resume_checkpoint(ckpt, path)
    return ckpt, path
