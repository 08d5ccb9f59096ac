"""Wafers, lots and the defect-density hierarchy that puts defects on their dies.

Geometry (:class:`WaferSpec`, :func:`die_sites`): rectangular dies on a regular grid whose
central die is centred on the wafer centre. The die at grid column ``x`` and row ``y`` has
its centre at ``((x - hx) w, (y - hy) h)`` mm, ``hx, hy`` the grid's half widths in dies;
it lies on the wafer when its four corners lie within the usable radius
``R = diameter / 2 - edge_exclusion``. The grid is the bounding box of those dies, so
``x`` runs over ``0 .. 2 hx`` and ``y`` over ``0 .. 2 hy``; sites are numbered row-major
(by ``y``, then ``x``), and that number is the die's index ``die`` within its wafer.

Defects (:class:`DensitySpec`), per level of the fab's hierarchy (docs/wafer.md):

* lot ``l``: a multiplier ``M_l ~ Gamma(lot_alpha, 1 / lot_alpha)`` (mean 1; 1 when
  ``lot_alpha`` is None);
* wafer ``w``: a background density ``D_w ~ Gamma(alpha, D0 M_l / alpha)`` per cm^2 (mean
  ``D0 M_l``; exactly ``D0 M_l`` when ``alpha`` is None or inf), and, with probability
  ``signature_prob``, a spatial signature ``s(x, y)`` in {0, 1} drawn at a random place;
* die: expected defects ``lambda = D_w (1 + strength s) A``, ``A`` the die area in cm^2,
  and a defect count ``n ~ Poisson(lambda)``.

With Poisson counts and a gamma density per wafer, the dies' counts are negative-binomial
(Stapper's clustering model) with mean ``D0 A`` and variance ``D0 A + (D0 A)^2 / alpha``.

Random streams (counter-based; docs/wafer.md): the lot's multiplier comes from
``numpy.random.default_rng([seed, TAG_LOT, lot])``, the wafer's density and signature from
``default_rng([seed, TAG_WAFER, lot, wafer])``. Die ``d``'s count is the Poisson inverse
CDF of one uniform from ``Philox`` keyed by ``SeedSequence([seed, TAG_DIE, lot,
wafer]).generate_state(2, uint64)`` at counter block ``d`` (its first 64-bit word), so a
die's count depends on nothing but ``(seed, lot, wafer, d)``: not on which other dies are
sampled, nor on chunking. :func:`die_rng` gives a die its own Generator for further draws.

>>> spec = WaferSpec(diameter_mm=100, die_w_mm=10, die_h_mm=10, edge_exclusion_mm=3)
>>> sites = die_sites(spec)
>>> len(sites), spec.grid_shape
(49, (9, 9))
>>> rows = sample_lots(spec, DensitySpec(d0=0.5, alpha=2.0), n_lots=1, n_wafers=2, seed=1)
>>> len(rows), list(rows.columns[:4])
(98, ['lot', 'slot', 'wafer', 'die'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _sps

from yieldmc.errors import ConfigError

#: Spatial signatures a wafer can carry (WM-811K's classes: docs/wafer.md).
SIGNATURES = ("none", "center", "edge_ring", "donut", "local", "scratch", "random")
#: Stream tags: the second entry of every seed list, one per level.
#: ``TAG_ARRAYS``: which arrays a die's defects hit (:func:`yieldmc.waferdies.array_uniforms`).
TAG_LOT, TAG_WAFER, TAG_DIE, TAG_DIE_RNG, TAG_ARRAYS = 1, 2, 3, 4, 5
#: Signature geometry, as fractions of the usable radius R (die centres).
CENTER_RADIUS = 0.35  # center: r <= 0.35 R
DONUT_RADII = (0.45, 0.70)  # donut: 0.45 R <= r <= 0.70 R
EDGE_RING_INNER = 0.85  # edge ring: r >= 0.85 R
LOCAL_RADIUS, LOCAL_REACH = 0.20, 0.75  # local: disc of radius 0.2 R, centre within 0.75 R
SCRATCH_REACH = 0.80  # scratch: a chord at distance <= 0.8 R from the centre
#: A die is "within" the usable radius up to this rounding slack (mm).
EPS_MM = 1e-9
#: Columns of :func:`sample_wafer` / :func:`sample_lots`: name -> (dtype, unit, description).
DIE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "lot": ("int64", "", "lot index"),
    "slot": ("int64", "", "wafer's position within its lot (0 .. n_wafers - 1)"),
    "wafer": ("int64", "", "wafer id, unique over lots: lot * n_wafers + slot"),
    "die": ("int64", "", "site index within the wafer (row-major by y, then x)"),
    "x": ("int64", "", "die grid column"),
    "y": ("int64", "", "die grid row"),
    "cx_mm": ("float64", "mm", "die centre, x, from the wafer centre"),
    "cy_mm": ("float64", "mm", "die centre, y, from the wafer centre"),
    "r_mm": ("float64", "mm", "distance of the die centre from the wafer centre"),
    "signature": ("str", "", "the wafer's spatial signature ('none' if it carries none)"),
    "expected_defects": ("float64", "defects", "lambda = local density x die area"),
    "n_defects": ("int64", "defects", "killer defects on the die, ~ Poisson(lambda)"),
}


def _number(name: str, value: Any, *, low: float = 0.0, strict: bool = True, inf_ok: bool = False) -> float:
    """``value`` as a float above ``low`` (``>= low`` when not ``strict``), else ConfigError."""
    try:
        v = float(value)
        ok = not isinstance(value, bool) and not math.isnan(v) and (inf_ok or math.isfinite(v))
    except (TypeError, ValueError):
        v, ok = math.nan, False
    if not ok or (v <= low if strict else v < low):
        rel = ">" if strict else ">="
        raise ConfigError(f"{name} must be a {'number' if inf_ok else 'finite number'} {rel} {low:g}, "
                          f"got {value!r}")
    return v


def _index(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class WaferSpec:
    """A wafer and its die grid.

    Attributes
    ----------
    diameter_mm : float
        Wafer diameter (mm). Default 300.
    die_w_mm, die_h_mm : float
        Die width (x) and height (y), scribe lanes included (mm). Default 10 x 10.
    edge_exclusion_mm : float
        Ring at the wafer's edge where no die may lie (mm). Default 3.
    """

    diameter_mm: float = 300.0
    die_w_mm: float = 10.0
    die_h_mm: float = 10.0
    edge_exclusion_mm: float = 3.0

    def __post_init__(self) -> None:
        for name in ("diameter_mm", "die_w_mm", "die_h_mm"):
            object.__setattr__(self, name, _number(f"wafer.{name}", getattr(self, name)))
        object.__setattr__(self, "edge_exclusion_mm",
                           _number("wafer.edge_exclusion_mm", self.edge_exclusion_mm, strict=False))
        r = self.usable_radius_mm
        if math.hypot(self.die_w_mm / 2, self.die_h_mm / 2) > r + EPS_MM:
            raise ConfigError(f"wafer smaller than a die: a {self.die_w_mm:g} x {self.die_h_mm:g} mm die does not "
                              f"fit within the usable radius {r:g} mm (wafer.diameter_mm / 2 - "
                              "wafer.edge_exclusion_mm)")

    @property
    def usable_radius_mm(self) -> float:
        """``diameter_mm / 2 - edge_exclusion_mm`` (mm)."""
        return self.diameter_mm / 2 - self.edge_exclusion_mm

    @property
    def die_area_cm2(self) -> float:
        """Die area ``die_w_mm * die_h_mm / 100`` (cm^2)."""
        return self.die_w_mm * self.die_h_mm / 100.0

    @property
    def half_grid(self) -> tuple[int, int]:
        """``(hx, hy)``: dies on either side of the central column and row of the grid."""
        r, w, h = self.usable_radius_mm + EPS_MM, self.die_w_mm, self.die_h_mm
        hx = math.floor((math.sqrt(r * r - h * h / 4) - w / 2) / w)
        hy = math.floor((math.sqrt(r * r - w * w / 4) - h / 2) / h)
        return hx, hy

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of the die grid: ``(2 hy + 1, 2 hx + 1)``."""
        hx, hy = self.half_grid
        return 2 * hy + 1, 2 * hx + 1


