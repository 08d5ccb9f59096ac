"""Yield and its confidence intervals: the share of dies whose accuracy reaches a threshold.

A die *passes* at threshold ``t`` when its accuracy is ``>= t`` (exact float comparison; see
:func:`parse_thresholds` for why decimal thresholds such as 0.9 are safe). Out of ``n`` dies,
``k`` pass, and the yield is ``k / n``, a binomial proportion. Two intervals are offered:

* **Wilson score** (Wilson 1927): the interval recommended by Brown, Cai & DasGupta (2001,
  *Statistical Science* 16:101) for moderate ``n``; its coverage is close to nominal on
  average but can dip below it when the proportion is near 0 or 1.
* **Clopper-Pearson** (1934, "exact"): inverts the binomial test with beta quantiles; its
  coverage is never below nominal (it is conservative), which matters when nearly all or
  nearly no dies pass -- the usual case for a fab's yield.

``method="auto"`` picks Clopper-Pearson near the boundary and Wilson elsewhere; the rule is in
:func:`choose_method`.

Both interval functions are vectorised over arrays of ``k`` and ``n`` (broadcast together) and
return ``nan`` bounds where ``n == 0`` (no dies, no information), so that a table of groups
never fails because one group is empty. :func:`yield_estimate` instead refuses an empty
sample, and refuses NaN accuracies unless ``nan_policy="omit"``.

:func:`yield_report` computes a whole threshold grid, overall or per group, at once (sorted
accuracies, vectorised intervals), leaving out by default the dies whose circuit solve did not
converge (their accuracy is not trustworthy). What ``yieldmc yield`` prints is
:func:`yieldmc.runyield.yield_tables`: :func:`yield_report` of a run directory, before and
after correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as _sps

from yieldmc.errors import ConfigError

Method = Literal["auto", "wilson", "clopper-pearson"]
NanPolicy = Literal["raise", "omit"]

#: ``method="auto"`` uses Clopper-Pearson when the estimate lies within this many binomial
#: standard errors of 0 or 1 (see :func:`choose_method`).
AUTO_BOUNDARY_SE = 3.0

_METHODS = ("auto", "wilson", "clopper-pearson")
#: Columns of the frames returned by :func:`yield_curve` (and, after the group column,
#: :func:`yield_table`).
CURVE_COLUMNS = ("threshold", "n", "k", "yield", "lo", "hi", "method")
#: Most thresholds :func:`parse_thresholds` makes (0:1:0.0001 is 10,001 of them): a finer
#: grid says nothing more about 180-image accuracies and only costs time.
MAX_THRESHOLDS = 10_001


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return confidence


def _check_counts(k, n) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast ``k`` and ``n`` to float arrays after checking they are valid counts."""
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    if not (np.all(np.isfinite(k_arr)) and np.all(np.isfinite(n_arr))):
        raise ConfigError("counts k and n must be finite")
    if np.any(k_arr != np.round(k_arr)) or np.any(n_arr != np.round(n_arr)):
        raise ConfigError("counts k and n must be whole numbers")
    if np.any(n_arr < 0) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ConfigError("counts must satisfy 0 <= k <= n")
    return k_arr, n_arr


