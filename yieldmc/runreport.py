"""A run's report, a page a person opens: ``yieldmc report RUN --out report.html``.

One self-contained HTML page (figures embedded as base64 PNG ``data:`` URIs, inline CSS, one
small script that reports missing images on the browser's console), or Markdown with the
figures as PNG files in a ``<name>_files/`` folder beside it (for notebooks and CI logs).
The sections follow what the run holds:

* run settings (run.json: dies, config, seed, engine, versions) and status: finished, or
  **partial** ("N of M dies finished", in a red box at the top);
* yield vs accuracy threshold with Wilson / Clopper-Pearson intervals
  (:func:`yieldmc.stats.yield_report`, the numbers ``yieldmc yield`` prints), by defect type
  and by the layers with stuck cells (``layers_affected``);
* the accuracy histogram;
* correction before/after, when ``corrected/<mode>.parquet`` exists;
* wafer maps, radial and zone yield, and the yield models fitted to the dies (Poisson,
  Murphy, Seeds, negative binomial), when the die table has wafer columns
  (:data:`yieldmc.runyield.WAFER_COLUMNS`); otherwise a sentence says why they are absent.

:func:`report_from_frames` builds a :class:`Report` from DataFrames (no files read);
:func:`collect_report` reads a run directory (:func:`yieldmc.runyield.load_run`); :func:`render_html` and
:func:`render_markdown` write it out; :func:`build_report` and :func:`write_report` do both.
Figures are :class:`matplotlib.figure.Figure` objects on Agg canvases (no pyplot).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yieldmc import runyield
from yieldmc.errors import ConfigError
from yieldmc.runyield import MAP_COLUMNS, MODEL_COLUMNS, missing_columns, wafer_frame
from yieldmc.stats import yield_report

FORMATS = ("html", "markdown")
#: Resolution of the embedded PNG figures (dots per inch).
DPI = 90
#: Threshold grid of the yield curve, and the thresholds of its table (plus the report's own).
CURVE_GRID = "0:1:0.01"
TABLE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Most rows a per-wafer table shows.
MAX_TABLE_ROWS = 100
#: What the page's script logs on the console once it has checked its images: the only
#: console message a sound page writes (tests/test_report.py reads it in headless Chromium).
CHECKED_MESSAGE = "yieldmc report: images checked"
_SCRIPT = """window.addEventListener("load", function () {
  var imgs = document.getElementsByTagName("img"), bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) {
      bad++;
      console.error("missing image " + (imgs[i].id || imgs[i].alt));
    }
  }
  console.log("CHECKED: " + imgs.length + " images, " + bad + " missing");
});""".replace("CHECKED", CHECKED_MESSAGE)
_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.2em .5em;
text-align:left}th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;color:#555;padding:.2em 0}img{max-width:100%;height:auto}
figure{margin:.8em 0}figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
.alert{background:#fde2e1;border-left:6px solid #c0392b;padding:.6em 1em;font-weight:bold}
.ok{background:#e3f4e3;border-left:6px solid #2e8b57;padding:.6em 1em}.note{color:#555;font-style:italic}
.lead{font-size:1.15em;font-weight:600}
nav a{margin-right:1em}"""


# ----------------------------------------------------------------------------- the content
@dataclass(frozen=True)
class Text:
    """A paragraph; ``kind`` is ``"p"``, ``"lead"`` (a headline number), ``"note"`` (why a part
    is absent), ``"alert"`` or ``"ok"``. Text in backticks is code."""

    text: str
    kind: str = "p"


