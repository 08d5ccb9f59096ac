"""The defect-kind registry (yieldmc.defect_kinds) is the one place that names kinds.

Everything that lists kinds, parameters or ``mixed``'s pool reads it; a kind registered at
run time (here: ``stripe``, without a compiled twin) is drawn, checked, stored and swept
without touching any other module, on the reference engine.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from tests.tolerances import ARITHMETIC_RTOL, BAND_SHARE_ATOL
from yieldmc import config as config_module
from yieldmc import defect_kinds, defect_params, defects
from yieldmc.config import DefectConfig, load_config
from yieldmc.defect_kinds import REGISTRY, DefectKind, Param, cell_centres
from yieldmc.engine.chunk import check_supported
from yieldmc.engine.sampling import TWIN_CODES, check_twins, kind_code, sample_chunk
from yieldmc.errors import ConfigError
from yieldmc.montecarlo import effective_engine, run_sample
from yieldmc.rng import die_generator
from yieldmc.store import load_dies

#: The ring's width, reused by the test kind: the typed column, fixed at import, holds it.
WIDTH = REGISTRY.get("ring").params[-1]
STRIPE_WIDTH = (0.05, 0.2)


def _draw_stripe(shape, rng, s):
    return {"width": float(s if s is not None else rng.uniform(*STRIPE_WIDTH))}


def _stripe_cells(shape, p):
    y, x = cell_centres(*shape)
    return np.abs(y - x) <= p["width"] / 2


def _check_stripe(shape, p):
    if p["width"] < 0:
        raise ValueError(f"width={p['width']!r}")


STRIPE = DefectKind("stripe", "a band along the main diagonal (a test kind)", (WIDTH,), draw=_draw_stripe,
                      cells=_stripe_cells, check=_check_stripe, spatial=False)


@pytest.fixture
def stripe(monkeypatch):
    """``stripe`` registered for one test (monkeypatch restores the registry)."""
    monkeypatch.setattr(defect_kinds, "REGISTRY", REGISTRY.extended(STRIPE))
    return STRIPE


# --- one source ------------------------------------------------------------------------------

def test_the_kind_lists_are_the_registrys():
    names = tuple(k.name for k in REGISTRY.entries)
    assert REGISTRY.names == names
    assert defects.KINDS == defect_kinds.KINDS == REGISTRY.kinds == (*names, "mixed", "none")
    assert defects.SPATIAL_KINDS == defect_kinds.SPATIAL_KINDS == tuple(k.name for k in REGISTRY.entries
                                                                       if k.spatial)
    assert defect_params.PARAM_KINDS == (*names, "none")
    assert defects.ON_MODES == defect_kinds.ON_MODES
    for kind in REGISTRY.kinds:
        assert DefectConfig(kind=kind).kind == kind


def test_the_typed_column_is_the_union_of_the_registrys_parameters():
    union = list(dict.fromkeys(p.name for k in REGISTRY.entries for p in k.params))
    assert [f.name for f in defect_params.PARAMS_FIELDS] == ["kind", *union, "state", "on_fraction", "seed"]
    by_name = {f.name: f for f in defect_params.PARAMS_FIELDS}
    for p in REGISTRY.params:
        assert by_name[p.name].arrow_type == defect_params.ARROW_TYPES[p.type]
        assert by_name[p.name].description == p.description
        assert by_name[p.name].kinds == ", ".join(k.name for k in REGISTRY.entries if p in k.params)
    assert defect_params.PARAMS_STRUCT == pa.struct([pa.field(f.name, f.arrow_type)
                                                     for f in defect_params.PARAMS_FIELDS])


def test_the_compiled_twins_are_registered_kinds():
    """The nine kinds of run format 2 keep their twins; spatial kinds hold codes 0..n-1."""
    assert set(TWIN_CODES) == {*defects.SPATIAL_KINDS, "random", "mixed", "none"}
    assert set(TWIN_CODES) <= set(REGISTRY.kinds)
    assert [TWIN_CODES[k] for k in REGISTRY.spatial] == list(range(len(REGISTRY.spatial)))
    assert [kind_code(k) for k in REGISTRY.kinds] == list(range(len(REGISTRY.kinds)))


def test_mixed_draws_the_spatial_kinds_with_equal_default_weights():
    cum = defects.mixed_cumulative(None)
    n = len(REGISTRY.spatial)
    assert cum.tolist() == np.linspace(1 / n, 1, n).tolist()  # the draws of every stored run
    np.testing.assert_allclose(np.diff(cum, prepend=0.0), 1 / n, rtol=ARITHMETIC_RTOL)


def test_config_names_kinds_and_devices_without_importing_their_modules():
    code = ("import sys, yieldmc.config as c; c.load_config('paper'); "
            "print(sorted(m for m in sys.modules if m in ('yieldmc.defects', 'yieldmc.devices')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert config_module.DEVICE_MODELS == ("linear", "sinh")


def test_a_registry_refuses_duplicates_reserved_names_and_clashing_parameters():
    ring = REGISTRY.get("ring")
    with pytest.raises(ValueError, match="twice"):
        REGISTRY.extended(ring)
    with pytest.raises(ValueError, match="reserved"):
        REGISTRY.extended(dataclasses.replace(ring, name="mixed"))
    clash = dataclasses.replace(STRIPE, params=(Param("width", "int", "Another width."),))
    with pytest.raises(ValueError, match="width"):
        REGISTRY.extended(clash)
    with pytest.raises(ValueError, match="type"):
        REGISTRY.extended(dataclasses.replace(STRIPE, params=(Param("slope", "complex", "No."),)))
    with pytest.raises(ConfigError, match="unknown defect kind 'stripe'; valid kinds: circular"):
        REGISTRY.get("stripe")


# --- a kind registered at run time -------------------------------------------------------------

def test_a_registered_kind_is_drawn_checked_and_stored(stripe):
    shapes = [(16, 16), (8, 20)]
    masks, params = defects.sample_die("stripe", shapes, die_generator(3, 0), affected=[1])
    assert params[0] == {"kind": "none"} and params[1]["kind"] == "stripe"
    assert masks[1].any() and not masks[0].any()
    assert defects.die_label(masks, params) == "stripe"
    assert np.array_equal(defects.mask("stripe", shapes[1], params[1]), masks[1])
    again = defects.sample_die("stripe", shapes, die_generator(3, 0), affected=[1])
    assert again[1] == params  # a pure function of the die's stream
    # severity: the width is the target share; the band's share of a square is about it
    m, p = defects.sample("stripe", (64, 64), 0, severity=0.25, on_mode="pattern", on_fraction=1.0)
    assert p == {"kind": "stripe", "width": 0.25, "state": "on"}
    assert set(np.unique(m).tolist()) == {0, 2} and abs((m > 0).mean() - 0.25) < BAND_SHARE_ATOL
    # hand-written parameters go through the kind's check
    with pytest.raises(ConfigError, match="width"):
        defects.mask("stripe", (8, 8), {"width": -0.1})
    with pytest.raises(ConfigError, match="needs params width"):
        defects.mask("stripe", (8, 8), {})
    # the typed column holds it, and gives the dicts back
    column = defect_params.params_array([params])
    assert defect_params.params_to_python(column) == [params]
    assert DefectConfig(kind="stripe").kind == "stripe"


def test_a_kind_without_twin_makes_the_compiled_engine_decline(stripe):
    cfg = load_config("paper", None, {"defects.kind": "stripe"})
    with pytest.raises(ConfigError, match="'stripe'.*no compiled twin"):
        check_supported(cfg)
    with pytest.raises(ConfigError, match="no compiled twin"):
        sample_chunk("stripe", [(8, 8)], 0, [0])
    assert effective_engine("compiled", cfg) == "reference"
    assert effective_engine("compiled", load_config("paper", None, {"defects.kind": "ring"})) == "compiled"
    check_twins("mixed")  # stripe is not spatial: mixed stays compiled


def test_mixed_declines_when_its_pool_holds_a_kind_without_twin(monkeypatch):
    spatial = dataclasses.replace(STRIPE, spatial=True)
    monkeypatch.setattr(defect_kinds, "REGISTRY", REGISTRY.extended(spatial))
    with pytest.raises(ConfigError, match="'mixed' may draw 'stripe'"):
        check_supported(load_config("paper"))  # the paper preset draws mixed
    cum = defects.mixed_cumulative(None)
    assert cum.size == len(REGISTRY.spatial) + 1 and cum.tolist() == np.linspace(1 / cum.size, 1, cum.size).tolist()
    drawn = {defects.sample("mixed", (8, 8), die_generator(1, d))[1]["kind"] for d in range(200)}
    assert drawn == {*REGISTRY.spatial, "stripe"}


def test_a_registered_kind_runs_a_sweep_on_the_reference_engine(stripe, network_cache, monkeypatch,
                                                                 tmp_path):
    """engine='compiled' falls back to the reference engine (threads: the registration is
    this process's; worker processes would import the registry without it)."""
    monkeypatch.setenv("YIELDMC_CACHE", str(network_cache))
    cfg = load_config("paper", None, {"seed": 5, "defects.kind": "stripe", "defects.severity": [0.1, 0.2]})
    summary = run_sample(cfg, 6, tmp_path / "run", engine="compiled", backend="threads", chunk_size=3)
    assert summary["engine"] == "reference"
    dies = load_dies(tmp_path / "run")
    assert dies["die"].tolist() == list(range(6))
    assert set(dies["defect_type"]) == {"stripe"}
    assert (dies["fault_fraction"] > 0).all()
    for row in dies["defect_params"]:
        assert {p["kind"] for p in row} == {"stripe"}
        assert all(0.1 <= p["width"] <= 0.2 for p in row)
