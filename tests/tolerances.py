"""Test tolerances, defined once (STYLE.md point 5).

Every float tolerance a test compares with lives here, named, with the reason for its value;
tests import them (``tests/test_tolerances.py`` fails on an ``rtol=`` / ``atol=`` / ``rel=`` /
``abs=`` given as a number in a test file). A test that loosens one says why where it does.
Not here: bounds that are the claim under test (accuracy floors, IR-drop ranges, coverage
rates) and statistical thresholds (p-values, k-sigma bounds), which stay beside their tests;
``0`` (no relative or no absolute part) is written as ``0``.

Relative tolerances (``*_RTOL``) are shares of the largest |reference| unless their comment
says element-wise; ``*_ATOL`` carry the unit of the compared quantity.
"""

# ---- circuit solvers (tests/test_circuit.py, test_update.py, test_nonlinear.py) ------------

#: Engine vs direct solve: relative error of the currents, as a fraction of max |I|.
ENGINE_RTOL = 1e-9
#: Superposition, ``solve(a v1 + b v2)`` vs ``a solve(v1) + b solve(v2)``: three solves each
#: within ENGINE_RTOL, combined with weights |a|, |b| <= 3, so loosened tenfold.
SUPERPOSITION_RTOL = 10 * ENGINE_RTOL
#: Engine vs ngspice (ngspice prints 15 significant digits and solves in double).
SPICE_RTOL = 1e-8
#: sinh-device Newton solver vs ngspice (the issue's bound). ngspice stops its own Newton
#: at reltol 1e-12 (yieldmc.spice.NONLINEAR_OPTIONS); measured agreement 1e-12 to 2e-11.
SPICE_SINH_RTOL = 1e-7
#: spice-check's reported error read back (test_spice.py): the injected error ``middle``
#: (~3e-8) is rounded once in ``1 + middle`` (1e-16, i.e. 4e-9 of it); 1e-6 of it leaves room.
SPICE_ERROR_READBACK_RTOL = 1e-6
#: Below 2.2e-308 A currents are subnormal: multiples of this step (5e-324 A) whatever their
#: size, so no relative tolerance can hold there. The engines round each column current once;
#: the oracles round every cell current and partial sum (measured up to 3 steps apart on
#: arrays of up to 11 rows): tests allow M + 1 steps for an array of M rows.
SUBNORMAL_STEP = 5e-324
#: A (amperes): the floor of the scale (max |I|) of a relative bound where every current is 0
#: (an all-open array): the bound then asks for 0 to within ENGINE_RTOL * 1e-30 A instead of
#: comparing with a scale of 0.
ZERO_SCALE_FLOOR = 1e-30
#: The MNA oracle (scipy sparse LU; ideal wires stamped as voltage sources, exactly as SPICE
#: does) against the exact ``v @ G``, element-wise: the rounding of its solve.
DIRECT_SOLVE_RTOL = 1e-12
#: A: Kirchhoff's current law at the oracle's nodes, whose currents are of order 1e-5 to 1e-4
#: A there (0.2 V on cells of up to 1e-4 S): 1e-15 A is 1e-11 of them, the direct solve's
#: rounding with room, far below what a wrongly stamped conductance would leave.
KCL_ATOL = 1e-15
#: A computation against its closed form, a few float64 roundings apart with no iterative
#: solve in between (a 1x1 array, the device law, gap-model currents, exp / sinh / log
#: round trips), element-wise.
CLOSED_FORM_RTOL = 1e-13
#: An engine solve that runs CG to SOLVER_RTOL = 1e-12, against a hand-derived closed form
#: (the 1x2 ladder of test_circuit.py), element-wise.
CG_CLOSED_FORM_RTOL = 1e-12
#: ``_wires.apply_wires`` (``A p``, ``p + s A (s p)`` and its dot products) against the dense
#: min-kernel matrix of tests/reference/circuit.py: sums of <= M + N terms rounded in another
#: order.
OPERATOR_RTOL = 1e-13
#: ``_wires.wire_diagonal`` against the dense matrix's diagonal: the same sum of a few terms,
#: rounded in another order (element-wise).
WIRE_DIAGONAL_RTOL = 1e-15
#: The block CG (run to a relative residual of 1e-14: CG_TIGHT_TOL2) against a dense LU
#: solve of ``I + s A s``, and its two orders of ``p . H p`` against each other: the bound
#: leaves two digits to the conditioning of the scaled system (``G r`` of order 1).
DENSE_CG_RTOL = 1e-12

