"""INT8 ONNX on the CPU against float ONNX and PyTorch: accuracy on BCCD, file sizes and batch-1 latency.

    python benchmarks/int8_bccd.py                                  # upstream yolov5s BCCD fixture, 320 and 640 px
    python benchmarks/int8_bccd.py --weights runs/prune/exp/weights/best.pt --imgsz 320
    python benchmarks/int8_bccd.py --calibration --imgsz 320        # compare calibration methods and per-channel

For each size the checkpoint is exported to float ONNX and INT8 ONNX (``export.py --int8``: calibrated on
``--calib-images`` images of the BCCD train split), and the checkpoint, both ONNX files are evaluated on the BCCD val
split (utils.runners.val, conf 0.001, IoU 0.6). Latency: one letterboxed val image, batch 1, the same thread count
for PyTorch and onnxruntime (``--threads``), the three measured in alternation (``--rounds`` rounds, the order
rotated each round, ``--runs`` timed calls each after a warm-up), reported as the median of all calls. Timings only
mean something on an otherwise idle machine. Results go to benchmarks/results/int8_bccd/<weights>_<imgsz>.json and a
Markdown table in docs/benchmarks.md between the int8_bccd markers (and README.md's Quantization section between
the int8_readme markers); ``--calibration`` writes its comparison to
..._calibration.json and between the int8_calibration markers (one table per size measured so far).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REPO, bccd_data_yaml, environment, write_doc_section, write_json
from utils.cli import run_main
from utils.export import ExportConfig, QuantizeSettings, detection_agreement, quantize_onnx, run_export
from utils.export.formats import INPUT_NAME
from utils.export.quantize import CALIBRATION_METHODS, letterboxed
from utils.export.run import split_images
from utils.log import setup_logging
from utils.runners.val import ValConfig, run_val

FIXTURE = REPO.parent / "shared" / "fixtures" / "upstream-v7.0-yolov5s-bccd.pt"
RESULTS = REPO / "benchmarks" / "results" / "int8_bccd"
RUNS = REPO / "benchmarks" / "runs" / "int8_bccd"
MARK_BEGIN, MARK_END = "<!-- int8_bccd:begin -->", "<!-- int8_bccd:end -->"
CAL_BEGIN, CAL_END = "<!-- int8_calibration:begin -->", "<!-- int8_calibration:end -->"
README_BEGIN, README_END = "<!-- int8_readme:begin -->", "<!-- int8_readme:end -->"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=FIXTURE, help="checkpoint to measure (ours, upstream's, pruned)")
    p.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    p.add_argument("--calib-images", type=int, default=100, help="training images to calibrate on")
    p.add_argument("--threads", type=int, default=1, help="threads for PyTorch and onnxruntime alike")
    p.add_argument("--rounds", type=int, default=5, help="latency rounds, each timing every model in turn")
    p.add_argument("--runs", type=int, default=20, help="timed calls per model per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per model per round")
    p.add_argument("--calibration", action="store_true", help="compare calibration methods and per-channel instead")
    p.add_argument("--methods", nargs="+", default=list(CALIBRATION_METHODS), choices=CALIBRATION_METHODS,
                   help="--calibration: the methods to compare")  # fmt: skip
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the tables from the saved JSON (with --calibration: the calibration table)",
    )
    p.add_argument("--workers", type=int, default=2, help="val dataloader workers")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument(
        "--readme",
        default=str(REPO / "README.md"),
        help="also put the table in its Quantization section (between the int8_readme markers); '' for no",
    )
    return p.parse_args(argv)


def cpu_features() -> list[str]:
    """The CPU flags that decide INT8 speed (VNNI, AMX) among :data:`CPU_FLAGS`, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in CPU_FLAGS if f in flags]


def _map(weights: Path, data: Path, imgsz: int, workers: int) -> dict:
    result, _ = run_val(
        ValConfig(data=str(data), weights=str(weights), imgsz=imgsz, batch_size=16, device="cpu", workers=workers,
                  project=str(RUNS / "val"), name=weights.stem, exist_ok=True, noplots=True)
    )  # fmt: skip
    return {"mAP50": round(result.map50, 4), "mAP50-95": round(result.map, 4)}


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def latency(weights: Path, onnx_files: dict[str, Path], image: np.ndarray, a: argparse.Namespace) -> dict:
    """Median ms per batch-1 call of PyTorch fp32 and each ONNX file on ``image`` ``[1, 3, S, S]``, measured in
    alternation: each round times every model in turn (order rotated), so that load changes hit all alike."""
    from models import load_model

    torch.set_num_threads(a.threads)
    model = load_model(weights, device="cpu", fuse=True).eval()
    x = torch.from_numpy(image)
    calls = {"pytorch": lambda: model(x)}
    for name, path in onnx_files.items():
        session = _session(path, a.threads)
        calls[name] = lambda s=session: s.run(None, {INPUT_NAME: image})
    times: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    with torch.no_grad():
        for r in range(a.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                for _ in range(a.warmup):
                    calls[name]()
                for _ in range(a.runs):
                    t0 = time.perf_counter()
                    calls[name]()
                    times[name].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()}


