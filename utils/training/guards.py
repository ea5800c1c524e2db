"""Guards of the training loop: non-finite losses.

A poisoned batch (a label with absurd coordinates, a corrupt image that decoded to garbage, an extreme
hyperparameter) can make the loss NaN or infinite. That step is skipped and counted; training goes on. When too
many steps in a row are skipped, or a whole epoch has no usable step, the run stops with
:class:`NonFiniteLossError` before anything is saved, naming the images of the last bad batch: the weights are
then not worth keeping (the previous ``last.pt`` stays as it was).
"""

from __future__ import annotations

import logging
from pathlib import Path

LOGGER = logging.getLogger(__name__)

#: skipped steps in a row after which training stops
MAX_CONSECUTIVE_SKIPS = 10
_HINT = (
    "check these images and their labels, and the hyperparameters (--hyp, --kd-weight); training resumes from the "
    "last saved epoch with --resume once the cause is fixed"
)


class NonFiniteLossError(ValueError):
    """Training stopped because the loss kept being NaN or infinite; the message points at the data."""


class NonFiniteGuard:
    """Counts steps skipped for a non-finite loss; raises :class:`NonFiniteLossError` when it is hopeless."""

    def __init__(self, max_consecutive: int = MAX_CONSECUTIVE_SKIPS):
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.skipped_epoch = 0
        self.skipped_total = 0
        self.last_paths: list[str] = []

    def skip(self, value: float, epoch: int, batch: int, paths) -> None:
        """Record a skipped step (``paths``: the batch's image files); raise after too many in a row."""
        self.consecutive += 1
        self.skipped_epoch += 1
        self.skipped_total += 1
        self.last_paths = [str(p) for p in paths]
        LOGGER.warning(
            "non-finite loss %s at epoch %d batch %d: step skipped (%d in a row; images %s)",
            value, epoch, batch, self.consecutive, _short(self.last_paths),
        )  # fmt: skip
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(
                f"the loss was non-finite in {self.consecutive} steps in a row (epoch {epoch}, last batch {batch}, "
                f"images {_short(self.last_paths)}): {_HINT}"
            )

    def ok(self) -> None:
        """Record a step that was taken."""
        self.consecutive = 0

    def end_epoch(self, epoch: int, steps: int) -> None:
        """Log the epoch's skipped steps; raise if no step of the epoch could be taken."""
        skipped, self.skipped_epoch = self.skipped_epoch, 0
        if skipped and steps == 0:
            raise NonFiniteLossError(
                f"every one of the {skipped} steps of epoch {epoch} had a non-finite loss, so nothing was learned "
                f"(last images {_short(self.last_paths)}): {_HINT}"
            )
        if skipped:
            LOGGER.warning("epoch %d: %d of %d steps skipped for a non-finite loss", epoch, skipped, skipped + steps)


def _short(paths: list[str], n: int = 4) -> str:
    names = [Path(p).name for p in paths[:n]]
    return ", ".join(names) + (f" and {len(paths) - n} more" if len(paths) > n else "") if names else "(none)"
