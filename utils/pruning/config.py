"""What to prune and how: the typed configuration behind ``tools/prunmodel.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.cli import PlainConfig, check_flags, flag

IMPORTANCE_KINDS = ("l1", "l2", "bn", "lamp", "taylor", "random")


def check_out_path(weights: str | Path, out: str | Path) -> None:
    """Raise ``ValueError`` for an ``--out`` that would overwrite ``--weights`` or that does not name a ``.pt`` file."""
    if Path(out).suffix.lower() != ".pt":
        raise ValueError(
            f"--out {out}: the pruned model is written as a PyTorch checkpoint, so --out must end in .pt "
            "(export.py makes .onnx and the other formats from it)"
        )
    out_path, weights_path = Path(out), Path(weights)
    if out_path.resolve() == weights_path.resolve() or (out_path.exists() and out_path.samefile(weights_path)):
        raise ValueError(f"--out {out} is the input --weights {weights}: write the pruned model to another file")


@dataclass
class PruneConfig(PlainConfig):
    """One pruning job. Exactly one of ``ratio``, ``target_params``, ``target_gflops`` sets how much to remove."""

    weights: str = flag("", help="checkpoint to prune: ours, upstream YOLOv5's, or already pruned")
    out: str = flag("", help="where to write the pruned checkpoint")
    ratio: float | None = flag(
        None,
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        help="fraction of channels removed from each pruned layer (or globally with --global)",
    )
    target_params: float | None = flag(
        None, low=0, high=1, low_open=True, high_open=True, help="keep at most this fraction of the parameters"
    )
    target_gflops: float | None = flag(
        None, low=0, high=1, low_open=True, high_open=True, help="keep at most this fraction of the GFLOPs"
    )
    layers: str = flag("all", help="backbone, neck, all, or layer indices like 0,1,2")
    importance: str = flag("l1", choices=IMPORTANCE_KINDS, help="channel ranking")
    global_: bool = flag(False, help="rank channels across layers together instead of the same ratio per layer")
    iterative_steps: int = flag(1, low=1, help="reach the ratio in this many steps")
    round_to: int = flag(8, low=1, help="keep channel counts multiples of this")
    imgsz: int = flag(640, low=32, help="image size for GFLOPs and latency (a multiple of 32)")
    data: str = flag("", help="dataset yaml; --importance taylor takes a few batches of its training images")
    taylor_batches: int = flag(4, low=1, help="batches for --importance taylor")
    batch_size: int = flag(8, low=1, help="batch size for --importance taylor")
    seed: int = flag(0, help="seed of --importance random and of the taylor batches")
    device: str = flag("cpu", help="cpu or a CUDA device such as 0")

    def __post_init__(self) -> None:
        check_flags(self)
        if not self.weights:
            raise ValueError("--weights is required: the checkpoint to prune")
        if not Path(self.weights).is_file():
            raise FileNotFoundError(f"--weights {self.weights}: file not found")
        if not self.out:
            raise ValueError("--out is required: where to write the pruned checkpoint")
        check_out_path(self.weights, self.out)
        given = [n for n in ("ratio", "target_params", "target_gflops") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of --ratio, --target-params, --target-gflops"
                + (f" (got {', '.join('--' + g.replace('_', '-') for g in given)})" if given else "")
            )
        if self.importance == "taylor" and not self.data:
            raise ValueError("--importance taylor needs --data: gradients come from a few batches of real images")
        if self.imgsz % 32:
            raise ValueError(f"--imgsz must be a positive multiple of 32, got {self.imgsz}")
