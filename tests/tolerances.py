"""Test tolerances, defined once (STYLE.md point 5)."""

#: Engine vs direct solve: relative error of the currents, as a fraction of max |I|.
ENGINE_RTOL = 1e-9
#: Engine vs ngspice (ngspice prints 15 significant digits and solves in double).
SPICE_RTOL = 1e-8
#: sinh-device Newton solver vs ngspice (the issue's bound). ngspice stops its own Newton
#: at reltol 1e-12 (yieldmc.spice.NONLINEAR_OPTIONS); measured agreement 1e-12 to 2e-11.
SPICE_SINH_RTOL = 1e-7
#: Below 2.2e-308 A currents are subnormal: multiples of this step (5e-324 A) whatever their
#: size, so no relative tolerance can hold there. The engines round each column current once;
#: the oracles round every cell current and partial sum (measured up to 3 steps apart on
#: arrays of up to 11 rows): tests allow M + 1 steps for an array of M rows.
SUBNORMAL_STEP = 5e-324