def _scalar_or_array(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval for a binomial proportion ``k / n``.

    Parameters
    ----------
    k : int or array_like of int
        Successes (dies that pass), ``0 <= k <= n``.
    n : int or array_like of int
        Trials (dies); broadcast against ``k``.
    confidence : float, default 0.95
        Two-sided confidence level.

    Returns
    -------
    lo, hi : float or ndarray
        Interval bounds in [0, 1]; ``nan`` where ``n == 0``. Floats for scalar input.

    Notes
    -----
    With ``p = k / n`` and ``z`` the ``(1 + confidence) / 2`` normal quantile::

        centre = (p + z**2 / (2 n)) / (1 + z**2 / n)
        half   = z / (1 + z**2 / n) * sqrt(p (1 - p) / n + z**2 / (4 n**2))

    Examples
    --------
    Newcombe (1998), *Statistics in Medicine* 17:857, example 81/263:

    >>> lo, hi = wilson_interval(81, 263)
    >>> round(lo, 4), round(hi, 4)
    (0.2553, 0.3662)
    """
    confidence = _check_confidence(confidence)
    k_arr, n_arr = _check_counts(k, n)
    z = _sps.norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k_arr / n_arr
        denom = 1.0 + z * z / n_arr
        centre = (p + z * z / (2.0 * n_arr)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n_arr + z * z / (4.0 * n_arr * n_arr))
    lo = np.clip(centre - half, 0.0, 1.0)
    hi = np.clip(centre + half, 0.0, 1.0)
    # Exact ends: the closed form gives them only up to rounding.
    lo = np.where(k_arr == 0, 0.0, lo)
    hi = np.where(k_arr == n_arr, 1.0, hi)
    empty = n_arr == 0
    lo = np.where(empty, np.nan, lo)
    hi = np.where(empty, np.nan, hi)
    return _scalar_or_array(lo), _scalar_or_array(hi)


def clopper_pearson_interval(k, n, confidence: float = 0.95):
    """Clopper-Pearson ("exact") interval for a binomial proportion ``k / n``.

    Parameters
    ----------
    k : int or array_like of int
        Successes, ``0 <= k <= n``.
    n : int or array_like of int
        Trials; broadcast against ``k``.
    confidence : float, default 0.95
        Two-sided confidence level; each tail gets ``(1 - confidence) / 2``.

    Returns
    -------
    lo, hi : float or ndarray
        ``lo = Beta(a/2; k, n-k+1)`` quantile (0 when ``k == 0``) and
        ``hi = Beta(1-a/2; k+1, n-k)`` quantile (1 when ``k == n``); ``nan`` where ``n == 0``.

    Examples
    --------
    With no success in 10 trials the upper bound is ``1 - 0.025**(1/10)``:

    >>> lo, hi = clopper_pearson_interval(0, 10)
    >>> lo, round(hi, 4)
    (0.0, 0.3085)
    """
    confidence = _check_confidence(confidence)
    k_arr, n_arr = _check_counts(k, n)
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = _sps.beta.ppf(tail, k_arr, n_arr - k_arr + 1.0)
        hi = _sps.beta.ppf(1.0 - tail, k_arr + 1.0, n_arr - k_arr)
    lo = np.where(k_arr == 0, 0.0, lo)
    hi = np.where(k_arr == n_arr, 1.0, hi)
    empty = n_arr == 0
    lo = np.where(empty, np.nan, lo)
    hi = np.where(empty, np.nan, hi)
    return _scalar_or_array(np.asarray(lo, dtype=float)), _scalar_or_array(
        np.asarray(hi, dtype=float)
    )


def choose_method(k: int, n: int, method: Method = "auto") -> str:
    """The interval method used for ``k`` of ``n`` under ``method``.

    ``"auto"`` gives ``"clopper-pearson"`` when ``p = k / n`` lies within
    :data:`AUTO_BOUNDARY_SE` (3) binomial standard errors ``sqrt(p (1 - p) / n)`` of 0 or 1
    -- this includes ``k == 0`` and ``k == n``, and means roughly "fewer than about 9 dies
    pass, or fewer than about 9 fail" -- and ``"wilson"`` otherwise. Near the boundary
    Wilson's coverage can fall below nominal (Brown, Cai & DasGupta 2001, fig. 5), while
    Clopper-Pearson's never does.
    """
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    if method != "auto":
        return method
    if n <= 0:
        return "clopper-pearson"
    p = k / n
    se = math.sqrt(p * (1.0 - p) / n)
    return "clopper-pearson" if min(p, 1.0 - p) <= AUTO_BOUNDARY_SE * se else "wilson"


def interval(k, n, confidence: float = 0.95, method: Method = "auto") -> tuple[float, float]:
    """Confidence interval for ``k`` of ``n`` with the method :func:`choose_method` picks."""
    chosen = choose_method(int(k), int(n), method)
    func = wilson_interval if chosen == "wilson" else clopper_pearson_interval
    return func(k, n, confidence)


def _choose_methods(k: np.ndarray, n: int, method: Method) -> np.ndarray:
    """:func:`choose_method` for an array of ``k`` (same rule, same floating-point steps)."""
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    k = np.asarray(k, dtype=np.int64)
    if method != "auto":
        return np.full(k.shape, method, dtype=object)
    if n <= 0:
        return np.full(k.shape, "clopper-pearson", dtype=object)
    p = k / n
    se = np.sqrt(p * (1.0 - p) / n)
    near = np.minimum(p, 1.0 - p) <= AUTO_BOUNDARY_SE * se
    return np.where(near, "clopper-pearson", "wilson").astype(object)


def _intervals(k: np.ndarray, n: int, confidence: float, methods: np.ndarray):
    """``(lo, hi)`` arrays: each ``k`` of ``n`` with its own method (as :func:`interval`)."""
    k = np.asarray(k, dtype=np.int64)
    n_arr = np.full(k.shape, n, dtype=np.int64)
    lo, hi = np.empty(k.shape), np.empty(k.shape)
    for name, func in (("wilson", wilson_interval), ("clopper-pearson", clopper_pearson_interval)):
        pick = methods == name
        if pick.any():
            lo[pick], hi[pick] = func(k[pick], n_arr[pick], confidence)
    return lo, hi


@dataclass(frozen=True)
class YieldEstimate:
    """The yield at one accuracy threshold, with its confidence interval.

    Attributes
    ----------
    threshold : float
        Accuracy threshold (fraction in [0, 1]); a die passes when accuracy >= threshold.
    n : int
        Dies counted (after NaN accuracies were omitted, if ``nan_policy="omit"``).
    k : int
        Dies that pass.
    yield_ : float
        ``k / n`` (fraction).
    lo, hi : float
        Confidence interval bounds (fraction).
    method : str
        ``"wilson"`` or ``"clopper-pearson"``: the method actually used.
    confidence : float
        Two-sided confidence level of ``(lo, hi)``.
    n_nan : int
        Dies whose accuracy was NaN and were left out (0 unless ``nan_policy="omit"``).
    """

    threshold: float
    n: int
    k: int
    yield_: float
    lo: float
    hi: float
    method: str
    confidence: float = 0.95
    n_nan: int = 0


def _clean_accuracy(accuracy, nan_policy: NanPolicy) -> tuple[np.ndarray, int]:
    acc = np.asarray(accuracy, dtype=np.float64).ravel()
    if nan_policy not in ("raise", "omit"):
        raise ConfigError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    nan = np.isnan(acc)
    n_nan = int(nan.sum())
    if n_nan:
        if nan_policy == "raise":
            raise ConfigError(
                f"{n_nan} of {acc.size} accuracies are NaN (dies that were not evaluated?); "
                "pass nan_policy='omit' to leave them out of the yield"
            )
        acc = acc[~nan]
    if acc.size == 0:
        raise ConfigError("no accuracies to compute a yield from (empty sample)")
    if np.any(np.isinf(acc)):
        raise ConfigError("accuracies must be finite")
    return acc, n_nan


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"accuracy threshold must lie in [0, 1], got {threshold}")
    return t


def yield_estimate(
    accuracy,
    threshold: float,
    confidence: float = 0.95,
    method: Method = "auto",
    nan_policy: NanPolicy = "raise",
) -> YieldEstimate:
    """Yield (share of dies with ``accuracy >= threshold``) with a confidence interval.

    Parameters
    ----------
    accuracy : array_like of float
        Per-die accuracy (fraction in [0, 1]); any shape, flattened.
    threshold : float
        Accuracy threshold in [0, 1].
    confidence : float, default 0.95
        Two-sided confidence level.
    method : {"auto", "wilson", "clopper-pearson"}, default "auto"
        Interval method; ``"auto"`` follows :func:`choose_method`.
    nan_policy : {"raise", "omit"}, default "raise"
        NaN accuracies raise :class:`~yieldmc.errors.ConfigError` (a die without a result
        must not silently leave the denominator), or are left out and counted in ``n_nan``.

    Returns
    -------
    YieldEstimate

    Examples
    --------
    >>> est = yield_estimate([0.95, 0.91, 0.42, 0.97], threshold=0.9)
    >>> est.k, est.n, est.yield_, est.method
    (3, 4, 0.75, 'clopper-pearson')
    """
    confidence = _check_confidence(confidence)
    t = _check_threshold(threshold)
    acc, n_nan = _clean_accuracy(accuracy, nan_policy)
    n = int(acc.size)
    k = int(np.count_nonzero(acc >= t))
    chosen = choose_method(k, n, method)
    lo, hi = interval(k, n, confidence, chosen)
    return YieldEstimate(t, n, k, k / n, float(lo), float(hi), chosen, confidence, n_nan)


def yield_curve(
    accuracy,
    thresholds,
    confidence: float = 0.95,
    method: Method = "auto",
    nan_policy: NanPolicy = "raise",
) -> pd.DataFrame:
    """Yield versus accuracy threshold, one row per threshold.

    Parameters
    ----------
    accuracy : array_like of float
        Per-die accuracy (fraction).
    thresholds : array_like of float or str
        Thresholds in [0, 1], or a range string for :func:`parse_thresholds`.
    confidence, method, nan_policy
        As in :func:`yield_estimate`.

    Returns
    -------
    pandas.DataFrame
        Columns ``threshold, n, k, yield, lo, hi, method`` (:data:`CURVE_COLUMNS`), in the
        order of ``thresholds``.
    """
    confidence = _check_confidence(confidence)
    thr = _threshold_grid(thresholds)
    acc, _ = _clean_accuracy(accuracy, nan_policy)
    return _curve(acc, thr, confidence, method)


def _threshold_grid(thresholds) -> np.ndarray:
    """Checked thresholds as a float array: a range string (:func:`parse_thresholds`) or values."""
    if isinstance(thresholds, str):
        return parse_thresholds(thresholds)
    thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    for t in thr:
        _check_threshold(t)
    return thr


def _curve(acc: np.ndarray, thr: np.ndarray, confidence: float, method: Method) -> pd.DataFrame:
    """:func:`yield_curve` of checked accuracies (may be empty: then n = 0 and NaN yields)."""
    n = int(acc.size)
    sorted_acc = np.sort(acc)
    # Dies with accuracy >= t are those at or after the leftmost insertion point of t.
    ks = (n - np.searchsorted(sorted_acc, thr, side="left")).astype(np.int64)
    methods = _choose_methods(ks, n, method)
    lo, hi = _intervals(ks, n, confidence, methods)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = ks / n if n else np.full(ks.shape, np.nan)
    return pd.DataFrame({"threshold": thr.astype(np.float64), "n": np.full(ks.shape, n, np.int64),
                         "k": ks, "yield": share, "lo": lo, "hi": hi, "method": methods},
                        columns=list(CURVE_COLUMNS))


def yield_report(
    df: pd.DataFrame,
    thresholds,
    by: str | None = None,
    accuracy_column: str = "accuracy",
    confidence: float = 0.95,
    method: Method = "auto",
    include_unconverged: bool = False,
    converged_column: str = "solver_converged",
) -> pd.DataFrame:
    """Yield at every threshold, overall or per group of dies, without the unconverged dies.

    A die whose circuit solve missed its tolerance (``converged_column`` False) has an
    accuracy that is not trustworthy: it is left out of ``n`` unless
    ``include_unconverged``, and counted in the column ``excluded_unconverged``.

    Parameters
    ----------
    df : pandas.DataFrame
        Per-die table (the run's die table); needs ``accuracy_column``, and ``by`` if
        given; without ``converged_column`` every die counts as converged.
    thresholds : array_like of float or str
        Thresholds in [0, 1], or a range string for :func:`parse_thresholds`.
    by : str, optional
        Group column: per threshold, one row per group (sorted) and then an ``"all"`` row.
    accuracy_column, confidence, method
        As in :func:`yield_table`.
    include_unconverged : bool, default False
        Count the unconverged dies too (``excluded_unconverged`` is then 0).

    Returns
    -------
    pandas.DataFrame
        Columns ``[<by>,] threshold, n, k, yield, lo, hi, method, excluded_unconverged``,
        threshold-major. A group with no die left has ``n = 0`` and NaN yield and bounds.

    Raises
    ------
    ConfigError
        A column is missing, a threshold is out of range, an included accuracy is NaN, or
        no die is left at all.

    Examples
    --------
    >>> df = pd.DataFrame({"accuracy": [0.95, 0.91, 0.42, 0.97],
    ...                    "solver_converged": [True, True, True, False]})
    >>> r = yield_report(df, [0.9])
    >>> r.loc[0, ["n", "k", "excluded_unconverged"]].tolist()
    [3, 2, 1]
    """
    confidence = _check_confidence(confidence)
    thr = _threshold_grid(thresholds)
    for col in (accuracy_column, by):
        if col is not None and col not in df.columns:
            raise ConfigError(f"column {col!r} is not in the table (columns: {list(df.columns)})")
    if converged_column in df.columns:
        unconverged = ~df[converged_column].to_numpy(dtype=bool)
    else:
        unconverged = np.zeros(len(df), dtype=bool)
    keep = np.ones(len(df), dtype=bool) if include_unconverged else ~unconverged
    if not keep.any():
        raise ConfigError(f"no die to compute a yield from: {len(df)} dies, {int(unconverged.sum())} of "
                          "them unconverged (--include-unconverged counts those)")
    acc_all = df[accuracy_column].to_numpy(dtype=np.float64)
    _clean_accuracy(acc_all[keep], "raise")  # NaN or infinite accuracies are refused

    def block(mask: np.ndarray) -> pd.DataFrame:
        frame = _curve(acc_all[mask & keep], thr, confidence, method)
        frame["excluded_unconverged"] = int((mask & ~keep).sum())
        return frame.astype({"excluded_unconverged": "int64"})

    if by is None:
        return block(np.ones(len(df), dtype=bool))
    keys = df[by]
    groups = [(key, keys.to_numpy() == key if not pd.isna(key) else keys.isna().to_numpy())
              for key in keys.drop_duplicates().sort_values(na_position="last")]
    parts = [block(mask).assign(**{by: key}) for key, mask in groups]
    parts.append(block(np.ones(len(df), dtype=bool)).assign(**{by: "all"}))
    frame = pd.concat(parts, ignore_index=True)
    frame[by] = frame[by].astype(object)
    # threshold-major: for each threshold its groups (sorted), then "all"
    frame["_group"] = np.repeat(np.arange(len(parts)), len(thr))
    frame["_t"] = np.tile(np.arange(len(thr)), len(parts))
    frame = frame.sort_values(["_t", "_group"], kind="stable").drop(columns=["_t", "_group"])
    return frame[[by, *CURVE_COLUMNS, "excluded_unconverged"]].reset_index(drop=True)


def yield_table(
    df: pd.DataFrame,
    threshold: float,
    by: str = "defect_type",
    accuracy_column: str = "accuracy",
    confidence: float = 0.95,
    method: Method = "auto",
    nan_policy: NanPolicy = "raise",
) -> pd.DataFrame:
    """Yield at one threshold for each group of dies, plus an ``"all"`` row.

    Parameters
    ----------
    df : pandas.DataFrame
        Per-die table (e.g. the run's Parquet table).
    threshold : float
        Accuracy threshold in [0, 1].
    by : str, default "defect_type"
        Column to group by; groups appear sorted, then the ``"all"`` row.
    accuracy_column : str, default "accuracy"
        Column holding the per-die accuracy (fraction).
    confidence, method, nan_policy
        As in :func:`yield_estimate`.

    Returns
    -------
    pandas.DataFrame
        Columns ``<by>, threshold, n, k, yield, lo, hi, method``.
    """
    for col in (by, accuracy_column):
        if col not in df.columns:
            raise ConfigError(f"column {col!r} is not in the table (columns: {list(df.columns)})")
    rows = []
    groups = df.groupby(by, sort=True, observed=True, dropna=False)[accuracy_column]
    for key, acc in groups:
        rows.append((key, yield_estimate(acc.to_numpy(), threshold, confidence, method,
                                         nan_policy)))
    everything = df[accuracy_column].to_numpy()
    rows.append(("all", yield_estimate(everything, threshold, confidence, method, nan_policy)))
    frame = pd.DataFrame(
        [(key, e.threshold, e.n, e.k, e.yield_, e.lo, e.hi, e.method) for key, e in rows],
        columns=[by, *CURVE_COLUMNS],
    )
    # Categorical or numeric group keys become plain objects so that "all" fits the column.
    frame[by] = frame[by].astype(object)
    return frame.astype({"n": "int64", "k": "int64"})


def parse_thresholds(spec: str) -> np.ndarray:
    """Parse thresholds written as ``"start:stop:step"``, a comma list, or one number.

    The range is inclusive of ``stop`` whenever ``stop`` lies on the grid up to a float
    tolerance (``"0.5:0.99:0.01"`` gives 50 values, 0.5 to 0.99). Values are rounded to 12
    decimals so that each equals the double nearest its decimal: a threshold written 0.9 then
    compares equal to an accuracy of 162/180.

    Parameters
    ----------
    spec : str
        ``"0.5:0.99:0.01"``, ``"0.8,0.9,0.95"`` or ``"0.9"``.

    Returns
    -------
    numpy.ndarray
        float64 thresholds in [0, 1].

    Raises
    ------
    ConfigError
        On bad syntax, a non-positive step, ``start > stop``, values outside [0, 1], or
        more than :data:`MAX_THRESHOLDS` values.

    Examples
    --------
    >>> parse_thresholds("0.9:0.95:0.01").tolist()
    [0.9, 0.91, 0.92, 0.93, 0.94, 0.95]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"thresholds must be a non-empty string, got {spec!r}")
    text = spec.strip()

    def number(part: str) -> float:
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"cannot read {part.strip()!r} in thresholds {spec!r} as a number; "
                "write 'start:stop:step' (e.g. 0.5:0.99:0.01), 'a,b,c' or one number"
            ) from None
        if not math.isfinite(value):
            raise ConfigError(f"threshold values must be finite, got {part.strip()!r}")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ConfigError(
                f"a threshold range has the form 'start:stop:step', got {spec!r}"
            )
        start, stop, step = (number(p) for p in parts)
        if step <= 0:
            raise ConfigError(f"threshold step must be > 0, got {step} in {spec!r}")
        if start > stop:
            raise ConfigError(f"threshold start {start} is above stop {stop} in {spec!r}")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        if count > MAX_THRESHOLDS:
            raise ConfigError(f"thresholds {spec!r} give {count:,} values; at most {MAX_THRESHOLDS:,} "
                              "are allowed (use a larger step)")
        values = start + step * np.arange(count)
    else:
        parts = text.split(",")
        if len(parts) > MAX_THRESHOLDS:
            raise ConfigError(f"thresholds {spec!r} give {len(parts):,} values; at most "
                              f"{MAX_THRESHOLDS:,} are allowed")
        values = np.array([number(p) for p in parts])
    values = np.round(values, 12)
    bad = values[(values < 0.0) | (values > 1.0)]
    if bad.size:
        raise ConfigError(f"thresholds must lie in [0, 1]; {spec!r} gives {bad.tolist()}")
    return values
