"""Numpy helpers for metric curves, importable without torch (the plotting processes of
:mod:`utils.plots.drawer` use them); :mod:`utils.metrics` offers the same names."""

from __future__ import annotations

import numpy as np

__all__ = ["smooth"]


def smooth(y: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Moving average of ``y`` (``[k]``) over an odd window of about ``fraction * k`` samples, edges replicated.

    Returns an array of the same length ``[k]``.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y
    half = int(round(len(y) * fraction)) // 2
    window = 2 * half + 1
    padded = np.concatenate((np.full(half, y[0]), y, np.full(half, y[-1])))
    return np.convolve(padded, np.ones(window) / window, mode="valid")
