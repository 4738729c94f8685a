"""The backtest's calibration figure: coverage against nominal level, and the PIT histogram."""

from __future__ import annotations

import numpy as np

__all__ = ["coverage_curve", "plot_calibration"]

_LABELS = {"auto": "with extrapolation error", "none": "in-model"}


def coverage_curve(pit, levels=None) -> tuple[np.ndarray, np.ndarray]:
    """Empirical coverage of central intervals at ``levels`` from PIT values: a run is
    inside the central ``a`` interval when ``|PIT - 1/2| <= a/2``."""
    levels = np.linspace(0.05, 0.95, 19) if levels is None else np.asarray(levels, float)
    pit = np.asarray(pit, float)
    return levels, np.array([np.mean(np.abs(pit - 0.5) <= a / 2) for a in levels])


def plot_calibration(pits: dict, path=None, *, title: str = ""):
    """Two panels: coverage vs nominal level and PIT histograms, one series per entry of
    ``pits`` (``{"auto": pit, "none": pit}``). Saves to ``path`` when given; returns the
    figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    for key, pit in pits.items():
        lv, cov = coverage_curve(pit)
        ax1.plot(lv, cov, marker="o", ms=3, label=_LABELS.get(key, key))
        ax2.hist(np.asarray(pit, float), bins=np.linspace(0, 1, 11), histtype="step", lw=1.5,
                 label=_LABELS.get(key, key))
    ax1.set(xlabel="nominal level of the central interval", ylabel="held-out runs covered",
            xlim=(0, 1), ylim=(0, 1.02))
    ax1.legend(frameon=False, fontsize=8)
    ax2.set(xlabel="PIT of the observed loss", ylabel="held-out runs")
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
