"""ReRAM cell I-V models behind one small interface.

Every model describes a cell by its *small-signal conductance* ``G`` (S, the slope of
its I-V curve at 0 V). The mapping, the defects (stuck ON = ``g_on``, stuck OFF =
``g_off``) and the programming noise all work on ``G``, whatever the model; the model
says what current a cell with conductance ``G`` carries at voltage ``V``:

``linear``
    ``I = G V`` (ohmic). The array is a linear network with a transfer matrix.
``sinh``
    The gap model ``I = I0 exp(-gap / gap0) sinh(V / V0)``. A cell of small-signal
    conductance ``G`` has gap ``gap0 ln(I0 / (V0 G))``, and ``I = G V0 sinh(V / V0)``;
    at ``V / V0 -> 0`` it becomes the linear device. Stuck ON / OFF cells sit at the
    smallest / largest gap (``gap_range``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from yieldmc.config import DEVICE_MODELS  # the names a config may use

__all__ = ["DEVICE_MODELS", "Device", "LinearDevice", "SinhDevice", "device_from_config"]


class Device(Protocol):
    """What the circuit code needs from a cell model."""

    name: str
    #: True when the cell current is proportional to its voltage (a transfer matrix exists).
    is_linear: bool

    def current(self, G: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Cell current (A) of cells with small-signal conductance ``G`` (S) at voltage ``V`` (V)."""
        ...

    def spice_element(self, name: str, plus: str, minus: str, G: float) -> str:
        """One netlist line for the cell between nodes ``plus`` and ``minus``."""
        ...


@dataclass(frozen=True)
class LinearDevice:
    """Ohmic cell: ``I = G V``."""

    name: str = "linear"
    is_linear: bool = True

    def current(self, G: np.ndarray, V: np.ndarray) -> np.ndarray:
        return np.asarray(G) * np.asarray(V)

    def spice_element(self, name: str, plus: str, minus: str, G: float) -> str:
        return f"R{name} {plus} {minus} {1.0 / G:.17g}"


@dataclass(frozen=True)
class SinhDevice:
    """Gap-model cell ``I = i0 exp(-gap / gap0) sinh(V / v0)``.

    Attributes
    ----------
    i0 : float
        Current scale (A); typical 1e-3.
    gap0 : float
        Gap scale (nm); typical 0.25.
    v0 : float
        Voltage scale of the non-linearity (V); typical 0.25. At a read voltage of
        0.2 V the current is ``sinh(0.8) / 0.8 = 1.110`` times the ohmic one.
    """

    i0: float = 1e-3
    gap0: float = 0.25
    v0: float = 0.25
    name: str = "sinh"
    is_linear: bool = False

    def gap(self, G) -> np.ndarray:
        """Gap (nm) of cells with small-signal conductance ``G`` (S): ``gap0 ln(i0 / (v0 G))``."""
        return self.gap0 * np.log(self.i0 / (self.v0 * np.asarray(G, dtype=float)))

    def conductance(self, gap) -> np.ndarray:
        """Small-signal conductance (S) of cells with gap ``gap`` (nm): ``i0 exp(-gap/gap0) / v0``."""
        return self.i0 * np.exp(-np.asarray(gap, dtype=float) / self.gap0) / self.v0

    def current(self, G: np.ndarray, V: np.ndarray) -> np.ndarray:
        return np.asarray(G) * self.v0 * np.sinh(np.asarray(V) / self.v0)

    def spice_element(self, name: str, plus: str, minus: str, G: float) -> str:
        # A behavioural current source; the prefactor is i0 exp(-gap / gap0) = G v0.
        return (f"B{name} {plus} {minus} I={G * self.v0:.17g}"
                f"*sinh(v({plus},{minus})/{self.v0:.17g})")


def device_from_config(device) -> LinearDevice | SinhDevice:
    """The cell model named by a :class:`~yieldmc.config.DeviceConfig`."""
    if device.model == "sinh":
        return SinhDevice(i0=device.i0, gap0=device.gap0, v0=device.v0)
    return LinearDevice()
