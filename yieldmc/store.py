"""Persistence of a Monte Carlo run: run directory, per-chunk files, manifest, readers.

Layout of a run directory ``<out>/`` (see ``docs/data.md``)::

    run.json                    config, seed, n_dies, chunk_size, versions, status, run_id
    manifest.json               finished chunks: die range, rows, files with sha256
    dies/part-00000.parquet     per-die rows of chunk 0 (schema: yieldmc.schema.DIE_COLUMNS)
    voltages/part-00000.h5      output voltages of chunk 0 (when store_voltages != "none")
    voltages/all.h5             HDF5 virtual datasets over every part (built by finish())
    network.npz                 the network weights (written by the sweep, not here)

Who writes what
---------------
Chunk ``c`` covers dies ``[c*chunk_size, min((c+1)*chunk_size, n_dies))``. Writing a chunk
has two steps so that the work can be split between processes:

1. :meth:`RunStore.write_chunk_files` writes the chunk's Parquet (and HDF5) file, each to a
   hidden temporary name then ``os.replace`` d into place, and returns a picklable
   :class:`ChunkRecord` with checksums. It touches no shared state: a worker process may
   call it (a pickled ``RunStore`` carries no manifest).
2. :meth:`RunStore.record_chunk` adds the record to ``manifest.json`` (temp + replace). Only
   the parent process, holding the store from :meth:`RunStore.create`, may call it.

:meth:`RunStore.write_chunk` does both, for a parent that writes everything itself. Only one
process at a time may run a sweep in a given directory.

A chunk counts as finished only when the manifest lists it and its files are intact
(:meth:`RunStore.finished_chunks`). A chunk file on disk but absent from the manifest (a
crash between the rename and the manifest update) is removed and recomputed: results are a
function of (config, seed, die), so recomputing is always correct and the manifest stays the
single source of truth.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import yieldmc
from yieldmc import schema
from yieldmc.atomic import atomic_path, atomic_write_bytes, sha256_file
from yieldmc.errors import ConfigError, YieldmcError

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.json"
NETWORK_FILE = "network.npz"
DIES_DIR = "dies"
VOLTAGES_DIR = "voltages"
VIRTUAL_FILE = "all.h5"
#: What ``store_voltages`` may be: no voltages, the test images, or every image set.
STORE_VOLTAGES = ("none", "test", "all")
#: run.json entries that must be equal for ``--resume`` to continue a run.
RESUME_KEYS = ("config", "seed", "n_dies", "chunk_size", "store_voltages")
#: Top-level files of ``<out>`` that yieldmc writes, and ``--overwrite`` may remove.
OWNED_FILES = {RUN_FILE, MANIFEST_FILE, NETWORK_FILE}
_OWNED_DIRS = {DIES_DIR: re.compile(r"part-\d{5,}\.parquet"),
               VOLTAGES_DIR: re.compile(rf"part-\d{{5,}}\.h5|{re.escape(VIRTUAL_FILE)}")}
_TMP = re.compile(r"\..+\.tmp")
_PART = re.compile(r"part-(\d{5,})\.(parquet|h5)")
_GENERATED_KEYS = ("format_version", "run_id", "status", "created", "updated", "finished",
                   "n_chunks", "versions", "resumed", "summary")


# --- files -----------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def atomic_write_json(path: str | os.PathLike, obj: Any, *, fsync: bool = True) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (numpy scalars and arrays allowed)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=schema._json_default)
    atomic_write_bytes(path, (text + "\n").encode(), fsync=fsync)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; is {path.parent} a yieldmc run directory?") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def package_versions() -> dict[str, str | None]:
    """Versions of Python, yieldmc, HDF5 and the packages that decide a run's numbers."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "yieldmc": yieldmc.__version__,
                                       "hdf5": h5py.version.hdf5_version}
    for name in ("numpy", "numba", "scipy", "pyarrow", "h5py"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            versions[name] = None
    return versions


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


class Voltages(NamedTuple):
    """Output voltages of some dies, from :func:`load_voltages`."""

    voltages: np.ndarray  #: float32 (dies, images, outputs), volts
    dies: np.ndarray  #: int64 (dies,), die index of each slab
    labels: np.ndarray  #: int16 (images,), true class of each image


def _as_int(info: Mapping, key: str, low: int, high: int = 2**63 - 1) -> int:
    value = info.get(key)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not low <= int(value) <= high:
        raise ConfigError(f"run {key} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _check_run_info(run_info: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(run_info, Mapping):
        raise ConfigError(f"run_info must be a dict, got {type(run_info).__name__}")
    info = dict(run_info)
    if hasattr(info.get("config"), "to_dict"):
        info["config"] = info["config"].to_dict()
    if not isinstance(info.get("config"), Mapping):
        raise ConfigError("run_info needs 'config', a nested dict of the run's settings")
    reserved = sorted(set(info) & set(_GENERATED_KEYS))
    if reserved:
        raise ConfigError(f"run_info must not set {reserved}: the store writes them")
    info["seed"] = _as_int(info, "seed", 0)
    info["n_dies"] = _as_int(info, "n_dies", 1)
    info["chunk_size"] = _as_int(info, "chunk_size", 1)
    if info.get("store_voltages") not in STORE_VOLTAGES:
        raise ConfigError(f"store_voltages must be one of {STORE_VOLTAGES}, got {info.get('store_voltages')!r}")
    try:  # normalise through JSON so that a resumed run compares like with like
        return json.loads(json.dumps(info, default=schema._json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run_info is not JSON-serialisable: {exc}") from None


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}.{key}")
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def _owned_paths(out: Path) -> list[Path]:
    """yieldmc's files under ``out`` (files before their directories); ConfigError if others exist."""
    owned, foreign = [], []
    for p in sorted(out.iterdir()):
        if p.is_symlink():
            foreign.append(p.name)
        elif p.is_file() and (p.name in OWNED_FILES or _TMP.fullmatch(p.name)):
            owned.append(p)
        elif p.is_dir() and p.name in _OWNED_DIRS:
            for q in sorted(p.iterdir()):
                ok = q.is_file() and not q.is_symlink()
                if ok and (_OWNED_DIRS[p.name].fullmatch(q.name) or _TMP.fullmatch(q.name)):
                    owned.append(q)
                else:
                    foreign.append(f"{p.name}/{q.name}")
            owned.append(p)
        else:
            foreign.append(p.name)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ConfigError(f"refusing to overwrite {out}: it holds files yieldmc did not write ({shown}); "
                          "remove them or choose another output directory")
    return owned


def _ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".yieldmc-probe.{uuid.uuid4().hex[:8]}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None


class RunStore:
    """A run directory: create or resume it, write chunks, record them, finish.

    Build one with :meth:`create` (the sweep's parent process) or :meth:`open` (readers).
    The object pickles without its manifest, so a worker can call
    :meth:`write_chunk_files` but not :meth:`record_chunk`.
    """

    def __init__(self, path: Path, info: dict[str, Any], manifest: dict[str, Any] | None) -> None:
        self.path = Path(path)
        self.info = info
        self._manifest = manifest

    # construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, out: str | os.PathLike, run_info: Mapping[str, Any], *, resume: bool = False,
               overwrite: bool = False) -> RunStore:
        """Start a run in ``out``, or continue the one there.

        Parameters
        ----------
        out : path
            Run directory; created (with parents) if missing.
        run_info : dict
            JSON-able; needs ``config`` (nested dict, or an object with ``to_dict()``),
            ``seed`` (int >= 0), ``n_dies`` (>= 1), ``chunk_size`` (>= 1) and
            ``store_voltages`` (``"none"``, ``"test"`` or ``"all"``). Other keys (e.g.
            ``backend``) are stored in run.json as they are, and not compared on resume.
        resume : bool
            Continue the run in ``out``: its run.json must agree on :data:`RESUME_KEYS`
            (the message lists what differs); it keeps its ``run_id``. A missing or empty
            ``out`` starts a new run.
        overwrite : bool
            Delete yieldmc's own files in ``out`` and start anew; refused if ``out`` holds
            anything else, so nothing of the user's is ever deleted.

        Raises
        ------
        ConfigError
            ``out`` is not empty and neither flag is given (nothing is touched), a resume
            does not match, ``out`` holds foreign files (overwrite), or ``out`` is not a
            writable directory.
        """
        if resume and overwrite:
            raise ConfigError("pass either --resume or --overwrite, not both")
        info = _check_run_info(run_info)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output directory {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()):
            if resume:
                return cls._resume(out, info)
            if not overwrite:
                raise ConfigError(f"output directory {out} exists and is not empty; pass --resume to "
                                  "finish it or --overwrite to replace it")
            paths = _owned_paths(out)  # raises before anything is deleted
            try:
                for p in paths:  # files come before the folders that held them
                    if p.is_dir():
                        p.rmdir()
                    else:
                        p.unlink()
            except OSError as exc:
                raise ConfigError(f"cannot remove the old run in {out}: {exc}") from None
        _ensure_writable(out)
        now = _now()
        run = {"format_version": schema.FORMAT_VERSION, "run_id": str(uuid.uuid4()), "status": "running",
               "created": now, "updated": now, "versions": package_versions(), "resumed": [],
               "n_chunks": -(-info["n_dies"] // info["chunk_size"]), **info}
        manifest = cls._empty_manifest(run)
        try:
            atomic_write_json(out / RUN_FILE, run)
            atomic_write_json(out / MANIFEST_FILE, manifest)
        except OSError as exc:
            raise ConfigError(f"cannot write to output directory {out}: {exc}") from None
        return cls(out, run, manifest)

    @classmethod
    def _resume(cls, out: Path, info: dict[str, Any]) -> RunStore:
        if not (out / RUN_FILE).is_file():
            raise ConfigError(f"cannot resume: {out} is not empty but holds no {RUN_FILE}; "
                              "choose another output directory")
        run = _read_json(out / RUN_FILE)
        diffs = [d for key in RESUME_KEYS for d in _differences(run.get(key), info[key], key)]
        if diffs:
            raise ConfigError(f"cannot resume the run in {out}: its settings differ from the ones given: "
                              + "; ".join(diffs) + ". Use the same settings, or --overwrite to start anew")
        _ensure_writable(out)
        run.update({k: v for k, v in info.items() if k not in RESUME_KEYS})
        run["resumed"] = run.get("resumed", []) + [{"time": _now(), "versions": package_versions()}]
        run.update(status="running", updated=_now())
        path = out / MANIFEST_FILE
        manifest = _read_json(path) if path.exists() else cls._empty_manifest(run)
        if manifest.get("run_id") != run["run_id"]:
            raise ConfigError(f"{path} belongs to another run ({manifest.get('run_id')}) than {out / RUN_FILE}")
        atomic_write_json(out / RUN_FILE, run)
        store = cls(out, run, manifest)
        store.finished_chunks()  # drop damaged chunks and stray files now, before any worker starts
        return store

    @classmethod
    def open(cls, out: str | os.PathLike) -> RunStore:
        """An existing run, for reading (ConfigError if ``out`` is not a run directory)."""
        out = Path(out)
        run = _read_json(out / RUN_FILE)
        path = out / MANIFEST_FILE
        return cls(out, run, _read_json(path) if path.exists() else cls._empty_manifest(run))

    @staticmethod
    def _empty_manifest(run: Mapping[str, Any]) -> dict[str, Any]:
        return {"format_version": schema.FORMAT_VERSION, "run_id": run["run_id"], "n_dies": run["n_dies"],
                "chunk_size": run["chunk_size"], "chunks": {}}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "info": self.info, "_manifest": None}

    # facts ---------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """The run's uuid (kept across resumes)."""
        return self.info["run_id"]

    @property
    def n_chunks(self) -> int:
        """Chunks of the run: ``ceil(n_dies / chunk_size)``."""
        return -(-self.info["n_dies"] // self.info["chunk_size"])

    @property
    def network_path(self) -> Path:
        """Where the sweep stores the network weights of the run."""
        return self.path / NETWORK_FILE

    def chunk_range(self, chunk: int) -> range:
        """Dies of chunk ``chunk``: ``range(c*chunk_size, min((c+1)*chunk_size, n_dies))``."""
        if not 0 <= chunk < self.n_chunks:
            raise ConfigError(f"chunk {chunk} is outside 0..{self.n_chunks - 1}")
        size = self.info["chunk_size"]
        return range(chunk * size, min((chunk + 1) * size, self.info["n_dies"]))

    def _parent_manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            raise YieldmcError("only the process that created or opened the run may update its manifest; "
                               "return the ChunkRecord to it and call record_chunk there")
        return self._manifest

    # chunks ------------------------------------------------------------------------------------
    def _expected_files(self, chunk: int) -> list[str]:
        files = [f"{DIES_DIR}/part-{chunk:05d}.parquet"]
        if self.info["store_voltages"] != "none":
            files.append(f"{VOLTAGES_DIR}/part-{chunk:05d}.h5")
        return files

    def finished_chunks(self, *, verify: bool = True, repair: bool = True) -> set[int]:
        """Chunks the manifest lists whose files exist with the recorded size and checksum.

        Parameters
        ----------
        verify : bool
            Compare sha256 checksums (reads every file); ``False`` checks sizes only.
        repair : bool
            Remove what is not usable so that it gets recomputed: files of damaged chunks
            (and their manifest entries), chunk files the manifest does not list, and
            leftover temporary files. Call it before workers start, never while they write.
        """
        manifest = self._parent_manifest()
        good, bad = set(), []
        for key, entry in manifest["chunks"].items():
            ok = sorted(entry["files"]) == sorted(self._expected_files(int(key)))
            for rel, meta in entry["files"].items():
                p = self.path / rel
                ok = ok and p.is_file() and p.stat().st_size == meta["bytes"]
                ok = ok and (not verify or sha256_file(p) == meta["sha256"])
            if ok:
                good.add(int(key))
            else:
                bad.append(key)
        if not repair:
            return good
        keep = {rel for c in good for rel in manifest["chunks"][str(c)]["files"]}
        for p in self.path.iterdir():
            if p.is_file() and _TMP.fullmatch(p.name):
                p.unlink()
        for sub in (DIES_DIR, VOLTAGES_DIR):
            folder = self.path / sub
            for p in sorted(folder.iterdir()) if folder.is_dir() else []:
                stray = _PART.fullmatch(p.name) and f"{sub}/{p.name}" not in keep
                if p.is_file() and (stray or _TMP.fullmatch(p.name)):
                    log.warning("removing %s: not a finished chunk of the run; it will be recomputed", p)
                    p.unlink()
        if bad:
            log.warning("chunks %s of %s are damaged or incomplete; they will be recomputed",
                        sorted(map(int, bad)), self.path)
            for key in bad:
                del manifest["chunks"][key]
            atomic_write_json(self.path / MANIFEST_FILE, manifest)
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
            One row per die with the columns of :data:`yieldmc.schema.DIE_COLUMNS`;
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
        """
        dies = self.chunk_range(chunk)
        tbl = schema.conform(table, fill={"run_id": self.run_id, "seed": self.info["seed"], "chunk": chunk})
        got = tbl.column("die").to_numpy()
        if not np.array_equal(got, np.arange(dies.start, dies.stop)):
            raise ConfigError(f"chunk {chunk} must hold dies {dies.start}..{dies.stop - 1} in ascending order, "
                              f"got {len(got)} rows with dies {got[:5].tolist()}...")
        sets = schema.check_voltages(voltages, labels, len(dies), self.info["store_voltages"])
        files: dict[str, dict[str, Any]] = {}
        rel = f"{DIES_DIR}/part-{chunk:05d}.parquet"
        (self.path / DIES_DIR).mkdir(exist_ok=True)
        meta = schema.parquet_metadata(self.run_id, self.info["seed"], chunk, self.info["config"])
        with atomic_path(self.path / rel) as tmp:
            pq.write_table(tbl.replace_schema_metadata(meta), tmp, compression="zstd")
        files[rel] = {"sha256": sha256_file(self.path / rel), "bytes": (self.path / rel).stat().st_size}
        if sets:
            rel = f"{VOLTAGES_DIR}/part-{chunk:05d}.h5"
            (self.path / VOLTAGES_DIR).mkdir(exist_ok=True)
            with atomic_path(self.path / rel) as tmp:
                schema.write_voltage_file(tmp, got, sets, output_classes=output_classes, attrs={
                    "run_id": self.run_id, "chunk": chunk, "seed": self.info["seed"],
                    "yieldmc_version": yieldmc.__version__, "format_version": schema.FORMAT_VERSION})
            files[rel] = {"sha256": sha256_file(self.path / rel), "bytes": (self.path / rel).stat().st_size}
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
        entry = {k: v for k, v in asdict(record).items() if k != "run_id"} | {"written": _now()}
        manifest["chunks"][str(record.chunk)] = entry
        atomic_write_json(self.path / MANIFEST_FILE, manifest)

    def write_chunk(self, chunk: int, table: pa.Table | Mapping[str, Any],
                    voltages: Mapping[str, np.ndarray] | None = None,
                    labels: Mapping[str, np.ndarray] | None = None, *,
                    output_classes: Sequence[int] | None = None) -> ChunkRecord:
        """:meth:`write_chunk_files` then :meth:`record_chunk`: the parent writes everything."""
        record = self.write_chunk_files(chunk, table, voltages, labels, output_classes=output_classes)
        self.record_chunk(record)
        return record

    def finish(self, summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Mark the run complete in run.json (atomically), with ``summary``; return run.json.

        Also builds ``voltages/all.h5`` (HDF5 virtual datasets over every part) when the
        run stores voltages. Raises :class:`YieldmcError` if a chunk is not recorded yet.
        """
        manifest = self._parent_manifest()
        missing = sorted(set(range(self.n_chunks)) - {int(k) for k in manifest["chunks"]})
        if missing:
            raise YieldmcError(f"cannot finish the run in {self.path}: chunks {missing[:10]} are not written")
        if self.info["store_voltages"] != "none":
            self._build_virtual()
        now = _now()
        self.info.update(status="complete", finished=now, updated=now, summary=dict(summary or {}))
        atomic_write_json(self.path / RUN_FILE, self.info)
        return self.info

    def _build_virtual(self) -> None:
        ranges = [self.chunk_range(c) for c in range(self.n_chunks)]
        parts = [(f"part-{c:05d}.h5", r.start, r.stop) for c, r in enumerate(ranges)]
        attrs = {"run_id": self.run_id, "description": "virtual datasets over the part-*.h5 files of this folder"}
        with atomic_path(self.path / VOLTAGES_DIR / VIRTUAL_FILE) as tmp:
            schema.write_virtual_file(tmp, parts, self.info["n_dies"], attrs)


# --- readers ----------------------------------------------------------------------------------

def read_run_info(out: str | os.PathLike) -> dict[str, Any]:
    """The run's run.json as a dict (config, seed, versions, status, summary, ...)."""
    return _read_json(Path(out) / RUN_FILE)


def _finished(out: str | os.PathLike, verify: bool) -> tuple[RunStore, list[int]]:
    store = RunStore.open(out)
    return store, sorted(store.finished_chunks(verify=verify, repair=False))


def load_dies(out: str | os.PathLike, columns: Sequence[str] | None = None, *, verify: bool = False):
    """The per-die table of every finished chunk, sorted by die, as a pandas DataFrame.

    Parameters
    ----------
    out : path
        Run directory.
    columns : sequence of str, optional
        Columns to read (default all of :data:`yieldmc.schema.DIE_COLUMNS`).
    verify : bool
        Check sha256 checksums before reading (default: sizes only).

    Raises
    ------
    ConfigError
        ``out`` is not a run directory, a column name is unknown, or a file lacks columns
        (named) or has them with another type.

    Examples
    --------
    >>> df = load_dies("runs/mixed")  # doctest: +SKIP
    >>> df.groupby("defect_type").accuracy.mean()  # doctest: +SKIP
    """
    store, chunks = _finished(out, verify)
    names = [c.name for c in schema.DIE_COLUMNS] if columns is None else list(columns)
    schema.check_schema(schema.arrow_schema(), names)  # unknown names fail here, even without chunks
    read = names if "die" in names else names + ["die"]
    tables = []
    for c in chunks:
        path = store.path / DIES_DIR / f"part-{c:05d}.parquet"
        schema.check_schema(pq.read_schema(path), read, source=str(path))
        tables.append(pq.read_table(path, columns=read))
    if tables:
        table = pa.concat_tables(tables).sort_by("die")
    else:
        table = schema.empty_table().select(read)
    return table.select(names).to_pandas()


def load_voltages(out: str | os.PathLike, dies: Sequence[int] | np.ndarray | None = None, *,
                  image_set: str = "test") -> Voltages:
    """Output voltages of some dies, read across the chunk files ``voltages/part-*.h5``.

    Parameters
    ----------
    out : path
        Run directory.
    dies : sequence of int, optional
        Die indices, returned in this order; default every die of the finished chunks.
    image_set : str
        Which stored image set (``"test"``; ``"train"`` too when the run stored ``"all"``).

    Returns
    -------
    Voltages
        ``(voltages, dies, labels)``: float32 (n, images, outputs) in volts, int64 die
        indices, int16 true class of each image.
    """
    store, chunks = _finished(out, verify=False)
    if store.info["store_voltages"] == "none":
        raise ConfigError(f"the run in {out} stored no voltages (store_voltages='none')")
    size = store.info["chunk_size"]
    available = np.concatenate([np.arange(store.chunk_range(c).start, store.chunk_range(c).stop)
                                for c in chunks]) if chunks else np.zeros(0, np.int64)
    want = available if dies is None else np.asarray(dies, dtype=np.int64).reshape(-1)
    absent = np.setdiff1d(want, available)
    if absent.size:
        raise ConfigError(f"dies {absent[:10].tolist()} of {out} are not stored (not simulated yet, or "
                          f"outside 0..{store.info['n_dies'] - 1})")
    result = labels = None
    for c in np.unique(want // size):
        rows = np.flatnonzero(want // size == c)
        block, labels = schema.read_voltage_rows(store.path / VOLTAGES_DIR / f"part-{int(c):05d}.h5",
                                                 image_set, want[rows] - int(c) * size)
        if result is None:
            result = np.empty((want.size,) + block.shape[1:], np.float32)
        result[rows] = block
    if result is None:
        result, labels = np.zeros((0, 0, 0), np.float32), np.zeros(0, np.int16)
    return Voltages(result, want, labels)
