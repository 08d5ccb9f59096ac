"""The defect-kind registry: every pattern kind a die can draw, named in one place.

Each kind is a :class:`DefectKind`: its name, whether ``mixed`` may draw it
(:attr:`~DefectKind.spatial`), its parameters (:class:`Param`: name, type, description,
which give the typed ``defect_params`` column, :mod:`yieldmc.defect_params`), its
sampler (the draws it makes from the die's stream, in a fixed order), its cell rule
(parameters -> faulty cells) and its parameter check (for hand-written parameters,
:func:`yieldmc.defects.mask`). :data:`REGISTRY` holds them in order; :mod:`yieldmc.defects`
dispatches through it and adds what every kind shares: the severity draw before the
kind's draws, the ON/OFF draws after them, the ``mixed`` and ``none`` pseudo-kinds.

Adding a kind is one :class:`DefectKind` in :data:`REGISTRY` and its functions here
(docs/architecture.md section 4 shows the diff). It runs on the reference engine; the
compiled engine declines it (:func:`yieldmc.engine.chunk.check_supported`) until it has a
compiled twin (:data:`yieldmc.engine.sampling.TWIN_CODES`).

This module is a leaf (numpy and :mod:`yieldmc.errors` only), so :mod:`yieldmc.config`
reads the kind names from it. Definitions and default ranges: ``docs/defects.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np

from yieldmc.errors import ConfigError

#: The pseudo-kinds: ``mixed`` draws one spatial kind per die, ``none`` draws nothing.
MIXED, NONE = "mixed", "none"
#: Where the ON/OFF draw happens: per faulty cell, or once per pattern.
ON_MODES = ("cell", "pattern")
#: Parameter types: a float, an integer, a list of integers.
PARAM_TYPES = ("float", "int", "ints")

# Default ranges (severity=None); docs/defects.md explains each choice.
CIRCLE_CENTRE, CIRCLE_RADIUS = (0.2, 0.8), (0.1, 0.4)
COMPLEMENT_CENTRE, COMPLEMENT_RADIUS = (0.35, 0.65), (0.45, 0.7)
RING_CENTRE, RING_RADIUS, RING_WIDTH = (0.3, 0.7), (0.25, 0.5), (0.3, 0.6)  # width: x radius
RING_AREA = (0.5, 0.85)  # severity mode: share of the outer disk that is faulty
LINE_SHARE = 1 / 8  # row/column: 1 .. ceil(M / 8) lines
CHECKER_REGION = 0.5  # region spans 50-100 % of each side
CHECKER_ASPECT = 2.0  # severity mode: region aspect drawn log-uniform in [1/2, 2]
CHECKER_SLACK = 0.005  # severity mode: count slack (share of cells) allowed to get a nicer region
RANDOM_DENSITY = (0.01, 0.10)

#: splitmix64 constants of the per-cell draws (:func:`bernoulli`).
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
#: Bound of the per-cell seeds: exact in any JSON reader (doubles).
SEED_BOUND = 1 << 53
_MASK64 = (1 << 64) - 1
_U = tuple(np.uint64(v) for v in (GOLDEN, MIX1, MIX2, 30, 27, 31))


# ----------------------------------------------------------------------------- the entries
@dataclass(frozen=True)
class Param:
    """One parameter of a kind: a key of its parameter dicts and a field of ``defect_params``.

    Attributes
    ----------
    name : str
        The key; kinds that share a name share the parameter (same type and description).
    type : {"float", "int", "ints"}
        ``float`` (Arrow float64), ``int`` (int32) or ``ints``, a list of integers
        (list<int32>). :func:`yieldmc.defects.mask` converts hand-written values to it.
    description : str
        One sentence for the docs, with the unit.
    """

    name: str
    type: str
    description: str


#: A sampler: ``draw(shape, rng, s)`` -> the kind's parameters, where ``s`` is the target
#: faulty share (``None``: the default ranges).
Sampler = Callable[[tuple[int, int], np.random.Generator, "float | None"], dict]
#: A cell rule: ``cells(shape, params)`` -> boolean map of the faulty cells.
CellRule = Callable[[tuple[int, int], Mapping[str, Any]], np.ndarray]
#: A parameter check: ``check(shape, params)`` raises ValueError for out-of-range values.
Check = Callable[[tuple[int, int], Mapping[str, Any]], None]


@dataclass(frozen=True)
class DefectKind:
    """One defect kind.

    Attributes
    ----------
    name : str
    summary : str
        Its faulty cells, in a few words (the docs' kinds table).
    params : tuple of Param
        Its parameters, in the order its dicts hold them.
    draw : Sampler
        Draws the parameters from the die's stream (the order of draws is part of the
        reproducibility contract: change it and every stored die of the kind changes).
    cells : CellRule
        The faulty cells of validated parameters (a pure function).
    check : Check
        Range checks of hand-written parameters, after their conversion to the types.
    spatial : bool
        ``mixed`` may draw it (:data:`SPATIAL_KINDS`; the study of ``reproduce.py`` loops
        over them). Adding a spatial kind changes what every ``mixed`` die draws.
    cell_seed : bool
        The cell rule reads ``params["seed"]`` (kept in ``on_mode="pattern"`` too).
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    draw: Sampler = field(repr=False)
    cells: CellRule = field(repr=False)
    check: Check = field(repr=False)
    spatial: bool = True
    cell_seed: bool = False

    @property
    def required(self) -> tuple[str, ...]:
        """The keys hand-written parameters must have (:func:`yieldmc.defects.mask`)."""
        return (*(p.name for p in self.params), *(("seed",) if self.cell_seed else ()))


