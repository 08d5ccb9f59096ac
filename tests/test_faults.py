"""The run store under attack: left-over writers, concurrent writers, stale locks, damaged
files, a missing manifest, overwrite safety, a read-only run, a full disk, a malformed run.json.

Most cases use small runs written directly through :class:`RunStore` with synthetic tables
(milliseconds); the end-to-end case runs a six-die sweep, corrects it and overwrites it.
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import logging
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import yieldmc.correction
import yieldmc.runlock
import yieldmc.store
from yieldmc import defect_params
from yieldmc.errors import ConfigError, RunLockedError, StoreWriteError, YieldmcError
from yieldmc.runlock import LOCK_FILE, read_lock
from yieldmc.store import (
    MANIFEST_FILE,
    RUN_FILE,
    RunStore,
    load_dies,
    load_voltages,
    read_run_info,
    sha256_file,
)

N_IMAGES, N_OUT = 6, 10
PART1 = "dies/part-00001.parquet"


def run_info(**changes):
    info = {"config": {"wires": {"r_row": 1.0, "r_col": 1.0}, "defects": {"kind": "mixed"}},
            "seed": 11, "n_dies": 10, "chunk_size": 4, "store_voltages": "test"}
    return info | changes


def rows(store: RunStore, chunk: int) -> dict:
    dies = np.arange(store.chunk_range(chunk).start, store.chunk_range(chunk).stop)
    n = dies.size
    return {"die": dies, "defect_type": ["ring"] * n,
            "defect_params": defect_params.params_array([[{"kind": "ring"}]] * n),
            "layers_affected": ["0"] * n, "n_stuck_on": dies, "n_stuck_off": dies,
            "fault_fraction": dies / 100.0, "accuracy": (dies % 5) / 5.0, "n_images": np.full(n, N_IMAGES),
            "n_correct": np.full(n, 3), "solver_max_residual": np.full(n, 1e-12),
            "solver_converged": np.ones(n, bool), "elapsed_s": np.full(n, 0.01)}


def volts(store: RunStore, chunk: int, n_images: int = N_IMAGES):
    r = store.chunk_range(chunk)
    v = np.stack([np.random.default_rng([1, d]).normal(0, 0.1, (n_images, N_OUT)) for d in r])
    return {"test": v}, {"test": np.arange(n_images) % N_OUT}


def write(store: RunStore, chunk: int, *, record: bool = True):
    args = (chunk, rows(store, chunk), *volts(store, chunk))
    return store.write_chunk(*args) if record else store.write_chunk_files(*args)


def full_run(path: Path, **changes) -> RunStore:
    """A complete run of 10 dies in 3 chunks (lock released by finish)."""
    store = RunStore.create(path, run_info(**changes))
    for c in range(store.n_chunks):
        write(store, c)
    store.finish({})
    return store


def manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST_FILE).read_text())


def temp_files(path: Path) -> list[str]:
    return [str(p.relative_to(path)) for p in path.rglob("*.tmp")]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper():
    """A live process that is not this one (a stand-in for another writer)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def forge_lock(path: Path, pid: int, *, host: str | None = None, run_id: str = "x", **extra) -> None:
    lock = {"pid": pid, "host": host or socket.gethostname(), "run_id": run_id, "token": "f" * 32,
            "started": "2024-01-01T00:00:00Z", "purpose": "sample"} | extra
    (path / LOCK_FILE).write_text(json.dumps(lock))


# --- one writer at a time -----------------------------------------------------------------------

def test_the_lock_names_its_holder_and_is_released(tmp_path):
    out = tmp_path / "run"
    with RunStore.create(out, run_info()) as store:
        held = read_lock(out)
        assert (held.pid, held.host, held.run_id) == (os.getpid(), socket.gethostname(), store.run_id)
        assert len(held.token) == 32 and held.started.endswith("Z") and store.holds_lock
    assert not (out / LOCK_FILE).exists()
    store = RunStore.create(out, run_info(), resume=True)
    for c in range(3):
        write(store, c)
    store.finish({})
    assert not (out / LOCK_FILE).exists()  # finish gives it back


