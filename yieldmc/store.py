"""Persistence of a Monte Carlo run: :class:`RunStore` creates, resumes, writes and finishes
a run directory (layout and manifest: :mod:`yieldmc.runformat`, ``docs/data.md``).

Who writes what
---------------
One process at a time writes a run directory: :meth:`RunStore.create` takes its lock
(:mod:`yieldmc.runlock`), :meth:`RunStore.finish` or :meth:`RunStore.release` gives it back
(``with RunStore.create(...) as store:`` too). Writing a chunk has two steps so that the
work can be split between processes:

1. :meth:`RunStore.write_chunk_files` writes the chunk's Parquet (and HDF5) file, each to a
   hidden temporary name then ``os.replace`` d into place, and returns a picklable
   :class:`ChunkRecord` with checksums. It touches no shared state: a worker process may
   call it (a pickled ``RunStore`` carries no manifest). Just before each rename it checks
   that the lock still holds the token of the store it was pickled from, so a worker left
   over from a killed sweep writes nothing into a directory another run has taken over
   (check and rename are two steps: a rename in between breaks a checksum the readers verify).
2. :meth:`RunStore.record_chunk` adds the record to ``manifest.json`` (temp + replace). Only
   the parent process, holding the store from :meth:`RunStore.create`, may call it.

A chunk counts as finished only when the manifest lists it and its files are intact
(:meth:`RunStore.finished_chunks`, checks in :mod:`yieldmc.runcheck`). A chunk file of this
run on disk but absent from the manifest (a crash between the rename and the manifest
update) is removed and recomputed: results are a function of (config, seed, die). A missing
or damaged manifest is rebuilt on ``--resume`` from the parts whose metadata and rows prove
them finished chunks of the run. ``--overwrite`` deletes only what the old run's manifest
(or the files' own run_id) shows yieldmc wrote, and refuses, touching nothing, when a file
of the user's stands where the new run writes.

Import the readers from here too: :func:`load_dies`, :func:`load_voltages`, :func:`open_checked`
(from :mod:`yieldmc.runcheck`), :func:`read_run_info` and the layout's names (from
:mod:`yieldmc.runformat`), :data:`LOCK_FILE` (from :mod:`yieldmc.runlock`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import yieldmc
from yieldmc import schema
from yieldmc.atomic import atomic_path, atomic_write_bytes, sha256_file
from yieldmc.cleanup import remove_old_run, remove_unfinished
from yieldmc.errors import DISK_ERRNOS, ConfigError, RunLockedError, YieldmcError, os_errno, store_write_error
from yieldmc.runcheck import (
    Voltages,
    embedded_run_id,
    entry_problem,
    load_dies,
    load_voltages,
    open_checked,
    recover_manifest,
)
from yieldmc.runformat import (
    CORRECTED_DIR,
    DIES_DIR,
    EXTRA_FILE,
    MANIFEST_FILE,
    NETWORK_FILE,
    RESUME_KEYS,
    RUN_FILE,
    STORE_VOLTAGES,
    VIRTUAL_FILE,
    VOLTAGES_DIR,
    atomic_write_json,
    check_manifest,
    check_run_info,
    chunk_dies,
    config_digest,
    count_chunks,
    dies_file,
    edited_message,
    empty_manifest,
    file_record,
    is_plain_file,
    load_json,
    package_versions,
    part_name,
    read_run_info,
    resume_hint,
    voltages_file,
)
from yieldmc.runlock import LOCK_FILE, LockInfo, acquire_lock, read_lock, release_lock, utc_now

__all__ = [
    "CORRECTED_DIR", "DIES_DIR", "LOCK_FILE", "MANIFEST_FILE", "NETWORK_FILE", "RESUME_KEYS", "RUN_FILE",
    "STORE_VOLTAGES", "VIRTUAL_FILE", "VOLTAGES_DIR", "ChunkRecord", "RunStore", "Voltages", "atomic_path",
    "atomic_write_bytes", "atomic_write_json", "config_digest", "load_dies", "load_voltages", "open_checked",
    "package_versions", "read_run_info", "sha256_file",
]

log = logging.getLogger(__name__)


# --- the run --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkRecord:
    """What :meth:`RunStore.write_chunk_files` wrote for one chunk (picklable, JSON-able).

    Attributes
    ----------
    chunk : int
        Chunk index.
    die_start, die_stop : int
        The chunk's dies are ``range(die_start, die_stop)``.
    n_rows : int
        Rows of its Parquet file (``die_stop - die_start``).
    files : dict
        Path relative to the run directory -> ``{"sha256": hex, "bytes": size}``.
    run_id : str
        Run that wrote it.
    """

    chunk: int
    die_start: int
    die_stop: int
    n_rows: int
    files: dict[str, dict[str, Any]]
    run_id: str


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}.{key}")
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def _probe(folder: Path, *, parents: bool = False) -> None:
    """Create ``folder`` if missing, and a file in it that is removed again: OSError if
    nothing can be written there."""
    folder.mkdir(parents=parents, exist_ok=True)
    probe = folder / f".yieldmc-probe.{uuid.uuid4().hex[:8]}.tmp"
    probe.write_bytes(b"")
    probe.unlink()


def _ensure_writable(out: Path) -> None:
    try:
        _probe(out, parents=True)
    except OSError as exc:
        if os_errno(exc) in DISK_ERRNOS:  # the disk's state, not the user's input: exit 1
            raise store_write_error(exc, out, out, "run the command again") from None
        raise ConfigError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None


def _hdf5_image(build: Callable[[io.BytesIO], None]) -> memoryview:
    """The bytes of an HDF5 file that ``build(file_object)`` writes, built in memory.

    HDF5 (h5py 3.16, HDF5 2.0) crashes the process when it closes a file whose write failed
    (a full disk), so HDF5 never writes to disk itself: Python writes the finished image
    (atomically, turning a full disk into a one-line StoreWriteError).
    """
    image = io.BytesIO()
    build(image)
    return image.getbuffer()


class RunStore:
    """A run directory: create or resume it, write chunks, record them, finish.

    Build one with :meth:`create` (the sweep's parent process: it takes the directory's
    lock) or :meth:`open` (readers; :meth:`locked` for a writer of extra files such as
    ``corrected/``). The object pickles without its manifest, so a worker can call
    :meth:`write_chunk_files` but not :meth:`record_chunk`.
    """

    def __init__(self, path: Path, info: dict[str, Any], manifest: dict[str, Any] | None) -> None:
        self.path = Path(path)
        self.info = info
        self._manifest = manifest
        self._lock: LockInfo | None = None
        self._release: weakref.finalize | None = None
        self._again = f"run again with --resume --out {self.path}"

    # construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, out: str | os.PathLike, run_info: Mapping[str, Any], *, resume: bool = False,
               overwrite: bool = False) -> RunStore:
        """Start a run in ``out``, or continue the one there; take the directory's lock.

        Parameters
        ----------
        out : path
            Run directory; created (with parents) if missing.
        run_info : dict
            JSON-able; needs ``config`` (nested dict, or an object with ``to_dict()``),
            ``seed`` (int >= 0), ``n_dies`` (>= 1), ``chunk_size`` (>= 1) and
            ``store_voltages`` (``"none"``, ``"test"`` or ``"all"``); optional ``engine``
            (``"compiled"``, the default, or ``"reference"``: compared on resume) and
            ``compress`` (None, the default, ``"lzf"`` or ``"gzip"``: the HDF5 filter of
            voltages written from now on). Other keys (e.g. ``backend``) are stored in
            run.json as they are, and not compared on resume.
        resume : bool
            Continue the run in ``out``: its run.json must agree on :data:`RESUME_KEYS`
            (the message lists what differs), be of this run format (an older run's dies
            drew from other streams) and be unedited since the run started; it
            keeps its ``run_id``. A missing or empty ``out`` starts a new run. A missing
            or damaged manifest is rebuilt from the parts (a warning says how many).
        overwrite : bool
            Delete the files of the yieldmc run in ``out`` (those its manifest, or their
            own metadata, show it wrote) and start anew. Other files stay; refused,
            touching nothing, if one of them stands where the new run writes.

        Returns
        -------
        RunStore
            Holding the lock of ``out`` until :meth:`finish` or :meth:`release` (or the
            end of a ``with`` block, or of the process).

        Raises
        ------
        ConfigError
            ``out`` is not empty and neither flag is given (nothing is touched), a resume
            does not match, a file of the user's is in the way, or ``out`` is not a
            writable directory.
        RunLockedError
            Another live process writes ``out`` (a stale lock of a dead process on this
            machine is taken over with a warning).
        """
        if resume and overwrite:
            raise ConfigError("pass either --resume or --overwrite, not both")
        info = check_run_info(run_info)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output directory {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()):
            if resume:
                return cls._resume(out, info)
            if not overwrite:
                raise ConfigError(f"output directory {out} exists and is not empty; pass --resume to "
                                  "finish it or --overwrite to replace it")
        _ensure_writable(out)
        now = utc_now()
        run = {"format_version": schema.FORMAT_VERSION, "run_id": str(uuid.uuid4()), "status": "running",
               "created": now, "updated": now, "versions": package_versions(), "resumed": [],
               "n_chunks": count_chunks(info), **info}
        store = cls(out, run, empty_manifest(run))
        store._take_lock("sample")
        try:
            if overwrite:
                remove_old_run(out, store.info)
            with store._writing(RUN_FILE):
                atomic_write_json(out / RUN_FILE, run, before_replace=store._owner_check(RUN_FILE))
            store._write_manifest()
        except BaseException:
            store.release()
            raise
        return store

    @classmethod
    def _resume(cls, out: Path, info: dict[str, Any]) -> RunStore:
        if not (out / RUN_FILE).is_file():
            raise ConfigError(f"cannot resume: {out} is not empty but holds no {RUN_FILE}; "
                              "choose another output directory")
        run = read_run_info(out)
        if run["format_version"] < schema.FORMAT_VERSION:
            raise ConfigError(
                f"cannot resume the run in {out}: it was written by an older yieldmc (run format "
                f"{run['format_version']}, this one writes {schema.FORMAT_VERSION}), whose dies drew from other "
                "random streams, so finishing it now would mix two kinds of dies. Its finished chunks stay "
                "readable; start the run anew with --overwrite (or in another directory)")
        diffs = [d for key in RESUME_KEYS for d in _differences(run.get(key), info[key], key)]
        if diffs:
            raise ConfigError(f"cannot resume the run in {out}: its settings differ from the ones given: "
                              + "; ".join(diffs) + ". Use the same settings, or --overwrite to start anew")
        _ensure_writable(out)
        store = cls(out, run, None)
        store._take_lock("sample")
        try:
            store._manifest = store._manifest_for_resume()
            run.update({k: v for k, v in info.items() if k not in RESUME_KEYS})
            run["resumed"] = run.get("resumed", []) + [{"time": utc_now(), "versions": package_versions()}]
            run.update(status="running", updated=utc_now())
            with store._writing(RUN_FILE):
                atomic_write_json(out / RUN_FILE, run, before_replace=store._owner_check(RUN_FILE))
            store.finished_chunks()  # drop damaged chunks and stray files now, before any worker starts
        except BaseException:
            store.release()
            raise
        return store

    def _manifest_for_resume(self) -> dict[str, Any]:
        path = self.path / MANIFEST_FILE
        try:
            manifest = check_manifest(load_json(path), path)
        except FileNotFoundError:
            return self._rebuild_manifest("missing")
        except ConfigError as exc:
            return self._rebuild_manifest(f"unusable ({exc})")
        if manifest["run_id"] != self.run_id:
            raise ConfigError(f"{path} belongs to another run ({manifest['run_id']}) than {self.path / RUN_FILE}")
        digest = manifest.get("config_sha256")
        if digest is None:  # written by an older yieldmc: trust run.json from now on
            manifest["config_sha256"] = config_digest(self.info)
        elif digest != config_digest(self.info):
            raise ConfigError(edited_message(self.path))
        return manifest

    def _rebuild_manifest(self, why: str) -> dict[str, Any]:
        """Write a manifest of the parts that prove to be finished chunks of this run (warns)."""
        manifest = recover_manifest(self.path, self.info)
        log.warning("%s: %s was %s; rebuilt it from the parts: %d of %d chunks recovered, the rest "
                    "will be computed", self.path, MANIFEST_FILE, why, len(manifest["chunks"]), self.n_chunks)
        self._manifest = manifest
        self._write_manifest()
        return manifest

    @classmethod
    def open(cls, out: str | os.PathLike) -> RunStore:
        """An existing run, for reading (ConfigError if ``out`` is not a run directory, or
        run.json or manifest.json is malformed). A missing manifest reads as empty
        (:attr:`has_manifest` False)."""
        out = Path(out)
        run = read_run_info(out)
        path = out / MANIFEST_FILE
        try:
            manifest = check_manifest(load_json(path), path)
        except FileNotFoundError:
            store = cls(out, run, empty_manifest(run))
            store.has_manifest = False
            return store
        except ConfigError as exc:  # unreadable or malformed
            raise ConfigError(f"{exc}; rebuild it from the parts with {resume_hint(out, run['n_dies'])}") from None
        if manifest["run_id"] != run["run_id"]:
            raise ConfigError(f"{path} belongs to another run ({manifest['run_id']}) than {out / RUN_FILE}")
        return cls(out, run, manifest)

    #: False when the run directory has no manifest.json (:meth:`open` reads it as empty).
    has_manifest = True

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "info": self.info, "_manifest": None, "_lock": self._lock,
                "_release": None, "_again": self._again}

    # the lock --------------------------------------------------------------------------------
    def _take_lock(self, purpose: str) -> None:
        try:
            self._lock = acquire_lock(self.path, self.run_id, purpose)
        except OSError as exc:
            raise store_write_error(exc, self.path / LOCK_FILE, self.path, self._again) from exc
        self._release = weakref.finalize(self, release_lock, self.path, self._lock.token, os.getpid())

    def release(self) -> None:
        """Give back the directory's lock (no-op if not held, or in a worker process)."""
        if self._release is not None:
            self._release()
        self._release = self._lock = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def holds_lock(self) -> bool:
        """Whether this store's lock token is the one in the directory's lock file."""
        held = read_lock(self.path)
        return self._lock is not None and held is not None and held.token == self._lock.token

    @contextlib.contextmanager
    def locked(self, purpose: str = "correct", again: str | None = None) -> Iterator[RunStore]:
        """Hold the run's lock inside the block (for :meth:`write_file`): a reader that
        writes extra files, e.g. ``yieldmc correct``. The manifest is re-read once locked.

        ``again`` ends the one-line message of a failed write ("run `yieldmc correct` again").
        """
        if again:
            self._again = again
        self._take_lock(purpose)
        try:
            fresh = RunStore.open(self.path)
            if not fresh.has_manifest:  # writing one now would hide the parts from --resume
                raise ConfigError(f"run {self.path} has no {MANIFEST_FILE}; rebuild it from the parts with "
                                  f"{resume_hint(self.path, self.info['n_dies'])}")
            self.info, self._manifest = fresh.info, fresh._manifest
            yield self
        finally:
            self.release()

    def _check_owner(self, rel: str) -> None:
        """Raise :class:`RunLockedError` unless this store's lock still owns the directory."""
        target = self.path / rel
        if self._lock is None:
            raise RunLockedError(f"refusing to write {target}: this process does not hold the lock of {self.path}")
        held = read_lock(self.path)
        if held is None or held.token != self._lock.token or held.run_id != self._lock.run_id:
            now = "nobody holds it now" if held is None else f"it now belongs to {held.describe()}"
            raise RunLockedError(f"refusing to write {target}: run {self.run_id} no longer owns {self.path} "
                                 f"({now}); this process is left over from an interrupted or replaced run")

    def _owner_check(self, rel: str) -> Callable[[], None]:
        return lambda: self._check_owner(rel)

    @contextlib.contextmanager
    def _writing(self, rel: str) -> Iterator[None]:
        """OSError (full, read-only, forbidden disk) -> one-line StoreWriteError naming ``rel``."""
        try:
            yield
        except OSError as exc:
            raise store_write_error(exc, self.path / rel, self.path, self._again) from exc

    def _write_manifest(self) -> None:
        with self._writing(MANIFEST_FILE):
            atomic_write_json(self.path / MANIFEST_FILE, self._manifest,
                              before_replace=self._owner_check(MANIFEST_FILE))

    # facts ---------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """The run's uuid (kept across resumes)."""
        return self.info["run_id"]

    @property
    def n_chunks(self) -> int:
        """Chunks of the run: ``ceil(n_dies / chunk_size)``."""
        return count_chunks(self.info)

    @property
    def network_path(self) -> Path:
        """Where the sweep stores the network weights of the run."""
        return self.path / NETWORK_FILE

    def chunk_range(self, chunk: int) -> range:
        """Dies of chunk ``chunk``: ``range(c*chunk_size, min((c+1)*chunk_size, n_dies))``."""
        if not 0 <= chunk < self.n_chunks:
            raise ConfigError(f"chunk {chunk} is outside 0..{self.n_chunks - 1}")
        return chunk_dies(self.info, chunk)

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The manifest as read or last written (don't modify it); None in a worker process."""
        return self._manifest

    def _parent_manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            raise YieldmcError("only the process that created or opened the run may update its manifest; "
                               "return the ChunkRecord to it and call record_chunk there")
        return self._manifest

    def wrote(self, rel: str) -> bool:
        """Whether the file ``rel`` is recorded in the manifest, or records this run's id itself."""
        manifest = self._parent_manifest()
        listed = rel in manifest["files"] or any(rel in e["files"] for e in manifest["chunks"].values())
        p = self.path / rel
        return is_plain_file(p) and (listed or embedded_run_id(p) == self.run_id)

    # chunks ------------------------------------------------------------------------------------
    def finished_chunks(self, *, verify: bool = True, repair: bool = True) -> set[int]:
        """Chunks the manifest lists whose files exist with the recorded size and checksum.

        Parameters
        ----------
        verify : bool
            Compare sha256 checksums (reads every file); ``False`` checks sizes only.
        repair : bool
            Remove what is not usable so that it gets recomputed: files of damaged chunks
            (and their manifest entries), chunk files the manifest does not list (this
            run's, or unreadable), and yieldmc's leftover temporary files. Readable files
            of another run, or without a run id, where the run writes are refused
            (ConfigError), never deleted. Call it before workers start, never while they write.
        """
        manifest = self._parent_manifest()
        good, bad = set(), []
        for key, entry in manifest["chunks"].items():
            if entry_problem(self.path, self.info, key, entry, lambda rel: verify) is None:
                good.add(int(key))
            else:
                bad.append(key)
        if not repair:
            return good
        remove_unfinished(self.path, self.info, manifest, good, bad)
        if bad:
            log.warning("chunks %s of %s are damaged or incomplete; they will be recomputed",
                        sorted(map(int, bad)), self.path)
            for key in bad:
                del manifest["chunks"][key]
            self._write_manifest()
        return good

    def write_chunk_files(self, chunk: int, table: pa.Table | Mapping[str, Any],
                          voltages: Mapping[str, np.ndarray] | None = None,
                          labels: Mapping[str, np.ndarray] | None = None, *,
                          output_classes: Sequence[int] | None = None) -> ChunkRecord:
        """Write chunk ``chunk``'s files atomically and return their record; no manifest update.

        Parameters
        ----------
        chunk : int
            Chunk index; its rows must be exactly the dies of :meth:`chunk_range`, ascending.
        table : pyarrow.Table, pandas.DataFrame or dict of column -> array-like
            One row per die with the columns of :data:`yieldmc.schema.DIE_COLUMNS` (and of
            :data:`yieldmc.schema.WAFER_COLUMNS` when the run's config places its dies on
            wafers: :func:`yieldmc.schema.is_wafer_run`);
            ``run_id``, ``seed`` and ``chunk`` may be left out (the store fills them).
            Values are cast safely to the schema's types.
        voltages : dict of str -> numpy.ndarray, optional
            Image set name (``"test"``, ``"train"``) -> output voltages (V), shape
            (dies, images, outputs), in row order; stored as float32. Required unless the
            run's ``store_voltages`` is ``"none"``; ``"test"`` runs take exactly ``{"test"}``.
        labels : dict of str -> numpy.ndarray, optional
            The same keys -> true class of each image, shape (images,).
        output_classes : sequence of int, optional
            Class each output column stands for (default ``0 .. outputs-1``).

        Returns
        -------
        ChunkRecord
            Pass it to :meth:`record_chunk` in the parent process.

        Raises
        ------
        RunLockedError
            The store's lock no longer owns the directory (a left-over worker of a killed
            or replaced sweep); nothing is written.
        StoreWriteError
            The disk is full, read-only or forbidden (one line); no temporary file is left.
        """
        dies = self.chunk_range(chunk)
        tbl = schema.conform(table, fill={"run_id": self.run_id, "seed": self.info["seed"], "chunk": chunk},
                             wafer=schema.is_wafer_run(self.info["config"]))
        got = tbl.column("die").to_numpy()
        if not np.array_equal(got, np.arange(dies.start, dies.stop)):
            raise ConfigError(f"chunk {chunk} must hold dies {dies.start}..{dies.stop - 1} in ascending order, "
                              f"got {len(got)} rows with dies {got[:5].tolist()}...")
        sets = schema.check_voltages(voltages, labels, len(dies), self.info["store_voltages"])
        files: dict[str, dict[str, Any]] = {}
        rel = dies_file(chunk)
        meta = schema.parquet_metadata(self.run_id, self.info["seed"], chunk, self.info["config"])
        with self._writing(rel):
            (self.path / DIES_DIR).mkdir(exist_ok=True)
            with atomic_path(self.path / rel, before_replace=self._owner_check(rel)) as tmp:
                pq.write_table(tbl.replace_schema_metadata(meta), tmp, compression="zstd")
            files[rel] = file_record(self.path / rel)
        if sets:
            rel = voltages_file(chunk)
            with self._writing(rel):
                image = _hdf5_image(lambda fh: schema.write_voltage_file(
                    fh, got, sets, output_classes=output_classes, compression=self.info.get("compress"), attrs={
                        "run_id": self.run_id, "chunk": chunk, "seed": self.info["seed"],
                        "yieldmc_version": yieldmc.__version__, "format_version": schema.FORMAT_VERSION}))
                (self.path / VOLTAGES_DIR).mkdir(exist_ok=True)
                with atomic_path(self.path / rel, before_replace=self._owner_check(rel)) as tmp:
                    tmp.write_bytes(image)
                files[rel] = file_record(self.path / rel)
        return ChunkRecord(chunk, dies.start, dies.stop, len(dies), files, self.run_id)

    def record_chunk(self, record: ChunkRecord) -> None:
        """Add a written chunk to manifest.json (atomically). Parent process only."""
        manifest = self._parent_manifest()
        if record.run_id != self.run_id:
            raise YieldmcError(f"chunk {record.chunk} was written for run {record.run_id}, not {self.run_id}")
        for rel, meta in record.files.items():
            p = self.path / rel
            if not p.is_file() or p.stat().st_size != meta["bytes"]:
                raise YieldmcError(f"{p} is missing or changed since chunk {record.chunk} was written")
        entry = {k: v for k, v in asdict(record).items() if k != "run_id"} | {"written": utc_now()}
        manifest["chunks"][str(record.chunk)] = entry
        self._write_manifest()

    def write_chunk(self, chunk: int, table: pa.Table | Mapping[str, Any],
                    voltages: Mapping[str, np.ndarray] | None = None,
                    labels: Mapping[str, np.ndarray] | None = None, *,
                    output_classes: Sequence[int] | None = None) -> ChunkRecord:
        """:meth:`write_chunk_files` then :meth:`record_chunk`: the parent writes everything."""
        record = self.write_chunk_files(chunk, table, voltages, labels, output_classes=output_classes)
        self.record_chunk(record)
        return record

    # other files -----------------------------------------------------------------------------------
    def check_writable(self, sub: str) -> None:
        """Create folder ``sub`` of the run and a file in it, or raise a one-line
        :class:`~yieldmc.errors.StoreWriteError` (read-only run, full disk): call it before
        computing what will be written there."""
        with self._writing(sub):
            _probe(self.path / sub)

    def _record_files(self, rels: Sequence[str]) -> None:
        manifest = self._parent_manifest()
        for rel in rels:
            p = self.path / rel
            with self._writing(rel):
                manifest["files"][rel] = file_record(p) | {"written": utc_now()}
        self._write_manifest()

    def write_file(self, rel: str, write: Callable[[Path], None]) -> Path:
        """Write the run's file ``rel`` with ``write(temporary_path)``, atomically, and record
        it in the manifest (so that ``--overwrite`` knows yieldmc wrote it).

        ``rel`` is ``corrected/<name>.parquet``, ``voltages/all.h5`` or ``network.npz``.
        The store must hold the lock (:meth:`create` or :meth:`locked`). OS errors become
        one-line :class:`~yieldmc.errors.StoreWriteError`.
        """
        if not EXTRA_FILE.fullmatch(rel):
            raise ConfigError(f"{rel!r} is not a file the run's manifest records")
        path = self.path / rel
        with self._writing(rel):
            path.parent.mkdir(exist_ok=True)
            with atomic_path(path, before_replace=self._owner_check(rel)) as tmp:
                write(tmp)
        self._record_files([rel])
        return path

    def finish(self, summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Mark the run complete in run.json (atomically), with ``summary``; return run.json.

        Also builds ``voltages/all.h5`` (HDF5 virtual datasets over every part) when the
        run stores voltages, records it and ``network.npz`` in the manifest, and releases
        the lock. Raises :class:`YieldmcError` if a chunk is not recorded yet.
        """
        manifest = self._parent_manifest()
        missing = sorted(set(range(self.n_chunks)) - {int(k) for k in manifest["chunks"]})
        if missing:
            raise YieldmcError(f"cannot finish the run in {self.path}: chunks {missing[:10]} are not written")
        if self.info["store_voltages"] != "none":
            ranges = [self.chunk_range(c) for c in range(self.n_chunks)]
            parts = [(part_name(c, "h5"), r.start, r.stop) for c, r in enumerate(ranges)]
            attrs = {"run_id": self.run_id,
                     "description": "virtual datasets over the part-*.h5 files of this folder"}
            image = _hdf5_image(lambda fh: schema.write_virtual_file(
                fh, parts, self.info["n_dies"], attrs, folder=self.path / VOLTAGES_DIR))
            self.write_file(f"{VOLTAGES_DIR}/{VIRTUAL_FILE}", lambda tmp: tmp.write_bytes(image))
        if is_plain_file(self.network_path):
            self._record_files([NETWORK_FILE])
        now = utc_now()
        self.info.update(status="complete", finished=now, updated=now, summary=dict(summary or {}))
        with self._writing(RUN_FILE):
            atomic_write_json(self.path / RUN_FILE, self.info, before_replace=self._owner_check(RUN_FILE))
        self.release()
        return self.info
