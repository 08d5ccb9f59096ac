"""yieldmc: Monte Carlo yield of fully analog ReRAM neural-network dies.

Sub-modules are imported lazily by the user; importing :mod:`yieldmc` itself stays
cheap (no numba compilation, no data loading).
"""

from yieldmc.errors import ConfigError, SolverError, YieldmcError

__version__ = "0.1.0"
__all__ = ["ConfigError", "SolverError", "YieldmcError", "__version__"]
