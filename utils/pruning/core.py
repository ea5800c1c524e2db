"""Channel pruning of a YOLOv5 model on torch-pruning's dependency graph.

torch-pruning traces the model once and groups every coupled channel (a C3 residual add, a Concat, SPPF, the BN
after a conv, the next conv's input), so a pruned channel disappears everywhere it is used. The Detect output
convolutions are never pruned: their outputs are ``na * (5 + nc)`` and their inputs follow the neck.

With the same ratio for every layer, each convolution's width is planned here (:func:`kept_width`) and handed to
torch-pruning as its per-layer ``pruning_ratio_dict``: a layer that cannot reach the ratio keeps the fewest channels
it may (a multiple of ``round_to``, at least ``round_to``) instead of being left whole, which is what torch-pruning
does with a group whose rounded width would be 0.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from models.attention import CBAM
from models.yolo import Model
from utils.torch_utils import count_parameters

LOGGER = logging.getLogger(__name__)

#: importance criterion name -> factory of its torch-pruning class
IMPORTANCE: dict[str, Callable[[], tp.importance.Importance]] = {
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "bn": lambda: tp.importance.BNScaleImportance(),
    "lamp": lambda: tp.importance.LAMPImportance(p=2),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
    "random": lambda: tp.importance.RandomImportance(),
}
#: the largest fraction of any one layer's channels that may be removed (a layer always keeps some)
MAX_LAYER_RATIO = 0.95


def check_prunable(model: nn.Module, source: str = "model") -> None:
    """Raise ``ValueError`` for a model torch-pruning must not touch: a fused one (Conv blocks without BatchNorm)."""
    if not isinstance(model, Model):
        raise ValueError(f"{source}: not a YOLOv5 detection model ({type(model).__name__})")
    if model.is_fused():
        raise ValueError(
            f"{source}: the model is fused (its convolutions have no BatchNorm); prune the unfused training "
            "checkpoint (e.g. best.pt or last.pt), never an inference-fused one"
        )


def resolve_layers(model: Model, spec: str) -> list[int]:
    """Layer indices named by ``spec``: ``backbone``, ``neck``, ``all`` or comma-separated indices ("0,2,4").

    The Detect layer is never among them; naming it or an index the model lacks is a ``ValueError``.
    """
    n_layers = len(model.model)
    detect_index = n_layers - 1
    n_backbone = len(model.yaml["backbone"])
    spec = str(spec).strip()
    if spec == "all":
        return list(range(detect_index))
    if spec == "backbone":
        return list(range(n_backbone))
    if spec == "neck":
        return list(range(n_backbone, detect_index))
    indices = []
    for part in spec.split(","):
        try:
            index = int(part)
        except ValueError:
            raise ValueError(
                f"--layers {spec!r}: expected backbone, neck, all, or comma-separated layer indices"
            ) from None
        if index == detect_index:
            raise ValueError(f"--layers {spec!r}: layer {index} is the Detect head, whose outputs keep their channels")
        if not 0 <= index < detect_index:
            raise ValueError(f"--layers {spec!r}: unknown layer {index}; this model has layers 0-{detect_index - 1}")
        indices.append(index)
    return sorted(set(indices))


def layer_of(name: str) -> int:
    """Top-level layer index of a module named ``model.<index>...``."""
    return int(name.split(".")[1])


def chosen_convs(model: Model, layers: list[int]) -> dict[str, nn.Conv2d]:
    """Every convolution of the chosen layers by name (``model.2.cv1.conv``), in model order."""
    chosen = set(layers)
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and name.startswith("model.") and layer_of(name) in chosen
    }


def kept_width(channels: int, ratio: float, round_to: int) -> int:
    """Output channels a layer of ``channels`` keeps when ``ratio`` of them is removed: ``channels * (1 - ratio)``
    rounded down to a multiple of ``round_to``, but never fewer than ``round_to`` (never 0) nor more than it has."""
    wanted = int(channels * (1 - ratio))
    return min(channels, max(round_to, wanted - wanted % round_to))


def check_ratio(ratio: float) -> None:
    """Raise ``ValueError`` for a ratio outside ``(0, MAX_LAYER_RATIO]``."""
    if not ratio > 0:
        raise ValueError(f"ratio {ratio:g} must be > 0")
    if ratio > MAX_LAYER_RATIO:
        raise ValueError(
            f"ratio {ratio:g} is above {MAX_LAYER_RATIO:g}, the largest fraction of a layer's channels that may be "
            "removed"
        )


def _describe_layers(model: Model, layers: list[int]) -> str:
    """``11 Upsample, 12 Concat``: the chosen layers with their module types."""
    return ", ".join(f"{i} {type(model.model[i]).__name__}" for i in layers)


def nothing_to_prune(model: Model, layers: list[int], round_to: int) -> str | None:
    """Why no channel of the chosen layers can be removed at any ratio, or None when some can."""
    widths = [c.out_channels for c in chosen_convs(model, layers).values()]
    if not widths:
        return f"the chosen layers ({_describe_layers(model, layers)}) have no convolution to prune"
    widest = max(widths)
    if widest < round_to:
        return (
            f"--round-to {round_to} is larger than every chosen layer (the widest has {widest} output channels), "
            "so none can shrink"
        )
    if widest == round_to:
        return (
            f"every chosen layer is already at or below the --round-to minimum of {round_to} output channels, "
            "so none can shrink"
        )
    return None


def check_steps(model: Model, layers: list[int], round_to: int, steps: int) -> None:
    """Raise ``ValueError`` when ``steps`` exceeds the output channels of the narrowest convolution that can shrink:
    each step removes whole channels, so more steps than that cannot each prune it (and only cost time)."""
    shrinking = [(c.out_channels, name) for name, c in chosen_convs(model, layers).items() if c.out_channels > round_to]
    if not shrinking:
        return
    channels, name = min(shrinking)
    if steps > channels:
        raise ValueError(
            f"--iterative-steps {steps} is more than the {channels} output channels of the narrowest layer to prune "
            f"({name}); a step removes whole channels, so use at most {channels}"
        )


def uniform_ratios(convs: dict[str, nn.Conv2d], ratio: float, round_to: int) -> dict[nn.Module, float]:
    """torch-pruning's ``pruning_ratio_dict`` that leaves every convolution of ``convs`` at its :func:`kept_width`.

    torch-pruning keeps ``int(channels * (1 - r))`` channels rounded down to ``round_to``, so the ratio of a conv that
    keeps ``k`` is ``1 - (k + 0.5) / channels``. A group takes the ratio of its root convolution.
    """
    ratios: dict[nn.Module, float] = {}
    for conv in convs.values():
        channels = conv.out_channels
        keep = kept_width(channels, ratio, round_to)
        ratios[conv] = 1 - (keep + 0.5) / channels if keep < channels else 0.0
    return ratios


@dataclass(frozen=True)
class WidthChange:
    """One convolution's output channels before and after pruning."""

    name: str
    before: int
    after: int

    @property
    def layer(self) -> int:
        return layer_of(self.name)


