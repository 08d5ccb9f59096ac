"""A run's yield tables, as ``yieldmc yield`` prints them: read the die table (and the
corrected table), count at each threshold with :func:`yieldmc.stats.yield_report`; and, for
runs sampled on wafers, the yield models fitted to the dies (``yieldmc yield --models``) and
the per-wafer frame that wafer maps draw.

:mod:`yieldmc.stats` holds the statistics on arrays and frames, :mod:`yieldmc.yieldmodels`
the model fits and :mod:`yieldmc.wafermap` the maps; this module reads runs. Functions that
take a DataFrame (:func:`model_fits`, :func:`wafer_frame`) do not touch files.

>>> df = pd.DataFrame({"wafer": [0, 0, 1], "x": [0, 1, 0], "y": [0, 0, 0], "accuracy": [0.9, 0.5, 0.8],
...                    "solver_converged": [True, True, False]})
>>> missing_columns(df, WAFER_COLUMNS[:4])
['lot']
>>> wafer_frame(df, 0.8)[["wafer", "x", "passed"]].to_dict("list")
{'wafer': [0, 0], 'x': [0, 1], 'passed': [True, False]}
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from yieldmc.errors import ConfigError
from yieldmc.stats import parse_thresholds, yield_report

#: Per-die columns of a run sampled on wafers (``yieldmc sample --wafers W``).
WAFER_COLUMNS = ("lot", "wafer", "x", "y", "r_mm", "n_defects", "expected_defects")
#: What a wafer map needs (die grid position and wafer), and what the yield models need.
MAP_COLUMNS = ("wafer", "x", "y")
MODEL_COLUMNS = ("wafer", "n_defects")
#: Columns of :func:`model_fits`' table, in order.
MODEL_TABLE_COLUMNS = ("data", "model", "d0", "d0_lo", "d0_hi", "alpha", "alpha_lo", "alpha_hi",
                       "loglik", "aic", "n", "n_groups", "yield")
#: Resolution of the raster images :func:`write_wafer_maps` writes (dots per inch).
MAP_DPI = 110
#: Fields of :class:`yieldmc.wafer.WaferSpec` looked up in a run's settings.
_SPEC_FIELDS = ("diameter_mm", "die_w_mm", "die_h_mm", "edge_exclusion_mm")


@dataclass(frozen=True)
class YieldTables:
    """What :func:`yield_tables` found in a run.

    Attributes
    ----------
    table : pandas.DataFrame
        :func:`yield_report`'s columns and ``stage``: ``"before"`` rows, then (with
        ``corrected``) ``"after"`` rows computed on the same dies.
    unconverged : int
        Dies (of those the table covers) whose circuit solve did not converge.
    include_unconverged : bool
        Whether those dies are counted in ``n``.
    """

    table: pd.DataFrame
    unconverged: int
    include_unconverged: bool


#: Threshold of :func:`yield_tables` when neither ``threshold`` nor ``thresholds`` is given.
DEFAULT_THRESHOLD = 0.8


def yield_tables(
    run: str | Path,
    thresholds: str | None = None,
    *,
    threshold: float | None = None,
    by: str | None = None,
    corrected: str | None = None,
    confidence: float = 0.95,
    include_unconverged: bool = False,
    verify: bool = True,
) -> YieldTables:
    """Yield of a run's dies (``yieldmc yield``), and after correction with ``corrected``.

    Parameters
    ----------
    run : path
        Run directory written by ``yieldmc sample``.
    thresholds : str, optional
        A grid for :func:`parse_thresholds` (``"0.5:0.99:0.01"``, ``"0.8,0.9"``).
    threshold : float, optional
        One threshold instead (default :data:`DEFAULT_THRESHOLD`); not with ``thresholds``.
    by : str, optional
        Group column of the die table, e.g. ``"defect_type"``.
    corrected : {"per-die", "population"}, optional
        Also the yield after correction (``corrected/<mode>.parquet``): then both stages
        cover only the corrected dies (a subsample if ``yieldmc correct --sample`` was used).
    confidence, include_unconverged
        As in :func:`yield_report`.
    verify : bool
        Check the run's files against their sha256 checksums before reading.

    Returns
    -------
    YieldTables

    Raises
    ------
    ConfigError
        Both ``threshold`` and ``thresholds``, a bad grid or column, no die to count, or a
        missing or damaged file.
    """
    from yieldmc.correction import load_corrected
    from yieldmc.store import load_dies

    if threshold is not None and thresholds is not None:
        raise ConfigError("give --threshold or --thresholds, not both")
    grid = parse_thresholds(thresholds) if thresholds else np.array(
        [DEFAULT_THRESHOLD if threshold is None else threshold])
    df = load_dies(run, verify=verify)
    frames = {"before": df}
    if corrected:
        fixed = load_corrected(run, corrected, verify=verify)
        merged = df.merge(fixed[["die", "accuracy_corrected"]], on="die", how="inner")
        frames = {"before": merged, "after": merged.assign(accuracy=merged["accuracy_corrected"])}
    table = pd.concat([yield_report(frame, grid, by=by, confidence=confidence,
                                    include_unconverged=include_unconverged).assign(stage=stage)
                       for stage, frame in frames.items()], ignore_index=True)
    unconverged = int((~frames["before"]["solver_converged"]).sum())
    return YieldTables(table, unconverged, include_unconverged)


# ----------------------------------------------------------------------------- wafer runs
def missing_columns(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The ``columns`` that ``df`` lacks, or holds only nulls in (a run without wafers)."""
    return [c for c in columns if c not in df.columns or not df[c].notna().any()]


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str, run: Any = "the run") -> None:
    """ConfigError, one line, when ``df`` lacks any of ``columns`` (see :func:`missing_columns`)."""
    missing = missing_columns(df, columns)
    if missing:
        raise ConfigError(f"{what} needs the per-die column(s) {', '.join(missing)}, which {run} does not have: "
                          "sample the dies on wafers (`yieldmc sample --wafers W`)")


