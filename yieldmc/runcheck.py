"""Checking a run's files, and reading a run only once they check out.

The manifest says which chunks are finished; the files on disk must agree:

* :func:`entry_problem`: a manifest entry's files exist with the recorded size and, where
  asked, sha256 (the check of :meth:`yieldmc.store.RunStore.finished_chunks` and the readers).
* :func:`part_problem`: a part's own metadata (run_id, chunk, seed, config) and rows say that
  it is that chunk of that run; with ``full``, all its data decode.
* :func:`recover_manifest`: a manifest rebuilt from the parts that prove themselves (``--resume``
  with a missing or damaged manifest.json; :mod:`yieldmc.store` writes it).

The readers (:func:`open_checked`, :func:`load_dies`, :func:`load_voltages`; import them from
:mod:`yieldmc.store`) refuse a run that is incomplete, damaged (sizes, sha256 checksums, the
settings in run.json, the parts' metadata and rows) or still being written, with one line
naming the file and the fix; ``verify=False`` checks sizes only, ``allow_partial=True`` reads
the finished chunks of an unfinished run. Nothing here writes or deletes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from yieldmc import schema
from yieldmc.atomic import sha256_file
from yieldmc.errors import ConfigError, RunLockedError
from yieldmc.runformat import (
    MANIFEST_FILE,
    chunk_dies,
    chunk_files,
    config_digest,
    count_chunks,
    dies_file,
    edited_message,
    empty_manifest,
    file_record,
    is_plain_file,
    read_run_info,
    resume_hint,
    voltages_file,
)
from yieldmc.runlock import LOCK_FILE, read_lock, utc_now

if TYPE_CHECKING:
    from yieldmc.store import RunStore

log = logging.getLogger("yieldmc.store")  # one logger for everything about run directories


# --- what the files prove -----------------------------------------------------------------------

def embedded_run_id(p: Path) -> str | None:
    """The run_id a Parquet or HDF5 file of yieldmc records: ``""`` if it records none, None
    if the file cannot be read."""
    try:
        if p.suffix == ".parquet":
            value = (pq.read_schema(p).metadata or {}).get(b"yieldmc.run_id", b"")
        else:
            with h5py.File(p, "r") as f:
                value = f.attrs.get("run_id", "")
    except (OSError, ValueError, pa.ArrowException):
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def part_problem(p: Path, run: Mapping[str, Any], chunk: int, dies: range, *, full: bool) -> str | None:
    """Why part file ``p`` is not chunk ``chunk`` of ``run`` (None if it is): its metadata
    (run_id, chunk, seed, config), its rows (exactly ``dies``) and, if ``full``, all its data
    decode."""
    want = np.arange(dies.start, dies.stop)
    try:
        if p.suffix == ".parquet":
            pf = pq.ParquetFile(p)
            meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
            got = {"run_id": meta.get("yieldmc.run_id"), "chunk": meta.get("yieldmc.chunk"),
                   "seed": meta.get("yieldmc.seed")}
            if got != {"run_id": run["run_id"], "chunk": str(chunk), "seed": str(run["seed"])}:
                return f"its metadata {got} are not those of chunk {chunk} of run {run['run_id']}"
            if json.loads(meta.get("yieldmc.config", "null")) != run["config"]:
                return "the config in its metadata differs from run.json's"
            rows = (pf.read() if full else pf.read(columns=["die"])).column("die").to_numpy()
        else:
            with h5py.File(p, "r") as f:
                got = {"run_id": f.attrs.get("run_id"), "chunk": f.attrs.get("chunk"), "seed": f.attrs.get("seed")}
                if (str(got["run_id"]), got["chunk"], got["seed"]) != (run["run_id"], chunk, run["seed"]):
                    return f"its attributes {got} are not those of chunk {chunk} of run {run['run_id']}"
                rows = f["die"][()]
                if full:
                    for name in f:
                        if isinstance(f[name], h5py.Group):
                            f[f"{name}/voltages"][()], f[f"{name}/labels"][()]
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        return f"it cannot be read ({' '.join(str(exc).split())[:120] or type(exc).__name__})"
    if not np.array_equal(rows, want):
        return f"its rows are not dies {dies.start}-{dies.stop - 1} once each"
    return None


def entry_problem(out: Path, run: Mapping[str, Any], key: str, entry: Mapping[str, Any],
                  checksum: Callable[[str], bool]) -> str | None:
    """Why manifest entry ``key`` of the run ``run`` in ``out`` is not a finished chunk (None
    if it is): its range, its files' presence and sizes and, where ``checksum(rel)``, their
    sha256."""
    c, n_chunks = int(key), count_chunks(run)
    if not 0 <= c < n_chunks:
        return f"{MANIFEST_FILE} lists chunk {c}, outside 0..{n_chunks - 1}"
    dies = chunk_dies(run, c)
    if (entry["die_start"], entry["die_stop"], entry["n_rows"]) != (dies.start, dies.stop, len(dies)):
        return (f"{MANIFEST_FILE} records dies {entry['die_start']}-{entry['die_stop'] - 1} for chunk {c}, "
                f"not {dies.start}-{dies.stop - 1}")
    if sorted(entry["files"]) != sorted(chunk_files(run, c)):
        return f"{MANIFEST_FILE} lists files {sorted(entry['files'])} for chunk {c}"
    for rel, meta in entry["files"].items():
        p = out / rel
        if not is_plain_file(p):
            return f"{rel} is missing"
        size = p.stat().st_size
        if size != meta["bytes"]:
            return f"{rel} has {size} bytes, {MANIFEST_FILE} recorded {meta['bytes']} (truncated or changed)"
        if checksum(rel) and sha256_file(p) != meta["sha256"]:
            return f"{rel} does not match its sha256 checksum in {MANIFEST_FILE} (corrupted or changed)"
    return None


def recover_manifest(out: Path, run: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest of ``run`` listing the chunks whose parts in ``out`` all prove to be that
    chunk of that run (:func:`part_problem` with ``full``); their entries say ``"recovered": true``."""
    manifest = empty_manifest(run)
    for c in range(count_chunks(run)):
        dies, files = chunk_dies(run, c), {}
        for rel in chunk_files(run, c):
            p = out / rel
            if not is_plain_file(p) or part_problem(p, run, c, dies, full=True) is not None:
                break
            files[rel] = file_record(p)
        else:
            manifest["chunks"][str(c)] = {"chunk": c, "die_start": dies.start, "die_stop": dies.stop,
                                          "n_rows": len(dies), "files": files, "written": utc_now(),
                                          "recovered": True}
    return manifest


