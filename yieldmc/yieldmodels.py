"""Classical die-yield models, fitted by maximum likelihood, and Stapper's window method.

With ``lambda = D0 A`` expected killer defects per die (``D0`` per cm^2, ``A`` in cm^2):

* Poisson: ``Y = exp(-lambda)`` (random, unclustered defects);
* Murphy (1964): ``Y = ((1 - exp(-lambda)) / lambda)^2`` (triangular density distribution);
* Seeds (1967): ``Y = 1 / (1 + lambda)`` (exponential density distribution);
* negative binomial (Stapper): ``Y = (1 + lambda / alpha)^-alpha`` (gamma-distributed density
  of shape ``alpha``; Poisson as ``alpha -> inf``, Seeds at ``alpha = 1``).

Likelihoods (docs/wafer.md explains them), all of the dies' individual outcomes, so AICs
compare across models:

* :func:`fit_pass_fail`, Poisson / Murphy / Seeds: dies pass independently with probability
  ``Y(D0 A)``; the MLE is ``Y^-1(k / n)``, the interval the binomial likelihood-ratio (LR)
  interval of ``Y`` mapped through ``Y^-1``.
* :func:`fit_pass_fail`, negative binomial: wafer ``w``'s density ``D ~ Gamma(alpha, D0 /
  alpha)`` is shared by its dies, so a wafer with ``k`` of ``n`` dies passing contributes
  ``log E[p^k (1 - p)^(n - k)]``, ``p = exp(-D A)`` (:func:`nb_wafer_loglik`).
* :func:`fit_counts`: Poisson counts given the density (LR interval); with the density
  gamma per wafer (or per die when no wafers are given), the closed-form negative multinomial.

Negative-binomial intervals: Wald on the log scale from the observed Fisher information
(numerical Hessian in ``(log D0, log alpha)``; ``ci="wald"``) or profile likelihood
(``ci="profile"``). Where the likelihood is flat towards no clustering (a Wald ``alpha``
interval past :data:`ALPHA_MAX`) the profile interval is used; an ``alpha`` estimate at
:data:`ALPHA_MAX` is reported as ``inf``, an upper bound past it as ``inf``.

>>> round(float(seeds_yield(0.5, 2.0)), 6), round(float(negbin_yield(0.5, 2.0, alpha=1.0)), 6)
(0.5, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize as _opt
from scipy import special as _sp
from scipy import stats as _sps

from yieldmc.errors import ConfigError

MODELS = ("poisson", "murphy", "seeds", "negbin")
CiMethod = Literal["wald", "profile"]
#: Search range of the clustering shape alpha; an estimate at the top reads "no clustering".
ALPHA_MIN, ALPHA_MAX = 1e-3, 1e6
#: Quadrature of :func:`nb_wafer_loglik`: nodes per section, drop (nats) bounding the range,
#: Laplace widths of the inner cuts, solver steps, the range of ``log x`` (no under/overflow).
QUAD_NODES, DROP, SPLIT, BISECT_STEPS, NEWTON_STEPS = 24, 40.0, 3.0, 32, 10
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(QUAD_NODES)
_GL_LOG_WEIGHTS = np.log(_GL_WEIGHTS)
V_MIN, V_MAX = -700.0, 700.0
#: Step of the numerical Hessian on the log-parameter scale.
HESSIAN_STEP = 1e-3
NAN2 = (math.nan, math.nan)


def _lam(d0: Any, area: Any) -> np.ndarray:
    return np.asarray(d0, dtype=float) * np.asarray(area, dtype=float)


def poisson_yield(d0: Any, area: Any) -> np.ndarray:
    """Poisson yield ``exp(-D0 A)`` (``d0`` per cm^2, ``area`` in cm^2)."""
    return np.exp(-_lam(d0, area))


def murphy_yield(d0: Any, area: Any) -> np.ndarray:
    """Murphy's yield ``((1 - exp(-D0 A)) / (D0 A))^2`` (1 at ``D0 A = 0``)."""
    lam = _lam(d0, area)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = (-np.expm1(-lam) / lam) ** 2
    return np.where(lam == 0, 1.0, y)


