"""Prune-then-recover on BCCD: the trained upstream yolov5s loses half of its channels, then is fine-tuned alone
or with the unpruned model distilling into it (same epochs, image size and seeds; one distilled run per output
loss given to --kd-outputs; ``bce+pseudo`` is one run with both losses).

    python benchmarks/prune_bccd.py --imgsz 320 --epochs 25 --seeds 0 1 --kd-outputs l2 bce
    python benchmarks/prune_bccd.py --epochs 50 --seeds 0 1 2 --workers 1   # the default output loss

Each finished step leaves a JSON file in benchmarks/results/prune_bccd/ (fine-tuning runs in e<epochs>/), so an
interrupted benchmark continues where it stopped, and runs of several lengths and commands add up to one report;
a fine-tuning run killed part-way is a normal training run that the next invocation continues with --resume
(its folder is under --runs).
The summary goes to benchmarks/results/prune_bccd/summary.json and, as a Markdown table, to the end of
docs/benchmarks.md between its prune_bccd markers. Every mAP is measured by the same validation
(utils.runners.val, conf 0.001, IoU 0.6) on the BCCD val split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, bccd_data_yaml, environment, train_resumable, write_doc_section, write_json
from models.loading import load_model
from utils.cli import run_main
from utils.distill.config import DEFAULT_OUTPUT, OUTPUT_KINDS, KDConfig, output_kinds
from utils.distill.distiller import Distiller
from utils.files import load_yaml
from utils.log import setup_logging
from utils.pruning.config import PruneConfig
from utils.pruning.report import latency_ms, model_cost
from utils.pruning.workflow import prune_checkpoint
from utils.runners.val import ValConfig, run_val
from utils.training.config import TrainConfig

TEACHER = REPO.parent / "shared" / "fixtures" / "upstream-v7.0-yolov5s-bccd.pt"
RESULTS = REPO / "benchmarks" / "results" / "prune_bccd"
RUNS = REPO / "benchmarks" / "runs" / "prune_bccd"
MARK_BEGIN, MARK_END = "<!-- prune_bccd:begin -->", "<!-- prune_bccd:end -->"


def _cached(name: str, fn, folder: Path) -> dict:
    out = folder / f"{name}.json"
    if out.is_file():
        return json.loads(out.read_text())
    t0 = time.time()
    payload = {"run": name, **fn(), "seconds": None}
    payload["seconds"] = round(time.time() - t0, 1)
    write_json(out, payload)
    return payload


def _measure(weights: Path, data: Path, imgsz: int, workers: int, runs: Path) -> dict:
    """mAP on the val split, parameters, GFLOPs and CPU latency of a checkpoint."""
    result, _ = run_val(
        ValConfig(data=str(data), weights=str(weights), imgsz=imgsz, batch_size=16, device="cpu", workers=workers,
                  project=str(runs / "val"), name=weights.stem, exist_ok=True, noplots=True)
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
    p.add_argument("--kd-outputs", nargs="+", type=_outputs, default=["+".join(DEFAULT_OUTPUT)],
                   help="output losses to recover with, one distilled run each (a+b: both in one run)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data", type=Path, default=None, help="data yaml (default: BCCD from ../shared, published split)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where finished steps are recorded")
    p.add_argument("--runs", type=Path, default=RUNS, help="where the training runs are (resumable)")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument(
        "--report-only", action="store_true", help="write the summary from the finished runs; train nothing missing"
    )
    a = p.parse_args(argv)
    setup_logging()
    data = a.data or bccd_data_yaml()
    pruned = a.runs / f"pruned_{a.importance}_{a.ratio}.pt"

    teacher = _cached("teacher", lambda: _measure(a.teacher, data, a.imgsz, a.workers, a.runs), a.results)

    def do_prune() -> dict:
        r = prune_checkpoint(PruneConfig(weights=str(a.teacher), out=str(pruned), ratio=a.ratio,
                                         importance=a.importance, imgsz=a.imgsz))  # fmt: skip
        return {"ratio": r.ratio, "weights": _shown(pruned), **_measure(pruned, data, a.imgsz, 0, a.runs)}

    after_prune = _cached(f"pruned_{a.importance}_{a.ratio}", do_prune, a.results)
    if not pruned.is_file() and not a.report_only:  # recorded earlier, its file since removed: prune it again
        prune_checkpoint(PruneConfig(weights=str(a.teacher), out=str(pruned), ratio=a.ratio,
                                     importance=a.importance, imgsz=a.imgsz))  # fmt: skip

    command = "python benchmarks/prune_bccd.py " + " ".join(sys.argv[1:] if argv is None else argv)
    folder = a.results / f"e{a.epochs}"  # one folder per schedule length; the report shows them all
    commit = environment()["commit"]  # the code the runs start from

    def finetune(kind: str, seed: int) -> None:
        name = f"{kind}_s{seed}"
        kd_output = output_kinds(kind.removeprefix("distilled-").split("+")) if kind != "fine-tuned" else None
        hyp = "data/hyps/hyp.scratch-low.yaml" if kd_output is None else "data/hyps/hyp.kd.yaml"
        cfg = TrainConfig(
            weights=str(pruned), data=str(data), hyp=hyp, imgsz=a.imgsz, epochs=a.epochs, batch_size=a.batch_size,
            workers=a.workers, seed=seed, project=str(a.runs / folder.name), name=name, exist_ok=True, noval=True,
            noplots=True,
        )  # fmt: skip

        def run() -> dict:
            kd = None if kd_output is None else KDConfig(teacher=str(a.teacher), kd_output=kd_output)
            last, per_epoch = train_resumable(cfg, None if kd is None else lambda: Distiller(kd, load_yaml(hyp)))
            return {"kind": kind, "kd_output": kd_output, "seed": seed, "epochs": a.epochs, "command": command,
                    "commit": commit,
                    "seconds_per_epoch": None if per_epoch is None else round(per_epoch, 2),
                    "weights": _shown(last), **_measure(last, data, a.imgsz, a.workers, a.runs)}  # fmt: skip

        _cached(name, run, folder)

    if not a.report_only:
        for seed in a.seeds:  # seed by seed, so that an interrupted benchmark still has matched pairs
            for kind in ["fine-tuned", *(f"distilled-{k}" for k in a.kd_outputs)]:
                finetune(kind, seed)
    latency = _cached("latency", lambda: _latency(a.teacher, pruned, a.imgsz), a.results)
    summary = {
        "imgsz": a.imgsz,
        "ratio": a.ratio,
        "importance": a.importance,
        "teacher": teacher,
        "pruned": after_prune,
        "runs": _collect(a.results),
        "latency_ms": latency,
        "environment": environment(),
    }
    write_json(a.results / "summary.json", summary)
    _write_doc(a.doc, summary)
    return a.doc


def _outputs(text: str) -> str:
    """``--kd-outputs`` item: one output loss or several joined by ``+`` (``bce+pseudo``)."""
    kinds = text.split("+")
    bad = [k for k in kinds if k not in OUTPUT_KINDS or k == "none"]
    if bad:
        choices = ", ".join(k for k in OUTPUT_KINDS if k != "none")
        raise argparse.ArgumentTypeError(f"{text!r}: {', '.join(bad)} is not an output loss (choose from {choices})")
    return "+".join(kinds)


def _shown(path: Path) -> str:
    """A run's file as recorded: relative to the repository when it is inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _collect(results: Path) -> dict[str, dict[str, list[dict]]]:
    """Every finished fine-tuning run: ``{"25": {"fine-tuned": [run per seed], "distilled-bce": [...]}}``."""
    out: dict[str, dict[str, list[dict]]] = {}
    for folder in sorted(results.glob("e*"), key=lambda f: int(f.name[1:])):
        for f in sorted(folder.glob("*_s*.json")):
            r = json.loads(f.read_text())
            out.setdefault(folder.name[1:], {}).setdefault(r["kind"], []).append(r)
    for kinds in out.values():
        for rs in kinds.values():
            rs.sort(key=lambda r: r["seed"])
    return out


