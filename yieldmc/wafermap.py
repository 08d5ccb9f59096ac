"""Wafer maps: WM-811K-shaped arrays, their files, radial and zone yields, and pictures.

A map is a 2-D ``uint8`` array over the die grid, indexed ``[y, x]``: :data:`NO_DIE` (0) where
there is no die (off the wafer, or a site the table does not hold), :data:`PASS` (1) and
:data:`FAIL` (2), the codes of the WM-811K dataset (Wu, Jang & Chen 2015). All maps of one
call share one shape: the die grid of a :class:`yieldmc.wafer.WaferSpec` when one is given,
else ``(max y + 1, max x + 1)`` over the table.

>>> import pandas as pd
>>> df = pd.DataFrame({"wafer": [0, 0, 0], "x": [0, 1, 1], "y": [0, 0, 1], "passed": [True, False, True]})
>>> wafer_map_arrays(df)[0]
array([[1, 2],
       [0, 1]], dtype=uint8)
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Patch

from yieldmc.atomic import atomic_write_bytes, create_exclusive
from yieldmc.errors import ConfigError
from yieldmc.stats import wilson_interval
from yieldmc.wafer import WaferSpec

NO_DIE, PASS, FAIL = 0, 1, 2
#: The WM-811K failure-type labels (``failureType``).
WM811K_CLASSES = ("Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none")
#: WM-811K label of each :data:`yieldmc.wafer.SIGNATURES` entry.
SIGNATURE_CLASSES = {"none": "none", "center": "Center", "donut": "Donut", "edge_ring": "Edge-Ring",
                     "local": "Loc", "scratch": "Scratch", "random": "Random"}
#: Zones of :func:`zone_yield`: outer radius of each as a fraction of the wafer's radius
#: (equal areas: each zone holds about a third of the dies).
ZONES = (("center", math.sqrt(1 / 3)), ("middle", math.sqrt(2 / 3)), ("edge", 1.0))
#: Most panels :func:`plot_wafer_maps` draws (select wafers beforehand for more).
MAX_PANELS = 100
_PASS_FAIL_CMAP = ListedColormap(["#ffffff", "#2ca02c", "#d62728"])


def _need(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{who} needs the column(s) {', '.join(map(repr, missing))} in the die table")


def _grid(df: pd.DataFrame, spec: WaferSpec | None, wafer: str) -> tuple[int, int]:
    """The maps' shape ``(rows, columns)``, after checking the die coordinates."""
    _need(df, [wafer, "x", "y"], "a wafer map")
    x, y = df["x"].to_numpy(), df["y"].to_numpy()
    if len(df) and (not np.issubdtype(x.dtype, np.integer) or not np.issubdtype(y.dtype, np.integer)
                    or x.min() < 0 or y.min() < 0):
        raise ConfigError("die grid indices x and y must be integers >= 0")
    if df.duplicated([wafer, "x", "y"]).any():
        raise ConfigError("the die table holds a wafer's (x, y) site more than once")
    if spec is not None:
        shape = spec.grid_shape
        if len(df) and (x.max() >= shape[1] or y.max() >= shape[0]):
            raise ConfigError(f"die coordinates beyond the wafer's {shape[0]} x {shape[1]} die grid")
        return shape
    return (int(y.max()) + 1, int(x.max()) + 1) if len(df) else (0, 0)


def wafer_map_arrays(df: pd.DataFrame, *, spec: WaferSpec | None = None, wafer: str = "wafer",
                     passed: str = "passed") -> dict[Any, np.ndarray]:
    """One WM-811K-shaped map per wafer.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per die: ``wafer``, ``x``, ``y`` (die grid indices) and ``passed`` (bool).
    spec : WaferSpec, optional
        Pads every map to this wafer's full die grid.
    wafer, passed : str
        Column names.

    Returns
    -------
    dict
        Wafer id -> ``uint8`` array ``[y, x]`` of :data:`NO_DIE` / :data:`PASS` / :data:`FAIL`,
        in sorted wafer order.
    """
    _need(df, [passed], "a wafer map")
    ny, nx = _grid(df, spec, wafer)
    codes = np.where(df[passed].to_numpy(dtype=bool), PASS, FAIL).astype(np.uint8)
    out: dict[Any, np.ndarray] = {}
    for key, idx in df.groupby(wafer, sort=True).indices.items():
        m = np.zeros((ny, nx), dtype=np.uint8)
        m[df["y"].to_numpy()[idx], df["x"].to_numpy()[idx]] = codes[idx]
        out[key.item() if isinstance(key, np.generic) else key] = m
    return out