def seeds_yield(d0: Any, area: Any) -> np.ndarray:
    """Seeds' yield ``1 / (1 + D0 A)``."""
    return 1.0 / (1.0 + _lam(d0, area))


def negbin_yield(d0: Any, area: Any, alpha: float | None) -> np.ndarray:
    """Negative-binomial yield ``(1 + D0 A / alpha)^-alpha``; Poisson when ``alpha`` is None or inf."""
    if alpha is None or not math.isfinite(alpha):
        return poisson_yield(d0, area)
    return np.exp(-alpha * np.log1p(_lam(d0, area) / alpha))


def model_yield(model: str, d0: Any, area: Any, alpha: float | None = None) -> np.ndarray:
    """Yield of ``model`` (one of :data:`MODELS`); ``alpha`` is used by ``"negbin"`` only."""
    if model == "negbin":
        return negbin_yield(d0, area, alpha)
    funcs = {"poisson": poisson_yield, "murphy": murphy_yield, "seeds": seeds_yield}
    if model not in funcs:
        raise ConfigError(f"unknown yield model {model!r}; valid models: {', '.join(MODELS)}")
    return funcs[model](d0, area)


def _lambda_for_yield(model: str, y: float) -> float:
    """``lambda`` with ``Y(lambda) = y`` for a one-parameter model (inf at y = 0)."""
    if y >= 1.0:
        return 0.0
    if y <= 0.0:
        return math.inf
    if model == "poisson":
        return -math.log(y)
    if model == "seeds":
        return 1.0 / y - 1.0
    hi = 1.0  # murphy: decreasing from 1 to 0; Y ~ 1 / lambda^2 for large lambda
    while float(murphy_yield(hi, 1.0)) > y:
        hi *= 2.0
    return _opt.brentq(lambda t: float(murphy_yield(t, 1.0)) - y, 0.0, hi, xtol=1e-14, rtol=1e-14)


@dataclass(frozen=True)
class YieldFit:
    """One model fitted to dies.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    d0, d0_ci : float, tuple of float
        Defect density estimate and its confidence interval (defects per cm^2).
    alpha, alpha_ci : float, tuple of float
        Clustering shape and its interval (negative binomial; ``inf`` = no detectable
        clustering); NaN for the one-parameter models.
    loglik, aic : float
        Maximised log-likelihood of the dies' outcomes; ``2 k - 2 loglik`` (``k`` parameters).
    n, n_groups : int
        Dies; wafers sharing a density (dies, when no wafers were given).
    area_cm2 : float
        Die area (cm^2).
    data : str
        ``"pass_fail"`` or ``"counts"``.
    ci_method : str
        ``"lr"`` (likelihood ratio), ``"wald"`` (log scale), ``"profile"``, or ``"none"``
        when the data say nothing (every die passes or fails; every count is 0).
    confidence : float
        Two-sided confidence level of the intervals.
    """

    model: str
    d0: float
    d0_ci: tuple[float, float]
    alpha: float
    alpha_ci: tuple[float, float]
    loglik: float
    aic: float
    n: int
    n_groups: int
    area_cm2: float
    data: str
    ci_method: str
    confidence: float = 0.95

    def predict(self, area: Any) -> np.ndarray:
        """The fitted model's yield for dies of ``area`` cm^2."""
        return model_yield(self.model, self.d0, area, self.alpha)


def fits_table(fits: Mapping[str, YieldFit]) -> pd.DataFrame:
    """The fits as a table, one row per model, sorted by AIC (best first)."""
    rows = [{"model": f.model, "d0": f.d0, "d0_lo": f.d0_ci[0], "d0_hi": f.d0_ci[1], "alpha": f.alpha,
             "alpha_lo": f.alpha_ci[0], "alpha_hi": f.alpha_ci[1], "loglik": f.loglik, "aic": f.aic,
             "n": f.n, "n_groups": f.n_groups, "yield": float(f.predict(f.area_cm2))} for f in fits.values()]
    return pd.DataFrame(rows).sort_values("aic", kind="stable", ignore_index=True)


