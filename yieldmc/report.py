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


def _panel_grid(keys: list[tuple], width: float, height: float) -> tuple[Figure, np.ndarray, list, list]:
    """A grid of axes: one row per distinct ``keys[i][:-1]``, one column per distinct ``keys[i][-1]``."""
    rows = list(dict.fromkeys(k[:-1] for k in keys))
    cols = list(dict.fromkeys(k[-1] for k in keys))
    fig = Figure(figsize=(width * len(cols), height * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(len(rows), len(cols), squeeze=False), rows, cols


def _hide_unused(axes: np.ndarray, rows: list, cols: list, keys: list[tuple]) -> None:
    """Hide the panels of the grid that no key fills (a combination the frame lacks)."""
    used = {(rows.index(k[:-1]), cols.index(k[-1])) for k in keys}
    for (i, j), ax in np.ndenumerate(axes):
        ax.set_visible((i, j) in used)


def _panel_title(scheme: str, severity: float, on_mode: str) -> str:
    return f"{100 * severity:g}% stuck, {on_mode}" + (f" ({scheme})" if scheme else "")


def plot_protocol_heatmaps(df: pd.DataFrame, path: Path) -> None:
    """Protocol A of :func:`yieldmc.protocols.run_protocols`: corrected accuracy, train type
    (rows) x test type (columns), with the test circuit's raw accuracy as a last row; one
    panel per (scheme, severity, on_mode)."""
    from yieldmc.errors import ConfigError

    a = df[df.protocol == "A"]
    if a.empty:
        raise ConfigError("the frame has no protocol A rows to draw")
    keys = list(dict.fromkeys(zip(a.scheme, a.severity, a.on_mode, strict=True)))
    fig, axes, rows, cols = _panel_grid(keys, 5.2, 4.6)
    schemes = a.scheme.nunique() > 1
    im = None
    for scheme, sev, mode in keys:
        ax = axes[rows.index((scheme, sev)), cols.index(mode)]
        g = a[(a.scheme == scheme) & (a.severity == sev) & (a.on_mode == mode)]
        order = list(dict.fromkeys(g.test_type))
        m = g.pivot(index="train_type", columns="test_type", values="accuracy_corrected").loc[order, order]
        raw = g.groupby("test_type").accuracy_raw.first().loc[order]
        values = np.vstack([m.to_numpy(), raw.to_numpy()])
        im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=7,
                    fontweight="bold" if i == j or i == len(order) else "normal")
        ax.axhline(len(order) - 0.5, color="w", lw=2)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(order) + 1), [*order, "raw (no corrector)"], fontsize=8)
        ax.set_title(_panel_title(scheme if schemes else "", sev, mode), fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("test circuit (canonical pattern)")
    for ax in axes[:, 0]:
        ax.set_ylabel("corrector trained on")
    _hide_unused(axes, rows, cols, keys)
    fig.colorbar(im, ax=axes, shrink=0.6, label="test accuracy")
    fig.suptitle("Protocol A: corrector of one fixed circuit on another (diagonal: its own)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def plot_protocol_summary(df: pd.DataFrame, path: Path) -> None:
    """Mean raw vs corrected accuracy (own corrector as a tick) per protocol and training
    set (:func:`yieldmc.protocols.summarize`); one panel per (scheme, severity, on_mode)."""
    from yieldmc.protocols import summarize

    s = summarize(df)
    keys = list(dict.fromkeys(zip(s.scheme, s.severity, s.on_mode, strict=True)))
    fig, axes, rows, cols = _panel_grid(keys, 5.5, 3.6)
    schemes = s.scheme.nunique() > 1
    for scheme, sev, mode in keys:
        ax = axes[rows.index((scheme, sev)), cols.index(mode)]
        g = s[(s.scheme == scheme) & (s.severity == sev) & (s.on_mode == mode)]
        labels = [f"{p} {t}" + ("" if layers == "all" else f" L{layers}")
                  for p, t, layers in zip(g.protocol, g.training, g.layers, strict=True)]
        x = np.arange(len(g))
        ax.bar(x - 0.2, g.accuracy_raw, 0.4, label="raw", color="#d55e00")
        ax.bar(x + 0.2, g.accuracy_corrected, 0.4, label="corrected (transfer)", color="#0072b2")
        ax.plot(x + 0.2, g.accuracy_own, "k_", ms=12, mew=2, label="own corrector")
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(_panel_title(scheme if schemes else "", sev, mode), fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    _hide_unused(axes, rows, cols, keys)
    handles, names = axes[rows.index(keys[0][:-1]), cols.index(keys[0][-1])].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=3, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")

def plot_size_sweep(sweep: pd.DataFrame, path: Path) -> None:
    """Corrected accuracy vs corrector parameters, averaged over defect types, one line per depth.

    ``sweep`` is :func:`yieldmc.sweeps.size_sweep`'s table. The linear corrector (depth 0) is
    a single marked point; the raw (uncorrected) accuracy is the dashed floor.
    """
    m = sweep.groupby(["corrector", "depth"], sort=False, as_index=False).agg(
        params=("corrector_params", "first"), acc=("accuracy_corrected_mean", "mean"),
        raw=("accuracy_raw_mean", "mean"))
    fig, ax = _figure(7, 4)
    for depth, g in m.groupby("depth"):
        g = g.sort_values("params")
        label = "linear (logistic)" if depth == 0 else f"MLP, {depth} hidden layer{'s' if depth > 1 else ''}"
        ax.plot(g.params, g.acc, marker="s" if depth == 0 else "o", ms=8 if depth == 0 else 5,
                ls="none" if depth == 0 else "-", label=label)
        for _, r in g.iterrows():
            ax.annotate(r.corrector.removeprefix("mlp-"), (r.params, r.acc), fontsize=7,  # depth: own row
                        xytext=(3, -10 - 9 * depth if depth else 8), textcoords="offset points")
    ax.axhline(m.raw.iloc[0], color="k", ls="--", lw=1, label="raw (no corrector)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("corrector parameters")
    ax.set_ylabel("corrected test accuracy (mean over types)")
    ax.set_title("Corrector size and shape")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def plot_budget_sweep(sweep: pd.DataFrame, path: Path) -> None:
    """Corrected accuracy vs calibration budget (training images), averaged over defect types.

    ``sweep`` is :func:`yieldmc.sweeps.budget_sweep`'s table: one line per method, the band is
    the spread (min to max) of the per-type means; the raw accuracy is the dashed floor.
    """
    fig, ax = _figure(7, 4)
    for method, g in sweep.groupby("method", sort=False):
        by = g.groupby("n_calibration").accuracy_corrected_mean
        line = ax.plot(by.mean().index, by.mean(), marker="o", label=f"{method} ({g.corrector_params.iloc[0]} params)")
        ax.fill_between(by.min().index, by.min(), by.max(), color=line[0].get_color(), alpha=0.2)
    ax.axhline(sweep.groupby("defect_type").accuracy_raw_mean.first().mean(), color="k", ls="--", lw=1,
               label="raw (no corrector)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("labelled calibration images per circuit")
    ax.set_ylabel("corrected test accuracy")
    ax.set_title("Calibration budget vs benefit (band: range over defect types)")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def plot_population_budget(table: pd.DataFrame, path: Path) -> None:
    """Yield after per-die correction vs calibration budget, one line per threshold (Wilson 95 %).

    ``table`` is :func:`yieldmc.sweeps.population_budget`'s; the dotted lines are the yield
    before correction.
    """
    fig, ax = _figure(7, 4)
    for t, g in table.groupby("threshold"):
        line = ax.plot(g.n_calibration, g.yield_after, marker="o", label=f"accuracy >= {t:g}, corrected")
        color = line[0].get_color()
        ax.fill_between(g.n_calibration, g.lo, g.hi, color=color, alpha=0.25)
        ax.axhline(g.yield_before.iloc[0], color=color, ls=":", lw=1, label=f"accuracy >= {t:g}, raw")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("labelled calibration images per die")
    ax.set_ylabel("yield (share of dies)")
    ax.set_title(f"Yield after per-die correction vs budget ({int(table.n_dies.iloc[0])} dies, 95% intervals)")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)