def _row(label: str, rs: list[dict], teacher: dict, cpu_ms: float) -> str:
    m = statistics.mean(r["mAP50-95"] for r in rs)
    m50 = statistics.mean(r["mAP50"] for r in rs)
    c, t = rs[0]["cost"], teacher["cost"]
    per_seed = ", ".join(f"{r['mAP50-95']:.3f}" + (f" (s{r['seed']})" if "seed" in r else "") for r in rs)
    return (
        f"| {label} | {m50:.3f} | {m:.3f} | {per_seed} | {(m - teacher['mAP50-95']) * 100:+.1f} pt | "
        f"{c['parameters'] / 1e6:.2f}M ({c['parameters'] / t['parameters']:.0%}) | {c['gflops']:.2f} | "
        f"{cpu_ms:.1f} |"
    )


def _goal(label: str, rs: list[dict], teacher: dict) -> str:
    """The issue's goal for one recovery: mean mAP50-95 within 2 points of the teacher at < 40% of its parameters."""
    gap = statistics.mean(r["mAP50-95"] for r in rs) - teacher["mAP50-95"]
    share = rs[0]["cost"]["parameters"] / teacher["cost"]["parameters"]
    met = gap >= -0.02 and share < 0.4
    return f"{label}: {'met' if met else 'not met'} ({gap * 100:+.1f} pt at {share:.0%} of the parameters)"


