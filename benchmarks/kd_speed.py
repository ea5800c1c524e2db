"""Seconds per training step: plain student, distillation with each output and feature loss, teacher alone.

    python benchmarks/kd_speed.py --teacher yolov5s --student yolov5n --imgsz 320 --batch-size 16

A step is forward, loss, backward and an SGD step on random images and targets (data loading left out), run
through the engine's step function (utils.training.step) and the same Distiller that train_kd.py uses. The
teacher is a randomly initialised model of the given yaml (speed does not depend on its weights), or a checkpoint
given with --teacher-weights. Goal checked in the JSON: a KD step costs no more than a plain step plus the fused
teacher's forward pass plus 10%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.common import REPO, environment, step_times, write_json
from benchmarks.throughput import random_targets
from models.yolo import Model
from utils.checkpoint import make_checkpoint, save_checkpoint
from utils.cli import run_main
from utils.distill.config import KDConfig
from utils.distill.distiller import Distiller
from utils.distill.teacher import load_teacher
from utils.files import load_yaml
from utils.torch_utils import select_device
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


def _time(fn, steps: int, warmup: int, device: torch.device) -> float:
    return statistics.median(step_times(fn, steps, warmup, device))


def measure(a) -> dict:
    device = select_device(a.device)
    hyp = load_yaml("data/hyps/hyp.kd.yaml")
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(a.batch_size, 3, a.imgsz, a.imgsz, generator=g).to(device)
    targets = random_targets(a.batch_size, 20, 3, g).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        teacher_file = a.teacher_weights or save_checkpoint(
            make_checkpoint(Model(f"{a.teacher}.yaml", nc=3), ["a", "b", "c"]), Path(tmp) / "teacher.pt"
        )
        teacher = load_teacher(str(teacher_file), device)
        with torch.inference_mode():
            teacher_s = _time(
                lambda: teacher(imgs.half() if device.type == "cuda" else imgs), a.steps, a.warmup, device
            )
        out = {"teacher_forward": round(teacher_s, 4)}
        for name, kd_out, kd_feat in SETTINGS:
            torch.manual_seed(0)
            student = Model(f"{a.student}.yaml", nc=3).to(device).train()
            addons = []
            if kd_out is not None:
                kd = KDConfig(teacher=str(teacher_file), kd_output=kd_out, kd_feature=kd_feat)
                addons = [Distiller(kd, hyp)]
            run = RunContext(Path(tmp), device, ["a", "b", "c"], None, None, a.imgsz, hyp, resumed=True)
            stepper = bare_stepper(student, addons, run, device)
            out[name] = round(_time(lambda stepper=stepper: stepper.step(imgs, targets), a.steps, a.warmup, device), 4)
            for addon in addons:
                addon.close()
    budget = out["plain"] + out["teacher_forward"]
    out["goal_kd_step_le_plain_plus_teacher_plus_10pct"] = {
        k: round(v / budget, 3) for k, v in out.items() if k.startswith(("kd_", "feat_"))
    }
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="yolov5s", help="teacher yaml (random weights) when no --teacher-weights")
    p.add_argument("--teacher-weights", default=None, help="teacher checkpoint to use instead")
    p.add_argument("--student", default="yolov5n")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    seconds = measure(a)
    out = a.out or REPO / "benchmarks" / "results" / f"kd_speed_{a.teacher}_{a.student}_{a.imgsz}.json"
    payload = {"benchmark": "kd_speed", "teacher": a.teacher, "student": a.student, "imgsz": a.imgsz,
               "batch_size": a.batch_size, "seconds_per_step_median": seconds}  # fmt: skip
    return write_json(out, {**payload, "environment": environment()})


if __name__ == "__main__":
    run_main(main)
