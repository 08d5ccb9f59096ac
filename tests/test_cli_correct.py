"""``yieldmc correct`` on the command line, its calibration budget (``--calibration N``) above all.

Every command runs in this process (``CliRunner``) on a small real run, copied per test so
that each writes its own ``corrected/``. The reference for a budget is the library's
per-die correction with the same budget (:func:`yieldmc.correction.correct_per_die`).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

from tests.conftest import sampled_run
from yieldmc import correction
from yieldmc.cli import app
from yieldmc.config import load_config
from yieldmc.die import DieModel
from yieldmc.store import RunStore

N_DIES = 6
#: A budget well below the paper task's training images, above its 10 classes.
SMALL_BUDGET = 30


pytestmark = pytest.mark.usefixtures("use_network_cache")


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory, network_cache):
    return sampled_run(tmp_path_factory, network_cache, "cli-correct", N_DIES, chunk_size=3)


@pytest.fixture
def run(stored_run, tmp_path):
    return shutil.copytree(stored_run, tmp_path / "run")


@pytest.fixture(scope="module")
def model(stored_run):
    return DieModel.build(load_config("paper"), RunStore.open(stored_run).network_path)


def _correct(run, *args):
    result = CliRunner().invoke(app, ["correct", str(run), "--method", "linear-ridge", "-q", "--json", *args])
    return result


def _table(run):
    return correction.load_corrected(run, "per-die")


def test_a_budget_below_the_classes_is_one_line_and_exit_2(run):
    result = _correct(run, "--calibration", "9")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --calibration 9:"), result.stderr
    assert "classes (10)" in lines[0] and "Traceback" not in result.stderr
    assert not correction.corrected_path(run, "per-die").exists()


def test_a_budget_with_population_mode_is_one_line_and_exit_2(run):
    result = _correct(run, "--mode", "population", "--calibration", "100")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--calibration" in lines[0] and "--mode per-die" in lines[0], result.stderr
    assert not correction.corrected_path(run, "population").exists()


def test_the_full_training_count_equals_no_budget(run, model):
    n_train = len(model.images("train")[1])
    plain = _correct(run)
    assert plain.exit_code == 0, plain.stderr
    without = _table(run)
    full = _correct(run, "--calibration", str(n_train), "--overwrite")
    assert full.exit_code == 0, full.stderr
    assert json.loads(full.stdout)["n_calibration"] == n_train and json.loads(plain.stdout)["n_calibration"] is None
    assert _table(run).equals(without)
    meta = pq.read_schema(correction.corrected_path(run, "per-die")).metadata
    assert meta[b"yieldmc.n_calibration"] == str(n_train).encode()


def test_a_smaller_budget_changes_the_result_as_the_library_does(run, model):
    assert _correct(run).exit_code == 0
    without = _table(run)
    result = _correct(run, "--calibration", str(SMALL_BUDGET), "--overwrite")
    assert result.exit_code == 0, result.stderr
    budget = _table(run)
    meta = pq.read_schema(correction.corrected_path(run, "per-die")).metadata
    assert meta[b"yieldmc.n_calibration"] == str(SMALL_BUDGET).encode()
    assert_array_equal(budget.die, without.die)
    assert not np.array_equal(budget.n_correct_corrected, without.n_correct_corrected)
    _, want = correction.correct_per_die(model, budget.die.to_numpy(), method="linear-ridge",
                                         n_calibration=SMALL_BUDGET)
    assert_array_equal(budget.n_correct_corrected, want)


def test_the_text_summary_names_the_budget(run):
    result = CliRunner().invoke(app, ["correct", str(run), "--method", "linear-ridge", "-q",
                                      "--calibration", str(SMALL_BUDGET)])
    assert result.exit_code == 0, result.stderr
    assert f"calibration on {SMALL_BUDGET} images" in result.stdout
