"""The pipeline's report: one table (accuracy, size, cost, latency) and one comparison plot."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from models import load_model
from utils.pipeline.stages import metrics_file
from utils.torch_utils import count_parameters, forward_ms, model_flops, select_device

LOGGER = logging.getLogger(__name__)
LABELS = {
    "teacher": "teacher",
    "baseline": "student, trained alone",
    "distilled": "student, distilled",
    "recovered": "pruned teacher, recovered by distillation",
}


@dataclass
class Row:
    """One model of the report; ``None`` where a figure could not be measured."""

    name: str
    weights: Path
    map50: float | None = None
    map: float | None = None
    params: int | None = None
    gflops: float | None = None
    latency_ms: float | None = None
    onnx_ms: float | None = None


def torch_latency_ms(model: torch.nn.Module, imgsz: int, runs: int, device: torch.device) -> float:
    """Median wall time of one forward pass of a ``[1, 3, imgsz, imgsz]`` image, in ms (after 3 warm-up runs)."""
    return forward_ms(model, torch.zeros(1, 3, imgsz, imgsz, device=device), runs, warmup=3)


def onnx_latency_ms(path: Path, imgsz: int, runs: int) -> float:
    """Median time of one onnxruntime (CPU) run of a ``[1, 3, imgsz, imgsz]`` image, in ms."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.zeros((1, 3, imgsz, imgsz), dtype=np.float32)
    times = []
    for i in range(runs + 3):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def measure(rows: list[Row], run: Path, imgsz: int, runs: int, device: str, onnx: Path | None) -> None:
    """Fill each row from its metrics.json (training's or val.py's) and from timing its model here."""
    dev = select_device(device)
    for row in rows:
        metrics = metrics_file(run, row.name)
        if metrics.is_file():
            m = json.loads(metrics.read_text())
            row.map50, row.map = m["mAP50"], m["mAP50-95"]
        model = load_model(row.weights, device=dev, fuse=True)
        row.params = count_parameters(model)
        row.gflops = model_flops(model, imgsz)
        row.latency_ms = torch_latency_ms(model, imgsz, runs, dev)
    if onnx is not None and onnx.is_file():
        smallest = min(rows, key=lambda r: r.params or 0)
        smallest.onnx_ms = onnx_latency_ms(onnx, imgsz, runs)


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def write_report(rows: list[Row], out: Path, facts: dict[str, str], plot: Path | None) -> Path:
    """``report.md``: the settings, one table, notes, and the plot."""
    lines = ["# Compression report", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += [
        "",
        "| model | weights | mAP50 | mAP50-95 | parameters | GFLOPs | latency / image (PyTorch) | ONNX latency |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {LABELS.get(r.name, r.name)} | `{r.weights}` | {_fmt(r.map50, '.3f')} | {_fmt(r.map, '.3f')} | "
            f"{_fmt(r.params, ',d')} | {_fmt(r.gflops, '.2f')} | {_fmt(r.latency_ms, '.1f')} ms | "
            f"{_fmt(r.onnx_ms, '.1f')}{' ms' if r.onnx_ms is not None else ''} |"
        )
    lines += [
        "",
        "mAP on the validation split of the data yaml (val.py, conf 0.001, IoU 0.6). Latency: median of batch-1 "
        "forward passes (no NMS) on this machine; ONNX latency with onnxruntime on the CPU, for the exported "
        "(smallest) model only. A dash: not measured (the stage was skipped).",
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
        ax.scatter(r.latency_ms, r.map, s=max(20, (r.params or 0) / 2e4), alpha=0.6, label=LABELS.get(r.name, r.name))
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