@dataclass(frozen=True)
class Table:
    """A table of formatted cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG figure; ``name`` is its id (``fig-<name>``) and its file name in Markdown."""

    name: str
    png: bytes = field(repr=False)
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A titled part of the page; ``key`` is its HTML id."""

    key: str
    title: str
    blocks: tuple[Text | Table | Image, ...]


@dataclass(frozen=True)
class Report:
    """What a report shows, before it is written as HTML or Markdown.

    Attributes
    ----------
    title : str
    status : Text
        Finished (``"ok"``) or partial (``"alert"``).
    sections : tuple of Section
    partial : bool
        Fewer dies finished than the run has, or run.json does not say ``complete``.
    n_done, n_dies : int
        Dies in the table, and in the run.
    """

    title: str
    status: Text
    sections: tuple[Section, ...]
    partial: bool
    n_done: int
    n_dies: int

    @property
    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]


# ----------------------------------------------------------------------------- helpers
def _num(x: Any, digits: int = 4, spec: str = "f") -> str:
    """A number for a table: ``digits`` decimals (``spec="g"``: significant digits), '-' for
    NaN/None, 'inf'; integers as they are."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    return ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:.{digits}{spec}}"


#: Public names of the helpers other sections are built with (:mod:`yieldmc.lifetime.report`).
def format_number(x: Any, digits: int = 4, spec: str = "f") -> str:
    """:func:`_num`: a number as the report's tables write it."""
    return _num(x, digits, spec)


def _sig(x: Any) -> str:
    return _num(x, 4, "g")


def _table(df: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]] | None = None, caption: str = "") -> Table:
    formats = formats or {}
    rows = tuple(tuple(formats.get(c, _cell)(v) for c, v in zip(df.columns, row, strict=True))
                 for row in df.itertuples(index=False, name=None))
    return Table(tuple(map(str, df.columns)), rows, caption)


def frame_table(df: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]] | None = None,
                caption: str = "") -> Table:
    """A DataFrame as a report :class:`Table` (cells formatted by ``formats`` or :func:`format_number`)."""
    return _table(df, formats, caption)


def _cell(v: Any) -> str:
    return _num(v) if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool) else str(v)


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes (no date in the metadata, so equal figures give equal files)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def figure_png(fig: Figure) -> bytes:
    """A figure as the report's PNG bytes."""
    return _png(fig)


def new_figure(width: float, height: float, ncols: int = 1):
    """A constrained-layout figure and its ``ncols`` axes (a flat array)."""
    return _figure(width, height, ncols)


def _figure(width: float, height: float, ncols: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False).ravel()


def _yield_columns(frame: pd.DataFrame, first: Sequence[str]) -> Table:
    """Rows of :func:`yield_report` as a table: the given columns, then n, k, yield, interval, method."""
    t = frame[[*first, "n", "k", "yield", "lo", "hi", "method"]]
    return _table(t, {"threshold": lambda v: _num(v, 2)})


# ----------------------------------------------------------------------------- sections
def _settings(info: Mapping[str, Any], run_name: str, n_done: int) -> Section:
    config = info.get("config", {})
    summary = info.get("summary") or {}
    versions = info.get("versions") or {}
    rows = [("run", run_name), ("run id", info.get("run_id", "-")), ("status", info.get("status", "-")),
            ("dies", f"{n_done} of {info.get('n_dies', '?')} finished"), ("preset", config.get("name", "-")),
            ("seed", info.get("seed", "-")), ("engine", info.get("engine", "-")),
            ("backend", info.get("backend", "-")), ("device", info.get("device", "-")),
            ("chunk size", info.get("chunk_size", "-")), ("stored voltages", info.get("store_voltages", "-")),
            ("created", info.get("created", "-")), ("finished", info.get("finished") or "-")]
    for key, label in (("software_accuracy", "software accuracy"), ("fault_free_accuracy", "fault-free die accuracy")):
        if isinstance(summary.get(key), (int, float)):
            rows.append((label, _num(summary[key])))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "-"))
    settings = [(name, ", ".join(f"{k}={json.dumps(v)}" for k, v in section.items()))
                for name, section in config.items() if isinstance(section, Mapping)]
    return Section("settings", "Run settings", (
        Table(("setting", "value"), tuple((k, str(v)) for k, v in rows)),
        Table(("config section", "settings"), tuple(settings), "The run's configuration (run.json `config`)")))


