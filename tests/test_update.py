"""The low-rank (Woodbury) update of a transfer matrix against a fresh solve."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tolerances import ENGINE_RTOL
from yieldmc.circuit import solve_reference, transfer_matrix
from yieldmc.circuit.update import faulty_transfer, woodbury_transfer


def _faulty(rng, G0, k):
    G1 = G0.copy()
    idx = rng.choice(G0.size, k, replace=False)
    G1.flat[idx] = np.where(rng.random(k) < 0.5, 1e-4, 1e-6)
    return G1


@pytest.mark.parametrize("shape", [(64, 16), (8, 20), (32, 32), (1, 1), (5, 5)])
@pytest.mark.parametrize("r", [0.5, 1.0, 10.0])
def test_woodbury_equals_fresh_solve(rng, shape, r):
    G0 = rng.uniform(1e-6, 1e-4, shape)
    k = max(1, min(G0.size, min(shape) // 2))
    G1 = _faulty(rng, G0, k)
    T0 = transfer_matrix(G0, r, r, r_sense=3.0)
    T1, info = woodbury_transfer(G0, T0, G1, r, r, r_sense=3.0)
    fresh = transfer_matrix(G1, r, r, r_sense=3.0)
    assert info.converged
    assert np.max(np.abs(T1 - fresh)) < ENGINE_RTOL * np.abs(fresh).max()
    v = rng.uniform(0, 0.2, (3, shape[0]))
    ref = solve_reference(G1, v, r, r, r_sense=3.0)
    assert np.max(np.abs(v @ T1 - ref)) < ENGINE_RTOL * np.abs(ref).max()


def test_woodbury_many_cells_still_exact(rng):
    """More changed cells than min(M, N): slower than a solve, but still exact."""
    G0 = rng.uniform(1e-6, 1e-4, (16, 12))
    G1 = _faulty(rng, G0, 60)
    T1, _ = woodbury_transfer(G0, transfer_matrix(G0), G1)
    fresh = transfer_matrix(G1)
    assert np.max(np.abs(T1 - fresh)) < ENGINE_RTOL * np.abs(fresh).max()


def test_faulty_transfer_chooses_route_by_cost(rng):
    G0 = rng.uniform(1e-6, 1e-4, (64, 16))
    T0 = transfer_matrix(G0)
    assert faulty_transfer(G0, T0, G0.copy())[2] == "reuse"
    few = _faulty(rng, G0, 3)
    many = _faulty(rng, G0, 200)
    T_few, _, how_few = faulty_transfer(G0, T0, few)
    T_many, _, how_many = faulty_transfer(G0, T0, many)
    assert (how_few, how_many) == ("woodbury", "solve")
    for T, G in ((T_few, few), (T_many, many)):
        fresh = transfer_matrix(G)
        assert np.max(np.abs(T - fresh)) < ENGINE_RTOL * np.abs(fresh).max()


def test_ideal_wires_update_is_the_new_conductance(rng):
    G0 = rng.uniform(1e-6, 1e-4, (6, 4))
    G1 = _faulty(rng, G0, 2)
    T1, _ = woodbury_transfer(G0, G0, G1, 0.0, 0.0)
    assert np.array_equal(T1, G1)
