"""The pipeline's report: one table (accuracy, size, cost, latency) and one comparison plot."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from models import load_model
from utils.pipeline.stages import Models, read_metrics
from utils.torch_utils import count_parameters, model_flops, select_device

LOGGER = logging.getLogger(__name__)
LABELS = {
    "teacher": "teacher",
    "baseline": "student, trained alone",
    "distilled": "student, distilled",
    "recovered": "pruned teacher, recovered by distillation",
}


@dataclass
class Row:
    """One model of the report; ``None`` where a figure could not be measured. ``onnx_ms`` only for the exported
    model and its INT8 twin (whose PyTorch figures stay None)."""

    name: str
    weights: Path
    map50: float | None = None
    map: float | None = None
    params: int | None = None
    gflops: float | None = None
    latency_ms: float | None = None
    onnx_ms: float | None = None
    mb: float | None = None  # size of the file on disk
    title: str | None = None  # the report's name for the row (default: LABELS)

    @property
    def label(self) -> str:
        return self.title or LABELS.get(self.name, self.name)


def alternating_ms(calls: dict[str, Callable[[], object]], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds of each call, timed in rounds that run every call once in turn, so that a change of the
    machine's load during the measurement reaches all of them alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: statistics.median(t) for name, t in times.items()}


def _onnx_call(path: Path, imgsz: int) -> Callable[[], object]:
    """One onnxruntime (CPU) run of a ``[1, 3, imgsz, imgsz]`` image."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, 3, imgsz, imgsz), dtype=np.float32)}
    return lambda: session.run(None, feed)


def _read_metrics(row: Row, run: Path) -> None:
    m = read_metrics(run, row.name)
    if m is not None:
        row.map50, row.map = m["mAP50"], m["mAP50-95"]


def measure(rows: list[Row], models: Models, imgsz: int, runs: int, device: str, exported: str | None) -> None:
    """Fill each row from its metrics.json (training's or val.py's) and from timing its model here; the exported
    model also gets its ONNX latency, and an INT8 row is appended when ``models.int8`` exists. PyTorch models are
    timed in alternation with each other, the float and INT8 ONNX files with each other."""
    dev = select_device(device)
    x = torch.zeros(1, 3, imgsz, imgsz, device=dev)
    calls = {}
    for row in rows:
        _read_metrics(row, models.run)
        model = load_model(row.weights, device=dev, fuse=True)
        row.params, row.gflops = count_parameters(model), model_flops(model, imgsz)
        row.mb = row.weights.stat().st_size / 1e6
        calls[row.name] = partial(_infer, model, x)
    for name, ms in alternating_ms(calls, runs).items():
        next(r for r in rows if r.name == name).latency_ms = ms
    source = next((r for r in rows if r.name == exported), None)
    if source is None or not models.onnx.is_file():
        return
    onnx = {"float": _onnx_call(models.onnx, imgsz)}
    if models.int8.is_file():
        onnx["int8"] = _onnx_call(models.int8, imgsz)
        q = Row("int8", models.int8, params=source.params, mb=models.int8.stat().st_size / 1e6,
                title=f"{source.label}, INT8 ONNX")  # fmt: skip
        _read_metrics(q, models.run)
        rows.append(q)
    times = alternating_ms(onnx, runs)
    source.onnx_ms = times["float"]
    if "int8" in times:
        q.onnx_ms = times["int8"]


def _infer(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def _times(speedup: float) -> str:
    return f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"


def headline(rows: list[Row]) -> list[str]:
    """The sentences a user acts on: what pruning, distillation and INT8 gave here, from the rows that exist."""
    by = {r.name: r for r in rows}
    out = []
    t, p = by.get("teacher"), by.get("recovered")
    if t and p and t.map and p.map is not None and t.params and p.params:
        speed = f" and runs {_times(t.latency_ms / p.latency_ms)} here" if t.latency_ms and p.latency_ms else ""
        out.append(
            f"The pruned teacher, recovered by distillation, keeps {p.map / t.map:.0%} of the teacher's mAP50-95 "
            f"({p.map:.3f} vs {t.map:.3f}) at {p.params / t.params:.0%} of its parameters{speed}."
        )
    a, d = by.get("baseline"), by.get("distilled")
    if a and d and a.map is not None and d.map is not None:
        diff = 100 * (d.map - a.map)
        verb = "gained" if diff >= 0 else "lost"
        out.append(f"Distillation {verb} the student {abs(diff):.1f} points of mAP50-95 over training it alone "
                   f"({d.map:.3f} vs {a.map:.3f}).")  # fmt: skip
    q = by.get("int8")
    src = next((r for r in rows if r.onnx_ms is not None and r.name != "int8"), None)
    if q and src and q.onnx_ms and src.onnx_ms:
        acc = f", mAP50-95 {q.map:.3f} vs {src.map:.3f}" if q.map is not None and src.map is not None else ""
        out.append(f"INT8 runs the exported model {_times(src.onnx_ms / q.onnx_ms)} than float ONNX in a "
                   f"{q.mb:.1f} MB file{acc}.")  # fmt: skip
    return out


def write_report(rows: list[Row], out: Path, facts: dict[str, str], plot: Path | None) -> Path:
    """``report.md``: the headline, the table, the settings, notes, and the plot."""
    lines = ["# Compression report", "", *headline(rows), ""]
    lines += [
        "| model | weights | mAP50 | mAP50-95 | parameters | GFLOPs | file | latency (PyTorch) | latency (ONNX) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | `{r.weights}` | {_fmt(r.map50, '.3f')} | {_fmt(r.map, '.3f')} | "
            f"{_fmt(r.params, ',d')} | {_fmt(r.gflops, '.2f')} | {_fmt(r.mb, '.1f')} MB | "
            f"{_fmt(r.latency_ms, '.1f')}{' ms' if r.latency_ms is not None else ''} | "
            f"{_fmt(r.onnx_ms, '.1f')}{' ms' if r.onnx_ms is not None else ''} |"
        )
    lines += [""] + [f"- {k}: {v}" for k, v in facts.items()]
    lines += [
        "",
        "mAP on the validation split of the data yaml (val.py, conf 0.001, IoU 0.6). Latency: median of batch-1 "
        "forward passes (no NMS) on this machine, the PyTorch models timed in turn with each other and the ONNX "
        "files (onnxruntime, CPU) with each other. Files: checkpoints store fp16 weights, the INT8 file 8-bit ones. "
        "A dash: not measured (the stage was skipped).",
    ]
    if plot is not None:
        lines += ["", f"![comparison]({plot.name})"]
    out.write_text("\n".join(lines) + "\n")
    return out


def plot_comparison(rows: list[Row], path: Path) -> Path | None:
    """mAP50-95 against latency (marker area ~ parameters), one point per model, named in the legend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        LOGGER.warning("matplotlib is not installed: no comparison plot")
        return None
    pts = [r for r in rows if r.latency_ms is not None and r.map is not None]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for r in pts:
        ax.scatter(r.latency_ms, r.map, s=max(20, (r.params or 0) / 2e4), alpha=0.6, label=r.label)
    if pts:
        ax.legend(fontsize=7, markerscale=0.5)  # a legend, not labels: close points would overwrite each other
    ax.set_xlabel("latency per image on this machine (ms)")
    ax.set_ylabel("mAP50-95 (val)")
    ax.set_title("accuracy vs. speed (marker area ~ parameters)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
