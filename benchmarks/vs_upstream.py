"""Wall time of our train.py / val.py against upstream YOLOv5 v7.0's, run alternately on the same data.

    python -m benchmarks.vs_upstream --upstream ../yolov5 --python ../yolov5-venv/bin/python --task val
    python -m benchmarks.vs_upstream --upstream ../yolov5 --python ../yolov5-venv/bin/python --task train --epochs 3
    python -m benchmarks.vs_upstream --upstream ../yolov5 --python ../yolov5-venv/bin/python --task train-val \
        --epochs 10
    python -m benchmarks.vs_upstream --report-only

``--upstream`` is a checkout of the public repository ultralytics/yolov5 at tag v7.0 and ``--python`` the
interpreter of an environment it runs in (DEVELOPERS.md says how to make both; it needs numpy < 2 and Pillow < 10).
Upstream is run as a user runs it (``python train.py ...`` in its folder) with ``YOLOv5_AUTOINSTALL=False``, so it
installs nothing, and with a font in its settings folder, so it downloads nothing.

Each round runs both programs once, one after the other, the order swapped every round; the label caches of both
copies of the data are removed before each run. Every round's seconds, their ratio (upstream / ours: above 1 means
ours is faster) and the mAP each printed are written as JSON to ``benchmarks/results/vs_upstream/``; the table
in docs/benchmarks.md is rebuilt from every such file. Tasks:

- ``val``: ``val.py`` on ``--weights`` (default: the upstream-trained BCCD fixture), BCCD val split;
- ``train``: ``train.py --noval`` from scratch (``--cfg models/<model>.yaml``) for ``--epochs``;
- ``train-val``: the same, validating after every epoch.

Needs ../shared (the BCCD dataset; the fixture for ``val``). What the numbers do not show: whole-program wall
time includes start-up (imports, dataset scan) and the final validation and plots; both programs use the same
number of torch threads (their default) but not necessarily the same kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import CACHE, REPO, bccd_data_yaml, environment, write_doc_section, write_json
from utils.cli import run_main

RESULTS = REPO / "benchmarks" / "results" / "vs_upstream"
DOC = REPO / "docs" / "benchmarks.md"
FIXTURE = REPO.parent / "shared" / "fixtures" / "upstream-v7.0-yolov5s-bccd.pt"
BEGIN, END = "<!-- vs_upstream:begin -->", "<!-- vs_upstream:end -->"
TASKS = ("val", "train", "train-val")


def _with_path(text: str, folder: Path) -> str:
    return "\n".join(f"path: {folder}" if line.startswith("path:") else line for line in text.splitlines()) + "\n"


def upstream_data(data: Path, out: Path = CACHE / "bccd-upstream") -> Path:
    """A copy of the converted dataset (hard links) for upstream, so that neither program reads the other's label
    cache; its yaml names the same splits. The yaml itself is a file of its own: written through a link, it would
    point our copy at upstream's folder (an earlier version did; such a pair is repaired here)."""
    yaml_out = out / "data.yaml"
    if yaml_out.is_file() and yaml_out.samefile(data):
        text = data.read_text()
        data.unlink()
        data.write_text(_with_path(text, data.parent.resolve()))
    if not yaml_out.is_file() or yaml_out.samefile(data):
        shutil.copytree(data.parent, out, copy_function=os.link, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.cache", data.name))  # fmt: skip
        yaml_out.unlink(missing_ok=True)
        yaml_out.write_text(_with_path(data.read_text(), out.resolve()))
    return yaml_out


def remove_caches(*roots: Path) -> None:
    for root in roots:
        for c in root.rglob("*.cache"):
            c.unlink()


def commands(task: str, a: argparse.Namespace, ours_data: Path, up_data: Path, out: Path) -> dict[str, list[str]]:
    """The two command lines of one run (same flags for both), writing under ``out``."""
    common = ["--imgsz", str(a.imgsz), "--batch-size", str(a.batch_size), "--workers", str(a.workers),
              "--device", "cpu", "--exist-ok"]  # fmt: skip
    if task == "val":
        args = ["val.py", "--weights", str(a.weights), *common]
    else:
        args = ["train.py", "--cfg", f"models/{a.model}.yaml", "--weights", "", "--epochs", str(a.epochs),
                "--seed", "0", *common, *(["--noval"] if task == "train" else [])]  # fmt: skip
    return {
        "ours": [sys.executable, *args, "--data", str(ours_data), "--project", str(out / "ours"), "--name", "run"],
        "upstream": [a.python, *args, "--data", str(up_data), "--project", str(out / "upstream"), "--name", "run"],
    }


def last_all_row(text: str) -> dict[str, float] | None:
    """mAP50 and mAP50-95 from the last 'all' row that either program prints (``all images instances P R mAP50
    mAP50-95``)."""
    found = None
    for line in text.splitlines():
        parts = line.replace("\r", " ").split()
        if len(parts) >= 7 and parts[0] == "all":
            try:
                found = {"mAP50": float(parts[5]), "mAP50-95": float(parts[6])}
            except ValueError:
                continue
    return found


def run_one(who: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"error: {who} failed (exit {proc.returncode}); the end of its log {log}:\n{tail}")
    return {"seconds": round(seconds, 2), **(last_all_row(proc.stdout + proc.stderr) or {})}


def upstream_env(settings: Path) -> dict[str, str]:
    """Upstream's environment: no automatic installs, a settings folder with a font in it (it would otherwise
    try to download one), and torch.load's pre-2.6 default (v7.0 loads whole pickled models, which the newer
    default ``weights_only=True`` refuses)."""
    import matplotlib

    settings.mkdir(parents=True, exist_ok=True)
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not (settings / "Arial.ttf").exists():
        shutil.copy(font, settings / "Arial.ttf")
    if not (settings / "Arial.Unicode.ttf").exists():
        shutil.copy(font, settings / "Arial.Unicode.ttf")
    return {
        **os.environ,
        "YOLOv5_AUTOINSTALL": "False",
        "YOLOV5_CONFIG_DIR": str(settings),
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
    }


def result_name(task: str, a: argparse.Namespace) -> str:
    return f"{task}_{a.model if task != 'val' else 'fixture'}_{a.imgsz}" + (f"_e{a.epochs}" if task != "val" else "")


def measure(a: argparse.Namespace) -> Path:
    upstream = Path(a.upstream).resolve()
    if not (upstream / "train.py").is_file() or not (upstream / "val.py").is_file():
        raise ValueError(f"--upstream {a.upstream}: no train.py/val.py there (a checkout of ultralytics/yolov5 v7.0)")
    if shutil.which(a.python) is None and not Path(a.python).is_file():
        raise ValueError(f"--python {a.python}: not found")
    if a.task == "val" and not Path(a.weights).is_file():
        raise ValueError(f"--weights {a.weights}: not found")
    ours_data = bccd_data_yaml()
    up_data = upstream_data(ours_data)
    work = Path(tempfile.mkdtemp(prefix="vs_upstream_"))
    envs = {"ours": dict(os.environ), "upstream": upstream_env(work / "upstream-settings")}
    cwds = {"ours": REPO, "upstream": upstream}
    rounds = []
    for r in range(a.rounds):
        order = ("ours", "upstream") if r % 2 == 0 else ("upstream", "ours")
        out = work / f"round{r}"
        cmds = commands(a.task, a, ours_data, up_data, out)
        got = {}
        for who in order:
            remove_caches(ours_data.parent, up_data.parent)
            got[who] = run_one(who, cmds[who], cwds[who], envs[who], work / f"round{r}-{who}.log")
            print(f"round {r + 1}/{a.rounds} {who}: {got[who]}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        rounds.append({"order": list(order), **got,
                       "ratio": round(got["upstream"]["seconds"] / got["ours"]["seconds"], 3)})  # fmt: skip
    ratios = [x["ratio"] for x in rounds]
    # the two paths are this machine's; the recorded command names them by role
    argv = a.argv_text.replace(a.upstream, "<upstream checkout>").replace(a.python, "<its python>")
    path = write_json(RESULTS / f"{result_name(a.task, a)}.json", {
        "benchmark": "vs_upstream",
        "command": f"python -m benchmarks.vs_upstream {argv}",
        "task": a.task, "model": a.model if a.task != "val" else str(a.weights), "imgsz": a.imgsz,
        "batch_size": a.batch_size, "workers": a.workers, "epochs": a.epochs if a.task != "val" else None,
        "upstream_commit": git_head(upstream),
        "rounds": rounds, "median_ratio": round(statistics.median(ratios), 3),
        "environment": environment(),
    })  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return path


