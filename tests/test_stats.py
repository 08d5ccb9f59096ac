"""Yield estimates and binomial confidence intervals (yieldmc.stats).

Reference values come from Newcombe (1998), "Two-sided confidence intervals for the single
proportion: comparison of seven methods", Statistics in Medicine 17:857-872, Table II
(method 3 = Wilson score, method 5 = Clopper-Pearson "exact"), printed to 4 decimals.
They are also recomputed here from the closed forms with explicit constants.
"""

from __future__ import annotations

import dataclasses
import doctest
import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats as sps

import yieldmc.stats as ys
from tests.tolerances import FORMULA_RTOL, PUBLISHED_ATOL, TAIL_RTOL
from yieldmc.errors import ConfigError
from yieldmc.runyield import DEFAULT_THRESHOLD, yield_tables
from yieldmc.stats import (
    YieldEstimate,
    choose_method,
    clopper_pearson_interval,
    parse_thresholds,
    wilson_interval,
    yield_curve,
    yield_estimate,
    yield_report,
    yield_table,
)

#: z for a two-sided 95 % interval, Phi^-1(0.975), to 16 digits.
Z95 = 1.959963984540054

# (k, n, Wilson lo, Wilson hi, Clopper-Pearson lo, Clopper-Pearson hi), Newcombe 1998 Table II.
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662, 0.2527, 0.3676),
    (15, 148, 0.0624, 0.1605, 0.0578, 0.1617),
    (0, 20, 0.0, 0.1611, 0.0, 0.1684),
    (1, 29, 0.0061, 0.1718, 0.0009, 0.1776),
]


@pytest.mark.parametrize("k, n, wlo, whi, clo, chi", NEWCOMBE)
def test_published_examples(k, n, wlo, whi, clo, chi):
    assert_allclose(wilson_interval(k, n), (wlo, whi), rtol=0, atol=PUBLISHED_ATOL)
    assert_allclose(clopper_pearson_interval(k, n), (clo, chi), rtol=0, atol=PUBLISHED_ATOL)


def test_wilson_closed_form_by_hand():
    # k = 81, n = 263 written out step by step.
    p = 81 / 263
    z2 = Z95**2
    denom = 1 + z2 / 263
    centre = (p + z2 / (2 * 263)) / denom
    half = Z95 / denom * math.sqrt(p * (1 - p) / 263 + z2 / (4 * 263**2))
    assert_allclose(wilson_interval(81, 263), (centre - half, centre + half), rtol=FORMULA_RTOL)
    assert round(centre - half, 4) == 0.2553 and round(centre + half, 4) == 0.3662


@pytest.mark.parametrize("n", [1, 5, 10, 57, 1000])
def test_clopper_pearson_all_or_nothing(n):
    # k = 0: P(X = 0) = (1 - p)^n = 0.025 at the upper bound; k = n: p^n = 0.025 at the lower.
    lo, hi = clopper_pearson_interval(0, n)
    assert lo == 0.0
    assert_allclose(hi, 1 - 0.025 ** (1 / n), rtol=FORMULA_RTOL)
    lo, hi = clopper_pearson_interval(n, n)
    assert hi == 1.0
    assert_allclose(lo, 0.025 ** (1 / n), rtol=FORMULA_RTOL)


def test_clopper_pearson_zero_of_ten():
    assert round(clopper_pearson_interval(0, 10)[1], 4) == 0.3085


@pytest.mark.parametrize("k, n", [(1, 10), (7, 20), (50, 100), (999, 1000)])
def test_clopper_pearson_inverts_the_binomial_test(k, n):
    # Definition: each bound leaves 2.5 % in one binomial tail.
    lo, hi = clopper_pearson_interval(k, n)
    assert_allclose(sps.binom.cdf(k, n, hi), 0.025, rtol=TAIL_RTOL)
    assert_allclose(sps.binom.sf(k - 1, n, lo), 0.025, rtol=TAIL_RTOL)