def _status(info: Mapping[str, Any], n_done: int, run_name: str, unconverged: int) -> tuple[Text, bool]:
    n_dies = int(info.get("n_dies", n_done))
    state = info.get("status", "unknown")
    partial = n_done < n_dies or state != "complete"
    extra = (f" {unconverged} dies whose circuit solve did not converge are left out of every yield "
             "(as `yieldmc yield` does).") if unconverged else ""
    if partial:
        return Text(f"PARTIAL RUN: {n_done} of {n_dies} dies finished (run.json status: {state}). Every number "
                    f"below covers the finished dies only; `yieldmc sample --resume --out {run_name}` finishes "
                    f"the run.{extra}", "alert"), True
    return Text(f"Finished: {n_done} of {n_dies} dies.{extra}", "ok"), False


def _yield_section(df: pd.DataFrame, corrected: Mapping[str, pd.DataFrame], threshold: float,
                   confidence: float) -> Section:
    at = yield_report(df, [threshold], confidence=confidence).iloc[0]
    grid = sorted({*TABLE_THRESHOLDS, threshold})
    table = yield_report(df, grid, confidence=confidence)
    curve = yield_report(df, CURVE_GRID, confidence=confidence)
    fig, (ax,) = _figure(7.5, 3.8)
    ax.plot(curve["threshold"], curve["yield"], color="#d55e00", label=f"all dies (n = {int(at['n'])})")
    ax.fill_between(curve["threshold"], curve["lo"], curve["hi"], color="#d55e00", alpha=0.25)
    for (mode, merged), color in zip(corrected.items(), ("#0072b2", "#009e73"), strict=False):
        after = yield_report(merged.assign(accuracy=merged["accuracy_corrected"]), CURVE_GRID, confidence=confidence)
        ax.plot(after["threshold"], after["yield"], color=color, label=f"after {mode} correction (n = {len(merged)})")
        ax.fill_between(after["threshold"], after["lo"], after["hi"], color=color, alpha=0.2)
    ax.axvline(threshold, color="0.3", ls="--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="accuracy threshold", ylabel="yield (share of dies)")
    ax.legend(loc="lower left", fontsize=8)
    pct = f"{100 * confidence:g}%"
    head = (f"Yield at accuracy >= {threshold:.2f}: {_num(at['yield'])} ({pct} interval {_num(at['lo'])} to "
            f"{_num(at['hi'])}, {at['method']}; {int(at['k'])} of {int(at['n'])} dies pass).")
    return Section("yield", "Yield vs accuracy threshold", (
        Text(head, "lead"), _yield_columns(table, ["threshold"]),
        Image("yield-curve", _png(fig), "yield vs accuracy threshold with confidence band",
              f"Yield vs threshold, {pct} Wilson / Clopper-Pearson band; dashed: the report's threshold.")))


def _group_section(df: pd.DataFrame, by: str, key: str, title: str, what: str, threshold: float,
                   confidence: float) -> Section:
    table = yield_report(df, [threshold], by=by, confidence=confidence)
    fig, (ax,) = _figure(7.5, 0.35 * len(table) + 1.2)
    y = np.arange(len(table))[::-1]
    v = table["yield"].to_numpy(float)
    err = np.abs(np.vstack([v - table["lo"].to_numpy(float), table["hi"].to_numpy(float) - v]))
    ax.barh(y, v, xerr=np.nan_to_num(err), color=["#777" if g == "all" else "#0072b2" for g in table[by]], capsize=2)
    ax.set_yticks(y, [f"{g} (n={n})" for g, n in zip(table[by], table["n"], strict=True)], fontsize=8)
    ax.set(xlim=(0, 1.02), xlabel=f"yield at accuracy >= {threshold:.2f}")
    return Section(key, title, (
        Text(f"Yield at accuracy >= {threshold:.2f} per {what} (`yieldmc yield RUN --threshold {threshold:g} "
             f"--by {by}` prints the same rows)."),
        _yield_columns(table, [by]), Image(f"yield-by-{key}", _png(fig), f"yield per {what}", f"Yield per {what}.")))


def _accuracy_section(df: pd.DataFrame, corrected: Mapping[str, pd.DataFrame], info: Mapping[str, Any],
                      threshold: float) -> Section:
    fig, (ax,) = _figure(7.5, 3.5)
    bins = np.linspace(0, 1, 51)
    ax.hist(df["accuracy"], bins=bins, color="#d55e00", alpha=0.7, label="dies")
    for mode, merged in corrected.items():
        ax.hist(merged["accuracy_corrected"], bins=bins, histtype="step", lw=1.5, label=f"after {mode} correction")
    summary = info.get("summary") or {}
    if isinstance(summary.get("fault_free_accuracy"), (int, float)):
        ax.axvline(summary["fault_free_accuracy"], color="k", lw=1, label="fault-free die")
    ax.axvline(threshold, color="0.3", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), xlabel="test accuracy", ylabel="dies")
    ax.legend(fontsize=8, loc="upper left")
    acc = df["accuracy"]
    return Section("accuracy", "Accuracy of the dies", (
        Text(f"Mean accuracy {_num(acc.mean())}, median {_num(acc.median())}, range {_num(acc.min())} to "
             f"{_num(acc.max())} over {len(df)} dies."),
        Image("accuracy-histogram", _png(fig), "histogram of die accuracy", "Accuracy histogram (bins of 0.02).")))


