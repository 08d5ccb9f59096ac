"""The lifetime section of ``yieldmc report``: yield over time per policy, Kaplan-Meier curves, costs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from yieldmc.lifetime.faults import YEAR_S
from yieldmc.lifetime.run import policies_of, yield_over_time
from yieldmc.lifetime.survival import kaplan_meier, time_to_failure

COLORS = {"none": "#d55e00", "once": "#e69f00", "recal": "#0072b2", "online": "#009e73", "drift": "#cc79a7"}


def lifetime_section(df: pd.DataFrame, info: Mapping[str, Any], threshold: float, confidence: float):
    """A :class:`yieldmc.runreport.Section` of a run's lifetime rows ``df`` (``lifetime.json``: ``info``)."""
    from yieldmc.runreport import Image, Section, Text, figure_png, format_number, frame_table, new_figure

    curve = yield_over_time(df, threshold, confidence)
    fig, (ax_y, ax_km) = new_figure(10, 3.8, ncols=2)
    last = int(df["checkpoint"].max())
    rows = []
    for p in policies_of(df):
        c = curve[curve.policy == p]
        years = c["time_s"] / YEAR_S
        color = COLORS.get(p, "0.3")
        ax_y.plot(years, c["yield"], marker="o", ms=3, color=color, label=p)
        ax_y.fill_between(years, c["low"], c["high"], color=color, alpha=0.2)
        ttf = time_to_failure(df, p, threshold)
        km = kaplan_meier(ttf["time_s"], ttf["failed"], confidence)
        t_first = df["time_s"].min() / YEAR_S
        xs = [t_first, *(km["time_s"] / YEAR_S)]
        ax_km.step(xs, [1.0, *km["survival"]], where="post", color=color, label=p)
        end = df[df["checkpoint"] == last]
        e = c[c.checkpoint == last].iloc[0]
        rows.append({"policy": p, "yield t0": c[c.checkpoint == 0]["yield"].iloc[0], "yield end": e["yield"],
                     "low": e["low"], "high": e["high"], "failed by end": int(ttf["failed"].sum()),
                     "labelled images / die": end[f"labels_{p}"].mean(),
                     "training MFLOP / die": end[f"flops_{p}"].mean() / 1e6})
    for ax, label in ((ax_y, f"yield (accuracy >= {threshold:.2f})"), (ax_km, "share of dies not failed yet")):
        ax.set(xscale="log", ylim=(0, 1.02), xlabel="time (years)", ylabel=label)
        ax.legend(fontsize=8, loc="lower left")
    s = info.get("settings", {})
    f = s.get("faults", {})
    lead = (f"{df['die'].nunique()} dies, {last + 1} checkpoints to {df['time_s'].max() / YEAR_S:.3g} years; "
            f"cell lifetimes Weibull(shape {f.get('shape')}, "
            f"scale {format_number(float(f.get('scale_s', 0)) / YEAR_S, 3, 'g')} y), "
            f"drift nu {s.get('drift_nu')}; a die is good at accuracy >= {threshold:.2f} (the lifetime's "
            "threshold). Made by `yieldmc lifetime`; see docs/lifetime.md.")
    return Section("lifetime", "Lifetime: yield over time per correction policy", (
        Text(lead, "lead"), frame_table(pd.DataFrame(rows), {"policy": str}),
        Image("lifetime", figure_png(fig), "yield over time per policy and Kaplan-Meier survival curves",
              f"Left: yield per checkpoint with {100 * confidence:g}% Wilson band. Right: Kaplan-Meier estimate of "
              "the share of dies not yet below the threshold (failure = first checkpoint below it).")))


__all__ = ["lifetime_section"]
