"""The Monte Carlo sweep (issue 5): reproducibility, resume, refusal, schema, summaries.

Every run here is small (tens of dies of the ``paper`` preset) and writes into ``tmp_path``.
The trained network lives in one cache directory per test session (``YIELDMC_CACHE``), so it
is trained at most once. Per-die results must be *identical* (not close) whatever the
worker count, chunk size or backend: die ``d`` depends only on ``(config, seed, d)``.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from tests.tolerances import ARITHMETIC_RTOL, VOLT_RTOL
from yieldmc import schema
from yieldmc.config import load_config
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import ModelSpec, run_sample, simulate_chunk
from yieldmc.store import MANIFEST_FILE, RUN_FILE, load_dies, load_voltages, read_run_info, sha256_file

#: Dies of the reference run; chunk sizes below are chosen so that the last chunk is short.
N_DIES = 40
OVERRIDES = {"seed": 7}  # paper preset: mixed defects, severity 0.5 % .. 5 % per array
N_TEST_IMAGES, N_OUTPUTS = 180, 10


@pytest.fixture(autouse=True)
def _use_cache(network_cache, monkeypatch):
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))


@pytest.fixture(scope="module")
def config():
    return load_config("paper", None, OVERRIDES)


@pytest.fixture(scope="module")
def reference(config, network_cache, tmp_path_factory):
    """One uninterrupted run, all dies in one chunk, in this process (jobs=1)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        summary = run_sample(config, N_DIES, out, chunk_size=N_DIES)
    return out, summary


