"""Training-step throughput (images per second) of a model at a given size and batch, on random images.

    python benchmarks/throughput.py --model yolov5s --imgsz 320 --batch-size 16

One step = forward, YOLOv5 loss, backward, SGD step (the engine's step function, utils.training.step); data
loading is left out (see train_bccd.py for end-to-end
epoch times). Warm-up steps are not timed. Writes JSON (default benchmarks/results/throughput_<model>_<imgsz>.json).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from benchmarks.common import REPO, environment, step_times, write_json
from models.yolo import Model
from utils.cli import run_main
from utils.torch_utils import select_device
from utils.training.addons import RunContext
from utils.training.step import bare_stepper


def random_targets(batch: int, per_image: int, nc: int, generator: torch.Generator) -> torch.Tensor:
    """``[batch * per_image, 6]`` targets (image, class, cx, cy, w, h) with boxes of 3-30% of the image."""
    n = batch * per_image
    image = torch.arange(batch).repeat_interleave(per_image).float()
    cls = torch.randint(0, nc, (n,), generator=generator).float()
    wh = 0.03 + 0.27 * torch.rand(n, 2, generator=generator)
    xy = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=generator)
    return torch.cat((image[:, None], cls[:, None], xy, wh), 1)


def measure(model_name: str, imgsz: int, batch: int, steps: int, warmup: int, device: str) -> dict:
    dev = select_device(device)
    g = torch.Generator().manual_seed(0)
    model = Model(f"{model_name}.yaml", nc=3).to(dev).train()
    run = RunContext(Path("."), dev, ["a", "b", "c"], None, None, imgsz, {}, resumed=True)
    stepper = bare_stepper(model, [], run, dev)
    imgs = torch.rand(batch, 3, imgsz, imgsz, generator=g).to(dev)
    targets = random_targets(batch, 20, 3, g).to(dev)
    times = step_times(lambda: stepper.step(imgs, targets), steps, warmup, dev)
    median = statistics.median(times)
    return {
        "seconds_per_step_median": round(median, 4),
        "seconds_per_step_all": [round(t, 4) for t in times],
        "images_per_second": round(batch / median, 2),
    }


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="yolov5s")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    result = measure(a.model, a.imgsz, a.batch_size, a.steps, a.warmup, a.device)
    out = a.out or REPO / "benchmarks" / "results" / f"throughput_{a.model}_{a.imgsz}.json"
    payload = {"benchmark": "throughput", "model": a.model, "imgsz": a.imgsz, "batch_size": a.batch_size}
    return write_json(out, {**payload, **result, "environment": environment()})


if __name__ == "__main__":
    run_main(main)