def save_wm811k(path: str | os.PathLike, maps: Mapping[Any, np.ndarray], *, labels: Mapping[Any, str] | None = None,
                overwrite: bool = False) -> None:
    """Write maps to a compressed ``.npz`` file, atomically.

    The file holds ``maps`` (``uint8``, ``(wafers, rows, columns)``), ``wafer`` (the ids, in
    the mapping's order) and, if given, ``failure_type`` (one WM-811K label per wafer).
    It is written whole to a temporary file in the same folder and then moved into place
    (:mod:`yieldmc.atomic`): readers never see half a file.

    Parameters
    ----------
    path : path-like
        Target file (``.npz`` by convention).
    maps : mapping
        Wafer id -> map, all of one shape (as :func:`wafer_map_arrays` makes them).
    labels : mapping, optional
        Wafer id -> failure type (:data:`WM811K_CLASSES`).
    overwrite : bool, default False
        Replace an existing file; without it an existing file is never touched.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if not maps:
        raise ConfigError("no wafer maps to save")
    arrays = [np.asarray(m) for m in maps.values()]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
        raise ConfigError("wafer maps must be 2-D arrays of one shape (pass spec= to wafer_map_arrays)")
    if any(a.dtype != np.uint8 or a.max(initial=0) > FAIL for a in arrays):
        raise ConfigError(f"wafer maps must be uint8 arrays of {NO_DIE} (no die), {PASS} (pass), {FAIL} (fail)")
    content = {"maps": np.stack(arrays), "wafer": np.asarray(list(maps.keys()))}
    if content["wafer"].dtype == object:
        raise ConfigError("wafer ids must be all numbers or all strings (np.load reads no pickles)")
    if labels is not None:
        bad = sorted({str(v) for v in labels.values()} - set(WM811K_CLASSES))
        if bad or set(labels) != set(maps):
            raise ConfigError(f"labels must give one WM-811K class per wafer ({', '.join(WM811K_CLASSES)}); "
                              f"unknown: {bad or 'none'}")
        content["failure_type"] = np.asarray([str(labels[k]) for k in maps])
    buf = io.BytesIO()
    np.savez_compressed(buf, **content)
    path = os.fspath(path)
    if overwrite:
        atomic_write_bytes(path, buf.getvalue())
    elif not create_exclusive(path, buf.getvalue()):
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")


def _binned(df: pd.DataFrame, edges: np.ndarray, passed: str, confidence: float) -> pd.DataFrame:
    r = df["r_mm"].to_numpy(dtype=float)
    ok = df[passed].to_numpy(dtype=bool)
    which = np.searchsorted(edges, r, side="right") - 1
    which[r == edges[-1]] = len(edges) - 2  # the last bin holds its outer edge
    inside = (which >= 0) & (which < len(edges) - 1)
    n = np.bincount(which[inside], minlength=len(edges) - 1)
    k = np.bincount(which[inside], weights=ok[inside], minlength=len(edges) - 1).astype(np.int64)
    lo, hi = wilson_interval(k, n, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = k / n
    return pd.DataFrame({"r_lo": edges[:-1], "r_hi": edges[1:], "n": n, "n_pass": k, "yield": y,
                         "lo": np.atleast_1d(lo), "hi": np.atleast_1d(hi)})


def radial_yield(df: pd.DataFrame, bins: int | Sequence[float] = 5, *, passed: str = "passed",
                 confidence: float = 0.95) -> pd.DataFrame:
    """Yield against the die centre's distance from the wafer centre.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per die with ``r_mm`` and ``passed``.
    bins : int or sequence of float
        Number of equal-width rings from 0 to the largest ``r_mm``, or increasing ring
        edges (mm); dies outside the edges are left out.
    confidence : float, default 0.95
        Level of the Wilson intervals ``lo``, ``hi``.

    Returns
    -------
    pandas.DataFrame
        One row per ring: ``r_lo``, ``r_hi`` (mm), ``n``, ``n_pass``, ``yield``, ``lo``, ``hi``.
    """
    _need(df, ["r_mm", passed], "radial_yield")
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ConfigError(f"bins must be >= 1, got {bins}")
        edges = np.linspace(0.0, float(df["r_mm"].max()) if len(df) else 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ConfigError("bins must be an integer or at least two increasing ring edges (mm)")
    return _binned(df, edges, passed, confidence)


def zone_yield(df: pd.DataFrame, *, radius_mm: float | None = None, passed: str = "passed",
               confidence: float = 0.95) -> pd.DataFrame:
    """Yield of the center, middle and edge zones (:data:`ZONES`: equal-area rings).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per die with ``r_mm`` and ``passed``.
    radius_mm : float, optional
        The radius the zones divide (default: the largest ``r_mm``; a
        :attr:`WaferSpec.usable_radius_mm` makes zones comparable between tables).

    Returns
    -------
    pandas.DataFrame
        Index ``zone``; columns as :func:`radial_yield`.
    """
    _need(df, ["r_mm", passed], "zone_yield")
    r = float(df["r_mm"].max()) if radius_mm is None else float(radius_mm)
    if not (math.isfinite(r) and r > 0):
        raise ConfigError(f"radius_mm must be a positive radius (mm), got {radius_mm!r}")
    edges = np.array([0.0] + [f * r for _, f in ZONES])
    out = _binned(df, edges, passed, confidence)
    out.index = pd.Index([z for z, _ in ZONES], name="zone")
    return out


def plot_wafer_maps(df: pd.DataFrame, value: str = "passed", *, spec: WaferSpec | None = None,
                    wafer: str = "wafer", ncols: int | None = None, panel_in: float = 2.2,
                    vmin: float = 0.0, vmax: float = 1.0) -> Figure:
    """A grid of wafer maps, one panel per wafer.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per die: ``wafer``, ``x``, ``y`` and the ``value`` column.
    value : {"passed", "accuracy"}
        ``"passed"``: pass (green) / fail (red); ``"accuracy"`` (or any numeric column):
        colour scale ``vmin`` .. ``vmax`` with a colour bar.
    spec : WaferSpec, optional
        Pads the maps to the wafer's die grid, draws its usable edge and keeps the dies'
        aspect ratio.
    ncols : int, optional
        Panels per row (default: about square).
    panel_in : float
        Panel size (inches).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per wafer (plus the colour bar's for numeric values).
    """
    _need(df, [value], "plot_wafer_maps")
    ny, nx = _grid(df, spec, wafer)
    groups = df.groupby(wafer, sort=True).indices
    if not groups:
        raise ConfigError("no wafers to plot")
    if len(groups) > MAX_PANELS:
        raise ConfigError(f"{len(groups)} wafers: plot_wafer_maps draws at most {MAX_PANELS}; select wafers first")
    pass_fail = value == "passed"
    cols = ncols or math.ceil(math.sqrt(len(groups)))
    rows = math.ceil(len(groups) / cols)
    fig = Figure(figsize=(cols * panel_in + (0 if pass_fail else 0.8), rows * panel_in + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(groups):]:
        fig.delaxes(ax)
    aspect = spec.die_h_mm / spec.die_w_mm if spec is not None else 1.0
    x, y, v = df["x"].to_numpy(), df["y"].to_numpy(), df[value].to_numpy()
    image = None
    for ax, (key, idx) in zip(axes, groups.items(), strict=False):
        grid = np.zeros((ny, nx)) if pass_fail else np.full((ny, nx), np.nan)
        grid[y[idx], x[idx]] = np.where(v[idx].astype(bool), PASS, FAIL) if pass_fail else v[idx]
        if pass_fail:
            image = ax.imshow(grid, cmap=_PASS_FAIL_CMAP, vmin=0, vmax=2, interpolation="nearest", aspect=aspect)
            label = f"{float(np.mean(v[idx].astype(bool))):.0%} pass"
        else:
            image = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspect)
            label = f"mean {np.nanmean(v[idx].astype(float)):.3g}"
        if spec is not None:
            hx, hy = spec.half_grid
            r = spec.usable_radius_mm
            ax.add_patch(Ellipse((hx, hy), 2 * r / spec.die_w_mm, 2 * r / spec.die_h_mm, fill=False, lw=0.8,
                                 color="0.4"))
            ax.set_xlim(hx - r / spec.die_w_mm - 0.5, hx + r / spec.die_w_mm + 0.5)
            ax.set_ylim(hy + r / spec.die_h_mm + 0.5, hy - r / spec.die_h_mm - 0.5)
        ax.set_title(f"wafer {key}: {label}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if pass_fail:
        handles = [Patch(color=_PASS_FAIL_CMAP(code), label=name) for code, name in ((PASS, "pass"), (FAIL, "fail"))]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    else:
        fig.colorbar(image, ax=list(axes[:len(groups)]), label=value, shrink=0.8)
    return fig
