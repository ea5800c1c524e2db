"""Does ``train.py --compile`` pay for itself? Compile time and steady step time, eager against compiled.

    python -m benchmarks.compile_speed --model yolov5n --imgsz 256 --batch-size 16
    python -m benchmarks.compile_speed --model yolov5n --imgsz 256 --batch-size 16 --amp

Two copies of the model (same initial weights) train on the same random batch through the engine's step function
(utils.training.step), one eager and one whose TrainModule is wrapped by ``torch.compile`` as ``--compile`` does.
Measured: the seconds of the compiled copy's first step (compiling forward and backward), of its first step at a
second batch size (an epoch's last, smaller batch compiles again), then alternating rounds of steady steps of
both. Pay-back: compile seconds over the seconds saved per step, against the steps of a 100-epoch BCCD run
(205 training images, ceil(205 / batch) steps per epoch). Writes JSON under benchmarks/results/compile_speed/
and the table in docs/benchmarks.md. What it does not show: data loading, validation and the first epoch's
other start-up costs, which are the same with and without compiling.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import REPO, environment, environments_text, step_times, write_doc_section, write_json
from benchmarks.throughput import random_targets
from models.yolo import Model
from utils.cli import run_main
from utils.torch_utils import keep_freed_memory, select_device
from utils.training.addons import RunContext
from utils.training.step import bare_stepper

RESULTS = REPO / "benchmarks" / "results" / "compile_speed"
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- compile_speed:begin -->", "<!-- compile_speed:end -->"
BCCD_TRAIN_IMAGES, EPOCHS = 205, 100


def measure(a) -> dict:
    device = select_device(a.device)
    if device.type == "cpu":
        keep_freed_memory()
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(a.batch_size, 3, a.imgsz, a.imgsz, generator=g).to(device)
    targets = random_targets(a.batch_size, 20, 3, g).to(device)
    last = BCCD_TRAIN_IMAGES % a.batch_size or a.batch_size
    steppers = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = Model(f"{a.model}.yaml", nc=3).to(device).train()
        run = RunContext(Path("."), device, ["a", "b", "c"], None, None, a.imgsz, {}, resumed=True)
        steppers[name] = bare_stepper(model, [], run, device, amp=a.amp)
    steppers["compiled"].train_module = torch.compile(steppers["compiled"].train_module)
    compiled = steppers["compiled"]
    t0 = time.perf_counter()
    compiled.step(imgs, targets)
    first_step = time.perf_counter() - t0
    small = imgs[:last], targets[targets[:, 0] < last]
    t0 = time.perf_counter()
    compiled.step(*small)
    first_small_step = time.perf_counter() - t0
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for r in range(a.rounds):
        for name, stepper in steppers.items():
            times[name] += step_times(lambda s=stepper: s.step(imgs, targets), a.steps, 1, device)
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in times.items()),
              flush=True)  # fmt: skip
    eager, comp = (statistics.median(times[k]) for k in ("eager", "compiled"))
    # compiling: the first steps' time beyond what steady compiled steps take
    compile_s = first_step - comp + max(first_small_step - comp, 0.0)
    saved = eager - comp
    steps_per_run = math.ceil(BCCD_TRAIN_IMAGES / a.batch_size) * EPOCHS
    return {
        "first_step_s": round(first_step, 1),
        "first_step_other_batch_s": round(first_small_step, 1),
        "compile_s": round(compile_s, 1),
        "step_s": {"eager": round(eager, 4), "compiled": round(comp, 4)},
        "speedup": round(eager / comp, 3),
        "payback_steps": math.ceil(compile_s / saved) if saved > 0 else None,
        "steps_in_100_epochs": steps_per_run,
        "pays_back_in_100_epochs": saved > 0 and compile_s / saved <= steps_per_run,
        "saved_over_100_epochs_s": round(saved * steps_per_run - compile_s, 1),
    }


def report() -> Path:
    results = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))]
    lines = [BEGIN, "", "| model | px | batch | precision | compile s | step s eager / compiled | speed-up | "
             "pays back after | over 100 BCCD epochs |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        payback = f"{r['payback_steps']} steps" if r["payback_steps"] else "never"
        lines.append(
            f"| {r['model']} | {r['imgsz']} | {r['batch_size']} | {'bf16 autocast' if r['amp'] else 'fp32'} | "
            f"{r['compile_s']:.0f} | {r['step_s']['eager']:.3f} / {r['step_s']['compiled']:.3f} | "
            f"{r['speedup']:.2f}x | {payback} | {r['saved_over_100_epochs_s']:+.0f} s ({r['steps_in_100_epochs']} "
            f"steps) |"
        )  # fmt: skip
    cmds = sorted({r["command"] for r in results})
    lines += ["", "Compile s: the compiled copy's first step at the batch size and at the epoch's last, smaller "
              "batch, less two steady steps. Step s: median over alternating rounds. Commands: "
              + "; ".join(f"`{c}`" for c in cmds) + f". Measured on {environments_text(results)}.", "",
              END]  # fmt: skip
    return write_doc_section(DOC, "\n".join(lines), BEGIN, END, heading="Compiled training step (--compile)")


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolov5n")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on the CPU, as train.py --amp")
    p.add_argument("--device", default="")
    p.add_argument("--report-only", action="store_true", help="only rebuild the table from saved results")
    a = p.parse_args(argv)
    if not a.report_only:
        result = measure(a)
        name = f"{a.model}_{a.imgsz}_b{a.batch_size}" + ("_amp" if a.amp else "")
        write_json(RESULTS / f"{name}.json", {
            "benchmark": "compile_speed",
            "command": "python -m benchmarks.compile_speed " + " ".join(sys.argv[1:] if argv is None else argv),
            "model": a.model, "imgsz": a.imgsz, "batch_size": a.batch_size, "amp": a.amp, **result,
            "environment": environment(),
        })  # fmt: skip
    return report()


if __name__ == "__main__":
    run_main(main)
