"""Files that appear whole or not at all: write to a temporary name, then rename.

Run tables, voltages, manifests, the dataset cache and results are written through
:func:`atomic_path`: an interrupted write leaves the old file (or none), and the hidden
``.<name>.<random>.tmp`` is removed on error. Kept free of heavy imports so that any
module (the sweep workers' start-up path included) can use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (directories only on POSIX)."""
    if path.is_dir() and os.name != "posix":  # pragma: no cover - Windows cannot open directories
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, move it onto ``path`` atomically.

    The temporary name is ``.<name>.<random>.tmp`` in the same directory (hidden, so
    ``pyarrow.dataset`` and globbing for ``*.parquet`` never see it). When the block exits
    normally the file is fsynced and ``os.replace`` d onto ``path`` (then the directory is
    fsynced); on any exception the temporary file is removed and ``path`` is left as it was.

    >>> with atomic_path("out/table.parquet") as tmp:  # doctest: +SKIP
    ...     pq.write_table(table, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old or the new file, never half)."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