def results(out: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-die table without the execution columns, and the stored test voltages."""
    table = load_dies(out).drop(columns=list(schema.EXECUTION_COLUMNS))
    return table, load_voltages(out).voltages


def assert_same_results(out: Path, reference_out: Path) -> None:
    table, volts = results(out)
    ref_table, ref_volts = results(reference_out)
    pd.testing.assert_frame_equal(table, ref_table, check_exact=True)
    assert volts.dtype == ref_volts.dtype == np.float32
    assert np.array_equal(volts, ref_volts)


def snapshot(root: Path) -> dict:
    """Every file under ``root``: (sha256, mtime) by relative path."""
    return {str(p.relative_to(root)): (sha256_file(p), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- reproducibility -------------------------------------------------------------------------

def test_reference_is_not_trivial(reference):
    """Guard for the invariance tests: the dies really differ (defect kinds, accuracies)."""
    out, _ = reference
    table = load_dies(out)
    assert table["die"].tolist() == list(range(N_DIES))
    assert table["defect_type"].nunique() >= 3
    assert table["accuracy"].nunique() >= 10
    assert table["n_stuck_on"].gt(0).all() or table["n_stuck_off"].gt(0).all()
    assert table["solver_converged"].all()


@pytest.mark.parametrize("chunk_size", [5, 17])
def test_same_dies_for_any_chunk_size(config, reference, tmp_path, chunk_size):
    summary = run_sample(config, N_DIES, tmp_path / "run", chunk_size=chunk_size)
    assert summary["chunk_size"] == chunk_size
    assert len(list((tmp_path / "run" / "dies").glob("part-*.parquet"))) == -(-N_DIES // chunk_size)
    assert_same_results(tmp_path / "run", reference[0])
    # the chunk column does depend on the chunk size: it is an execution column
    assert (load_dies(tmp_path / "run")["chunk"] == np.arange(N_DIES) // chunk_size).all()


@pytest.fixture
def two_cores(monkeypatch):
    """Two workers really start, also on a one-core machine (where --jobs 2 is lowered to 1)."""
    import yieldmc.montecarlo as mc

    monkeypatch.setattr(mc, "available_cores", lambda: 2, raising=False)


def test_same_dies_with_two_loky_workers(config, reference, tmp_path, two_cores):
    summary = run_sample(config, N_DIES, tmp_path / "run", jobs=2, chunk_size=7, backend="loky")
    assert summary["jobs"] == 2 and summary["backend"] == "loky"
    assert_same_results(tmp_path / "run", reference[0])


def test_same_dies_on_a_dask_local_cluster(config, reference, tmp_path, two_cores):
    """Without an address the dask backend starts (and stops) a LocalCluster of ``jobs`` workers."""
    summary = run_sample(config, N_DIES, tmp_path / "run", jobs=2, chunk_size=9, backend="dask")
    assert summary["backend"] == "dask" and summary["dies"] == N_DIES
    assert_same_results(tmp_path / "run", reference[0])


def test_same_dies_on_a_given_dask_scheduler(config, reference, tmp_path):
    """A scheduler given by address or by scheduler file; the sweep leaves that cluster running."""
    distributed = pytest.importorskip("distributed")
    scheduler_file = tmp_path / "scheduler.json"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # 8787 may be taken
        by_address = run_sample(config, N_DIES, tmp_path / "run", chunk_size=11, backend="dask",
                                scheduler_address=cluster.scheduler_address)
        assert cluster.status.name == "running"
        scheduler_file.write_text(json.dumps({"address": cluster.scheduler_address}))
        by_file = run_sample(config, N_DIES, tmp_path / "run2", backend="dask",
                             scheduler_file=str(scheduler_file))
        assert cluster.status.name == "running"
    assert by_address["backend"] == by_file["backend"] == "dask"
    assert_same_results(tmp_path / "run", reference[0])
    assert_same_results(tmp_path / "run2", reference[0])


def test_simulate_chunk_matches_the_die_model(config, reference):
    """The sweep's readable path (no DieResult objects) agrees with DieModel.simulate die by die."""
    from yieldmc.die import DieModel

    out, _ = reference
    spec = ModelSpec(config, str(out / "network.npz"), "reference")
    spec = pickle.loads(pickle.dumps(spec))  # what a worker receives
    assert spec.engine == "reference"
    dies = range(3, 9)
    columns, volts = simulate_chunk(spec, dies, "test")
    model = DieModel.build(config, out / "network.npz")
    for i, d in enumerate(dies):
        r = model.simulate(d)
        assert columns["die"][i] == d
        assert columns["accuracy"][i] == r.accuracy
        assert columns["defect_type"][i] == r.defect_type
        assert columns["n_stuck_on"][i] == r.n_stuck_on and columns["n_stuck_off"][i] == r.n_stuck_off
        assert np.array_equal(volts["test"][i], r.outputs.astype(np.float32))
    assert set(volts) == {"test"}


def test_a_worker_receives_no_model_and_builds_it_once(config, reference, network_cache, monkeypatch):
    """The spec carries the parent's model in-process only; a worker process gets the spec
    without it and builds the model once (with the spec's cache_dir) for all its tasks."""
    import dataclasses

    import yieldmc.die
    from yieldmc.montecarlo import die_model

    out, _ = reference
    built = []
    real = yieldmc.die.DieModel.build.__func__

    def counting(cls, *args, **kwargs):
        built.append(kwargs.get("cache_dir"))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(yieldmc.die.DieModel, "build", classmethod(counting))
    spec = ModelSpec(config, str(out / "network.npz"), "reference", cache_dir=str(network_cache), model=None)
    model = die_model(spec)
    assert die_model(pickle.loads(pickle.dumps(spec))) is model and built == [str(network_cache)]
    carried = dataclasses.replace(spec, model="the parent's model")
    assert die_model(carried) == "the parent's model"
    received = pickle.loads(pickle.dumps(carried))  # what a worker process gets
    assert received.model is None and received == carried and hash(received) == hash(spec)
    assert die_model(received) is model and len(built) == 1
    other = dataclasses.replace(spec, engine="compiled")  # another spec: built again
    assert die_model(other) is not model and len(built) == 2


def test_compress_none_is_no_filter(config, tmp_path):
    run_sample(config, 2, tmp_path / "run", compress="none", store_voltages="none")
    assert read_run_info(tmp_path / "run")["compress"] is None


# --- resume ------------------------------------------------------------------------------------

def test_resume_recomputes_a_lost_last_chunk(config, reference, tmp_path):
    out = tmp_path / "run"
    first = run_sample(config, N_DIES, out, chunk_size=7)
    run_id = read_run_info(out)["run_id"]
    last = -(-N_DIES // 7) - 1
    # a crash before the last chunk finished: its files and its manifest entry are gone
    (out / "dies" / f"part-{last:05d}.parquet").unlink()
    (out / "voltages" / f"part-{last:05d}.h5").unlink()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    del manifest["chunks"][str(last)]
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    info = json.loads((out / RUN_FILE).read_text())
    (out / RUN_FILE).write_text(json.dumps(info | {"status": "running"}))

    with pytest.raises(ConfigError, match="--resume"):  # not empty: refused without resume
        run_sample(config, N_DIES, out, chunk_size=7)
    summary = run_sample(config, N_DIES, out, resume=True)  # chunk size comes from run.json
    assert summary["chunk_size"] == 7
    assert summary["dies_simulated_now"] == N_DIES - 7 * last
    assert summary["dies"] == first["dies"] == N_DIES
    assert summary["mean_accuracy"] == first["mean_accuracy"]
    info = read_run_info(out)
    assert info["run_id"] == run_id and info["status"] == "complete" and len(info["resumed"]) == 1
    assert_same_results(out, reference[0])


def test_resume_recomputes_a_truncated_file_and_drops_stray_files(config, reference, tmp_path):
    out = tmp_path / "run"
    run_sample(config, N_DIES, out, chunk_size=7)
    part = out / "dies" / "part-00002.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # torn write
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader may warn about the damaged file
        with pytest.raises(pa.ArrowException):  # ArrowInvalid today: no footer
            pq.read_table(part)
    # a crash between a chunk's rename and the manifest update leaves an unlisted file
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    del manifest["chunks"]["4"]
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    (out / "dies" / ".part-00005.parquet.deadbeef.tmp").write_bytes(b"half")  # a leftover temp file

    summary = run_sample(config, N_DIES, out, resume=True)
    assert summary["dies_simulated_now"] == 14  # chunks 2 and 4
    assert not list(out.rglob("*.tmp"))
    assert_same_results(out, reference[0])
    assert pd.read_parquet(out / "dies")["die"].sort_values().tolist() == list(range(N_DIES))


def test_resume_of_a_complete_run_simulates_nothing(config, reference, tmp_path, monkeypatch):
    import yieldmc.backends as backends

    out = tmp_path / "run"
    run_sample(config, N_DIES, out, chunk_size=13)
    before = {k: v for k, v in snapshot(out).items() if k.startswith(("dies/", "voltages/part"))}

    def no_cluster(*args):
        raise AssertionError("a finished run must not start a dask cluster")

    monkeypatch.setattr(backends, "dask_client", no_cluster)
    summary = run_sample(config, N_DIES, out, resume=True, backend="dask", jobs=2)
    assert summary["dies_simulated_now"] == 0 and summary["dies_per_s"] is None
    assert summary["dies"] == N_DIES
    after = {k: v for k, v in snapshot(out).items() if k.startswith(("dies/", "voltages/part"))}
    assert after == before


def test_resume_with_other_settings_is_refused(config, tmp_path):
    out = tmp_path / "run"
    run_sample(config, 10, out, chunk_size=5)
    before = snapshot(out)
    with pytest.raises(ConfigError, match="seed"):
        run_sample(config.replace(seed=8), 10, out, resume=True)
    with pytest.raises(ConfigError, match="n_dies"):
        run_sample(config, 12, out, resume=True)
    assert snapshot(out) == before


# --- refusal to overwrite ------------------------------------------------------------------------

def test_second_run_is_refused_and_overwrite_replaces(config, reference, tmp_path):
    out = tmp_path / "run"
    run_sample(config, 12, out, chunk_size=5)
    old_id = read_run_info(out)["run_id"]
    before = snapshot(out)
    for kwargs in ({}, {"chunk_size": 5}, {"jobs": 2}):
        with pytest.raises(ConfigError, match="not empty"):
            run_sample(config, N_DIES, out, **kwargs)
    assert snapshot(out) == before  # not a byte and not a timestamp changed

    summary = run_sample(config, N_DIES, out, chunk_size=N_DIES, overwrite=True)
    assert summary["dies"] == N_DIES
    assert read_run_info(out)["run_id"] != old_id
    assert sorted(p.name for p in (out / "dies").iterdir()) == ["part-00000.parquet"]
    assert_same_results(out, reference[0])


def test_overwrite_never_deletes_foreign_files(config, tmp_path):
    out = tmp_path / "run"
    run_sample(config, 6, out, chunk_size=6)
    (out / "notes.txt").write_text("mine")
    run_sample(config, 6, out, overwrite=True)  # the store deletes only what the old run wrote
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kwargs, match", [
    ({"n_dies": 0}, "--dies"),
    ({"n_dies": -5}, "--dies"),
    ({"chunk_size": 0}, "--chunk-size"),
    ({"jobs": 0}, "--jobs"),
    ({"backend": "spark"}, "backend"),
    ({"store_voltages": "bogus"}, "--store-voltages"),
    ({"threshold": 1.5}, "threshold"),
    ({"resume": True, "overwrite": True}, "not both"),
    ({"compress": "zip"}, "--compress"),
    ({"backend": "dask", "scheduler_address": "tcp://h:1", "scheduler_file": "f"}, "not both"),
    ({"scheduler_address": "tcp://h:1"}, "need --backend dask"),
    ({"backend": "loky", "scheduler_file": Path("f")}, "need --backend dask"),
])
def test_bad_arguments_are_refused_before_anything_is_written(config, tmp_path, kwargs, match):
    kwargs = {"n_dies": 5} | kwargs
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=match):
        run_sample(config, kwargs.pop("n_dies"), out, **kwargs)
    assert not out.exists() or not any(out.iterdir())