@lru_cache(maxsize=32)
def _sites(spec: WaferSpec) -> dict[str, np.ndarray]:
    hx, hy = spec.half_grid
    ny, nx = spec.grid_shape
    y, x = np.divmod(np.arange(ny * nx), nx)
    cx, cy = (x - hx) * spec.die_w_mm, (y - hy) * spec.die_h_mm
    far_x, far_y = np.abs(cx) + spec.die_w_mm / 2, np.abs(cy) + spec.die_h_mm / 2  # the farthest corner
    on = np.hypot(far_x, far_y) <= spec.usable_radius_mm + EPS_MM
    out = {"x": x[on], "y": y[on], "cx_mm": cx[on], "cy_mm": cy[on], "r_mm": np.hypot(cx[on], cy[on])}
    for v in out.values():
        v.setflags(write=False)
    return out


def die_sites(spec: WaferSpec) -> pd.DataFrame:
    """The dies of one wafer, row-major by ``y`` then ``x``.

    Parameters
    ----------
    spec : WaferSpec
        Wafer and die sizes.

    Returns
    -------
    pandas.DataFrame
        One row per die: ``die`` (site index 0..n-1), ``x``, ``y`` (grid column and row),
        ``cx_mm``, ``cy_mm`` (die centre from the wafer centre, mm) and ``r_mm`` (its
        distance from the wafer centre, mm).

    Examples
    --------
    >>> s = die_sites(WaferSpec())
    >>> len(s), bool((s.r_mm < 147).all())
    (621, True)
    """
    s = _sites(spec)
    return pd.DataFrame({"die": np.arange(len(s["x"])), **{k: v.copy() for k, v in s.items()}})