# --- readers ----------------------------------------------------------------------------------

class Voltages(NamedTuple):
    """Output voltages of some dies, from :func:`load_voltages`."""

    voltages: np.ndarray  #: float32 (dies, images, outputs), volts
    dies: np.ndarray  #: int64 (dies,), die index of each slab
    labels: np.ndarray  #: int16 (images,), true class of each image


def open_checked(out: str | os.PathLike, *, verify: bool = True, allow_partial: bool = False,
                 checksum: Callable[[str], bool] | None = None) -> tuple[RunStore, list[int]]:
    """Open a run for reading and return it with its finished chunks, refusing what is unsound.

    Parameters
    ----------
    out : path
        Run directory.
    verify : bool
        Check the settings in run.json against the checksum the manifest recorded, and the
        sha256 of the files ``checksum(rel)`` selects (default: every file). ``False``:
        file sizes only.
    allow_partial : bool
        Return the chunks that are finished (warning about damaged ones) of a run that is
        unfinished, damaged or still being written, instead of refusing it.
    checksum : callable, optional
        ``checksum(rel) -> bool``: which files' sha256 to compare (the ones a reader reads).

    Raises
    ------
    ConfigError
        One line naming the file and the fix: run.json or manifest.json malformed or
        missing, run.json edited, a chunk not recorded (incomplete), a part missing,
        truncated or corrupted.
    RunLockedError
        ``yieldmc sample`` is still writing the run (another live process holds its lock).
    """
    from yieldmc.store import RunStore  # the store imports this module

    store = RunStore.open(out)
    out = store.path
    fix = resume_hint(out, store.info["n_dies"])
    held = read_lock(out)
    if held is not None and held.purpose == "sample" and held.state() in ("live", "unknown") and not allow_partial:
        gone = f"; if it is not running any more, delete {out / LOCK_FILE}" if held.state() == "unknown" else ""
        raise RunLockedError(f"run {out} is still being written by {held.describe()}; wait for it to finish "
                             f"(or read its finished chunks with allow_partial=True){gone}")
    if not store.has_manifest:
        if allow_partial:
            log.warning("run %s has no %s: no chunk counts as finished", out, MANIFEST_FILE)
            return store, []
        raise ConfigError(f"run {out} has no {MANIFEST_FILE}; rebuild it from the parts with {fix}")
    manifest = store.manifest
    if verify and (manifest.get("config_sha256", config_digest(store.info)) != config_digest(store.info)
                   or (manifest.get("n_dies"), manifest.get("chunk_size"))
                   != (store.info["n_dies"], store.info["chunk_size"])):
        raise ConfigError(f"{edited_message(out)}; or read it unverified (--no-verify, verify=False)")
    selected = (lambda rel: verify) if checksum is None else (lambda rel: verify and checksum(rel))
    good, damaged = [], []
    for key, entry in sorted(manifest["chunks"].items(), key=lambda kv: int(kv[0])):
        problem = entry_problem(out, store.info, key, entry, selected)
        if problem is None:
            good.append(int(key))
        else:
            damaged.append((int(key), problem))
    for c, problem in damaged:
        if not allow_partial:
            raise _damaged(store, c, problem)
        log.warning("run %s: skipping chunk %d: %s", out, c, problem)
    missing = [c for c in range(store.n_chunks) if str(c) not in manifest["chunks"]]
    if missing and not allow_partial:
        c = missing[0]
        rel = dies_file(c)
        why = "is not recorded in the manifest" if (out / rel).exists() else "is missing"
        more = f" (and {len(missing) - 1} more chunks)" if len(missing) > 1 else ""
        raise ConfigError(f"run {out} is incomplete: chunk {c} (dies {_dies_text(store, c)}, {rel}) {why}{more}; "
                          f"finish it with {fix}")
    return store, good


