"""``yieldmc lifetime`` and ``yieldmc yield --at`` on a small real run: rows, reproducibility
across chunking and threads, resume after an interruption, refusals with exit code 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import sampled_run
from yieldmc.cli import app
from yieldmc.config import load_config
from yieldmc.lifetime import run as lifetime_run
from yieldmc.lifetime.run import load_lifetime, read_settings
from yieldmc.runcheck import load_dies

N_DIES = 10
ARGS = ["--times", "1h,1y,10y", "--budget", "30", "--stream", "10", "--policies", "none,once,recal,online,drift",
        "--scale", "20y", "-q"]


pytestmark = pytest.mark.usefixtures("use_network_cache")


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory, network_cache):
    return sampled_run(tmp_path_factory, network_cache, "cli-lifetime", N_DIES, chunk_size=5, store_voltages="none")


@pytest.fixture
def run(stored_run, tmp_path):
    return shutil.copytree(stored_run, tmp_path / "run")


def _lifetime(run, *args):
    return CliRunner().invoke(app, ["lifetime", str(run), *ARGS, *args])


@pytest.fixture(scope="module")
def reference(stored_run, tmp_path_factory, network_cache):
    run = shutil.copytree(stored_run, tmp_path_factory.mktemp("ref") / "run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        result = _lifetime(run, "--chunk-dies", "4", "--jobs", "1", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), load_lifetime(run)


def test_rows_per_die_and_checkpoint_and_t0_is_the_run(reference, stored_run):
    summary, df = reference
    assert len(df) == 3 * N_DIES and df.groupby("die").size().eq(3).all()
    run_table = load_dies(stored_run, columns=["die", "accuracy"]).set_index("die")
    first = df[df.checkpoint == 0].set_index("die")
    assert np.array_equal(first["accuracy_none"].to_numpy(), run_table.loc[first.index, "accuracy"].to_numpy())
    assert summary["t0_mismatches_this_call"] == 0
    assert (df.groupby("die")["n_stuck"].diff().dropna() >= 0).all()  # faults only accumulate
    assert (df[df.checkpoint == 0]["n_new_faults"] == 0).all() and df["n_new_faults"].max() > 0
    assert df[df.checkpoint == 2]["drift_factor"].iloc[0] == pytest.approx((10 * 365.25 * 24) ** -0.01)
    last = df[df.checkpoint == 2]
    assert (last["labels_recal"] == 3 * 30).all() and (last["labels_online"] == 30 + 2 * 10).all()
    assert (last["labels_none"] == 0).all() and (last["flops_recal"] > last["flops_once"]).all()
    # at t0 every corrected policy is the same calibration
    t0 = df[df.checkpoint == 0]
    for p in ("recal", "online", "drift"):
        assert np.array_equal(t0[f"accuracy_{p}"], t0["accuracy_once"])


def test_results_do_not_depend_on_chunking_or_threads(reference, run):
    result = _lifetime(run, "--chunk-dies", "7", "--jobs", "2")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(load_lifetime(run), reference[1])


def test_an_interrupted_lifetime_resumes(reference, run, monkeypatch):
    real = lifetime_run._chunk_rows

    def stop_at_second(ctx, dies):
        if dies[0] >= 4:
            raise KeyboardInterrupt
        return real(ctx, dies)

    monkeypatch.setattr(lifetime_run, "_chunk_rows", stop_at_second)
    result = _lifetime(run, "--chunk-dies", "4", "--jobs", "1")
    assert result.exit_code == 130
    assert read_settings(run)["status"] == "running" and len(list((run / "lifetime").glob("part-*"))) == 1
    with pytest.raises(Exception, match="unfinished"):
        load_lifetime(run)
    monkeypatch.setattr(lifetime_run, "_chunk_rows", real)
    assert _lifetime(run, "--chunk-dies", "4").exit_code == 2  # neither --resume nor --overwrite
    other = _lifetime(run, "--chunk-dies", "4", "--resume", "--budget", "20")
    assert other.exit_code == 2 and "other settings" in other.output
    result = _lifetime(run, "--chunk-dies", "4", "--resume")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(load_lifetime(run), reference[1])


def test_yield_at_a_time(reference, run):
    assert _lifetime(run, "--chunk-dies", "4").exit_code == 0
    result = CliRunner().invoke(app, ["yield", str(run), "--at", "2y", "--json"])
    assert result.exit_code == 0, result.output
    rows = pd.DataFrame(json.loads(result.stdout))
    df = reference[1]
    at_1y = df[df.checkpoint == 1]
    assert set(rows["checkpoint"]) == {1}
    for _, r in rows.iterrows():
        assert r["good"] == int((at_1y[f"accuracy_{r['policy']}"] >= 0.8).sum()) and r["dies"] == N_DIES
        assert r["low"] <= r["yield"] <= r["high"]
    early = CliRunner().invoke(app, ["yield", str(run), "--at", "1s"])
    assert early.exit_code == 2 and "before t0" in early.output


@pytest.mark.parametrize("args, words", [
    (["--times", "1h,1h"], "increase"),
    (["--shape", "-1"], "shape"),
    (["--scale", "-5y"], "duration"),
    (["--policies", "none,sometimes"], "unknown policy"),
    (["--forgetting", "1.5"], "forgetting"),
    (["--dies", "50"], "has 10 dies"),
    (["--budget", "5"], "10 classes"),
    (["--checkpoints", "3"], "leave out --checkpoints"),
    (["--policies", ","], "at least one"),
    (["--scale", "-2y"], "> 0"),
    (["--jobs", "0"], "--jobs"),
])
def test_bad_input_is_one_line_and_exit_2(run, args, words):
    result = CliRunner().invoke(app, ["lifetime", str(run), *ARGS, *args])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not (run / "lifetime" / "lifetime.json").exists()


def test_runs_outside_the_update_route_are_refused(tmp_path, network_cache):
    from yieldmc.montecarlo import run_sample

    cfg = load_config("paper", overrides={"device.programming_noise": 0.01})
    run_sample(cfg, 2, tmp_path / "noisy")
    result = CliRunner().invoke(app, ["lifetime", str(tmp_path / "noisy"), *ARGS])
    assert result.exit_code == 2 and "programming_noise" in result.output
    missing = CliRunner().invoke(app, ["lifetime", str(tmp_path / "nothing"), *ARGS])
    assert missing.exit_code == 2


def test_clustered_growth_and_new_patterns_do_not_depend_on_chunking(run, tmp_path):
    other = shutil.copytree(run, tmp_path / "other")
    extra = ["--cluster-gain", "3", "--pattern-scale", "5y", "--pattern-kind", "row"]
    assert _lifetime(run, *extra, "--chunk-dies", "3", "--jobs", "1").exit_code == 0
    assert _lifetime(other, *extra, "--chunk-dies", "7", "--jobs", "2").exit_code == 0
    a, b = load_lifetime(run), load_lifetime(other)
    pd.testing.assert_frame_equal(a, b)
    plain = _lifetime(other, "--overwrite")
    assert plain.exit_code == 0
    assert (a["n_new_faults"] >= load_lifetime(other)["n_new_faults"]).all()  # more hazard, more faults
    assert (a["n_new_faults"] > load_lifetime(other)["n_new_faults"]).any()


def test_costs_add_up(reference):
    from yieldmc.correctors.online import online_flops
    from yieldmc.lifetime.policies import fit_flops

    df = reference[1]
    last = df[df.checkpoint == 2]
    fit = fit_flops(30, 10, 256, 10)
    assert np.allclose(last["flops_recal"], 3 * fit) and np.allclose(last["flops_once"], fit)
    assert np.allclose(last["flops_online"], online_flops(30, 10, 256, 10) + 2 * online_flops(10, 10, 256, 10))
    fired = df[df.checkpoint > 0].groupby("die")["drift_recalibrated"].sum()
    assert (last.set_index("die")["labels_drift"] == 30 * (1 + fired)).all()


def test_overwrite_to_fewer_parts_and_leftovers(run):
    assert _lifetime(run, "--chunk-dies", "3").exit_code == 0
    assert len(list((run / "lifetime").glob("part-*"))) == 4
    assert _lifetime(run, "--chunk-dies", "5", "--overwrite").exit_code == 0
    assert sorted(p.name for p in (run / "lifetime").glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]
    assert len(load_lifetime(run)) == 3 * N_DIES
    (run / "lifetime" / "lifetime.json").unlink()  # parts without their settings
    result = _lifetime(run, "--chunk-dies", "5")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert _lifetime(run, "--chunk-dies", "5", "--resume").exit_code == 2
    assert _lifetime(run, "--chunk-dies", "5", "--overwrite").exit_code == 0


def test_a_replaced_run_does_not_show_its_old_lifetime(run, network_cache):
    from yieldmc.montecarlo import run_sample

    assert _lifetime(run).exit_code == 0
    late = CliRunner().invoke(app, ["yield", str(run), "--at", "20y"])
    assert late.exit_code == 2 and "last checkpoint" in late.output
    info = json.loads((run / "lifetime" / "lifetime.json").read_text())
    (run / "lifetime" / "lifetime.json").write_text(json.dumps(info | {"run_id": "another"}))
    result = CliRunner().invoke(app, ["yield", str(run), "--at", "1y"])
    assert result.exit_code == 2 and "earlier run" in result.output
    (run / "lifetime" / "lifetime.json").write_text(json.dumps(info))
    run_sample(load_config("paper"), 4, run, overwrite=True)  # the lifetime goes with the run it followed
    assert not (run / "lifetime" / "lifetime.json").exists()
    result = CliRunner().invoke(app, ["yield", str(run), "--at", "1y"])
    assert result.exit_code == 2 and "no lifetime" in result.output


def test_a_run_with_its_own_drift_is_refused(tmp_path):
    from yieldmc.montecarlo import run_sample

    run_sample(load_config("paper", overrides={"device.drift_nu": 0.01, "device.read_time": 3600.0}), 2,
               tmp_path / "drifted")
    result = CliRunner().invoke(app, ["lifetime", str(tmp_path / "drifted"), *ARGS])
    assert result.exit_code == 2 and "drift_nu" in result.output


def test_the_report_shows_the_lifetime_at_its_own_threshold(run, tmp_path):
    assert _lifetime(run, "--threshold", "0.5").exit_code == 0
    out = tmp_path / "report.md"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "## Lifetime" in text and "accuracy >= 0.50 (the lifetime's threshold)" in text
    assert (tmp_path / "report_files" / "lifetime.png").stat().st_size > 0
