"""What yieldmc deletes in a run directory, and what it refuses to delete.

yieldmc deletes only files it can show are its own: listed in the run's manifest, carrying
the run's id in their own metadata (Parquet key-value metadata, HDF5 attributes), or its
own interrupted temporary files (``.<name>.<8 hex>.tmp``). A file it cannot show is its own
that stands where the run writes is never deleted: the command stops, touching nothing, with
one line naming it.

* ``yieldmc sample --overwrite`` (:func:`remove_old_run`) deletes the previous run's files
  (:func:`old_run_files`) and the empty folders they leave; other files stay.
* ``yieldmc sample --resume`` (:func:`remove_unfinished`) deletes the parts of damaged
  chunks, parts of this run the manifest does not list (a crash between the rename and the
  manifest update) or that cannot be read, and yieldmc's temporary files, so that those
  chunks are recomputed.

The caller holds the run's lock (:mod:`yieldmc.runlock`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from yieldmc.errors import DISK_ERRNOS, ConfigError, os_errno, store_write_error
from yieldmc.runcheck import embedded_run_id
from yieldmc.runformat import (
    DIES_DIR,
    EXTRA_FILE,
    MANIFEST_FILE,
    NETWORK_FILE,
    PART_FILE,
    PART_NAME,
    RUN_FILE,
    SUBDIRS,
    VIRTUAL_FILE,
    VOLTAGES_DIR,
    check_manifest,
    count_chunks,
    is_own_temp,
    is_plain_file,
    load_json,
    read_run_info,
)

log = logging.getLogger("yieldmc.store")  # one logger for everything about run directories


def old_run_files(out: Path) -> set[str]:
    """Files (relative to ``out``) of the yieldmc run in ``out`` that ``--overwrite`` may delete:
    its run.json and manifest, what the manifest records, part, all.h5 and corrected files
    whose metadata carry its run_id, network.npz, and yieldmc's temporary files."""
    owned: set[str] = set()
    old_id, manifest = None, None
    try:
        old_id = read_run_info(out)["run_id"]
        owned.add(RUN_FILE)
    except ConfigError:
        pass
    if old_id is not None and is_plain_file(out / MANIFEST_FILE):
        try:
            manifest = check_manifest(load_json(out / MANIFEST_FILE), out / MANIFEST_FILE)
        except ConfigError:
            owned.add(MANIFEST_FILE)  # the run's damaged manifest
        else:
            if manifest["run_id"] == old_id:
                owned.add(MANIFEST_FILE)
            else:
                manifest = None
    listed = set(manifest["files"]) if manifest else set()
    for entry in (manifest or {}).get("chunks", {}).values():
        listed |= set(entry["files"])
    if old_id is not None and is_plain_file(out / NETWORK_FILE):
        owned.add(NETWORK_FILE)  # the sweep writes the run's weights there
    for sub in ("", *SUBDIRS):
        folder = out / sub
        for p in folder.iterdir() if folder.is_dir() and not folder.is_symlink() else []:
            rel = f"{sub}/{p.name}" if sub else p.name
            if not is_plain_file(p):
                continue
            if rel in listed or is_own_temp(p.name):
                owned.add(rel)
            elif sub and old_id is not None and (PART_FILE.fullmatch(rel) or EXTRA_FILE.fullmatch(rel)) \
                    and embedded_run_id(p) == old_id:
                owned.add(rel)
    return owned


def remove_old_run(out: Path, run: Mapping[str, Any]) -> None:
    """``--overwrite``: delete the old run's files in ``out`` before the new run ``run``
    (run.json) starts there; refuse (ConfigError), deleting nothing, if a file that is not
    the old run's stands where the new run writes."""
    owned = old_run_files(out)
    targets = [RUN_FILE, MANIFEST_FILE, NETWORK_FILE]
    for sub, ext in ((DIES_DIR, "parquet"), (VOLTAGES_DIR, "h5")):
        folder = out / sub
        if folder.is_symlink() or folder.exists() and not folder.is_dir():
            targets.append(sub)
        elif folder.is_dir() and (ext == "parquet" or run["store_voltages"] != "none"):
            targets += [f"{sub}/{p.name}" for p in folder.iterdir()
                        if (m := PART_NAME.fullmatch(p.name)) and m[2] == ext and int(m[1]) < count_chunks(run)]
    if run["store_voltages"] != "none":
        targets.append(f"{VOLTAGES_DIR}/{VIRTUAL_FILE}")
    blocking = [t for t in targets if os.path.lexists(out / t) and t not in owned]
    if blocking:
        raise ConfigError(f"refusing to overwrite {out}: "
                          f"{', '.join(blocking[:5])}{' ...' if len(blocking) > 5 else ''} "
                          f"{'was' if len(blocking) == 1 else 'were'} not written by the yieldmc run there but "
                          "stand where the new run writes; move them away or choose another output directory")
    try:
        for rel in sorted(owned, key=lambda r: (r.count("/"), r), reverse=True):
            (out / rel).unlink(missing_ok=True)
        for sub in SUBDIRS:
            with contextlib.suppress(OSError):  # only when empty: a user's files stay
                (out / sub).rmdir()
    except OSError as exc:
        if os_errno(exc) in DISK_ERRNOS:  # the disk's state (read-only, forbidden): exit 1
            raise store_write_error(exc, exc.filename or out, out, "run the command again") from None
        raise ConfigError(f"cannot remove the old run in {out}: {exc}") from None
    if owned:
        log.info("removed %d files of the previous run in %s", len(owned), out)


def remove_unfinished(out: Path, run: Mapping[str, Any], manifest: Mapping[str, Any], good: Iterable[int],
                      bad: Iterable[str]) -> None:
    """``--resume``: delete what the run ``run`` in ``out`` must recompute, keeping the parts
    of the ``good`` chunks: the parts listed by the ``bad`` manifest entries, parts of this
    run (or unreadable ones) the manifest does not list, and yieldmc's temporary files.
    Readable parts of another run, or without a run id, where the run writes are refused
    (ConfigError), never deleted; the manifest is left to the caller."""
    keep = {rel for c in good for rel in manifest["chunks"][str(c)]["files"]}
    listed_bad = {rel for key in bad for rel in manifest["chunks"][key]["files"]}
    remove, foreign = [], []
    for sub in ("", DIES_DIR, VOLTAGES_DIR):
        folder = out / sub
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            rel = f"{sub}/{p.name}" if sub else p.name
            part = PART_NAME.fullmatch(p.name) if sub else None
            if not is_plain_file(p) or rel in keep:
                continue
            if is_own_temp(p.name):
                remove.append((p, False))
            elif part and int(part[1]) < count_chunks(run) and \
                    (part[2] == "parquet") == (sub == DIES_DIR):
                owner = None if rel in listed_bad else embedded_run_id(p)
                if owner in (None, run["run_id"]):  # listed, this run's, or unreadable: recompute
                    remove.append((p, rel not in listed_bad))
                else:
                    foreign.append(rel)
    if foreign:
        raise ConfigError(f"cannot continue the run in {out}: {', '.join(foreign[:3])}"
                          f"{' ...' if len(foreign) > 3 else ''} {'is' if len(foreign) == 1 else 'are'} not "
                          "this run's (another run's, or not yieldmc's) but stand where it writes; "
                          "move them away and run again")
    for p, stray in remove:
        if stray:
            log.warning("removing %s: not a finished chunk of the run; it will be recomputed", p)
        try:
            p.unlink()
        except OSError as exc:
            raise store_write_error(exc, p, out, f"run again with --resume --out {out}") from None