@dataclass(frozen=True)
class DensitySpec:
    """Killer-defect density and its clustering over lots, wafers and die positions.

    Attributes
    ----------
    d0 : float
        Mean background defect density (defects per cm^2). Default 0.1.
    alpha : float or None
        Clustering shape of the per-wafer density (Gamma shape; > 0). Small values cluster
        defects strongly (negative-binomial counts); None or inf: no clustering (Poisson).
        Default 2.
    lot_alpha : float or None
        Gamma shape of the per-lot multiplier (mean 1, variance ``1 / lot_alpha``); None or
        inf (the default): every lot alike.
    signature : str
        Spatial signature (:data:`SIGNATURES`): ``"none"``, ``"center"``, ``"edge_ring"``,
        ``"donut"``, ``"local"`` (a disc at a random place), ``"scratch"`` (a thin random
        chord) or ``"random"`` (the whole wafer). Default ``"none"``.
    strength : float
        Density inside the signature is ``(1 + strength)`` times the background (>= 0).
        Default 5.
    signature_prob : float
        Share of wafers that carry the signature, in [0, 1]. Default 1.
    """

    d0: float = 0.1
    alpha: float | None = 2.0
    lot_alpha: float | None = None
    signature: str = "none"
    strength: float = 5.0
    signature_prob: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "d0", _number("density.d0", self.d0, strict=False))
        for name in ("alpha", "lot_alpha"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _number(f"density.{name}", v, inf_ok=True))
        if self.signature not in SIGNATURES:
            raise ConfigError(f"unknown density.signature {self.signature!r}; valid signatures: "
                              f"{', '.join(SIGNATURES)}")
        object.__setattr__(self, "strength", _number("density.strength", self.strength, strict=False))
        p = _number("density.signature_prob", self.signature_prob, strict=False)
        if p > 1:
            raise ConfigError(f"density.signature_prob must lie in [0, 1], got {self.signature_prob!r}")
        object.__setattr__(self, "signature_prob", p)

    @property
    def clustered(self) -> bool:
        """Whether wafers' densities vary (``alpha`` finite)."""
        return self.alpha is not None and math.isfinite(self.alpha)


@dataclass(frozen=True)
class WaferDraw:
    """What the wafer-level streams drew for one wafer.

    Attributes
    ----------
    lot, wafer : int
        Stream indices.
    lot_multiplier : float
        The lot's density multiplier (1 without lot variation).
    density_cm2 : float
        The wafer's background density ``D_w`` (defects per cm^2).
    signature : str
        The signature the wafer carries (``"none"`` when it drew none).
    params : tuple of float
        Signature placement in mm: ``(cx, cy)`` of a local cluster, ``(nx, ny, d)`` of a
        scratch (unit normal and distance of its line from the centre); empty otherwise.
    """

    lot: int
    wafer: int
    lot_multiplier: float
    density_cm2: float
    signature: str
    params: tuple[float, ...] = ()


def _check_seed(seed: Any) -> int:
    return _index("seed", seed)


def lot_multiplier(density: DensitySpec, seed: int, lot: int) -> float:
    """The density multiplier of lot ``lot`` (mean 1), from ``default_rng([seed, TAG_LOT, lot])``."""
    seed, lot = _check_seed(seed), _index("lot", lot)
    if density.lot_alpha is None or not math.isfinite(density.lot_alpha):
        return 1.0
    rng = np.random.default_rng([seed, TAG_LOT, lot])
    return float(rng.gamma(density.lot_alpha, 1.0 / density.lot_alpha))


