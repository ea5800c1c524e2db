"""Evaluation plots (PR / metric curves, confusion matrix) and image annotation helpers."""

from utils.plots.annotate import Annotator, save_one_box, unique_path
from utils.plots.colors import Colors, colors
from utils.plots.metrics import plot_ap_result, plot_confusion_matrix, plot_mc_curve, plot_pr_curve

__all__ = [
    "Annotator",
    "Colors",
    "colors",
    "plot_ap_result",
    "plot_confusion_matrix",
    "plot_mc_curve",
    "plot_pr_curve",
    "save_one_box",
    "unique_path",
]
