"""Does a 2-process torchrun training exit cleanly every time? Runs the same tiny CPU (Gloo) job N times in a row
and counts the runs that finished, failed, or hung past a time limit (then killed).

    python benchmarks/ddp_exit.py --runs 20

A hang at exit shows as a run that printed "Training complete" and did not end within --timeout seconds. Writes
benchmarks/results/ddp_exit.json with every run's outcome and duration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, environment, write_json
from utils.cli import run_main


def one_run(workdir: Path, timeout: float) -> dict:
    """One torchrun job in ``workdir``; its outcome (finished, failed, hung) and seconds."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(REPO / "train.py"),
           "--cfg", "models/yolov5n.yaml", "--data", str(REPO / "data" / "bccd_sample.yaml"), "--device", "cpu",
           "--batch-size", "8", "--imgsz", "64", "--epochs", "1", "--workers", "1", "--noplots",
           "--project", str(workdir / "runs")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        outcome = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        out, _ = proc.communicate()
        outcome = "hung after training" if "Training complete" in out else "hung"
    return {"outcome": outcome, "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds after which a run counts as hung")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ddp_exit.json")
    a = p.parse_args(argv)
    runs = []
    for i in range(a.runs):
        workdir = Path(tempfile.mkdtemp(prefix="ddp_exit_"))
        try:
            runs.append(one_run(workdir, a.timeout))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"run {i + 1}/{a.runs}: {runs[-1]['outcome']} in {runs[-1]['seconds']} s", flush=True)
    counts = {k: sum(r["outcome"] == k for r in runs) for k in {r["outcome"] for r in runs}}
    payload = {"command": "python benchmarks/ddp_exit.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "counts": counts, "runs": runs, "environment": environment()}  # fmt: skip
    write_json(a.out, payload)
    return payload


if __name__ == "__main__":
    run_main(main)
