"""Every slow, obviously correct twin of a fast kernel that the tests compare against
(STYLE.md point 3; docs/architecture.md section 3, "The reference-twin rule").

The twins written for the tests live in this package, one module per kernel family; each
function's docstring names the kernel it mirrors and why it is obviously correct. The
twins that are part of yieldmc's API (users and the benchmarks call them) stay in the
package and are imported here, so that this one place names every twin:

==========================================  ===================================================  =======================
fast path                                   twin                                                 compared in
==========================================  ===================================================  =======================
``circuit/_wires.py`` +                     ``yieldmc.circuit.solve_reference`` (nodal           test_circuit.py,
``circuit/_kernels.py`` (``solve``,         analysis, scipy sparse direct solve)                 test_update.py
``transfer_matrix``, the block driver)

``_wires.apply_wires``,                     ``circuit.dense_wire_operator``,                     test_circuit.py
``_wires.wire_diagonal``                    ``circuit.scaled_operator_product``

``_wires.cg_iterations`` (the one block     ``circuit.scaled_system``, solved by                 test_circuit.py
CG)                                         ``numpy.linalg.solve``

``_wires.apply_wires`` (the wire drops of   ``yieldmc.circuit.node_voltages_reference``          test_nonlinear.py
cell currents)

``circuit/_newton.py`` (``solve_sinh``)     ``yieldmc.circuit.solve_sinh_reference`` (Newton on  test_nonlinear.py
                                            nodal voltages, direct solves);
                                            ``nonlinear.ideal_wire_currents``,
                                            ``nonlinear.gap_model_currents``

``_newton._kvl``; ``_newton._asinh``        ``nonlinear.kvl_residual``; ``numpy.arcsinh``        test_nonlinear.py

``circuit/update.py`` (Woodbury)            a fresh ``transfer_matrix``; ``solve_reference``     test_update.py

``engine/_streams.py`` (``uniforms``,       ``yieldmc.engine.streams.DieStream`` (numpy);        test_engine_streams.py
``normals``, ``permute``, ``die_key``)      ``streams.splitmix64``, ``streams.die_uniform``,
                                            ``streams.fisher_yates``,
                                            ``streams.cell_stream_bits``;
                                            ``scipy.special.ndtri``, ``math.log``

``engine/_sampling.py`` (``sample_chunk``)  ``yieldmc.defects.sample_die`` on a ``DieStream``;   test_engine_sampling.py
                                            ``defect_kinds.radius_for_count``; Python's
                                            ``round``

``defects.mask`` (and ``_sampling._build``  ``defects.naive_faulty``                             test_defects.py
through it)

``engine/_lowrank.py`` (``LowRankCache``,   ``lowrank.transfer_reference`` (``solve_reference``  test_engine_lowrank.py
``lowrank_transfer(s)``, the LU kernel)     of the faulty array); ``lowrank.wdev_first_order``;
                                            ``lowrank.dense_solve``

``engine/_chunk.py`` +                      ``yieldmc.die.DieModel``; ``chunk.changed_cells``;   test_engine_chunk.py,
``engine/_forward.py``                      ``lowrank.update_from_scratch``; ``forward.exp``,    test_engine_sweep.py
(``simulate_chunk_compiled``)               ``forward.logistic``, ``forward.hard_sigmoid``

``network.Network.forward``                 ``network.forward_loops``; scikit-learn's            test_network.py
                                            ``MLPClassifier``

``defect_params.params_array_from_typed``   ``yieldmc.defect_params.params_array``               test_params_column.py

``correctors.BatchedRidgeCorrector``,       ``yieldmc.correctors.RidgeCorrector``                test_corrector.py
``rff_features``                            (scikit-learn); scikit-learn's ``RBFSampler``

``circuit.solve``, ``solve_sinh``           ngspice on ``yieldmc.spice.netlist``                 test_spice.py
==========================================  ===================================================  =======================

Names in the middle column without a package are this package's modules. Tests import the
twins from here (``from tests.reference.streams import splitmix64``); the tolerances they
compare with are in ``tests/tolerances.py``.
"""

from math import log

from numpy import arcsinh
from numpy.linalg import solve as dense_linear_solve
from scipy.special import ndtri
from sklearn.kernel_approximation import RBFSampler
from sklearn.neural_network import MLPClassifier

from yieldmc.circuit import node_voltages_reference, solve_reference, solve_sinh_reference, transfer_matrix
from yieldmc.correctors import RidgeCorrector
from yieldmc.defect_kinds import radius_for_count
from yieldmc.defect_params import params_array
from yieldmc.defects import sample_die
from yieldmc.die import DieModel
from yieldmc.engine.streams import DieStream
from yieldmc.spice import netlist

from .chunk import changed_cells
from .circuit import dense_wire_operator, scaled_operator_product, scaled_system
from .defects import naive_faulty
from .forward import exp, hard_sigmoid, logistic
from .lowrank import dense_solve, transfer_reference, update_from_scratch, wdev_first_order
from .network import forward_loops
from .nonlinear import gap_model_currents, ideal_wire_currents, kvl_residual
from .streams import cell_stream_bits, die_uniform, fisher_yates, splitmix64

__all__ = [
    # yieldmc's own twins (its API) and the libraries' functions used as references
    "DieModel",
    "DieStream",
    "MLPClassifier",
    "RBFSampler",
    "RidgeCorrector",
    "arcsinh",
    "dense_linear_solve",
    "log",
    "ndtri",
    "netlist",
    "node_voltages_reference",
    "params_array",
    "radius_for_count",
    "sample_die",
    "solve_reference",
    "solve_sinh_reference",
    "transfer_matrix",
    # this package's twins
    "cell_stream_bits",
    "changed_cells",
    "dense_solve",
    "dense_wire_operator",
    "die_uniform",
    "exp",
    "fisher_yates",
    "forward_loops",
    "gap_model_currents",
    "hard_sigmoid",
    "ideal_wire_currents",
    "kvl_residual",
    "logistic",
    "naive_faulty",
    "scaled_operator_product",
    "scaled_system",
    "splitmix64",
    "transfer_reference",
    "update_from_scratch",
    "wdev_first_order",
]