def _correction_section(df: pd.DataFrame, corrected: Mapping[str, pd.DataFrame], problems: Sequence[str],
                        threshold: float, confidence: float, run_name: str) -> Section:
    notes = tuple(Text(p, "note") for p in problems)
    if not corrected:
        return Section("correction", "Correction before / after", notes + (Text(
            f"No corrected table in this run: `yieldmc correct {run_name} --mode per-die` adds this section.",
            "note"),))
    rows = []
    fig, axes = _figure(4.2 * len(corrected), 3.8, ncols=len(corrected))
    for ax, (mode, merged) in zip(axes, corrected.items(), strict=True):
        before = yield_report(merged, [threshold], confidence=confidence).iloc[0]
        after = yield_report(merged.assign(accuracy=merged["accuracy_corrected"]), [threshold],
                             confidence=confidence).iloc[0]
        rows.append((mode, str(len(merged)), _num(merged["accuracy"].mean()), _num(merged["accuracy_corrected"].mean()),
                     f"{_num(before['yield'])} [{_num(before['lo'])}, {_num(before['hi'])}]",
                     f"{_num(after['yield'])} [{_num(after['lo'])}, {_num(after['hi'])}]"))
        ax.scatter(merged["accuracy"], merged["accuracy_corrected"], s=8, alpha=0.6)
        ax.plot([0, 1], [0, 1], color="0.5", lw=1)
        ax.axvline(threshold, color="0.3", ls="--", lw=1)
        ax.axhline(threshold, color="0.3", ls="--", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="accuracy before", ylabel="accuracy after", title=mode)
    table = Table(("mode", "dies corrected", "mean accuracy before", "mean accuracy after",
                   f"yield before (>= {threshold:.2f})", "yield after"), tuple(rows),
                  "Both stages on the corrected dies (a subsample when `yieldmc correct --sample` was used).")
    return Section("correction", "Correction before / after", notes + (table, Image(
        "correction", _png(fig), "accuracy before vs after correction, one point per die",
        "Accuracy after correction vs before, one point per die; dashed: the threshold.")))