def _check_area(area: Any) -> float:
    a = float(area) if isinstance(area, (int, float, np.number)) and not isinstance(area, bool) else math.nan
    if not (math.isfinite(a) and a > 0):
        raise ConfigError(f"area must be a positive die area in cm^2, got {area!r}")
    return a


def _check_confidence(confidence: float) -> float:
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _groups(n: int, wafer: Any) -> tuple[np.ndarray, int]:
    """Group codes 0..g-1 per die (each die its own group when ``wafer`` is None)."""
    if wafer is None:
        return np.arange(n), n
    w = np.asarray(wafer).reshape(-1)
    if len(w) != n:
        raise ConfigError(f"wafer must give one label per die: {len(w)} labels for {n} dies")
    codes, uniq = pd.factorize(w, sort=True)
    return codes, len(uniq)


def _hessian(f, x: np.ndarray, h: float = HESSIAN_STEP) -> np.ndarray:
    """Central-difference Hessian of ``f`` at the 2-vector ``x``."""
    e0, e1 = np.array([h, 0.0]), np.array([0.0, h])
    f0 = f(x)
    h00 = (f(x + e0) - 2 * f0 + f(x - e0)) / h**2
    h11 = (f(x + e1) - 2 * f0 + f(x - e1)) / h**2
    h01 = (f(x + e0 + e1) - f(x + e0 - e1) - f(x - e0 + e1) + f(x - e0 - e1)) / (4 * h * h)
    return np.array([[h00, h01], [h01, h11]])


def _profile_interval(nll, theta: np.ndarray, i: int, nll_hat: float, crit: float, bounds) -> tuple[float, float]:
    """Profile-likelihood interval of ``theta[i]`` (log scale); the other parameter is maximised."""
    j = 1 - i

    def excess(v: float) -> float:
        def f(w: float) -> float:
            t = theta.copy()
            t[i], t[j] = v, w
            return nll(t)
        lo, hi = max(bounds[j][0], theta[j] - 6.0), min(bounds[j][1], theta[j] + 6.0)
        return 2.0 * (_opt.minimize_scalar(f, bounds=(lo, hi), method="bounded").fun - nll_hat) - crit

    ends = []
    for sign, limit in ((-1.0, bounds[i][0]), (1.0, bounds[i][1])):
        step, inner, outer = 0.25, theta[i], theta[i]
        while True:
            outer = min(max(inner + sign * step, bounds[i][0]), bounds[i][1])
            if excess(outer) > 0:
                ends.append(_opt.brentq(excess, min(inner, outer), max(inner, outer), xtol=1e-6)
                            if excess(inner) < 0 else inner)
                break
            if outer == limit:
                ends.append(-math.inf if sign < 0 else math.inf)
                break
            inner, step = outer, step * 2.0
    return ends[0], ends[1]


def _two_param_fit(nll, start_d0, ci: CiMethod, crit: float, z: float):
    """(d0, d0_ci, alpha, alpha_ci, loglik, ci_method) of a negative-binomial likelihood in
    (log d0, log alpha); profile intervals whenever alpha sits at ALPHA_MAX. The search
    starts from the best of alpha = 1, 12, 400 with d0 = ``start_d0(alpha)``."""
    la_lo, la_hi = math.log(ALPHA_MIN), math.log(ALPHA_MAX)
    ld0 = math.log(start_d0(400.0))
    bounds = [(ld0 - 25.0, ld0 + 25.0), (la_lo, la_hi)]
    starts = [np.array([math.log(start_d0(a)), math.log(a)]) for a in (1.0, 12.0, 400.0)]
    best = _opt.minimize(nll, min(starts, key=nll), method="L-BFGS-B", bounds=bounds)
    theta, nll_hat = np.asarray(best.x), float(best.fun)
    at_top = theta[1] >= la_hi - 1e-2
    if at_top:  # no detectable clustering: the Poisson limit
        theta[1] = la_hi
        theta[0] = _opt.minimize_scalar(lambda v: nll(np.array([v, la_hi])), bounds=bounds[0], method="bounded").x
        nll_hat = nll(theta)
    if ci == "profile" or at_top:
        d_lo, d_hi = _profile_interval(nll, theta, 0, nll_hat, crit, bounds)
        a_lo, a_hi = _profile_interval(nll, theta, 1, nll_hat, crit, bounds)
    else:
        cov = np.linalg.inv(_hessian(nll, theta))
        se = np.sqrt(np.maximum(np.diag(cov), 0.0))
        d_lo, d_hi = theta[0] - z * se[0], theta[0] + z * se[0]
        a_lo, a_hi = theta[1] - z * se[1], theta[1] + z * se[1]
        if a_hi >= la_hi:  # flat towards no clustering: the quadratic approximation fails there
            a_lo, a_hi = _profile_interval(nll, theta, 1, nll_hat, crit, bounds)
    a_hi = math.inf if a_hi >= la_hi else a_hi  # no upper bound within the search range
    alpha = math.inf if at_top else math.exp(theta[1])
    return (math.exp(theta[0]), (math.exp(d_lo), math.exp(d_hi)), alpha,
            (math.exp(a_lo), math.exp(a_hi)), -nll_hat, "profile" if (ci == "profile" or at_top) else "wald")


