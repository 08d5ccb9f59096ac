"""Spatial stuck-at defect patterns: masks, per-die sampling, and applying them to G.

A mask has the array's shape and dtype ``int8``: 0 healthy, 1 stuck OFF (``g_off``),
2 stuck ON (``g_on``). Geometric patterns live in normalized coordinates: the centre of
cell ``(i, j)`` of an ``M x N`` array is ``(x, y) = ((j + 0.5) / N, (i + 0.5) / M)``, so a
"disk" on a 64x16 array is an ellipse four times taller than wide in cell units. Rows,
columns and checkerboard blocks are discrete and given in cell indices. Definitions,
default ranges and their reasons: ``docs/defects.md``.

>>> m, p = sample("circular", (8, 8), 0, severity=0.25)
>>> int((m > 0).sum()), p["kind"]
(16, 'circular')
>>> bool((mask(p["kind"], (8, 8), p) == m).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from yieldmc.errors import ConfigError
from yieldmc.rng import SeedLike, as_generator

HEALTHY, STUCK_OFF, STUCK_ON = 0, 1, 2
SPATIAL_KINDS = ("circular", "circular_complement", "ring", "row", "column", "checkerboard")
KINDS = (*SPATIAL_KINDS, "random", "mixed", "none")
ON_MODES = ("cell", "pattern")
DEFAULT_ON_FRACTION = 0.5

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

_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1
_SEED_BOUND = 1 << 53  # seeds stay exact in any JSON reader (doubles)
_U = tuple(np.uint64(v) for v in (_GOLDEN, _MIX1, _MIX2, 30, 27, 31))


# ----------------------------------------------------------------------------- validation
def _check_kind(kind: str, allowed: Sequence[str] = KINDS) -> str:
    if kind not in allowed:
        raise ConfigError(f"unknown defect kind {kind!r}; valid kinds: {', '.join(allowed)}")
    return kind


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    try:
        m, n = (int(s) for s in shape)
        ok = all(int(s) == s and not isinstance(s, bool) for s in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or m < 1 or n < 1:
        raise ConfigError(f"array shape must be two integers >= 1 (rows, columns), got {shape!r}")
    return m, n


def _check_unit(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return v


def _check_severity(severity: Any) -> tuple[float, float] | None:
    if severity is None:
        return None
    if isinstance(severity, (tuple, list)):
        if len(severity) != 2:
            raise ConfigError(f"severity range must be (lo, hi), got {severity!r}")
        lo, hi = (_check_unit("severity", s) for s in severity)
        if lo > hi:
            raise ConfigError(f"severity range needs lo <= hi, got {severity!r}")
        return lo, hi
    s = _check_unit("severity", severity)
    return s, s


def _check_weights(weights: Mapping[str, float] | None) -> np.ndarray:
    if weights is None:
        return np.linspace(1 / 6, 1, 6)
    for k in weights:
        _check_kind(k, SPATIAL_KINDS)
    w = np.array([float(weights.get(k, 0.0)) for k in SPATIAL_KINDS])
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ConfigError(f"mixed weights must be >= 0 with a positive sum, got {dict(weights)}")
    cum = np.cumsum(w) / w.sum()
    cum[np.flatnonzero(w)[-1]:] = 1.0  # no zero-weight kind can be drawn through round-off
    return cum


# ----------------------------------------------------------------------------- geometry
@lru_cache(maxsize=64)
def _grid(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized cell-centre coordinates: y as (m, 1), x as (1, n)."""
    y = ((np.arange(m) + 0.5) / m).reshape(m, 1)
    x = ((np.arange(n) + 0.5) / n).reshape(1, n)
    y.flags.writeable = x.flags.writeable = False
    return y, x


@lru_cache(maxsize=64)
def _cells(size: int) -> np.ndarray:
    idx = np.arange(size, dtype=np.uint64)
    idx.flags.writeable = False
    return idx


def _dist2(shape: tuple[int, int], cx: float, cy: float) -> np.ndarray:
    y, x = _grid(*shape)
    return (x - cx) ** 2 + (y - cy) ** 2