def wafer_settings(info: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The wafer section of a run's settings (run.json's ``config.wafer``, :class:`yieldmc.config.WaferConfig`),
    or None when there is none or it places no die on a wafer (``wafers = 0``)."""
    config = info.get("config") if isinstance(info.get("config"), Mapping) else {}
    for section in (config.get("wafer"), info.get("wafer")):
        if isinstance(section, Mapping):
            return None if section.get("wafers", 1) == 0 else section  # wafers = 0: no wafers
    return None


def wafer_spec(info: Mapping[str, Any]):
    """The run's :class:`yieldmc.wafer.WaferSpec` from its settings, or None when they name none
    (or an invalid one: then maps are drawn on the table's own grid)."""
    from yieldmc.wafer import WaferSpec

    section = wafer_settings(info)
    if section is None:
        return None
    try:
        return WaferSpec(**{k: section[k] for k in _SPEC_FIELDS if k in section})
    except (ConfigError, TypeError):
        return None


def die_area_cm2(info: Mapping[str, Any]) -> float | None:
    """Die area (cm^2) of a wafer run: ``area_cm2`` of its wafer settings, else the die size of
    its :func:`wafer_spec`; None when the settings give neither."""
    section = wafer_settings(info) or {}
    area = section.get("area_cm2", section.get("die_area_cm2"))
    if isinstance(area, (int, float)) and not isinstance(area, bool) and area > 0:
        return float(area)
    spec = wafer_spec(info)
    return None if spec is None else spec.die_area_cm2


def _counted(df: pd.DataFrame, include_unconverged: bool) -> pd.DataFrame:
    """The dies that count: without the unconverged ones unless ``include_unconverged``."""
    if include_unconverged or "solver_converged" not in df.columns:
        return df
    return df[df["solver_converged"].to_numpy(dtype=bool)]


def wafer_frame(df: pd.DataFrame, threshold: float, *, accuracy: str = "accuracy",
                include_unconverged: bool = False) -> pd.DataFrame:
    """The dies that wafer maps and zone yields count, with ``passed`` (``accuracy >= threshold``).

    Dies whose circuit solve did not converge are left out (as :func:`yield_report` does)
    unless ``include_unconverged``; ``accuracy`` names the column compared (e.g.
    ``"accuracy_corrected"``), which the result holds as ``accuracy``.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"accuracy threshold must lie in [0, 1], got {threshold}")
    frame = _counted(df, include_unconverged).reset_index(drop=True)
    acc = frame[accuracy].to_numpy(dtype=float)
    return frame.assign(accuracy=acc, passed=acc >= float(threshold))


def model_fits(df: pd.DataFrame, threshold: float, area_cm2: float = 1.0, *, confidence: float = 0.95,
               include_unconverged: bool = False, ci: str = "wald") -> pd.DataFrame:
    """Yield models fitted to a wafer run's dies by maximum likelihood (:mod:`yieldmc.yieldmodels`).

    Two data sets, one row per (data, model): ``pass_fail`` (a die passes when its accuracy
    reaches ``threshold``; Poisson, Murphy, Seeds, and the negative binomial over wafers:
    :func:`~yieldmc.yieldmodels.fit_pass_fail`) and ``counts`` (the dies' ``n_defects``;
    Poisson and negative binomial: :func:`~yieldmc.yieldmodels.fit_counts`). AICs compare
    models of the same data only.

    Parameters
    ----------
    df : pandas.DataFrame
        Die table with ``accuracy``, ``wafer`` and ``n_defects`` (and ``solver_converged``).
    threshold : float
        Accuracy threshold of pass/fail.
    area_cm2 : float
        Die area; ``d0`` is per cm^2 (per die when 1).
    confidence : float
        Two-sided level of the intervals.
    include_unconverged : bool
        Count the dies whose circuit solve did not converge.
    ci : {"wald", "profile"}
        Interval method of the negative binomial.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MODEL_TABLE_COLUMNS`: ``d0`` with ``d0_lo``, ``d0_hi``; ``alpha`` with
        its interval (negative binomial only, NaN otherwise, ``inf`` = no clustering);
        ``loglik``, ``aic``, dies ``n``, wafers ``n_groups``, the model's ``yield``.
    """
    from yieldmc.yieldmodels import fit_counts, fit_pass_fail, fits_table

    require_columns(df, MODEL_COLUMNS, "fitting yield models")
    use = wafer_frame(df, threshold, include_unconverged=include_unconverged)
    if use.empty:
        raise ConfigError("no die to fit yield models to (every die is unconverged; --include-unconverged counts them)")
    if use["n_defects"].isna().any() or use["wafer"].isna().any():
        raise ConfigError("some dies have no n_defects or wafer: fitting needs both on every die")
    wafer = use["wafer"].to_numpy()
    counts = use["n_defects"].to_numpy(dtype=np.int64)
    parts = [fits_table(fit_pass_fail(use["passed"].to_numpy(dtype=bool), area_cm2, wafer, confidence=confidence,
                                      ci=ci)).assign(data="pass_fail"),
             fits_table(fit_counts(counts, area_cm2, wafer, confidence=confidence, ci=ci)).assign(data="counts")]
    return pd.concat(parts, ignore_index=True)[list(MODEL_TABLE_COLUMNS)]


@dataclass(frozen=True)
class ModelFits:
    """What :func:`run_model_fits` found.

    Attributes
    ----------
    table : pandas.DataFrame
        :func:`model_fits`' table.
    area_cm2 : float
        Die area the densities are per.
    area_source : str
        Where the area came from: ``"option"``, ``"run settings"`` or ``"unknown (1 cm^2)"``.
    threshold : float
        Accuracy threshold of pass/fail.
    """

    table: pd.DataFrame
    area_cm2: float
    area_source: str
    threshold: float


def run_model_fits(run: str | Path, *, threshold: float | None = None, area_cm2: float | None = None,
                   confidence: float = 0.95, include_unconverged: bool = False, verify: bool = True) -> ModelFits:
    """:func:`model_fits` of a run directory (``yieldmc yield RUN --models``).

    The die area is ``area_cm2`` if given, else the run's (:func:`die_area_cm2`), else 1 cm^2
    (``d0`` is then per die). ConfigError (one line) when the run has no wafer columns.
    """
    from yieldmc.runformat import read_run_info
    from yieldmc.store import load_dies

    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    info = read_run_info(run)
    if area_cm2 is not None:
        if not area_cm2 > 0:
            raise ConfigError(f"--die-area must be a positive area in cm^2, got {area_cm2}")
        area, source = float(area_cm2), "option"
    else:
        known = die_area_cm2(info)
        area, source = (known, "run settings") if known is not None else (1.0, "unknown (1 cm^2)")
    df = load_dies(run, verify=verify)
    require_columns(df, MODEL_COLUMNS, "--models", run)
    table = model_fits(df, threshold, area, confidence=confidence, include_unconverged=include_unconverged)
    return ModelFits(table, area, source, threshold)


def load_run(run: str | Path, *, verify: bool = True) -> tuple[dict[str, Any], pd.DataFrame, dict[str, pd.DataFrame],
                                                                list[str]]:
    """run.json, the finished dies (a partial run's too), the corrected tables, and sentences
    about corrected tables that could not be read. ConfigError when ``run`` is no run."""
    from yieldmc.correction import MODES, corrected_path, load_corrected
    from yieldmc.runformat import read_run_info
    from yieldmc.store import load_dies

    if not Path(run).is_dir():
        raise ConfigError(f"{run} is not a directory; give a run directory written by `yieldmc sample`")
    info = read_run_info(run)
    dies = load_dies(run, verify=verify, allow_partial=True)
    corrected, problems = {}, []
    for mode in MODES:
        if corrected_path(run, mode).exists():
            try:
                corrected[mode] = load_corrected(run, mode, verify=verify)
            except ConfigError as exc:
                problems.append(f"corrected/{mode}.parquet is left out: {exc}")
    return info, dies, corrected, problems


# ----------------------------------------------------------------------------- writing files
def write_new(path: Path, data: bytes, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically; an existing file only with ``overwrite`` (ConfigError)."""
    from yieldmc.atomic import atomic_write_bytes, create_exclusive

    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        atomic_write_bytes(path, data)
    elif not create_exclusive(path, data):
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")


# ----------------------------------------------------------------------------- wafer maps
def write_wafer_maps(run: str | Path, out: str | Path, *, npz: str | Path | None = None, value: str = "passed",
                     threshold: float = 0.8, corrected: str | None = None, overwrite: bool = False,
                     verify: bool = True) -> dict[str, Any]:
    """Draw a wafer run's maps to ``out`` (``yieldmc wafermap``), optionally with WM-811K arrays.

    Parameters
    ----------
    run : path
        Run directory whose die table has wafer columns (:data:`yieldmc.runyield.MAP_COLUMNS`).
    out : path
        Image file; its suffix names the format (``.png``, ``.svg``, ``.pdf``, ...).
    npz : path, optional
        Also write the pass/fail maps as WM-811K-shaped ``uint8`` arrays (0 no die, 1 pass,
        2 fail; :func:`yieldmc.wafermap.save_wm811k`).
    value : {"passed", "accuracy"}
        Pass/fail colours, or an accuracy colour scale.
    threshold : float
        Accuracy threshold of pass/fail.
    corrected : {"per-die", "population"}, optional
        Draw the accuracy after correction (``corrected/<mode>.parquet``; its dies only).
    overwrite : bool
        Replace existing files (else an existing ``out`` or ``npz`` is refused, nothing written).

    Returns
    -------
    dict
        ``out``, ``npz``, ``wafers``, ``shown`` (wafers drawn), ``dies``, ``zones`` and
        ``radial`` (records of :func:`yieldmc.wafermap.zone_yield` / ``radial_yield``, when
        the table has ``r_mm``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from yieldmc import wafermap
    from yieldmc.correction import load_corrected
    from yieldmc.gallery import image_formats
    from yieldmc.runformat import read_run_info
    from yieldmc.store import load_dies

    out = Path(out)
    if value not in ("passed", "accuracy"):
        raise ConfigError(f"--value must be passed or accuracy, got {value!r}")
    fmt = out.suffix[1:].lower()
    if fmt not in image_formats():
        raise ConfigError(f"{out} has no image suffix; use one of: "
                          f"{', '.join('.' + f for f in sorted(image_formats()))}")
    targets = [out] + ([Path(npz)] if npz is not None else [])
    for p in targets if not overwrite else ():
        if p.exists():
            raise ConfigError(f"{p} exists; pass --overwrite to replace it")
    info = read_run_info(run)
    dies = load_dies(run, verify=verify)
    require_columns(dies, MAP_COLUMNS, "a wafer map", run)
    column = "accuracy"
    if corrected is not None:
        fixed = load_corrected(run, corrected, verify=verify)
        dies = dies.merge(fixed[["die", "accuracy_corrected"]], on="die", how="inner")
        column = "accuracy_corrected"
    frame = wafer_frame(dies, threshold, accuracy=column)
    if frame.empty:
        raise ConfigError(f"no converged die in {run} to draw")
    wafers = sorted(frame["wafer"].unique())
    shown = frame[frame["wafer"].isin(wafers[:wafermap.MAX_PANELS])]
    spec = wafer_spec(info)
    try:
        fig = wafermap.plot_wafer_maps(shown, value, spec=spec)
    except ConfigError:  # the settings' wafer does not hold the table's die grid: use the table's own
        spec = None
        fig = wafermap.plot_wafer_maps(shown, value)
    if corrected is not None:
        fig.suptitle(f"after {corrected} correction", fontsize=9)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=MAP_DPI)
    write_new(out, buf.getvalue(), overwrite)
    if npz is not None:
        maps = wafermap.wafer_map_arrays(frame, spec=spec)
        labels = None
        if "signature" in frame and frame["signature"].notna().all():
            sig = frame.groupby("wafer")["signature"].first()
            if set(sig) <= set(wafermap.SIGNATURE_CLASSES):
                labels = {k: wafermap.SIGNATURE_CLASSES[sig[k]] for k in maps}
        Path(npz).parent.mkdir(parents=True, exist_ok=True)
        try:
            wafermap.save_wm811k(npz, maps, labels=labels, overwrite=overwrite)
        except FileExistsError:
            raise ConfigError(f"{npz} exists; pass --overwrite to replace it") from None
    summary: dict[str, Any] = {"out": str(out), "npz": None if npz is None else str(npz), "wafers": len(wafers),
                               "shown": min(len(wafers), wafermap.MAX_PANELS), "dies": len(frame)}
    if not missing_columns(frame, ("r_mm",)):
        radius = spec.usable_radius_mm if spec is not None else None
        summary["zones"] = wafermap.zone_yield(frame, radius_mm=radius).reset_index().to_dict(orient="records")
        summary["radial"] = wafermap.radial_yield(frame).to_dict(orient="records")
    return summary
