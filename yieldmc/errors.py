"""Exceptions that carry messages meant for a user, not a developer."""


class YieldmcError(Exception):
    """Base class of every error yieldmc raises on purpose."""


class ConfigError(YieldmcError, ValueError):
    """A setting, an input array or a file is invalid; the message says which and why."""


class SolverError(YieldmcError, RuntimeError):
    """An iterative solver did not reach its tolerance; its result must not be used."""
