"""Evaluation plots (PR / metric curves, confusion matrix) and image annotation helpers.

The names below are imported on first use, so that importing one light module of this package (drawing boxes,
for instance) does not import Matplotlib (about 0.4 s) with it.
"""

import importlib

from utils.plots.colors import Colors, colors  # imported now: the name ``colors`` is also the submodule's

_WHERE = {
    "Annotator": "annotate",
    "save_one_box": "annotate",
    "unique_path": "annotate",
    "plot_ap_result": "metrics",
    "plot_confusion_matrix": "metrics",
    "plot_mc_curve": "metrics",
    "plot_pr_curve": "metrics",
}

__all__ = ["Annotator", "Colors", "colors", "plot_ap_result", "plot_confusion_matrix", "plot_mc_curve", "plot_pr_curve",
           "save_one_box", "unique_path"]  # fmt: skip


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
