"""``yieldmc sample`` on the command line: bad input, refusal, summaries, kills and Ctrl-C.

Most tests call the typer app in this process (``CliRunner``); the ones about signals run
the real command as a subprocess. Every run is small and writes into ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.tolerances import ARITHMETIC_RTOL
from yieldmc import schema
from yieldmc.cli import app
from yieldmc.store import MANIFEST_FILE, load_dies, load_voltages, read_run_info, sha256_file

SEED = 3
#: Seconds a subprocess may take to reach its first finished chunk (imports, model build).
STARTUP_TIMEOUT = 120


@pytest.fixture(autouse=True)
def _use_cache(network_cache, monkeypatch):
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))


def sample(*args, out: Path | None = None):
    """Run ``yieldmc sample`` in this process; stdout and stderr are kept apart."""
    argv = ["sample", "--seed", str(SEED), *map(str, args)]
    if out is not None:
        argv += ["--out", str(out)]
    return CliRunner().invoke(app, argv)


def command(*args) -> list[str]:
    return [sys.executable, "-m", "yieldmc.cli", "sample", "--seed", str(SEED), *map(str, args)]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def assert_clean_failure(result, match: str) -> str:
    """Exit code 2, one ``error: ...`` line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def results(out: Path) -> tuple[pd.DataFrame, np.ndarray]:
    return load_dies(out).drop(columns=list(schema.EXECUTION_COLUMNS)), load_voltages(out).voltages