# Stopping thresholds handed to a kernel under test: inputs, not comparisons.
#: Squared residual (absolute) for a block CG whose two call paths are compared bit for bit:
#: any threshold that lets CG iterate serves; this one lets it run to round-off.
CG_BITWISE_TOL2 = 1e-30
#: Squared relative residual (1e-14 squared) for the block CG compared with a dense solve at
#: DENSE_CG_RTOL: two digits below the comparison.
CG_TIGHT_TOL2 = 1e-28
#: Squared relative residual (SOLVER_RTOL = 1e-12, squared) for Newton's CG step (_cg_step).
NEWTON_CG_TOL2 = 1e-24

# ---- the sinh device and its Newton solver (tests/test_nonlinear.py, test_devices.py) -----

#: Ideal wires, ``solve_sinh`` against ``v0 sinh(v / v0) @ G`` (the device law, no wire
#: drop): the same products summed in another order (element-wise).
IDEAL_SINH_RTOL = 1e-14
#: A: ``solve_sinh(-v) = -solve_sinh(v)`` to about one ulp of the largest column current
#: (up to ~2e-4 A there, whose ulp is 2.7e-20 A).
ODD_SYMMETRY_ATOL = 1e-20
#: The relative gap between sinh and linear cells in the small-signal limit may exceed its
#: leading term ``(0.2 V / v0)^2 / 6`` by 1 % (the series' next term, ``u^2 / 20`` of it, is
#: below 1e-4 for u = 0.2 V / v0 <= 0.02).
SMALL_SIGNAL_BOUND_FACTOR = 1.01
#: The gap shrinks as ``1 / v0^2``: successive gaps (v0 = 10 V, 100 V) have the ratio 100 to
#: within 5 % (higher orders and the engines' own ENGINE_RTOL).
SECOND_ORDER_RATIO_RTOL = 0.05
#: A Newton run at ``rtol = 0`` stalls at the round-off floor: its reported residual is then
#: below 1e-14, about 50 ulps of a relative residual.
ROUND_OFF_FLOOR = 1e-14
#: ``v - A x`` (the one wire operator applied to the oracle's cell currents) against the
#: oracle's cell voltages ``row_v - col_v``: two sums over the direct solve's node voltages,
#: element-wise; WIRE_VOLTAGE_ATOL is the floor for cells near 0 V.
WIRE_VOLTAGE_RTOL = 1e-10
#: V: the floor of WIRE_VOLTAGE_RTOL's comparison.
WIRE_VOLTAGE_ATOL = 1e-15
#: ``_newton._asinh`` (series, log(2u), logarithm) against numpy's arcsinh, element-wise:
#: the bound is 9 ulps.
ASINH_RTOL = 2e-15
#: ``_newton._cg_step``'s solution put back through the operator: its recursive residual met
#: 1e-12 (NEWTON_CG_TOL2); the true residual drifts from it by up to two digits.
NEWTON_CG_RESIDUAL_RTOL = 1e-10
#: V: ``_newton._kvl``'s residual against numpy; |F| <= 2 V, so a few ulps.
KVL_ATOL = 1e-15

# ---- the rank-k update and the chunk engine (test_engine_lowrank.py, test_engine_chunk.py) -