def width_changes(before: dict[str, int], model: Model) -> list[WidthChange]:
    """``before`` (conv name -> output channels) paired with the widths of the same convolutions in ``model``."""
    modules = dict(model.named_modules())
    return [WidthChange(name, c, modules[name].out_channels) for name, c in before.items()]


def short_of_ratio(changes: list[WidthChange], ratio: float) -> list[WidthChange]:
    """The convolutions that kept more channels than ``ratio`` asks (``before * (1 - ratio)``), e.g. because a layer
    keeps at least ``round_to`` of them."""
    return [c for c in changes if c.after > c.before * (1 - ratio) + 1e-6]


def left_whole(changes: list[WidthChange], ratio: float, round_to: int) -> list[WidthChange]:
    """The convolutions that kept all their channels although ``ratio`` would shrink them (their :func:`kept_width`
    is smaller): torch-pruning could not remove any of their channels."""
    return [c for c in changes if c.after == c.before and kept_width(c.before, ratio, round_to) < c.before]


def why_left_whole(model: Model) -> str:
    """Why torch-pruning leaves a convolution's channels alone, with the cause this model has where we know it."""
    why = "their channels are tied to a layer not chosen or to an operation torch-pruning cannot split"
    if any(isinstance(m, CBAM) for m in model.modules()):
        why += (
            "; here CBAM: torch-pruning traces its channel mean/max and spatial gate as element-wise operations, "
            "which ties the channels of the convolution feeding each CBAM block (and of its channel-attention "
            "output) to the block's one-channel spatial map, so it leaves them whole"
        )
    return why


