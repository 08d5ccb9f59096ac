"""Files that appear whole or not at all: write to a temporary name, then rename.

Run tables, voltages, manifests, the dataset cache and results are written through
:func:`atomic_path`: an interrupted write leaves the old file (or none), and the hidden
``.<name>.<random>.tmp`` is removed on error. :func:`create_exclusive` creates a file
whole, only if none exists (the run lock, :mod:`yieldmc.runlock`); :func:`sha256_file`
gives the checksums the manifest records.

Kept free of heavy imports so that any module (the sweep workers' start-up path included)
can use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

#: Temporary names written by :func:`atomic_path`: ``.<target name>.<8 hex digits>.tmp``.
TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}\.tmp")


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (directories only on POSIX)."""
    if path.is_dir() and os.name != "posix":  # pragma: no cover - Windows cannot open directories
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh hidden temporary name beside ``path`` (matches :data:`TEMP_NAME`)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True,
                before_replace: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, move it onto ``path`` atomically.

    The temporary name is ``.<name>.<random>.tmp`` in the same directory (hidden, so
    ``pyarrow.dataset`` and globbing for ``*.parquet`` never see it). When the block exits
    normally the file is fsynced, ``before_replace()`` is called (it may raise to cancel the
    write, e.g. when the writer no longer owns the directory), and the file is
    ``os.replace`` d onto ``path`` (then the directory is fsynced); on any exception the
    temporary file is removed and ``path`` is left as it was.

    >>> with atomic_path("out/table.parquet") as tmp:  # doctest: +SKIP
    ...     pq.write_table(table, tmp)
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True,
                       before_replace: Callable[[], None] | None = None) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old or the new file, never half)."""
    with atomic_path(path, fsync=fsync, before_replace=before_replace) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def create_exclusive(path: str | os.PathLike, data: bytes) -> bool:
    """Create ``path`` holding ``data`` if it does not exist (False if it does), atomically:
    the content is written to a temporary file first, then hard-linked (``O_EXCL`` where
    the file system has no hard links)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            pass
        try:  # no hard links here (some network or FUSE file systems)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            path.unlink()  # never leave an empty file behind (an empty lock reads as held)
            raise
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
