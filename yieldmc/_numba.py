"""The one place that sets numba defaults for every kernel in yieldmc.

``cache=True`` keeps compiled kernels on disk between processes (joblib workers start
fast); ``fastmath`` stays off: the circuit engine promises 1e-9 relative accuracy and
its tests compare against a direct solve, so no reassociation is allowed.
"""

from __future__ import annotations

import numba

NJIT_OPTIONS = {"cache": True, "fastmath": False, "nogil": True}


def njit(func=None, **overrides):
    """``numba.njit`` with the project defaults; keyword arguments override them."""
    options = {**NJIT_OPTIONS, **overrides}
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)
