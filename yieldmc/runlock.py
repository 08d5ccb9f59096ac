"""The writer lock of a run directory: one process at a time writes it.

The writer holds :data:`LOCK_FILE` in the run directory (:func:`acquire_lock`), a small JSON
file with its pid, host, run id, purpose, start time and a random token. Every chunk file and
manifest update checks, just before its rename, that the lock still carries the writer's
token (:func:`read_lock`; :class:`yieldmc.store.RunStore` does it), so a process left over
from an earlier sweep (its parent killed, the directory since taken over) writes nothing
(a rename racing the check in the microseconds between them would break a checksum,
which the readers verify: caught, never silent).

A lock whose process is gone (same machine, pid no longer running or reused) is *stale* and
taken over with a warning; a lock of a live process, or from another machine, is refused
with a one-line :class:`~yieldmc.errors.RunLockedError`. :func:`release_lock` removes the
lock only if it still holds the caller's token.

Kept free of heavy imports, like :mod:`yieldmc.atomic`: sweep workers import it at start-up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from yieldmc.atomic import create_exclusive, temp_path
from yieldmc.errors import RunLockedError

log = logging.getLogger("yieldmc.store")  # one logger for everything about run directories

#: The writer lock of a run directory.
LOCK_FILE = ".yieldmc.lock"


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second (``2026-01-31T12:00:00Z``): the time stamps
    of the lock, run.json and manifest.json."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (``os.kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:  # pragma: no cover - e.g. a pid out of range
        return False
    return True


@dataclass(frozen=True)
class LockInfo:
    """The content of a run directory's lock file.

    Attributes
    ----------
    pid, host : int, str
        Process holding the lock and the machine it runs on.
    run_id : str
        Run the holder writes.
    token : str
        Random, new at every acquisition: who holds *this* acquisition.
    started : str
        When the lock was taken (UTC, ISO 8601).
    purpose : str
        ``"sample"`` (the sweep writes dies) or ``"correct"`` (corrected results).
    pid_start : str or None
        The holder's start time (``/proc/<pid>/stat``), so that a reused pid is not taken
        for the holder.
    """

    pid: int
    host: str
    run_id: str
    token: str
    started: str
    purpose: str = "sample"
    pid_start: str | None = None

    def describe(self) -> str:
        return f"`yieldmc {self.purpose}` (pid {self.pid} on {self.host}, since {self.started})"

    def state(self) -> str:
        """``"self"`` (this process), ``"live"``, ``"stale"`` (its process is gone) or
        ``"unknown"`` (another machine: cannot tell)."""
        if self.host != socket.gethostname():
            return "unknown"
        start = _process_start(self.pid)
        same = self.pid_start is None or start is None or start == self.pid_start
        if self.pid == os.getpid() and same:
            return "self"
        return "live" if pid_alive(self.pid) and same else "stale"


class _Unreadable(LockInfo):
    """A lock file that does not parse: treated as held by an unknown process."""

    def describe(self) -> str:
        return "an unreadable lock file"

    def state(self) -> str:
        return "unknown"


def read_lock(directory: str | os.PathLike) -> LockInfo | None:
    """The lock of ``directory`` (None if nobody holds it)."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _Unreadable(-1, "?", "", "", "?")
    try:
        data = json.loads(text)
        return LockInfo(**{k: data[k] for k in ("pid", "host", "run_id", "token", "started")},
                        purpose=str(data.get("purpose", "sample")), pid_start=data.get("pid_start"))
    except (ValueError, TypeError, KeyError):
        return _Unreadable(-1, "?", "", "", "?")


def lock_held_message(directory: Path, held: LockInfo) -> str:
    """One line: who holds the lock of ``directory``, and what to do."""
    path = directory / LOCK_FILE
    if held.state() == "unknown":
        where = f"on another machine ({held.host})" if held.host not in ("?", socket.gethostname()) else ""
        return (f"{directory} is locked by {held.describe()}{' ' + where if where else ''}; if no yieldmc "
                f"process is writing it any more, delete {path} and run again")
    return f"{directory} is in use by {held.describe()}; wait for it to finish, or stop it first"


def _break_stale(path: Path, held: LockInfo) -> None:
    """Remove the stale lock ``held``; never a lock that someone took meanwhile."""
    grave = temp_path(path)
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return  # someone else removed it
    try:
        data = json.loads(grave.read_text())
        moved = data.get("token") if isinstance(data, dict) else None
    except (OSError, ValueError):
        moved = None
    if moved != held.token:  # a new lock replaced the stale one meanwhile: put it back
        with contextlib.suppress(OSError):
            os.link(grave, path)
        grave.unlink()
        raise RunLockedError(f"another process took the lock of {path.parent} at the same time; "
                             "only one writer at a time")
    grave.unlink()


def acquire_lock(directory: str | os.PathLike, run_id: str, purpose: str = "sample") -> LockInfo:
    """Take the writer lock of ``directory``; return what it holds (with the new token).

    A lock of a live process is refused (:class:`~yieldmc.errors.RunLockedError`, one line
    naming it), as is one from another machine (cannot tell whether it lives: the message
    says which file to delete). A stale lock (its process on this machine is gone) is
    taken over with a warning; a lock this process already holds, silently.

    Raises
    ------
    RunLockedError
        Held by another process (or by one whose state cannot be told).
    OSError
        The directory is not writable.
    """
    directory = Path(directory)
    path = directory / LOCK_FILE
    for _ in range(5):
        info = LockInfo(os.getpid(), socket.gethostname(), run_id, uuid.uuid4().hex, utc_now(), purpose,
                        _process_start(os.getpid()))
        if create_exclusive(path, (json.dumps(asdict(info), indent=2) + "\n").encode()):
            return info
        held = read_lock(directory)
        if held is None:
            continue  # released meanwhile
        state = held.state()
        if state in ("live", "unknown"):
            raise RunLockedError(lock_held_message(directory, held))
        if state == "stale":
            log.warning("%s was locked by %s, which is no longer running; taking the lock over",
                        directory, held.describe())
        _break_stale(path, held)
    raise RunLockedError(f"could not lock {directory}: other processes keep taking it; only one writer at a time")


def release_lock(directory: str | os.PathLike, token: str, pid: int | None = None) -> bool:
    """Remove the lock of ``directory`` if it still holds ``token`` (and, given ``pid``,
    only in that process); True if it was removed."""
    if pid is not None and pid != os.getpid():
        return False
    held = read_lock(directory)
    if held is None or held.token != token:
        return False
    with contextlib.suppress(FileNotFoundError):
        (Path(directory) / LOCK_FILE).unlink()
    return True
