"""Where evaluation plots are drawn: threads of the program, or separate drawing processes.

Both take the same tasks (names of :data:`utils.plots.drawer.TASKS` with plain and numpy arguments), draw them
while the program goes on, warn about a plot that fails (a plot never stops the program) and wait for every plot
in ``close()``.

- :class:`ThreadPlotter`: two threads of the program. Cheap to start, but Matplotlib and the drawing hold the
  interpreter lock, which the program's own thread then waits for between its torch operations.
- :class:`ProcessPlotter`: two ``python -m utils.plots.drawer`` processes. Started before the program imports torch,
  they import Matplotlib on the core that the import leaves free, and they draw without taking the program's
  interpreter lock. ``val.py`` uses them: on 2 CPU cores its run over BCCD's 87 validation images was 1.10x faster
  than with threads (median of 6 alternating pairs; docs/benchmarks.md, "Side by side with upstream").
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from utils.plots.drawer import TASKS, preload, task_function

LOGGER = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the utils package

__all__ = ["ProcessPlotter", "ThreadPlotter", "start_plotter"]


def _warn(label: str, error: str) -> None:
    LOGGER.warning("plotting %s failed: %s", label, error)


def _check(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown plotting task {task!r}; expected one of {sorted(TASKS)}")


class ThreadPlotter:
    """Draw in two threads of this process; they import the plotting modules first."""

    def __init__(self, threads: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plots")
        self._pool.submit(preload)

    def submit(self, label: str, task: str, *args) -> None:
        """Draw ``task(*args)``; ``label`` names the plot in a warning if it fails."""
        _check(task)
        future = self._pool.submit(lambda: task_function(task)(*args))

        def report(f: Future) -> None:
            if f.exception() is not None:
                _warn(label, f"{type(f.exception()).__name__}: {f.exception()}")

        future.add_done_callback(report)

    def close(self) -> None:
        """Wait for every plot (a second call does nothing)."""
        self._pool.shutdown(wait=True)


class _Drawer:
    """One drawing process, fed by a writer thread (a batch of images is megabytes: the program must not wait
    for the pipe) and answered through a reader thread."""

    def __init__(self, on_answer):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "utils.plots.drawer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.pending = 0
        self._inbox: queue.Queue = queue.Queue()
        self._on_answer = on_answer
        self._writer = threading.Thread(target=self._write, name="plots-writer", daemon=True)
        self._reader = threading.Thread(target=self._read, name="plots-reader", daemon=True)
        self._writer.start()
        self._reader.start()

    def send(self, message) -> None:
        self._inbox.put(message)

    def _write(self) -> None:
        while True:
            message = self._inbox.get()
            try:  # the end is said in words: processes forked from this one (data loader workers) hold the pipe
                pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
                if message is None:
                    self.proc.stdin.close()
            except (OSError, ValueError):  # the process has ended: its tasks stay unanswered and are reported
                pass
            if message is None:
                return

    def _read(self) -> None:
        while True:
            try:
                key, error = pickle.load(self.proc.stdout)
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                return
            self._on_answer(key, error)

    def finish(self) -> int:
        self.send(None)
        self._writer.join()
        self._reader.join()
        return self.proc.wait()


class ProcessPlotter:
    """Draw in ``processes`` separate drawing processes; each task goes to the one with the fewest waiting."""

    def __init__(self, processes: int = 2):
        self._lock = threading.Lock()
        self._labels: dict[int, tuple[str, _Drawer]] = {}
        self._keys = itertools.count()
        self._drawers: list[_Drawer] = []
        try:
            for _ in range(processes):
                self._drawers.append(_Drawer(self._answered))
        except BaseException:
            self.close()
            raise

    def _answered(self, key: int, error: str | None) -> None:
        with self._lock:
            label, drawer = self._labels.pop(key)
            drawer.pending -= 1
        if error is not None:
            _warn(label, error)

    def submit(self, label: str, task: str, *args) -> None:
        """Draw ``task(*args)`` in a drawing process; ``label`` names the plot in a warning if it fails."""
        _check(task)
        with self._lock:
            drawer = min(self._drawers, key=lambda d: d.pending)
            key = next(self._keys)
            self._labels[key] = (label, drawer)
            drawer.pending += 1
        drawer.send((key, task, args))

    def close(self) -> None:
        """Wait for every plot; a process that ended early is reported with the plots it did not draw."""
        drawers, self._drawers = self._drawers, []
        for drawer in drawers:
            status = drawer.finish()
            lost = [label for label, d in self._labels.values() if d is drawer]
            if lost:
                _warn(", ".join(lost), f"the drawing process ended with status {status} before drawing them")


def start_plotter(processes: bool) -> ThreadPlotter | ProcessPlotter:
    """Drawing processes when ``processes`` and they start, else threads (a warning says why)."""
    if processes and not sys.executable:  # an embedded interpreter: no program to start
        LOGGER.warning("drawing processes need a Python executable (sys.executable is empty); plots drawn in threads")
    elif processes:
        try:
            return ProcessPlotter()
        except OSError as e:
            LOGGER.warning("drawing processes could not start (%s); plots are drawn in threads", e)
    return ThreadPlotter()
