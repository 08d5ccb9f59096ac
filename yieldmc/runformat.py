"""The format of a run directory: its file names, and what run.json and manifest.json hold.

Layout of a run directory ``<out>/`` (``docs/data.md`` documents it for users)::

    run.json                    config, seed, n_dies, chunk_size, versions, status, run_id
    manifest.json               finished chunks (die range, rows, files with sha256), the
                                checksum of run.json's settings, other files yieldmc wrote
    .yieldmc.lock               the writer's lock (yieldmc.runlock), while it writes
    dies/part-00000.parquet     per-die rows of chunk 0 (schema: yieldmc.schema.DIE_COLUMNS)
    voltages/part-00000.h5      output voltages of chunk 0 (when store_voltages != "none")
    voltages/all.h5             HDF5 virtual datasets over every part (built when the run finishes)
    network.npz                 the network weights (written by the sweep, recorded at the end)
    corrected/<mode>.parquet    written by yieldmc.correction

Chunk ``c`` covers dies ``[c*chunk_size, min((c+1)*chunk_size, n_dies))``. manifest.json::

    {"format_version": 2, "run_id": "...", "n_dies": 10, "chunk_size": 4,
     "config_sha256": "<sha256 of run.json's RESUME_KEYS>",
     "chunks": {"0": {"chunk": 0, "die_start": 0, "die_stop": 4, "n_rows": 4, "written": "...",
                      "files": {"dies/part-00000.parquet": {"sha256": "...", "bytes": 1234}, ...}},
                ...},
     "files": {"network.npz": {"sha256": "...", "bytes": 5678, "written": "..."}, ...}}

A chunk entry rebuilt from its parts (:func:`yieldmc.runcheck.recover_manifest`) also has
``"recovered": true``. This module names those files and checks the two JSON files' shape;
it never touches the parts (:mod:`yieldmc.runcheck` reads them) and writes only through
:func:`atomic_write_json`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import yieldmc
from yieldmc import schema
from yieldmc.atomic import TEMP_NAME, atomic_write_bytes, sha256_file
from yieldmc.errors import ConfigError

RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.json"
NETWORK_FILE = "network.npz"
DIES_DIR = "dies"
VOLTAGES_DIR = "voltages"
VIRTUAL_FILE = "all.h5"
CORRECTED_DIR = "corrected"
#: Folder of ``yieldmc lifetime``'s files: ``lifetime.json`` and one part per chunk of dies.
LIFETIME_DIR = "lifetime"
#: Folders of a run directory that hold yieldmc's files.
SUBDIRS = (DIES_DIR, VOLTAGES_DIR, CORRECTED_DIR, LIFETIME_DIR)
#: What ``store_voltages`` may be: no voltages, the test images, or every image set.
STORE_VOLTAGES = ("none", "test", "all")
#: run.json entries that must be equal for ``--resume`` to continue a run; manifest.json
#: keeps their sha256 (``config_sha256``) so that an edited run.json is detected.
RESUME_KEYS = ("config", "seed", "n_dies", "chunk_size", "store_voltages", "engine")
#: The resume keys of run format 1 (before ``engine``): its ``config_sha256`` covers these.
RESUME_KEYS_V1 = RESUME_KEYS[:5]
#: What ``engine`` may be (:mod:`yieldmc.montecarlo`): one numba call per chunk, or the
#: readable per-die path. Format-1 runs, which have no ``engine``, were the latter.
ENGINES = ("compiled", "reference")
#: What ``compress`` may be: the HDF5 filter of stored voltages (None: uncompressed).
COMPRESSIONS = (None, "lzf", "gzip")
#: File name of a chunk's part: group 1 the chunk, group 2 the extension.
PART_NAME = re.compile(r"part-(\d{5,})\.(parquet|h5)")
#: Path of a part relative to the run directory (the files of a manifest's chunk entry).
PART_FILE = re.compile(rf"(?:{DIES_DIR}/part-\d{{5,}}\.parquet|{VOLTAGES_DIR}/part-\d{{5,}}\.h5)")
#: Files besides the chunks that the manifest may record (``files``).
EXTRA_FILE = re.compile(rf"(?:{re.escape(NETWORK_FILE)}|{VOLTAGES_DIR}/{re.escape(VIRTUAL_FILE)}"
                        rf"|{CORRECTED_DIR}/[A-Za-z0-9_-]+\.parquet"
                        rf"|{LIFETIME_DIR}/(?:part-\d{{5,}}\.parquet|lifetime\.json))")
#: Names whose temporary files (``.<name>.<8 hex>.tmp``) are yieldmc's.
_TEMP_TARGET = re.compile(rf"{re.escape(RUN_FILE)}|{re.escape(MANIFEST_FILE)}|{re.escape(NETWORK_FILE)}"
                          rf"|yieldmc-probe|{re.escape(VIRTUAL_FILE)}|part-\d{{5,}}\.(?:parquet|h5)"
                          rf"|[A-Za-z0-9_-]+\.parquet|lifetime\.json")
_GENERATED_KEYS = ("format_version", "run_id", "status", "created", "updated", "finished",
                   "n_chunks", "versions", "resumed", "summary")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_JSON_TYPE = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "true/false", type(None): "null"}


# --- names ------------------------------------------------------------------------------------

def part_name(chunk: int, ext: str) -> str:
    """File name of chunk ``chunk``'s part: ``part-00012.parquet`` or ``part-00012.h5``."""
    return f"part-{int(chunk):05d}.{ext}"


