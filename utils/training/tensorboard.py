"""TensorBoard logging of a training run, when the ``tensorboard`` package is installed (``tensorboard --logdir runs``).

Event files go into the run directory. What is logged:

- every ``results.csv`` row as scalars at its epoch (losses, metrics, learning rates; empty cells skipped);
- the batch mosaics (``train_batch*.jpg``) and the label statistics (``labels.jpg``) once they exist;
- at the end, the final curves and plots (``results.png``, PR / F1 / P / R curves, confusion matrix).

Without ``tensorboard`` every method does nothing and the run is unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

LOGGER = logging.getLogger(__name__)

MOSAICS = ("labels.jpg", "train_batch0.jpg", "train_batch1.jpg", "train_batch2.jpg")
FINAL_PLOTS = (
    "results.png", "PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png", "confusion_matrix.png",
)  # fmt: skip


def _summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard raises ImportError itself when the package is missing
        return None
    return SummaryWriter


class TensorBoardLogger:
    """Writes a run's scalars and images to TensorBoard event files in ``save_dir``; a no-op without tensorboard."""

    def __init__(self, save_dir: str | Path):
        self.save_dir = Path(save_dir)
        self.logged_images: set[str] = set()
        writer_class = _summary_writer_class()
        self.writer = writer_class(log_dir=str(self.save_dir)) if writer_class is not None else None
        if self.writer is not None:
            LOGGER.info("TensorBoard: view with 'tensorboard --logdir %s'", self.save_dir.parent)

    @property
    def enabled(self) -> bool:
        """Whether anything is written (tensorboard is installed and the logger is open)."""
        return self.writer is not None

    def log_epoch(self, epoch: int, row: dict) -> None:
        """One ``results.csv`` row (column name -> value) as scalars at ``epoch``, and any new mosaic images."""
        if self.writer is None:
            return
        for name, value in row.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, float(value), epoch)
        self._log_images(MOSAICS, epoch)
        self.writer.flush()

    def close(self, epoch: int = 0) -> None:
        """Log the final plots found in the run directory and close the event file."""
        if self.writer is None:
            return
        self._log_images(FINAL_PLOTS, epoch)
        self.writer.close()
        self.writer = None

    def _log_images(self, names: tuple[str, ...], step: int) -> None:
        for name in names:
            path = self.save_dir / name
            if name in self.logged_images or not path.is_file():
                continue
            image = cv2.imread(str(path))
            if image is None:
                LOGGER.warning("TensorBoard: cannot read %s; not logged", path)
                continue
            self.writer.add_image(Path(name).stem, image[..., ::-1].copy(), step, dataformats="HWC")
            self.logged_images.add(name)
