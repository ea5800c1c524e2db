"""Attention variants on BCCD: yolov5s against yolov5s-se / -cbam / -ca trained the same way, then a yolov5n
student distilled from the best variant against one distilled from plain yolov5s.

    python benchmarks/attention_bccd.py --imgsz 256 --epochs 12 --student-epochs 12

Every model starts from scratch with the same seed, image size, batch and ``hyp.scratch-low.yaml``; the students
use ``hyp.kd.yaml`` and the given output distillation loss. Each finished run leaves
benchmarks/results/attention_bccd/<run>.json, so an interrupted benchmark continues where it stopped; the summary
goes to benchmarks/results/attention_bccd/summary.json and, as a Markdown table, to the end of docs/benchmarks.md
between its attention_bccd markers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, bccd_data_yaml, environment, write_doc_section, write_json
from models.yolo import Model
from utils.cli import run_main
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.files import load_yaml
from utils.log import setup_logging
from utils.torch_utils import count_parameters, model_flops
from utils.training.config import TrainConfig
from utils.training.engine import train

RESULTS = REPO / "benchmarks" / "results" / "attention_bccd"
RUNS = REPO / "benchmarks" / "runs" / "attention_bccd"
MODELS = ("yolov5s", "yolov5s-se", "yolov5s-cbam", "yolov5s-ca")
MARK_BEGIN, MARK_END = "<!-- attention_bccd:begin -->", "<!-- attention_bccd:end -->"


def _run(a, data: Path, name: str, model: str, epochs: int, hyp: str, kd: KDConfig | None) -> dict:
    """Train one setting unless its JSON exists; returns that JSON's content."""
    out = RESULTS / f"{name}.json"
    if out.is_file():
        return json.loads(out.read_text())
    cfg = TrainConfig(
        cfg=f"{model}.yaml", data=str(data), hyp=hyp, imgsz=a.imgsz, epochs=epochs, batch_size=a.batch_size,
        workers=a.workers, seed=a.seed, project=str(RUNS), name=name, exist_ok=True, noval=True, noplots=True,
    )  # fmt: skip
    t0 = time.time()
    result = train(cfg, [Distiller(kd, load_yaml(hyp))] if kd is not None else [])
    net = Model(f"{model}.yaml", nc=load_yaml(data)["nc"])
    payload = {
        "run": name,
        "model": model,
        "parameters": count_parameters(net),
        "gflops": round(model_flops(net, a.imgsz) or float("nan"), 3),
        "metrics": {k.split("/")[-1]: round(v, 4) for k, v in result.final_metrics.items()},
        "seconds": round(time.time() - t0, 1),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "weights": str(result.best.relative_to(REPO)) if result.best else str(result.last.relative_to(REPO)),
        "kd": kd.to_dict() if kd else None,
    }
    write_json(out, payload)
    return payload


def _table(runs: list[dict], a, command: str) -> str:
    rows = [
        f"| {r['run']} | {r['parameters'] / 1e6:.2f} M | {r['gflops']:.2f} | {r['metrics'].get('mAP_0.5', 0):.3f} | "
        f"{r['metrics'].get('mAP_0.5:0.95', 0):.3f} | {r['seconds_per_epoch']:.1f} |"
        for r in runs
    ]
    return "\n".join(
        [
            MARK_BEGIN,
            "",
            "## Attention variants on BCCD (short CPU runs)",
            "",
            f"Every model trained from scratch for {a.epochs} epochs (students {a.student_epochs}) at {a.imgsz} px, "
            f"batch {a.batch_size}, seed {a.seed}, validated once after the last epoch; GFLOPs at {a.imgsz} px.",
            "",
            "| run | parameters | GFLOPs | mAP50 | mAP50-95 | s/epoch |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Command: `{command}` (commit {environment()['commit']}, CPU, 2 shared cores).",
            MARK_END,
        ]
    )


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--epochs", type=int, default=12, help="epochs of yolov5s and each variant")
    p.add_argument("--student-epochs", type=int, default=12)
    p.add_argument("--kd-output", default="bce", help="output distillation loss of the students")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    setup_logging()
    command = "python benchmarks/attention_bccd.py " + " ".join(sys.argv[1:] if argv is None else argv)
    data = bccd_data_yaml()
    scratch, kd_hyp = "data/hyps/hyp.scratch-low.yaml", "data/hyps/hyp.kd.yaml"

    teachers = {m: _run(a, data, m, m, a.epochs, scratch, None) for m in MODELS}
    variants = [m for m in MODELS if m != "yolov5s"]
    best = max(variants, key=lambda m: teachers[m]["metrics"].get("mAP_0.5:0.95", 0.0))
    students = []
    for teacher in ("yolov5s", best):
        kd = KDConfig(teacher=str(REPO / teachers[teacher]["weights"]), kd_output=a.kd_output)
        students.append(_run(a, data, f"yolov5n_from_{teacher}", "yolov5n", a.student_epochs, kd_hyp, kd))

    runs = [*teachers.values(), *students]
    out = write_json(
        RESULTS / "summary.json",
        {"benchmark": "attention_bccd", "command": command, "best_variant": best, "runs": runs,
         "environment": environment()},
    )  # fmt: skip
    write_doc_section(REPO / "docs" / "benchmarks.md", _table(runs, a, command), MARK_BEGIN, MARK_END)
    return out


if __name__ == "__main__":
    run_main(main)