def test_a_setting_the_model_refuses_leaves_no_run_directory(config, tmp_path, monkeypatch):
    """Everything the die model checks is checked before ``out`` is made (no half-made run)."""
    import yieldmc.die

    def refuse(*args, **kwargs):
        raise ConfigError("network layer sizes [64, 9, 10] do not match the data")

    monkeypatch.setattr(yieldmc.die.DieModel, "build", refuse)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="do not match"):
        run_sample(config, 5, out)
    assert not out.exists()
    with pytest.raises(ConfigError, match="out of range"):
        run_sample(config.replace(**{"defects.layers": [4]}), 5, out)
    assert not out.exists()


# --- files and schema ----------------------------------------------------------------------------

def test_table_schema_and_readers(reference):
    out, _ = reference
    expected = schema.arrow_schema()
    for part in sorted((out / "dies").glob("part-*.parquet")):
        got = pq.read_schema(part)
        assert got.names == expected.names
        assert got.types == expected.types
        meta = {k.decode(): v.decode() for k, v in got.metadata.items()}
        assert meta["yieldmc.run_id"] == read_run_info(out)["run_id"]
        assert json.loads(meta["yieldmc.units"])["fault_fraction"] == "1"
    dataset = pads.dataset(out / "dies", format="parquet")
    assert dataset.schema.names == expected.names and dataset.schema.types == expected.types
    table = dataset.to_table()
    assert table.num_rows == N_DIES
    frame = pd.read_parquet(out / "dies")
    assert len(frame) == N_DIES and list(frame.columns) == expected.names
    assert sorted(frame["die"]) == list(range(N_DIES))
    assert (frame["n_images"] == N_TEST_IMAGES).all()
    assert (frame["seed"] == OVERRIDES["seed"]).all()