def _dies_text(store: RunStore, c: int) -> str:
    r = store.chunk_range(c)
    return f"{r.start}-{r.stop - 1}"


def _damaged(store: RunStore, chunk: int, problem: str) -> ConfigError:
    """The one-line error for a damaged chunk of ``store``'s run (a manifest entry outside
    the run: "the manifest")."""
    where = f"chunk {chunk} (dies {_dies_text(store, chunk)})" if 0 <= chunk < store.n_chunks else "the manifest"
    return ConfigError(f"run {store.path} is damaged: {where}: {problem}; recompute it with "
                       f"{resume_hint(store.path, store.info['n_dies'])}")


def load_dies(out: str | os.PathLike, columns: Sequence[str] | None = None, *, verify: bool = True,
              allow_partial: bool = False):
    """The per-die table of a run, sorted by die, as a pandas DataFrame.

    Parameters
    ----------
    out : path
        Run directory.
    columns : sequence of str, optional
        Columns to read (default all of :data:`yieldmc.schema.DIE_COLUMNS`, and of
        :data:`yieldmc.schema.WAFER_COLUMNS` for a run on wafers).
    verify : bool
        Check before reading: the sha256 of every Parquet part, run.json's settings against
        the manifest's checksum, each part's metadata (run_id, chunk, seed, config) and
        that its rows are its chunk's dies (so dies 0..n_dies-1 appear once each).
        ``False``: sizes only (faster on huge runs; ``yieldmc yield --no-verify``).
    allow_partial : bool
        Read the finished chunks of an unfinished, damaged or running sweep (damaged
        chunks are skipped with a warning) instead of refusing it.

    Raises
    ------
    ConfigError
        ``out`` is not a run directory, the run is incomplete or damaged (one line naming
        the part and the fix), a column name is unknown, or a file lacks columns (named)
        or has them with another type.
    RunLockedError
        ``yieldmc sample`` is still writing the run.

    Examples
    --------
    >>> df = load_dies("runs/demo")  # doctest: +SKIP
    >>> df.groupby("defect_type").accuracy.mean()  # doctest: +SKIP
    """
    if columns is not None:  # unknown names fail here, even without chunks
        schema.check_schema(schema.arrow_schema(wafer=True), list(columns))
    store, chunks = open_checked(out, verify=verify, allow_partial=allow_partial,
                                 checksum=lambda rel: rel.endswith(".parquet"))
    wafer = schema.is_wafer_run(store.info["config"])
    names = [c.name for c in schema.die_columns(wafer)] if columns is None else list(columns)
    on_wafers = [n for n in names if n in {c.name for c in schema.WAFER_COLUMNS}]
    if on_wafers and not wafer:
        raise ConfigError(f"run {store.path} has no wafers, so no column(s) {on_wafers}; "
                          "sample the dies on wafers (yieldmc sample --wafers W)")
    read = names if "die" in names else names + ["die"]
    tables = []
    for c in chunks:
        rel = dies_file(c)
        path = store.path / rel
        problem = part_problem(path, store.info, c, store.chunk_range(c), full=False) if verify else None
        if problem is not None:
            if not allow_partial:
                raise _damaged(store, c, f"{rel}: {problem}")
            log.warning("run %s: skipping chunk %d: %s", store.path, c, problem)
            continue
        tables.append(schema.read_dies_part(path, read))  # format 1's JSON defect_params upgraded
    if tables:
        table = pa.concat_tables(tables).sort_by("die")
    else:
        table = schema.empty_table(wafer=wafer).select(read)
    return schema.dies_to_pandas(table.select(names))


