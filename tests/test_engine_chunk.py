"""The compiled chunk engine against the readable reference die, die by die.

The oracle is :class:`yieldmc.die.DieModel` itself, drawing from the same counter-based
streams (:func:`yieldmc.rng.die_generator` is ``DieStream(seed, die)``). For every die the compiled call
must give bit-identical masks and defect parameters, the same per-die columns, the same
predictions, and output voltages within ``VOLT_RTOL`` (tests/tolerances.py) of the largest |V|. With
programming noise the conductances and transfer matrices themselves are compared bit for bit.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest

import yieldmc.defects as defects
from tests.reference.chunk import changed_cells
from tests.reference.forward import exp, hard_sigmoid, logistic
from tests.reference.lowrank import update_from_scratch
from tests.tolerances import EXP_RTOL, FLOAT32_STEPS, LOGISTIC_ATOL, REORDERED_UPDATE_RTOL, SHORTCUT_RTOL, VOLT_RTOL
from yieldmc import defect_params, montecarlo, schema
from yieldmc.circuit import SOLVER_RTOL, Resistances
from yieldmc.circuit.solver import SOLVER_MAX_ITER
from yieldmc.config import load_config
from yieldmc.die import DieModel
from yieldmc.engine import _forward, _lowrank
from yieldmc.engine.chunk import ROUTE_NAMES, EngineDesign, design_for, simulate_chunk_compiled
from yieldmc.engine.lowrank import LowRankCache
from yieldmc.engine.sampling import TWIN_CODES, die_masks
from yieldmc.engine.streams import die_key
from yieldmc.errors import ConfigError

#: Dies per setting of the kind x on_mode x severity matrix (9 x 2 x 3 settings).
N_MATRIX = 8
DIES = np.array([0, 1, 2, 3, 10**6 + 7, 2**40 + 3, 2**62 + 1, 123456789])
IDEAL = {"wires.r_row": 0.0, "wires.r_col": 0.0, "wires.r_driver": 0.0, "wires.r_sense": 0.0}
#: Shared with the per-setting results: the largest error seen (printed by -s runs).
WORST: dict[str, float] = {"volt_rel": 0.0, "dies": 0}


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """The paper die (trained once into a temporary cache)."""
    path = tmp_path_factory.mktemp("yieldmc_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YIELDMC_CACHE", str(path))
        yield DieModel.build(load_config("paper"))


def variant(model: DieModel, network=None, **changes) -> DieModel:
    """The same network and data on a changed design (no retraining)."""
    return DieModel(model.config.replace(**changes), network or model.network, model.dataset)


def assert_equivalent(model: DieModel, dies, images=("test",), **kw):
    """Compiled vs reference for each die; returns the ChunkResult."""
    design = EngineDesign.from_model(model, images, **kw)
    res = simulate_chunk_compiled(design, dies, keep_masks=True, keep_float64=True)
    cols = res.columns()
    sets = [model.images(name)[0] for name in design.images]
    for i, die in enumerate(np.asarray(dies).tolist()):
        where = f"die {die} of {model.config.defects} {model.config.wires}"
        _, masks, params = model.die_conductances(die)
        for a, (got, ref) in enumerate(zip(die_masks(res.masks, res.params, i), masks, strict=True)):
            assert np.array_equal(got, ref), f"{where}: mask of array {a}"
        assert res.defect_params(i) == params, where
        outs, s = model.die_outputs(die, sets, strict=False)
        for name, ref in zip(design.images, outs, strict=True):
            a, b = design.set_bounds[name]
            got = res.volts64[i, a:b]
            err = float(np.abs(got - ref).max() / np.abs(ref).max())
            WORST["volt_rel"] = max(WORST["volt_rel"], err)
            assert err <= VOLT_RTOL, f"{where}: {name} voltages off by {err:.3g} of max |V|"
            assert np.array_equal(res.predictions[i, a:b], ref.argmax(axis=1)), f"{where}: {name}"
            assert np.array_equal(res.volts[i, a:b], got.astype(np.float32)), where
        y = model.images("test")[1]
        n_correct = int(np.count_nonzero(outs[0].argmax(axis=1) == y))
        assert res.n_correct[i] == n_correct and cols["accuracy"][i] == n_correct / len(y), where
        assert cols["defect_type"][i] == s["defect_type"], where
        assert defect_params.params_to_python(cols["defect_params"][i:i + 1]) == [s["defect_params"]], where
        assert cols["layers_affected"][i] == schema.encode_layers(s["layers_affected"]), where
        assert (res.n_stuck_on[i], res.n_stuck_off[i]) == (s["n_stuck_on"], s["n_stuck_off"]), where
        assert res.fault_fraction[i] == s["fault_fraction"], where
        assert res.solver_converged[i] == s["solver_converged"], where
        assert res.solver_max_residual[i] <= SOLVER_RTOL, where
        for a, method in enumerate(s["methods"]):  # "reuse" exactly where nothing changed
            assert (ROUTE_NAMES[res.route[i, a]] == "reuse") == (method == "reuse"), where
    WORST["dies"] += len(dies)
    return res


# ---- the defect matrix on the paper die (IR drop) -------------------------------------

@pytest.mark.parametrize("on_mode", defects.ON_MODES)
@pytest.mark.parametrize("kind", [k for k in defects.KINDS if k in TWIN_CODES])
def test_every_kind_and_severity(paper, kind, on_mode):
    for severity in ([], [0.02, 0.02], [0.005, 0.05]):
        model = variant(paper, **{"defects.kind": kind, "defects.on_mode": on_mode,
                                  "defects.severity": severity, "defects.on_fraction": 0.3})
        dies = DIES[:N_MATRIX] + 17 * len(severity)
        res = assert_equivalent(model, dies)
        if kind == "none":
            assert np.all(res.route == 0) and np.all(res.n_stuck_on + res.n_stuck_off == 0)


@pytest.mark.parametrize("layers", [[0], [3], [1, 2]])
def test_layer_subsets(paper, layers):
    model = variant(paper, **{"defects.layers": layers})
    res = assert_equivalent(model, np.arange(12))
    hit = res.layers_mask[:, None] >> np.arange(4) & 1
    assert not np.any(hit[:, [layer for layer in range(4) if layer not in layers]])


@pytest.mark.parametrize("wires", [IDEAL, {"wires.r_sense": 50.0, "wires.r_driver": 20.0},
                                   {**IDEAL, "wires.r_sense": 50.0}], ids=["ideal", "sense+driver",
                                                                         "sense-only"])
def test_wires(paper, wires):
    res = assert_equivalent(variant(paper, **wires), np.arange(20))
    routes = set(res.route.ravel().tolist())
    if wires == IDEAL:
        assert routes <= {0, ROUTE_NAMES.index("ideal")}
    else:
        assert ROUTE_NAMES.index("lowrank") in routes


def severe_ranks(res) -> np.ndarray:
    from yieldmc.engine.lowrank import max_rank

    shapes = res.params["shapes"]
    return np.array([max_rank(int(m), int(n)) for m, n in shapes])


def test_cg_route_above_crossover_and_without_cache(paper):
    """Severe dies exceed the crossover of the small arrays; without dense inverses every
    change is a CG solve (the reference engine's kernel: the same T bit for bit)."""
    severe = variant(paper, **{"defects.kind": "random", "defects.severity": [0.7, 0.9]})
    res = assert_equivalent(severe, np.arange(6))
    assert np.all(res.rank > severe_ranks(res)), res.rank  # about 0.6 M N cells change
    assert np.all(res.route == ROUTE_NAMES.index("cg"))
    res = assert_equivalent(paper, np.arange(10), max_cache_cells=0)
    assert set(res.route.ravel().tolist()) == {0, ROUTE_NAMES.index("cg")}


def test_a_cg_solve_cut_short_is_reported(paper):
    """Two CG iterations cannot reach SOLVER_RTOL on arrays whose cells mostly change: every
    die says so (``solver_converged`` False, its residual above the tolerance)."""
    severe = variant(paper, **{"defects.kind": "random", "defects.severity": [0.7, 0.9]})
    design = EngineDesign.from_model(severe)
    phys = design.phys
    assert phys[9] == SOLVER_MAX_ITER  # (..., rtol, max_iter, block, ...)
    design = dataclasses.replace(design, phys=(*phys[:9], 2, *phys[10:]))
    res = simulate_chunk_compiled(design, np.arange(2))
    assert np.all(res.route == ROUTE_NAMES.index("cg"))
    assert not res.solver_converged.any()
    assert np.all(res.solver_max_residual > SOLVER_RTOL)


def test_stages_stop_early_with_the_full_run_s_values(paper):
    """``upto`` (benchmarks/bench_engine.py times the stages): stopped after the defects,
    or after the transfer matrices, the kernel gives what the full run gives for them."""
    from yieldmc.engine import _chunk as K

    model = variant(paper, **{"defects.kind": "random", "defects.severity": [0.02, 0.02],
                              "defects.layers": [0]})
    design = EngineDesign.from_model(model)
    dies = np.arange(2)
    full = simulate_chunk_compiled(design, dies, keep_masks=True)
    assert set(full.route.ravel().tolist()) == {ROUTE_NAMES.index("reuse"), ROUTE_NAMES.index("lowrank")}
    sample = simulate_chunk_compiled(design, dies, keep_masks=True, upto=K.STAGE_SAMPLE)
    transfer = simulate_chunk_compiled(design, dies, keep_masks=True, upto=K.STAGE_TRANSFER)
    for part in (sample, transfer):
        for f in ("masks", "n_draws", "die_kind"):
            assert np.array_equal(getattr(part, f), getattr(full, f)), f
        assert [part.defect_params(i) for i in range(2)] == [full.defect_params(i) for i in range(2)]
    for f in ("defect_code", "n_stuck_on", "n_stuck_off", "layers_mask", "route", "rank",
              "solver_max_residual", "solver_converged"):
        assert np.array_equal(getattr(transfer, f), getattr(full, f)), f


def test_shortcut_and_train_images(paper):
    """Layer 0 as P0 + rank-k correction vs the full product; the train images too."""
    dies = np.arange(40, 44)
    full = assert_equivalent(paper, dies, images=("test", "train"), shortcut=False)
    fast = assert_equivalent(paper, dies, images=("train",), shortcut=True)
    assert fast.set_bounds == {"test": (0, 180), "train": (180, 180 + 1617)}
    assert np.array_equal(full.predictions, fast.predictions)
    assert np.abs(full.volts64 - fast.volts64).max() <= SHORTCUT_RTOL * np.abs(full.volts64).max()
    v = fast.voltages()
    assert v["train"].shape == (4, 1617, 10) and v["train"].flags.c_contiguous


def test_tiling_and_hard_sigmoid(paper):
    """Several arrays per layer summing into shared columns; the other activation."""
    tiled = variant(paper, **{"arrays.max_rows": 24, "arrays.max_cols": 8})
    assert len(tiled.layout.arrays) > 8
    assert_equivalent(tiled, np.arange(12))
    hard = dataclasses.replace(paper.network, activation="hard_sigmoid")
    assert_equivalent(variant(paper, network=hard), np.arange(12))


def test_columns_equal_montecarlo_reference(paper):
    """``ChunkResult.columns()`` against montecarlo.simulate_chunk's own columns."""
    spec = montecarlo.ModelSpec(paper.config, "unused-network-path", "reference", model=paper)
    ref_cols, ref_volts = montecarlo.simulate_chunk(spec, range(30, 45), "test")
    res = simulate_chunk_compiled(design_for(paper), np.arange(30, 45))
    cols, volts = res.columns(), res.voltages()
    assert set(cols) == set(ref_cols)
    for name in ref_cols:
        if name in ("elapsed_s", "solver_max_residual"):
            continue  # wall time; the residual of the route taken (0 for exact routes)
        if name == "defect_params":  # typed pyarrow arrays, built two ways
            assert cols[name].equals(ref_cols[name]), name
            continue
        assert cols[name].dtype.kind == ref_cols[name].dtype.kind, name
        assert np.array_equal(cols[name], ref_cols[name]), name
    assert np.all(cols["solver_max_residual"] <= SOLVER_RTOL)
    assert volts["test"].dtype == np.float32 and volts["test"].shape == ref_volts["test"].shape
    diff = np.abs(volts["test"].astype(np.float64) - ref_volts["test"])
    assert np.all(diff <= FLOAT32_STEPS * np.spacing(np.abs(ref_volts["test"]).astype(np.float32)))
    assert design_for(paper) is design_for(paper)


def test_chunk_split_and_thread_invariance(paper):
    design = design_for(paper)
    dies = np.arange(500, 620)
    ref = simulate_chunk_compiled(design, dies, n_blocks=1, keep_masks=True)
    fields = ("defect_code", "n_draws", "n_stuck_on", "n_stuck_off", "layers_mask", "n_correct",
              "solver_max_residual", "route", "rank", "masks", "volts", "predictions")
    old = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            for n_blocks in (1, 3, 16):
                got = simulate_chunk_compiled(design, dies, n_blocks=n_blocks, keep_masks=True)
                for f in fields:
                    assert np.array_equal(getattr(got, f), getattr(ref, f)), (threads, n_blocks, f)
    finally:
        numba.set_num_threads(old)
    order = np.random.default_rng(0).permutation(dies.size)
    for part in np.array_split(order, 5):  # any split, any order
        got = simulate_chunk_compiled(design, dies[part])
        assert np.array_equal(got.volts, ref.volts[part])
        assert np.array_equal(got.route, ref.route[part])
        assert np.array_equal(got.params["radius"], ref.params["radius"][part], equal_nan=True)


# ---- programming noise ------------------------------------------------------------------

#: (programming_noise, defects.kind) settings run with both resistive and ideal wires.
NOISY = [(0.02, "mixed"), (0.02, "random"), (0.02, "none"), (0.1, "row"), (0.1, "mixed")]
#: Dies per noisy setting (30 x 10 settings).
NOISY_DIES = np.concatenate([np.arange(24), DIES[4:], [7 * 10**9, 2**33]])


@pytest.mark.parametrize("wires", ["resistive", "ideal"])
@pytest.mark.parametrize(("noise", "kind"), NOISY)
def test_programming_noise(paper, noise, kind, wires):
    """Noisy dies against the reference die by die: the same masks, columns and predictions;
    every array changes most of its cells and takes the CG route (resistive wires) or
    ``T = G1`` (ideal wires), never the rank-k update nor layer 0's fault-free products."""
    model = variant(paper, **{"device.programming_noise": noise, "defects.kind": kind,
                              **(IDEAL if wires == "ideal" else {})})
    design = EngineDesign.from_model(model)
    dev = model.config.device
    assert design.phys[2] == noise * (dev.g_on - dev.g_off)
    assert all(c is None for c in design.caches) and not design.max_rank.any()
    assert design.p0[0].size == 0 and design.vr[0].size == 0
    res = assert_equivalent(model, NOISY_DIES)
    assert np.all(res.route == ROUTE_NAMES.index("cg" if wires == "resistive" else "ideal"))
    for i, die in enumerate(NOISY_DIES[::3].tolist()):
        assert res.rank[3 * i].tolist() == changed_cells(model, die), die
    sizes = np.diff(design.cell_off)
    assert np.all(res.rank > sizes / 2)  # half the cells are at g_off: about 3/4 change
    if kind == "none":
        assert not np.any(res.n_stuck_on + res.n_stuck_off)
        assert np.all(res.defect_code == defects.KINDS.index("none"))
    else:
        assert np.any(res.n_stuck_on + res.n_stuck_off)


#: The realistic preset's drift (read one day after programming, nu = 0.01).
DRIFT = {"device.drift_nu": 0.01, "device.drift_t0": 1.0, "device.read_time": 86400.0}
MIDRANGE = {"mapping.scheme": "midrange"}


@pytest.mark.parametrize("physics", [
    MIDRANGE, DRIFT, {**MIDRANGE, "device.programming_noise": 0.02, "defects.kind": "mixed"},
    {**MIDRANGE, **DRIFT, "defects.kind": "mixed"}, {**MIDRANGE, **DRIFT, **IDEAL, "defects.kind": "row"},
], ids=["midrange", "drift", "midrange+noise", "midrange+drift", "midrange+drift-ideal"])
def test_mapping_scheme_and_drift(paper, physics):
    """What the engine covers of the device physics (they only move the layout's
    conductances): compiled against the reference die by die."""
    model = variant(paper, **physics)
    assert_equivalent(model, np.concatenate([np.arange(10), DIES[4:]]))


@pytest.mark.parametrize("wires", ["resistive", "ideal"])
def test_noisy_conductances_and_transfers_bit_identical(paper, wires):
    """:func:`_chunk._changes` gives the reference's noisy, stuck conductances bit for bit
    (draws ``n_draws + cell_off[a] + c``), and :func:`_chunk._transfer_cg` its fresh solve
    (``faulty_transfer``'s ``solve``, both kernel branches: 64x16 by columns, 8x16 by rows);
    tiled arrays too."""
    from yieldmc.engine import _chunk as K

    tiled = {"arrays.max_rows": 24, "arrays.max_cols": 8}
    for changes in ({"device.programming_noise": 0.05},
                    {"device.programming_noise": 0.05, **tiled}):
        model = variant(paper, **changes, **(IDEAL if wires == "ideal" else {}))
        design = EngineDesign.from_model(model)
        dies = np.array([0, 5, 2**40 + 3])
        res = simulate_chunk_compiled(design, dies, keep_masks=True)
        (g_on, g_off, noise, ideal, r_row, r_col, r_driver, r_sense, rtol, max_iter,
         block) = design.phys[:11]
        assert ideal == (wires == "ideal")
        for i, die in enumerate(dies.tolist()):
            Gs, _, _ = model.die_conductances(die)
            transfers, summary = model.die_transfers(die)
            assert set(summary["methods"]) == {"solve"}
            key = np.uint64(die_key(design.seed, die))
            for a, (G, T) in enumerate(zip(Gs, transfers, strict=True)):
                off, (m, n) = int(design.cell_off[a]), design.shapes[a]
                cells = np.empty(m * n, dtype=np.int64)
                g_new = np.empty(m * n)
                k, _, _ = K._changes(res.masks[i], off, m * n, design.g0, g_on, g_off, noise, key,
                                     res.n_draws[i] + off, cells, g_new)
                g1 = design.g0[off:off + m * n].copy()
                g1[cells[:k]] = g_new[:k]
                assert np.array_equal(g1.reshape(m, n), G), (die, a)
                assert k == res.rank[i, a] == np.count_nonzero(G != model.layout.arrays[a].G)
                if ideal:
                    assert np.array_equal(T, G)
                    continue
                t = np.empty(m * n)
                worst = K._transfer_cg(design.g0, off, m, n, cells, g_new, k,
                                       Resistances(r_row, r_col, r_driver, r_sense), rtol, max_iter, block, t)
                assert worst <= rtol
                assert np.array_equal(t.reshape(m, n), T), (die, a)


def test_noisy_chunk_split_and_thread_invariance(paper):
    model = variant(paper, **{"device.programming_noise": 0.02})
    design = EngineDesign.from_model(model)
    dies = np.arange(900, 960)
    ref = simulate_chunk_compiled(design, dies, n_blocks=1, keep_masks=True)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        got = simulate_chunk_compiled(design, dies[::-1], n_blocks=7, keep_masks=True)
    finally:
        numba.set_num_threads(old)
    for f in ("n_draws", "n_stuck_on", "n_stuck_off", "n_correct", "solver_max_residual",
              "route", "rank", "masks", "volts", "predictions"):
        assert np.array_equal(getattr(got, f)[::-1], getattr(ref, f)), f


# ---- scope, kernels ---------------------------------------------------------------------

@pytest.mark.parametrize("change", [{"device.model": "sinh"},
                                    {"device.model": "sinh", "device.programming_noise": 0.02}])
def test_sinh_device_is_refused(paper, change):
    """Only the non-linear device is outside the engine (programming noise is covered)."""
    with pytest.raises(ConfigError, match="readable path"):
        EngineDesign.from_model(variant(paper, **change))


def test_bad_arguments(paper):
    design = design_for(paper)
    with pytest.raises(ConfigError):
        simulate_chunk_compiled(design, [-1])
    with pytest.raises(ConfigError):
        simulate_chunk_compiled(design, [0], n_blocks=0)
    with pytest.raises(ConfigError):
        EngineDesign.from_model(paper, images=("test", "bogus"))
    empty = simulate_chunk_compiled(design, [])
    assert empty.volts.shape == (0, 180, 10) and empty.columns()["die"].size == 0


def test_update_scratch_holds_the_solve(paper):
    """The layer-0 correction reads ``S^-1 Cr_c`` that ``_lowrank.update_one`` leaves in
    its scratch ``x`` (M >= N): ``T1 = T0 - Rt_c^T x[:k]``. Guards that contract."""
    w = paper.wires
    G0 = paper.layout.arrays[0].G
    cache = LowRankCache.from_conductances(G0, w.r_row, w.r_col)
    rng = np.random.default_rng(1)
    cells = np.sort(rng.choice(G0.size, 30, replace=False))
    g_new = np.where(G0.ravel()[cells] > 5e-5, 1e-6, 1e-4)
    out = np.empty(G0.shape)
    sel, lu, x, scale = _lowrank.scratch(cells.size, *G0.shape)
    status = _lowrank.update_one(*cache.kernel_args(), cells, g_new, sel, lu, x, scale, out)
    assert status == _lowrank.STATUS_OK
    recon = update_from_scratch(cache.T0, cache.Rt, cells, x)
    assert np.abs(recon - out).max() <= REORDERED_UPDATE_RTOL * np.abs(out).max()


def test_vectorised_exp_and_logistic():
    x = np.linspace(-40.0, 40.0, 400_001)
    got = np.array([_forward._exp(v) for v in x[::97]])
    assert np.max(np.abs(got / exp(x[::97]) - 1)) < EXP_RTOL
    z = np.concatenate([np.linspace(-60.0, 60.0, 20_001), [-1e308, -745.0, 0.0, 745.0, 1e308]])
    sig = np.array([_forward._logistic(v) for v in z])
    assert np.max(np.abs(sig - logistic(z))) <= LOGISTIC_ATOL
    hard = np.array([_forward._hard_sigmoid(v) for v in z])
    assert np.array_equal(hard, hard_sigmoid(z))


def test_report_worst_error():
    """Runs last in this module: the evidence the tests above gathered."""
    print(f"\ncompiled vs reference: {WORST['dies']} dies, worst voltage error "
          f"{WORST['volt_rel']:.3g} of max |V|")
    assert WORST["volt_rel"] <= VOLT_RTOL