# ----------------------------------------------------------------------------- pass/fail
def _phi(x: np.ndarray) -> np.ndarray:
    """``x / (exp(x) - 1)``, stable for every ``x > 0``."""
    return x * np.exp(-x) / -np.expm1(-x)


def _g(v: np.ndarray, kb: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    """Log integrand less its constant: ``-(k + b) x + m log(1 - exp(-x)) + alpha v``, ``x = e^v``."""
    x = np.exp(v)
    return -kb * x + m * np.log(-np.expm1(-x)) + alpha * v


def _dg(v: np.ndarray, kb: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    """``g'(v) = alpha + m phi(x) - (k + b) x``: decreasing, so ``g`` is concave."""
    x = np.exp(v)
    return alpha + m * _phi(x) - kb * x


def _d2g(v: np.ndarray, kb: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    """``g''(v) = x (m phi'(x) - (k + b))`` (< 0); ``phi'`` by its series for small ``x``."""
    x = np.exp(v)
    q = np.exp(-x)
    with np.errstate(invalid="ignore", divide="ignore"):
        dphi = np.where(x < 1e-2, -0.5 + x / 6.0 - x**3 / 180.0, (1.0 - q - x) * q / np.expm1(-x) ** 2)
    return x * (m * dphi - kb)


def _bisect(f, lo: np.ndarray, hi: np.ndarray, steps: int) -> np.ndarray:
    """Per row, where ``f`` changes sign in ``[lo, hi]`` (``f > 0`` at ``lo``)."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = f(mid) > 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return 0.5 * (lo + hi)


def _drop_point(v: np.ndarray, target: np.ndarray, kb: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    """Newton's method for ``g(v) = target`` on one side of the peak, from ``v`` on that side.

    ``g`` is concave, so after at most one overshoot the iterates approach the root
    monotonically from outside (never crossing the peak); they stay within ``[V_MIN, V_MAX]``.
    """
    for _ in range(NEWTON_STEPS):
        v = np.clip(v - (_g(v, kb, m, alpha) - target) / _dg(v, kb, m, alpha), V_MIN, V_MAX)
    return v


def _section(a: np.ndarray, z: np.ndarray, kb: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    """log of the integral of ``e^g`` over ``[a, z]`` (per row), Gauss-Legendre with ``QUAD_NODES``."""
    half = 0.5 * (z - a)
    v = (a + half)[:, None] + half[:, None] * _GL_NODES
    with np.errstate(divide="ignore"):
        return _sp.logsumexp(_g(v, kb[:, None], m[:, None], alpha) + _GL_LOG_WEIGHTS, axis=1) + np.log(half)


def nb_wafer_loglik(d0: float, alpha: float, area: float, n: Any, k: Any) -> np.ndarray:
    """``log E[p^k (1 - p)^(n - k)]`` for wafers whose density ``D ~ Gamma(alpha, d0 / alpha)``,
    ``p = exp(-D area)``: the negative-binomial log-likelihood of ``k`` of ``n`` dies passing.

    In ``v = log(D area)`` the log integrand is ``g(v) = -(k + b) x + (n - k) log(1 - exp(-x))
    + alpha v + alpha log b - lgamma(alpha)`` (``x = e^v``, ``b = alpha / (d0 area)``),
    concave with one peak ``v0``, found by bisection on ``g'``. Newton's method finds, on
    either side, where ``g`` has dropped ``DROP`` = 40 nats below the peak; the range between
    is cut at ``v0`` and ``v0 +- SPLIT s`` (``s = 1 / sqrt(-g''(v0))``, the Laplace width) and
    each section integrated by Gauss-Legendre with ``QUAD_NODES`` nodes, so steep and flat
    sides alike are resolved. Each tail beyond a drop point is ``e^g / |g'|`` there (exact for
    the exponential lower tail, negligible otherwise). Tests compare it with a fine
    quadrature over a grid of settings (agreement ~1e-8).

    Examples
    --------
    All dies passing has the closed form ``(1 + n A d0 / alpha)^-alpha``:

    >>> v = nb_wafer_loglik(0.2, 1.5, 1.0, [30], [30])[0]
    >>> round(float(np.exp(v)), 10) == round(float((1 + 30 * 0.2 / 1.5) ** -1.5), 10)
    True
    """
    n, k = np.asarray(n, dtype=float), np.asarray(k, dtype=float)
    m, b = n - k, alpha / (d0 * area)
    kb = k + b
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        v0 = _bisect(lambda v: _dg(v, kb, m, alpha), np.log(alpha / kb), np.log((alpha + m) / kb), BISECT_STEPS)
        g0 = _g(v0, kb, m, alpha)
        s = 1.0 / np.sqrt(np.maximum(-_d2g(v0, kb, m, alpha), 1e-300))
        lo = _drop_point(v0 - s * np.sqrt(2 * DROP), g0 - DROP, kb, m, alpha)
        # from v_up on, g' <= -DROP: start there at the latest (else Newton crawls down a double exponential)
        v_up = np.log((alpha + m + DROP) / kb) + 1.0
        hi = _drop_point(np.minimum(v0 + s * np.sqrt(2 * DROP), v_up), g0 - DROP, kb, m, alpha)
        inner = [np.clip(v0 + f * s, lo, hi) for f in (-SPLIT, 0.0, SPLIT)]
        edges = np.sort(np.stack([lo, *inner, hi]), axis=0)
        parts = [_section(a, z, kb, m, alpha) for a, z in zip(edges[:-1], edges[1:], strict=True)]
        for e in (lo, hi):  # the tails beyond the drop points: exact for exponential tails
            parts.append(_g(e, kb, m, alpha) - np.log(np.abs(_dg(e, kb, m, alpha))))
        return _sp.logsumexp(np.stack(parts), axis=0) + alpha * np.log(b) - _sp.gammaln(alpha)


def _lr_interval(ll, hat: float, lo: float, hi: float, crit: float) -> tuple[float, float]:
    """Likelihood-ratio interval of a one-parameter log-likelihood ``ll`` maximal at ``hat`` in
    ``[lo, hi]``; an end where ``ll`` never drops by ``crit / 2`` is that end of the range."""
    def excess(v: float) -> float:
        return 2.0 * (ll(hat) - ll(v)) - crit

    out = []
    for end in (lo, hi):
        inner = end + (hat - end) * 1e-12  # ll may be -inf at the end itself
        if end == hat or excess(inner) <= 0:
            out.append(end)
        else:
            out.append(_opt.brentq(excess, min(inner, hat), max(inner, hat), xtol=1e-300, rtol=1e-12))
    return out[0], out[1]


def fit_pass_fail(passed: Any, area: float, wafer: Any = None, *, models: Sequence[str] | None = None,
                  confidence: float = 0.95, ci: CiMethod = "wald") -> dict[str, YieldFit]:
    """Fit yield models to dies that passed or failed.

    Parameters
    ----------
    passed, area : array_like of bool, float
        One entry per die (True: it passes); die area (cm^2).
    wafer : array_like, optional
        Wafer label of each die. The negative binomial needs it (its clustering shows only
        as wafer-to-wafer variation); without it only the one-parameter models are fitted.
    models : sequence of str, optional
        Subset of :data:`MODELS` (default: all that the data identify).
    confidence, ci : float, {"wald", "profile"}
        Two-sided confidence level (0.95); interval method of the negative binomial.

    Returns
    -------
    dict of str to YieldFit
        One fit per model, in :data:`MODELS` order.

    Examples
    --------
    >>> fits = fit_pass_fail([True] * 60 + [False] * 40, area=1.0, models=["poisson", "seeds"])
    >>> round(fits["poisson"].d0, 4), round(fits["seeds"].d0, 4)
    (0.5108, 0.6667)
    """
    y = np.asarray(passed).reshape(-1)
    if y.dtype != bool:
        raise ConfigError(f"passed must be booleans (True = the die passes), got dtype {y.dtype}")
    if len(y) == 0:
        raise ConfigError("passed is empty: no dies to fit")
    area, confidence = _check_area(area), _check_confidence(confidence)
    if models is None:
        models = MODELS if wafer is not None else MODELS[:3]
    for mdl in models:
        model_yield(mdl, 0.0, 1.0)  # validates the name
    if "negbin" in models and wafer is None:
        raise ConfigError("the negative-binomial fit needs wafer labels (wafer=...): its alpha is "
                          "estimated from wafer-to-wafer variation")
    crit, z = _sps.chi2.ppf(confidence, 1), _sps.norm.ppf(0.5 + confidence / 2)
    n, k = len(y), int(y.sum())
    codes, n_groups = _groups(n, wafer)
    out: dict[str, YieldFit] = {}

    def ll_binom(p: float) -> float:
        return float(_sp.xlogy(k, p) + _sp.xlog1py(n - k, -p))

    p_lo, p_hi = _lr_interval(ll_binom, k / n, 0.0, 1.0, crit)
    ll_hat = ll_binom(k / n)
    for mdl in (m for m in MODELS if m in models and m != "negbin"):
        d0 = _lambda_for_yield(mdl, k / n) / area
        ci_ = (_lambda_for_yield(mdl, p_hi) / area, _lambda_for_yield(mdl, p_lo) / area)
        out[mdl] = YieldFit(mdl, d0, ci_, math.nan, NAN2, ll_hat, 2 - 2 * ll_hat, n, n_groups,
                            area, "pass_fail", "lr", confidence)
    if "negbin" in models:
        n_w = np.bincount(codes, minlength=n_groups)
        k_w = np.bincount(codes, weights=y.astype(float), minlength=n_groups)
        pairs, mult = np.unique(np.stack([n_w, k_w], axis=1), axis=0, return_counts=True)
        if 0 < k < n:
            def nll(theta: np.ndarray) -> float:
                ll = nb_wafer_loglik(math.exp(theta[0]), math.exp(theta[1]), area, pairs[:, 0], pairs[:, 1])
                return -float(mult @ ll)

            d0, d0_ci, alpha, alpha_ci, ll, how = _two_param_fit(
                nll, lambda a: a * math.expm1(-math.log(k / n) / a) / area, ci, crit, z)  # matches k / n
        else:  # every die passes (or fails): nothing to say about clustering
            d0, d0_ci, alpha, alpha_ci, ll, how = (0.0 if k == n else math.inf), NAN2, math.nan, NAN2, ll_hat, "none"
        out["negbin"] = YieldFit("negbin", d0, d0_ci, alpha, alpha_ci, ll, 4 - 2 * ll, n, n_groups, area,
                                 "pass_fail", how, confidence)
    return out


def fit_counts(counts: Any, area: float, wafer: Any = None, *, models: Sequence[str] = ("poisson", "negbin"),
               confidence: float = 0.95, ci: CiMethod = "wald") -> dict[str, YieldFit]:
    """Fit Poisson and negative-binomial defect densities to per-die defect counts.

    Parameters
    ----------
    counts, area : array_like of int, float
        Killer defects per die (>= 0); die area (cm^2).
    wafer : array_like, optional
        Wafer label per die: the dies of a wafer share one gamma-distributed density
        (negative multinomial). Without it each die draws its own density (i.i.d.
        negative-binomial counts, Stapper's die-level form).
    models : sequence of str
        ``"poisson"`` and/or ``"negbin"``.
    confidence, ci : float, {"wald", "profile"}
        Two-sided confidence level (0.95); interval method of the negative binomial (the
        Poisson interval is the likelihood-ratio interval).

    Returns
    -------
    dict of str to YieldFit
        ``{"poisson": ..., "negbin": ...}``.

    Examples
    --------
    >>> fits = fit_counts([0, 1, 0, 2, 0, 0, 3, 0], area=0.5)
    >>> round(fits["poisson"].d0, 3)
    1.5
    """
    c = np.asarray(counts).reshape(-1)
    if len(c) == 0 or not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
        raise ConfigError("counts must be a non-empty array of integers >= 0 (defects per die)")
    if not models or set(models) - {"poisson", "negbin"}:
        raise ConfigError(f"fit_counts fits the models poisson and negbin, got {list(models)!r}")
    area, confidence = _check_area(area), _check_confidence(confidence)
    crit, z = _sps.chi2.ppf(confidence, 1), _sps.norm.ppf(0.5 + confidence / 2)
    n, total = len(c), int(c.sum())
    codes, n_groups = _groups(n, wafer)
    log_fact = float(_sp.gammaln(c + 1.0).sum())
    exposure = n * area
    mu_hat = total / exposure

    def ll_pois(mu: float) -> float:
        return float(_sp.xlogy(total, mu * area) - mu * exposure - log_fact)

    lo, hi = _lr_interval(ll_pois, mu_hat, 0.0, (total + 10.0 + 10.0 * math.sqrt(total + 1.0)) / exposure, crit)
    ll_p = ll_pois(mu_hat)
    out = {"poisson": YieldFit("poisson", mu_hat, (lo, hi), math.nan, NAN2, ll_p, 2 - 2 * ll_p, n, n_groups, area,
                               "counts", "lr", confidence)}
    if "negbin" not in models or total == 0:
        if "negbin" in models:  # no defects at all: nothing to say about clustering
            out["negbin"] = YieldFit("negbin", 0.0, NAN2, math.nan, NAN2, ll_p, 4 - 2 * ll_p, n, n_groups, area,
                                     "counts", "none", confidence)
        return {m: f for m, f in out.items() if m in models}
    n_g = np.bincount(codes, minlength=n_groups).astype(float)
    c_g = np.bincount(codes, weights=c.astype(float), minlength=n_groups)
    pairs, mult = np.unique(np.stack([n_g, c_g], axis=1), axis=0, return_counts=True)
    const = total * math.log(area) - log_fact

    def nll(theta: np.ndarray) -> float:
        d0, alpha = math.exp(theta[0]), math.exp(theta[1])
        ng, cg = pairs[:, 0], pairs[:, 1]
        ll = (_sp.gammaln(cg + alpha) - _sp.gammaln(alpha) - cg * math.log(alpha / d0)
              - (cg + alpha) * np.log1p(ng * area * d0 / alpha))
        return -(float(mult @ ll) + const)

    d0, d0_ci, alpha, alpha_ci, ll, how = _two_param_fit(nll, lambda a: mu_hat, ci, crit, z)
    out["negbin"] = YieldFit("negbin", d0, d0_ci, alpha, alpha_ci, ll, 4 - 2 * ll, n, n_groups, area, "counts",
                             how, confidence)
    return {m: f for m, f in out.items() if m in models}


# ----------------------------------------------------------------------------- windows
def window_yields(df: pd.DataFrame, block_sizes: Sequence[int] = (1, 2, 3), *, wafer: str = "wafer",
                  passed: str = "passed") -> pd.DataFrame:
    """Block yields for Stapper's window method.

    The die grid of each wafer is tiled into non-overlapping ``b x b`` blocks, anchored at
    grid index 0 (block ``(x // b, y // b)``); a block counts when all its ``b^2`` sites are
    dies in ``df``, and it passes when all of them pass.

    ``df`` holds one row per die with columns ``wafer``, ``x``, ``y`` (die grid indices) and
    ``passed``; ``block_sizes`` are the sides ``b`` (dies, >= 1). Returns one row per block
    size: ``block_size``, ``area_factor`` (``b^2``), ``n_blocks``, ``n_pass``, ``yield``.
    """
    missing = [c for c in (wafer, "x", "y", passed) if c not in df.columns]
    if missing:
        raise ConfigError(f"window_yields needs columns {missing} in the die table")
    if not block_sizes or any(int(b) != b or b < 1 for b in block_sizes):
        raise ConfigError(f"block_sizes must be integers >= 1, got {block_sizes!r}")
    rows = []
    ok = df[passed].astype(bool)
    for b in (int(b) for b in block_sizes):
        g = ok.groupby([df[wafer], df["x"] // b, df["y"] // b]).agg(["size", "all"])
        full = g[g["size"] == b * b]
        rows.append({"block_size": b, "area_factor": b * b, "n_blocks": len(full),
                     "n_pass": int(full["all"].sum())})
    out = pd.DataFrame(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["yield"] = out["n_pass"] / out["n_blocks"]
    return out


@dataclass(frozen=True)
class WindowFit:
    """Stapper's window-method estimates: ``d0`` (per cm^2) and ``alpha`` of the negative
    binomial (``alpha`` inf: no clustering), ``d0_poisson`` of the Poisson model fitted to the
    same block yields, the die area ``area_cm2`` (cm^2), and ``table``: the block yields with
    the fitted ``yield_negbin`` and ``yield_poisson``."""

    d0: float
    alpha: float
    d0_poisson: float
    area_cm2: float
    table: pd.DataFrame = field(compare=False, repr=False)


def fit_windows(windows: pd.DataFrame, area: float) -> WindowFit:
    """Fit ``ln Y(b^2 A) = -alpha ln(1 + D0 b^2 A / alpha)`` to block yields.

    Weighted least squares on ``ln Y``, each block size weighted by the inverse of the
    binomial (delta-method) variance ``(1 - Y) / (n_blocks Y)``; block sizes with no passing
    block or no blocks are left out. Point estimates only: the block yields share dies, so
    their errors are correlated (use :func:`fit_pass_fail` for intervals). ``windows``:
    :func:`window_yields`' table (two usable block sizes or more); ``area``: die area (cm^2).
    """
    area = _check_area(area)
    t = windows.copy()
    use = (t["n_blocks"] > 0) & (t["n_pass"] > 0)
    if use.sum() < 2:
        raise ConfigError("fit_windows needs at least two block sizes with passing blocks")
    a = (t.loc[use, "area_factor"].to_numpy(float)) * area
    y = t.loc[use, "yield"].to_numpy(float)
    nb = t.loc[use, "n_blocks"].to_numpy(float)
    se = np.sqrt(np.maximum(1.0 - y, 0.5 / nb) / (nb * y))
    ln_y = np.log(y)

    def resid(theta: np.ndarray) -> np.ndarray:
        return (ln_y + math.exp(theta[1]) * np.log1p(math.exp(theta[0]) * a / math.exp(theta[1]))) / se

    d0_p = max(float(np.sum(-ln_y * a / se**2) / np.sum(a * a / se**2)), 1e-12)  # WLS through the origin
    la_top = math.log(ALPHA_MAX)
    starts = [(math.log(d0_p), la) for la in (0.0, 2.5, 6.0)]
    fits = [_opt.least_squares(resid, s, bounds=([math.log(d0_p) - 20, math.log(ALPHA_MIN)],
                                                  [math.log(d0_p) + 20, la_top])) for s in starts]
    best = min(fits, key=lambda r: r.cost)
    d0, alpha = math.exp(best.x[0]), (math.inf if best.x[1] >= la_top - 1e-2 else math.exp(best.x[1]))
    t["yield_negbin"] = negbin_yield(d0, t["area_factor"].to_numpy(float) * area, alpha)
    t["yield_poisson"] = poisson_yield(d0_p, t["area_factor"].to_numpy(float) * area)
    return WindowFit(d0, alpha, d0_p, area, t)
