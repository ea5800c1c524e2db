"""Distillation at convergence on BCCD: yolov5n students from scratch, trained alone and distilled from a trained
yolov5s with each output loss and a combination, with the same epochs, image size and seeds.

    python benchmarks/kd_bccd.py                      # 100 epochs at 256 px, seeds 0 1 2, every setting
    python benchmarks/kd_bccd.py --seeds 1 --settings alone bce
    python benchmarks/kd_bccd.py --report-only        # rebuild the report from the finished runs

Hours on a CPU, so it continues where it stopped: each student is a normal training run (a killed one is
continued with --resume the next time), and each finished one leaves a JSON file in
benchmarks/results/kd_bccd/e<epochs>_<imgsz>_<teacher>/ that is never re-run. The report (summary.json there, and a
Markdown table in docs/benchmarks.md between the kd_bccd_converge markers) is rebuilt from whatever has finished
and names what is missing. mAP is that of the last epoch's EMA weights on the BCCD val split (utils.runners.val,
conf 0.001, IoU 0.6). Settings run in the order given, seed by seed. On a machine with more cores than one run
uses, processes with disjoint --seeds share the work (each with OMP_NUM_THREADS=1); two processes must never be
given the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks.common import REPO, bccd_data_yaml, environment, train_resumable, write_doc_section, write_json
from utils.cli import run_main
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.files import load_yaml
from utils.log import setup_logging
from utils.runners.val import ValConfig, run_val
from utils.training.config import TrainConfig

TEACHER = REPO / "weights" / "yolov5s-bccd.pt"  # trained with train.py at 256 px (weights/README.md)
RESULTS = REPO / "benchmarks" / "results" / "kd_bccd"
RUNS = REPO / "benchmarks" / "runs" / "kd_bccd"
SCRATCH_HYP, KD_HYP = "data/hyps/hyp.scratch-low.yaml", "data/hyps/hyp.kd.yaml"
#: setting name -> output losses (None: the student alone)
SETTINGS: dict[str, list[str] | None] = {
    "alone": None,
    "l2": ["l2"],
    "bce": ["bce"],
    "pseudo": ["pseudo"],
    "bce+pseudo": ["bce", "pseudo"],
}
MARK_BEGIN, MARK_END = "<!-- kd_bccd_converge:begin -->", "<!-- kd_bccd_converge:end -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, default=TEACHER, help="trained teacher checkpoint")
    p.add_argument("--data", type=Path, default=None, help="data yaml (default: BCCD from ../shared, published split)")
    p.add_argument("--student", default="yolov5n.yaml", help="student model yaml (trained from scratch)")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS, help="where finished runs are recorded")
    p.add_argument("--runs", type=Path, default=RUNS, help="where the training runs are (resumable)")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the finished runs")
    return p.parse_args(argv)


def _measure(weights: Path, data: Path, imgsz: int, workers: int, runs: Path) -> dict:
    result, _ = run_val(
        ValConfig(data=str(data), weights=str(weights), imgsz=imgsz, batch_size=16, device="cpu", workers=workers,
                  project=str(runs / "val"), name=weights.parent.parent.name, exist_ok=True, noplots=True)
    )  # fmt: skip
    return {"mAP50": round(result.map50, 4), "mAP50-95": round(result.map, 4)}


def _student(a: argparse.Namespace, data: Path, folder: Path, setting: str, seed: int) -> dict:
    """One student run: trained (or continued) unless recorded; returns its record."""
    name = f"{setting}_s{seed}"
    out = folder / f"{name}.json"
    if out.is_file():
        return json.loads(out.read_text())
    outputs = SETTINGS[setting]
    hyp = SCRATCH_HYP if outputs is None else KD_HYP
    cfg = TrainConfig(
        cfg=a.student, data=str(data), hyp=hyp, imgsz=a.imgsz, epochs=a.epochs, batch_size=a.batch_size,
        workers=a.workers, seed=seed, project=str(a.runs / folder.name), name=name, exist_ok=True, noval=True,
        noplots=True, device="cpu",
    )  # fmt: skip
    kd = None if outputs is None else KDConfig(teacher=str(a.teacher), kd_output=outputs)
    last, seconds_per_epoch = train_resumable(cfg, None if kd is None else lambda: Distiller(kd, load_yaml(hyp)))
    kd_record = last.parent.parent / "kd.yaml"
    record = {
        "run": name,
        "setting": setting,
        "seed": seed,
        "epochs": a.epochs,
        "imgsz": a.imgsz,
        "kd_output": outputs,
        "teacher": None if outputs is None else a.teacher.name,
        "seconds_per_epoch": None if seconds_per_epoch is None else round(seconds_per_epoch, 2),
        **_measure(last, data, a.imgsz, a.workers, a.runs),
        "teacher_warning": (load_yaml(kd_record).get("warning") or "") if kd_record.is_file() else "",
        "commit": environment()["commit"],
    }
    write_json(out, record)
    return record


def _teacher(a: argparse.Namespace, data: Path, folder: Path) -> dict:
    out = folder / "teacher.json"
    if out.is_file():
        return json.loads(out.read_text())
    record = {"teacher": a.teacher.name, **_measure(a.teacher, data, a.imgsz, a.workers, a.runs)}
    write_json(out, record)
    return record


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    setup_logging()
    folder = a.results / f"e{a.epochs}_{a.imgsz}_{a.teacher.stem}"  # KD runs depend on the teacher
    if not a.report_only:
        if not a.teacher.is_file():
            raise FileNotFoundError(f"--teacher {a.teacher}: file not found")
        data = a.data or bccd_data_yaml()
        _teacher(a, data, folder)
        for seed in a.seeds:  # seed by seed, so that an interrupted benchmark still has comparable sets
            for setting in a.settings:
                _student(a, data, folder, setting, seed)
    command = measuring_command(sys.argv[1:] if argv is None else argv)
    summary = summarize(folder, a.seeds, a.settings, command)
    write_json(folder / "summary.json", summary)
    write_doc_section(a.doc, report(summary), MARK_BEGIN, MARK_END, "Distillation at convergence on BCCD")
    return summary


def measuring_command(args: list[str]) -> str:
    """The command that measures what the report shows: the given flags without ``--report-only`` and without the
    folders, which are this machine's."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--results", "--runs"):
            skip = True
        elif arg != "--report-only" and not arg.startswith(("--results=", "--runs=")):
            kept.append(arg)
    return " ".join(["python -m benchmarks.kd_bccd", *kept])


