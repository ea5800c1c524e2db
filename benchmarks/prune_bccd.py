"""Prune-then-recover on BCCD: the trained upstream yolov5s loses half of its channels, then is fine-tuned alone
or with the unpruned model distilling into it (same epochs, image size and seeds).

    python benchmarks/prune_bccd.py --imgsz 320 --epochs 12 --seeds 0 1

Each finished step leaves a JSON file in benchmarks/results/prune_bccd/, so an interrupted benchmark continues
where it stopped. The summary goes to benchmarks/results/prune_bccd/summary.json and, as a Markdown table, to the
end of docs/benchmarks.md between its prune_bccd markers. Every mAP is measured by the same validation
(utils.runners.val, conf 0.001, IoU 0.6) on the BCCD val split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, bccd_data_yaml, environment, write_json
from models.loading import load_model
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.files import load_yaml
from utils.log import setup_logging
from utils.pruning.config import PruneConfig
from utils.pruning.report import latency_ms, model_cost
from utils.pruning.workflow import prune_checkpoint
from utils.runners.val import ValConfig, run_val
from utils.training.config import TrainConfig
from utils.training.engine import train

TEACHER = REPO.parent / "shared" / "fixtures" / "upstream-v7.0-yolov5s-bccd.pt"
RESULTS = REPO / "benchmarks" / "results" / "prune_bccd"
RUNS = REPO / "benchmarks" / "runs" / "prune_bccd"
MARK_BEGIN, MARK_END = "<!-- prune_bccd:begin -->", "<!-- prune_bccd:end -->"


def _cached(name: str, fn) -> dict:
    out = RESULTS / f"{name}.json"
    if out.is_file():
        return json.loads(out.read_text())
    t0 = time.time()
    payload = {"run": name, **fn(), "seconds": None}
    payload["seconds"] = round(time.time() - t0, 1)
    write_json(out, payload)
    return payload


def _measure(weights: Path, data: Path, imgsz: int, workers: int) -> dict:
    """mAP on the val split, parameters, GFLOPs and CPU latency of a checkpoint."""
    result, _ = run_val(
        ValConfig(data=str(data), weights=str(weights), imgsz=imgsz, batch_size=16, device="cpu", workers=workers,
                  project=str(RUNS / "val"), name=weights.stem, exist_ok=True, noplots=True)
    )  # fmt: skip
    cost = model_cost(load_model(weights), imgsz, runs=20)
    return {"mAP50": round(result.map50, 4), "mAP50-95": round(result.map, 4), "cost": cost.to_dict()}


def _latency(teacher: Path, pruned: Path, imgsz: int, rounds: int = 3) -> dict:
    """CPU latency of the teacher and the pruned model, measured in alternation (the machine is shared, so the
    load changes over time; alternating exposes both to the same load). Medians of ``rounds`` x 10 passes."""
    models = {"teacher": load_model(teacher), "pruned": load_model(pruned)}
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            times[k].append(latency_ms(m, imgsz, "cpu", runs=10))
    return {k: round(statistics.median(v), 2) for k, v in times.items()}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, default=TEACHER)
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--importance", default="l1")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument(
        "--report-only", action="store_true", help="write the summary from the finished runs; train nothing missing"
    )
    a = p.parse_args(argv)
    setup_logging()
    data = bccd_data_yaml()
    pruned = RUNS / f"pruned_{a.importance}_{a.ratio}.pt"

    teacher = _cached("teacher", lambda: _measure(a.teacher, data, a.imgsz, a.workers))

    def do_prune() -> dict:
        r = prune_checkpoint(PruneConfig(weights=str(a.teacher), out=str(pruned), ratio=a.ratio,
                                         importance=a.importance, imgsz=a.imgsz))  # fmt: skip
        return {"ratio": r.ratio, "weights": str(pruned.relative_to(REPO)), **_measure(pruned, data, a.imgsz, 0)}

    after_prune = _cached(f"pruned_{a.importance}_{a.ratio}", do_prune)

    missing: list[str] = []

    def finetune(kind: str, seed: int) -> dict | None:
        name = f"{kind}_s{seed}"
        if a.report_only and not (RESULTS / f"{name}.json").is_file():
            missing.append(name)
            return None
        kd = kind == "distilled"
        hyp = "data/hyps/hyp.kd.yaml" if kd else "data/hyps/hyp.scratch-low.yaml"
        cfg = TrainConfig(
            weights=str(pruned), data=str(data), hyp=hyp, imgsz=a.imgsz, epochs=a.epochs, batch_size=a.batch_size,
            workers=a.workers, seed=seed, project=str(RUNS), name=name, exist_ok=True, noval=True, noplots=True,
        )  # fmt: skip

        def run() -> dict:
            plugin = Distiller(KDConfig(teacher=str(a.teacher)), load_yaml(hyp)) if kd else None
            result = train(cfg, plugin=plugin)
            return {"seconds_per_epoch": round(result.seconds_per_epoch, 2), "weights": str(result.last),
                    **_measure(result.last, data, a.imgsz, a.workers)}  # fmt: skip

        return _cached(name, run)

    runs: dict[str, list[dict]] = {"fine-tuned": [], "distilled": []}
    for seed in a.seeds:  # seed by seed, so that an interrupted benchmark still has matched pairs
        for kind in runs:
            run = finetune(kind, seed)
            if run is not None:
                runs[kind].append(run)
    latency = _cached("latency", lambda: _latency(a.teacher, pruned, a.imgsz))
    summary = {
        "command": "python benchmarks/prune_bccd.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "imgsz": a.imgsz,
        "epochs": a.epochs,
        "seeds": a.seeds,
        "ratio": a.ratio,
        "importance": a.importance,
        "teacher": teacher,
        "pruned": after_prune,
        "runs": runs,
        "latency_ms": latency,
        "missing_runs": missing,
        "environment": environment(),
    }
    write_json(RESULTS / "summary.json", summary)
    _write_doc(a.doc, summary)
    return a.doc


def _row(label: str, rs: list[dict], teacher: dict, cpu_ms: float) -> str:
    m = statistics.mean(r["mAP50-95"] for r in rs)
    m50 = statistics.mean(r["mAP50"] for r in rs)
    c, t = rs[0]["cost"], teacher["cost"]
    per_seed = ", ".join(f"{r['mAP50-95']:.3f}" for r in rs)
    return (
        f"| {label} | {m50:.3f} | {m:.3f} | {per_seed} | {(m - teacher['mAP50-95']) * 100:+.1f} pt | "
        f"{c['parameters'] / 1e6:.2f}M ({c['parameters'] / t['parameters']:.0%}) | {c['gflops']:.2f} | "
        f"{cpu_ms:.1f} |"
    )


def _write_doc(path: Path, s: dict) -> None:
    t, lat = s["teacher"], s["latency_ms"]
    if not s["runs"]["distilled"]:
        raise ValueError("no distilled run has finished yet: nothing to report")
    best = statistics.mean(r["mAP50-95"] for r in s["runs"]["distilled"])
    share = s["runs"]["distilled"][0]["cost"]["parameters"] / t["cost"]["parameters"]
    met = (t["mAP50-95"] - best) <= 0.02 and share < 0.4
    lines = [
        MARK_BEGIN,
        f"Upstream yolov5s trained on BCCD, pruned by {s['ratio']:.0%} of the channels of every layer "
        f"(`--importance {s['importance']}`), then {s['epochs']} epochs of fine-tuning at {s['imgsz']} px, "
        f"alone or with the unpruned model distilling (`train_kd.py`, output KD l2); seeds {s['seeds']}. "
        "mAP on the BCCD val split (87 images); CPU latency: median single-image fp32 forward pass of the fused "
        "model at the same image size, teacher and pruned model measured in alternation on 2 CPU cores shared "
        "with other work (absolute times are noisy; the ratio is the figure to read). The fine-tuned models have "
        "the pruned model's architecture, hence its parameters, GFLOPs and latency.",
        "",
        "| model | mAP50 | mAP50-95 | mAP50-95 per seed | vs teacher | parameters | GFLOPs | CPU ms |",
        "|---|---|---|---|---|---|---|---|",
        _row("teacher (unpruned yolov5s)", [t], t, lat["teacher"]),
        _row("pruned, not fine-tuned", [s["pruned"]], t, lat["pruned"]),
        _row(f"pruned + fine-tuned ({s['epochs']} ep)", s["runs"]["fine-tuned"], t, lat["pruned"]),
        _row(f"pruned + distilled ({s['epochs']} ep)", s["runs"]["distilled"], t, lat["pruned"]),
        "",
        f"Goal (distilled within 2 points mAP50-95 of the teacher at under 40% of its parameters): "
        f"{'met' if met else 'not met'} at this length ({(best - t['mAP50-95']) * 100:+.1f} pt at {share:.0%} "
        "of the parameters).",
        *(
            [""] + [f"Runs not finished when this table was written: {', '.join(s['missing_runs'])}."]
            if s.get("missing_runs")
            else []
        ),  # fmt: skip
        "",
        f"Command: `{s['command']}` (commit {s['environment']['commit']}, CPU, {s['environment']['cpu_count']} cores).",
        MARK_END,
    ]
    block = "\n".join(lines)
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    if MARK_BEGIN in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Pruning and recovery on BCCD\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