@pytest.mark.parametrize("func", [wilson_interval, clopper_pearson_interval])
def test_intervals_are_vectorised(func):
    k = np.array([0, 1, 17, 99, 100])
    lo, hi = func(k, 100, confidence=0.9)
    for i, ki in enumerate(k):
        assert_allclose((lo[i], hi[i]), func(int(ki), 100, confidence=0.9), rtol=FORMULA_RTOL)
    assert np.all((lo <= k / 100) & (k / 100 <= hi))
    # Broadcasting over n as well; n = 0 gives NaN bounds, not an error.
    lo, hi = func(np.array([[0], [2]]), np.array([3, 10]))
    assert lo.shape == (2, 2)
    assert_allclose(hi[1, 0], func(2, 3)[1], rtol=FORMULA_RTOL)
    lo, hi = func(np.array([0, 0, 2]), np.array([0, 3, 10]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert not np.any(np.isnan(lo[1:])) and not np.any(np.isnan(hi[1:]))


@pytest.mark.parametrize("func", [wilson_interval, clopper_pearson_interval])
@pytest.mark.parametrize(
    "k, n, confidence",
    [(5, 3, 0.95), (-1, 3, 0.95), (1.5, 3, 0.95), (1, 3, 1.0), (1, 3, 0.0), (np.nan, 3, 0.95)],
)
def test_interval_rejects_bad_input(func, k, n, confidence):
    with pytest.raises(ConfigError):
        func(k, n, confidence)


def test_wider_interval_at_higher_confidence():
    for func in (wilson_interval, clopper_pearson_interval):
        lo90, hi90 = func(30, 100, 0.90)
        lo99, hi99 = func(30, 100, 0.99)
        assert lo99 < lo90 and hi90 < hi99


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_coverage_by_simulation(p):
    # 20,000 binomial samples: the simulated coverage has a standard error of about 0.0015.
    # Wilson oscillates around nominal (Brown, Cai & DasGupta 2001, fig. 4); within 2 points.
    n, draws = 100, 20_000
    k = np.random.default_rng([2001, int(p * 100)]).binomial(n, p, size=draws)
    lo, hi = wilson_interval(k, n)
    wilson_cover = np.mean((lo <= p) & (p <= hi))
    assert 0.93 <= wilson_cover <= 0.97
    lo, hi = clopper_pearson_interval(k, n)
    assert np.mean((lo <= p) & (p <= hi)) >= 0.945  # conservative by construction


def test_choose_method_rule():
    assert choose_method(0, 50) == "clopper-pearson"
    assert choose_method(50, 50) == "clopper-pearson"
    assert choose_method(5, 1000) == "clopper-pearson"  # p within 3 SE of 0
    assert choose_method(995, 1000) == "clopper-pearson"
    assert choose_method(50, 100) == "wilson"
    assert choose_method(30, 1000) == "wilson"
    assert choose_method(0, 50, "wilson") == "wilson"
    with pytest.raises(ConfigError, match="method"):
        choose_method(1, 2, "exact")


def test_yield_is_the_direct_fraction():
    rng = np.random.default_rng(7)
    # Accuracies on a grid of 180 test images, so many dies sit exactly on a threshold.
    acc = rng.integers(120, 181, size=2_000) / 180
    for t in parse_thresholds("0.7:1:0.05"):
        est = yield_estimate(acc, t)
        assert est.k == np.count_nonzero(acc >= t)
        assert est.n == acc.size
        assert est.yield_ == est.k / est.n
        assert est.lo <= est.yield_ <= est.hi
    # 162 / 180 is exactly 0.9: such a die passes a threshold of 0.9.
    assert yield_estimate([162 / 180], 0.9).k == 1
    assert yield_estimate(np.full(10, 162 / 180), parse_thresholds("0.9")[0]).k == 10


def test_yield_estimate_method_and_interval():
    acc = np.r_[np.ones(60), np.zeros(40)]
    est = yield_estimate(acc, 0.5, method="wilson")
    assert isinstance(est, YieldEstimate)
    assert (est.lo, est.hi) == wilson_interval(60, 100)
    est = yield_estimate(acc, 0.5, method="clopper-pearson", confidence=0.9)
    assert (est.lo, est.hi) == clopper_pearson_interval(60, 100, 0.9)
    assert yield_estimate(acc, 0.5).method == "wilson"
    assert yield_estimate(np.ones(100), 0.5).method == "clopper-pearson"
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.k = 3  # frozen


def test_nan_accuracy_policy():
    acc = np.array([0.9, np.nan, 0.95, 0.2])
    with pytest.raises(ConfigError, match="NaN"):
        yield_estimate(acc, 0.5)
    est = yield_estimate(acc, 0.5, nan_policy="omit")
    assert (est.n, est.k, est.n_nan) == (3, 2, 1)
    with pytest.raises(ConfigError):
        yield_estimate([np.nan], 0.5, nan_policy="omit")  # nothing left
    with pytest.raises(ConfigError):
        yield_estimate([], 0.5)
    with pytest.raises(ConfigError):
        yield_estimate([0.5], 1.5)


def test_yield_curve_matches_estimates():
    rng = np.random.default_rng(3)
    acc = rng.beta(20, 2, size=500)
    thresholds = parse_thresholds("0.5:0.99:0.01")
    curve = yield_curve(acc, thresholds)
    assert list(curve.columns) == ["threshold", "n", "k", "yield", "lo", "hi", "method"]
    assert len(curve) == 50
    for row in curve.itertuples(index=False):
        est = yield_estimate(acc, row.threshold)
        assert (row.n, row.k, row.method) == (est.n, est.k, est.method)
        assert row.lo == est.lo and row.hi == est.hi
    assert np.all(np.diff(curve["yield"]) <= 0)  # yield never rises with the threshold
    assert_allclose(yield_curve(acc, "0.5:0.99:0.01")["yield"], curve["yield"], rtol=0)


def test_yield_table_groups_and_all_row():
    rng = np.random.default_rng(11)
    types = np.array(["ring", "row", "random"])[rng.integers(0, 3, size=300)]
    df = pd.DataFrame(
        {"defect_type": pd.Categorical(types), "accuracy": rng.uniform(0.5, 1.0, size=300)}
    )
    table = yield_table(df, 0.8)
    assert list(table["defect_type"]) == ["random", "ring", "row", "all"]
    assert list(table.columns[1:]) == list(ys.CURVE_COLUMNS)
    for row in table.itertuples(index=False):
        sub = df if row.defect_type == "all" else df[df.defect_type == row.defect_type]
        est = yield_estimate(sub.accuracy.to_numpy(), 0.8)
        assert (row.n, row.k, row.lo, row.hi) == (est.n, est.k, est.lo, est.hi)
    assert table["n"].iloc[:-1].sum() == table["n"].iloc[-1] == 300
    df2 = df.rename(columns={"accuracy": "acc_after"})
    assert yield_table(df2, 0.8, accuracy_column="acc_after")["k"].tolist() == table["k"].tolist()
    with pytest.raises(ConfigError, match="column"):
        yield_table(df, 0.8, by="layer")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0.9:0.95:0.01", [0.9, 0.91, 0.92, 0.93, 0.94, 0.95]),
        ("0.1:0.3:0.1", [0.1, 0.2, 0.3]),  # (0.3 - 0.1) / 0.1 = 1.9999999999999998
        ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("0.5:0.6:0.3", [0.5]),
        (" 0.8, 0.9,0.95 ", [0.8, 0.9, 0.95]),
        ("0.9", [0.9]),
    ],
)
def test_parse_thresholds(spec, expected):
    values = parse_thresholds(spec)
    assert values.dtype == np.float64
    assert values.tolist() == expected  # exact: each equals the double nearest its decimal


