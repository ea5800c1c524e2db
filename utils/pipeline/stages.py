"""The stages of the compression pipeline, each one command a user could type, and the runner that resumes them.

A stage is done when its output exists; a training stage interrupted part-way (``last.pt`` still holding its
optimizer state) continues with ``--resume``. Every stage prints the command that runs it by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from utils.checkpoint import load_plain
from utils.pipeline.config import PipelineConfig

REPO = Path(__file__).resolve().parents[2]
PRUNE_TOOL = REPO / "tools" / "prunmodel.py"
EXPORT_TOOL = REPO / "export.py"


@dataclass
class Stage:
    """One step: ``commands`` (argument lists, run from the repository root) that produce ``output``.

    ``needs`` names a program the stage relies on; when it is missing the stage is skipped with that reason.
    ``action`` runs in-process after the commands (the report); ``is_done`` replaces the check of ``output``.
    """

    name: str
    what: str
    output: Path
    commands: list[list[str]] = field(default_factory=list)
    needs: Path | None = None
    action: Callable[[], None] | None = None
    is_done: Callable[[], bool] | None = None
    plan: Callable[[], list[list[str]]] | None = None  # commands decided only when the stage starts

    def done(self) -> bool:
        if self.is_done is not None:
            return self.is_done()
        if not self.output.exists():
            return False
        if self.output.name == "last.pt":  # a finished run keeps no optimizer state in last.pt
            return load_plain(self.output).get("optimizer") is None
        return True


@dataclass
class Models:
    """Where each model of the pipeline ends up: ``best.pt`` of its run, or for a teacher given as a checkpoint,
    that checkpoint."""

    run: Path
    teacher: Path | None = None  # a trained teacher given by the settings (None: the pipeline trains one)

    def weights(self, name: str) -> Path:
        if name == "teacher" and self.teacher is not None:
            return self.teacher
        return self.run / name / "weights" / "best.pt"

    @property
    def pruned(self) -> Path:
        return self.run / "pruned" / "pruned.pt"

    @property
    def onnx(self) -> Path:
        """The exported (smallest) model; its INT8 twin is ``model-int8.onnx`` beside it."""
        return self.run / "export" / "model.onnx"

    @property
    def int8(self) -> Path:
        return self.run / "export" / "model-int8.onnx"


def given_teacher(cfg: PipelineConfig) -> Path | None:
    """The teacher checkpoint the settings name, or None when ``teacher`` is a model yaml to train first."""
    return None if cfg.teacher.endswith((".yaml", ".yml")) else Path(cfg.teacher)


def _train_args(cfg: PipelineConfig, run: Path, name: str, epochs: int) -> list[str]:
    return [
        "--data", cfg.data, "--imgsz", str(cfg.imgsz), "--epochs", str(epochs), "--batch-size", str(cfg.batch_size),
        "--workers", str(cfg.workers), "--seed", str(cfg.seed), "--project", str(run), "--name", name, "--exist-ok",
        *(["--device", cfg.device] if cfg.device else []), *(["--noval"] if cfg.noval else []),
    ]  # fmt: skip


def _kd_args(cfg: PipelineConfig, teacher: Path, outputs: list[str]) -> list[str]:
    return ["--teacher", str(teacher), "--kd-output", *outputs, "--kd-feature", cfg.kd_feature]


def _val_command(cfg: PipelineConfig, run: Path, weights: Path, name: str) -> list[str]:
    return [
        sys.executable, "val.py", "--weights", str(weights), "--data", cfg.data, "--imgsz", str(cfg.imgsz),
        "--batch-size", str(cfg.batch_size), "--workers", str(cfg.workers), "--project", str(run / "eval"),
        "--name", name, "--exist-ok", "--noplots", *(["--device", cfg.device] if cfg.device else []),
    ]  # fmt: skip


def _training(name: str, what: str, program: str, args: list[str], run: Path) -> Stage:
    last = run / name / "weights" / "last.pt"
    stage = Stage(name, what, last, [[sys.executable, program, *args]])
    if last.exists() and not stage.done():  # interrupted: continue where it stopped
        stage.commands = [[sys.executable, program, "--resume", str(last)]]
    return stage


def build_stages(cfg: PipelineConfig, run: Path, report: Callable[[], None]) -> list[Stage]:
    """The pipeline's stages in order, for settings ``cfg`` and run directory ``run``."""
    m = Models(run, given_teacher(cfg))
    teacher = m.weights("teacher")
    stages = []
    if m.teacher is None:
        stages.append(_training("teacher", "train the teacher", "train.py",
                                ["--cfg", cfg.teacher, "--hyp", cfg.hyp, *_train_args(cfg, run, "teacher", cfg.epochs)],
                                run))  # fmt: skip
    stages += [
        _training("baseline", "train the baseline student", "train.py",
                  ["--cfg", cfg.student, "--hyp", cfg.hyp, *_train_args(cfg, run, "baseline", cfg.epochs)], run),
        _training("distilled", "distil the student from the teacher", "train_kd.py",
                  ["--cfg", cfg.student, *_kd_args(cfg, teacher, cfg.kd_output),
                   *_train_args(cfg, run, "distilled", cfg.kd_epochs)], run),
    ]  # fmt: skip
    prune = Stage(
        "pruned",
        f"prune the teacher to {cfg.prune_params:.0%} of its parameters",
        m.pruned,
        [[sys.executable, "tools/prunmodel.py", "--weights", str(teacher), "--target-params", str(cfg.prune_params),
          "--importance", cfg.prune_importance, *(["--global"] if cfg.prune_global else []),
          *(["--data", cfg.data] if cfg.prune_importance == "taylor" else []), "--out", str(m.pruned),
          "--imgsz", str(cfg.imgsz)]],
        needs=PRUNE_TOOL,
    )  # fmt: skip
    recover = _training(
        "recovered", "recover the pruned teacher by distillation", "train_kd.py",
        ["--weights", str(m.pruned), *_kd_args(cfg, teacher, cfg.recover_kd_output),
         *_train_args(cfg, run, "recovered", cfg.recover_epochs)],
        run,
    )  # fmt: skip
    recover.needs = PRUNE_TOOL
    stages += [prune, recover]

    def pending_evals() -> list[str]:
        """Models that exist and have no metrics yet: training writes those of its best.pt, so only models that
        were not trained here are evaluated (a model made later, e.g. by a re-run, is evaluated then)."""
        return [n for n in MODEL_NAMES if m.weights(n).is_file() and not metrics_file(run, n).is_file()]

    evals = Stage("evaluate", "evaluate every model on the validation split", run / "eval")
    evals.is_done = lambda: not pending_evals()
    evals.plan = lambda: [_val_command(cfg, run, m.weights(n), n) for n in pending_evals()]
    stages.append(evals)
    export = [sys.executable, "export.py", "--weights", str(run / "export" / "model.pt"), "--include", "onnx",
              "--imgsz", str(cfg.imgsz)]  # fmt: skip
    stages.append(Stage("export", "export the smallest model to ONNX", m.onnx, [export], needs=EXPORT_TOOL))
    if cfg.int8:
        quantize = Stage(
            "quantize", "quantize the exported model to INT8 and evaluate it", metrics_file(run, "int8"),
            [[sys.executable, "export.py", "--weights", str(m.onnx), "--int8", "--data", cfg.data],
             _val_command(cfg, run, m.int8, "int8")], needs=EXPORT_TOOL,
        )  # fmt: skip
        stages.append(quantize)
    # the report is rewritten on every run: it covers whatever models exist by then
    stages.append(Stage("report", "write report.md and compare.png", run / "report.md", action=report,
                        is_done=lambda: False))  # fmt: skip
    return stages