def _label(kind: str, epochs: str) -> str:
    if kind == "fine-tuned":
        return f"pruned + fine-tuned alone, {epochs} ep"
    return f"pruned + distilled `--kd-output {kind.removeprefix('distilled-').replace('+', ' ')}`, {epochs} ep"


def _write_doc(path: Path, s: dict) -> None:
    t, lat = s["teacher"], s["latency_ms"]
    rows, goals, commands, commits = [], [], [], []
    for epochs, kinds in s["runs"].items():
        for kind in sorted(kinds, key=lambda k: (k != "fine-tuned", k)):
            rs = kinds[kind]
            rows.append(_row(_label(kind, epochs), rs, t, lat["pruned"]))
            if kind != "fine-tuned":
                goals.append(_goal(_label(kind, epochs), rs, t))
            commands += [f"`{r['command']}`" for r in rs]
            commits += [r["commit"] for r in rs]
    if not goals:
        raise ValueError("no distilled run has finished yet: nothing to report")
    env = s["environment"]
    lines = [
        MARK_BEGIN,
        f"Upstream yolov5s trained on BCCD, pruned by {s['ratio']:.0%} of the channels of every layer "
        f"(`--importance {s['importance']}`), then fine-tuned at {s['imgsz']} px (batch 16, hyp.scratch-low), "
        "alone or with the unpruned model distilling (`train_kd.py --kd-output KIND`, gains from "
        "data/hyps/hyp.kd.yaml); the same epochs and seeds for each method. mAP on the BCCD val split (87 images), "
        "of the last epoch's EMA weights; CPU latency: median single-image fp32 forward pass of the fused model "
        f"at {s['imgsz']} px, teacher and pruned model measured in alternation "
        f"({env['cpu_count']} CPU cores, torch {env['torch']}). The fine-tuned models have the pruned model's "
        "architecture, hence its parameters, GFLOPs and latency.",
        "",
        "| model | mAP50 | mAP50-95 (mean) | mAP50-95 per seed | vs teacher | parameters | GFLOPs | CPU ms |",
        "|---|---|---|---|---|---|---|---|",
        _row("teacher (unpruned yolov5s)", [t], t, lat["teacher"]),
        _row("pruned, not fine-tuned", [s["pruned"]], t, lat["pruned"]),
        *rows,
        "",
        "Goal (distilled within 2 points mAP50-95 of the teacher at under 40% of its parameters, mean of the seeds):",
        "",
        *(f"- {g}" for g in goals),
        "",
        "Commands: " + ", ".join(dict.fromkeys(commands)) + f" (run at commits {', '.join(dict.fromkeys(commits))}); "
        "the table is rewritten by `python benchmarks/prune_bccd.py --report-only`.",
        MARK_END,
    ]
    write_doc_section(path, "\n".join(lines), MARK_BEGIN, MARK_END, "Pruning and recovery on BCCD")


if __name__ == "__main__":
    run_main(main)
