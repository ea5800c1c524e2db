"""Run ``train.py`` or ``train_kd.py`` and SIGKILL the process itself at a chosen point (a test driver).

    python tests/faults/sigkill_run.py --at batch:5 train.py --data ... --epochs 3
    python tests/faults/sigkill_run.py --at fsync:2 train_kd.py --resume runs/exp/weights/last.pt

Points (counted from the start of this process, 1-based):

- ``batch:N``: when the training loop fetches its N-th batch (a point in the middle of an epoch).
- ``fsync:N``: in the N-th checkpoint write, after the data is written to the temporary file and before it is
  renamed over the target (the last moment a non-atomic writer would leave a torn file).
- ``midsave:N``: in the N-th checkpoint write, after half of the bytes are written.

The kill is a real ``SIGKILL`` (as ``kill -9``): no handler, ``finally`` block or ``atexit`` hook runs.
"""

from __future__ import annotations

import io
import os
import runpy
import signal
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_batch(n: int) -> None:
    import utils.training.engine as engine

    real_tqdm, fetched = engine.tqdm, [0]

    class KillingBar(real_tqdm):
        def __iter__(self):
            for item in super().__iter__():
                fetched[0] += 1
                if fetched[0] == n:
                    _die()
                yield item

    engine.tqdm = KillingBar


def _kill_at_fsync(n: int) -> None:
    real_fsync, calls = os.fsync, [0]

    def fsync(fd):
        real_fsync(fd)
        calls[0] += 1
        if calls[0] == n:
            _die()

    os.fsync = fsync


def _kill_mid_save(n: int) -> None:
    real_save, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] != n or isinstance(f, (str, os.PathLike)):
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        _die()

    torch.save = save


POINTS = {"batch": _kill_at_batch, "fsync": _kill_at_fsync, "midsave": _kill_mid_save}


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[1] != "--at":
        raise SystemExit(__doc__)
    kind, _, count = sys.argv[2].partition(":")
    if kind not in POINTS or not count.isdigit() or int(count) < 1:
        raise SystemExit(f"--at must be one of {', '.join(f'{k}:N' for k in POINTS)} with N >= 1, got {sys.argv[2]}")
    POINTS[kind](int(count))
    script = str(REPO / sys.argv[3])
    sys.argv = [script, *sys.argv[4:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
