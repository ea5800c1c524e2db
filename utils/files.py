"""Run directories and small file helpers."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def increment_path(path: str | Path, exist_ok: bool = False, mkdir: bool = False) -> Path:
    """``runs/train/exp`` -> ``runs/train/exp2``, ``exp3``, ... : the first name not taken (``path`` itself if free).

    With ``exist_ok`` the path is returned as given even if it exists.
    """
    path = Path(path)
    if path.exists() and not exist_ok:
        stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        taken = set()
        pattern = re.compile(rf"^{re.escape(stem.name)}(\d+)$")
        for sibling in stem.parent.glob(f"{stem.name}*"):
            m = pattern.match(sibling.with_suffix("").name if suffix else sibling.name)
            if m:
                taken.add(int(m.group(1)))
        n = 2
        while n in taken:
            n += 1
        path = stem.with_name(f"{stem.name}{n}{suffix}")
    if mkdir:
        make_dir(path)
    return path


def make_dir(path: str | Path, flag: str = "--project") -> Path:
    """``mkdir -p path``; raises ValueError naming ``flag`` and the cause (a file in the way, a read-only disk)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a directory" if blocker is not None else e.strerror or str(e)
        raise ValueError(f"{flag}: cannot create the run directory {path}: {reason}") from e
    return path


def find_file(name: str | Path, kind: str = "file") -> Path:
    """Resolve a path given on the command line: as given (relative to the working directory), else relative to
    the repository (so ``data/hyps/hyp.scratch-low.yaml`` works from any directory). Raises FileNotFoundError."""
    path = Path(name)
    if path.is_file():
        return path
    candidate = REPO_ROOT / path
    if not path.is_absolute() and candidate.is_file():
        return candidate
    raise FileNotFoundError(f"{kind} '{name}' not found (looked in the working directory and in {REPO_ROOT})")


def load_yaml(path: str | Path, kind: str = "yaml file") -> dict:
    """Read a yaml mapping; errors name the file."""
    path = find_file(path, kind)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        bad = f"byte 0x{e.object[e.start]:02x} at offset {e.start}"
        raise ValueError(f"{path}: not a {kind}: it is not UTF-8 text ({bad}); a binary file?") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid yaml: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def save_yaml(path: str | Path, data: dict) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def os_error(e: BaseException) -> OSError | None:
    """The OSError behind ``e`` (torch wraps a failed write in a RuntimeError about zip offsets)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def write_failure(path: Path, e: BaseException) -> str:
    previous = f"the previous {path.name} is intact" if path.exists() else f"no earlier {path.name} existed"
    os_err = os_error(e)
    if os_err is not None and os_err.errno == errno.ENOSPC:
        return f"no space left on the device writing {path}; {previous}"
    if os_err is not None and os_err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {path}: {os_err.strerror} ({path.parent} is not writable); {previous}"
    if os_err is not None and os_err.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"cannot write {path}: a part of {path.parent} is a file, not a directory"
    reason = os_err.strerror if os_err is not None and os_err.strerror else str(e)
    return f"writing {path} failed: {reason}; {previous}"


TMP_SUFFIX = ".tmp"  # of the temporary file an atomic write renames over its target


class WriteError(RuntimeError):
    """A file that could not be written (disk full, read-only folder, ...); the message names it."""


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(f)`` (``f`` a binary file) into a temporary file in the same folder, fsync it,
    then rename it over ``path``. A failed write leaves the previous ``path`` (if any) untouched, never a truncated
    one, and raises :class:`WriteError` naming the file and the cause (no space left, folder not writable)."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a directory; give a file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WriteError(write_failure(path, e)) from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path
