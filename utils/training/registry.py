"""The add-ons a training run can have, by name, and their record in checkpoints.

``train_args["addons"]`` of a checkpoint is a list of ``{"kind": name, "settings": {...}}``; ``extra["addons"]``
maps each kind to its state. Resuming rebuilds exactly the recorded add-ons, whichever program resumes.
"""

from __future__ import annotations

from utils.distill.distiller import Distiller
from utils.pruning.sparsity import BNSparsity
from utils.training.addons import AddOn

#: kind -> add-on class
ADDONS: dict[str, type[AddOn]] = {"distill": Distiller, "sparsity": BNSparsity}


def addon_records(addons: list[AddOn]) -> list[dict]:
    """What a checkpoint records of each add-on: its kind and settings."""
    return [{"kind": a.kind, "settings": a.settings()} for a in addons]


def legacy_records(train_args: dict) -> list[dict]:
    """The add-on records of a checkpoint written before add-ons were recorded by kind (``train_args["plugin"]``)."""
    plugin = train_args.get("plugin") or {}
    records = []
    if plugin.get("kd"):
        records.append({"kind": "distill", "settings": {"kd": plugin["kd"], "weights": plugin.get("kd_weights") or {}}})
    if plugin.get("sparsity"):
        records.append({"kind": "sparsity", "settings": {"strength": plugin["sparsity"]}})
    return records


def build_addons(records: list[dict], source: str) -> list[AddOn]:
    """Rebuild the add-ons of ``records`` (from the checkpoint ``source``); ValueError names an unknown kind."""
    addons = []
    for r in records:
        kind = r.get("kind") if isinstance(r, dict) else None
        if kind not in ADDONS:
            raise ValueError(f"{source}: the run has an add-on of kind {kind!r}; known kinds: {sorted(ADDONS)}")
        try:
            addons.append(ADDONS[kind].from_settings(dict(r.get("settings") or {})))
        except (ValueError, FileNotFoundError) as e:  # e.g. the teacher file moved: never continue without it
            raise type(e)(f"{source}: the run's {kind} add-on cannot be rebuilt: {e}") from e
    return addons


def check_addons(addons: list[AddOn]) -> None:
    """One add-on of each kind, and no two that name the same loss term."""
    kinds = [a.kind for a in addons]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"each add-on may be used once, got {kinds}")
    names = [n for a in addons for n in a.loss_names]
    if len(set(names)) != len(names):
        raise ValueError(f"add-ons {kinds} name the same loss term: {names}")
