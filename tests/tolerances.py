"""Test tolerances, defined once (STYLE.md point 5)."""

#: Engine vs direct solve: relative error of the currents, as a fraction of max |I|.
ENGINE_RTOL = 1e-9
#: Engine vs ngspice (ngspice prints 15 significant digits and solves in double).
SPICE_RTOL = 1e-8