def test_only_the_process_that_took_the_lock_releases_it(tmp_path):
    store = RunStore.create(tmp_path / "run", run_info())
    worker = pickle.loads(pickle.dumps(store))
    worker.release()  # a worker's copy holds no lock to give back
    assert store.holds_lock
    store.release()
    store.release()  # twice is fine
    assert not (store.path / LOCK_FILE).exists()
    with pytest.raises(RunLockedError, match="does not hold the lock"):
        write(store, 0)


def test_a_second_writer_in_another_process_is_refused(tmp_path):
    out = tmp_path / "run"
    store = RunStore.create(out, run_info())
    code = ("import sys; from yieldmc.store import RunStore; from yieldmc.errors import RunLockedError\n"
            f"try: RunStore.create({str(out)!r}, {run_info()!r}, resume=True)\n"
            "except RunLockedError as e: print(e); sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert f"pid {os.getpid()} on {socket.gethostname()}" in proc.stdout and "since" in proc.stdout
    assert store.holds_lock


@pytest.mark.parametrize("flags", [{"resume": True}, {"overwrite": True}])
def test_a_live_writer_is_refused_and_nothing_is_touched(tmp_path, sleeper, flags):
    store = full_run(tmp_path / "run")
    forge_lock(store.path, sleeper.pid, run_id=store.run_id)
    before = {p: p.stat().st_mtime_ns for p in store.path.rglob("*")}
    with pytest.raises(RunLockedError, match=rf"in use by `yieldmc sample` \(pid {sleeper.pid} on .*since "
                                             r"2024-01-01T00:00:00Z\)"):
        RunStore.create(store.path, run_info(), **flags)
    assert {p: p.stat().st_mtime_ns for p in store.path.rglob("*")} == before


def test_a_lock_from_another_machine_is_refused_with_how_to_remove_it(tmp_path):
    store = full_run(tmp_path / "run")
    forge_lock(store.path, 1, host="elsewhere.example")
    with pytest.raises(RunLockedError, match=rf"another machine \(elsewhere.example\).*delete .*{LOCK_FILE}"):
        RunStore.create(store.path, run_info(), resume=True)


@pytest.mark.parametrize("how", ["dead pid", "reused pid"])
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog, sleeper, how):
    store = full_run(tmp_path / "run")
    if how == "dead pid":
        forge_lock(store.path, dead_pid(), run_id=store.run_id)
    else:  # a live process, but not the one that took the lock (its start time differs)
        forge_lock(store.path, sleeper.pid, run_id=store.run_id, pid_start="1")
    with caplog.at_level(logging.WARNING, logger="yieldmc"):
        again = RunStore.create(store.path, run_info(), resume=True)
    assert "no longer running; taking the lock over" in caplog.text
    assert again.holds_lock and read_lock(store.path).token != "f" * 32


def test_readers_refuse_a_run_being_written_unless_partial(tmp_path, sleeper):
    store = full_run(tmp_path / "run")
    forge_lock(store.path, sleeper.pid, run_id=store.run_id)
    with pytest.raises(RunLockedError, match=f"still being written by `yieldmc sample` \\(pid {sleeper.pid}"):
        load_dies(store.path)
    assert len(load_dies(store.path, allow_partial=True)) == 10
    (store.path / LOCK_FILE).unlink()
    forge_lock(store.path, sleeper.pid, run_id=store.run_id, purpose="correct")  # a corrector: dies stay
    assert len(load_dies(store.path)) == 10


# --- left-over writers --------------------------------------------------------------------------

def test_an_orphan_writer_after_overwrite_writes_nothing(tmp_path):
    old = RunStore.create(tmp_path / "run", run_info())
    write(old, 0)
    orphan = pickle.loads(pickle.dumps(old))  # what a loky worker of the killed sweep holds
    new = RunStore.create(old.path, run_info(seed=12), overwrite=True)
    for c in range(3):
        write(new, c)
    before = {p: sha256_file(p) for p in new.path.rglob("part-*")}
    with pytest.raises(RunLockedError, match=rf"refusing to write .*{PART1}: run {old.run_id} no longer owns"):
        write(orphan, 1, record=False)
    new.finish({})
    with pytest.raises(RunLockedError, match="nobody holds it now"):  # after the new run finished
        write(orphan, 2, record=False)
    assert {p: sha256_file(p) for p in new.path.rglob("part-*")} == before and not temp_files(new.path)
    assert set(load_dies(new.path)["seed"]) == {12}


