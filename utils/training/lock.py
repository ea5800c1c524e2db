"""One training process per run directory.

``--resume`` of a run whose first process is still alive would make two processes write the same ``last.pt`` and
``results.csv``. Each run holds an advisory lock on ``<run>/.lock`` (``fcntl.flock``) for as long as it trains; the
operating system releases it when the process ends in any way, ``kill -9`` included, so a stale file never blocks.
The file holds the holder's pid and host name, which the error names.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

LOGGER = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class RunLockedError(ValueError):
    """The run directory is held by another live training process; the message names its pid."""


class RunLock:
    """Exclusive lock on a run directory. ``acquire()`` raises :class:`RunLockedError` when another process holds
    it; ``release()`` (or leaving the ``with`` block) lets it go."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            LOGGER.debug("no fcntl on this platform: %s is not locked", self.path.parent)
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by another training process ({self._holder()}); wait for it to "
                "finish or stop it before resuming this run"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "pid unknown"
        except OSError:
            return "pid unknown"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