def dies_file(chunk: int) -> str:
    """Path of chunk ``chunk``'s Parquet part, relative to the run directory."""
    return f"{DIES_DIR}/{part_name(chunk, 'parquet')}"


def voltages_file(chunk: int) -> str:
    """Path of chunk ``chunk``'s HDF5 part, relative to the run directory."""
    return f"{VOLTAGES_DIR}/{part_name(chunk, 'h5')}"


def chunk_files(run: Mapping[str, Any], chunk: int) -> list[str]:
    """The parts of chunk ``chunk`` of ``run`` (run.json), relative to the run directory."""
    files = [dies_file(chunk)]
    if run["store_voltages"] != "none":
        files.append(voltages_file(chunk))
    return files


def count_chunks(run: Mapping[str, Any]) -> int:
    """Chunks of ``run``: ``ceil(n_dies / chunk_size)``."""
    return -(-run["n_dies"] // run["chunk_size"])


def chunk_dies(run: Mapping[str, Any], chunk: int) -> range:
    """Dies of chunk ``chunk`` of ``run``: ``range(c*chunk_size, min((c+1)*chunk_size, n_dies))``."""
    size = run["chunk_size"]
    return range(chunk * size, min((chunk + 1) * size, run["n_dies"]))


def is_plain_file(p: Path) -> bool:
    """A regular file, not a symbolic link (yieldmc never writes links)."""
    return p.is_file() and not p.is_symlink()


def is_own_temp(name: str) -> bool:
    """A temporary file that yieldmc's atomic writes leave when interrupted."""
    m = TEMP_NAME.fullmatch(name)
    return bool(m and _TEMP_TARGET.fullmatch(m["target"]))


def resume_hint(out: Path, n_dies: int | None = None) -> str:
    """The command that finishes (or repairs) the run in ``out``, for messages."""
    dies = f" --dies {n_dies}" if n_dies else ""
    return f"`yieldmc sample{dies} --resume --out {out}` (with the settings the run was started with)"


def edited_message(out: Path) -> str:
    """The message for a run.json whose settings no longer match the manifest's checksum."""
    return (f"{out / RUN_FILE} was edited after the run started: its settings ({', '.join(RESUME_KEYS)}) "
            f"no longer match the checksum in {MANIFEST_FILE}; restore them (the parts' Parquet metadata "
            "hold the original config) or start a new run with --overwrite")


# --- JSON files ---------------------------------------------------------------------------------

def atomic_write_json(path: str | os.PathLike, obj: Any, *, fsync: bool = True,
                      before_replace: Callable[[], None] | None = None) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (numpy scalars and arrays allowed)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=schema.json_default)
    atomic_write_bytes(path, (text + "\n").encode(), fsync=fsync, before_replace=before_replace)


def load_json(path: Path) -> Any:
    """Parsed JSON of ``path``; FileNotFoundError as is, ConfigError if unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _read_json(path: Path) -> Any:
    try:
        return load_json(path)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; is {path.parent} a yieldmc run directory?") from None


def resume_keys(run: Mapping[str, Any]) -> tuple[str, ...]:
    """The settings that define ``run``'s dies: :data:`RESUME_KEYS` (format 1: without ``engine``)."""
    return RESUME_KEYS_V1 if run.get("format_version", schema.FORMAT_VERSION) < 2 else RESUME_KEYS