def _wafer_section(df: pd.DataFrame, corrected: Mapping[str, pd.DataFrame], info: Mapping[str, Any],
                   threshold: float, confidence: float) -> Section:
    from yieldmc.stats import wilson_interval
    from yieldmc.wafermap import MAX_PANELS, plot_wafer_maps, radial_yield, zone_yield

    missing = missing_columns(df, MAP_COLUMNS)
    if missing:
        return Section("wafers", "Wafer maps", (Text(
            f"No wafer maps: the die table has no {', '.join(missing)} column(s), so the dies have no place on a "
            "wafer (a run sampled with `yieldmc sample --wafers W` has them).", "note"),))
    frame = wafer_frame(df, threshold)
    wafers = sorted(frame["wafer"].unique())
    blocks: list[Text | Table | Image] = [Text(f"{len(wafers)} wafers, {len(frame)} dies; a die passes when its "
                                               f"accuracy is >= {threshold:.2f}.")]
    if len(wafers) > MAX_PANELS:
        blocks.append(Text(f"The maps show the first {MAX_PANELS} of {len(wafers)} wafers.", "note"))
    shown = set(wafers[:MAX_PANELS])
    spec = runyield.wafer_spec(info)

    def maps(data: pd.DataFrame, value: str) -> Figure:
        data = data[data["wafer"].isin(shown)]
        try:
            return plot_wafer_maps(data, value, spec=spec)
        except ConfigError:  # the settings' wafer does not hold the table's grid: draw the table's own
            return plot_wafer_maps(data, value)

    blocks.append(Image("wafer-pass-fail", _png(maps(frame, "passed")), f"pass/fail maps of {len(shown)} wafers",
                        f"Pass (green) / fail (red) per die, {len(shown)} wafers."))
    blocks.append(Image("wafer-accuracy", _png(maps(frame, "accuracy")), f"accuracy maps of {len(shown)} wafers",
                        "Accuracy per die."))
    for mode, merged in corrected.items():
        after = wafer_frame(merged, threshold, accuracy="accuracy_corrected")
        if missing_columns(after, MAP_COLUMNS) or after.empty:
            continue
        blocks.append(Image(f"wafer-pass-fail-{mode}", _png(maps(after, "passed")),
                            f"pass/fail maps after {mode} correction",
                            f"Pass / fail after {mode} correction ({len(after)} corrected dies; others blank)."))
    per = frame.groupby("wafer", sort=True).agg(lot=("lot", "first") if "lot" in frame else ("wafer", "first"),
                                                n=("passed", "size"), k=("passed", "sum")).reset_index()
    lo, hi = wilson_interval(per["k"].to_numpy(), per["n"].to_numpy(), confidence)
    per = per.assign(**{"yield": per["k"] / per["n"], "lo": lo, "hi": hi})
    blocks.append(_table(per.head(MAX_TABLE_ROWS), caption=f"Yield per wafer, Wilson {100 * confidence:g}% interval"
                         + (f" (first {MAX_TABLE_ROWS} wafers)" if len(per) > MAX_TABLE_ROWS else "")))
    if not missing_columns(frame, ("r_mm",)):
        radius = spec.usable_radius_mm if spec is not None else None
        zones = zone_yield(frame, radius_mm=radius, confidence=confidence).reset_index()
        rings = radial_yield(frame, 5, confidence=confidence)
        blocks.append(_table(zones, {"r_lo": lambda v: _num(v, 1), "r_hi": lambda v: _num(v, 1)},
                             "Zone yield (equal-area center, middle, edge zones; r in mm)"))
        fig, (ax,) = _figure(6, 3.2)
        mid = (rings["r_lo"] + rings["r_hi"]) / 2
        y = rings["yield"].to_numpy(float)
        ax.errorbar(mid, y, yerr=np.nan_to_num(np.abs(np.vstack([y - rings["lo"], rings["hi"] - y]))), marker="o",
                    capsize=3)
        ax.set(ylim=(0, 1.02), xlabel="distance of the die from the wafer centre (mm)", ylabel="yield")
        blocks.append(_table(rings, {"r_lo": lambda v: _num(v, 1), "r_hi": lambda v: _num(v, 1)},
                             "Radial yield (five rings of equal width)"))
        blocks.append(Image("radial-yield", _png(fig), "yield vs radius", "Yield vs radius, Wilson intervals."))
    else:
        blocks.append(Text("No radial or zone yield: the die table has no r_mm column.", "note"))
    return Section("wafers", "Wafer maps", tuple(blocks))