def measure(a: argparse.Namespace, data: Path, imgsz: int) -> dict:
    out = RUNS / f"{a.weights.stem}_{imgsz}"
    result = run_export(
        ExportConfig(weights=str(a.weights), include=["onnx"], imgsz=imgsz, out_dir=str(out), int8=True,
                     data=str(data), calib_images=a.calib_images, check_images=1000)
    )  # fmt: skip
    f, q = result.files["onnx"], result.files["int8"]
    image = letterboxed(split_images(data, "val", 1)[0], imgsz)
    ms = latency(a.weights, {"onnx": f, "int8": q}, image, a)
    agreement = result.agreement
    return {
        "weights": str(a.weights),
        "imgsz": imgsz,
        "calib_images": a.calib_images,
        "settings": vars(QuantizeSettings()),
        "size_mb": {
            "pytorch": round(a.weights.stat().st_size / 1e6, 2),
            "onnx": round(f.stat().st_size / 1e6, 2),
            "int8": round(q.stat().st_size / 1e6, 2),
        },  # fmt: skip
        "accuracy": {
            "pytorch": _map(a.weights, data, imgsz, a.workers),
            "onnx": _map(f, data, imgsz, a.workers),
            "int8": _map(q, data, imgsz, a.workers),
        },  # fmt: skip
        "agreement": vars(agreement) if agreement else None,
        "latency_ms": ms,
        "latency": {"threads": a.threads, "rounds": a.rounds, "runs": a.runs, "warmup": a.warmup, "batch": 1},
        "cpu_features": cpu_features(),
        "onnxruntime": __import__("onnxruntime").__version__,
        "environment": environment(),
        "command": "python benchmarks/int8_bccd.py " + " ".join(sys.argv[1:]),
    }


def calibration(a: argparse.Namespace, data: Path, imgsz: int) -> dict:
    """mAP and detection agreement of the INT8 model for each calibration method, with and without per-channel."""
    out = RUNS / f"{a.weights.stem}_{imgsz}_calibration"
    result = run_export(ExportConfig(weights=str(a.weights), include=["onnx"], imgsz=imgsz, out_dir=str(out)))
    f = result.files["onnx"]
    calib, held_out = split_images(data, "train", a.calib_images), split_images(data, "val")
    rows = {"float": {**_map(f, data, imgsz, a.workers), "quantize_s": 0.0}}
    for method in a.methods:
        for per_channel in (True, False):
            name = f"{method}{'' if per_channel else '-pertensor'}"
            t0 = time.perf_counter()
            q = quantize_onnx(f, calib, out / f"{f.stem}-{name}.onnx", QuantizeSettings(method, per_channel))
            seconds = time.perf_counter() - t0
            agreement = detection_agreement(f, q, held_out)
            rows[name] = {**_map(q, data, imgsz, a.workers), "quantize_s": round(seconds, 1),
                          "float_matched": round(agreement.float_matched, 4),
                          "int8_matched": round(agreement.int8_matched, 4)}  # fmt: skip
    return {
        "weights": str(a.weights),
        "imgsz": imgsz,
        "calib_images": a.calib_images,
        "rows": rows,
        "cpu_features": cpu_features(),
        "onnxruntime": __import__("onnxruntime").__version__,
        "environment": environment(),
        "command": "python benchmarks/int8_bccd.py " + " ".join(sys.argv[1:]),
    }