#: Cache T0 vs the CG engine: CG stops at a relative residual of 1e-12 (SOLVER_RTOL); the
#: measured difference is up to 4e-12 of max |T| (the dense inverse agrees with an
#: independent dense solve to 1e-15), so 1e-11 leaves room without hiding a wrong T0.
CACHE_T0_RTOL = 1e-11
#: With cells from 1 nS to 1 mS the diagonal of the k x k system spans 12 decades; the
#: kernel scales it to a unit diagonal first. Measured: <= 3.4e-13 of max |T| against the
#: oracle with the scaling, up to 7e-11 without; 1e-11 tells the two apart.
EXTREME_RTOL = 1e-11
#: ``wdev`` against its first-order expansion ``-G0^2 a_cc`` with 1e-7 ohm wires: the second
#: order is 1e-12 of the first; 1e-9 (element-wise) still fails a cancelling difference,
#: which keeps 4 digits.
WDEV_FIRST_ORDER_RTOL = 1e-9
#: The pivoting LU kernel against numpy's solve on symmetric indefinite systems up to 30 x 30
#: (some near-singular): the bound leaves 6 digits of float64 to their conditioning.
LU_RTOL = 1e-10
#: The same rank-k update computed in another order (cells unsorted; ``T0 - Rt_c^T x`` from
#: the kernel's scratch): rounding only.
REORDERED_UPDATE_RTOL = 1e-13
#: Output voltages, compiled vs reference engine, as a share of the die's largest |V|: the
#: promise of DESIGN.md section 11 (docs/data.md). Measured <= 3e-13: the reference's CG
#: and Woodbury routes stop at a relative residual of 1e-12, the rank-k update is exact to
#: rounding.
VOLT_RTOL = 1e-9
#: float32 steps allowed between stored voltages of two engines: each rounds voltages that
#: agree to VOLT_RTOL to float32 once, so they may land one step either side.
FLOAT32_STEPS = 2
#: Layer 0 as P0 + rank-k correction vs the full product: two float64 routes to one product.
SHORTCUT_RTOL = 1e-12
#: ``_forward._exp`` against numpy's exp on [-40, 40], element-wise: the bound is 90 ulps.
EXP_RTOL = 2e-14
#: ``_forward._logistic`` against scipy's expit; values in [0, 1], so a few ulps.
LOGISTIC_ATOL = 1e-15

# ---- the readable die (tests/test_die.py) ------------------------------------------------

#: Ideal wires: analog outputs vs output_gain * software logits, as a share of the largest
#: |output|. Float64 rounding only (g_off cancels in I+ - I-, then a division by g_scale).
#: Measured 2e-15; element-wise relative error is larger on logits near 0, hence "of max".
IDEAL_RTOL = 1e-12
#: Woodbury update vs fresh solve inside a die, as a share of the largest |output|: both
#: routes solve to SOLVER_RTOL = 1e-12; the engine promises 1e-9 of max |I| per array and
#: the network's gain (|W| <= ~6 over 8 inputs) does not amplify that beyond 1e-9 here.
#: Measured 5e-12.
ROUTE_RTOL = 1e-9
#: The fault-free die's reported solver residual: its solves stop at SOLVER_RTOL = 1e-12; the
#: test asks only that the residual it reports be small (ENGINE_RTOL's size).
DIE_RESIDUAL_MAX = 1e-9
#: A sinh die with v0 = 1 kV against the linear die, as a share of the largest |output|:
#: the device deviates by (0.2 V / v0)^2 / 6 = 7e-9 per cell; layer gains of order 10
#: keep it below 1e-6. Measured 1e-8.
SMALL_SIGNAL_RTOL = 1e-6

# ---- streams, defects, mapping (test_engine_streams.py, test_defects.py, ...) --------------

#: The streams' normal quantile (``_ppnd``) against scipy's ndtri, relative to max(1, |z|):
#: the bound is 18 ulps.
PPND_RTOL = 4e-15
#: The streams' fdlibm-style log against math.log, element-wise: the bound is 1.4 ulps.
LOG_RTOL = 3e-16
#: `random` defects at density s: the paper die's stuck share is binomial(1440, s) / 1440;
#: 4 standard deviations at s = 0.02 is 0.015 (test_cli_die.py).
RANDOM_SHARE_ATOL = 0.015
#: Documented checkerboard severity tolerance (share of cells; yieldmc.defects.sample).
CHECKER_TOL = 0.02
#: The test kind of test_registry.py, a band ``|y - x| <= w / 2``, covers ``w - w^2 / 4`` of
#: the unit square (0.234 for w = 0.25) and the 64 x 64 cell grid rounds that: within 0.02 of w.
BAND_SHARE_ATOL = 0.02
#: A drawn ring width against one cell (1 / M or 1 / N): one rounding of the division.
WIDTH_ROUNDING_ATOL = 1e-15
#: A line pattern's stuck share against half a line off its severity: float rounding of the
#: share and of ``0.5 / size``.
LINE_SHARE_ROUNDING_ATOL = 1e-12
#: The gallery's PNG colours against ON_COLOUR / OFF_COLOUR, per channel in [0, 1]: 8-bit
#: channels (steps of 1/255 = 0.004); 0.02 is 5 steps.
COLOUR_ATOL = 0.02
#: I+ - I- against g_scale * v @ W with ideal wires, relative to the largest current
#: difference: float64 rounding of g_off + x - g_off and of two dot products of <= 64 terms.
DIFF_RTOL = 1e-12
#: Comparing a conductance with g_on / g_off: one rounding of g_off + g_scale * |W|.
G_RTOL = 1e-14
#: A quantized conductance's grid index ``(G - g_off) / step`` against an integer: rounding
#: of the subtraction and the division (indices < 16).
GRID_INDEX_ATOL = 1e-9
#: Relative slack on "within half a grid step of the continuous value": rounding of G and of
#: the step.
GRID_HALF_STEP_SLACK = 1e-9