def _models_section(df: pd.DataFrame, info: Mapping[str, Any], threshold: float, confidence: float) -> Section:
    from yieldmc.yieldmodels import fit_windows, model_yield, window_yields

    missing = missing_columns(df, MODEL_COLUMNS)
    if missing:
        return Section("models", "Yield models", (Text(
            f"No yield-model fits: the die table has no {', '.join(missing)} column(s) (per-die defect counts and "
            "wafers come from `yieldmc sample --wafers W`).", "note"),))
    area = runyield.die_area_cm2(info)
    blocks: list[Text | Table | Image] = []
    if area is None:
        area = 1.0
        blocks.append(Text("The run's settings give no die area: D0 is per die (area taken as 1 cm^2).", "note"))
    table = runyield.model_fits(df, threshold, area, confidence=confidence)
    interval = lambda r, p: "-" if math.isnan(r[p]) else f"{_sig(r[p])} [{_sig(r[p + '_lo'])}, {_sig(r[p + '_hi'])}]"  # noqa: E731
    rows = tuple((r["data"], r["model"], interval(r, "d0"), interval(r, "alpha"), _num(r["loglik"], 2),
                  _num(r["aic"], 2), _num(r["yield"])) for _, r in table.iterrows())
    blocks[:0] = [Text(f"Maximum-likelihood fits to {int(table['n'].iloc[0])} dies on {int(table['n_groups'].iloc[0])}"
                       f" wafers (die area {area:g} cm^2): pass/fail at accuracy >= {threshold:.2f}, and the per-die "
                       "defect counts n_defects. The pass/fail D0 counts the defects that kill a die (push its "
                       "accuracy below the threshold), the counts' D0 every defect. AIC compares models of the same "
                       "data only; alpha is the clustering shape of the negative binomial (inf: no clustering). "
                       "`yieldmc yield RUN --models` prints the same table.")]
    blocks.append(Table(("data", "model", f"D0 per cm^2 [{100 * confidence:g}% CI]", "alpha [CI]", "log-likelihood",
                         "AIC", "model yield"), rows))
    frame = wafer_frame(df, threshold)
    if not missing_columns(frame, ("x", "y")):
        windows = window_yields(frame, (1, 2, 3))
        fig, (ax,) = _figure(6, 3.6)
        use = windows["n_blocks"] > 0
        ax.plot(windows.loc[use, "area_factor"] * area, windows.loc[use, "yield"], "ko", label="block yield (data)")
        a = np.linspace(0, 9 * area, 100)
        for _, r in table[table["data"] == "pass_fail"].iterrows():
            alpha = None if math.isnan(r["alpha"]) else r["alpha"]
            ax.plot(a, model_yield(r["model"], r["d0"], a, alpha), label=r["model"])
        ax.set(xlabel="area (cm^2): 1, 2x2 and 3x3 blocks of dies", ylabel="yield", ylim=(0, 1.02))
        ax.legend(fontsize=8)
        blocks.append(Image("yield-models", _png(fig), "fitted yield models vs block yields",
                            "Fitted pass/fail models against the yields of 1x1, 2x2 and 3x3 blocks of dies "
                            "(Stapper's window method)."))
        if (windows["n_pass"] > 0).sum() >= 2:
            w = fit_windows(windows, area)
            blocks.append(Text(f"Window method (point estimates): D0 {_sig(w.d0)} per cm^2, alpha {_sig(w.alpha)}."))
    return Section("models", "Yield models", tuple(blocks))


