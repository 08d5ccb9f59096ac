"""Spatial stuck-at defect patterns: masks, per-die sampling, and applying them to G.

The kinds themselves (their parameters, draws and cells) are entries of the registry
:data:`yieldmc.defect_kinds.REGISTRY`; this module dispatches through it and adds what
every kind shares: validation, ``mixed`` and ``none``, the ON/OFF draws, the die.

A mask has the array's shape and dtype ``int8``: 0 healthy, 1 stuck OFF (``g_off``),
2 stuck ON (``g_on``). Geometric patterns live in normalized coordinates: the centre of
cell ``(i, j)`` of an ``M x N`` array is ``(x, y) = ((j + 0.5) / N, (i + 0.5) / M)``, so a
"disk" on a 64x16 array is an ellipse four times taller than wide in cell units. Rows,
columns and checkerboard blocks are discrete and given in cell indices. Definitions,
default ranges and their reasons: ``docs/defects.md``. Masks given rather than drawn (their
checks and files) and the canonical, centred placements: :mod:`yieldmc.masks`.

>>> m, p = sample("circular", (8, 8), 0, severity=0.25)
>>> int((m > 0).sum()), p["kind"]
(16, 'circular')
>>> bool((mask(p["kind"], (8, 8), p) == m).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from yieldmc import defect_kinds
from yieldmc.defect_kinds import MIXED, NONE, ON_MODES, SEED_BOUND, bernoulli
from yieldmc.errors import ConfigError
from yieldmc.rng import SeedLike, as_generator

HEALTHY, STUCK_OFF, STUCK_ON = 0, 1, 2
#: The kinds ``mixed`` draws from, and every kind (:mod:`yieldmc.defect_kinds`, as imported).
SPATIAL_KINDS, KINDS = defect_kinds.SPATIAL_KINDS, defect_kinds.KINDS
DEFAULT_ON_FRACTION = 0.5

__all__ = ["DEFAULT_ON_FRACTION", "HEALTHY", "KINDS", "ON_MODES", "SPATIAL_KINDS", "STUCK_OFF", "STUCK_ON",
           "affected_flags", "apply", "check_draw_settings", "check_shape", "check_unit", "die_label",
           "fault_counts", "mask", "mixed_cumulative", "sample", "sample_die", "set_states"]


# ----------------------------------------------------------------------------- validation
def _check_kind(kind: str, allowed: Sequence[str] | None = None) -> str:
    allowed = defect_kinds.REGISTRY.kinds if allowed is None else allowed
    if kind not in allowed:
        raise ConfigError(f"unknown defect kind {kind!r}; valid kinds: {', '.join(allowed)}")
    return kind


def check_shape(shape: Sequence[int]) -> tuple[int, int]:
    """``(rows, columns)`` of an array shape; ConfigError unless two integers >= 1."""
    try:
        m, n = (int(s) for s in shape)
        ok = all(int(s) == s and not isinstance(s, bool) for s in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or m < 1 or n < 1:
        raise ConfigError(f"array shape must be two integers >= 1 (rows, columns), got {shape!r}")
    return m, n


def check_unit(name: str, value: float) -> float:
    """``value`` as a float in [0, 1]; ConfigError naming ``name`` otherwise."""
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
        lo, hi = (check_unit("severity", s) for s in severity)
        if lo > hi:
            raise ConfigError(f"severity range needs lo <= hi, got {severity!r}")
        return lo, hi
    s = check_unit("severity", severity)
    return s, s


def mixed_cumulative(weights: Mapping[str, float] | None) -> np.ndarray:
    """``mixed``'s cumulative weights over the spatial kinds (equal by default).

    Parameters
    ----------
    weights : mapping or None
        Relative weight per spatial kind (missing kinds get 0); ``None``: equal weights.

    Returns
    -------
    numpy.ndarray
        One entry per spatial kind, in order, the last positive one exactly 1.0: the kind
        drawn is the first whose entry exceeds a uniform draw ``u``.
    """
    spatial = defect_kinds.REGISTRY.spatial
    n = len(spatial)
    if weights is None:
        return np.linspace(1 / n, 1, n)
    for k in weights:
        _check_kind(k, spatial)
    w = np.array([float(weights.get(k, 0.0)) for k in spatial])
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ConfigError(f"mixed weights must be >= 0 with a positive sum, got {dict(weights)}")
    cum = np.cumsum(w) / w.sum()
    cum[np.flatnonzero(w)[-1]:] = 1.0  # no zero-weight kind can be drawn through round-off
    return cum


# ----------------------------------------------------------------------------- masks
def _build(kind: str, shape: tuple[int, int], p: Mapping[str, Any]) -> np.ndarray:
    """The int8 mask of validated parameters: faulty cells, then their ON/OFF states."""
    out = np.zeros(shape, dtype=np.int8)
    if kind == NONE:
        return out
    return set_states(out, defect_kinds.REGISTRY.get(kind).cells(shape, p), p)


def set_states(out: np.ndarray, faulty: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """Write the ON/OFF states of the ``faulty`` cells into ``out``: ``p["state"]`` for all,
    else per cell (``on_fraction``, ``seed``: :func:`~yieldmc.defect_kinds.bernoulli`).

    ``p`` is trusted (validated parameters); :mod:`yieldmc.masks` uses it for the
    canonical placements' states."""
    if "state" in p:
        out[faulty] = STUCK_ON if p["state"] == "on" else STUCK_OFF
        return out
    idx = np.flatnonzero(faulty)
    q = p.get("on_fraction", DEFAULT_ON_FRACTION)
    out.flat[idx] = STUCK_OFF + bernoulli(p.get("seed", 0), idx, 1, q)
    return out


def _as_float(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}={value!r}")
    return v


