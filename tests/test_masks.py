"""Explicit defects (issue 14 item 1): given masks, canonical placements, ``--masks``.

A die can be given its masks instead of drawing them (:meth:`DieModel.mask_outputs`,
:meth:`DieModel.simulate_masks`, ``yieldmc die --masks``), and
:func:`yieldmc.masks.canonical_masks` makes the fixed, centred placement of each kind
(``yieldmc masks``). The reference for a given-mask die is the drawn die itself: the masks
die ``d`` draws must give its outputs bit for bit.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from yieldmc import defects
from yieldmc.cli import app
from yieldmc.defect_kinds import REGISTRY
from yieldmc.defects import STUCK_OFF, STUCK_ON
from yieldmc.die import DieModel
from yieldmc.errors import ConfigError
from yieldmc.masks import (
    CANONICAL_KINDS,
    array_seed,
    canonical_die_masks,
    canonical_masks,
    check_masks,
    design_layout,
    load_masks,
    save_masks,
)

PAPER_SHAPES = [(64, 16), (8, 16), (8, 16), (8, 20)]
#: Shapes with every parity of rows and columns, and the paper die's.
SHAPES = [(8, 8), (7, 9), (9, 8), (64, 16), (8, 20), (15, 15)]
DISK_KINDS = ("circular", "circular_complement", "ring")
SEVERITIES = (0.0, 0.02, 0.1, 0.3, 0.6, 1.0)


# ---- check_masks ---------------------------------------------------------------------------

def _good() -> list[np.ndarray]:
    return [np.zeros(s, dtype=np.int8) for s in PAPER_SHAPES]


def test_check_masks_returns_contiguous_int8_copies():
    given = [np.asarray(np.full(s[::-1], 2, dtype=np.int64).T) for s in PAPER_SHAPES]  # Fortran order
    given[1] = np.ones(PAPER_SHAPES[1], dtype=bool)  # bool: True is code 1, stuck OFF
    out = check_masks(given, PAPER_SHAPES)
    assert [m.dtype for m in out] == [np.dtype(np.int8)] * 4
    assert all(m.flags.c_contiguous for m in out)
    assert (out[0] == STUCK_ON).all() and (out[1] == STUCK_OFF).all()
    out[0][0, 0] = 0
    assert given[0][0, 0] == 2  # a copy


@pytest.mark.parametrize("change, message", [
    (lambda m: m[:3], "expected 4 masks (one per array), got 3"),
    (lambda m: [*m, m[0]], "expected 4 masks (one per array), got 5"),
    (lambda m: [m[0], np.zeros((8, 15), np.int8), *m[2:]],
     "array 1: mask shape (8, 15) does not match the array's shape (8, 16)"),
    (lambda m: [*m[:3], m[3].astype(np.float64)], "array 3: mask dtype float64 is not an integer type"),
    (lambda m: [m[0].astype(object), *m[1:]], "array 0: mask dtype object is not an integer type"),
    (lambda m: [m[0], m[1], np.where(np.arange(16) == 5, 3, 0)[None].repeat(8, 0), m[3]],
     "array 2: mask holds code 3 at row 0, column 5"),
    (lambda m: [np.full((64, 16), -1, np.int16), *m[1:]], "array 0: mask holds code -1 at row 0, column 0"),
    (lambda m: m[0], "got one array"),
])
def test_check_masks_rejects_each_bad_case(change, message):
    with pytest.raises(ConfigError) as err:
        check_masks(change(_good()), PAPER_SHAPES)
    assert message in str(err.value) and "\n" not in str(err.value)


# ---- save / load ---------------------------------------------------------------------------

def test_save_load_roundtrip(tmp_path):
    masks = canonical_masks("ring", PAPER_SHAPES, 0.2, seed=4)
    path = save_masks(tmp_path / "m.npz", masks)
    again = load_masks(path)
    assert len(again) == 4
    for a, b in zip(masks, again, strict=True):
        assert a.dtype == b.dtype == np.int8
        np.testing.assert_array_equal(a, b)
    with np.load(path) as raw:
        assert sorted(raw.files) == ["array_0", "array_1", "array_2", "array_3"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "m.npz"
    save_masks(path, _good())
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        save_masks(path, canonical_masks("row", PAPER_SHAPES, 0.5))
    assert not load_masks(path)[0].any()
    save_masks(path, canonical_masks("row", PAPER_SHAPES, 0.5), overwrite=True)
    assert load_masks(path)[0].any()


def _bad_file(tmp_path, case: str):
    path = tmp_path / f"{case}.npz"
    if case == "missing":
        return path
    if case == "npy":
        np.save(tmp_path / "one.npy", np.zeros((2, 2), np.int8))
        return tmp_path / "one.npy"
    if case == "text":
        path.write_text("not a zip")
    elif case == "keys":
        np.savez(path, mask0=np.zeros((2, 2), np.int8))
    elif case == "gap":
        np.savez(path, array_0=np.zeros((2, 2), np.int8), array_2=np.zeros((2, 2), np.int8))
    elif case == "float":
        np.savez(path, array_0=np.zeros((2, 2)))
    elif case == "code":
        np.savez(path, array_0=np.full((2, 2), 7, np.int8))
    elif case == "ndim":
        np.savez(path, array_0=np.zeros(4, np.int8))
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("npy", "not an .npz archive"), ("text", "not a readable .npz"),
    ("keys", "expected keys array_0 .. array_{n-1}, got mask0"), ("gap", "got array_0, array_2"),
    ("float", "array_0: mask dtype float64"), ("code", "array_0: mask holds code 7"), ("ndim", "2-D"),
])
def test_load_rejects_bad_files_in_one_line(tmp_path, case, message):
    with pytest.raises(ConfigError) as err:
        load_masks(_bad_file(tmp_path, case))
    assert message in str(err.value) and "\n" not in str(err.value)


# ---- canonical placements ------------------------------------------------------------------

def test_the_canonical_kinds_are_registered_kinds():
    assert set(CANONICAL_KINDS) - {"none"} == set(REGISTRY.names)


@pytest.mark.parametrize("kind", DISK_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("s", SEVERITIES)
def test_disk_kinds_are_centred_and_meet_severity_to_a_distance_level(kind, shape, s):
    m = canonical_masks(kind, [shape], s, on_mode="on")[0]
    faulty = m > 0
    np.testing.assert_array_equal(faulty, faulty[::-1, :])  # up-down and left-right symmetric
    np.testing.assert_array_equal(faulty, faulty[:, ::-1])
    # the granularity of a centred disk: the cells at one distance from the centre come
    # together, at most 4 of them (8 on a square array)
    level = 8 if shape[0] == shape[1] else 4
    assert abs(int(faulty.sum()) - s * faulty.size) <= level, (faulty.sum(), s * faulty.size)


def test_centred_disk_is_a_disk_and_the_ring_has_a_hole():
    shape = (15, 15)
    disk = canonical_masks("circular", [shape], 0.3, on_mode="on")[0] > 0
    out = canonical_masks("circular_complement", [shape], 0.7, on_mode="on")[0] > 0
    np.testing.assert_array_equal(disk, ~out)  # the complement of the same disk
    y, x = np.mgrid[:15, :15] - 7
    d2 = x**2 + y**2
    assert d2[disk].max() < d2[~disk].min()  # every cell inside is nearer than every cell outside
    ring = canonical_masks("ring", [shape], 0.3, on_mode="on")[0] > 0
    assert not ring[7, 7] and abs(int(ring.sum()) - 0.3 * 225) <= 8  # one distance level of a square array
    assert d2[ring].min() > 0 and d2[ring].max() < d2[~ring & (d2 > d2[ring].min())].max()


@pytest.mark.parametrize("kind, axis", [("row", 0), ("column", 1)])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("s", SEVERITIES)
def test_lines_are_centred_and_within_half_a_line(kind, axis, shape, s):
    m = canonical_masks(kind, [shape], s, on_mode="off")[0]
    lines = np.flatnonzero((m == STUCK_OFF).all(axis=1 - axis))
    assert (m > 0).sum() == lines.size * shape[1 - axis]  # whole lines only
    size = shape[axis]
    if s * size >= 0.5:
        assert abs(lines.size / size - s) <= 1 / (2 * size)
    else:  # fewer than half a line asked for: one line when s > 0, none at 0
        assert lines.size == (s > 0)
    if lines.size:
        assert (np.diff(lines) == 1).all()  # contiguous
        above, below = lines[0], size - 1 - lines[-1]
        assert below - above in (0, 1)  # centred; an odd leftover line goes below
        if (size - lines.size) % 2 == 0:
            np.testing.assert_array_equal(m, np.flip(m, axis))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("s", (0.02, 0.1, 0.3, 0.45))
def test_checkerboard_meets_severity_in_a_centred_region(shape, s):
    from tests.tolerances import CHECKER_TOL

    m = canonical_masks("checkerboard", [shape], s, on_mode="on")[0] > 0
    assert abs(m.mean() - s) <= CHECKER_TOL
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    assert abs(rows[0] - (shape[0] - 1 - rows[-1])) <= 1 and abs(cols[0] - (shape[1] - 1 - cols[-1])) <= 1
    block = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ii, jj = np.indices(block.shape)
    np.testing.assert_array_equal(block, (ii + jj) % 2 == 0)  # a block-1 checkerboard


@pytest.mark.parametrize("kind", [k for k in CANONICAL_KINDS if k not in ("random", "none")])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("s", (0.001, 0.02, 0.05, 0.5, 1.0))
def test_no_kind_vanishes_and_every_ring_has_a_hole(kind, shape, s):
    faulty = canonical_masks(kind, [shape], s, on_mode="on")[0] > 0
    assert faulty.any()  # a small array still gets its disk, line or checkerboard cell
    if kind == "ring":
        m, n = shape
        centre = faulty[(m - 1) // 2:m // 2 + 1, (n - 1) // 2:n // 2 + 1]
        assert not centre.any()  # the hole: a ring is never the disk of the same size


@pytest.mark.parametrize("s", (0.02, 0.05))
def test_no_two_canonical_kinds_share_an_array_of_the_paper_die(paper, s):
    # protocols B and C compare kinds on the same arrays: two kinds that round to the same
    # cells would train and test on one circuit (8-row arrays at 2 % once made ring = circular)
    kinds = [k for k in CANONICAL_KINDS if k not in ("random", "none")]
    shapes = paper.layout.shapes
    masks = {k: canonical_masks(k, shapes, s, on_mode="on") for k in kinds}
    for i in range(len(shapes)):
        for a, b in itertools.combinations(kinds, 2):
            assert not np.array_equal(masks[a][i], masks[b][i]), (s, i, a, b)


def test_checkerboard_saturates_at_half_the_cells():
    m = canonical_masks("checkerboard", [(8, 16)], 0.9, on_mode="on")[0]
    assert (m > 0).sum() == 64


def test_random_is_a_fixed_draw_keyed_by_seed_and_array():
    a = canonical_masks("random", PAPER_SHAPES, 0.1, seed=3)
    b = canonical_masks("random", PAPER_SHAPES, 0.1, seed=3)
    c = canonical_masks("random", PAPER_SHAPES, 0.1, seed=4)
    for i, shape in enumerate(PAPER_SHAPES):
        np.testing.assert_array_equal(a[i], b[i])
        p = {"density": 0.1, "seed": array_seed(3, i), "on_fraction": 0.5}
        np.testing.assert_array_equal(a[i], defects.mask("random", shape, p))
    assert any((x != y).any() for x, y in zip(a, c, strict=True))
    assert (a[1] != a[2]).any()  # equal shapes, different arrays: different cells


def test_on_off_map_is_shared_by_every_kind():
    """on_mode="cell": one ON/OFF state per cell, whatever the kind (transfer studies)."""
    kinds = [k for k in CANONICAL_KINDS if k != "none"]
    for seed in (0, 7):
        full = canonical_masks("row", PAPER_SHAPES, 1.0, seed=seed, on_fraction=0.3)  # every cell faulty
        for kind in kinds:
            for m, ref in zip(canonical_masks(kind, PAPER_SHAPES, 0.3, seed=seed, on_fraction=0.3), full,
                              strict=True):
                faulty = m > 0
                np.testing.assert_array_equal(m[faulty], ref[faulty])
        share_on = np.mean(np.concatenate([(m == STUCK_ON).ravel() for m in full]))
        assert 0.25 < share_on < 0.35  # 1,440 cells at q = 0.3: about 5 standard errors
    other = canonical_masks("row", PAPER_SHAPES, 1.0, seed=1)
    assert (other[0] != canonical_masks("row", PAPER_SHAPES, 1.0, seed=0)[0]).any()


def test_on_fraction_grows_the_on_cells_monotonically():
    low = canonical_masks("circular", PAPER_SHAPES, 0.5, on_fraction=0.2)[0]
    high = canonical_masks("circular", PAPER_SHAPES, 0.5, on_fraction=0.6)[0]
    assert ((low == STUCK_ON) <= (high == STUCK_ON)).all()


@pytest.mark.parametrize("mode, code", [("on", STUCK_ON), ("off", STUCK_OFF)])
def test_all_on_and_all_off_modes(mode, code):
    for kind in CANONICAL_KINDS:
        masks = canonical_masks(kind, PAPER_SHAPES, 0.25, on_mode=mode, seed=2)
        cell = canonical_masks(kind, PAPER_SHAPES, 0.25, seed=2)
        for m, c in zip(masks, cell, strict=True):
            assert set(np.unique(m)) <= {0, code}
            np.testing.assert_array_equal(m > 0, c > 0)  # the mode changes states, not cells


def test_affected_arrays_only_and_none_is_empty():
    masks = canonical_masks("circular", PAPER_SHAPES, 0.2, affected=[1, 3])
    assert [bool(m.any()) for m in masks] == [False, True, False, True]
    flags = canonical_masks("circular", PAPER_SHAPES, 0.2, affected=[True, False, False, False])
    assert [bool(m.any()) for m in flags] == [True, False, False, False]
    assert not any(m.any() for m in canonical_masks("none", PAPER_SHAPES, 0.5))


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "mixed"}, "unknown defect kind 'mixed'"),
    ({"kind": "blob"}, "unknown defect kind 'blob'"),
    ({"on_mode": "pattern"}, "on_mode must be one of cell, on, off"),
    ({"severity": 1.5}, "severity must be a number in [0, 1]"),
    ({"severity": -0.1}, "severity must be a number in [0, 1]"),
    ({"severity": float("nan")}, "severity must be a number in [0, 1]"),
    ({"severity": (0.1, 0.2)}, "one severity"),
    ({"on_fraction": 2.0}, "on_fraction must be a number in [0, 1]"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"seed": 1.5}, "seed must be an integer >= 0"),
    ({"affected": [7]}, "affected array index"),
])
def test_canonical_masks_reject_bad_settings(kwargs, message):
    args = {"kind": "ring", "severity": 0.1, **kwargs}
    kind, severity = args.pop("kind"), args.pop("severity")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        canonical_masks(kind, PAPER_SHAPES, severity, **args)


def test_canonical_masks_use_no_global_rng():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a = canonical_masks("random", PAPER_SHAPES, 0.2)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.random.seed(99)
    for x, y in zip(a, canonical_masks("random", PAPER_SHAPES, 0.2), strict=True):
        np.testing.assert_array_equal(x, y)


# ---- the die with given masks --------------------------------------------------------------

def _variant(model: DieModel, **changes) -> DieModel:
    return DieModel(model.config.replace(**changes), model.network, model.dataset)


@pytest.mark.parametrize("changes", [
    {},
    {"device.programming_noise": 0.02},  # the noise is die d's: drawn past its defect draws
    {"defects.kind": "ring", "defects.severity": [0.1, 0.1], "defects.layers": [1]},
])
def test_a_drawn_dies_masks_give_that_die_bit_for_bit(paper, changes):
    model = _variant(paper, **changes) if changes else paper
    x_train, x_test = model.images("train")[0][:50], model.images("test")[0]
    for die in (0, 3, 11):
        _, masks, _ = model.die_conductances(die)
        want, s_want = model.die_outputs(die, [x_train, x_test])
        got, s_got = model.mask_outputs(masks, [x_train, x_test], die=die)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
        same = ("layers_affected", "n_stuck_on", "n_stuck_off", "fault_fraction", "solver_max_residual",
                "solver_converged", "methods")
        assert {k: s_got[k] for k in same} == {k: s_want[k] for k in same}
        assert s_got["defect_type"] == ("explicit" if s_want["defect_type"] != "none" else "none")
        r = model.simulate_masks(masks, die=die)
        ref = model.simulate(die)
        np.testing.assert_array_equal(r.outputs, ref.outputs)
        assert r.die == die and r.accuracy == ref.accuracy


def test_all_zero_masks_give_the_fault_free_die(paper):
    x = paper.images("test")[0]
    (out,), summary = paper.mask_outputs(_good(), [x], die=5)
    np.testing.assert_array_equal(out, paper.forward(paper.T0, x))
    assert summary["defect_type"] == "none" and summary["fault_fraction"] == 0.0
    assert summary["methods"] == ["reuse"] * 4
    assert paper.simulate_masks(_good()).accuracy == paper.fault_free_accuracy()


def test_given_masks_are_what_the_die_gets(paper):
    masks = canonical_masks("row", paper.layout.shapes, 0.25, on_mode="on", affected=[2])
    r = paper.simulate_masks(masks)
    assert r.defect_type == "explicit" and r.layers_affected == [2]
    assert r.n_stuck_on == 2 * 16 and r.n_stuck_off == 0
    assert r.defect_params == [{"kind": "none"}, {"kind": "none"}, {"kind": "explicit"}, {"kind": "none"}]
    Gs, checked = paper.mask_conductances(masks)
    assert (Gs[2][masks[2] == STUCK_ON] == paper.config.device.g_on).all()
    np.testing.assert_array_equal(Gs[0], paper.layout.arrays[0].G)


def test_masks_that_do_not_fit_the_die_are_refused(paper):
    x = paper.images("test")[0]
    with pytest.raises(ConfigError, match="array 3: mask shape"):
        paper.mask_outputs([*_good()[:3], np.zeros((8, 16), np.int8)], [x])
    with pytest.raises(ConfigError, match="expected 4 masks"):
        paper.simulate_masks(_good()[:2])


def test_design_layout_is_the_dies_layout(paper):
    assert design_layout(paper.config).shapes == paper.layout.shapes
    cfg = paper.config.replace(**{"defects.layers": [0, 3]})
    masks = canonical_die_masks(cfg, "circular", 0.1, on_mode="off")
    assert [bool(m.any()) for m in masks] == [True, False, False, True]
    assert [m.shape for m in masks] == paper.layout.shapes


# ---- the command line ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli(cache_dir):
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"YIELDMC_CACHE": str(cache_dir)})


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_die_masks_runs_a_drawn_dies_masks_as_that_die(cli, paper, tmp_path):
    _, masks, _ = paper.die_conductances(3)
    save_masks(tmp_path / "die3.npz", masks)
    drawn = json.loads(cli("die", "--die", "3", "--json").stdout)
    given = cli("die", "--masks", str(tmp_path / "die3.npz"), "--die", "3", "--json")
    assert given.exit_code == 0, given.stderr
    given = json.loads(given.stdout)
    assert given["defect_type"] == "explicit" and drawn["defect_type"] != "none"
    for key in ("circuit_accuracy", "ideal_wire_accuracy", "fault_fraction", "n_stuck_on", "n_stuck_off",
                "layers_affected", "update_methods"):
        assert given[key] == drawn[key], key
    text = cli("die", "--masks", str(tmp_path / "die3.npz"))
    assert text.exit_code == 0 and "this die (explicit" in text.stdout


def test_masks_command_writes_canonical_masks(cli, paper, tmp_path):
    out = tmp_path / "ring.npz"
    made = cli("masks", "ring", "--severity", "0.1", "--layers", "0,1", "--on-mode", "on", "--out", str(out))
    assert made.exit_code == 0, made.stderr
    assert str(out) in made.stdout
    want = canonical_masks("ring", paper.layout.shapes, 0.1, on_mode="on", affected=[0, 1])
    for a, b in zip(load_masks(out), want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "exists; pass --overwrite" in _one_error_line(cli("masks", "row", "--severity", "0.5", "--out", str(out)))
    again = cli("masks", "row", "--severity", "0.5", "--out", str(out), "--overwrite")
    assert again.exit_code == 0 and load_masks(out)[3].any()
    run = cli("die", "--masks", str(out), "--json")
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["circuit_accuracy"] == paper.simulate_masks(load_masks(out)).accuracy


def test_masks_help_lists_the_canonical_kinds(cli):
    text = " ".join(cli("masks", "--help").stdout.split())
    kinds = list(CANONICAL_KINDS)
    assert f"Defect kind: {', '.join(kinds[:-1])} or {kinds[-1]}." in text


@pytest.mark.parametrize("case", ["missing", "npy", "text", "keys", "float", "code", "shape", "count"])
def test_die_masks_bad_input_is_one_line_and_exit_2(cli, tmp_path, case):
    if case == "shape":
        path = tmp_path / "shape.npz"
        np.savez(path, **{f"array_{i}": np.zeros((s[0], s[1] + (i == 2)), np.int8)
                          for i, s in enumerate(PAPER_SHAPES)})
    elif case == "count":
        path = tmp_path / "count.npz"
        np.savez(path, array_0=np.zeros((64, 16), np.int8))
    else:
        path = _bad_file(tmp_path, case)
    line = _one_error_line(cli("die", "--masks", str(path), "--json"))
    assert "Traceback" not in line


@pytest.mark.parametrize("args, message", [
    (["die", "--masks", "M", "--defect", "ring"], "leave out --defect"),
    (["masks", "blob", "--severity", "0.1", "--out", "OUT"], "unknown defect kind 'blob'"),
    (["masks", "ring", "--severity", "lots", "--out", "OUT"], "--severity must be a number"),
    (["masks", "ring", "--severity", "1.5", "--out", "OUT"], "severity must be a number in [0, 1]"),
    (["masks", "ring", "--severity", "0.1", "--on-mode", "pattern", "--out", "OUT"], "on_mode must be one of"),
    (["masks", "ring", "--severity", "0.1", "--layers", "7", "--out", "OUT"], "defects.layers"),
])
def test_bad_options_are_one_line_and_exit_2(cli, tmp_path, args, message):
    good = save_masks(tmp_path / "good.npz", _good())
    out = tmp_path / "out.npz"
    result = cli(*[{"M": str(good), "OUT": str(out)}.get(a, a) for a in args])
    assert message in _one_error_line(result)
    assert not out.exists()