def test_parse_thresholds_long_range_is_inclusive():
    values = parse_thresholds("0.5:0.99:0.01")
    assert len(values) == 50 and values[0] == 0.5 and values[-1] == 0.99
    assert values[40] == 0.9


@pytest.mark.parametrize(
    "spec, match",
    [
        ("", "non-empty"),
        ("a:b:c", "number"),
        ("0.5:0.9", "start:stop:step"),
        ("0.5:0.9:0.1:2", "start:stop:step"),
        ("0.5:0.9:0", "step"),
        ("0.5:0.9:-0.1", "step"),
        ("0.9:0.5:0.1", "above stop"),
        ("0.5:1.5:0.1", r"\[0, 1\]"),
        ("-0.1", r"\[0, 1\]"),
        ("0.5,,0.6", "number"),
        ("nan", "finite"),
        ("0:1:1e-7", "10,000,001 values; at most 10,001"),
        ("0:1:0.00009", "at most 10,001"),
        pytest.param(",".join(["0.5"] * 10_002), "at most 10,001", id="list-of-10002"),
    ],
)
def test_parse_thresholds_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_thresholds(spec)


def test_docstring_examples():
    result = doctest.testmod(ys, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_parse_thresholds_refuses_a_huge_grid_at_once():
    import time

    start = time.perf_counter()
    with pytest.raises(ConfigError, match="at most"):
        parse_thresholds("0:1:1e-12")  # 10^12 values: refused before any is made
    assert time.perf_counter() - start < 0.1
    assert len(parse_thresholds("0:1:0.0001")) == ys.MAX_THRESHOLDS  # the finest grid allowed


# --- yield_report: the whole grid at once, without unconverged dies ---------------------------------

def _dies(n: int = 400, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "defect_type": pd.Categorical(np.array(["ring", "row", "random"])[rng.integers(0, 3, n)]),
        # accuracies on a 180-image grid, so that thresholds hit them exactly
        "accuracy": rng.integers(90, 181, n) / 180,
        "solver_converged": rng.random(n) > 0.1,
    })