# ----------------------------------------------------------------------------- assembling
def report_from_frames(info: Mapping[str, Any], dies: pd.DataFrame, corrected: Mapping[str, pd.DataFrame] | None = None,
                       *, threshold: float = 0.8, confidence: float = 0.95, run_name: str = "RUN",
                       problems: Sequence[str] = (), lifetime: tuple[pd.DataFrame, Mapping] | None = None) -> Report:
    """The report of a run given as frames (no file is read).

    Parameters
    ----------
    info : mapping
        run.json's content (:func:`yieldmc.runformat.read_run_info`).
    dies : pandas.DataFrame
        The die table (:func:`yieldmc.runcheck.load_dies`), possibly of a partial run; with
        :data:`yieldmc.runyield.WAFER_COLUMNS` the wafer and model sections are filled.
    corrected : mapping of str to DataFrame, optional
        Mode -> corrected table (:func:`yieldmc.correction.load_corrected`).
    threshold, confidence : float
        Accuracy threshold of pass/fail and the intervals' level.
    run_name : str
        How the page names the run (its directory).
    problems : sequence of str
        Sentences about files that could not be read, shown in the correction section.
    lifetime : (DataFrame, mapping), optional
        The lifetime rows and ``lifetime.json`` (:func:`yieldmc.lifetime.load_lifetime`): a
        lifetime section.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"accuracy threshold must lie in [0, 1], got {threshold}")
    converged = (dies["solver_converged"].to_numpy(dtype=bool) if "solver_converged" in dies
                 else np.ones(len(dies), bool))
    status, partial = _status(info, len(dies), run_name, int((~converged).sum()))
    counted = dies[converged]
    merged = {}
    for mode, fixed in (corrected or {}).items():
        m = counted.merge(fixed[["die", "accuracy_corrected"]], on="die", how="inner")
        if len(m):
            merged[mode] = m
    sections = [_settings(info, run_name, len(dies))]
    if counted.empty:
        sections.append(Section("yield", "Yield", (Text(
            "No finished, converged die to count: nothing to report beyond the settings.", "alert"),)))
    else:
        sections += [_yield_section(counted, merged, threshold, confidence),
                     _group_section(counted, "defect_type", "defect-type", "Yield by defect type", "defect type",
                                    threshold, confidence),
                     _group_section(counted.assign(layers_affected=counted["layers_affected"].replace("", "none")),
                                    "layers_affected", "layer", "Yield by layers with stuck cells",
                                    "set of layers with stuck cells (none: a fault-free die)", threshold, confidence),
                     _accuracy_section(counted, merged, info, threshold),
                     _correction_section(counted, merged, problems, threshold, confidence, run_name),
                     _wafer_section(dies, merged, info, threshold, confidence),
                     _models_section(dies, info, threshold, confidence)]
    if lifetime is not None:
        from yieldmc.lifetime.report import lifetime_section

        # the lifetime's own threshold (yieldmc lifetime --threshold): its failures and summary use it
        own = float(lifetime[1].get("settings", {}).get("threshold", threshold))
        sections.append(lifetime_section(lifetime[0], lifetime[1], own, confidence))
    title = f"yieldmc report: {run_name}"
    return Report(title, status, tuple(sections), partial, len(dies), int(info.get("n_dies", len(dies))))


def collect_report(run: str | Path, *, threshold: float = 0.8, confidence: float = 0.95,
                   verify: bool = True) -> Report:
    """:func:`report_from_frames` of a run directory (:func:`load_run`)."""
    from yieldmc.lifetime.run import lifetime_dir, load_lifetime, read_settings

    info, dies, corrected, problems = runyield.load_run(run, verify=verify)
    lifetime = None
    if lifetime_dir(run).exists():
        try:
            lifetime = (load_lifetime(run), read_settings(run))
        except (ConfigError, OSError, ValueError) as exc:
            problems = [*problems, f"The lifetime could not be read: {exc}"]
    return report_from_frames(info, dies, corrected, threshold=threshold, confidence=confidence,
                              run_name=str(run), problems=problems, lifetime=lifetime)


# ----------------------------------------------------------------------------- writing
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|inf)|-")


def _inline_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (figures as base64 PNG data URIs)."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(report.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{html.escape(report.title)}</h1>", _block_html(report.status),
           "<nav>" + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in report.sections) + "</nav>"]
    for s in report.sections:
        out.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        out += [_block_html(b) for b in s.blocks]
        out.append("</section>")
    out += [f"<script>\n{_SCRIPT}\n</script>", "</body>", "</html>", ""]
    return "\n".join(out)


def _block_html(b: Text | Table | Image) -> str:
    if isinstance(b, Text):
        return f'<p class="{b.kind}">{_inline_html(b.text)}</p>'
    if isinstance(b, Table):
        cap = f"<caption>{_inline_html(b.caption)}</caption>" if b.caption else ""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
        numeric = [all(_NUMBER.fullmatch(r[j]) for r in b.rows) for j in range(len(b.columns))]  # right-aligned
        body = "".join("<tr>" + "".join(f'<td class="n">{html.escape(v)}</td>' if numeric[j]
                                        else f"<td>{html.escape(v)}</td>" for j, v in enumerate(r)) + "</tr>"
                       for r in b.rows)
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    data = base64.b64encode(b.png).decode("ascii")
    cap = f"<figcaption>{_inline_html(b.caption)}</figcaption>" if b.caption else ""
    return (f'<figure><img id="fig-{b.name}" alt="{html.escape(b.alt)}" '
            f'src="data:image/png;base64,{data}">{cap}</figure>')


def render_markdown(report: Report, files_dir: str = "report_files") -> tuple[str, dict[str, bytes]]:
    """The report as Markdown, and its figures: ``{relative path: PNG bytes}`` (under ``files_dir``)."""
    files: dict[str, bytes] = {}
    out = [f"# {report.title}", ""]
    out += [f"> **{report.status.text}**" if report.partial else report.status.text, ""]
    for s in report.sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Text):
                out.append(f"*{b.text}*" if b.kind == "note" else f"**{b.text}**" if b.kind in ("alert", "lead")
                           else b.text)
            elif isinstance(b, Table):
                esc = lambda v: v.replace("|", "\\|")  # noqa: E731
                if b.caption:
                    out += [b.caption, ""]
                out.append("| " + " | ".join(map(esc, b.columns)) + " |")
                out.append("|" + "---|" * len(b.columns))
                out += ["| " + " | ".join(map(esc, r)) + " |" for r in b.rows]
            else:
                rel = f"{files_dir}/{b.name}.png"
                files[rel] = b.png
                out.append(f"![{b.alt}]({rel})" + (f"\n\n*{b.caption}*" if b.caption else ""))
            out.append("")
    return "\n".join(out), files


def build_report(run_dir: str | Path, *, threshold: float = 0.8, fmt: str = "html", confidence: float = 0.95,
                 files_dir: str = "report_files", verify: bool = True) -> str:
    """The report of a run as text: an HTML page, or Markdown whose figure links point into
    ``files_dir`` (which :func:`write_report` fills; here the figures are not written).

    Raises
    ------
    ConfigError
        ``run_dir`` is not a run directory, ``fmt`` is unknown, or the threshold is out of range.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"report format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    report = collect_report(run_dir, threshold=threshold, confidence=confidence, verify=verify)
    return render_html(report) if fmt == "html" else render_markdown(report, files_dir)[0]


