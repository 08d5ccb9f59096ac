"""A sweep meeting trouble outside the user's input: a killed parent or worker, a full or
read-only disk, too many workers, a slow first start. Every failure is one ``error:`` line
(exit code 1, with the resume hint once the run exists), never a traceback.

The process tests run ``python -m yieldmc.cli sample`` and look at its children in ``/proc``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import yieldmc.montecarlo as mc
from tests.tolerances import ARITHMETIC_RTOL
from yieldmc.cli import app, user_errors
from yieldmc.config import load_config
from yieldmc.errors import ConfigError
from yieldmc.store import MANIFEST_FILE, RunStore, load_dies, read_run_info

SEED = 5
#: Seconds a subprocess may take to reach its first finished chunk (imports, model build).
STARTUP_TIMEOUT = 120
#: Seconds within which every child of a killed ``sample`` must be gone (the watchdog polls
#: every 0.5 s; loky's own idle timeout is 300 s).
ORPHAN_DEADLINE = 8
#: Dies of the killed runs: far more than the few seconds the tests wait (~500 dies/s).
N_LONG = 50_000

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture(autouse=True)
def _use_cache(network_cache, monkeypatch):
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))


def sample(*args, out: Path):
    return CliRunner().invoke(app, ["sample", "--seed", str(SEED), *map(str, args), "--out", str(out)])


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def assert_one_error_line(result, code: int, *patterns: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for pattern in patterns:
        assert pattern in lines[0], lines[0]
    return lines[0]


# --- processes ------------------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has ended (not reaped yet)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def finished_chunks(out: Path) -> int:
    try:
        return len(json.loads((out / MANIFEST_FILE).read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return 0


def start_sweep(out: Path, *args) -> tuple[subprocess.Popen, list[int]]:
    """``yieldmc sample`` with 2 workers; return it and its workers once a chunk is done."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "yieldmc.cli", "sample", "--seed", str(SEED), "--dies", str(N_LONG),
         "--chunk-size", "20", "--jobs", "2", "-q", "--out", str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while finished_chunks(out) < 1:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no chunk finished (rc {proc.returncode}): {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    return proc, children(proc.pid)


def workers_of(kids: list[int], marker: str) -> list[int]:
    return [k for k in kids if marker in cmdline(k)]


def wait_until_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize("backend, marker", [
    pytest.param("loky", "LokyProcess", id="loky"),
    # distributed's worker processes end with their parent by themselves: a guard only
    pytest.param("dask", "spawn_main", id="dask", marks=pytest.mark.slow),
])
def test_killing_the_parent_ends_its_workers(tmp_path, backend, marker):
    proc, kids = start_sweep(tmp_path / "run", "--backend", backend)
    workers = workers_of(kids, marker)
    try:
        assert len(workers) == 2, [cmdline(k) for k in kids]
        proc.kill()
        proc.communicate(timeout=30)
        left = wait_until_gone(kids, ORPHAN_DEADLINE)
        assert not left, f"still running {ORPHAN_DEADLINE} s after the parent died: {[cmdline(p) for p in left]}"
    finally:
        for pid in kids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    chunks = finished_chunks(tmp_path / "run")
    time.sleep(1.0)
    assert finished_chunks(tmp_path / "run") == chunks  # nothing writes to the run any more


def test_a_killed_worker_is_one_line_with_the_resume_hint(tmp_path):
    out = tmp_path / "run"
    proc, kids = start_sweep(out, "--backend", "loky")
    workers = workers_of(kids, "LokyProcess")
    assert workers, [cmdline(k) for k in kids]
    os.kill(workers[0], signal.SIGKILL)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("yieldmc sample did not stop after one of its workers was killed")
    assert proc.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr and stdout == ""
    assert [line for line in stderr.splitlines() if line.strip()] == [
        f"error: a worker process died (killed, or out of memory?); finished chunks are kept: "
        f"run again with --resume --out {out}"]
    assert read_run_info(out)["status"] == "running"
    assert not wait_until_gone(kids, ORPHAN_DEADLINE)


def _failing_chunk_task(spec, store, chunk, parent_pid=None):
    """Runs in a loky worker (pickled by value): a user error in chunk 1, with a line break."""
    if chunk == 1:
        raise ConfigError("chunk 1 has a problem\nthat spans two lines")
    return mc._chunk_task(spec, store, chunk, parent_pid)


def test_a_yieldmc_error_raised_in_a_worker_is_one_line(tmp_path, monkeypatch):
    cloudpickle = pytest.importorskip("cloudpickle")  # what loky pickles tasks with
    monkeypatch.setattr(mc, "available_cores", lambda: 2)
    monkeypatch.setattr(mc, "_chunk_task", _failing_chunk_task)  # the workers get it by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        result = sample("--dies", 40, "--chunk-size", 10, "--jobs", 2, "--backend", "loky", "-q",
                        out=tmp_path / "run")
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    line = assert_one_error_line(result, 2)
    assert line == "error: chunk 1 has a problem that spans two lines"


