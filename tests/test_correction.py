"""Correcting a finished run (yieldmc.correction): the written table, the per-die stage, the old name."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_array_equal

from yieldmc import correction, tables
from yieldmc.config import load_config
from yieldmc.correctors import fit_predict_many
from yieldmc.die import DieModel
from yieldmc.store import load_dies

#: Dies of the small run; population mode trains on half of them.
N_DIES = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory, network_cache):
    """A small paper run (compiled engine), corrected in both modes."""
    from yieldmc.montecarlo import run_sample

    out = tmp_path_factory.mktemp("correction") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(network_cache))
        run_sample(load_config("paper"), N_DIES, out, chunk_size=4)
        correction.correct_run(out, "per-die", method="linear-ridge", sample=5)
        correction.correct_run(out, "population")
    return out


@pytest.fixture(scope="module")
def model(run):
    from yieldmc.store import RunStore

    store = RunStore.open(run)
    return DieModel.build(load_config("paper"), store.network_path)


@pytest.mark.parametrize("mode", correction.MODES)
def test_corrected_tables_match_their_declaration(run, mode):
    path = correction.corrected_path(run, mode)
    arrow = pq.read_schema(path)
    tables.CORRECTED_TABLE.check(arrow, source=str(path))
    assert [f.metadata[b"unit"].decode() for f in arrow] == [c.unit for c in tables.CORRECTED_TABLE.columns]
    table = correction.load_corrected(run, mode)
    assert list(table.columns) == tables.CORRECTED_TABLE.names
    assert set(table["mode"]) == {mode}
    assert (table.n_correct_corrected / 180 == table.accuracy_corrected).all()
    meta = arrow.metadata
    assert meta[b"yieldmc.mode"] == mode.encode() and meta[b"yieldmc.n_dies_run"] == str(N_DIES).encode()


def test_the_check_names_what_differs(run):
    import pyarrow as pa

    from yieldmc.errors import ConfigError

    arrow = pq.read_schema(correction.corrected_path(run, "per-die"))
    wrong = arrow.set(2, pa.field("n_correct_corrected", pa.int64()))
    with pytest.raises(ConfigError, match="n_correct_corrected: int64"):
        tables.CORRECTED_TABLE.check(wrong, source="x.parquet")


def test_per_die_rows_are_each_dies_own_corrector(run, model):
    table = correction.load_corrected(run, "per-die")
    dies = table.die.to_numpy()
    assert len(dies) == 5 and set(table.role) == {"corrected"} and set(table.method) == {"linear-ridge"}
    v_train, v_test = correction.die_voltages(model, dies, ("train", "test"))
    y_train, y_test = model.images("train")[1], model.images("test")[1]
    pred = fit_predict_many(v_train, y_train, v_test, "linear-ridge", random_state=0)
    assert_array_equal(table.n_correct_corrected, (pred == y_test).sum(axis=1))
    assert (table.corrector_params == (10 + 1) * 10).all()


def test_correct_per_die_matches_the_sweep_and_any_batch(run, model):
    """The raw argmax of the recomputed voltages is the die table's n_correct (the compiled
    engine's), and a die's result does not depend on the batch it is fitted in."""
    dies = np.arange(N_DIES)
    before, after = correction.correct_per_die(model, dies, method="rff-ridge", seed=3)
    stored = load_dies(run, columns=["die", "n_correct"]).set_index("die").loc[dies, "n_correct"]
    assert_array_equal(before, stored.to_numpy())
    seen = []
    again = correction.correct_per_die(model, dies[::-1], method="rff-ridge", seed=3, batch=3,
                                       progress=lambda done, total: seen.append((done, total)))
    assert_array_equal(again[0], before[::-1])
    assert_array_equal(again[1], after[::-1])
    assert seen == [(3, N_DIES), (6, N_DIES), (8, N_DIES)]
    empty = correction.correct_per_die(model, [], seed=3)
    assert empty[0].shape == empty[1].shape == (0,)


def test_die_voltages_are_the_dies_outputs(model):
    x_test = model.images("test")[0]
    (v,) = correction.die_voltages(model, [2, 0], ("test",))
    assert v.shape == (2, 180, 10) and v.dtype == np.float64
    assert_array_equal(v[0], model.die_outputs(2, [x_test])[0][0])


def test_population_rows_are_the_held_out_half(run):
    table = correction.load_corrected(run, "population")
    assert len(table) == N_DIES // 2 and set(table.role) == {"evaluated"} and set(table.method) == {"mlp"}
    assert (table.corrector_params == 10 * 16 + 16 + 16 * 10 + 10).all()


# ---- calibration budget (n_calibration) ----------------------------------------------------

def test_correct_per_die_without_a_budget_is_todays_fit(model):
    """n_calibration=None (and any budget >= the training images) is the plain per-die fit on
    every training image, bit for bit."""
    dies = [1, 4, 6]
    v_train, v_test = correction.die_voltages(model, dies, ("train", "test"))
    y_train, y_test = model.images("train")[1], model.images("test")[1]
    pred = fit_predict_many(v_train, y_train, v_test, "rff-ridge", random_state=2)
    expected = (pred == y_test).sum(axis=1)
    for n_cal in (None, len(y_train), 10 * len(y_train)):
        before, after = correction.correct_per_die(model, dies, seed=2, n_calibration=n_cal)
        assert_array_equal(after, expected)
        assert_array_equal(before, (v_test.argmax(axis=2) == y_test).sum(axis=1))


def test_a_budget_trains_every_die_on_the_same_stratified_images_in_any_batch(model):
    dies = np.arange(5)
    y_train, y_test = model.images("train")[1], model.images("test")[1]
    pick = correction.stratified_subsample(y_train, 60, seed=1)
    assert len(pick) == 60 and set(y_train[pick]) == set(range(10))
    v_train, v_test = correction.die_voltages(model, dies, ("train", "test"))
    pred = fit_predict_many(v_train[:, pick], y_train[pick], v_test, "linear-ridge", random_state=1)
    _, after = correction.correct_per_die(model, dies, method="linear-ridge", seed=1, n_calibration=60)
    assert_array_equal(after, (pred == y_test).sum(axis=1))
    _, again = correction.correct_per_die(model, dies[::-1], method="linear-ridge", seed=1, n_calibration=60,
                                          batch=2)
    assert_array_equal(again, after[::-1])
    full = correction.correct_per_die(model, dies, method="linear-ridge", seed=1)[1]
    assert not np.array_equal(full, after)  # the budget is used, not ignored


@pytest.mark.parametrize("bad", [9, 0, 100.0, True])
def test_a_budget_below_the_classes_or_not_an_integer_is_refused_before_any_die(model, bad, monkeypatch):
    from yieldmc.errors import ConfigError

    monkeypatch.setattr(correction, "die_voltages", lambda *a, **k: pytest.fail("simulated a die"))
    with pytest.raises(ConfigError, match="n_calibration"):
        correction.correct_per_die(model, [0, 1], n_calibration=bad)
