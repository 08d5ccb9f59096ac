"""The correction pipeline end to end: reproduce study files, `correct`, and `yield`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.tolerances import CSV_6G_ATOL
from yieldmc import schema, stats, tables
from yieldmc.cli import app
from yieldmc.reproduce import OUTPUT_FILES, StudySettings, run_study
from yieldmc.store import load_dies

TINY = StudySettings(severities=(0.05,), main_severity=0.05, n_instances=2, hidden=(8,),
                     protocol_severities=(0.05,), on_modes=("cell",), family_on_modes=("cell",), n_family=1,
                     n_unseen=1, schemes=("differential",), sweep_correctors=("linear", "mlp-4"),
                     sweep_instances=1, budgets=(50, 1617), population_dies=12)
#: The columns each file must have, written out here (not read from yieldmc.tables) so that
#: a change of the declaration without the docs and readers is caught.
COLUMNS = {
    "types.csv": ["defect_type", "severity", "layers", "n_instances", "accuracy_fault_free",
                  "accuracy_defective_mean", "accuracy_defective_std", "accuracy_corrected_mean",
                  "accuracy_corrected_std", "corrector_params"],
    "protocols.csv": ["protocol", "severity", "on_mode", "scheme", "layers", "train_type", "test_type", "test_die",
                      "accuracy_raw", "accuracy_corrected", "accuracy_own", "n_train_circuits", "corrector_params"],
    "protocol_summary.csv": ["protocol", "severity", "on_mode", "scheme", "layers", "training", "n", "accuracy_raw",
                             "accuracy_corrected", "accuracy_own", "transfer_gain", "gain_sem"],
    "size_sweep.csv": ["defect_type", "corrector", "depth", "hidden", "corrector_params", "accuracy_raw_mean",
                       "accuracy_corrected_mean", "accuracy_corrected_std", "n_circuits"],
    "budget.csv": ["defect_type", "method", "budget", "n_calibration", "corrector_params", "accuracy_raw_mean",
                   "accuracy_corrected_mean", "accuracy_corrected_std", "n_circuits"],
    "yield.csv": list(stats.CURVE_COLUMNS) + ["stage"],
    "yield_budget.csv": ["budget", "n_calibration", "threshold", "n_dies", "accuracy_before_mean",
                         "accuracy_after_mean", "yield_before", "yield_after", "k_after", "lo", "hi"],
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    summary = run_study(out, TINY, log=lambda m: None)
    return out, summary


def test_study_writes_every_file_with_the_documented_columns(study):
    out, summary = study
    for name in OUTPUT_FILES:
        assert (out / name).stat().st_size > 0, name
    for name, cols in COLUMNS.items():
        assert list(pd.read_csv(out / name).columns) == cols, name
    types = pd.read_csv(out / "types.csv")
    assert len(types) == 6 and set(types.n_instances) == {2}
    protocols = pd.read_csv(out / "protocols.csv", keep_default_na=False)
    per_protocol = protocols.groupby("protocol").size().to_dict()
    # A: 6 x 6; B: 6; C: 4 layers x 6 held-out types (own corrector beside); D: 6 families + "mixed",
    # 1 unseen die each
    assert per_protocol == {"A": 36, "B": 6, "C": 24, "D": 12}
    a = protocols[protocols.protocol == "A"]
    diagonal = a[a.train_type == a.test_type]
    assert (diagonal.accuracy_corrected == diagonal.accuracy_own).all()
    assert (protocols[protocols.protocol == "D"].test_die == TINY.n_family).all()  # the unseen die
    assert json.loads((out / "summary.json").read_text())["fault_free_accuracy"] == summary["fault_free_accuracy"]


def test_study_files_match_their_declaration(study):
    """Every CSV reads back with the types yieldmc.schema declares; voltages.h5 holds exactly
    the declared datasets (dtype, axes) for every circuit, with the declared group attributes."""
    out, _ = study
    for table in tables.STUDY_TABLES:
        assert list(table.read_csv(out / table.path).columns) == table.names == COLUMNS[table.path]
    patterns = {d: re.compile(re.escape(d.path).replace(r"\{defect_type\}", r"[a-z_-]+")
                              .replace(r"\{severity:g\}", r"[0-9.e+-]+").replace(r"\{die\}", r"[0-9]+") + "$")
                for d in schema.STUDY_VOLTAGES}
    seen = {d: 0 for d in schema.STUDY_VOLTAGES}
    with h5py.File(out / "voltages.h5") as h5:
        datasets = []
        h5.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in datasets:
            (decl,) = [d for d, p in patterns.items() if p.match(name)]
            seen[decl] += 1
            assert h5[name].dtype == np.dtype(decl.dtype) and h5[name].ndim == len(decl.axes), name
            if "{" in decl.path:
                assert set(h5[name].parent.attrs) == set(schema.STUDY_GROUP_ATTRS), name
                assert h5[name].attrs["units"] == decl.unit
    circuits = 6 * len(TINY.severities) * TINY.n_instances
    assert list(seen.values()) == [1, 1, circuits, circuits]


def test_figures_are_drawn_without_pyplot_or_a_backend(study, tmp_path):
    """report.py draws on Figure objects: a broken MPLBACKEND does not matter, pyplot is never imported."""
    out, _ = study
    code = ("import sys, pandas as pd\n"
            "from yieldmc import report\n"
            "report.plot_size_sweep(pd.read_csv(sys.argv[1]), sys.argv[2])\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    png = tmp_path / "sweep.png"
    env = {**os.environ, "MPLBACKEND": "module://no_such_backend"}
    subprocess.run([sys.executable, "-c", code, str(out / "size_sweep.csv"), str(png)], check=True, env=env,
                   timeout=120)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in (n for n in OUTPUT_FILES if n.endswith(".png")):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_stored_voltages_reproduce_the_reported_defective_accuracy(study):
    """Anyone can re-derive the table from voltages.h5: argmax of the test voltages."""
    out, _ = study
    types = pd.read_csv(out / "types.csv").set_index("defect_type")
    with h5py.File(out / "voltages.h5") as h5:
        labels = h5["labels_test"][()]
        for kind in types.index:
            accs = [np.mean(h5[f"{kind}/severity_0.05/instance_{i}/test"][()].argmax(axis=1) == labels)
                    for i in range(2)]
            assert np.mean(accs) == pytest.approx(types.loc[kind, "accuracy_defective_mean"], abs=CSV_6G_ATOL)


def test_correction_helps_at_this_severity(study):
    """At 5 % stuck cells a per-circuit corrector must beat the raw argmax on average."""
    out, _ = study
    t = pd.read_csv(out / "types.csv")
    assert t.accuracy_corrected_mean.mean() > t.accuracy_defective_mean.mean() + 0.2


def test_study_refuses_to_overwrite(study):
    from yieldmc.errors import ConfigError

    out, _ = study
    with pytest.raises(ConfigError, match="--overwrite"):
        run_study(out, TINY, log=lambda m: None)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_study_refuses_an_out_that_is_a_file_before_simulating(tmp_path, monkeypatch, where):
    from yieldmc.die import DieModel
    from yieldmc.errors import ConfigError

    def no_simulation(*args, **kwargs):
        raise AssertionError("the study started simulating")

    monkeypatch.setattr(DieModel, "build", no_simulation)
    monkeypatch.setattr(DieModel, "__init__", no_simulation)
    (tmp_path / "results.csv").write_text("keep me\n")
    out = tmp_path / "results.csv" / "paper" if where == "under_file" else tmp_path / "results.csv"
    with pytest.raises(ConfigError) as info:
        run_study(out, TINY, log=lambda m: None)
    message = str(info.value)
    assert "\n" not in message and "results.csv" in message and "is a file" in message
    assert (tmp_path / "results.csv").read_text() == "keep me\n"
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--out", str(out)])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert "is a file" in result.output


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    result = CliRunner().invoke(app, ["sample", "--dies", "24", "--out", str(out), "--chunk-size", "10",
                                      "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_yield_before_correction_equals_the_parquet_fraction(small_run):
    df = pd.read_parquet(small_run / "dies")
    for t in (0.5, 0.8, float(np.median(df.accuracy))):
        result = CliRunner().invoke(app, ["yield", str(small_run), "--threshold", repr(t), "--json"])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)
        assert row["yield"] == np.mean(df.accuracy.to_numpy() >= t)
        assert row["n"] == len(df) and row["lo"] <= row["yield"] <= row["hi"]


def test_correct_per_die_writes_a_separate_table(small_run):
    before = (small_run / "dies").stat().st_mtime_ns, sorted(p.name for p in (small_run / "dies").iterdir())
    result = CliRunner().invoke(app, ["correct", str(small_run), "--sample", "8", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    fixed = pd.read_parquet(small_run / "corrected" / "per-die.parquet")
    assert len(fixed) == 8 == summary["dies_corrected"]
    assert set(fixed.die) <= set(load_dies(small_run).die)
    assert ((small_run / "dies").stat().st_mtime_ns, sorted(p.name for p in (small_run / "dies").iterdir())) == before
    assert summary["mean_accuracy_after"] > summary["mean_accuracy_before"]
    # yield --corrected compares the same dies before and after
    result = CliRunner().invoke(app, ["yield", str(small_run), "--corrected", "per-die", "--threshold", "0.8",
                                      "--json"])
    rows = {r["stage"]: r for r in json.loads(result.stdout)}
    assert rows["before"]["n"] == rows["after"]["n"] == 8
    # never silently overwritten
    again = CliRunner().invoke(app, ["correct", str(small_run), "--sample", "8", "--quiet"])
    assert again.exit_code == 2 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_reproduce_quick_cli(tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in OUTPUT_FILES:
        assert (tmp_path / name).exists()


def test_correct_population_scores_only_held_out_dies(small_run):
    result = CliRunner().invoke(app, ["correct", str(small_run), "--mode", "population", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    fixed = pd.read_parquet(small_run / "corrected" / "population.parquet")
    assert len(fixed) == 12 and set(fixed.role) == {"evaluated"}  # half of 24 dies trains
    assert fixed.accuracy_corrected.between(0, 1).all()
    assert (fixed.n_correct_corrected / 180 == fixed.accuracy_corrected).all()
