"""Shared set-up of the benchmarks: the BCCD dataset in YOLO format, environment facts, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BCCD_SOURCE = REPO.parent / "shared" / "datasets" / "BCCD"
CACHE = REPO / "benchmarks" / ".cache"


def bccd_data_yaml(source: Path = BCCD_SOURCE, out: Path = CACHE / "bccd") -> Path:
    """Convert BCCD (Pascal VOC, published 205/87/72 split) to YOLO format once; returns its data yaml."""
    data = out / "data.yaml"
    if data.is_file():
        return data
    if not source.is_dir():
        raise FileNotFoundError(f"BCCD not found at {source}: the benchmarks need ../shared/datasets/BCCD")
    from utils.voc import VocConfig, convert_voc

    convert_voc(VocConfig(out=out, voc_root=source, classes=["RBC", "WBC", "Platelets"], hardlink=True))
    return data


def environment() -> dict:
    """Where a measurement was taken."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "commit": commit,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def environments_text(results: list[dict]) -> str:
    """Where a table's saved results were measured, for its footnote: each distinct CPU, thread count and torch."""
    envs = {
        f"{e['cpu']}, {e['torch_threads']} threads, torch {e['torch']}" for e in (r["environment"] for r in results)
    }
    return "; ".join(sorted(envs))


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path


def step_times(fn, steps: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` calls of ``fn`` after ``warmup`` untimed ones (CUDA synchronised)."""
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def write_doc_section(path: Path, block: str, begin: str, end: str, heading: str | None = None) -> Path:
    """Put ``block`` (a Markdown text starting with the ``begin`` marker and ending with ``end``) in place of what
    lies between those markers in ``path``; a file without them gets it appended, under ``## heading`` if given."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        text = head + block + rest.partition(end)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + (f"## {heading}\n\n" if heading else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def train_resumable(cfg, plugin_factory=None) -> tuple[Path, float | None]:
    """Train ``cfg`` (a TrainConfig) as a normal run, continuing it with ``--resume`` when an earlier process left
    an unfinished ``last.pt`` in its run folder (``cfg.project/cfg.name``), and not at all when that run finished.

    ``plugin_factory()`` makes the run's add-on (or None) for a new run; a resumed one rebuilds it from its
    checkpoint. Returns the final
    ``last.pt`` and the seconds per epoch of this process's share of the run (None when nothing was left to train).
    """
    from utils.checkpoint import load_plain
    from utils.training.config import TrainConfig
    from utils.training.engine import train

    last = Path(cfg.project) / cfg.name / "weights" / "last.pt"
    if last.is_file():
        if int(load_plain(last).get("epoch", -1)) < 0:  # finished: only the final weights are left in it
            return last, None
        print(f"continuing {last} with --resume", flush=True)
        result = train(TrainConfig(resume=str(last)))  # the checkpoint rebuilds the run's add-ons
    else:
        result = train(cfg, [plugin_factory()] if plugin_factory else [])
    return result.last, result.seconds_per_epoch
