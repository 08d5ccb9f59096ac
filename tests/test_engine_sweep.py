"""The sweep on the compiled engine (issue 12): the same dies as the reference engine, on
any backend, thread count and chunk size; compression; runs of the older format.

Every run is small (tens of ``paper`` dies) and writes into ``tmp_path``; the network is
trained once per session (``YIELDMC_CACHE``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests.tolerances import VOLT_RTOL
from yieldmc import schema
from yieldmc.circuit import SOLVER_RTOL
from yieldmc.config import load_config
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import ModelSpec, default_chunk_size, resolve_backend, run_sample, simulate_chunk
from yieldmc.store import RUN_FILE, load_dies, load_voltages, read_run_info

N_DIES = 48
FORMAT1 = Path(__file__).parent / "data" / "run-format1"


@pytest.fixture(autouse=True)
def _use_cache(network_cache, monkeypatch):
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))


@pytest.fixture(scope="module")
def config():
    return load_config("paper", None, {"seed": 11})


@pytest.fixture(scope="module")
def runs(config, network_cache, tmp_path_factory):
    """The same dies by the reference engine (loky, one process) and by the compiled one
    (threads, one thread, one chunk)."""
    root = tmp_path_factory.mktemp("engines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        ref = run_sample(config, N_DIES, root / "reference", engine="reference", chunk_size=N_DIES)
        fast = run_sample(config, N_DIES, root / "compiled", chunk_size=N_DIES)
    assert ref["engine"] == "reference" and ref["backend"] == "loky"
    assert fast["engine"] == "compiled" and fast["backend"] == "threads"
    return root / "reference", root / "compiled"


def table(out: Path) -> pd.DataFrame:
    return load_dies(out).drop(columns=list(schema.EXECUTION_COLUMNS))


def assert_close_voltages(v: np.ndarray, w: np.ndarray) -> None:
    """float32 roundings of values within VOLT_RTOL (1e-9) of each die's largest |V| (the
    engines' promise): at most that plus one float32 step apart."""
    assert v.shape == w.shape and v.dtype == w.dtype == np.float32
    v, w = v.astype(np.float64), w.astype(np.float64)
    scale = np.abs(w).max(axis=(1, 2), keepdims=True)
    step = np.spacing(np.maximum(np.abs(v), np.abs(w)).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(v - w) <= VOLT_RTOL * scale + step)


def assert_same_dies(out: Path, other: Path, *, exact_voltages: bool = True) -> None:
    """Same rows; across engines (``exact_voltages`` False) the solver residual is the
    route's own (exact updates report 0) and voltages may differ by one float32 step."""
    a, b = table(out), table(other)
    if not exact_voltages:
        assert (a.pop("solver_max_residual") <= SOLVER_RTOL).all()
        assert (b.pop("solver_max_residual") <= SOLVER_RTOL).all()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    v, w = load_voltages(out).voltages, load_voltages(other).voltages
    assert v.dtype == w.dtype == np.float32 and v.shape == w.shape
    if exact_voltages:
        assert np.array_equal(v, w)
    else:
        assert_close_voltages(v, w)


def test_the_compiled_engine_gives_the_reference_dies(runs):
    """Same defects, counts, predictions and accuracies; voltages to float32 rounding."""
    ref, fast = runs
    t = table(fast)
    assert t["defect_type"].nunique() >= 3 and t["accuracy"].nunique() >= 10  # not trivial
    assert_same_dies(fast, ref, exact_voltages=False)
    assert read_run_info(ref)["engine"] == "reference" and read_run_info(fast)["engine"] == "compiled"


@pytest.mark.parametrize("jobs, chunk_size", [(2, 7), (1, 5), (2, 48)])
def test_threads_and_chunks_do_not_change_the_dies(config, runs, tmp_path, jobs, chunk_size, monkeypatch):
    import yieldmc.montecarlo as mc

    monkeypatch.setattr(mc, "available_cores", lambda: 2)
    summary = run_sample(config, N_DIES, tmp_path / "run", jobs=jobs, chunk_size=chunk_size)
    assert summary["backend"] == "threads" and summary["jobs"] == jobs
    assert_same_dies(tmp_path / "run", runs[1])


def test_loky_workers_on_the_compiled_engine(config, runs, tmp_path, monkeypatch):
    import yieldmc.montecarlo as mc

    monkeypatch.setattr(mc, "available_cores", lambda: 2)
    summary = run_sample(config, N_DIES, tmp_path / "run", jobs=2, chunk_size=13, backend="loky")
    assert summary["backend"] == "loky" and summary["engine"] == "compiled"
    assert_same_dies(tmp_path / "run", runs[1])


