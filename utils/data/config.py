"""Dataset description files (the ``data.yaml`` that ``--data`` points to).

A data yaml names the dataset root, the image sources of each split and the class names::

    path: ../datasets/bccd      # root; relative to this yaml's folder (else, as upstream, the working directory)
    train: images/train         # folder, .txt list of images, glob, or a list of those; relative to `path`
    val: images/val
    test: images/test           # optional
    nc: 3                       # optional when `names` is given
    names: [RBC, WBC, Platelets] # or {0: RBC, 1: WBC, 2: Platelets}
"""

from __future__ import annotations

import dataclasses
import logging
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOGGER = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MAX_CLASSES = 100_000  # far above any detection dataset; bounds what a typo such as ``nc: 1e9`` can allocate


@dataclass
class DataConfig:
    """A parsed data yaml.

    Attributes:
        file: the yaml file it was read from.
        path: dataset root (absolute).
        train, val: image sources of the split, each an absolute path (folder, .txt list, glob or image file).
        test: sources of the optional test split, or ``None``.
        nc: number of classes.
        names: class names, ``len(names) == nc``; index = class id.
        extra: any other keys of the yaml, unchanged (for example ``download``).
    """

    file: Path
    path: Path
    train: list[Path]
    val: list[Path]
    test: list[Path] | None
    nc: int
    names: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[Path]:
        """The sources of split ``name`` (``'train'``, ``'val'`` or ``'test'``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        sources = getattr(self, name)
        if sources is None:
            raise ValueError(f"{self.file}: the data yaml defines no {name!r} split")
        return sources

    def single_class(self) -> DataConfig:
        """A copy that treats every object as one class (``nc=1``; name kept if there was only one, else ``'item'``)."""
        names = self.names if len(self.names) == 1 else ["item"]
        return dataclasses.replace(self, nc=1, names=list(names))


def _bad(file: Path, message: str) -> ValueError:
    return ValueError(f"{file}: {message}")


def _parse_names(file: Path, raw: Any) -> list[str]:
    if isinstance(raw, (list, tuple)):
        bad = [n for n in raw if isinstance(n, (list, tuple, dict)) or n is None]
        if bad:
            raise _bad(file, f"'names' entries must be plain names, got {reprlib.repr(bad[0])}")
        return [str(n) for n in raw]
    if isinstance(raw, dict):
        if any(isinstance(v, (list, tuple, dict)) or v is None for v in raw.values()):
            raise _bad(file, f"'names' values must be plain names, got {reprlib.repr(raw)}")
        try:
            by_id = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError, OverflowError):
            raise _bad(file, f"'names' keys must be integer class ids, got {reprlib.repr(list(raw))}") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise _bad(
                file, f"'names' keys must be the class ids 0..{len(by_id) - 1} without gaps, got {sorted(by_id)}"
            )
        return [by_id[i] for i in range(len(by_id))]
    raise _bad(file, f"'names' must be a list or a {{id: name}} mapping, got {type(raw).__name__}")


def _parse_sources(file: Path, root: Path, key: str, raw: Any) -> list[Path]:
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    if not items:
        raise _bad(file, f"{key!r} is an empty list")
    out = []
    for item in items:
        if not isinstance(item, (str, Path)) or not str(item).strip():
            raise _bad(file, f"{key!r} entries must be paths (folder, .txt list or glob), got {reprlib.repr(item)}")
        p = Path(str(item).strip()).expanduser()
        out.append(Path(os.path.normpath(p if p.is_absolute() else root / p)))
    return out


def _relative_root(file: Path, root: Path) -> Path:
    """A relative ``path:`` is taken from the yaml's folder; where that does not exist but upstream YOLOv5's
    reading does (from its repository root: the working directory, or the folder above ``data/``), that one."""
    ours = file.parent / root
    if not ours.exists():
        for base, what in ((Path.cwd(), "the working directory"), (file.parent.parent, "the folder above the yaml")):
            if (base / root).exists():
                LOGGER.info("%s: path %s resolved from %s (upstream YOLOv5's convention)", file.name, root, what)
                return base / root
    return ours


def load_data_config(path: str | Path, single_cls: bool = False) -> DataConfig:
    """Read and validate a data yaml.

    Args:
        path: the yaml file.
        single_cls: return :meth:`DataConfig.single_class` of the result.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the yaml cannot be parsed, a required key (``train``, ``val``, ``names`` or ``nc``) is missing,
            or ``nc`` disagrees with ``names``; the message names the file and the key.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"data yaml not found: {file}")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise _bad(file, f"not a valid yaml file ({e})") from e
    except RecursionError:
        raise _bad(file, "not a usable yaml file (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise _bad(file, f"expected a mapping of keys (path, train, val, nc, names), got {type(raw).__name__}")
    file = file.resolve()

    root_raw = raw.get("path")
    if root_raw in (None, ""):
        root = file.parent
    elif not isinstance(root_raw, str):
        raise _bad(file, f"'path' must be the dataset folder, got {reprlib.repr(root_raw)}")
    else:
        root = Path(str(root_raw)).expanduser()
        root = root if root.is_absolute() else _relative_root(file, root)
    root = Path(os.path.normpath(os.path.abspath(root)))

    for key in ("train", "val"):
        if raw.get(key) in (None, ""):
            raise _bad(file, f"missing required key {key!r} (image folder, .txt list or glob of the split)")
    sources = {key: _parse_sources(file, root, key, raw[key]) for key in ("train", "val")}
    test = None if raw.get("test") in (None, "", []) else _parse_sources(file, root, "test", raw["test"])

    nc = raw.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= MAX_CLASSES):
        raise _bad(file, f"'nc' must be a positive integer (at most {MAX_CLASSES}), got {reprlib.repr(nc)}")
    if raw.get("names") is None:
        if nc is None:
            raise _bad(file, "missing required key 'names' (list of class names)")
        names = [f"class{i}" for i in range(nc)]
        LOGGER.warning("%s: no 'names' given; using %s..%s", file, names[0], names[-1])
    else:
        names = _parse_names(file, raw["names"])
        if not names:
            raise _bad(file, "'names' is empty")
        if len(names) > MAX_CLASSES:
            raise _bad(file, f"'names' has {len(names)} entries; at most {MAX_CLASSES} classes are supported")
        if nc is None:
            nc = len(names)
        elif nc != len(names):
            raise _bad(file, f"'nc' is {nc} but 'names' has {len(names)} entries; they must agree")

    extra = {k: v for k, v in raw.items() if k not in ("path", "train", "val", "test", "nc", "names")}
    cfg = DataConfig(file, root, sources["train"], sources["val"], test, nc, names, extra)
    return cfg.single_class() if single_cls else cfg