def draw_wafer(spec: WaferSpec, density: DensitySpec, seed: int, lot: int, wafer: int) -> WaferDraw:
    """Draw wafer ``wafer`` of lot ``lot``: its background density and its signature.

    The draws come from ``default_rng([seed, TAG_WAFER, lot, wafer])`` in this order: the
    gamma density (when clustered), one uniform deciding whether the signature is present,
    two uniforms placing it.
    """
    seed, lot, wafer = _check_seed(seed), _index("lot", lot), _index("wafer", wafer)
    mult = lot_multiplier(density, seed, lot)
    mean = density.d0 * mult
    rng = np.random.default_rng([seed, TAG_WAFER, lot, wafer])
    d_w = float(rng.gamma(density.alpha, mean / density.alpha)) if density.clustered and mean > 0 else mean
    present, u1, u2 = rng.random(3)
    name = density.signature if present < density.signature_prob else "none"
    r = spec.usable_radius_mm
    params: tuple[float, ...] = ()
    if name == "local":  # uniform over the disc of radius LOCAL_REACH R
        rho, phi = LOCAL_REACH * r * math.sqrt(u1), 2 * math.pi * u2
        params = (rho * math.cos(phi), rho * math.sin(phi))
    elif name == "scratch":  # the line {p : p . n = d}
        phi = 2 * math.pi * u2
        params = (math.cos(phi), math.sin(phi), SCRATCH_REACH * r * u1)
    return WaferDraw(lot, wafer, mult, d_w, name, params)


def signature_mask(spec: WaferSpec, draw: WaferDraw, sites: pd.DataFrame | None = None) -> np.ndarray:
    """Which dies lie in the wafer's signature (bool per site of :func:`die_sites`)."""
    s = _sites(spec) if sites is None else sites
    cx, cy, rr = (np.asarray(s[k], dtype=float) for k in ("cx_mm", "cy_mm", "r_mm"))
    u = rr / spec.usable_radius_mm
    name = draw.signature
    if name == "none":
        return np.zeros(len(u), dtype=bool)
    if name == "random":
        return np.ones(len(u), dtype=bool)
    if name == "center":
        return u <= CENTER_RADIUS
    if name == "donut":
        return (u >= DONUT_RADII[0]) & (u <= DONUT_RADII[1])
    if name == "edge_ring":
        return u >= EDGE_RING_INNER
    if name == "local":
        px, py = draw.params
        return np.hypot(cx - px, cy - py) <= LOCAL_RADIUS * spec.usable_radius_mm
    nx_, ny_, d = draw.params  # scratch: about one die wide, never gapped
    return np.abs(cx * nx_ + cy * ny_ - d) <= max(spec.die_w_mm, spec.die_h_mm) / 2


def expected_defects(spec: WaferSpec, density: DensitySpec, draw: WaferDraw) -> np.ndarray:
    """Expected killer defects per die of the wafer ``draw`` (one value per site)."""
    boost = 1.0 + density.strength * signature_mask(spec, draw)
    return draw.density_cm2 * boost * spec.die_area_cm2


