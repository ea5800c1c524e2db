"""A drawing process: ``python -m utils.plots.drawer`` reads plotting tasks on stdin and draws them.

:class:`utils.plots.pool.ProcessPlotter` starts these processes, sends each task as one pickle
``(key, task, args)`` (``task`` a name in :data:`TASKS`, ``args`` plain Python and numpy values) and ``None`` when
done; every task is answered on stdout with one pickle ``(key, error)``, ``error`` being ``None`` or the reason the
plot failed. The process imports the plotting modules first, without torch (Matplotlib and OpenCV: about 0.7 s on
2 cores, where torch alone takes 1.4 s), so that starting it beside a program that is busy importing torch costs
that program little on a machine with a free core; it runs at a lower priority (:data:`NICENESS`), ignores Ctrl-C
(the program that started it decides) and ends when told or when its input closes.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys
from collections.abc import Callable

#: what a drawing process can draw: task name -> "module:function" (each module importable without torch)
TASKS: dict[str, str] = {
    "batch": "utils.plots.batches:plot_images",
    "pr_curve": "utils.plots.metrics:plot_pr_curve",
    "mc_curve": "utils.plots.metrics:plot_mc_curve",
    "confusion_matrix": "utils.plots.metrics:plot_confusion_matrix",
}


def task_function(task: str) -> Callable:
    """The function behind a name of :data:`TASKS` (its module is imported on first use)."""
    if task not in TASKS:
        raise ValueError(f"unknown plotting task {task!r}; expected one of {sorted(TASKS)}")
    module, name = TASKS[task].split(":")
    return getattr(importlib.import_module(module), name)


def preload() -> None:
    """Import every module of :data:`TASKS` (Matplotlib, OpenCV), so the first task does not wait for them."""
    for task in TASKS:
        task_function(task)


def serve(inp, out) -> None:
    """Answer tasks read from the binary stream ``inp`` on ``out`` until ``None`` or the end of ``inp``."""
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            return
        if message is None:
            return
        key, task, args = message
        try:
            task_function(task)(*args)
            error = None
        except Exception as e:  # reported to the program, which warns: a plot never stops it
            error = f"{type(e).__name__}: {e}"
        pickle.dump((key, error), out)
        out.flush()


#: how much lower the drawing processes' scheduling priority is (Unix ``nice``): their work then fills the cores'
#: idle moments instead of slowing the evaluation they draw for (val.py on BCCD, 2 cores: 4% faster than at the
#: program's priority, 6 alternating pairs)
NICENESS = 10


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        os.nice(NICENESS)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever a library prints must not mix with the answers
    preload()
    serve(inp, out)
    # every figure is written and closed and every answer flushed: end now, without the interpreter's shutdown
    # (which would search Matplotlib's objects for cycles while the program waits for this process to end)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