def test_stored_voltages_reproduce_every_dies_accuracy(reference):
    out, _ = reference
    table = load_dies(out)
    stored = load_voltages(out)
    assert stored.voltages.shape == (N_DIES, N_TEST_IMAGES, N_OUTPUTS)
    assert stored.voltages.dtype == np.float32
    assert np.isfinite(stored.voltages).all()
    assert stored.dies.tolist() == list(range(N_DIES))
    assert stored.labels.shape == (N_TEST_IMAGES,)
    correct = (stored.voltages.argmax(axis=2) == stored.labels).sum(axis=1)
    assert correct.tolist() == table["n_correct"].tolist()
    assert (correct / N_TEST_IMAGES).tolist() == table["accuracy"].tolist()
    for path in [*sorted((out / "voltages").glob("part-*.h5")), out / "voltages" / "all.h5"]:
        with h5py.File(path, "r") as f:
            assert f["test/voltages"].attrs["units"] == "V"
            assert f["test/voltages"].dtype == np.float32
            assert np.array_equal(f["test/labels"][()], stored.labels)
    with h5py.File(out / "voltages" / "all.h5", "r") as f:  # the virtual view spans every part
        assert np.array_equal(f["test/voltages"][()], stored.voltages)
        assert f["die"][()].tolist() == list(range(N_DIES))


