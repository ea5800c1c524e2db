"""The per-layer model summary: index, input layer(s), repeats, parameters, module, arguments and output shape.

The table is YOLOv5's model summary with one more column, the output shape of each layer for one image of a given
size (measured by a dry run in eval mode, so batch-norm statistics do not change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from models.probe import probe_outputs

if TYPE_CHECKING:
    from models.yolo import Model


@dataclass
class LayerRow:
    """One row of the summary. ``output`` is the layer's output shape without the batch dimension: ``[C, H, W]``
    for a feature map; for Detect, the decoded predictions ``[N, 5 + nc]`` (N = anchors x cells, all levels)."""

    index: int
    source: int | list[int]
    number: int
    params: int
    module: str
    args: list
    output: list[int]
    resized: bool = False  # its convolutions are narrower or wider than ``args`` (the yaml's) say: a pruned layer


def _shape(out) -> list[int]:
    """``out``'s shape without the batch dimension; of the first element for a tuple (Detect's decoded output)."""
    if isinstance(out, torch.Tensor):
        return list(out.shape[1:])
    if isinstance(out, (tuple, list)) and out:
        return _shape(out[0])
    return []


def layer_rows(model: Model, img_size: int | tuple[int, int] = 640) -> list[LayerRow]:
    """Rows of every top-level layer of a :class:`models.yolo.Model`, with output shapes at ``img_size``.

    ``img_size`` is ``H`` (square) or ``(H, W)``, each a multiple of the model's largest stride.
    """
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    stride = int(model.stride.max())
    if h % stride or w % stride:
        raise ValueError(f"image size {h}x{w} is not a multiple of the model's largest stride {stride}")
    x = torch.zeros(1, model.yaml.get("ch", 3), h, w)
    shapes = probe_outputs(model, x, range(len(model.model)), _shape)
    resized = resized_layers(model)
    return [
        LayerRow(
            index=m.i,
            source=m.f,
            number=getattr(m, "n", 1),
            params=sum(p.numel() for p in m.parameters()),
            module=getattr(m, "type", type(m).__name__),
            args=list(getattr(m, "args", [])),
            output=shapes.get(i, []),
            resized=i in resized,
        )
        for i, m in enumerate(model.model)
    ]


def resized_layers(model: Model) -> set[int]:
    """Indices of the layers whose parameter shapes differ from those of a fresh build of ``model.yaml`` (the
    layers of a pruned model, whose ``args`` still hold the yaml's widths)."""
    from models.yolo import Model as _Model

    try:
        reference = _Model(model.yaml)
    except (ValueError, RuntimeError, TypeError, KeyError):  # the yaml cannot be rebuilt on its own: no comparison
        return set()
    return {
        i
        for i, (m, r) in enumerate(zip(model.model, reference.model, strict=False))
        if [p.shape for p in m.state_dict().values()] != [p.shape for p in r.state_dict().values()]
    }


def _short(value, limit: int = 48) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_rows(rows: list[LayerRow]) -> str:
    """The rows as a fixed-width text table, one line per layer under a header line."""
    header = f"{'':>3} {'from':>18} {'n':>3} {'params':>10}  {'module':<12} {'arguments':<48} output"
    lines = [header]
    for r in rows:
        args = ("* " if r.resized else "") + str(r.args)
        lines.append(
            f"{r.index:>3} {_short(r.source, 18):>18} {r.number:>3} {r.params:>10}  {r.module:<12} "
            f"{_short(args):<48} {r.output}"
        )
    resized = [r.index for r in rows if r.resized]
    if resized:
        lines.append(
            f"* {len(resized)} pruned layers: their arguments are the yaml's unpruned widths; the output column "
            "gives the channels they actually have"
        )
    return "\n".join(lines)