def git_head(path: Path) -> str:
    proc = subprocess.run(["git", "describe", "--tags", "--always"], cwd=path, capture_output=True, text=True,
                          check=False)  # fmt: skip
    return proc.stdout.strip()


def report() -> Path:
    """The table in docs/benchmarks.md, from every saved result."""
    files = sorted(RESULTS.glob("*.json"))
    header = "| task | model | px | epochs | rounds: upstream s / ours s | median ratio | mAP50-95 ours / upstream |"
    lines = [BEGIN, "", header, "|---|---|---|---|---|---|---|"]
    for f in files:
        r = json.loads(f.read_text())
        secs = ", ".join(f"{x['upstream']['seconds']:.1f}/{x['ours']['seconds']:.1f}" for x in r["rounds"])
        maps = [(x["ours"].get("mAP50-95"), x["upstream"].get("mAP50-95")) for x in r["rounds"]]
        maps = maps[:1] if len(set(maps)) == 1 else maps  # one pair when every round printed the same
        map_text = "; ".join(f"{o} / {u}" for o, u in maps)  # in the order of the rounds
        lines.append(f"| {r['task']} | {Path(str(r['model'])).name} | {r['imgsz']} | {r['epochs'] or ''} | {secs} | "
                     f"**{r['median_ratio']:.2f}x** | {map_text} |")  # fmt: skip
    if not files:
        lines.append("| (no results yet) | | | | | | |")
    cmds = sorted({json.loads(f.read_text())["command"] for f in files})
    lines += ["", "Ratio = upstream seconds / ours (above 1: ours is faster); whole-program wall time of each command,",
              "the two run alternately (order swapped every round), label caches removed before each run, batch 16,",
              "2 workers, CPU, torch's default threads for both. Commands:", "",
              *(f"- `{c}`" for c in cmds), "", END]  # fmt: skip
    return write_doc_section(DOC, "\n".join(lines), BEGIN, END, heading="Side by side with upstream YOLOv5 v7.0")


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", help="checkout of ultralytics/yolov5 at v7.0")
    p.add_argument("--python", default=sys.executable, help="python of upstream's environment")
    p.add_argument("--task", choices=TASKS, default="val")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default="yolov5s", help="model trained by the train tasks")
    p.add_argument("--weights", type=Path, default=FIXTURE, help="checkpoint evaluated by the val task")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--report-only", action="store_true", help="only rebuild the table from saved results")
    a = p.parse_args(argv)
    a.argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    if not a.report_only:
        if not a.upstream:
            raise ValueError("--upstream is required (a checkout of ultralytics/yolov5 v7.0; see DEVELOPERS.md)")
        if a.rounds < 1:
            raise ValueError(f"--rounds {a.rounds}: at least 1")
        measure(a)
    return report()


if __name__ == "__main__":
    run_main(main)
