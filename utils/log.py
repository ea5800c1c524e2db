"""Logging set-up for the command-line programs (library modules only call ``logging.getLogger``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(message)s"


def setup_logging(verbose: bool = True, log_file: str | Path | None = None) -> None:
    """Send INFO (or WARNING when not ``verbose``) messages to stderr, and optionally everything to ``log_file``."""
    root = logging.getLogger()
    level = logging.INFO if verbose else logging.WARNING
    if not any(getattr(h, "_yolov5_kd", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._yolov5_kd = True
        root.addHandler(handler)
    root.setLevel(min(level, root.level) if root.level else level)
    for h in root.handlers:
        if getattr(h, "_yolov5_kd", False) and isinstance(h, logging.StreamHandler) and h.stream is sys.stderr:
            h.setLevel(level)
    if log_file is not None:
        add_file_log(log_file)


def add_file_log(path: str | Path) -> logging.Handler:
    """Also write INFO and above to ``path`` (e.g. a run's ``train.log``); returns the handler to remove later."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(min(logging.getLogger().level or logging.INFO, logging.INFO))
    return handler