def _radius_for_count(d2_sorted: np.ndarray, count: int) -> float:
    """A radius whose disk holds exactly the ``count`` nearest cells (midway between them)."""
    if count <= 0:
        return math.sqrt(d2_sorted[0] / 2)
    if count >= d2_sorted.size:
        return math.sqrt(d2_sorted[-1]) + 1.0
    return math.sqrt((d2_sorted[count - 1] + d2_sorted[count]) / 2)


def _checker(shape: tuple[int, int], block: int, phase: Sequence[int]) -> np.ndarray:
    """Colour-0 cells of a block grid anchored at (0, 0) and shifted by ``phase``."""
    a = (np.arange(shape[0]) + phase[0]) // block
    c = (np.arange(shape[1]) + phase[1]) // block
    return (a[:, None] + c[None, :]) % 2 == 0


def _mix64(z: int) -> int:
    """The splitmix64 finaliser on a Python int (exact 64-bit arithmetic)."""
    z = (z + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _bernoulli(seed: int, idx: np.ndarray, stream: int, q: float) -> np.ndarray:
    """Counter-based Bernoulli(q) draws for cells ``idx``: splitmix64(seed, stream, index).

    Pure numpy integer arithmetic (uint64 wraps silently), so a stored seed gives the same
    cells on any numpy version, unlike Generator streams, and costs no Generator set-up.
    """
    if q <= 0.0 or q >= 1.0:
        return np.full(idx.shape, q >= 1.0)
    z = idx.astype(np.uint64)
    z *= _U[0]
    z += np.uint64(_mix64(_mix64(int(seed)) ^ stream))  # well-mixed offset: no overlaps
    z ^= z >> _U[3]
    z *= _U[1]
    z ^= z >> _U[4]
    z *= _U[2]
    z ^= z >> _U[5]
    return z < np.uint64(int(q * (1 << 53)) << 11)  # u < q at 53-bit resolution


def _faulty(kind: str, shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    """Boolean map of faulty cells; trusts ``p``."""
    m, n = shape
    if kind in ("circular", "circular_complement"):
        inside = _dist2(shape, p["cx"], p["cy"]) <= p["radius"] ** 2
        return inside if kind == "circular" else ~inside
    if kind == "ring":
        d2 = _dist2(shape, p["cx"], p["cy"])
        r_in = max(p["radius"] - p["width"], 0.0)
        return (d2 <= p["radius"] ** 2) & (d2 > r_in**2)
    out = np.zeros(shape, dtype=bool)
    if kind == "row":
        out[np.asarray(p["rows"], dtype=np.intp), :] = True
    elif kind == "column":
        out[:, np.asarray(p["columns"], dtype=np.intp)] = True
    elif kind == "checkerboard":
        r0, c0, h, w = p["region"]
        r1, c1 = min(r0 + h, m), min(c0 + w, n)
        if r1 > r0 and c1 > c0:
            out[r0:r1, c0:c1] = _checker((r1 - r0, c1 - c0), p["block"], p["phase"])
    elif kind == "random":
        out = _bernoulli(p["seed"], _cells(m * n), 0, p["density"]).reshape(shape)
    return out


def _build(kind: str, shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    """The int8 mask of validated parameters: faulty cells, then their ON/OFF states."""
    out = np.zeros(shape, dtype=np.int8)
    if kind == "none":
        return out
    faulty = _faulty(kind, shape, p)
    if "state" in p:
        out[faulty] = STUCK_ON if p["state"] == "on" else STUCK_OFF
        return out
    idx = np.flatnonzero(faulty)
    q = p.get("on_fraction", DEFAULT_ON_FRACTION)
    out.flat[idx] = STUCK_OFF + _bernoulli(p.get("seed", 0), idx, 1, q)
    return out


_REQUIRED = {
    "circular": ("cx", "cy", "radius"),
    "circular_complement": ("cx", "cy", "radius"),
    "ring": ("cx", "cy", "radius", "width"),
    "row": ("rows",),
    "column": ("columns",),
    "checkerboard": ("block", "phase", "region"),
    "random": ("density", "seed"),
    "none": (),
}


def _check_params(kind: str, shape: tuple[int, int], params: Mapping[str, Any]) -> dict:
    missing = [k for k in _REQUIRED[kind] if k not in params]
    if missing:
        raise ConfigError(f"{kind} defect needs params {', '.join(_REQUIRED[kind])}; "
                          f"missing: {', '.join(missing)}")
    p = dict(params)
    try:
        for k in ("cx", "cy", "radius", "width"):
            if k in _REQUIRED[kind]:
                p[k] = float(p[k])
                if not math.isfinite(p[k]) or (k in ("radius", "width") and p[k] < 0):
                    raise ValueError(f"{k}={params[k]!r}")
        for key, size in (("rows", shape[0]), ("columns", shape[1])):
            if key in _REQUIRED[kind]:
                p[key] = [int(i) for i in p[key]]
                if any(not 0 <= i < size for i in p[key]):
                    raise ValueError(f"{key} must lie in [0, {size}), got {params[key]!r}")
        if kind == "checkerboard":
            p["block"], p["phase"] = int(p["block"]), [int(v) for v in p["phase"]]
            p["region"] = [int(v) for v in p["region"]]
            if p["block"] < 1 or len(p["phase"]) != 2 or len(p["region"]) != 4 or min(
                    p["phase"] + p["region"]) < 0:
                raise ValueError("need block >= 1, phase [pi, pj] and region "
                                 "[row0, col0, height, width], all >= 0")
        if kind == "random":
            p["density"] = _check_unit("density", p["density"])
        if "seed" in p:
            p["seed"] = int(p["seed"])
            if p["seed"] != params["seed"]:
                raise ValueError(f"seed must be an integer, got {params['seed']!r}")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {kind} defect params {dict(params)!r}: {exc}") from None
    if "state" in p and p["state"] not in ("on", "off"):
        raise ConfigError(f"defect state must be 'on' or 'off', got {p['state']!r}")
    if "on_fraction" in p:
        p["on_fraction"] = _check_unit("on_fraction", p["on_fraction"])
    return p


# ----------------------------------------------------------------------------- public API
def mask(kind: str, shape: Sequence[int], params: Mapping[str, Any]) -> np.ndarray:
    """The stuck-at mask of one pattern: a pure function of its arguments.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`. ``"mixed"`` means "the kind named by ``params['kind']``".
    shape : (int, int)
        Array shape (rows M, columns N), both >= 1.
    params : mapping
        The pattern's parameters, as returned by :func:`sample` or written by hand:
        ``circular``/``circular_complement``: ``cx, cy, radius`` (normalized units);
        ``ring``: ``cx, cy, radius`` (outer), ``width`` (inner radius = radius - width);
        ``row``: ``rows``; ``column``: ``columns`` (cell indices);
        ``checkerboard``: ``block`` (cells), ``phase`` ``[pi, pj]``, ``region``
        ``[row0, col0, height, width]`` (cells, clipped to the array);
        ``random``: ``density``, ``seed``. ON/OFF: ``state`` (``"on"``/``"off"``, the
        whole pattern) or else ``on_fraction`` (default 0.5) with ``seed`` (default 0),
        per cell.

    Returns
    -------
    numpy.ndarray
        ``int8`` array of ``shape``: 0 healthy, 1 stuck OFF, 2 stuck ON.

    Raises
    ------
    ConfigError
        Unknown kind, bad shape, missing or out-of-range parameters.
    """
    shape = _check_shape(shape)
    _check_kind(kind)
    named = params.get("kind", kind)
    if kind == "mixed":
        if named == "mixed":
            raise ConfigError("'mixed' is resolved when sampling; pass the kind it drew "
                              "(params['kind'])")
        kind = _check_kind(named, (*SPATIAL_KINDS, "random", "none"))
    elif named != kind:
        raise ConfigError(f"mask kind {kind!r} does not match params kind {named!r}")
    return _build(kind, shape, _check_params(kind, shape, params))


def _draw_disk(kind: str, shape: tuple[int, int], rng: np.random.Generator,
               k: int | None) -> dict:
    """Centre and radius (and ring width); with a target count ``k``, solved exactly."""
    m, n = shape
    lo, hi = {"circular": CIRCLE_CENTRE, "ring": RING_CENTRE}.get(kind, COMPLEMENT_CENTRE)
    cx, cy = rng.uniform(lo, hi, size=2)
    width = None
    if k is not None:
        d2 = np.sort(_dist2(shape, cx, cy), axis=None)
        if kind == "ring":  # the outer k cells of a disk holding k / area cells
            k_out = min(m * n, math.ceil(k / rng.uniform(*RING_AREA)))
            r = _radius_for_count(d2, k_out)
            width = r - _radius_for_count(d2, k_out - k)
        else:
            r = _radius_for_count(d2, k if kind == "circular" else m * n - k)
    elif kind == "ring":  # at least one cell thick along both axes: a closed wall
        r = rng.uniform(*RING_RADIUS)
        width = min(r, max(rng.uniform(*RING_WIDTH) * r, 1 / m, 1 / n))
    else:
        r = rng.uniform(*(CIRCLE_RADIUS if kind == "circular" else COMPLEMENT_RADIUS))
    p = {"cx": float(cx), "cy": float(cy), "radius": float(r)}
    return p if width is None else {**p, "width": float(width)}


def _draw_checkerboard(shape: tuple[int, int], rng: np.random.Generator,
                       k: int | None) -> dict:
    """Block size, phase and region; with a target count ``k``, the region is solved."""
    m, n = shape
    u = rng.random(7)  # one call; integers are floor(u * range), bias < 1e-12
    b = 1 + int(u[0] * max(1, min(m, n) // 4))
    phase = [int(u[1] * 2 * b), int(u[2] * 2 * b)]
    if k is None:
        h_lo, w_lo = math.ceil(m * CHECKER_REGION), math.ceil(n * CHECKER_REGION)
        h, w = h_lo + int(u[3] * (m + 1 - h_lo)), w_lo + int(u[4] * (n + 1 - w_lo))
    elif k == 0:
        h = w = 0
    else:  # among regions whose count is nearest k (+ slack), the one nearest a drawn aspect
        counts = _checker(shape, b, phase).cumsum(0).cumsum(1)  # [h - 1, w - 1] -> count
        err = np.abs(counts - k)
        hh, ww = np.nonzero(err <= err.min() + math.floor(CHECKER_SLACK * m * n))
        target = (2 * u[3] - 1) * math.log(CHECKER_ASPECT)
        best = int(np.argmin(np.abs(np.log((hh + 1) * n / ((ww + 1) * m)) - target)))
        h, w = int(hh[best]) + 1, int(ww[best]) + 1
    r0, c0 = int(u[5] * (m - h + 1)), int(u[6] * (n - w + 1))
    return {"block": b, "phase": phase, "region": [r0, c0, h, w]}


def _draw(kind: str, shape: tuple[int, int], rng: np.random.Generator,
          sev: tuple[float, float] | None, q: float, on_mode: str) -> dict:
    """Draw the parameters of one pattern (kind already resolved; inputs validated)."""
    if kind == "none":
        return {"kind": "none"}
    m, n = shape
    s = None if sev is None else (sev[0] if sev[0] == sev[1] else rng.uniform(*sev))
    k = None if s is None else round(s * m * n)
    if kind in ("circular", "circular_complement", "ring"):
        p = _draw_disk(kind, shape, rng, k)
    elif kind in ("row", "column"):
        size = m if kind == "row" else n
        count = (round(s * size) if s is not None
                 else 1 + int(rng.random() * max(1, math.ceil(size * LINE_SHARE))))
        p = {kind + "s": sorted(int(i) for i in rng.permutation(size)[:count])}
    elif kind == "checkerboard":
        p = _draw_checkerboard(shape, rng, k)
    else:  # random
        p = {"density": float(s if s is not None else rng.uniform(*RANDOM_DENSITY))}
    seed = int(rng.random() * _SEED_BOUND)  # exactly uniform: random() is k / 2**53
    if on_mode == "pattern":
        state = {"state": "on" if rng.random() < q else "off"}
        return {"kind": kind, **p, **state, **({"seed": seed} if kind == "random" else {})}
    return {"kind": kind, **p, "on_fraction": q, "seed": seed}


def _resolve(kind: str, weights: Mapping[str, float] | None, rng: np.random.Generator) -> str:
    """The kind to draw: ``mixed`` becomes one spatial kind (one uniform draw)."""
    if kind != "mixed":
        return kind
    return SPATIAL_KINDS[int(np.searchsorted(_check_weights(weights), rng.random(), "right"))]


def _check_common(kind: str, on_fraction: float, on_mode: str, severity: Any):
    _check_kind(kind)
    if on_mode not in ON_MODES:
        raise ConfigError(f"on_mode must be one of {', '.join(ON_MODES)}, got {on_mode!r}")
    return _check_unit("on_fraction", on_fraction), _check_severity(severity)


def sample(kind: str, shape: Sequence[int], rng: SeedLike, severity: Any = None,
           on_fraction: float = DEFAULT_ON_FRACTION, *, on_mode: str = "cell",
           weights: Mapping[str, float] | None = None) -> tuple[np.ndarray, dict]:
    """Draw one pattern's random parameters and return its mask and those parameters.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`; ``"mixed"`` draws one of :data:`SPATIAL_KINDS`.
    shape : (int, int)
        Array shape (rows M, columns N).
    rng : None, int, SeedSequence or Generator
        The random stream (a die's stream: :func:`yieldmc.rng.die_generator`).
    severity : None, float or (float, float)
        Target share ``s`` of faulty cells in [0, 1] (a range: drawn uniformly per call).
        Disk kinds get exactly ``round(s * M * N)`` cells, row/column ``round(s * M)``
        lines, checkerboard is within 0.02 (it saturates near 0.5), random has density
        ``s``. ``None`` draws the geometry from the default ranges (docs/defects.md).
    on_fraction : float
        Probability in [0, 1] that a faulty cell (``on_mode="cell"``) or a whole pattern
        (``on_mode="pattern"``) is stuck ON rather than OFF.
    on_mode : {"cell", "pattern"}
        Where the ON/OFF draw happens; per cell by default.
    weights : mapping, optional
        ``mixed`` only: relative weight per spatial kind (missing kinds get 0);
        uniform by default.

    Returns
    -------
    mask : numpy.ndarray
        ``int8`` mask (0 healthy, 1 stuck OFF, 2 stuck ON).
    params : dict
        JSON-serialisable; ``params["kind"]`` is the kind drawn and
        ``mask(params["kind"], shape, params)`` reproduces ``mask`` exactly.

    Raises
    ------
    ConfigError
        Unknown kind, bad shape, severity, on_fraction, on_mode or weights.
    """
    shape = _check_shape(shape)
    q, sev = _check_common(kind, on_fraction, on_mode, severity)
    rng = as_generator(rng)
    kind = _resolve(kind, weights, rng)
    params = _draw(kind, shape, rng, sev, q, on_mode)
    return _build(kind, shape, params), params


def _affected_flags(affected: Any, n_arrays: int) -> list[bool]:
    if affected is None:
        return [True] * n_arrays
    items = list(affected)
    if items and all(isinstance(a, (bool, np.bool_)) for a in items):
        if len(items) != n_arrays:
            raise ConfigError(f"affected has {len(items)} flags for {n_arrays} arrays")
        return [bool(a) for a in items]
    flags = [False] * n_arrays
    for a in items:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool) or not 0 <= a < n_arrays:
            raise ConfigError(f"affected array index must be an int in [0, {n_arrays}), "
                              f"got {a!r}")
        flags[int(a)] = True
    return flags


def sample_die(kind: str, shapes: Sequence[Sequence[int]], rng: SeedLike,
               affected: Any = None, severity: Any = None,
               on_fraction: float = DEFAULT_ON_FRACTION, *, on_mode: str = "cell",
               weights: Mapping[str, float] | None = None) -> tuple[list, list]:
    """Draw the defects of one die: one mask per array.

    For ``mixed`` one kind is drawn per die and shared by its affected arrays. Every
    array then draws its own parameters, in array order, *whether or not it is
    affected*, so an array's pattern does not depend on which other arrays are
    affected (common random numbers across ``affected`` settings).

    Parameters
    ----------
    kind, severity, on_fraction, on_mode, weights
        As in :func:`sample`; a severity range is drawn independently per array.
    shapes : sequence of (int, int)
        Shapes of the die's arrays, in order.
    rng : None, int, SeedSequence or Generator
        The die's stream: ``yieldmc.rng.die_generator(root_seed, die)``.
    affected : None, sequence of int or sequence of bool
        Arrays that receive defects: ``None`` all, else indices or one flag per array.

    Returns
    -------
    masks : list of numpy.ndarray
        One ``int8`` mask per array; all zero for unaffected arrays.
    params : list of dict
        One per array; ``{"kind": "none"}`` for unaffected arrays.
    """
    shapes = [_check_shape(s) for s in shapes]
    q, sev = _check_common(kind, on_fraction, on_mode, severity)
    flags = _affected_flags(affected, len(shapes))
    rng = as_generator(rng)
    kind = _resolve(kind, weights, rng)
    masks, params = [], []
    for shape, hit in zip(shapes, flags, strict=True):
        p = _draw(kind, shape, rng, sev, q, on_mode)
        if not hit:
            p = {"kind": "none"}
        masks.append(_build(p["kind"], shape, p))
        params.append(p)
    return masks, params


def die_label(masks: Sequence[np.ndarray], params: Sequence[Mapping[str, Any]]) -> str:
    """The defect label of a die: the kind of the patterns that hit at least one cell.

    A die with no stuck cell is ``"none"`` whatever was drawn: a severity-0 draw, a
    ``row``/``column`` pattern that rounds to zero lines, an empty checkerboard region or
    a disk between cell centres leave the die defect-free, and labelling it with the kind
    asked for would credit that kind with a perfect die. The parameters themselves are
    kept as drawn (the per-die table's ``defect_params``; docs/defects.md).

    Parameters
    ----------
    masks : sequence of numpy.ndarray
        The die's masks, one per array (as :func:`sample_die` returns them).
    params : sequence of dict
        The matching parameters (``params[i]["kind"]``).

    Returns
    -------
    str
        The kind of the arrays with a stuck cell (:func:`sample_die` draws one kind per
        die; kinds written by hand that differ are joined with ``+`` in sorted order),
        or ``"none"``.

    >>> m, p = sample_die("row", [(8, 8), (8, 8)], 0, severity=0.0)
    >>> p[0]["kind"], p[0]["rows"], die_label(m, p)
    ('row', [], 'none')
    >>> die_label(*sample_die("row", [(8, 8)], 0, severity=0.25))
    'row'
    """
    if len(masks) != len(params):
        raise ConfigError(f"{len(masks)} masks but {len(params)} parameter sets")
    kinds = {p.get("kind", "none") for m, p in zip(masks, params, strict=True) if np.any(m)} - {"none"}
    return "+".join(sorted(kinds)) if kinds else "none"


def apply(G: np.ndarray, mask: np.ndarray, g_on: float, g_off: float) -> np.ndarray:
    """Conductances with stuck cells forced: OFF cells get ``g_off``, ON cells ``g_on``.

    Parameters
    ----------
    G : numpy.ndarray
        Conductances (siemens), any shape; not modified.
    mask : numpy.ndarray
        Integer mask of the same shape with values in {0, 1, 2}.
    g_on, g_off : float
        Conductance (siemens, finite, >= 0) of a stuck ON / stuck OFF cell.

    Returns
    -------
    numpy.ndarray
        A new float64 array; healthy cells keep their value.
    """
    G = np.asarray(G, dtype=np.float64)
    mask = np.asarray(mask)
    if G.shape != mask.shape:
        raise ConfigError(f"mask shape {mask.shape} does not match conductance shape {G.shape}")
    if mask.dtype.kind not in "iub" or mask.size and (mask.min() < 0 or mask.max() > 2):
        raise ConfigError("mask must hold integers 0 (healthy), 1 (stuck OFF), 2 (stuck ON)")
    for name, g in (("g_on", g_on), ("g_off", g_off)):
        if not (math.isfinite(float(g)) and float(g) >= 0):
            raise ConfigError(f"{name} must be a finite conductance >= 0 S, got {g!r}")
    return np.where(mask == STUCK_ON, float(g_on), np.where(mask == STUCK_OFF, float(g_off), G))


def fault_counts(mask: np.ndarray) -> dict:
    """``{"n_stuck_on", "n_stuck_off", "fault_fraction"}`` of one mask (or a stack)."""
    mask = np.asarray(mask)
    on, off = int((mask == STUCK_ON).sum()), int((mask == STUCK_OFF).sum())
    return {"n_stuck_on": on, "n_stuck_off": off, "fault_fraction": (on + off) / max(mask.size, 1)}