def format_of(out: str | Path, fmt: str | None = None) -> str:
    """``fmt``, or the format ``out``'s suffix names (``.md``/``.markdown``: markdown, else html)."""
    if fmt is None:
        return "markdown" if Path(out).suffix.lower() in (".md", ".markdown") else "html"
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def write_report(run_dir: str | Path, out: str | Path, *, fmt: str | None = None, threshold: float = 0.8,
                 confidence: float = 0.95, overwrite: bool = False, verify: bool = True) -> dict[str, Any]:
    """Write the report of ``run_dir`` to ``out`` (HTML, or Markdown with ``<stem>_files/``).

    Every file is written atomically (:mod:`yieldmc.atomic`); an existing ``out`` (or, for
    Markdown, its figure folder) is refused before anything is computed unless ``overwrite``.

    Returns
    -------
    dict
        ``out``, ``format``, ``figures``, ``partial``, ``dies`` (finished), ``n_dies``,
        ``sections`` (their keys).
    """
    out = Path(out)
    fmt = format_of(out, fmt)
    files_dir = f"{out.stem}_files"
    if not overwrite:
        for p in (out, out.parent / files_dir) if fmt == "markdown" else (out,):
            if p.exists():
                raise ConfigError(f"{p} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; give a file name such as report.html")
    report = collect_report(run_dir, threshold=threshold, confidence=confidence, verify=verify)
    if fmt == "html":
        runyield.write_new(out, render_html(report).encode(), overwrite)
    else:
        text, files = render_markdown(report, files_dir)
        for rel, png in files.items():
            runyield.write_new(out.parent / rel, png, True)
        runyield.write_new(out, text.encode(), overwrite)
    return {"out": str(out), "format": fmt, "figures": len(report.images), "partial": report.partial,
            "dies": report.n_done, "n_dies": report.n_dies, "sections": [s.key for s in report.sections]}