# ---- networks, data, correctors, statistics -------------------------------------------------

#: The forward pass against plain loops or scikit-learn: the same float64 products (both
#: relative, element-wise, and as an absolute floor for values near 0).
NETWORK_RTOL = 1e-12
#: The absolute floor of NETWORK_RTOL's comparisons, and of SOFTMAX_RTOL's.
NETWORK_ATOL = 1e-12
#: Our softmax of the logits against scikit-learn's predict_proba: exp turns an absolute
#: rounding difference of the logits into a relative one of the probabilities, so the
#: logits' size (tens) costs digits; element-wise.
SOFTMAX_RTOL = 1e-9
#: Bilinear upsampling (8x8 -> 28x28) keeps the test set's mean brightness within 15 %.
UPSAMPLE_MEAN_RTOL = 0.15
#: Pixel values in [0, 1] through bilinear interpolation (resize_images): rounding only.
PIXEL_ATOL = 1e-12
#: Batched numpy ridge vs scikit-learn's pipeline: both solve the same normal equations in
#: float64 (LU here, Cholesky there), so scores agree to rounding of well-conditioned systems.
BATCH_ATOL = 1e-8
#: rff_features (float32 cosine) vs RBFSampler (float64): phase rounding, |phase| < 40 here.
RFF_ATOL = 40 * 2**-24 * (2 / 64) ** 0.5
#: Published values are rounded to 4 decimals: allow half a unit in the last place.
PUBLISHED_ATOL = 5e-5
#: Numbers a command prints to 3 decimals (``yieldmc demo``'s loss %; its currents, in uA, to
#: 4) read back: half a unit in the third decimal.
PRINTED_3DP_ATOL = 5e-4
#: Closed form and beta quantiles against our implementation: float rounding only.
FORMULA_RTOL = 1e-12
#: The binomial tail at a Clopper-Pearson bound against 2.5 %: the bound is a beta quantile
#: (an iterative inversion in scipy), so the tail matches to ~1e-9 rather than to rounding.
TAIL_RTOL = 1e-9
#: One float64 quantity computed twice, in another order or by another formula, with no
#: iterative solve (a mean, a rate, a cumulative sum, a device's small-signal slope): a few
#: roundings of 1e-16, with room.
ARITHMETIC_RTOL = 1e-12
#: The study's CSVs print 6 significant digits (float_format "%.6g"): an accuracy in
#: [0, 1] read back is within 5e-7 of the computed one.
CSV_6G_ATOL = 1e-6

# ---- lifetime (tests/test_lifetime.py, test_cli_lifetime.py) ---------------------------------

#: The batched forward pass of many dies (yieldmc.lifetime.circuit.forward_many) against
#: DieModel.forward die by die: the same operations, products summed in another order by
#: BLAS (measured 1e-15 of max |V|).
FORWARD_MANY_RTOL = 1e-12
#: The incremental ridge (Gram matrices scaled and summed block by block, then solved) against
#: the weighted normal equations formed in one go, as a share of max |W|: the same sums in
#: another order, through a solve of condition number up to ~1e4 (measured 1e-13).
ONLINE_RTOL = 1e-9
