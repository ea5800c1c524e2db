"""Run directories and small file helpers."""

from __future__ import annotations

import re
from pathlib import Path

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
