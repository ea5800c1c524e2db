"""Seconds per training step: plain student, distillation with each output and feature loss, teacher alone.

    python -m benchmarks.kd_speed --teacher yolov5s --student yolov5n --imgsz 320 --batch-size 16
    python -m benchmarks.kd_speed --batch-size 64 --amp

A step is forward, loss, backward and an SGD step on random images and targets (data loading left out), run
through the engine's step function (utils.training.step) and the same Distiller that train_kd.py uses, in the
memory layout and precision the engine trains in (channels-last on the CPU; bfloat16 autocast with --amp). The
teacher is a randomly initialised model of the given yaml (speed does not depend on its weights), or a checkpoint
given with --teacher-weights; its forward pass alone is timed on the same images, layout and precision. Every
setting is timed once per round, each round starting one setting later than the one before (so that none is
always timed last), and each setting's figure is its median over all rounds. The
ratio reported is a KD step over (plain step + teacher forward): the cost of distillation beyond running the
teacher; the goal is at most 1.10. Writes JSON and the table in docs/benchmarks.md ("Cost of distillation").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch

from benchmarks.common import REPO, environment, environments_text, step_times, write_doc_section, write_json
from benchmarks.throughput import random_targets
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.distill.teacher import load_teacher
from utils.files import load_yaml
from utils.torch_utils import fast_layout, keep_freed_memory, select_device
from utils.training.addons import RunContext
from utils.training.step import bare_stepper

SETTINGS = [
    ("plain", None, None),
    ("kd_l2", "l2", "none"),
    ("kd_bce", "bce", "none"),
    ("kd_kl", "kl", "none"),
    ("kd_pseudo", "pseudo", "none"),
    ("feat_fitnet", "none", "fitnet"),
    ("feat_at", "none", "at"),
    ("feat_cwd", "none", "cwd"),
]


RESULTS = REPO / "benchmarks" / "results" / "kd_speed"
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- kd_speed:begin -->", "<!-- kd_speed:end -->"
GOAL = 1.10


def measure(a) -> dict:
    device = select_device(a.device)
    if device.type == "cpu":
        keep_freed_memory()  # as the engine does
    hyp = load_yaml("data/hyps/hyp.kd.yaml")
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(a.batch_size, 3, a.imgsz, a.imgsz, generator=g).to(device)
    targets = random_targets(a.batch_size, 20, 3, g).to(device)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if a.amp else nullcontext
    with tempfile.TemporaryDirectory() as tmp:
        teacher_file = a.teacher_weights or save_checkpoint(
            make_checkpoint(Model(f"{a.teacher}.yaml", nc=3), ["a", "b", "c"]), Path(tmp) / "teacher.pt"
        )
        teacher = load_teacher(str(teacher_file), device)
        teacher_in = fast_layout(imgs.half() if device.type == "cuda" else imgs)

        def teacher_forward():
            with torch.inference_mode(), autocast():
                teacher(teacher_in)

        fns, addons = {"teacher_forward": teacher_forward}, []
        for name, kd_out, kd_feat in SETTINGS:
            torch.manual_seed(0)
            student = Model(f"{a.student}.yaml", nc=3).to(device).train()
            settings_addons = []
            if kd_out is not None:
                kd = KDConfig(teacher=str(teacher_file), kd_output=kd_out, kd_feature=kd_feat)
                settings_addons = [Distiller(kd, hyp)]
            run = RunContext(Path(tmp), device, ["a", "b", "c"], None, None, a.imgsz, hyp, resumed=True)
            stepper = bare_stepper(student, settings_addons, run, device, amp=a.amp)
            fns[name] = lambda stepper=stepper: stepper.step(imgs, targets)
            addons += settings_addons
        times: dict[str, list[float]] = {k: [] for k in fns}
        names = list(fns)
        for r in range(a.rounds):  # each round starts one setting later, so no setting is always timed last
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name] += step_times(fns[name], a.steps, a.warmup if r == 0 else 1, device)
            medians = ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in times.items())
            print(f"round {r + 1}/{a.rounds}: {medians}", flush=True)
        for addon in addons:
            addon.close()
    out = {k: round(statistics.median(v), 4) for k, v in times.items()}
    budget = out["plain"] + out["teacher_forward"]
    ratios = {k: round(v / budget, 3) for k, v in out.items() if k.startswith(("kd_", "feat_"))}
    return {"seconds_per_step_median": out, "ratio_to_plain_plus_teacher": ratios,
            "all_within_goal": all(v <= GOAL for v in ratios.values())}  # fmt: skip


LABELS = {"teacher_forward": "teacher forward alone (fused, inference mode)", "plain": "plain student",
          "kd_l2": "KD l2", "kd_bce": "KD bce", "kd_kl": "KD kl", "kd_pseudo": "KD pseudo",
          "feat_fitnet": "feature fitnet", "feat_at": "feature at", "feat_cwd": "feature cwd"}  # fmt: skip


def report() -> Path:
    """The table in docs/benchmarks.md, one column pair per saved result."""
    results = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))]
    head = [f"{r['student']} / {r['teacher']}, {r['imgsz']} px, batch {r['batch_size']}"
            f"{', bf16' if r.get('amp') else ''}" for r in results]  # fmt: skip
    lines = [BEGIN, "", "Seconds per step (median over alternating rounds) and, for distillation, the step over "
             "(plain step + teacher forward); the goal is at most 1.10.", "",
             "| step | " + " | ".join(head) + " |", "|---|" + "---|" * len(results)]  # fmt: skip
    for key, label in LABELS.items():
        cells = []
        for r in results:
            s = r["seconds_per_step_median"].get(key)
            ratio = r["ratio_to_plain_plus_teacher"].get(key)
            cells.append("" if s is None else f"{s:.3f}" + (f" ({ratio:.2f}x)" if ratio is not None else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cmds = sorted({r["command"] for r in results})
    where = environments_text(results)
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in cmds) + f". Measured on {where}.", "", END]
    return write_doc_section(DOC, "\n".join(lines), BEGIN, END, heading="Cost of distillation")


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="yolov5s", help="teacher yaml (random weights) when no --teacher-weights")
    p.add_argument("--teacher-weights", default=None, help="teacher checkpoint to use instead")
    p.add_argument("--student", default="yolov5n")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed steps per setting and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on the CPU (float16 on CUDA): train.py --amp")
    p.add_argument("--device", default="")
    p.add_argument("--report-only", action="store_true", help="only rebuild the table from saved results")
    a = p.parse_args(argv)
    if not a.report_only:
        result = measure(a)
        name = f"{a.teacher}_{a.student}_{a.imgsz}_b{a.batch_size}" + ("_amp" if a.amp else "")
        write_json(RESULTS / f"{name}.json", {
            "benchmark": "kd_speed", "command": "python -m benchmarks.kd_speed " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "teacher": a.teacher, "student": a.student, "imgsz": a.imgsz, "batch_size": a.batch_size,
            "amp": a.amp, "rounds": a.rounds, "steps_per_round": a.steps, **result, "environment": environment(),
        })  # fmt: skip
    return report()


if __name__ == "__main__":
    run_main(main)