# --- disks ------------------------------------------------------------------------------------------

def _raise_on_chunk(exc: OSError, chunk: int = 1):
    original = RunStore.write_chunk_files

    def write(self, c, *args, **kwargs):
        if c == chunk:
            raise exc
        return original(self, c, *args, **kwargs)

    return write


@pytest.mark.parametrize("exc, reason", [
    pytest.param(OSError(errno.ENOSPC, "No space left on device", "dies/part-00001.parquet"),
                 "No space left on device: dies/part-00001.parquet", id="enospc"),
    pytest.param(OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded", id="edquot"),
    pytest.param(OSError(errno.EROFS, "Read-only file system"), "Read-only file system", id="erofs"),
    # h5py: the errno is only in the text of the message
    pytest.param(OSError("Can't synchronously write data (file write failed: time = Thu, filename = "
                         "'x.h5', file descriptor = 5, errno = 28, error message = 'No space left on "
                         "device', buf = 0x1, total write size = 2048)"),
                 "No space left on device", id="hdf5-text"),
])
def test_a_disk_error_in_a_chunk_is_one_line_and_resumable(tmp_path, monkeypatch, exc, reason):
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RunStore, "write_chunk_files", _raise_on_chunk(exc))
        result = sample("--dies", 12, "--chunk-size", 4, "-q", out=out)
    assert_one_error_line(result, 1, reason, f"; finished chunks are kept: run again with --resume --out {out}")
    assert finished_chunks(out) == 1 and read_run_info(out)["status"] == "running"

    resumed = sample("--dies", 12, "--resume", "-q", "--json", out=out)
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["dies_simulated_now"] == 8
    assert load_dies(out)["die"].tolist() == list(range(12))


def test_the_stores_own_write_error_reaches_the_user_unchanged(tmp_path):
    """A full disk met inside the store (StoreWriteError, already one line with its fix)."""
    from yieldmc.errors import store_write_error

    out = tmp_path / "run"
    exc = store_write_error(OSError(errno.ENOSPC, "No space left on device"), out / "dies" / "part-00001.parquet",
                            out, f"run again with --resume --out {out}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RunStore, "write_chunk_files", _raise_on_chunk(exc))
        result = sample("--dies", 12, "--chunk-size", 4, "-q", out=out)
    assert assert_one_error_line(result, 1) == f"error: {exc}"


def test_a_full_disk_while_preparing_the_model_writes_no_run(tmp_path, monkeypatch):
    """numba's kernel cache or the network cache cannot be written: one line, no run left."""
    import yieldmc.die

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/cache/numba/_kernels.nbi")

    monkeypatch.setattr(yieldmc.die.DieModel, "build", full)
    out = tmp_path / "run"
    result = sample("--dies", 5, "-q", out=out)
    line = assert_one_error_line(result, 1, "No space left on device: /cache/numba/_kernels.nbi")
    assert "--resume" not in line
    assert not out.exists()


@pytest.mark.parametrize("code, exit_code", [
    (errno.ENOSPC, 1), (errno.EDQUOT, 1), (errno.EROFS, 1), (errno.EACCES, 2)])
def test_user_errors_turns_disk_errors_into_one_line(code, exit_code, capsys):
    @user_errors
    def command():
        raise OSError(code, os.strerror(code), "/some/file")

    with pytest.raises(typer.Exit) as info:
        command()
    assert info.value.exit_code == exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "/some/file" in err


def test_user_errors_leaves_other_os_errors_alone():
    @user_errors
    def command():
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        command()


# --- worker count -------------------------------------------------------------------------------------

def test_jobs_above_the_cores_are_lowered_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "available_cores", lambda: 1)
    result = sample("--dies", 6, "--jobs", 3, "--json", "-q", out=tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "warning: --jobs 3 is more than the 1 available cores: lowered to 1"]
    assert json.loads(result.stdout)["jobs"] == 1


