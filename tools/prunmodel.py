"""Prune a YOLOv5 checkpoint's channels (torch-pruning dependency graph); the result is really smaller and faster.

    python tools/prunmodel.py --weights best.pt --ratio 0.5 --out pruned.pt
    python tools/prunmodel.py --weights best.pt --target-params 0.4 --importance lamp --global --out pruned.pt
    python tools/prunmodel.py --weights best.pt --ratio 0.3 --importance taylor --data data/mydata.yaml --out p.pt

Then recover the accuracy: ``python train_kd.py --weights pruned.pt --teacher best.pt --data ...``.
The checkpoint records every layer's pruned width, so train.py, train_kd.py, val.py and detect.py load it as is.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from utils.cli import add_flags, config_from_namespace, run_main
from utils.pruning.config import PruneConfig
from utils.pruning.workflow import PruneResult, prune_checkpoint

LOGGER = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> PruneConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, PruneConfig)
    return config_from_namespace(PruneConfig, p.parse_args(argv))


def file_stamp(path: str | Path) -> tuple[int, int] | None:
    """``(inode, modification time in ns)`` of ``path``, or None when there is no such file: it changes when the
    checkpoint is (re)written, since checkpoints are written to a temporary file and renamed."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def interrupted_message(out: str, stamp_before: tuple[int, int] | None) -> str:
    """What a Ctrl-C left behind: nothing, or the pruned checkpoint if it came after the write."""
    if file_stamp(out) != stamp_before:
        return f"interrupted (Ctrl-C) after the pruned checkpoint was written to {out}"
    state = "is unchanged" if stamp_before is not None else "was not created"
    return f"interrupted (Ctrl-C): nothing was written ({out} {state})"


def main(argv: list[str] | None = None) -> PruneResult:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = parse_args(argv)
    stamp = file_stamp(cfg.out)
    try:
        return prune_checkpoint(cfg)
    except KeyboardInterrupt:
        LOGGER.error("%s", interrupted_message(cfg.out, stamp))
        raise


if __name__ == "__main__":
    run_main(main)