def test_yield_report_leaves_unconverged_dies_out_and_counts_them():
    df = _dies()
    ok = df[df.solver_converged]
    bad = int((~df.solver_converged).sum())
    assert bad > 0
    report = yield_report(df, [0.8, 0.9])
    assert list(report.columns) == [*ys.CURVE_COLUMNS, "excluded_unconverged"]
    assert report["excluded_unconverged"].tolist() == [bad, bad]
    for row in report.to_dict(orient="records"):
        est = yield_estimate(ok.accuracy.to_numpy(), row["threshold"])
        assert [row[c] for c in ("n", "k", "yield", "lo", "hi", "method")] == [
            est.n, est.k, est.yield_, est.lo, est.hi, est.method]
    included = yield_report(df, [0.8, 0.9], include_unconverged=True)
    assert included["n"].tolist() == [len(df)] * 2
    assert included["excluded_unconverged"].tolist() == [0, 0]
    assert included["k"].tolist() == [int((df.accuracy >= t).sum()) for t in (0.8, 0.9)]
    # a table without the column: every die counts
    assert yield_report(df.drop(columns="solver_converged"), [0.8])["n"].tolist() == [len(df)]


def test_yield_report_by_group_matches_yield_table_threshold_by_threshold():
    df = _dies()
    grid = parse_thresholds("0.5:1:0.05")
    report = yield_report(df, grid, by="defect_type")
    ok = df[df.solver_converged]
    expected = pd.concat([yield_table(ok, t) for t in grid], ignore_index=True)
    assert report["defect_type"].tolist() == expected["defect_type"].tolist()  # threshold-major
    pd.testing.assert_frame_equal(report.drop(columns="excluded_unconverged"), expected, check_exact=True)
    per_group = (~df.solver_converged).groupby(df.defect_type, observed=True).sum()
    first = report[report.threshold == grid[0]].set_index("defect_type")["excluded_unconverged"]
    assert first.drop("all").to_dict() == per_group.to_dict()
    assert first["all"] == per_group.sum()


def test_yield_report_matches_yield_curve():
    df = _dies().assign(solver_converged=True)
    grid = parse_thresholds("0:1:0.001")
    pd.testing.assert_frame_equal(yield_report(df, grid).drop(columns="excluded_unconverged"),
                                  yield_curve(df.accuracy.to_numpy(), grid), check_exact=True)


def test_yield_report_of_a_fine_grid_is_fast():
    import time

    df = _dies(20_000)
    grid = parse_thresholds("0:1:0.001")  # 1,001 thresholds
    start = time.perf_counter()
    report = yield_report(df, grid, by="defect_type")
    elapsed = time.perf_counter() - start
    assert len(report) == 4 * len(grid)
    # about 0.02 s; one yield_table per threshold (the old command's loop) took 2.6 s
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_yield_report_edge_cases():
    df = _dies(30)
    df.loc[df.defect_type == "ring", "solver_converged"] = False
    report = yield_report(df, [0.8], by="defect_type").set_index("defect_type")
    ring = report.loc["ring"]
    assert ring["n"] == 0 and np.isnan(ring["yield"]) and np.isnan(ring["lo"]) and np.isnan(ring["hi"])
    assert ring["excluded_unconverged"] == int((df.defect_type == "ring").sum())
    with pytest.raises(ConfigError, match="no die to compute a yield from.*--include-unconverged"):
        yield_report(df.assign(solver_converged=False), [0.8])
    with pytest.raises(ConfigError, match="NaN"):
        yield_report(df.assign(accuracy=np.nan, solver_converged=True), [0.8])
    with pytest.raises(ConfigError, match="column"):
        yield_report(df, [0.8], by="layer")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        yield_report(df, [1.5])


