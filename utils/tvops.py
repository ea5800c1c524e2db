"""torchvision's compiled NMS kernel, loaded without importing the torchvision package.

``import torchvision`` takes about 2.4 s on a 2-core machine (its ``ops`` package imports ``torch._dynamo``): more
than a val.py run on BCCD spends in NMS itself. The kernel lives in torchvision's extension library, which
registers the ``torchvision::nms`` operator with torch when it is loaded, in milliseconds. Where that library cannot
be found or loaded (a torchvision laid out differently), the package is imported as usual, which registers the
same operator.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch

__all__ = ["batched_nms", "nms"]


def _registered() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018  (raises until the operator is registered)
        return True
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def _load() -> None:
    if _registered():
        return
    spec = importlib.util.find_spec("torchvision")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for lib in sorted(Path(folder).glob("_C*")):
            try:
                torch.ops.load_library(str(lib))
            except (OSError, RuntimeError):
                continue
            if _registered():
                return
    import torchvision  # noqa: F401  (registers the operators)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thres: float) -> torch.Tensor:
    """Indices ``[k]`` (int64) of the ``[N, 4]`` xyxy ``boxes`` kept by greedy NMS, by descending ``scores [N]``."""
    _load()
    return torch.ops.torchvision.nms(boxes, scores, float(iou_thres))


#: above this many boxes, one NMS per group: the kernel compares each kept box with every later box, so one NMS
#: over all groups spends most of its time on pairs of different groups, which never suppress each other
#: (30,000 candidates of an early model, 3 classes: 2.8x faster; 80 classes: 32x)
PER_GROUP_ABOVE = 1000


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_thres: float) -> torch.Tensor:
    """NMS within each group (``groups [N]`` int64, e.g. classes): boxes of different groups never suppress each
    other. Returns kept indices ``[k]`` by descending score (equal scores in a fixed order).

    Up to :data:`PER_GROUP_ABOVE` boxes, each group's boxes are shifted by ``group * (largest coordinate + 1)`` so
    that no two groups overlap, and one NMS runs over all; above it, one NMS runs per group. Both keep the same
    boxes."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.shape[0] > PER_GROUP_ABOVE:
        kept = []
        for group in groups.unique():
            members = (groups == group).nonzero().squeeze(1)
            kept.append(members[nms(boxes[members], scores[members], iou_thres)])
        keep = torch.cat(kept)
        return keep[scores[keep].argsort(descending=True, stable=True)]
    offsets = groups.to(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_thres)