def test_reference_engine_on_threads_warns_that_it_uses_one_core(config, runs, tmp_path, monkeypatch):
    import yieldmc.montecarlo as mc

    monkeypatch.setattr(mc, "available_cores", lambda: 2)
    said: list[str] = []
    run_sample(config, 12, tmp_path / "run", jobs=2, engine="reference", backend="threads", log=said.append)
    assert any("one die at a time" in m for m in said), said
    ref = load_dies(runs[0]).set_index("die").loc[range(12)]
    assert load_dies(tmp_path / "run")["accuracy"].tolist() == ref["accuracy"].tolist()


def test_the_engine_is_a_resume_setting(config, tmp_path):
    out = tmp_path / "run"
    run_sample(config, 10, out, chunk_size=5)
    with pytest.raises(ConfigError, match="engine"):
        run_sample(config, 10, out, resume=True, engine="reference")


def test_sinh_dies_take_the_reference_path(runs):
    cfg = load_config("paper", None, {"seed": 11, "device.model": "sinh"})
    assert resolve_backend("auto", "compiled", cfg) == "loky"
    spec = ModelSpec(cfg, "unused.npz")
    assert spec.engine == "compiled"
    from yieldmc.montecarlo import effective_engine

    assert effective_engine("compiled", cfg) == "reference"


def test_simulate_chunk_engines_agree_with_all_images(config, runs):
    """``--store-voltages all``: train and test voltages from both engines."""
    spec = ModelSpec(config, str(runs[1] / "network.npz"))
    cols, volts = simulate_chunk(spec, range(20, 26), "all")
    rcols, rvolts = simulate_chunk(ModelSpec(config, spec.network_path, "reference"), range(20, 26), "all")
    assert set(volts) == set(rvolts) == {"train", "test"}
    for name in volts:
        assert_close_voltages(volts[name], rvolts[name])
    for key in ("die", "accuracy", "n_correct", "defect_type", "layers_affected", "n_stuck_on"):
        assert np.array_equal(np.asarray(cols[key]), np.asarray(rcols[key])), key


def test_default_chunks_bound_the_voltages_they_hold():
    assert default_chunk_size(100_000, 2) == 2000
    assert default_chunk_size(100_000, 2, 4 * 10 * 1797) == 466  # --store-voltages all
    assert default_chunk_size(100, 2, 4 * 10 * 1797) == 16


@pytest.mark.parametrize("compress, filter_name", [(None, None), ("lzf", "lzf"), ("gzip", "gzip")])
def test_voltages_are_uncompressed_unless_asked(config, runs, tmp_path, compress, filter_name):
    out = tmp_path / "run"
    run_sample(config, 12, out, chunk_size=12, compress=compress)
    assert read_run_info(out)["compress"] == compress
    with h5py.File(out / "voltages" / "part-00000.h5") as f:
        assert f["test/voltages"].compression == filter_name
    ref = load_voltages(runs[1]).voltages[:12]
    assert np.array_equal(load_voltages(out).voltages, ref)


def test_bad_engine_backend_or_compression_is_refused_before_writing(config, tmp_path):
    for kw, word in (({"engine": "fast"}, "engine"), ({"backend": "spark"}, "backend"),
                     ({"compress": "zstd"}, "compress")):
        with pytest.raises(ConfigError, match=word):
            run_sample(config, 4, tmp_path / "run", **kw)
        assert not (tmp_path / "run").exists()


# --- runs of the older format ------------------------------------------------------------------

@pytest.fixture
def old_run(tmp_path) -> Path:
    out = tmp_path / "old"
    shutil.copytree(FORMAT1, out)
    return out


def test_a_format_1_run_is_still_read(old_run):
    info = read_run_info(old_run)
    assert info["format_version"] == 1 and "engine" not in info
    dies = load_dies(old_run)  # verified: checksums and the format-1 settings digest
    assert dies["die"].tolist() == list(range(6))
    assert np.isfinite(dies["accuracy"]).all()
    assert load_voltages(old_run).voltages.shape == (6, 180, 10)


def test_a_format_1_run_is_not_resumed(config, old_run):
    before = {p: p.read_bytes() for p in old_run.rglob("*") if p.is_file()}
    cfg = load_config("paper")
    with pytest.raises(ConfigError, match="older yieldmc.*--overwrite"):
        run_sample(cfg, 6, old_run, chunk_size=3, resume=True)
    after = {p: p.read_bytes() for p in old_run.rglob("*") if p.is_file()}
    assert after == before  # nothing touched
    assert json.loads((old_run / RUN_FILE).read_text())["format_version"] == 1


def test_a_format_1_run_can_be_overwritten(config, old_run):
    run_sample(config, 6, old_run, chunk_size=3, overwrite=True)
    assert read_run_info(old_run)["format_version"] == schema.FORMAT_VERSION
    assert len(load_dies(old_run)) == 6
