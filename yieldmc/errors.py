"""Exceptions that carry messages meant for a user, not a developer."""

from __future__ import annotations

import errno
import os
import re


class YieldmcError(Exception):
    """Base class of every error yieldmc raises on purpose."""


class ConfigError(YieldmcError, ValueError):
    """A setting, an input array or a file is invalid; the message says which and why."""


class SolverError(YieldmcError, RuntimeError):
    """An iterative solver did not reach its tolerance; its result must not be used."""


class RunLockedError(YieldmcError):
    """Another process writes the run directory (or took it over from this one); nothing
    was written. The CLI exits with :attr:`exit_code` 1 (not the user's input)."""

    exit_code = 1


class StoreWriteError(YieldmcError, OSError):
    """A file of a run could not be written (disk full, quota, read-only, forbidden); no
    temporary file is left and what was recorded before stays intact.

    An :class:`OSError` too (``errno``, ``filename``), so code that handles a full disk
    handles this one; ``str()`` is the one-line message. Picklable: a worker process's
    error reaches the parent unchanged.
    """

    exit_code = 1

    def __str__(self) -> str:
        return str(self.strerror)


class SweepFailed(YieldmcError):
    """The sweep stopped for a reason outside the user's input: a worker process died, the
    disk is full or read-only. The message is one line and says how to resume; the CLI
    exits with :attr:`exit_code` 1 (bad input exits with 2)."""

    exit_code = 1


#: errno values whose OSError is the environment's fault (a full, read-only or forbidden
#: disk), not a bug: reported in one line.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: ``"No space left on device: /path"``."""
    code = os_errno(exc)
    reason = os.strerror(code) if code else (exc.strerror or (str(exc).splitlines() or [""])[0]
                                             or type(exc).__name__)
    where = exc.filename or ""
    return f"{reason}: {where}" if where else reason


_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted"}


def os_errno(exc: OSError) -> int | None:
    """The errno of ``exc``; HDF5 and Arrow put it in the message only ("errno = 28")."""
    if exc.errno:
        return exc.errno
    found = re.search(r"errno\s*=?\s*(\d+)", str(exc), re.IGNORECASE)
    return int(found.group(1)) if found else None


def store_write_error(exc: OSError, path: os.PathLike | str, out: os.PathLike | str, again: str) -> StoreWriteError:
    """The one-line :class:`StoreWriteError` for ``exc`` raised while writing ``path`` of the
    run ``out``; ``again`` says how to continue ("run again with --resume")."""
    if isinstance(exc, StoreWriteError):
        return exc
    code = os_errno(exc)
    if code in _REASONS:
        reason = _REASONS[code]
    elif code:
        reason = os.strerror(code).lower()
    else:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free space and {again}"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = f"make {out} writable and {again}"
    else:
        fix = again
    return StoreWriteError(code, f"{reason} writing {path}; {fix}", str(path))
