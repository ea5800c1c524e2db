"""Helpers for the thin command-line programs: dataclass configs <-> argparse.

A config field declared with :func:`flag` carries its help, choices and range once; :func:`add_flags` makes the
command-line flags from them and :func:`check_flags` (called by the config's ``__post_init__``) validates any
instance with them, whether it came from the command line, a checkpoint or code.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FlagSpec:
    """What a config field's command-line flag says and accepts (see :func:`flag`)."""

    help: str = ""
    choices: tuple | None = None
    low: float | None = None  # smallest allowed value (or, with low_open, the bound it must exceed)
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    aliases: tuple[str, ...] = ()
    cli: tuple[tuple[str, Any], ...] = ()  # further argparse keywords (e.g. nargs="?" with a const)

    def range_text(self) -> str:
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(x for x in (lo, hi) if x)

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming the flag and the value when ``value`` breaks the choices or the range."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} {value!r} is not one of {self.choices}")
        if self.low is None and self.high is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise ValueError(f"{name} must be {self.range_text()}, got {value}")


def flag(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, help: str = "",
         choices: Iterable | None = None, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, aliases: Iterable[str] = (),
         **cli: Any) -> Any:  # fmt: skip
    """A dataclass field that is also a command-line flag ``--name-with-dashes``: its default (or ``factory``), help,
    choices and range (``low``/``high``, inclusive unless ``low_open``/``high_open``); ``cli``: further argparse
    keywords. The flag's type comes from the field's annotation."""
    spec = FlagSpec(help, tuple(choices) if choices is not None else None, low, high, low_open, high_open,
                    tuple(aliases), tuple(cli.items()))  # fmt: skip
    return dataclasses.field(default=default, default_factory=factory, metadata={"flag": spec})


def reflag(base: type, name: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
           help: str | None = None, **cli: Any) -> Any:  # fmt: skip
    """The :func:`flag` field ``name`` of the dataclass ``base`` declared again for a subclass: the same help,
    choices and range, with what is given changed (another default or ``factory``, help, or argparse keywords such
    as ``required=True``)."""
    f = next((f for f in dataclasses.fields(base) if f.name == name and "flag" in f.metadata), None)
    if f is None:
        raise TypeError(f"{base.__name__} has no flag field {name!r}")
    if default is dataclasses.MISSING and factory is dataclasses.MISSING:
        default, factory = f.default, f.default_factory
    spec = f.metadata["flag"]
    spec = dataclasses.replace(spec, help=spec.help if help is None else help, cli=(*spec.cli, *cli.items()))
    return dataclasses.field(default=default, default_factory=factory, metadata={"flag": spec})


def flag_name(field_name: str) -> str:
    """``--iterative-steps`` for ``iterative_steps``; a trailing underscore (``global_``) is dropped."""
    return "--" + field_name.rstrip("_").replace("_", "-")


_TYPES: dict[str, type] = {"int": int, "float": float, "Path": Path}


def _argparse_type(annotation: str) -> dict:
    """argparse keywords for a field annotated ``bool``, ``int``, ``float``, ``str``, ``Path``, ``list[X]``,
    ``tuple[X, ...]``, or any of them ``| None``."""
    base = annotation.replace(" | None", "").strip()
    if base == "bool":
        return {"action": "store_true"}
    for seq in ("list[", "tuple["):
        if base.startswith(seq):
            item = base[len(seq) : -1].split(",")[0].strip()
            return {"nargs": "+", "type": _TYPES.get(item, str)}
    return {"type": _TYPES.get(base, str)}


def add_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, only: Iterable[str] | None = None,
              defaults: bool = True) -> None:  # fmt: skip
    """Add a flag for each :func:`flag` field of the dataclass ``cls`` (or of the fields named in ``only``), in the
    order of the fields. A ``bool`` field whose default is True becomes ``--no-name``, which sets it False.
    ``defaults=False``: every flag left out parses as None, for flags that override settings read elsewhere."""
    wanted = set(only) if only is not None else None
    values = vars(dataclass_defaults(cls))
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("flag")
        if spec is None or (wanted is not None and f.name not in wanted):
            continue
        name = flag_name(f.name)
        kw: dict[str, Any] = {**_argparse_type(str(f.type)), "dest": f.name, "help": spec.help}
        if kw.get("action") != "store_true":
            kw["default"] = values.get(f.name)
        elif values.get(f.name) is True:
            kw["action"], name = "store_false", "--no-" + name[2:]
        if not defaults:
            kw["default"] = None
        if spec.choices is not None:
            kw["choices"] = spec.choices
        kw.update(dict(spec.cli))
        p.add_argument(name, *spec.aliases, **kw)


def check_flags(cfg: Any, name: Callable[[str], str] = flag_name) -> None:
    """Validate every :func:`flag` field of the dataclass instance ``cfg`` (lists element by element); errors call
    the field ``name(field_name)``, by default its flag (``--iterative-steps``)."""
    for f in dataclasses.fields(cfg):
        spec = f.metadata.get("flag")
        value = getattr(cfg, f.name)
        if spec is None or (value is None and "None" in str(f.type)):
            continue
        if value is None:
            raise ValueError(f"{name(f.name)} needs a value, got None")
        for v in value if isinstance(value, list | tuple) else [value]:
            spec.check(name(f.name), v)


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


def _bad_input_errors() -> tuple[type[Exception], ...]:
    """The errors that :func:`run_main` reports in one line. Imported only when something was raised: the checkpoint
    module imports torch, which a program may want to import later (``val.py`` starts its drawing processes first)."""
    from utils.checkpoint import CheckpointError
    from utils.files import WriteError

    return ValueError, FileNotFoundError, CheckpointError, WriteError


#: young objects that start a garbage collection in a program (CPython's default is 700)
YOUNG_OBJECTS_PER_COLLECTION = 50_000


def run_main(main, argv: list[str] | None = None) -> None:
    """Run a program's ``main``: bad input ends it with its message and exit status 2 (no traceback), Ctrl-C
    with status 130.

    Without ``argv`` (the program's own command line, read by ``main``) the process is the program's, and two
    settings of the garbage collector save it time; with ``argv`` (``main`` called from other code, e.g. a test)
    nothing is changed:

    - a collection starts after :data:`YOUNG_OBJECTS_PER_COLLECTION` new objects instead of 700: importing torch
      creates ~170,000 objects that live for the whole run, and the default ran three full searches for cycles
      through them (val.py on BCCD, 2 cores: 0.17 s of collections, 0.08 s with this);
    - when ``main`` returns, the objects left are moved out of the collector's reach (:func:`gc.freeze`), so
      that the interpreter's shutdown does not search the ~250,000 objects of torch, Matplotlib and the model for
      cycles (0.4-0.6 s of that val.py run). ``atexit`` handlers still run and objects outside reference cycles
      are still released one by one; only garbage in reference cycles is left to the operating system (files here
      are written in ``with`` blocks, so none waits for a collection to be flushed)."""
    import gc
    import logging
    import sys

    if argv is None:
        gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, *gc.get_threshold()[1:])
    try:
        main(argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if not isinstance(e, _bad_input_errors()):
            raise
        logging.getLogger(__name__).error("error: %s", e)
        sys.exit(2)
    finally:
        if argv is None:
            gc.freeze()