@pytest.mark.parametrize("jobs", [5, 1000])
def test_absurd_jobs_are_refused_before_anything_is_written(tmp_path, monkeypatch, jobs):
    monkeypatch.setattr(mc, "available_cores", lambda: 1)
    out = tmp_path / "run"
    assert_one_error_line(sample("--dies", 6, "--jobs", jobs, out=out), 2, f"--jobs {jobs}", "-1")
    assert not out.exists()


def test_never_more_worker_processes_than_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "available_cores", lambda: 4)
    cfg = load_config("paper", None, {"seed": SEED})
    summary = mc.run_sample(cfg, 5, tmp_path / "run", jobs=4, chunk_size=5, backend="loky")
    assert summary["jobs"] == 1  # one chunk: this process
    threads = mc.run_sample(cfg, 5, tmp_path / "threads", jobs=4, chunk_size=5)
    assert threads["backend"] == "threads" and threads["jobs"] == 4  # threads split every chunk


def test_a_given_dask_scheduler_keeps_jobs_as_given():
    assert mc._parse_jobs(1000, local=False) == 1000
    with pytest.raises(ConfigError, match="--jobs"):
        mc._parse_jobs(0, local=False)


# --- start-up ------------------------------------------------------------------------------------------

def test_a_slow_start_prints_a_notice_before_the_bar(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "NOTICE_AFTER_S", 0.0)
    result = sample("--dies", 4, out=tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("preparing the die model") and "numba" in lines[0]
    assert "4/4" in result.stderr
    quiet = sample("--dies", 4, "-q", out=tmp_path / "quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_the_parent_simulates_a_die_before_the_workers_start(tmp_path, monkeypatch, engine):
    """The parent compiles (or loads) every kernel a die needs before starting workers, so
    that on a cold numba cache the workers do not all compile at once."""
    import yieldmc.die
    import yieldmc.engine.chunk

    calls: list[int] = []
    at_start: list[int] = []
    owner, name = ((yieldmc.engine.chunk, "simulate_chunk_compiled") if engine == "compiled"
                   else (yieldmc.die.DieModel, "die_outputs"))
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    monkeypatch.setattr(mc, "available_cores", lambda: 2)
    cfg = load_config("paper", None, {"seed": SEED})
    summary = mc.run_sample(cfg, 10, tmp_path / "run", jobs=2, chunk_size=5, backend="loky", engine=engine,
                            progress=lambda done, total: at_start.append(len(calls)) if not at_start else None)
    assert summary["jobs"] == 2 and summary["engine"] == engine
    assert at_start and at_start[0] >= 1  # before the first progress report, i.e. before any worker


def test_rate_and_eta_count_from_the_first_finished_chunk():
    meter = mc.RateMeter()
    meter.update(0, 100, now=0.0)  # before the workers start
    assert meter.rate is None and meter.eta_s is None
    meter.update(10, 100, now=30.0)  # first chunk, after 30 s of start-up (compiling)
    assert meter.rate is None and meter.eta_s is None
    meter.update(20, 100, now=30.5)  # too soon after the first chunk to say
    assert meter.rate is None
    meter.update(30, 100, now=32.0)
    assert meter.rate == pytest.approx(10.0, rel=ARITHMETIC_RTOL)
    assert meter.eta_s == pytest.approx(7.0, rel=ARITHMETIC_RTOL)
    meter.update(100, 100, now=39.0)
    assert meter.eta_s == 0.0
    resumed = mc.RateMeter()  # a resumed run starts at its finished dies
    resumed.update(60, 100, now=0.0)
    resumed.update(70, 100, now=5.0)
    resumed.update(80, 100, now=7.0)
    assert resumed.rate == pytest.approx(5.0, rel=ARITHMETIC_RTOL)
    assert resumed.eta_s == pytest.approx(4.0, rel=ARITHMETIC_RTOL)