def config_digest(run: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``run``'s :func:`resume_keys` (manifest ``config_sha256``)."""
    text = json.dumps({k: run.get(k) for k in resume_keys(run)}, sort_keys=True, separators=(",", ":"),
                      default=schema.json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """How the manifest records a file: ``{"sha256": hex, "bytes": size}``."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


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


def empty_manifest(run: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest of ``run`` (run.json) before any chunk is finished."""
    return {"format_version": schema.FORMAT_VERSION, "run_id": run["run_id"], "n_dies": run["n_dies"],
            "chunk_size": run["chunk_size"], "config_sha256": config_digest(run), "chunks": {}, "files": {}}


# --- checks ---------------------------------------------------------------------------------------

def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= low


def _as_int(info: Mapping, key: str, low: int, high: int = 2**63 - 1) -> int:
    value = info.get(key)
    if not _is_int(value, low) or value > high:
        raise ConfigError(f"run {key} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def check_run_info(run_info: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a caller gives a new run (``RunStore.create``), checked and normalised
    through JSON; ConfigError saying what is wrong."""
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
    info.setdefault("engine", ENGINES[0])
    if info["engine"] not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {info['engine']!r}")
    if info.setdefault("compress", None) not in COMPRESSIONS:
        raise ConfigError(f"compress must be one of {COMPRESSIONS}, got {info['compress']!r}")
    try:  # normalise through JSON so that a resumed run compares like with like
        return json.loads(json.dumps(info, default=schema.json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run_info is not JSON-serialisable: {exc}") from None


def _check_run_file(run: Any, path: Path) -> dict[str, Any]:
    """``run`` (run.json's content) if it has the shape yieldmc writes; else ConfigError naming ``path``."""
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{path} is not a valid yieldmc run file: {what}")

    if not isinstance(run, dict):
        raise bad(f"expected a JSON object, got {_JSON_TYPE.get(type(run), type(run).__name__)}")
    version = run.get("format_version", schema.FORMAT_VERSION)
    if not _is_int(version, 1):
        raise bad(f"'format_version' must be a positive integer, got {version!r}")
    keys = RESUME_KEYS_V1 if version < 2 else RESUME_KEYS
    missing = [k for k in ("format_version", "run_id", *keys) if k not in run]
    if missing:
        raise bad(f"it lacks {', '.join(map(repr, missing))}")
    if run["format_version"] > schema.FORMAT_VERSION:
        raise bad(f"format {run['format_version']} is newer than this yieldmc reads "
                  f"({schema.FORMAT_VERSION}); upgrade yieldmc")
    if not isinstance(run["run_id"], str) or not run["run_id"]:
        raise bad(f"'run_id' must be a non-empty string, got {run['run_id']!r}")
    if not isinstance(run["config"], dict):
        raise bad(f"'config' must be an object, got {_JSON_TYPE.get(type(run['config']), '?')}")
    for key, low in (("seed", 0), ("n_dies", 1), ("chunk_size", 1)):
        if not _is_int(run[key], low):
            raise bad(f"{key!r} must be an integer >= {low}, got {run[key]!r}")
    if run["store_voltages"] not in STORE_VOLTAGES:
        raise bad(f"'store_voltages' must be one of {', '.join(STORE_VOLTAGES)}, got {run['store_voltages']!r}")
    if run.get("engine", ENGINES[1]) not in ENGINES:
        raise bad(f"'engine' must be one of {', '.join(ENGINES)}, got {run['engine']!r}")
    if run.get("compress") not in COMPRESSIONS:
        raise bad(f"'compress' must be one of lzf, gzip or null, got {run['compress']!r}")
    return run


def read_run_info(out: str | os.PathLike) -> dict[str, Any]:
    """The run's run.json as a dict (config, seed, versions, status, summary, ...);
    ConfigError (naming the file) if it is missing or malformed."""
    path = Path(out) / RUN_FILE
    return _check_run_file(_read_json(path), path)


def _check_file_meta(meta: Any) -> bool:
    return (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and bool(_SHA256.fullmatch(meta["sha256"]))
            and _is_int(meta.get("bytes"), 0))


def check_manifest(m: Any, path: Path) -> dict[str, Any]:
    """``m`` (manifest.json's content) if well formed; else ConfigError naming ``path``.
    A manifest without ``files`` (an older yieldmc's) gets an empty one."""
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{path} is damaged: {what}")

    if not isinstance(m, dict) or not isinstance(m.get("chunks"), dict) or not isinstance(m.get("run_id"), str):
        raise bad("expected an object with 'run_id' and 'chunks'")
    for key, entry in m["chunks"].items():
        if not key.isdigit() or not isinstance(entry, dict):
            raise bad(f"chunk entry {key!r} is not a chunk record")
        if not all(_is_int(entry.get(k), 0) for k in ("die_start", "die_stop", "n_rows")):
            raise bad(f"chunk {key} lacks its die range")
        files = entry.get("files")
        if not isinstance(files, dict) or not files or not all(
                isinstance(rel, str) and PART_FILE.fullmatch(rel) and _check_file_meta(meta)
                for rel, meta in files.items()):
            raise bad(f"chunk {key} has no valid file list")
    extra = m.setdefault("files", {})
    if not isinstance(extra, dict) or not all(isinstance(rel, str) and EXTRA_FILE.fullmatch(rel)
                                              and _check_file_meta(meta) for rel, meta in extra.items()):
        raise bad("'files' is not a valid file list")
    if not isinstance(m.get("config_sha256", ""), str):
        raise bad("'config_sha256' is not a string")
    return m