def test_store_voltages_none_writes_no_voltage_files(config, reference, tmp_path):
    out = tmp_path / "run"
    run_sample(config, N_DIES, out, chunk_size=17, store_voltages="none")
    folder = out / "voltages"
    assert not folder.exists() or not any(folder.iterdir())
    assert all("voltages/" not in rel for c in json.loads((out / MANIFEST_FILE).read_text())["chunks"].values()
               for rel in c["files"])
    with pytest.raises(ConfigError, match="no voltages"):
        load_voltages(out)
    # the table does not depend on what is stored
    pd.testing.assert_frame_equal(results(reference[0])[0],
                                  load_dies(out).drop(columns=list(schema.EXECUTION_COLUMNS)),
                                  check_exact=True)


def test_store_voltages_all_keeps_train_and_test_images(config, reference, tmp_path):
    from yieldmc.die import DieModel

    n = 4
    out = tmp_path / "run"
    run_sample(config, n, out, chunk_size=3, store_voltages="all")
    model = DieModel.build(config, out / "network.npz")
    x_train, y_train = model.images("train")
    train, test = load_voltages(out, image_set="train"), load_voltages(out, image_set="test")
    assert train.voltages.shape == (n, len(y_train), N_OUTPUTS) and train.voltages.dtype == np.float32
    assert test.voltages.shape == (n, N_TEST_IMAGES, N_OUTPUTS)
    assert np.array_equal(train.labels, y_train)
    assert np.array_equal(test.voltages, load_voltages(reference[0], dies=range(n)).voltages)
    for d in range(n):  # the train voltages are the same die's outputs on the train images
        transfers, _ = model.die_transfers(d)
        ref = model.forward(transfers, x_train)  # the readable path: equal to VOLT_RTOL and float32 rounding
        top = np.abs(ref).max()
        assert np.abs(train.voltages[d] - ref).max() <= VOLT_RTOL * top + np.spacing(np.float32(top))
    with h5py.File(out / "voltages" / "part-00000.h5", "r") as f:
        assert set(f) >= {"train", "test"} and f["train/voltages"].attrs["units"] == "V"