def load_voltages(out: str | os.PathLike, dies: Sequence[int] | np.ndarray | None = None, *,
                  image_set: str = "test", verify: bool = True, allow_partial: bool = False) -> Voltages:
    """Output voltages of some dies, read across the chunk files ``voltages/part-*.h5``.

    Parameters
    ----------
    out : path
        Run directory.
    dies : sequence of int, optional
        Die indices, returned in this order; default every die of the finished chunks.
    image_set : str
        Which stored image set (``"test"``; ``"train"`` too when the run stored ``"all"``).
    verify, allow_partial : bool
        As for :func:`load_dies`; the checksums compared are those of the voltage files read.

    Returns
    -------
    Voltages
        ``(voltages, dies, labels)``: float32 (n, images, outputs) in volts, int64 die
        indices, int16 true class of each image.
    """
    info = read_run_info(out)
    if info["store_voltages"] == "none":
        raise ConfigError(f"the run in {out} stored no voltages (store_voltages='none')")
    size = info["chunk_size"]
    want = None if dies is None else np.asarray(dies, dtype=np.int64).reshape(-1)
    needed = None if want is None else {voltages_file(c) for c in np.unique(want // size)}
    store, chunks = open_checked(out, verify=verify, allow_partial=allow_partial,
                                 checksum=lambda rel: rel.endswith(".h5") and (needed is None or rel in needed))
    available = np.concatenate([np.arange(store.chunk_range(c).start, store.chunk_range(c).stop)
                                for c in chunks]) if chunks else np.zeros(0, np.int64)
    want = available if want is None else want
    absent = np.setdiff1d(want, available)
    if absent.size:
        raise ConfigError(f"dies {absent[:10].tolist()} of {out} are not stored (not simulated yet, or "
                          f"outside 0..{store.info['n_dies'] - 1})")
    result = labels = None
    for c in np.unique(want // size):
        rows = np.flatnonzero(want // size == c)
        rel = voltages_file(c)
        path = store.path / rel
        problem = part_problem(path, store.info, int(c), store.chunk_range(int(c)), full=False) if verify else None
        if problem is not None:
            raise _damaged(store, int(c), f"{rel}: {problem}")
        block, labels = schema.read_voltage_rows(path, image_set, want[rows] - int(c) * size)
        if result is None:
            result = np.empty((want.size,) + block.shape[1:], np.float32)
        result[rows] = block
    if result is None:
        result, labels = np.zeros((0, 0, 0), np.float32), np.zeros(0, np.int16)
    return Voltages(result, want, labels)