class StageFailed(ValueError):
    """A stage's command ended with an error (which it printed); the pipeline stops with one line naming it."""


def _die_with_parent() -> None:
    """In the child, before it runs: ask Linux to send it SIGTERM when the pipeline's process dies (even by kill -9),
    so that no training goes on, holding its run's lock, after the pipeline is gone."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: run_child's SIGTERM forwarding still applies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def run_child(cmd: list[str]) -> int:
    """Run one stage command from the repository root and return its exit status. The child stops with the
    pipeline: SIGTERM to the pipeline is passed on to it (and waited for), and it dies if the pipeline is killed.
    The child is told how the run continues (``compress.py`` again, not its own ``--resume``)."""
    env = {**os.environ, "RESUME_HINT": "run the same compress.py command again"}
    child = subprocess.Popen(cmd, cwd=REPO, env=env, preexec_fn=_die_with_parent)

    def forward(signum, frame):
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the child too (same process group); let it finish its checkpoint
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


#: the models the report compares, in table order
MODEL_NAMES = ("teacher", "baseline", "distilled", "recovered")


def read_metrics(run: Path, name: str) -> dict | None:
    """Model ``name``'s metrics (val.py's metrics.json: mAP50, mAP50-95, ...), None where it has none yet."""
    path = metrics_file(run, name)
    return json.loads(path.read_text()) if path.is_file() else None


def metrics_file(run: Path, name: str) -> Path:
    """Where model ``name``'s metrics are: its training run's ``metrics.json`` (the evaluation of its best.pt at the
    end of training), else that of a ``val.py`` run of the evaluate stage."""
    trained = run / name / "metrics.json"
    return trained if trained.is_file() else run / "eval" / name / "metrics.json"


def run_stages(stages: list[Stage], before: dict[str, Callable[[Stage], None]] | None = None) -> dict[str, str]:
    """Run every stage not yet done, printing one progress line each; returns each stage's outcome."""
    outcome: dict[str, str] = {}
    t0 = time.time()
    n = len(stages)
    for i, stage in enumerate(stages, 1):
        left = ", ".join(s.name for s in stages[i:]) or "nothing"
        head = f"[{i}/{n}] {stage.name}: {stage.what}"
        if stage.done():
            outcome[stage.name] = "done before"
            print(f"{head} -- already done ({stage.output}); left after it: {left}", flush=True)
            continue
        if stage.needs is not None and not stage.needs.exists():
            outcome[stage.name] = f"skipped: {stage.needs.relative_to(REPO)} is not available"
            print(f"{head} -- skipped, {stage.needs.relative_to(REPO)} is not available; left: {left}", flush=True)
            continue
        print(f"{head} -- running ({time.time() - t0:.0f} s so far); left after it: {left}", flush=True)
        if before and stage.name in before:
            before[stage.name](stage)
        if stage.plan is not None:
            stage.commands = stage.plan()
        for cmd in stage.commands:
            print("  run by hand: " + shlex.join(["python", *cmd[1:]]), flush=True)
            code = run_child(cmd)
            if code in (130, -signal.SIGINT):
                raise KeyboardInterrupt
            if code != 0:
                raise StageFailed(
                    f"stage {stage.name!r} failed (exit status {code}; its error is above): {shlex.join(cmd)}"
                )
        if stage.action is not None:
            stage.action()
        outcome[stage.name] = "ran"
    print(f"pipeline finished in {time.time() - t0:.0f} s", flush=True)
    return outcome
