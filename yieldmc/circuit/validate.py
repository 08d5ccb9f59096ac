"""Input checks shared by the fast engine, the reference solver and the SPICE writer."""

from __future__ import annotations

import math

import numpy as np

from yieldmc.circuit.resistances import Resistances
from yieldmc.errors import ConfigError


def check_conductances(G) -> np.ndarray:
    """Return ``G`` as a C-contiguous float64 (M, N) array, or raise ConfigError."""
    G = np.ascontiguousarray(G, dtype=np.float64)
    if G.ndim != 2:
        raise ConfigError(f"G must be a 2-D (rows, columns) array of conductances, got shape {G.shape}")
    if G.size == 0:
        raise ConfigError(f"G is empty (shape {G.shape}); an array needs at least one cell")
    if not np.all(np.isfinite(G)):
        raise ConfigError("G contains non-finite conductances (NaN or inf)")
    if np.any(G < 0):
        raise ConfigError(f"G contains negative conductances (min {G.min():.3g} S)")
    return G


def check_inputs(G, v) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate conductances and input voltages; return ``(G, v as (B, M), was_1d)``."""
    G = check_conductances(G)
    v = np.asarray(v, dtype=np.float64)
    single = v.ndim == 1
    if single:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != G.shape[0]:
        raise ConfigError(
            f"input voltages must have shape (M,) or (B, M) with M = {G.shape[0]} rows, "
            f"got {v.shape if not single else v.shape[1:]}"
        )
    if not np.all(np.isfinite(v)):
        raise ConfigError("input voltages contain NaN or inf")
    return G, np.ascontiguousarray(v), single


def check_network(r_row: float, r_col: float, r_driver: float, r_sense: float) -> Resistances:
    """Every resistance must be a finite number >= 0 (ohm); returns them as floats."""
    values = []
    for name, value in zip(Resistances._fields, (r_row, r_col, r_driver, r_sense), strict=True):
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number of ohms, got {value!r}") from None
        if not math.isfinite(x) or x < 0:
            raise ConfigError(f"{name} must be finite and >= 0 ohm, got {value!r}")
        values.append(x)
    return Resistances(*values)
