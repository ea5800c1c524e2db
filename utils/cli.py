"""Helpers for the thin command-line programs: dataclass configs <-> argparse."""

from __future__ import annotations

import argparse
import dataclasses
from types import SimpleNamespace
from typing import TypeVar

T = TypeVar("T")


def dataclass_defaults(cls: type) -> SimpleNamespace:
    """The default of every field of a dataclass, without constructing (and validating) an instance."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return SimpleNamespace(**out)


def config_from_namespace(cls: type[T], ns: argparse.Namespace) -> T:
    """Build a dataclass config from parsed flags, ignoring flags that are not fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(ns).items() if k in names})


class PlainConfig:
    """Mixin for dataclass configs stored in checkpoints as plain dicts."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Rebuild from :meth:`to_dict` output (e.g. a checkpoint's ``train_args``); unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def run_main(main, argv: list[str] | None = None) -> None:
    """Run a program's ``main``: bad input ends it with its message and exit status 2 (no traceback), Ctrl-C
    with status 130."""
    import logging
    import sys

    from utils.checkpoint import CheckpointError

    try:
        main(argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        logging.getLogger(__name__).error("error: %s", e)
        sys.exit(2)
