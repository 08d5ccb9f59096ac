"""Plots of the study (PNG): one function per figure, no computation.

Each figure is a :class:`matplotlib.figure.Figure` on its own Agg canvas: no pyplot, no
backend to select, no global figure registry (as :mod:`yieldmc.gallery`), so importing this
module changes nothing for other matplotlib users in the process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yieldmc.atomic import atomic_path


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of ``width`` x ``height`` inches on an Agg canvas, and its one axes."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def plot_accuracy_by_type(types: pd.DataFrame, severity: float, path: Path) -> None:
    """Bars of accuracy before/after correction per defect type at one severity."""
    t = types[types.severity == severity]
    x = np.arange(len(t))
    fig, ax = _figure(8, 4)
    ax.bar(x - 0.2, t.accuracy_defective_mean, 0.4, yerr=t.accuracy_defective_std, label="defective", color="#d55e00")
    ax.bar(x + 0.2, t.accuracy_corrected_mean, 0.4, yerr=t.accuracy_corrected_std, label="corrected", color="#0072b2")
    ax.axhline(t.accuracy_fault_free.iloc[0], color="k", ls="--", lw=1, label="fault-free")
    ax.set_xticks(x, t.defect_type, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Per-circuit correction, {100 * severity:g}% stuck cells on every array")
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_generalization(gen: pd.DataFrame, path: Path) -> None:
    """Heatmap of corrected accuracy, train type (rows) x test type (columns)."""
    m = gen.pivot(index="train_type", columns="test_type", values="accuracy_corrected_mean")
    order_c = list(dict.fromkeys(gen.test_type))
    order_r = list(dict.fromkeys(gen.train_type))
    m = m.loc[order_r, order_c]
    fig, ax = _figure(7, 5.5)
    im = ax.imshow(m.to_numpy(), vmin=0, vmax=1, cmap="viridis")
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    ax.set_xticks(range(len(order_c)), order_c, rotation=30, ha="right")
    ax.set_yticks(range(len(order_r)), order_r)
    ax.set_xlabel("test circuit type")
    ax.set_ylabel("corrector trained on")
    ax.set_title("Generalization of the corrector (test accuracy)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    _save(fig, path)


def plot_size_sweep(sweep: pd.DataFrame, path: Path) -> None:
    """Corrected accuracy vs corrector parameter count, one line per defect type."""
    fig, ax = _figure(7, 4)
    for kind, g in sweep.groupby("defect_type", sort=False):
        ax.errorbar(g.corrector_params, g.accuracy_corrected_mean, yerr=g.accuracy_corrected_std,
                    marker="o", capsize=2, label=kind)
    ax.axvline(200, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("corrector parameters")
    ax.set_ylabel("corrected test accuracy")
    ax.set_title("Corrector size vs benefit")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_yield_curve(curve: pd.DataFrame, path: Path) -> None:
    """Yield vs accuracy threshold with confidence bands, before and after correction."""
    fig, ax = _figure(7, 4)
    for stage, color in (("before", "#d55e00"), ("after", "#0072b2")):
        g = curve[curve.stage == stage]
        ax.plot(g.threshold, g["yield"], color=color, label=f"{stage} correction")
        ax.fill_between(g.threshold, g.lo, g.hi, color=color, alpha=0.25)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("accuracy threshold")
    ax.set_ylabel("yield (share of dies)")
    ax.set_title(f"Population yield ({int(curve.n.iloc[0])} mixed dies, 95% intervals)")
    ax.legend()
    _save(fig, path)
