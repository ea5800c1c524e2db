"""utils.plots.pool and utils.plots.drawer: drawing processes draw what threads draw, report what fails, never keep
the program waiting, and load no torch."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from utils.plots import pool as pool_module
from utils.plots.drawer import NICENESS
from utils.plots.pool import ProcessPlotter, ThreadPlotter, start_plotter

REPO = Path(__file__).resolve().parents[3]


def _tasks(out: Path) -> list[tuple]:
    rng = np.random.default_rng(0)
    px = np.linspace(0, 1, 50)
    curves = np.sort(rng.random((2, 50)), axis=1)
    images = rng.integers(0, 256, (2, 3, 48, 64), dtype=np.uint8)
    targets = np.array([[0, 1, 0.5, 0.5, 0.2, 0.3], [1, 0, 0.3, 0.4, 0.1, 0.1]])
    return [
        ("pr", "pr_curve", px, curves, np.array([0.7, 0.4]), out / "pr.png", ["a", "b"]),
        ("f1", "mc_curve", px, curves, out / "f1.png", ["a", "b"], "Confidence", "F1"),
        ("cm", "confusion_matrix", np.array([[3, 1, 0], [0, 2, 1], [1, 0, 0]]), out / "cm.png", ["a", "b"]),
        ("mosaic", "batch", images, targets, ["0.jpg", "1.jpg"], out / "mosaic.jpg", ["a", "b"]),
    ]


def _draw(plotter, out: Path) -> dict[str, bytes]:
    for label, task, *args in _tasks(out):
        plotter.submit(label, task, *args)
    plotter.close()
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_processes_draw_the_same_files_as_threads(tmp_path):
    (tmp_path / "t").mkdir(), (tmp_path / "p").mkdir()
    by_threads = _draw(ThreadPlotter(), tmp_path / "t")
    by_processes = _draw(ProcessPlotter(), tmp_path / "p")
    assert sorted(by_threads) == ["cm.png", "f1.png", "mosaic.jpg", "pr.png"]
    assert by_processes == by_threads


@pytest.mark.parametrize("plotter_type", [ThreadPlotter, ProcessPlotter])
def test_a_failing_plot_is_a_warning_naming_it_and_the_others_are_drawn(tmp_path, caplog, plotter_type):
    plotter = plotter_type()
    with caplog.at_level(logging.WARNING):
        plotter.submit("broken", "pr_curve", np.linspace(0, 1, 5), np.zeros((2, 4)), [0.1, 0.2], tmp_path / "x.png")
        plotter.submit("fine", "confusion_matrix", np.eye(3), tmp_path / "cm.png")
        plotter.close()
    assert "plotting broken failed: ValueError" in caplog.text
    assert "fine" not in caplog.text
    assert (tmp_path / "cm.png").exists() and not (tmp_path / "x.png").exists()


def test_an_unknown_task_is_refused_before_anything_is_sent():
    plotter = ThreadPlotter()
    with pytest.raises(ValueError, match="unknown plotting task 'histogram'"):
        plotter.submit("h", "histogram", [1, 2])
    plotter.close()


def test_a_drawing_process_that_dies_is_reported_with_the_plots_it_did_not_draw(tmp_path, caplog):
    plotter = ProcessPlotter(processes=1)
    plotter._drawers[0].proc.kill()
    with caplog.at_level(logging.WARNING):
        plotter.submit("cm", "confusion_matrix", np.eye(3), tmp_path / "cm.png")
        plotter.close()
    assert "plotting cm failed: the drawing process ended with status -9" in caplog.text
    plotter.close()  # a second close does nothing


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_a_process_forked_later_does_not_keep_close_waiting(tmp_path):
    """Data loader workers are forked after the drawing processes start and inherit the pipes to them: the end
    must not depend on those copies being closed."""
    plotter = ProcessPlotter(processes=1)
    child = multiprocessing.get_context("fork").Process(target=_sleep, args=(60,), daemon=True)
    child.start()
    try:
        plotter.submit("cm", "confusion_matrix", np.eye(3), tmp_path / "cm.png")
        t0 = time.perf_counter()
        plotter.close()
        assert time.perf_counter() - t0 < 30
        assert (tmp_path / "cm.png").exists()
    finally:
        child.kill()


def test_threads_are_used_when_processes_cannot_start(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise OSError("no more processes")

    monkeypatch.setattr(pool_module.subprocess, "Popen", refuse)
    with caplog.at_level(logging.WARNING):
        plotter = start_plotter(processes=True)
    assert isinstance(plotter, ThreadPlotter)
    assert "drawing processes could not start (no more processes)" in caplog.text
    plotter.close()


def test_threads_are_used_without_a_python_executable(monkeypatch, caplog):
    monkeypatch.setattr(pool_module.sys, "executable", "")
    with caplog.at_level(logging.WARNING):
        plotter = start_plotter(processes=True)
    assert isinstance(plotter, ThreadPlotter)
    assert "sys.executable is empty" in caplog.text
    plotter.close()


def test_the_drawing_modules_and_the_val_runner_load_without_torch():
    code = (
        "import sys, utils.plots.drawer as d, utils.runners.val; d.preload(); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities here")
def test_drawing_processes_run_below_the_programs_priority(tmp_path):
    plotter = ProcessPlotter(processes=1)
    try:
        plotter.submit("cm", "confusion_matrix", np.eye(3), tmp_path / "cm.png")  # answered: the process is set up
        deadline = time.monotonic() + 60
        while not (tmp_path / "cm.png").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = plotter._drawers[0].proc.pid
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + NICENESS, 19)
    finally:
        plotter.close()
