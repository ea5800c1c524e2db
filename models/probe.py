"""One dry forward pass that reports what chosen top-level layers of a model output."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")


def probe_outputs(model: nn.Module, x: torch.Tensor, layers: Iterable[int], fn: Callable[[Any], T]) -> dict[int, T]:
    """Run ``model`` once on ``x`` and return ``{i: fn(output of model.model[i])}`` for every index in ``layers``.

    Args:
        model: a :class:`models.yolo.Model` (anything whose ``model`` attribute holds its layers in order).
        x: the input, ``[B, C, H, W]``; it is moved to the device and dtype of the model's first parameter.
        layers: indices into ``model.model``, each within ``0..len(model.model) - 1``.
        fn: applied to each chosen layer's output as the pass produces it. A feature map is ``[B, C_i, H_i, W_i]``;
            Detect (the last layer) gives ``(decoded [B, N, 5 + nc], raw list of [B, na, H_i, W_i, 5 + nc])``
            since the pass runs in eval mode. Keep only what is needed (e.g. ``lambda y: y.shape``).

    The pass runs in eval mode under ``torch.no_grad()``, so batch-norm statistics do not change; afterwards every
    module is back in the train/eval mode it had and the hooks are removed, also when the pass raises.
    A layer that the pass did not reach has no entry.
    """
    layers = list(layers)
    n = len(model.model)
    bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < n]
    if bad:
        raise ValueError(f"layer index {bad[0]!r} is not a layer of the model (0..{n - 1})")
    results: dict[int, T] = {}

    def record(i: int) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            results[i] = fn(output)

        return hook

    modes = [(m, m.training) for m in model.modules()]
    first = next(model.parameters())
    handles = []
    try:
        for i in layers:
            handles.append(model.model[i].register_forward_hook(record(i)))
        model.eval()
        with torch.no_grad():
            model(x.to(device=first.device, dtype=first.dtype))
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes:
            m.training = training
    return results