def summarize(folder: Path, seeds: list[int], settings: list[str], command: str) -> dict:
    """Per setting: the finished seeds' mAPs, their mean and spread, seconds per epoch; and what is missing."""
    records = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*_s*.json"))}
    teacher = json.loads((folder / "teacher.json").read_text()) if (folder / "teacher.json").is_file() else None
    rows, missing = {}, []
    for setting in SETTINGS:
        done = sorted((r for r in records.values() if r["setting"] == setting), key=lambda r: r["seed"])
        missing += [f"{setting}_s{s}" for s in seeds if setting in settings and f"{setting}_s{s}" not in records]
        if not done:
            continue
        maps = [r["mAP50-95"] for r in done]
        times = [r["seconds_per_epoch"] for r in done if r["seconds_per_epoch"] is not None]
        rows[setting] = {
            "seeds": [r["seed"] for r in done],
            "mAP50-95": maps,
            "mAP50": [r["mAP50"] for r in done],
            "mean": round(statistics.mean(maps), 4),
            "mAP50_mean": round(statistics.mean(r["mAP50"] for r in done), 4),
            "spread": round(max(maps) - min(maps), 4),
            "seconds_per_epoch": round(statistics.median(times), 1) if times else None,
            "warnings": sorted({r["teacher_warning"] for r in done if r.get("teacher_warning")}),
        }
    any_record = next(iter(records.values()), {})
    return {
        "command": command,
        "epochs": any_record.get("epochs"),
        "imgsz": any_record.get("imgsz"),
        "teacher": teacher,
        "students": rows,
        "missing": missing,
        "commits": sorted({r["commit"] for r in records.values()}),
        "environment": environment(),
    }


def report(s: dict) -> str:
    """The Markdown table of :func:`summarize`'s result, between the doc markers."""
    rows, alone = s["students"], s["students"].get("alone")
    lines = [MARK_BEGIN]
    if s["teacher"]:
        t = s["teacher"]
        lines += [f"Teacher `{Path(t['teacher']).name}` at this size: mAP50 {t['mAP50']:.3f}, "
                  f"mAP50-95 {t['mAP50-95']:.3f}.", ""]  # fmt: skip
    lines += [
        f"yolov5n students from scratch, {s['epochs']} epochs at {s['imgsz']} px, batch 16, `--noval`; mAP of the "
        "last epoch's EMA weights on the BCCD val split (87 images). Spread = best seed - worst seed. s/epoch: wall "
        "time of the run on one core of a machine shared with other work, pauses included: it says little about "
        "speed (benchmarks/kd_speed.py measures that).",
        "",
        "| student | mAP50-95 per seed | mean | spread | vs alone | mAP50 mean | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        per_seed = ", ".join(f"{m:.3f} (s{seed})" for seed, m in zip(r["seeds"], r["mAP50-95"], strict=True))
        delta = "" if name == "alone" or not alone else f"{(r['mean'] - alone['mean']) * 100:+.1f} pt"
        label = "alone" if name == "alone" else f"`--kd-output {name.replace('+', ' ')}`"
        spe = "" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.1f}"
        lines.append(
            f"| {label} | {per_seed} | {r['mean']:.3f} | {r['spread'] * 100:.1f} pt | {delta} | "
            f"{r['mAP50_mean']:.3f} | {spe} |"
        )
    lines.append("")
    if s["missing"]:
        lines.append(f"Not finished yet: {', '.join(s['missing'])}.")
    for name, r in rows.items():
        for w in r["warnings"]:
            lines.append(f"{name}: {w}.")
    lines += ["", f"Command: `{s['command']}` (commits {', '.join(s['commits'])}, CPU).", MARK_END]
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
