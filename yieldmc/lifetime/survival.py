"""Time to failure of dies over their lifetime, and the Kaplan-Meier curve.

A die *fails* at the first checkpoint where its accuracy is below the threshold (a die
already below it at ``t_0`` fails at ``t_0``); a die that never does is *censored* at the last
checkpoint (it is still good when the simulation stops). The Kaplan-Meier estimator::

    S(t) = prod over failure times t_i <= t of (1 - d_i / n_i)

(``d_i`` failures at ``t_i`` among the ``n_i`` dies still at risk), with the Greenwood variance
and the log(-log) interval of Kalbfleisch and Prentice (it stays in [0, 1]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from yieldmc.errors import ConfigError


def time_to_failure(df: pd.DataFrame, policy: str, threshold: float) -> pd.DataFrame:
    """Per die: ``time_s`` of its first checkpoint below ``threshold`` under ``policy``
    (``failed`` True), or of the last checkpoint (``failed`` False, censored)."""
    col = f"accuracy_{policy}"
    if col not in df:
        raise ConfigError(f"the lifetime has no policy {policy!r}")
    last = df.groupby("die", sort=True)["time_s"].max()
    first_bad = df[df[col].to_numpy() < threshold].groupby("die")["time_s"].min().reindex(last.index)
    failed = first_bad.notna().to_numpy()
    return pd.DataFrame({"die": last.index.to_numpy(), "time_s": np.where(failed, first_bad, last),
                         "failed": failed})


def kaplan_meier(times, failed, confidence: float = 0.95) -> pd.DataFrame:
    """The Kaplan-Meier survival curve of right-censored times.

    Parameters
    ----------
    times : array_like of float
        Time of failure or of censoring per unit.
    failed : array_like of bool
        True for a failure, False for a censored unit.
    confidence : float

    Returns
    -------
    pandas.DataFrame
        One row per distinct failure time: ``time_s``, ``at_risk``, ``failed``,
        ``survival``, ``low``, ``high`` (a 0-failure curve has no rows).
    """
    t = np.asarray(times, dtype=np.float64)
    f = np.asarray(failed, dtype=bool)
    if t.shape != f.shape or t.ndim != 1:
        raise ConfigError("times and failed must be 1-d arrays of the same length")
    z = stats.norm.ppf(0.5 + confidence / 2)
    rows, s, var_sum = [], 1.0, 0.0
    for ti in np.unique(t[f]):
        n = int(np.count_nonzero(t >= ti))
        d = int(np.count_nonzero((t == ti) & f))
        s *= 1.0 - d / n
        var_sum += d / (n * (n - d)) if n > d else np.inf
        if 0 < s < 1 and np.isfinite(var_sum):
            half = z * np.sqrt(var_sum) / abs(np.log(s))
            lo, hi = s ** np.exp(half), s ** np.exp(-half)
        else:
            lo, hi = (0.0, 0.0) if s == 0 else (s, s)
        rows.append({"time_s": ti, "at_risk": n, "failed": d, "survival": s, "low": lo, "high": hi})
    return pd.DataFrame(rows, columns=["time_s", "at_risk", "failed", "survival", "low", "high"])


__all__ = ["kaplan_meier", "time_to_failure"]