#: Param type -> conversion of a hand-written value (:func:`mask`).
_CONVERT = {"float": _as_float, "int": lambda name, v: int(v),
            "ints": lambda name, v: [int(i) for i in v]}


def _check_params(kind: str, shape: tuple[int, int], params: Mapping[str, Any]) -> dict:
    spec = None if kind == NONE else defect_kinds.REGISTRY.get(kind)
    required = () if spec is None else spec.required
    missing = [k for k in required if k not in params]
    if missing:
        raise ConfigError(f"{kind} defect needs params {', '.join(required)}; "
                          f"missing: {', '.join(missing)}")
    p = dict(params)
    try:
        if spec is not None:
            for prm in spec.params:
                p[prm.name] = _CONVERT[prm.type](prm.name, p[prm.name])
            spec.check(shape, p)
        if "seed" in p:
            p["seed"] = int(p["seed"])
            if p["seed"] != params["seed"]:
                raise ValueError(f"seed must be an integer, got {params['seed']!r}")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {kind} defect params {dict(params)!r}: {exc}") from None
    if "state" in p and p["state"] not in ("on", "off"):
        raise ConfigError(f"defect state must be 'on' or 'off', got {p['state']!r}")
    if "on_fraction" in p:
        p["on_fraction"] = check_unit("on_fraction", p["on_fraction"])
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
        The pattern's parameters, as returned by :func:`sample` or written by hand: the
        kind's (:attr:`yieldmc.defect_kinds.DefectKind.required`, listed in
        docs/defects.md; e.g. ``ring``: ``cx, cy, radius`` (normalized, outer), ``width``),
        and ON/OFF: ``state`` (``"on"``/``"off"``, the whole pattern) or else
        ``on_fraction`` (default 0.5) with ``seed`` (default 0), per cell.

    Returns
    -------
    numpy.ndarray
        ``int8`` array of ``shape``: 0 healthy, 1 stuck OFF, 2 stuck ON.

    Raises
    ------
    ConfigError
        Unknown kind, bad shape, missing or out-of-range parameters.
    """
    shape = check_shape(shape)
    _check_kind(kind)
    named = params.get("kind", kind)
    if kind == MIXED:
        if named == MIXED:
            raise ConfigError("'mixed' is resolved when sampling; pass the kind it drew "
                              "(params['kind'])")
        kind = _check_kind(named, (*defect_kinds.REGISTRY.names, NONE))
    elif named != kind:
        raise ConfigError(f"mask kind {kind!r} does not match params kind {named!r}")
    return _build(kind, shape, _check_params(kind, shape, params))


def _draw(kind: str, shape: tuple[int, int], rng: np.random.Generator,
          sev: tuple[float, float] | None, q: float, on_mode: str) -> dict:
    """Draw the parameters of one pattern (kind already resolved; inputs validated).

    The order of draws: the severity (a range only), the kind's own draws
    (:attr:`~yieldmc.defect_kinds.DefectKind.draw`), the per-cell seed, then, per pattern,
    its ON/OFF state. ``none`` draws nothing.
    """
    if kind == NONE:
        return {"kind": NONE}
    spec = defect_kinds.REGISTRY.get(kind)
    s = None if sev is None else (sev[0] if sev[0] == sev[1] else rng.uniform(*sev))
    p = spec.draw(shape, rng, s)
    seed = int(rng.random() * SEED_BOUND)  # exactly uniform: random() is k / 2**53
    if on_mode == "pattern":
        state = {"state": "on" if rng.random() < q else "off"}
        return {"kind": kind, **p, **state, **({"seed": seed} if spec.cell_seed else {})}
    return {"kind": kind, **p, "on_fraction": q, "seed": seed}


def _resolve(kind: str, weights: Mapping[str, float] | None, rng: np.random.Generator) -> str:
    """The kind to draw: ``mixed`` becomes one spatial kind (one uniform draw)."""
    if kind != MIXED:
        return kind
    spatial = defect_kinds.REGISTRY.spatial
    return spatial[int(np.searchsorted(mixed_cumulative(weights), rng.random(), "right"))]


def check_draw_settings(kind: str, on_fraction: float, on_mode: str,
                        severity: Any) -> tuple[float, tuple[float, float] | None]:
    """Validate the settings of :func:`sample_die` shared by every die.

    Returns
    -------
    (float, (float, float) or None)
        ``on_fraction`` and the severity range (``None``: default ranges).

    Raises
    ------
    ConfigError
        Unknown kind, bad ``on_fraction``, ``on_mode`` or ``severity``.
    """
    _check_kind(kind)
    if on_mode not in ON_MODES:
        raise ConfigError(f"on_mode must be one of {', '.join(ON_MODES)}, got {on_mode!r}")
    return check_unit("on_fraction", on_fraction), _check_severity(severity)


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
    shape = check_shape(shape)
    q, sev = check_draw_settings(kind, on_fraction, on_mode, severity)
    rng = as_generator(rng)
    kind = _resolve(kind, weights, rng)
    params = _draw(kind, shape, rng, sev, q, on_mode)
    return _build(kind, shape, params), params


def affected_flags(affected: Any, n_arrays: int) -> list[bool]:
    """One flag per array: does it receive defects (``affected`` as :func:`sample_die`
    takes it)."""
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
    shapes = [check_shape(s) for s in shapes]
    q, sev = check_draw_settings(kind, on_fraction, on_mode, severity)
    flags = affected_flags(affected, len(shapes))
    rng = as_generator(rng)
    kind = _resolve(kind, weights, rng)
    masks, params = [], []
    for shape, hit in zip(shapes, flags, strict=True):
        p = _draw(kind, shape, rng, sev, q, on_mode)
        if not hit:
            p = {"kind": NONE}
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