# --- summary -------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["zero", "lowest", "median", "highest", "one"])
def test_summary_matches_the_table(config, reference, tmp_path, which):
    ref_acc = np.sort(load_dies(reference[0])["accuracy"].to_numpy())
    # thresholds equal to some die's accuracy tell ">=" from ">"
    threshold = {"zero": 0.0, "lowest": ref_acc[0], "median": ref_acc[N_DIES // 2],
                 "highest": ref_acc[-1], "one": 1.0}[which]
    out = tmp_path / "run"
    summary = run_sample(config, N_DIES, out, chunk_size=N_DIES, threshold=float(threshold))
    acc = load_dies(out)["accuracy"].to_numpy()
    assert summary["dies"] == N_DIES == summary["dies_simulated_now"]
    assert summary["mean_accuracy"] == pytest.approx(acc.mean(), rel=ARITHMETIC_RTOL, abs=0)
    assert summary["yield"] == np.mean(acc >= threshold)
    assert summary["threshold"] == threshold
    assert summary["elapsed_s"] > 0 and summary["dies_per_s"] > 0
    assert summary["unconverged_dies"] == 0
    assert 0.0 <= summary["fault_free_accuracy"] <= 1.0 and summary["software_accuracy"] > 0.8
    assert read_run_info(out)["summary"] == json.loads(json.dumps(summary))
    if which in ("zero", "lowest"):
        assert summary["yield"] == 1.0
    if which == "highest":
        assert 0 < summary["yield"] < 0.5


@pytest.fixture
def better_half_unconverged(reference, monkeypatch):
    """Sweeps in this process flag the dies at or above the median accuracy as unconverged
    (as if their solves had failed); returns that median."""
    import yieldmc.montecarlo as mc

    cut = float(np.median(load_dies(reference[0])["accuracy"]))
    original = mc.simulate_chunk

    def flagged(spec, dies, store_voltages="test"):
        columns, volts = original(spec, dies, store_voltages)
        columns["solver_converged"] = columns["accuracy"] < cut
        return columns, volts

    monkeypatch.setattr(mc, "simulate_chunk", flagged)
    return cut


def test_summary_leaves_unconverged_dies_out(config, tmp_path, better_half_unconverged):
    from typer.testing import CliRunner

    from yieldmc.cli import app

    cut = better_half_unconverged
    out = tmp_path / "run"
    summary = run_sample(config, N_DIES, out, chunk_size=17, threshold=cut)
    table = load_dies(out)
    ok = table["solver_converged"].to_numpy()
    acc = table["accuracy"].to_numpy()
    assert 0 < summary["unconverged_dies"] == int((~ok).sum()) < N_DIES
    assert summary["dies"] == N_DIES
    assert summary["mean_accuracy"] == pytest.approx(acc[ok].mean(), rel=ARITHMETIC_RTOL, abs=0)
    assert summary["yield"] == 0.0  # every converged die is below the cut; over all dies it is > 0
    assert np.mean(acc >= cut) > 0
    line = CliRunner().invoke(app, ["sample", "--seed", "7", "--dies", str(N_DIES), "-q",
                                    "--threshold", str(cut), "--out", str(tmp_path / "cli")]).stdout
    assert line.startswith(f"{N_DIES} dies ({summary['unconverged_dies']} unconverged, left out of "
                           "accuracy and yield), mean accuracy ")
    assert "yield 0.0000 at" in line


def test_yield_command_leaves_unconverged_dies_out(config, tmp_path, better_half_unconverged, monkeypatch):
    from typer.testing import CliRunner

    import yieldmc.store
    from yieldmc.cli import app

    out = tmp_path / "run"
    run_sample(config, N_DIES, out, chunk_size=17)
    table = load_dies(out)
    bad = int((~table["solver_converged"]).sum())
    runner = CliRunner()

    def records(*args):
        result = runner.invoke(app, ["yield", str(out), "--json", *args])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout), result.stderr

    rows, err = records("--threshold", "0.5")
    assert [(r["n"], r["excluded_unconverged"]) for r in rows] == [(N_DIES - bad, bad)]
    assert rows[0]["k"] == int((table["accuracy"][table["solver_converged"]] >= 0.5).sum())
    assert err.strip() == (f"note: {bad} dies whose circuit solve did not converge are left out "
                           "(--include-unconverged counts them)")
    rows, err = records("--threshold", "0.5", "--include-unconverged")
    assert [(r["n"], r["excluded_unconverged"]) for r in rows] == [(N_DIES, 0)]
    assert "are counted" in err
    rows, _ = records("--thresholds", "0.5,0.6", "--by", "defect_type")
    assert {r["excluded_unconverged"] for r in rows if r["defect_type"] == "all"} == {bad}
    text = runner.invoke(app, ["yield", str(out)])
    assert text.exit_code == 0 and "excluded_unconverged" in text.stdout.splitlines()[0]

    seen = []
    real = yieldmc.store.load_dies

    def spy(*args, **kwargs):
        seen.append(kwargs.get("verify"))
        return real(*args, **kwargs)

    monkeypatch.setattr(yieldmc.store, "load_dies", spy)
    records()
    records("--no-verify")
    assert seen == [True, False]


def test_progress_is_reported_after_every_chunk(config, tmp_path):
    calls = []
    run_sample(config, 12, tmp_path / "run", chunk_size=5,
               progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 12), (5, 12), (10, 12), (12, 12)]


def test_network_is_cached_and_stored_with_the_run(config, reference, network_cache):
    out, _ = reference
    cached = list(network_cache.glob("network-*.npz"))
    assert len(cached) == 1
    assert sha256_file(cached[0]) == sha256_file(out / "network.npz")


def test_sweep_leaves_the_callers_numba_threads_alone(config, tmp_path):
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    run_sample(config, 3, tmp_path / "run")
    assert numba.get_num_threads() == before


