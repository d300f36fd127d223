"""Helpers shared by the evaluation tests (a uniquely named module: several conftest.py exist)."""

from __future__ import annotations

import numpy as np

from mlplab import plots


def seven() -> np.ndarray:
    """A 28x28 light-on-dark '7'-like uint8 picture, off-centre, not touching the border."""
    a = np.zeros((28, 28), np.uint8)
    a[4:7, 6:22] = 255          # top bar
    for r in range(7, 25):      # diagonal stroke
        c = 21 - (r - 7) * 9 // 17
        a[r, c - 1:c + 2] = 255
    a[14, 10:18] = 180          # a grey cross bar
    return a


def capture_figures(monkeypatch) -> list:
    """The figures the plot functions save from now on, in order (saved as usual too)."""
    figures = []
    real_save = plots._save

    def save(fig, path):
        figures.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return figures