@dataclass(frozen=True)
class Registry:
    """The defect kinds, in order (their order is that of :data:`KINDS`).

    Attributes
    ----------
    entries : tuple of DefectKind
    """

    entries: tuple[DefectKind, ...]
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, DefectKind] = {}
        shared: dict[str, Param] = {}
        for k in self.entries:
            if k.name in by_name or k.name in (MIXED, NONE):
                raise ValueError(f"defect kind {k.name!r} is registered twice or is reserved")
            for p in k.params:
                if p.type not in PARAM_TYPES or shared.setdefault(p.name, p) != p:
                    raise ValueError(f"parameter {p.name!r} of {k.name!r}: a type of {PARAM_TYPES} "
                                     f"and the same Param as other kinds with that name")
            by_name[k.name] = k
        object.__setattr__(self, "_by_name", by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """The registered kinds (no pseudo-kinds)."""
        return tuple(k.name for k in self.entries)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind a config may name: the registered ones, then ``mixed`` and ``none``."""
        return (*self.names, MIXED, NONE)

    @property
    def spatial(self) -> tuple[str, ...]:
        """The kinds ``mixed`` draws from, in order."""
        return tuple(k.name for k in self.entries if k.spatial)

    @property
    def params(self) -> tuple[Param, ...]:
        """Every kind's parameters, each once, in order of first appearance."""
        seen: dict[str, Param] = {}
        for k in self.entries:
            for p in k.params:
                seen.setdefault(p.name, p)
        return tuple(seen.values())

    def having(self, param: str) -> tuple[str, ...]:
        """The kinds that have the parameter ``param``."""
        return tuple(k.name for k in self.entries if param in (p.name for p in k.params))

    def get(self, name: str) -> DefectKind:
        """The kind ``name``; ConfigError listing the kinds when there is none."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown defect kind {name!r}; valid kinds: "
                              f"{', '.join(self.kinds)}") from None

    def extended(self, *entries: DefectKind) -> Registry:
        """A registry with ``entries`` appended (tests and experiments:
        ``monkeypatch.setattr(defect_kinds, "REGISTRY", REGISTRY.extended(kind))``)."""
        return dataclasses.replace(self, entries=(*self.entries, *entries))


# ----------------------------------------------------------------------------- helpers
@lru_cache(maxsize=64)
def cell_centres(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized cell-centre coordinates of an ``m x n`` array: y as (m, 1), x as (1, n)."""
    y = ((np.arange(m) + 0.5) / m).reshape(m, 1)
    x = ((np.arange(n) + 0.5) / n).reshape(1, n)
    y.flags.writeable = x.flags.writeable = False
    return y, x


@lru_cache(maxsize=64)
def _cell_indices(size: int) -> np.ndarray:
    idx = np.arange(size, dtype=np.uint64)
    idx.flags.writeable = False
    return idx


def dist2(shape: tuple[int, int], cx: float, cy: float) -> np.ndarray:
    """Squared normalized distance of every cell centre from ``(cx, cy)``."""
    y, x = cell_centres(*shape)
    return (x - cx) ** 2 + (y - cy) ** 2


def target_count(shape: tuple[int, int], s: float | None) -> int | None:
    """Faulty cells a target share ``s`` asks for: ``round(s * M * N)`` (None: no target)."""
    return None if s is None else round(s * shape[0] * shape[1])


def radius_for_count(d2_sorted: np.ndarray, count: int) -> float:
    """A radius whose disk holds exactly the ``count`` nearest cells (midway between them)."""
    if count <= 0:
        return math.sqrt(d2_sorted[0] / 2)
    if count >= d2_sorted.size:
        return math.sqrt(d2_sorted[-1]) + 1.0
    return math.sqrt((d2_sorted[count - 1] + d2_sorted[count]) / 2)


def checker(shape: tuple[int, int], block: int, phase: Sequence[int]) -> np.ndarray:
    """Colour-0 cells of a block grid anchored at (0, 0) and shifted by ``phase``."""
    a = (np.arange(shape[0]) + phase[0]) // block
    c = (np.arange(shape[1]) + phase[1]) // block
    return (a[:, None] + c[None, :]) % 2 == 0


def mix64(z: int) -> int:
    """The splitmix64 finaliser on a Python int (exact 64-bit arithmetic)."""
    z = (z + GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * MIX2) & _MASK64
    return z ^ (z >> 31)


def bernoulli(seed: int, idx: np.ndarray, stream: int, q: float) -> np.ndarray:
    """Counter-based Bernoulli(q) draws for cells ``idx``: splitmix64(seed, stream, index).

    Pure numpy integer arithmetic (uint64 wraps silently), so a stored seed gives the same
    cells on any numpy version, unlike Generator streams, and costs no Generator set-up.
    Stream 0: the faulty cells of ``random``; stream 1: per-cell ON/OFF.
    """
    if q <= 0.0 or q >= 1.0:
        return np.full(idx.shape, q >= 1.0)
    z = idx.astype(np.uint64)
    z *= _U[0]
    z += np.uint64(mix64(mix64(int(seed)) ^ stream))  # well-mixed offset: no overlaps
    z ^= z >> _U[3]
    z *= _U[1]
    z ^= z >> _U[4]
    z *= _U[2]
    z ^= z >> _U[5]
    return z < np.uint64(int(q * (1 << 53)) << 11)  # u < q at 53-bit resolution


def _non_negative(names: tuple[str, ...], shape: tuple[int, int], p: Mapping[str, Any]) -> None:
    for name in names:
        if p[name] < 0:
            raise ValueError(f"{name}={p[name]!r}")


# ----------------------------------------------------------------------------- disks
_CX = Param("cx", "float", "Centre x (normalized: 0 to 1 from the first column to the last).")
_CY = Param("cy", "float", "Centre y (normalized: 0 to 1 from the first row to the last).")
_RADIUS = Param("radius", "float", "Disk radius (normalized); the outer radius of a ring.")
_WIDTH = Param("width", "float", "Ring width: the inner radius is radius - width.")


def _draw_disk(kind: str, shape: tuple[int, int], rng: np.random.Generator,
               s: float | None) -> dict:
    """Centre and radius (and ring width); with a target count, solved exactly."""
    m, n = shape
    k = target_count(shape, s)
    lo, hi = {"circular": CIRCLE_CENTRE, "ring": RING_CENTRE}.get(kind, COMPLEMENT_CENTRE)
    cx, cy = rng.uniform(lo, hi, size=2)
    width = None
    if k is not None:
        d2 = np.sort(dist2(shape, cx, cy), axis=None)
        if kind == "ring":  # the outer k cells of a disk holding k / area cells
            k_out = min(m * n, math.ceil(k / rng.uniform(*RING_AREA)))
            r = radius_for_count(d2, k_out)
            width = r - radius_for_count(d2, k_out - k)
        else:
            r = radius_for_count(d2, k if kind == "circular" else m * n - k)
    elif kind == "ring":  # at least one cell thick along both axes: a closed wall
        r = rng.uniform(*RING_RADIUS)
        width = min(r, max(rng.uniform(*RING_WIDTH) * r, 1 / m, 1 / n))
    else:
        r = rng.uniform(*(CIRCLE_RADIUS if kind == "circular" else COMPLEMENT_RADIUS))
    p = {"cx": float(cx), "cy": float(cy), "radius": float(r)}
    return p if width is None else {**p, "width": float(width)}


def _inside(shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    return dist2(shape, p["cx"], p["cy"]) <= p["radius"] ** 2


def _outside(shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    return ~_inside(shape, p)


def _ring(shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    d2 = dist2(shape, p["cx"], p["cy"])
    r_in = max(p["radius"] - p["width"], 0.0)
    return (d2 <= p["radius"] ** 2) & (d2 > r_in**2)


# ----------------------------------------------------------------------------- lines
_ROWS = Param("rows", "ints", "Stuck rows, ascending cell indices (may be empty).")
_COLUMNS = Param("columns", "ints", "Stuck columns, ascending cell indices (may be empty).")


def _draw_lines(axis: int, shape: tuple[int, int], rng: np.random.Generator,
                s: float | None) -> dict:
    """``count`` distinct lines of ``axis`` (0 rows, 1 columns), sorted."""
    size = shape[axis]
    count = (round(s * size) if s is not None
             else 1 + int(rng.random() * max(1, math.ceil(size * LINE_SHARE))))
    lines = sorted(int(i) for i in rng.permutation(size)[:count])
    return {"rows": lines} if axis == 0 else {"columns": lines}


def _line_cells(axis: int, shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    if axis == 0:
        out[np.asarray(p["rows"], dtype=np.intp), :] = True
    else:
        out[:, np.asarray(p["columns"], dtype=np.intp)] = True
    return out


def _check_lines(axis: int, shape: tuple[int, int], p: Mapping[str, Any]) -> None:
    key, size = ("rows", "columns")[axis], shape[axis]
    if any(not 0 <= i < size for i in p[key]):
        raise ValueError(f"{key} must lie in [0, {size}), got {p[key]!r}")


# ----------------------------------------------------------------------------- checkerboard
def _draw_checkerboard(shape: tuple[int, int], rng: np.random.Generator,
                       s: float | None) -> dict:
    """Block size, phase and region; with a target count, the region is solved."""
    m, n = shape
    k = target_count(shape, s)
    u = rng.random(7)  # one call; integers are floor(u * range), bias < 1e-12
    b = 1 + int(u[0] * max(1, min(m, n) // 4))
    phase = [int(u[1] * 2 * b), int(u[2] * 2 * b)]
    if k is None:
        h_lo, w_lo = math.ceil(m * CHECKER_REGION), math.ceil(n * CHECKER_REGION)
        h, w = h_lo + int(u[3] * (m + 1 - h_lo)), w_lo + int(u[4] * (n + 1 - w_lo))
    elif k == 0:
        h = w = 0
    else:  # among regions whose count is nearest k (+ slack), the one nearest a drawn aspect
        counts = checker(shape, b, phase).cumsum(0).cumsum(1)  # [h - 1, w - 1] -> count
        err = np.abs(counts - k)
        hh, ww = np.nonzero(err <= err.min() + math.floor(CHECKER_SLACK * m * n))
        target = (2 * u[3] - 1) * math.log(CHECKER_ASPECT)
        best = int(np.argmin(np.abs(np.log((hh + 1) * n / ((ww + 1) * m)) - target)))
        h, w = int(hh[best]) + 1, int(ww[best]) + 1
    r0, c0 = int(u[5] * (m - h + 1)), int(u[6] * (n - w + 1))
    return {"block": b, "phase": phase, "region": [r0, c0, h, w]}


def _checkerboard(shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    r0, c0, h, w = p["region"]
    r1, c1 = min(r0 + h, shape[0]), min(c0 + w, shape[1])
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = checker((r1 - r0, c1 - c0), p["block"], p["phase"])
    return out


def _check_checkerboard(shape: tuple[int, int], p: Mapping[str, Any]) -> None:
    if p["block"] < 1 or len(p["phase"]) != 2 or len(p["region"]) != 4 or min(
            p["phase"] + p["region"]) < 0:
        raise ValueError("need block >= 1, phase [pi, pj] and region "
                         "[row0, col0, height, width], all >= 0")


# ----------------------------------------------------------------------------- random
def _draw_random(shape: tuple[int, int], rng: np.random.Generator, s: float | None) -> dict:
    return {"density": float(s if s is not None else rng.uniform(*RANDOM_DENSITY))}


def _random(shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    return bernoulli(p["seed"], _cell_indices(shape[0] * shape[1]), 0, p["density"]).reshape(shape)


def _check_random(shape: tuple[int, int], p: Mapping[str, Any]) -> None:
    if not 0.0 <= p["density"] <= 1.0:
        raise ValueError(f"density must be a number in [0, 1], got {p['density']!r}")


# ----------------------------------------------------------------------------- the registry
#: Every defect kind, in order. A new kind is one more entry (docs/architecture.md section 4).
REGISTRY = Registry((
    DefectKind("circular", "inside a disk", (_CX, _CY, _RADIUS),
               draw=partial(_draw_disk, "circular"), cells=_inside,
               check=partial(_non_negative, ("radius",))),
    DefectKind("circular_complement", "outside a disk", (_CX, _CY, _RADIUS),
               draw=partial(_draw_disk, "circular_complement"),
               cells=_outside,
               check=partial(_non_negative, ("radius",))),
    DefectKind("ring", "in an annulus: radius - width < d <= radius", (_CX, _CY, _RADIUS, _WIDTH),
               draw=partial(_draw_disk, "ring"), cells=_ring,
               check=partial(_non_negative, ("radius", "width"))),
    DefectKind("row", "whole rows", (_ROWS,), draw=partial(_draw_lines, 0),
               cells=partial(_line_cells, 0), check=partial(_check_lines, 0)),
    DefectKind("column", "whole columns", (_COLUMNS,), draw=partial(_draw_lines, 1),
               cells=partial(_line_cells, 1), check=partial(_check_lines, 1)),
    DefectKind("checkerboard", "colour 0 of a block grid, inside a rectangular region",
               (Param("block", "int", "Block size in cells."),
                Param("phase", "ints", "Block grid shift [pi, pj] in cells."),
                Param("region", "ints", "Patterned region [row0, col0, height, width] in cells "
                      "(clipped to the array).")),
               draw=_draw_checkerboard, cells=_checkerboard, check=_check_checkerboard),
    DefectKind("random", "i.i.d. cells", (Param("density", "float", "Probability that a cell is faulty."),),
               draw=_draw_random, cells=_random, check=_check_random, spatial=False, cell_seed=True),
))

#: Every kind a config may name, in order: :data:`REGISTRY`'s, then ``mixed``, ``none``.
KINDS: tuple[str, ...] = REGISTRY.kinds
#: The kinds ``mixed`` draws from.
SPATIAL_KINDS: tuple[str, ...] = REGISTRY.spatial