def report(results: list[dict], begin: str = MARK_BEGIN, end: str = MARK_END) -> str:
    """The Markdown table of :func:`measure`'s results, between the markers ``begin`` and ``end``."""
    lines = [
        begin,
        "| model | size | format | file MB | mAP50-95 | mAP50 | latency ms (batch 1) | vs float ONNX |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ms = r["latency_ms"]
        for fmt, label in (("pytorch", "PyTorch fp32"), ("onnx", "ONNX float"), ("int8", "ONNX INT8")):
            acc = r["accuracy"][fmt]
            lines.append(
                f"| `{Path(r['weights']).name}` | {r['imgsz']} | {label} | {r['size_mb'][fmt]:.1f} | "
                f"{acc['mAP50-95']:.3f} | {acc['mAP50']:.3f} | {ms[fmt]:.1f} | {ms['onnx'] / ms[fmt]:.2f}x |"
            )
    r = results[-1]
    lat = r["latency"]
    agree = "; ".join(
        f"`{Path(x['weights']).name}` at {x['imgsz']} px: {x['agreement']['float_matched']:.1%} of float detections "
        f"found by INT8, {x['agreement']['int8_matched']:.1%} of INT8 detections found by float"
        for x in results
        if x["agreement"]
    )
    commands = "; ".join(f"`{c}`" for c in dict.fromkeys(x["command"] for x in results))
    commits = ", ".join(dict.fromkeys(x["environment"]["commit"] for x in results))
    lines += [
        "",
        f"BCCD val split (87 images), conf 0.001, IoU 0.6. INT8: onnxruntime {r['onnxruntime']} static QDQ, "
        f"{r['settings']['method']} calibration on {r['calib_images']} train images, per-channel "
        f"{'on' if r['settings']['per_channel'] else 'off'}, decode in float. Latency: median of {lat['rounds']} "
        f"alternating rounds x {lat['runs']} calls, {lat['threads']} thread(s), CPU {r['environment']['cpu']} "
        f"with {', '.join(r['cpu_features']) or 'no VNNI/AMX'}; each model's three formats are timed with each "
        f"other, not with the other models. Detections after NMS (conf 0.25): {agree}. "
        "The PyTorch file is the checkpoint as given (upstream's store fp16 weights); it runs in fp32.",
        "",
        f"Commands: {commands} (commits {commits}); the table is rebuilt from every saved result by "
        "`python benchmarks/int8_bccd.py --report-only`.",
        end,
    ]
    return "\n".join(lines)


def saved_results() -> list[dict]:
    """Every model and size measured so far (benchmarks/results/int8_bccd/<weights>_<imgsz>.json), in order."""
    found = [json.loads(p.read_text()) for p in RESULTS.glob("*.json") if not p.stem.endswith("_calibration")]
    return sorted(found, key=lambda r: (Path(r["weights"]).name, r["imgsz"]))


def calibration_report(results: list[dict]) -> str:
    """One table per image size of :func:`calibration`'s results, between the int8_calibration markers."""
    lines = [CAL_BEGIN]
    for r in results:
        lines += [
            f"`{Path(r['weights']).name}` at {r['imgsz']} px, {r['calib_images']} calibration images, BCCD val split "
            f"(commit {r['environment']['commit']}).",
            "",
            "| INT8 calibration | mAP50-95 | mAP50 | float detections found | INT8 detections found | quantize s |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in r["rows"].items():
            found = ("", "") if name == "float" else (f"{row['float_matched']:.1%}", f"{row['int8_matched']:.1%}")
            label = "float ONNX (reference)" if name == "float" else name
            lines.append(f"| {label} | {row['mAP50-95']:.3f} | {row['mAP50']:.3f} | {found[0]} | {found[1]} | "
                         f"{row['quantize_s']:.0f} |")  # fmt: skip
        lines.append("")
    lines += [
        "Found: the share of float detections (after NMS, conf 0.25) matched by an INT8 one of the same class with "
        "IoU >= 0.5, and the reverse. Quantize s: wall time of calibration and quantization on the machine it ran on. "
        "`-pertensor`: one scale per weight tensor instead of per output channel.",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in dict.fromkeys(r["command"] for r in results)) + ".",
        CAL_END,
    ]
    return "\n".join(lines)


def saved_calibrations(weights: Path) -> list[dict]:
    """The calibration comparisons saved for ``weights`` (every image size measured so far), by size."""
    found = [json.loads(p.read_text()) for p in RESULTS.glob(f"{weights.stem}_*_calibration.json")]
    return sorted(found, key=lambda r: r["imgsz"])


def main(argv: list[str] | None = None) -> list[dict]:
    setup_logging()
    a = parse_args(argv)
    if a.calibration and a.report_only:
        results = saved_calibrations(a.weights)
        write_doc_section(a.doc, calibration_report(results), CAL_BEGIN, CAL_END, "INT8 calibration on BCCD")
        return results
    if a.report_only:
        _write_reports(a, saved_results())
        return saved_results()
    if not a.weights.is_file():
        raise FileNotFoundError(f"--weights {a.weights} does not exist")
    data = bccd_data_yaml()
    results = []
    for imgsz in a.imgsz:
        tag = f"{a.weights.stem}_{imgsz}"
        if a.calibration:
            r = calibration(a, data, imgsz)
            write_json(RESULTS / f"{tag}_calibration.json", r)
            saved = saved_calibrations(a.weights)
            write_doc_section(a.doc, calibration_report(saved), CAL_BEGIN, CAL_END, "INT8 calibration on BCCD")
        else:
            r = measure(a, data, imgsz)
            write_json(RESULTS / f"{tag}.json", r)
        results.append(r)
    if not a.calibration:
        _write_reports(a, saved_results())
    return results


def _write_reports(a: argparse.Namespace, results: list[dict]) -> None:
    write_doc_section(a.doc, report(results), MARK_BEGIN, MARK_END, "INT8 on the CPU (BCCD)")
    if a.readme:
        write_doc_section(Path(a.readme), report(results, README_BEGIN, README_END), README_BEGIN, README_END)


if __name__ == "__main__":
    run_main(main)