def assert_same_results(out: Path, reference: Path) -> None:
    (table, volts), (ref_table, ref_volts) = results(out), results(reference)
    pd.testing.assert_frame_equal(table, ref_table, check_exact=True)
    assert np.array_equal(volts, ref_volts)


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (sha256_file(p), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def finished_chunks(out: Path) -> int:
    try:
        return len(json.loads((out / MANIFEST_FILE).read_text())["chunks"])
    except (OSError, ValueError, KeyError):  # not written yet (or being replaced)
        return 0


# --- bad input -----------------------------------------------------------------------------------

#: (arguments, pattern the error line must match); "{file}" becomes a regular file's path.
BAD_INPUT = {
    "zero-dies": (["--dies", "0"], "--dies"),
    "negative-dies": (["--dies", "-5"], "--dies"),
    "unknown-defect": (["--dies", "5", "--defect", "nope"], "nope"),
    "out-under-a-file": (["--dies", "5", "--out", "{file}/run"], "cannot write"),
    "out-is-a-file": (["--dies", "5", "--out", "{file}"], "not a directory"),
    "zero-chunk-size": (["--dies", "5", "--chunk-size", "0"], "--chunk-size"),
    "bogus-store-voltages": (["--dies", "5", "--store-voltages", "bogus"], "--store-voltages"),
    "zero-jobs": (["--dies", "5", "--jobs", "0"], "--jobs"),
    "unknown-backend": (["--dies", "5", "--backend", "spark"], "backend"),
    "address-without-dask": (["--dies", "5", "--scheduler-address", "tcp://127.0.0.1:1"], "--backend dask"),
    "malformed-address": (["--dies", "5", "--backend", "dask", "--scheduler-address", "nonsense"],
                          "cannot reach the dask scheduler"),
    "missing-scheduler-file": (["--dies", "5", "--backend", "dask", "--scheduler-file", "{file}.nope"],
                               "scheduler file not found"),
    "threshold-above-one": (["--dies", "5", "--threshold", "1.5"], "threshold"),
    "resume-and-overwrite": (["--dies", "5", "--resume", "--overwrite"], "not both"),
    # the paper network has 4 layers (0..3): refused before --out is made
    "layer-out-of-range": (["--dies", "5", "--layers", "7"], r"defects.layers \[7\] out of range"),
    "absurd-jobs": (["--dies", "5", "--jobs", "100000"], "--jobs 100000"),
}

def _bad_args(name: str, tmp_path: Path) -> tuple[list[str], str, Path]:
    args, match = BAD_INPUT[name]
    regular = tmp_path / "a-file"
    regular.write_text("not a directory")
    args = [a.replace("{file}", str(regular)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    return args, match, tmp_path / "run"


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_fails_with_one_error_line(name, tmp_path):
    args, match, out = _bad_args(name, tmp_path)
    assert_clean_failure(sample(*args), match)
    assert not out.exists()  # nothing was written
    assert (tmp_path / "a-file").read_text() == "not a directory"


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_error_is_the_only_stderr_line(name, tmp_path):
    args, _, _ = _bad_args(name, tmp_path)
    result = sample(*args)
    assert [line for line in result.stderr.splitlines() if line.strip()] == error_lines(result.stderr)


def test_bad_input_with_quiet_prints_only_the_error(tmp_path):
    result = sample("--dies", "-5", "--quiet", out=tmp_path / "run")
    line = assert_clean_failure(result, "--dies")
    assert result.stderr.strip() == line


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("x")
    proc = subprocess.run(command("--dies", "5", "--out", regular / "run"), capture_output=True,
                          text=True, timeout=STARTUP_TIMEOUT)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1 and "cannot write" in error_lines(proc.stderr)[0]


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    start = time.perf_counter()
    result = sample("--dies", "5", "--backend", "dask", "--scheduler-address", "tcp://127.0.0.1:1", out=out)
    elapsed = time.perf_counter() - start
    assert_clean_failure(result, "cannot reach the dask scheduler")
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert not out.exists()  # the corrected command can run into the same directory


# --- refusal to overwrite ------------------------------------------------------------------------

def test_second_run_is_refused_and_overwrite_replaces(tmp_path):
    out = tmp_path / "run"
    first = sample("--dies", "8", "--chunk-size", "3", "-q", out=out)
    assert first.exit_code == 0, first.stderr
    run_id = read_run_info(out)["run_id"]
    before = snapshot(out)

    again = sample("--dies", "8", "--chunk-size", "3", "-q", out=out)
    line = assert_clean_failure(again, "not empty")
    assert "--resume" in line and "--overwrite" in line
    assert snapshot(out) == before

    replaced = sample("--dies", "10", "--chunk-size", "4", "-q", "--overwrite", out=out)
    assert replaced.exit_code == 0, replaced.stderr
    info = read_run_info(out)
    assert info["run_id"] != run_id and info["n_dies"] == 10 and info["status"] == "complete"
    assert load_dies(out)["die"].tolist() == list(range(10))
    assert len(list((out / "dies").glob("part-*.parquet"))) == 3


# --- output ----------------------------------------------------------------------------------------

def test_summary_line_and_progress(tmp_path):
    out = tmp_path / "run"
    result = sample("--dies", "12", "--chunk-size", "5", out=out)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    line = lines[0]
    summary = read_run_info(out)["summary"]
    assert line.startswith("12 dies, ")
    assert f"mean accuracy {summary['mean_accuracy']:.4f}" in line
    assert f"yield {summary['yield']:.4f} at accuracy >= 0.80" in line
    assert re.search(r", [\d,]+ dies/s", line)
    assert str(out) in line
    assert "12/12" in result.stderr  # the progress bar's last state, on stderr only
    assert "ETA 0:00:00" in result.stderr
    assert "error" not in result.stderr.lower()


def test_json_summary(tmp_path):
    out = tmp_path / "run"
    result = sample("--dies", "12", "--chunk-size", "5", "--json", "--threshold", "0.6", out=out)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"dies", "mean_accuracy", "yield", "threshold", "elapsed_s", "dies_per_s"} <= set(summary)
    acc = load_dies(out)["accuracy"].to_numpy()
    assert summary["dies"] == 12
    assert summary["threshold"] == 0.6
    assert summary["mean_accuracy"] == pytest.approx(acc.mean(), rel=ARITHMETIC_RTOL, abs=0)
    assert summary["yield"] == np.mean(acc >= 0.6)
    assert summary["elapsed_s"] > 0 and summary["dies_per_s"] > 0


def test_quiet_prints_no_progress(tmp_path):
    result = sample("--dies", "4", "-q", "--json", out=tmp_path / "run")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert json.loads(result.stdout)["dies"] == 4


# --- crashes: SIGKILL and Ctrl-C ---------------------------------------------------------------------

#: dies of the interrupted runs: a second or more of work after the first chunk (the compiled
#: engine simulates a chunk of 10 in about 5 ms; each chunk's files take about as long)
N_KILLED = 2000
KILLED_CHUNK = 10


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, network_cache) -> Path:
    """The run the interrupted ones must reproduce (other chunk size, same dies)."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        result = sample("--dies", N_KILLED, "--chunk-size", 64, "-q", out=out)
    assert result.exit_code == 0, result.stderr
    return out


def _start_and_wait_for_a_chunk(out: Path, *args) -> subprocess.Popen:
    """Start ``yieldmc sample`` and return once the manifest lists a finished chunk."""
    proc = subprocess.Popen(
        command("--dies", N_KILLED, "--chunk-size", KILLED_CHUNK, "--out", out, *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell that starts pytest in the background makes SIGINT ignored in its children
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while finished_chunks(out) < 1:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            stdout, stderr = proc.communicate()
            pytest.fail(f"no chunk finished (rc {proc.returncode}): {stderr[-2000:]}")
        time.sleep(0.02)
    return proc


def test_resume_after_sigkill(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _start_and_wait_for_a_chunk(out, "-q")
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    n_before = finished_chunks(out)
    n_chunks = -(-N_KILLED // KILLED_CHUNK)
    assert 1 <= n_before < n_chunks, "the run finished before it was killed: raise N_KILLED"
    assert read_run_info(out)["status"] == "running"

    refused = sample("--dies", N_KILLED, "--chunk-size", KILLED_CHUNK, "-q", out=out)
    assert_clean_failure(refused, "--resume")
    resumed = sample("--dies", N_KILLED, "--resume", "--json", "-q", out=out)
    assert resumed.exit_code == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["dies"] == N_KILLED
    assert summary["dies_simulated_now"] <= N_KILLED - n_before * KILLED_CHUNK
    assert read_run_info(out)["status"] == "complete"
    assert not list(out.rglob("*.tmp"))
    assert_same_results(out, uninterrupted)


@pytest.mark.parametrize("workers", [
    pytest.param(["--jobs", "1"], id="jobs-1"),
    pytest.param(["--jobs", "2"], id="threads-2"),
    pytest.param(["--jobs", "2", "--backend", "loky"], marks=pytest.mark.slow, id="loky-2"),
    pytest.param(["--jobs", "2", "--backend", "dask"], marks=pytest.mark.slow, id="dask-2"),
])
def test_ctrl_c_leaves_a_resumable_run(tmp_path, uninterrupted, workers):
    out = tmp_path / "run"
    proc = _start_and_wait_for_a_chunk(out, *workers)
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("yieldmc sample did not stop within 30 s of SIGINT")
    if proc.returncode == 0:
        pytest.fail("the run finished before SIGINT arrived: raise N_KILLED")
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "--resume" in stderr
    assert stdout == ""
    assert read_run_info(out)["status"] == "running"

    resumed = sample("--dies", N_KILLED, "--resume", "-q", out=out)
    assert resumed.exit_code == 0, resumed.stderr
    assert_same_results(out, uninterrupted)


# --- memory ------------------------------------------------------------------------------------------

def _peak_rss_kib(out: Path, dies: int) -> int:
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not os.path.exists(time_bin):
        pytest.skip("GNU time is not installed")
    proc = subprocess.run([time_bin, "-v", *command("--dies", dies, "--out", out, "-q",
                                                    "--store-voltages", "test")],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert match, proc.stderr[-2000:]
    return int(match.group(1))


@pytest.mark.slow
def test_memory_stays_flat_in_the_number_of_dies(tmp_path):
    small = _peak_rss_kib(tmp_path / "small", 3000)
    large = _peak_rss_kib(tmp_path / "large", 12000)
    assert load_dies(tmp_path / "large")["die"].tolist() == list(range(12000))
    assert large < 1.3 * small, f"peak RSS {small} KiB for 3000 dies, {large} KiB for 12000"