# ---- runyield.yield_tables: what ``yieldmc yield`` prints, from a run directory -----------------

@pytest.fixture
def run_files(monkeypatch):
    """A run's die table (400 dies, some unconverged) and its corrected table (dies 0, 2, 4,
    ... 98), read through the functions yield_tables calls; records what was asked."""
    import yieldmc.correction
    import yieldmc.store

    df = _dies().assign(die=np.arange(400))
    rng = np.random.default_rng(9)
    fixed = pd.DataFrame({"die": np.arange(0, 100, 2), "accuracy_corrected": rng.integers(150, 181, 50) / 180})
    calls = []

    def load_dies(run, verify=True):
        calls.append(("dies", str(run), verify))
        return df.copy()

    def load_corrected(run, mode, verify=True):
        calls.append(("corrected", mode, verify))
        return fixed.copy()

    monkeypatch.setattr(yieldmc.store, "load_dies", load_dies)
    monkeypatch.setattr(yieldmc.correction, "load_corrected", load_corrected)
    return df, fixed, calls


def test_yield_tables_of_a_run_is_the_report_of_its_die_table(run_files):
    df, _, calls = run_files
    tables = yield_tables("RUN", "0.5:0.9:0.1", by="defect_type", verify=False)
    expected = yield_report(df, parse_thresholds("0.5:0.9:0.1"), by="defect_type").assign(stage="before")
    pd.testing.assert_frame_equal(tables.table, expected, check_exact=True)
    assert calls == [("dies", "RUN", False)]
    assert tables.unconverged == int((~df.solver_converged).sum()) > 0 and not tables.include_unconverged
    counted = yield_tables("RUN", include_unconverged=True)
    assert counted.include_unconverged and counted.table["n"].tolist() == [len(df)]


def test_yield_tables_thresholds(run_files):
    df, _, _ = run_files
    ok = df[df.solver_converged]
    default = yield_tables("RUN").table
    assert default["threshold"].tolist() == [0.8] == [DEFAULT_THRESHOLD]
    assert default["k"].tolist() == [int((ok.accuracy >= 0.8).sum())]
    assert yield_tables("RUN", threshold=0.9).table["threshold"].tolist() == [0.9]
    assert yield_tables("RUN", "0.7,0.9").table["threshold"].tolist() == [0.7, 0.9]
    with pytest.raises(ConfigError, match="give --threshold or --thresholds, not both"):
        yield_tables("RUN", "0.7,0.9", threshold=0.8)
    with pytest.raises(ConfigError, match="threshold"):
        yield_tables("RUN", "0.7:x:0.1")


def test_yield_tables_after_correction_covers_the_corrected_dies_only(run_files):
    df, fixed, calls = run_files
    tables = yield_tables("RUN", "0.8,0.9", corrected="per-die")
    assert calls[-1] == ("corrected", "per-die", True)
    table = tables.table
    assert table["stage"].tolist() == ["before", "before", "after", "after"]
    same = df[df.die.isin(fixed.die)]
    good = same[same.solver_converged]
    after = fixed.set_index("die").loc[good.die, "accuracy_corrected"].to_numpy()
    for t, before_row, after_row in zip((0.8, 0.9), table.iloc[:2].itertuples(), table.iloc[2:].itertuples(),
                                        strict=True):
        assert before_row.n == after_row.n == len(good)
        assert before_row.k == int((good.accuracy >= t).sum())
        assert after_row.k == int((after >= t).sum())
    assert tables.unconverged == int((~same.solver_converged).sum())  # of the corrected dies
