"""What to prune and how: the typed configuration behind ``tools/prunmodel.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.cli import PlainConfig

IMPORTANCE_KINDS = ("l1", "l2", "bn", "lamp", "taylor", "random")


@dataclass
class PruneConfig(PlainConfig):
    """One pruning job. Exactly one of ``ratio``, ``target_params``, ``target_gflops`` sets how much to remove."""

    weights: str = ""
    out: str = ""
    ratio: float | None = None  # fraction of channels removed from each pruned layer (or globally with global_)
    target_params: float | None = None  # keep at most this fraction of the parameters
    target_gflops: float | None = None  # keep at most this fraction of the GFLOPs
    layers: str = "all"  # backbone, neck, all, or comma-separated layer indices such as "0,1,2,3"
    importance: str = "l1"
    global_: bool = False  # one importance ranking across all layers instead of the same ratio per layer
    iterative_steps: int = 1
    round_to: int = 8
    imgsz: int = 640
    data: str = ""  # dataset yaml; --importance taylor takes a few batches of its training images
    taylor_batches: int = 4
    batch_size: int = 8
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to prune")
        if not Path(self.weights).is_file():
            raise FileNotFoundError(f"--weights {self.weights}: file not found")
        if not self.out:
            raise ValueError("--out is required: where to write the pruned checkpoint")
        given = [n for n in ("ratio", "target_params", "target_gflops") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of --ratio, --target-params, --target-gflops"
                + (f" (got {', '.join('--' + g.replace('_', '-') for g in given)})" if given else "")
            )
        for name in given:
            value = getattr(self, name)
            if not 0 < value < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be a fraction strictly between 0 and 1, got {value}")
        if self.importance not in IMPORTANCE_KINDS:
            raise ValueError(f"--importance {self.importance!r} is not one of {IMPORTANCE_KINDS}")
        if self.importance == "taylor" and not self.data:
            raise ValueError("--importance taylor needs --data: gradients come from a few batches of real images")
        if self.iterative_steps < 1:
            raise ValueError(f"--iterative-steps must be >= 1, got {self.iterative_steps}")
        if self.round_to < 1:
            raise ValueError(f"--round-to must be >= 1, got {self.round_to}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError(f"--imgsz must be a positive multiple of 32, got {self.imgsz}")
        if self.taylor_batches < 1:
            raise ValueError(f"--taylor-batches must be >= 1, got {self.taylor_batches}")
