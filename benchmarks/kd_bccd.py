"""Distillation quality on BCCD: a yolov5s teacher trained with train.py; yolov5n students trained alone and
distilled with each output loss and the feature losses, with the same epochs, image size and seeds.

    python benchmarks/kd_bccd.py --imgsz 256 --teacher-epochs 40 --student-epochs 25 --seeds 0 1

Each finished run leaves benchmarks/results/kd_bccd/<run>.json, so an interrupted benchmark continues where it
stopped. The feature losses are first compared on the first seed; the best one is then run on every seed. The
summary (mean and per-seed mAP of every setting) goes to benchmarks/results/kd_bccd/summary.json and, as a
Markdown table with the commands, to docs/benchmarks.md between its kd_bccd markers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, bccd_data_yaml, environment, write_doc_section, write_json
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.files import load_yaml
from utils.log import setup_logging
from utils.training.config import TrainConfig
from utils.training.engine import train

RESULTS = REPO / "benchmarks" / "results" / "kd_bccd"
RUNS = REPO / "benchmarks" / "runs" / "kd_bccd"
OUTPUT_SETTINGS = {"alone": None, "l2": ("l2", "none"), "bce": ("bce", "none"), "pseudo": ("pseudo", "none")}
FEATURE_SETTINGS = {"fitnet": ("none", "fitnet"), "at": ("none", "at"), "cwd": ("none", "cwd")}
MARK_BEGIN, MARK_END = "<!-- kd_bccd:begin -->", "<!-- kd_bccd:end -->"


def _train_cfg(a, data: Path, model: str, epochs: int, seed: int, name: str, hyp: str) -> TrainConfig:
    return TrainConfig(
        cfg=f"{model}.yaml", data=str(data), hyp=hyp, imgsz=a.imgsz, epochs=epochs, batch_size=a.batch_size,
        workers=a.workers, seed=seed, project=str(RUNS), name=name, exist_ok=True, noval=a.noval, noplots=True,
    )  # fmt: skip


def _run(name: str, cfg: TrainConfig, kd: KDConfig | None) -> dict:
    """Train one setting unless its JSON exists; returns that JSON's content."""
    out = RESULTS / f"{name}.json"
    if out.is_file():
        return json.loads(out.read_text())
    t0 = time.time()
    plugin = Distiller(kd, load_yaml(cfg.hyp)) if kd is not None else None
    result = train(cfg, plugin=plugin)
    payload = {
        "run": name,
        "metrics": {k.split("/")[-1]: round(v, 4) for k, v in result.final_metrics.items()},
        "seconds": round(time.time() - t0, 1),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "weights": str(result.best.relative_to(REPO)) if result.best else None,
        "kd": kd.to_dict() if kd else None,
    }
    write_json(out, payload)
    return payload


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--teacher-epochs", type=int, default=40)
    p.add_argument("--student-epochs", type=int, default=25)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--noval", action="store_true", help="validate students only after their last epoch")
    p.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    a = p.parse_args(argv)
    setup_logging()
    data = bccd_data_yaml()
    scratch = "data/hyps/hyp.scratch-low.yaml"
    teacher = _run(
        "teacher_yolov5s", _train_cfg(a, data, "yolov5s", a.teacher_epochs, 0, "teacher_yolov5s", scratch), None
    )
    teacher_weights = str(REPO / teacher["weights"])

    runs: dict[str, list[dict]] = {}

    def student(setting: str, kinds, seed: int) -> None:
        name = f"yolov5n_{setting}_s{seed}"
        hyp = scratch if kinds is None else "data/hyps/hyp.kd.yaml"
        kd = None if kinds is None else KDConfig(teacher=teacher_weights, kd_output=kinds[0], kd_feature=kinds[1])
        runs.setdefault(setting, []).append(
            _run(name, _train_cfg(a, data, "yolov5n", a.student_epochs, seed, name, hyp), kd)
        )

    for seed in a.seeds:
        for setting, kinds in OUTPUT_SETTINGS.items():
            student(setting, kinds, seed)
    for setting, kinds in FEATURE_SETTINGS.items():
        student(setting, kinds, a.seeds[0])
    best_feature = max(FEATURE_SETTINGS, key=lambda s: runs[s][0]["metrics"].get("mAP_0.5:0.95", 0.0))
    for seed in a.seeds[1:]:
        student(best_feature, FEATURE_SETTINGS[best_feature], seed)

    summary = {
        "command": "python benchmarks/kd_bccd.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "imgsz": a.imgsz,
        "teacher_epochs": a.teacher_epochs,
        "student_epochs": a.student_epochs,
        "seeds": a.seeds,
        "teacher": teacher,
        "best_feature": best_feature,
        "students": {
            s: {
                "mAP50": [r["metrics"]["mAP_0.5"] for r in rs],
                "mAP50-95": [r["metrics"]["mAP_0.5:0.95"] for r in rs],
                "seconds_per_epoch": [r["seconds_per_epoch"] for r in rs],
            }
            for s, rs in runs.items()
        },
        "environment": environment(),
    }
    write_json(RESULTS / "summary.json", summary)
    _write_doc(a.doc, summary)
    return a.doc


def _write_doc(path: Path, s: dict) -> None:
    alone = statistics.mean(s["students"]["alone"]["mAP50-95"])
    t = s["teacher"]["metrics"]
    lines = [
        MARK_BEGIN,
        f"Teacher yolov5s ({s['teacher_epochs']} epochs): mAP50 {t['mAP_0.5']:.3f}, mAP50-95 {t['mAP_0.5:0.95']:.3f}.",
        "",
        f"Students yolov5n, {s['student_epochs']} epochs at {s['imgsz']} px, BCCD val split (87 images):",
        "",
        "| student | seeds | mAP50 (mean) | mAP50-95 (mean) | mAP50-95 per seed | vs alone (mAP50-95) | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in s["students"].items():
        m50, m = statistics.mean(r["mAP50"]), statistics.mean(r["mAP50-95"])
        per_seed = ", ".join(f"{v:.3f}" for v in r["mAP50-95"])
        delta = "" if name == "alone" else f"{(m - alone) * 100:+.1f} pt"
        label = name if name == "alone" else f"KD {name}" + (" (feature)" if name in FEATURE_SETTINGS else "")
        spe = statistics.mean(r["seconds_per_epoch"])
        lines.append(f"| {label} | {len(r['mAP50'])} | {m50:.3f} | {m:.3f} | {per_seed} | {delta} | {spe:.1f} |")
    lines += ["", f"Command: `{s['command']}` (commit {s['environment']['commit']}, CPU, "
              f"{s['environment']['cpu_count']} cores).", MARK_END]  # fmt: skip
    write_doc_section(path, "\n".join(lines), MARK_BEGIN, MARK_END, "Distillation on BCCD")


if __name__ == "__main__":
    main()