def ignored_modules(model: Model, layers: list[int]) -> list[nn.Module]:
    """Every convolution whose output channels must stay: the Detect convs and those of layers not chosen."""
    chosen = set(layers)
    ignored: list[nn.Module] = list(model.detect.m)
    for i, layer in enumerate(model.model[:-1]):
        if i not in chosen:
            ignored += [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
    return ignored


def prune_model(
    model: Model,
    ratio: float,
    layers: list[int],
    importance: str = "l1",
    global_pruning: bool = False,
    iterative_steps: int = 1,
    round_to: int = 8,
    imgsz: int = 640,
    log_steps: bool = False,
) -> Model:
    """Remove ``ratio`` of the output channels of the chosen layers' convolutions, in place; returns ``model``.

    ``ratio`` (at most :data:`MAX_LAYER_RATIO`) applies to every convolution, which keeps :func:`kept_width` channels
    (uniform), or to all of them ranked together (``global_pruning``). ``iterative_steps`` reaches it in that many
    steps, re-ranking after each. For ``importance="taylor"`` the parameters must already hold gradients (see
    :func:`accumulate_gradients`); torch-pruning prunes them along. The model is traced in eval mode, so BN running
    statistics are left untouched. Raises ``ValueError`` when the chosen layers have nothing to remove or when
    ``iterative_steps`` is more than the narrowest of them has channels. ``log_steps`` logs the size after each step.
    """
    if importance not in IMPORTANCE:
        raise ValueError(f"importance {importance!r} is not one of {tuple(IMPORTANCE)}")
    check_prunable(model)
    check_ratio(ratio)
    reason = nothing_to_prune(model, layers, round_to)
    if reason is not None:
        raise ValueError(f"nothing to prune: {reason}")
    check_steps(model, layers, round_to, iterative_steps)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    example = torch.zeros(1, model.yaml.get("ch", 3), imgsz, imgsz, device=device)
    if global_pruning:
        per_layer = {"pruning_ratio": ratio, "max_pruning_ratio": MAX_LAYER_RATIO}
    else:  # the planned widths already respect MAX_LAYER_RATIO (ratio <= it)
        ratios = uniform_ratios(chosen_convs(model, layers), ratio, round_to)
        per_layer = {"pruning_ratio": 0.0, "pruning_ratio_dict": ratios, "max_pruning_ratio": 1.0}
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=IMPORTANCE[importance](),
        global_pruning=global_pruning,
        iterative_steps=iterative_steps,
        ignored_layers=ignored_modules(model, layers),
        round_to=round_to,
        **per_layer,
    )
    for step in range(1, iterative_steps + 1):
        pruner.step()
        if log_steps:
            LOGGER.info("pruning step %d/%d: %s parameters", step, iterative_steps, f"{count_parameters(model):,}")
    model.train(was_training)
    return model


def accumulate_gradients(model: Model, batches, loss_fn, device: torch.device | str = "cpu") -> int:
    """Backpropagate the detection loss of ``batches`` (``(imgs uint8 [B,3,H,W], targets [N,6], ...)``) into
    ``model``'s parameters, for Taylor importance. BN uses its running statistics (eval mode). Returns the count."""
    model.eval()
    model.zero_grad(set_to_none=True)
    n = 0
    for imgs, targets, *_ in batches:
        imgs = imgs.to(device).float() / 255
        _, raw = model(imgs)
        loss, _ = loss_fn(raw, targets.to(device))
        loss.backward()
        n += 1
    if n == 0:
        raise ValueError("--importance taylor: the data gave no training batch")
    return n


def search_ratio(
    model: Model,
    target: float,
    measure: Callable[[Model], float],
    prune: Callable[[Model, float], Model],
    step: float = 0.1,
    refine: int = 4,
) -> tuple[float, float]:
    """Smallest ratio whose pruned model keeps at most ``target`` of ``measure(model)``; ``model`` is untouched.

    ``prune(copy, ratio)`` prunes a copy. The ratios ``step, 2*step, ...`` are tried in order until one meets the
    target, then ``refine`` bisection steps narrow the interval below it. (A scan, not a plain bisection: with
    global ranking, torch-pruning leaves a layer whole when the ranking would remove all of it, so a higher ratio
    can keep *more*.) Returns ``(ratio, reached fraction)``; raises ``ValueError`` when no ratio up to
    :data:`MAX_LAYER_RATIO` meets the target, naming the smallest fraction reached.
    """
    full = measure(model)

    def fraction(ratio: float) -> float:
        return measure(prune(copy.deepcopy(model), ratio)) / full

    lo, best = 0.0, 1.0
    grid = [round(step * k, 6) for k in range(1, int(MAX_LAYER_RATIO / step) + 1)]
    for hi in grid:
        reached = fraction(hi)
        LOGGER.info("ratio %.3f keeps %.4f (target %.4f)", hi, reached, target)
        if reached <= target:
            break
        lo, best = hi, min(best, reached)
    else:
        raise ValueError(
            f"target {target:g} is below what the kept layers need: the smallest fraction reached is {best:.3f} "
            f"of the original (ratios up to {grid[-1]}); choose more layers or a larger target"
        )
    for _ in range(refine):
        mid = (lo + hi) / 2
        value = fraction(mid)
        LOGGER.info("ratio %.4f keeps %.4f (target %.4f)", mid, value, target)
        if value <= target:
            hi, reached = mid, value
        else:
            lo = mid
    return hi, reached