# --- the sinh device ------------------------------------------------------------------------------

def test_sinh_sweep_records_its_device_and_matches_the_die_model(tmp_path, network_cache):
    from yieldmc.die import DieModel

    cfg = load_config("paper", None, {**OVERRIDES, "device.model": "sinh"})
    summary = run_sample(cfg, 6, tmp_path / "a", chunk_size=4)
    run_sample(cfg, 6, tmp_path / "b", chunk_size=6)
    assert_same_results(tmp_path / "a", tmp_path / "b")
    assert summary["device"] == read_run_info(tmp_path / "a")["device"] == "sinh"
    meta = pq.read_schema(tmp_path / "a" / "dies" / "part-00000.parquet").metadata
    assert meta[b"yieldmc.device"] == b"sinh"
    table = load_dies(tmp_path / "a")
    assert table["solver_converged"].all() and (table["solver_max_residual"] > 0).all()
    model = DieModel.build(cfg, tmp_path / "a" / "network.npz")
    volts = load_voltages(tmp_path / "a").voltages
    for d in (0, 5):
        r = model.simulate(d)
        assert table["accuracy"][d] == r.accuracy
        assert np.array_equal(volts[d], r.outputs.astype(np.float32))
    linear = run_sample(load_config("paper", None, OVERRIDES), 6, tmp_path / "lin", chunk_size=6)
    assert linear["device"] == "linear"
    assert not np.array_equal(load_voltages(tmp_path / "lin").voltages, volts)  # the device matters


def test_a_failed_newton_solve_is_flagged_in_the_table_and_refused_by_correction(
        tmp_path, network_cache, monkeypatch):
    """Force every sinh solve to stop after one Newton step: the sweep records the dies
    with solver_converged = False (never a silently wrong row); correction refuses them."""
    import yieldmc.die
    from yieldmc.circuit import solve_sinh_info
    from yieldmc.circuit.nonlinear import NEWTON_RTOL
    from yieldmc.correction import correct_run
    from yieldmc.errors import SolverError

    def one_step_for_die_arrays(*args, raise_on_failure=True, **kwargs):
        # a die's arrays record failures (raise_on_failure=False); the fault-free arrays
        # raise, and keep their real solves here so that the run can start at all
        return solve_sinh_info(*args, raise_on_failure=raise_on_failure,
                               max_newton=50 if raise_on_failure else 1, **kwargs)

    cfg = load_config("paper", None, {**OVERRIDES, "device.model": "sinh"})
    run_sample(cfg, 2, tmp_path / "ok", chunk_size=2)
    monkeypatch.setattr(yieldmc.die, "solve_sinh_info", one_step_for_die_arrays)
    summary = run_sample(cfg, 2, tmp_path / "bad", chunk_size=2)
    table = load_dies(tmp_path / "bad")
    assert not table["solver_converged"].any() and (table["solver_max_residual"] > NEWTON_RTOL).all()
    assert summary["unconverged_dies"] == 2
    assert summary["mean_accuracy"] is None and summary["yield"] is None  # no die to trust
    with pytest.raises(SolverError, match="die 0"):
        correct_run(tmp_path / "ok", "per-die")
    from typer.testing import CliRunner

    from yieldmc.cli import app

    refused = CliRunner().invoke(app, ["yield", str(tmp_path / "bad")])
    assert refused.exit_code == 2 and refused.stderr.startswith("error: no die to compute a yield from")
    counted = CliRunner().invoke(app, ["yield", str(tmp_path / "bad"), "--include-unconverged", "--json"])
    assert counted.exit_code == 0 and json.loads(counted.stdout)[0]["n"] == 2


def test_correct_command_passes_no_verify(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import yieldmc.correction
    from yieldmc.cli import app

    seen = []

    def fake_correct_run(run, mode, **kwargs):
        seen.append(kwargs["verify"])
        return {"mode": mode}

    monkeypatch.setattr(yieldmc.correction, "correct_run", fake_correct_run)
    for args in ([], ["--no-verify"]):
        result = CliRunner().invoke(app, ["correct", str(tmp_path), "--json", "-q", *args])
        assert result.exit_code == 0, result.stderr
    assert seen == [True, False]