def site_uniforms(seed: int, tag: int, lot: int, wafer: int, sites: Any, n: int = 1) -> np.ndarray:
    """``n`` uniforms in (0, 1) per die site of one wafer, a pure function of ``(seed, tag,
    lot, wafer, site)``: Philox keyed by ``SeedSequence([seed, tag, lot, wafer])``, site
    ``s`` reading counter blocks ``s * ceil(n / 4)`` onwards (53-bit, centred:
    ``(k + 0.5) 2**-53``), so any subset of sites, in any order, gets the same numbers.

    Returns
    -------
    numpy.ndarray, shape (len(sites), n)
    """
    sites = np.asarray(sites, dtype=np.int64)
    if sites.size == 0 or n == 0:
        return np.empty((sites.size, n))
    key = np.random.SeedSequence([seed, tag, lot, wafer]).generate_state(2, np.uint64)
    blocks = -(-n // 4)
    lo, hi = int(sites.min()), int(sites.max())
    raw = np.random.Philox(key=key, counter=lo * blocks).random_raw(4 * blocks * (hi - lo + 1))
    raw = raw.reshape(hi - lo + 1, 4 * blocks)[sites - lo, :n]
    return ((raw >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def die_rng(seed: int, lot: int, wafer: int, die: int) -> np.random.Generator:
    """A die's own Generator, ``default_rng([seed, TAG_DIE_RNG, lot, wafer, die])``, for
    whatever else a die draws (e.g. where its defects lie); independent of its count."""
    return np.random.default_rng([_check_seed(seed), TAG_DIE_RNG, _index("lot", lot), _index("wafer", wafer),
                                  _index("die", die)])


def sample_wafer(spec: WaferSpec, density: DensitySpec, seed: int, lot: int, wafer: int,
                 dies: Any = None, *, slot: int | None = None) -> pd.DataFrame:
    """Per-die rows of one wafer (columns :data:`DIE_COLUMNS`).

    Parameters
    ----------
    spec, density : WaferSpec, DensitySpec
        Geometry and defect density.
    seed, lot, wafer : int
        Root seed and stream indices (>= 0).
    dies : array_like of int, optional
        Site indices to sample (default: all). Each die's row is the same whichever dies
        are sampled with it.
    slot : int, optional
        Wafer's position in its lot, recorded in ``slot`` (default: ``wafer``).

    Examples
    --------
    >>> spec, dens = WaferSpec(diameter_mm=100), DensitySpec(d0=1.0)
    >>> a = sample_wafer(spec, dens, seed=3, lot=0, wafer=5)
    >>> b = sample_wafer(spec, dens, seed=3, lot=0, wafer=5, dies=[7, 2])
    >>> a.n_defects.iloc[[7, 2]].tolist() == b.n_defects.tolist()
    True
    """
    return pd.DataFrame(_wafer_columns(spec, density, _check_seed(seed), _index("lot", lot), _index("wafer", wafer),
                                       dies, wafer if slot is None else slot))


def _wafer_columns(spec: WaferSpec, density: DensitySpec, seed: int, lot: int, wafer: int, dies: Any,
                   slot: int) -> dict[str, np.ndarray]:
    """The columns of :func:`sample_wafer` as arrays."""
    s = _sites(spec)
    n_sites = len(s["x"])
    idx = np.arange(n_sites) if dies is None else np.asarray(dies, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n_sites):
        raise ConfigError(f"die indices must lie in [0, {n_sites - 1}] for this wafer, got {idx.min()}..{idx.max()}")
    draw = draw_wafer(spec, density, seed, lot, wafer)
    lam = expected_defects(spec, density, draw)[idx]
    u = site_uniforms(seed, TAG_DIE, lot, wafer, idx)[:, 0]
    counts = np.where(lam > 0, _sps.poisson.ppf(u, np.maximum(lam, 1e-300)), 0.0).astype(np.int64)
    n = len(idx)
    return {"lot": np.full(n, lot, dtype=np.int64), "slot": np.full(n, slot, dtype=np.int64),
            "wafer": np.full(n, wafer, dtype=np.int64), "die": idx,
            **{k: s[k][idx] for k in ("x", "y", "cx_mm", "cy_mm", "r_mm")},
            "signature": np.full(n, draw.signature, dtype=object), "expected_defects": lam, "n_defects": counts}


def sample_lots(spec: WaferSpec, density: DensitySpec, n_lots: int, n_wafers: int, seed: int) -> pd.DataFrame:
    """Per-die rows of ``n_lots`` lots of ``n_wafers`` wafers each.

    Wafer ``slot`` of lot ``lot`` gets the id ``wafer = lot * n_wafers + slot``, unique over
    the lots, and its streams are keyed by ``(seed, lot, wafer)``.

    Parameters
    ----------
    spec, density : WaferSpec, DensitySpec
        Geometry and defect density.
    n_lots, n_wafers : int
        Lots, and wafers per lot (>= 1; a FOUP holds 25).
    seed : int
        Root seed (>= 0).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DIE_COLUMNS`, ordered by lot, slot, die.
    """
    seed = _check_seed(seed)
    if _index("n_lots", n_lots) < 1 or _index("n_wafers", n_wafers) < 1:
        raise ConfigError(f"n_lots and n_wafers must be >= 1, got {n_lots} and {n_wafers}")
    parts = [_wafer_columns(spec, density, seed, lot, lot * n_wafers + slot, None, slot)
             for lot in range(n_lots) for slot in range(n_wafers)]
    return pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in DIE_COLUMNS})