def _write_in_worker(store: RunStore, chunk: int, disk_full: bool):
    """Runs in a forked worker: the errors must cross the process boundary unchanged."""
    real = yieldmc.store.pq.write_table

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    yieldmc.store.pq.write_table = full if disk_full else real
    try:
        return write(store, chunk, record=False)
    finally:
        yieldmc.store.pq.write_table = real


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python >= 3.12, harmless here
def test_worker_errors_cross_the_process_boundary(tmp_path):
    old = RunStore.create(tmp_path / "run", run_info())
    stale = pickle.dumps(old)
    new = RunStore.create(old.path, run_info(), overwrite=True)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with pytest.raises(RunLockedError, match="no longer owns"):
            pool.submit(_write_in_worker, pickle.loads(stale), 1, False).result()
        with pytest.raises(StoreWriteError, match=f"no space left on device writing .*{PART1}; free space") as info:
            pool.submit(_write_in_worker, new, 1, True).result()
        assert info.value.errno == errno.ENOSPC
        record = pool.submit(_write_in_worker, new, 1, False).result()  # a healthy worker still works
    new.record_chunk(record)
    assert new.finished_chunks() == {1} and not temp_files(new.path)


# --- readers verify -------------------------------------------------------------------------------

def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _drop_entry(out: Path) -> None:
    m = manifest(out)
    del m["chunks"]["1"]
    (out / MANIFEST_FILE).write_text(json.dumps(m))


def _edit_config(out: Path) -> None:
    info = json.loads((out / RUN_FILE).read_text())
    info["config"]["wires"]["r_row"] = 2.0
    (out / RUN_FILE).write_text(json.dumps(info))


@pytest.mark.parametrize("damage, message", [
    pytest.param(lambda out: _truncate(out / PART1), rf"chunk 1 \(dies 4-7\): {PART1} has \d+ bytes, manifest.json "
                 r"recorded \d+ \(truncated", id="truncated"),
    pytest.param(lambda out: (out / PART1).unlink(), rf"chunk 1 \(dies 4-7\): {PART1} is missing", id="deleted"),
    pytest.param(lambda out: _flip(out / PART1), rf"{PART1} does not match its sha256 checksum", id="bit-flip"),
    pytest.param(_drop_entry, rf"incomplete: chunk 1 \(dies 4-7, {PART1}\) is not recorded in the manifest",
                 id="manifest-entry"),
    pytest.param(lambda out: (out / MANIFEST_FILE).unlink(), "has no manifest.json; rebuild it", id="manifest"),
    pytest.param(_edit_config, "run.json was edited after the run started", id="edited-config"),
])
def test_damage_is_refused_with_the_part_and_the_fix(tmp_path, damage, message):
    store = full_run(tmp_path / "run")
    damage(store.path)
    with pytest.raises(ConfigError, match=message) as info:
        load_dies(store.path)
    text = str(info.value)
    assert "\n" not in text and (f"--resume --out {store.path}" in text or "--no-verify" in text)


def test_a_flipped_bit_in_a_voltage_file_is_refused(tmp_path):
    store = full_run(tmp_path / "run")
    _flip(store.path / "voltages" / "part-00002.h5")
    assert load_voltages(store.path, [0, 5]).voltages.shape == (2, N_IMAGES, N_OUT)  # reads only parts 0, 1
    with pytest.raises(ConfigError, match=r"voltages/part-00002.h5 does not match its sha256"):
        load_voltages(store.path)


def test_verify_false_still_reads_a_readable_change(tmp_path):
    """A same-size change inside the Parquet footer leaves a readable file: refused by default,
    read with verify=False (sizes only); so is an edited run.json."""
    store = full_run(tmp_path / "run")
    path = store.path / PART1
    data = path.read_bytes()
    assert data.count(b'"mixed"') >= 1
    path.write_bytes(data.replace(b'"mixed"', b'"mixee"'))
    _edit_config(store.path)
    with pytest.raises(ConfigError, match="run.json was edited"):
        load_dies(store.path)
    assert load_dies(store.path, verify=False)["die"].tolist() == list(range(10))
    assert load_voltages(store.path, verify=False).voltages.shape == (10, N_IMAGES, N_OUT)


