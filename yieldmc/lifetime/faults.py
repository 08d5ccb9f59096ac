"""Faults that appear while a die is in use: Weibull cell lifetimes, clustered growth, new patterns.

A die's life starts at its test, ``t_0``: its stuck cells then are the run's own defects
(drawn by :func:`yieldmc.defects.sample_die` from ``DieStream(seed, die)``). Every other cell
``c`` has a lifetime ``L_c`` counted from ``t_0`` (proportional-hazards Weibull)::

    P(L_c <= tau) = 1 - exp(-h_c (tau / scale)^shape)
    L_c = scale * (-log(1 - u_c) / h_c)^(1 / shape)        u_c uniform in [0, 1)
    h_c = 1 + cluster_gain * exp(-d_c / cluster_radius)

``d_c`` is the distance (cells, Euclidean) from ``c`` to the nearest cell of the same array
stuck at ``t_0`` (no stuck cell: ``h_c = 1``), so with ``cluster_gain > 0`` faults grow out of
the die's existing defects. When it fails, the cell sticks ON with probability
``on_fraction`` (a second uniform ``v_c``), else OFF. Optionally a die also gets one *new
pattern*: an onset ``T_p`` (Weibull of the same shape, scale ``pattern_scale``) and a mask
drawn like a run's defects (kind ``pattern_kind``, severity ``pattern_severity``, on one
array chosen with probability proportional to its cells); its cells fail at ``T_p`` unless
their own lifetime is earlier. A cell's code is the one of its earliest event, so faults only
accumulate: a stuck cell never heals or changes state.

Randomness is counter-based and keyed, never sequential: ``u_c`` and ``v_c`` are draws
``2c`` and ``2c + 1`` of ``DieStream(cell_seed, die)``, the pattern's draws come from
``DieStream(pattern_seed, die)`` (:func:`lifetime_seeds`, both derived from the run's seed).
A die's fault history (``L_c`` and codes) is therefore a function of (seed, die, cell) and
the die's ``t_0`` defects only: the same whatever checkpoints, dies or chunks are asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from yieldmc import defects
from yieldmc.engine.streams import DieStream, uniforms
from yieldmc.errors import ConfigError

#: Tags of the lifetime's random streams (apart from the dies' defect streams).
CELL_TAG, PATTERN_TAG = 0x11FE7135, 0x11FE7136
#: Seconds per year (Julian) for the defaults and for durations written with ``y``.
YEAR_S = 365.25 * 86400.0


def lifetime_seeds(seed: int) -> tuple[int, int]:
    """``(cell_seed, pattern_seed)``: the roots of the cell and pattern streams of a run with
    root seed ``seed`` (below 2**63, apart from the seeds the runs' dies draw from)."""
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    out = []
    for tag in (CELL_TAG, PATTERN_TAG):
        a, b = np.random.SeedSequence([int(seed), tag]).generate_state(2, np.uint32)
        out.append(((int(a) << 32) | int(b)) >> 1)
    return out[0], out[1]


def _flag(name: str) -> str:
    """A setting's name as the command line spells it: ``scale_s`` -> ``--scale``."""
    return "--" + name.removesuffix("_s").replace("_", "-")


@dataclass(frozen=True)
class FaultModel:
    """How stuck cells appear after ``t_0`` (see the module text for the model).

    Parameters
    ----------
    shape : float
        Weibull shape (> 0; above 1 the hazard grows with age: wear-out).
    scale_s : float
        Weibull scale (s, > 0): the age at which a cell has failed with probability
        ``1 - 1/e`` (with ``h_c = 1``).
    on_fraction : float
        Share of new faults stuck ON (in [0, 1]).
    cluster_gain : float
        Hazard multiplier next to an existing defect minus 1 (>= 0; 0: independent cells).
    cluster_radius : float
        Decay length (cells, > 0) of the clustering.
    pattern_scale_s : float
        Weibull scale (s) of a die's new-pattern onset; ``inf`` (default): no new pattern.
    pattern_kind : str
        Kind of the new pattern (one of :data:`yieldmc.defects.KINDS`, ``mixed`` included).
    pattern_severity : float
        Faulty share of the array the new pattern hits (in [0, 1]).
    """

    shape: float = 2.0
    scale_s: float = 60.0 * YEAR_S
    on_fraction: float = 0.5
    cluster_gain: float = 0.0
    cluster_radius: float = 2.0
    pattern_scale_s: float = math.inf
    pattern_kind: str = "mixed"
    pattern_severity: float = 0.05

    def __post_init__(self) -> None:
        for name in ("shape", "scale_s", "cluster_radius", "pattern_scale_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and not math.isnan(value)):
                raise ConfigError(f"{_flag(name)} must be a number > 0, got {value!r}")
        for name in ("shape", "scale_s", "cluster_radius"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{_flag(name)} must be finite, got {getattr(self, name)!r}")
        if not (isinstance(self.cluster_gain, (int, float)) and 0 <= self.cluster_gain < math.inf):
            raise ConfigError(f"{_flag('cluster_gain')} must be a finite number >= 0, got {self.cluster_gain!r}")
        for name in ("on_fraction", "pattern_severity"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ConfigError(f"{_flag(name)} must lie in [0, 1], got {value!r}")
        if self.pattern_kind not in defects.KINDS:
            raise ConfigError(f"{_flag('pattern_kind')} must be one of {', '.join(defects.KINDS)}, "
                              f"got {self.pattern_kind!r}")

    def as_dict(self) -> dict:
        """The settings as JSON-ready values (``inf`` as the string ``"inf"``)."""
        return {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    def cdf(self, tau) -> np.ndarray:
        """Probability that an unclustered cell (``h_c = 1``) has failed by age ``tau`` (s)."""
        tau = np.maximum(np.asarray(tau, dtype=np.float64), 0.0)
        return -np.expm1(-((tau / self.scale_s) ** self.shape))


def hazard_multipliers(model: FaultModel, t0_codes: np.ndarray, shapes: Sequence[tuple[int, int]],
                       cell_off: np.ndarray) -> np.ndarray:
    """``h_c`` of every cell of every die: ``(dies, cells)``, 1.0 without clustering.

    ``t0_codes`` (dies, cells) holds the dies' stuck-at codes at ``t_0``, arrays flat at
    ``cell_off``."""
    h = np.ones(t0_codes.shape)
    if model.cluster_gain == 0:
        return h
    for a, (m, n) in enumerate(shapes):
        span = slice(int(cell_off[a]), int(cell_off[a + 1]))
        for i, codes in enumerate(t0_codes[:, span]):
            stuck = codes.reshape(m, n) != defects.HEALTHY
            if not stuck.any():
                continue
            dist = ndimage.distance_transform_edt(~stuck)
            h[i, span] = 1.0 + model.cluster_gain * np.exp(-dist.ravel() / model.cluster_radius)
    return h


def _weibull_times(model: FaultModel, u: np.ndarray, h: np.ndarray | float, scale: float) -> np.ndarray:
    """Weibull ages (s) from uniforms ``u`` in [0, 1); never exactly 0 (so nothing but the
    ``t_0`` defects is present at age 0)."""
    with np.errstate(divide="ignore"):
        t = scale * (-np.log1p(-u) / h) ** (1.0 / model.shape)
    return np.maximum(t, np.finfo(np.float64).tiny)


def _pattern_cells(model: FaultModel, pattern_seed: int, die: int, shapes: Sequence[tuple[int, int]],
                   cell_off: np.ndarray) -> tuple[float, np.ndarray]:
    """The new pattern of die ``die``: its onset age (s) and its codes (cells,), int8."""
    rng = DieStream(pattern_seed, int(die))
    onset = float(_weibull_times(model, np.array([rng.random()]), 1.0, model.pattern_scale_s)[0])
    sizes = np.diff(cell_off).astype(np.float64)
    array = int(min(np.searchsorted(np.cumsum(sizes) / sizes.sum(), rng.random(), side="right"), len(shapes) - 1))
    affected = np.zeros(len(shapes), dtype=bool)
    affected[array] = True
    masks, _ = defects.sample_die(model.pattern_kind, shapes, rng, affected=affected,
                                  severity=model.pattern_severity, on_fraction=model.on_fraction)
    return onset, np.concatenate([m.ravel() for m in masks]).astype(np.int8)


def fault_history(model: FaultModel, seed: int, dies: np.ndarray, t0_codes: np.ndarray,
                  shapes: Sequence[tuple[int, int]], cell_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """When each cell of each die sticks, and how.

    Parameters
    ----------
    model : FaultModel
    seed : int
        The run's root seed.
    dies : numpy.ndarray of int
        Die indices (rows of ``t0_codes``).
    t0_codes : numpy.ndarray of int8, shape (dies, cells)
        Stuck-at codes at ``t_0`` (0 healthy, 1 OFF, 2 ON), arrays flat at ``cell_off``.
    shapes : sequence of (M, N)
    cell_off : numpy.ndarray of int, shape (arrays + 1,)

    Returns
    -------
    ages : numpy.ndarray of float64, shape (dies, cells)
        Age (s after ``t_0``) at which the cell sticks: 0.0 for the ``t_0`` defects, > 0
        for every other cell (``inf``: never).
    codes : numpy.ndarray of int8, shape (dies, cells)
        The code it then takes (1 OFF, 2 ON).
    """
    dies = np.asarray(dies, dtype=np.int64)
    t0_codes = np.asarray(t0_codes, dtype=np.int8)
    n_cells = int(cell_off[-1])
    if t0_codes.shape != (dies.size, n_cells):
        raise ConfigError(f"t0_codes must have shape ({dies.size}, {n_cells}), got {t0_codes.shape}")
    cell_seed, pattern_seed = lifetime_seeds(seed)
    draws = uniforms(cell_seed, dies, 2 * n_cells)
    h = hazard_multipliers(model, t0_codes, shapes, cell_off)
    ages = _weibull_times(model, draws[:, 0::2], h, model.scale_s)
    codes = np.where(draws[:, 1::2] < model.on_fraction, defects.STUCK_ON, defects.STUCK_OFF).astype(np.int8)
    if math.isfinite(model.pattern_scale_s):
        for i, d in enumerate(dies):
            onset, pattern = _pattern_cells(model, pattern_seed, int(d), shapes, cell_off)
            first = (pattern != defects.HEALTHY) & (onset < ages[i])
            ages[i, first] = onset
            codes[i, first] = pattern[first]
    at_t0 = t0_codes != defects.HEALTHY
    ages[at_t0] = 0.0
    codes[at_t0] = t0_codes[at_t0]
    return ages, codes


def codes_at(ages: np.ndarray, codes: np.ndarray, age: float) -> np.ndarray:
    """Stuck-at codes (int8, 0 healthy) of every cell at ``age`` seconds after ``t_0``."""
    return np.where(ages <= age, codes, defects.HEALTHY).astype(np.int8)


__all__ = ["CELL_TAG", "PATTERN_TAG", "YEAR_S", "FaultModel", "codes_at", "fault_history",
           "hazard_multipliers", "lifetime_seeds"]
