"""Dies on wafers: which lot, wafer and site a die of a wafer run is, and which arrays its defects hit.

Without wafers every array of ``defects.layers`` receives a die's defects
(:attr:`yieldmc.die.DieModel.eligible`). On wafers (``config.wafer.wafers > 0``,
docs/wafer.md) die ``d`` is site ``d mod S`` of wafer ``(d // S) mod W`` of lot ``d // (W S)``
(``S`` sites per wafer, ``W`` wafers per lot: :func:`wafer_die_count`); it draws its
killer-defect count from :mod:`yieldmc.wafer`'s streams, and that many of its eligible
arrays, chosen at random (:func:`hit_arrays` on :func:`array_uniforms`), receive its
defects (:func:`wafer_dies`). The cell-level defects of a hit array are those the die draws
without wafers (every array's pattern is drawn whether or not it is hit), and a die without
a defect is fault-free. Every value of a die is a pure function of ``(seed, lot, wafer,
site)``: not of which other dies are asked for, nor of chunking.

:mod:`yieldmc.wafer` (pandas, scipy) is imported when a function needs it, so importing
this module (and :mod:`yieldmc.die`) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from yieldmc.errors import ConfigError

if TYPE_CHECKING:
    from yieldmc.config import Config

__all__ = ["WAFER_COLUMN_TYPES", "WaferDies", "array_uniforms", "hit_arrays", "wafer_die_count", "wafer_dies"]

#: Per-die columns of a wafer run (:func:`wafer_dies`; declared in ``yieldmc.schema.WAFER_COLUMNS``).
WAFER_COLUMN_TYPES = {"lot": np.int32, "wafer": np.int32, "x": np.int32, "y": np.int32, "r_mm": np.float64,
                      "expected_defects": np.float64, "n_defects": np.int32}


@dataclass(frozen=True)
class WaferDies:
    """Some dies of a wafer run: where they lie, their defects, which arrays those hit.

    Attributes
    ----------
    columns : dict of str -> numpy.ndarray
        One entry per die, in the order asked for: ``lot``, ``wafer`` (the wafer's id,
        unique over the lots: ``lot * wafers + slot``, which keys its streams), ``x``,
        ``y`` (die grid column and row), ``r_mm`` (distance of the die centre from the
        wafer centre, mm), ``expected_defects`` (its Poisson mean) and ``n_defects``.
    affected : numpy.ndarray of bool, shape (dies, arrays)
        Arrays that receive the die's defects: ``min(n_defects, eligible)`` of the
        eligible arrays (none for a die without a defect).
    """

    columns: dict[str, np.ndarray]
    affected: np.ndarray


def _wafer_layout(config: Config) -> tuple[object, object, int]:
    """``(WaferSpec, DensitySpec, sites per wafer)`` of a wafer run's config."""
    from yieldmc.wafer import die_sites

    w = config.wafer
    spec = w.spec()
    return spec, w.density(), len(die_sites(spec))


def wafer_die_count(config: Config) -> int:
    """Dies of a wafer run: ``lots * wafers * sites per wafer`` (0 without wafers)."""
    w = config.wafer
    return w.lots * w.wafers * _wafer_layout(config)[2] if w.enabled else 0


def array_uniforms(seed: int, lot: int, wafer: int, sites: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniforms in (0, 1) per die site of one wafer that choose the arrays its
    defects hit: :func:`yieldmc.wafer.site_uniforms` on the stream tag
    :data:`yieldmc.wafer.TAG_ARRAYS`, a pure function of ``(seed, lot, wafer, site)``.

    Returns
    -------
    numpy.ndarray, shape (len(sites), n)
    """
    from yieldmc.wafer import TAG_ARRAYS, site_uniforms

    return site_uniforms(seed, TAG_ARRAYS, lot, wafer, sites, n)


def hit_arrays(n_defects: np.ndarray, eligible: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Which arrays the defects of each die hit: the ``min(n, eligible)`` eligible arrays
    with the smallest uniforms ``u`` (dies x eligible arrays), each chosen at most once.

    Parameters
    ----------
    n_defects : numpy.ndarray of int, shape (dies,)
    eligible : numpy.ndarray of bool, shape (arrays,)
        Arrays that may receive defects (``defects.layers``).
    u : numpy.ndarray, shape (dies, eligible arrays)

    Returns
    -------
    numpy.ndarray of bool, shape (dies, arrays)

    >>> hit_arrays(np.array([0, 1, 5]), np.array([True, False, True]), np.array([[.1, .2], [.7, .3], [.5, .6]]))
    array([[False, False, False],
           [False, False,  True],
           [ True, False,  True]])
    """
    idx = np.flatnonzero(eligible)
    rank = np.argsort(np.argsort(u, axis=1, kind="stable"), axis=1, kind="stable")
    out = np.zeros((len(n_defects), len(eligible)), dtype=np.bool_)
    out[:, idx] = rank < np.asarray(n_defects)[:, None]
    return out


def wafer_dies(config: Config, eligible: Any, dies: Any) -> WaferDies:
    """The wafer columns and hit arrays of dies ``dies`` of a wafer run.

    Vectorised per wafer: one :func:`yieldmc.wafer.sample_wafer` (the wafer's density and
    signature, its dies' expected and drawn counts) and one :func:`array_uniforms` per
    wafer the dies lie on. Each die's values depend on ``(seed, lot, wafer, site)`` only.

    Parameters
    ----------
    config : Config
        A wafer run's settings (``wafer.wafers > 0``).
    eligible : sequence of bool
        One flag per array: may it receive defects (:attr:`yieldmc.die.DieModel.eligible`).
    dies : sequence of int
        Die indices in ``[0, wafer_die_count(config))``.

    Raises
    ------
    ConfigError
        No wafers in ``config``, or a die index outside the run.
    """
    from yieldmc.wafer import sample_wafer

    w = config.wafer
    if not w.enabled:
        raise ConfigError("wafer_dies needs a wafer run (wafer.wafers > 0)")
    spec, density, n_sites = _wafer_layout(config)
    dies = np.asarray(dies, dtype=np.int64).reshape(-1)
    total = w.lots * w.wafers * n_sites
    if dies.size and (dies.min() < 0 or dies.max() >= total):
        raise ConfigError(f"die indices must lie in [0, {total - 1}] for {w.lots} lot(s) of {w.wafers} wafer(s) of "
                          f"{n_sites} dies, got {dies.min()}..{dies.max()}")
    eligible = np.asarray(eligible, dtype=np.bool_)
    n_eligible = int(eligible.sum())
    wafer_index, site = np.divmod(dies, n_sites)  # wafer_index = lot * wafers + slot: the wafer's id
    columns = {k: np.empty(dies.size, dtype=t) for k, t in WAFER_COLUMN_TYPES.items()}
    affected = np.zeros((dies.size, eligible.size), dtype=np.bool_)
    for wid in np.unique(wafer_index).tolist():
        rows = np.flatnonzero(wafer_index == wid)
        lot, slot = divmod(wid, w.wafers)
        frame = sample_wafer(spec, density, config.seed, lot, wid, site[rows], slot=slot)
        for k in columns:
            columns[k][rows] = frame[k].to_numpy()
        u = array_uniforms(config.seed, lot, wid, site[rows], n_eligible)
        affected[rows] = hit_arrays(columns["n_defects"][rows], eligible, u)
    return WaferDies(columns, affected)