def test_rows_that_are_not_the_chunk_dies_are_refused(tmp_path):
    """Duplicate die indices with a manifest made consistent: the rows check catches them."""
    store = full_run(tmp_path / "run")
    path = store.path / PART1
    table = pq.read_table(path)
    die = table.column("die").to_numpy().copy()
    die[1] = die[0]
    pq.write_table(table.set_column(1, "die", [die]), path)
    m = manifest(store.path)
    m["chunks"]["1"]["files"][PART1] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (store.path / MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(ConfigError, match=rf"{PART1}: its rows are not dies 4-7 once each"):
        load_dies(store.path)


def test_yield_command_refuses_a_damaged_run_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from yieldmc.cli import app

    store = full_run(tmp_path / "run")
    _flip(store.path / PART1)
    result = CliRunner().invoke(app, ["yield", str(store.path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == \
        [line for line in result.output.splitlines() if line.strip()]
    assert PART1 in result.output and "sha256" in result.output


def test_checksum_cost_is_small(tmp_path):
    """Verification hashes each file it reads once more: for 1000 dies (180 test images)
    it costs little next to reading the table (10,000 dies: +30 ms on 115 ms)."""
    store = RunStore.create(tmp_path / "run", run_info(n_dies=1000, chunk_size=100))
    for c in range(store.n_chunks):
        store.write_chunk(c, rows(store, c), *volts(store, c, 180))
    store.finish({})
    t0 = time.perf_counter()
    load_dies(store.path, verify=False)
    t1 = time.perf_counter()
    load_dies(store.path)
    t2 = time.perf_counter()
    assert t2 - t1 < 2.0 + 5 * (t1 - t0)  # loose: a shared CI machine


# --- a missing manifest is rebuilt ---------------------------------------------------------------

def _stamps(out: Path) -> dict:
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(out.rglob("part-*"))}


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_a_missing_manifest_is_rebuilt_and_the_parts_kept(tmp_path, caplog, damage):
    store = full_run(tmp_path / "run")
    before = _stamps(store.path)
    if damage == "deleted":
        (store.path / MANIFEST_FILE).unlink()
    else:
        (store.path / MANIFEST_FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="yieldmc"):
        again = RunStore.create(store.path, run_info(), resume=True)
    assert "rebuilt it from the parts: 3 of 3 chunks recovered" in caplog.text
    assert again.finished_chunks() == {0, 1, 2}
    assert _stamps(store.path) == before  # same files: not one recomputed
    again.finish({})
    assert load_dies(store.path)["die"].tolist() == list(range(10))


def test_a_rebuilt_manifest_keeps_only_parts_that_prove_themselves(tmp_path, caplog):
    store = full_run(tmp_path / "run")
    (store.path / MANIFEST_FILE).unlink()
    _truncate(store.path / "voltages" / "part-00002.h5")  # this run's, but damaged: recomputed
    with caplog.at_level(logging.WARNING, logger="yieldmc"):
        again = RunStore.create(store.path, run_info(), resume=True)
    assert "2 of 3 chunks recovered" in caplog.text
    assert again.finished_chunks() == {0, 1}
    assert not (store.path / "dies" / "part-00002.parquet").exists()


def test_parts_of_another_run_are_never_deleted(tmp_path):
    store = full_run(tmp_path / "run")
    other = full_run(tmp_path / "other", seed=99)
    (store.path / MANIFEST_FILE).unlink()
    mine = other.path / PART1
    (store.path / PART1).write_bytes(mine.read_bytes())
    with pytest.raises(ConfigError, match=f"{PART1} is not this run's .* move them away"):
        RunStore.create(store.path, run_info(), resume=True)
    assert (store.path / PART1).read_bytes() == mine.read_bytes()


def test_a_manifest_rebuilt_by_resume_reads_without_recomputing(tmp_path):
    store = full_run(tmp_path / "run")
    (store.path / MANIFEST_FILE).unlink()
    with pytest.raises(ConfigError, match="no manifest.json; rebuild it from the parts with `yieldmc sample"):
        load_dies(store.path)
    RunStore.create(store.path, run_info(), resume=True).finish({})
    assert load_dies(store.path)["die"].tolist() == list(range(10))


def test_a_run_of_an_older_yieldmc_still_reads_and_resumes(tmp_path):
    """Format 1 manifests have no settings checksum and no 'files' record."""
    store = full_run(tmp_path / "run")
    m = manifest(store.path)
    del m["config_sha256"], m["files"]
    (store.path / MANIFEST_FILE).write_text(json.dumps(m))
    assert load_dies(store.path)["die"].tolist() == list(range(10))
    RunStore.create(store.path, run_info(), resume=True).finish({})
    assert manifest(store.path)["config_sha256"]  # recorded from now on
    _edit_config(store.path)
    with pytest.raises(ConfigError, match="run.json was edited"):
        load_dies(store.path)


def test_correcting_a_run_without_manifest_writes_no_manifest(tmp_path):
    store = full_run(tmp_path / "run")
    (store.path / MANIFEST_FILE).unlink()
    with pytest.raises(ConfigError, match="no manifest.json"):
        _corrected(RunStore.open(store.path))
    assert not (store.path / MANIFEST_FILE).exists() and not (store.path / LOCK_FILE).exists()


# --- overwrite ----------------------------------------------------------------------------------

def test_overwrite_deletes_only_what_the_run_wrote(tmp_path):
    store = full_run(tmp_path / "run")
    mine = {"dies/part-99999.parquet": b"mine", "dies/.mine.tmp": b"mine", "notes.txt": b"mine",
            "voltages/readme.md": b"mine"}
    for rel, data in mine.items():
        (store.path / rel).write_bytes(data)
    new = RunStore.create(store.path, run_info(n_dies=4), overwrite=True)
    for rel, data in mine.items():
        assert (store.path / rel).read_bytes() == data
    assert sorted(p.name for p in (store.path / "dies").iterdir()) == [".mine.tmp", "part-99999.parquet"]
    assert read_run_info(store.path)["run_id"] == new.run_id


def test_overwrite_refuses_a_run_json_yieldmc_did_not_write(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_FILE).write_text('{"mine": true}')
    (out / "dies").mkdir()
    (out / "dies" / "part-00000.parquet").write_text("mine")
    with pytest.raises(ConfigError, match=f"{RUN_FILE}, dies/part-00000.parquet were not written"):
        RunStore.create(out, run_info(), overwrite=True)
    assert (out / RUN_FILE).read_text() == '{"mine": true}'
    assert (out / "dies" / "part-00000.parquet").read_text() == "mine"
    assert not (out / LOCK_FILE).exists()


def test_overwrite_after_correct_removes_the_corrected_files(tmp_path):
    store = full_run(tmp_path / "run")
    with store.locked("correct"):
        store.check_writable("corrected")
        store.write_file("corrected/per-die.parquet", lambda tmp: Path(tmp).write_bytes(b"corrected"))
    assert "corrected/per-die.parquet" in manifest(store.path)["files"]
    (store.path / "corrected" / "mine.csv").write_text("mine")
    RunStore.create(store.path, run_info(), overwrite=True)
    assert sorted(p.name for p in (store.path / "corrected").iterdir()) == ["mine.csv"]


def _corrected(store: RunStore, mode: str = "per-die") -> Path:
    """What `yieldmc correct` writes, without the dies' models."""
    import pyarrow as pa

    table = pa.table({"die": np.arange(10), "accuracy_corrected": np.full(10, 0.9)})
    meta = {b"yieldmc.run_id": store.run_id.encode()}
    with store.locked("correct"):
        return store.write_file(f"corrected/{mode}.parquet",
                                lambda tmp: pq.write_table(table.replace_schema_metadata(meta), tmp))


def test_corrected_results_are_verified(tmp_path):
    from yieldmc.correction import load_corrected

    store = full_run(tmp_path / "run")
    path = _corrected(store)
    assert load_corrected(store.path)["accuracy_corrected"].tolist() == [0.9] * 10
    _flip(path)
    with pytest.raises(ConfigError, match="per-die.parquet does not match its sha256 checksum"):
        load_corrected(store.path)
    other = full_run(tmp_path / "other")
    (store.path / MANIFEST_FILE).write_text((store.path / MANIFEST_FILE).read_text().replace(  # unrecorded
        "corrected/per-die.parquet", "corrected/x.parquet"))
    path.write_bytes(_corrected(other).read_bytes())
    with pytest.raises(ConfigError, match=f"was written for run {other.run_id}, not for the run in"):
        load_corrected(store.path)


def test_sample_correct_overwrite_end_to_end(tmp_path, network_cache, monkeypatch):
    """The attacker's sequence on real commands: sample, correct, sample --overwrite."""
    from yieldmc.config import load_config
    from yieldmc.correction import correct_run, corrected_path
    from yieldmc.montecarlo import run_sample

    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))
    config = load_config("paper", None, {"seed": 7})
    out = tmp_path / "run"
    run_sample(config, 6, out, chunk_size=3)
    assert not (out / LOCK_FILE).exists()
    correct_run(out, "per-die", method="linear-ridge")
    assert not (out / LOCK_FILE).exists()
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        correct_run(out, "per-die", method="linear-ridge")
    correct_run(out, "per-die", method="linear-ridge", overwrite=True)
    summary = run_sample(config, 4, out, chunk_size=4, overwrite=True)
    assert summary["dies"] == 4 and not corrected_path(out, "per-die").exists()
    assert not (out / "corrected").exists() and not (out / LOCK_FILE).exists()


# --- read-only run, full disk -------------------------------------------------------------------

@pytest.fixture
def mount_point(tmp_path):
    """Mount helpers that skip when this machine lets no test mount (not root, a container)."""
    mounted = []

    def mount(*args: str) -> None:
        proc = subprocess.run(["mount", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount here ({proc.stderr.strip() or proc.returncode}): needs root "
                        "and CAP_SYS_ADMIN")
        mounted.append(args[-1])

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", target], capture_output=True)


def _no_computing(*args, **kwargs):
    raise AssertionError("correct computed dies on a run it cannot write")


@pytest.mark.parametrize("how", ["monkeypatch", "ro-bind-mount"])
def test_correct_on_a_read_only_run_fails_before_computing(tmp_path, monkeypatch, mount_point, how):
    store = full_run(tmp_path / "run")
    monkeypatch.setattr(yieldmc.correction, "_compute", _no_computing)
    if how == "monkeypatch":
        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")
        monkeypatch.setattr(yieldmc.runlock, "create_exclusive", read_only)
        monkeypatch.setattr(Path, "mkdir", read_only)
        run = store.path
    else:
        run = tmp_path / "ro"
        run.mkdir()
        mount_point("--bind", str(store.path), str(run))
        mount_point("-o", "remount,ro,bind", str(run))
    with pytest.raises(StoreWriteError, match=rf"read-only file system writing {run}/\S+; make {run} writable "
                                              r"and run `yieldmc correct .* --mode per-die` again") as info:
        yieldmc.correction.correct_run(run, "per-die")
    assert info.value.exit_code == 1 and "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["parquet", "h5", "manifest"])
def test_a_full_disk_is_one_line_and_leaves_the_run_intact(tmp_path, monkeypatch, target):
    store = RunStore.create(tmp_path / "run", run_info())
    write(store, 0)
    before = {str(p): p.read_bytes() for p in store.path.rglob("*") if p.is_file()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if target == "parquet":
        monkeypatch.setattr(yieldmc.store.pq, "write_table", full)
    elif target == "h5":
        monkeypatch.setattr(yieldmc.store.schema, "write_voltage_file", full)
    else:
        real = os.replace
        monkeypatch.setattr(os, "replace", lambda src, dst: full() if Path(dst).name == MANIFEST_FILE
                            else real(src, dst))
    rel = {"parquet": PART1, "h5": "voltages/part-00001.h5", "manifest": MANIFEST_FILE}[target]
    with pytest.raises(StoreWriteError, match=rf"^no space left on device writing {store.path}/{rel}; free space "
                                              rf"and run again with --resume --out {store.path}$") as info:
        write(store, 1)
    err = pickle.loads(pickle.dumps(info.value))
    assert (type(err), str(err), err.errno) == (StoreWriteError, str(info.value), errno.ENOSPC)
    assert isinstance(err, OSError) and isinstance(err, YieldmcError)
    monkeypatch.undo()
    assert not temp_files(store.path)
    assert manifest(store.path)["chunks"].keys() == {"0"}
    assert {str(p): p.read_bytes() for p in store.path.rglob("*") if str(p) in before} == before
    assert RunStore.create(store.path, run_info(), resume=True).finished_chunks() == {0}


@pytest.mark.parametrize("what", ["h5", "parquet"])
def test_a_real_full_tmpfs(tmp_path, mount_point, what):
    """A real full disk (a 256 kB tmpfs): HDF5 must not crash the process (h5py 3.16 /
    HDF5 2.0 segfault when closing a file whose write failed), Arrow's error is one line."""
    out = tmp_path / "small"
    out.mkdir()
    mount_point("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(out))
    store = RunStore.create(out / "run", run_info())
    write(store, 0)
    n_images = N_IMAGES
    if what == "h5":
        n_images = 4000  # ~640 kB of noise: does not fit
    else:  # fill the disk: not even the few kB of a Parquet part fit
        with open(out / "filler", "wb") as fh, pytest.raises(OSError):
            fh.write(b"\0" * (1 << 20))
    rel = {"h5": "voltages/part-00001.h5", "parquet": PART1}[what]
    with pytest.raises(StoreWriteError, match=f"no space left on device writing .*{rel}; free space"):
        store.write_chunk(1, rows(store, 1), *volts(store, 1, n_images))
    assert not temp_files(out) and manifest(store.path)["chunks"].keys() == {"0"}
    (out / "filler").unlink(missing_ok=True)
    assert RunStore.create(store.path, run_info(), resume=True).finished_chunks() == {0}


# --- malformed run.json -----------------------------------------------------------------------------

@pytest.mark.parametrize("content, what", [
    ("[]", "expected a JSON object, got an array"),
    ("{}", "it lacks 'format_version', 'run_id', 'config'"),
    ("not json", "cannot read"),
    (None, r"'n_dies' must be an integer >= 1, got '3000'"),
    ("store_voltages", "'store_voltages' must be one of none, test, all, got 'some'"),
])
def test_a_malformed_run_json_is_one_line(tmp_path, content, what):
    store = full_run(tmp_path / "run")
    path = store.path / RUN_FILE
    info = json.loads(path.read_text())
    if content is None:
        path.write_text(json.dumps(info | {"n_dies": "3000"}))
    elif content == "store_voltages":
        path.write_text(json.dumps(info | {"store_voltages": "some"}))
    else:
        path.write_text(content)
    for call in (lambda: load_dies(store.path), lambda: read_run_info(store.path),
                 lambda: RunStore.create(store.path, run_info(), resume=True),
                 lambda: yieldmc.correction.correct_run(store.path)):
        with pytest.raises(ConfigError, match=what) as info_:
            call()
        assert str(path) in str(info_.value) and "\n" not in str(info_.value)


@pytest.mark.parametrize("code, error", [(errno.ENOSPC, "StoreWriteError"), (errno.EROFS, "StoreWriteError"),
                                          (errno.ENOTDIR, "ConfigError")])
def test_an_out_folder_that_cannot_be_made_is_a_disk_error_or_bad_input(tmp_path, monkeypatch, code, error):
    """A full or read-only disk before the first file is the disk's fault (exit 1, StoreWriteError);
    an --out under a file is the user's (exit 2, ConfigError)."""
    def refuse(folder, parents=False):
        raise OSError(code, os.strerror(code), str(folder))

    monkeypatch.setattr(yieldmc.store, "_probe", refuse)
    with pytest.raises(YieldmcError) as info:
        yieldmc.store.RunStore.create(tmp_path / "run", {"config": {}, "seed": 0, "n_dies": 4, "chunk_size": 2,
                                                         "store_voltages": "none"})
    assert type(info.value).__name__ == error
    assert getattr(info.value, "exit_code", 2) == (1 if error == "StoreWriteError" else 2)
    assert "\n" not in str(info.value)


def test_empty_layers_option_is_refused():
    """--layers "" meant every layer, silently."""
    from yieldmc.cli import parse_layers

    with pytest.raises(ConfigError, match="--layers"):
        parse_layers("")
    assert parse_layers("all") == [] and parse_layers("0, 2") == [0, 2]
