"""The four resistances of a crossbar's network, as one named tuple in one order.

Every layer of :mod:`yieldmc.circuit` names and orders the resistances the same way, as
:class:`yieldmc.config.WireConfig` does: ``(r_row, r_col, r_driver, r_sense)``. The public
functions take them as keywords of those names, and the kernels take a
:class:`Resistances` (numba types it as a tuple of four floats), so a tuple converts to
either form::

    wires = Resistances(r_row=1.0, r_col=1.0, r_sense=50.0)
    T = transfer_matrix(G, **wires._asdict())
"""

from __future__ import annotations

from typing import NamedTuple


class Resistances(NamedTuple):
    """The resistances (ohm) of one crossbar array's wires and periphery.

    Attributes
    ----------
    r_row : float
        One row (word-line) segment between neighbouring cells, and the segment from the
        driver to the first cell.
    r_col : float
        One column (bit-line) segment between neighbouring cells, and the segment from the
        last cell to the amplifier.
    r_driver : float
        Source resistance of each row driver, in series with the row's first segment.
    r_sense : float
        Input impedance of each column's sense amplifier, in series with its last segment.

    Examples
    --------
    >>> wires = Resistances(r_row=2.0, r_col=2.0)
    >>> wires
    Resistances(r_row=2.0, r_col=2.0, r_driver=0.0, r_sense=0.0)
    >>> wires.ideal, Resistances(0.0, 0.0).ideal
    (False, True)
    """

    r_row: float = 1.0
    r_col: float = 1.0
    r_driver: float = 0.0
    r_sense: float = 0.0

    @property
    def ideal(self) -> bool:
        """All four are 0: the array's transfer matrix is its conductances."""
        return self.r_row == 0 and self.r_col == 0 and self.r_driver == 0 and self.r_sense == 0

    @classmethod
    def of(cls, holder) -> Resistances:
        """The resistances of anything with attributes of these names, as floats
        (a :class:`~yieldmc.config.WireConfig`, a
        :class:`~yieldmc.engine.lowrank.LowRankCache`, another tuple)."""
        return cls(*(float(getattr(holder, name)) for name in cls._fields))
