"""What happens between programming and the output: drift, read noise, amplifier rails.

Three effects of ``[device]`` and ``[arrays]`` (:mod:`yieldmc.config`), as pure numpy
functions that both the mapping and the die's forward pass can call:

* **Drift** (:func:`drift_factor`): every programmed cell's conductance decays as
  ``G(t) = G(t0) (t / t0)^-nu`` (the power law of PCM drift, aihwkit's PCM model after
  Joshi et al., Nat. Commun. 11, 2473 (2020); for ReRAM the exponent is an
  order-of-magnitude assumption). It is one factor per die design, applied to the mapped
  conductances (:func:`yieldmc.mapping.map_network`), so both simulation engines see it.
* **Read noise** (:func:`column_noise_std`, :func:`add_read_noise`): each read sees every
  cell's conductance fluctuate by ``sigma_G = read_noise G`` (RTN / 1/f-like, relative)
  and its Johnson current noise ``4 k T df G``, independent between cells and reads. A
  column current is a sum over its cells, so to first order its standard deviation is

      sigma_j^2 = sum_i (read_noise G_ij v_i)^2 + sum_i 4 k T df G_ij

  i.e. ``read_noise^2 (v^2) @ (G^2) + thermal_psd * sum_i G_ij`` for a batch of row
  voltages ``v`` (B, M). IR drop is neglected in the noise term (the cell sees its row
  voltage ``v_i``, not its node voltage): the wires change the mean current by the
  transfer matrix, the noise only at second order in ``G r``. For sinh cells ``G`` is the
  small-signal conductance (first order in ``v / v0``). Draws come from
  :func:`read_noise_generator`, a stream of its own per die, so adding read noise shifts
  no other draw.
* **Rails** (:func:`saturate`): the output amplifiers clip at ``+-output_rail`` volts.

>>> from yieldmc.config import DeviceConfig
>>> round(drift_factor(DeviceConfig(drift_nu=0.01, read_time=86400.0)), 4)
0.8926
>>> import numpy as np
>>> std = column_noise_std(np.array([[1e-4], [1e-6]]), np.array([[0.2, 0.2]]), 0.01, 0.0)
>>> round(float(std[0, 0]) / (0.01 * 0.2 * 1e-4), 6)  # sqrt(1 + 1e-4)
1.00005
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yieldmc.config import DeviceConfig
from yieldmc.errors import ConfigError

#: Boltzmann's constant (J/K, exact in the 2019 SI).
K_BOLTZMANN = 1.380649e-23
#: Tag of the read-noise stream: ``SeedSequence([seed, TAG_READ_NOISE, die])`` keys its
#: Philox generator. It differs from :mod:`yieldmc.wafer`'s stream tags (1 to 5), whose
#: keys also hold lot and wafer, and from the die streams of :mod:`yieldmc.engine.streams`
#: (splitmix64, not Philox).
TAG_READ_NOISE = 6


def drift_factor(device: DeviceConfig) -> float:
    """``(read_time / drift_t0)^-drift_nu``: the factor by which drift has scaled every
    programmed conductance at the time of the reads (1.0 without drift).

    Parameters
    ----------
    device : DeviceConfig
        ``drift_nu`` (>= 0), ``drift_t0`` and ``read_time`` (s).

    Returns
    -------
    float
        In (0, 1] (``read_time >= drift_t0``, which the config checks when ``nu > 0``).
    """
    if device.drift_nu < 0:  # DeviceConfig refuses it; a hand-made object may not
        raise ConfigError(f"device.drift_nu must be >= 0, got {device.drift_nu!r}")
    if device.drift_nu == 0:
        return 1.0
    return float((device.read_time / device.drift_t0) ** -device.drift_nu)


def thermal_psd(device: DeviceConfig) -> float:
    """``4 k T read_bandwidth`` (A^2 per siemens): a cell of conductance ``G`` adds Johnson
    current noise of variance ``thermal_psd * G`` (A^2) to its column; 0.0 when
    ``read_bandwidth`` is 0."""
    return 4.0 * K_BOLTZMANN * float(device.temperature) * float(device.read_bandwidth)


def column_noise_std(G: np.ndarray, v: np.ndarray, read_noise: float, thermal_psd: float) -> np.ndarray:
    """Standard deviation of each column current from independent cell fluctuations.

    Parameters
    ----------
    G : numpy.ndarray, shape (M, N)
        Cell conductances (S).
    v : numpy.ndarray, shape (M,) or (B, M)
        Row voltages (V) of one or B reads.
    read_noise : float
        Relative conductance fluctuation per read (``sigma_G / G``, >= 0).
    thermal_psd : float
        ``4 k T df`` (A^2/S, >= 0; :func:`thermal_psd`).

    Returns
    -------
    numpy.ndarray, shape (N,) or (B, N)
        ``sqrt(read_noise^2 (v^2) @ (G^2) + thermal_psd * G.sum(0))`` (A): first order,
        the IR drop neglected (module docstring).
    """
    G = np.asarray(G, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if G.ndim != 2 or v.shape[-1] != G.shape[0] or v.ndim not in (1, 2):
        raise ConfigError(f"column_noise_std needs G (M, N) and v (M,) or (B, M), got {G.shape} and {v.shape}")
    if not (read_noise >= 0 and thermal_psd >= 0):
        raise ConfigError(f"read_noise and thermal_psd must be >= 0, got {read_noise!r}, {thermal_psd!r}")
    var = (read_noise * read_noise) * ((v * v) @ (G * G))
    if thermal_psd:
        var = var + thermal_psd * G.sum(axis=0)
    return np.sqrt(var)


def read_noise_generator(seed: int, die: int) -> np.random.Generator:
    """The read-noise stream of die ``die`` under root seed ``seed``: a Philox generator
    keyed by ``SeedSequence([seed, TAG_READ_NOISE, die])``, a pure function of the two
    integers, so it neither shifts nor is shifted by the die's defect and programming
    draws (:func:`yieldmc.rng.die_generator`) or another die's reads."""
    if seed < 0 or die < 0:
        raise ConfigError(f"seed and die must be >= 0, got seed={seed}, die={die}")
    key = np.random.SeedSequence([int(seed), TAG_READ_NOISE, int(die)]).generate_state(2, np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


def add_read_noise(current: np.ndarray, G: np.ndarray, v: np.ndarray, read_noise: float, thermal_psd: float,
                   rng: np.random.Generator) -> np.ndarray:
    """``current + column_noise_std(G, v, ...) * z``, ``z`` standard normal from ``rng`` (one
    per read and column, in C order); ``current`` itself when there is no noise (no draw).

    ``current`` (B, N) or (N,) are the array's noiseless column currents (A) for row
    voltages ``v``; ``G`` the die's conductances of that array (stuck cells included)."""
    if read_noise == 0 and thermal_psd == 0:
        return current
    std = column_noise_std(G, v, read_noise, thermal_psd)
    return current + std * rng.standard_normal(std.shape)


@dataclass(frozen=True)
class ReadNoise:
    """The read noise of one die: its conductances and its noise stream.

    Every read (an array's currents for a batch of images) draws the next normals of
    ``rng``, so a die's noise is a function of ``(seed, die)`` and of the order of its reads
    (:meth:`yieldmc.die.DieModel.forward` reads the arrays in layout order, batch by batch).

    Attributes
    ----------
    conductances : list of numpy.ndarray
        The die's conductances per array (S), stuck cells and programming noise included.
    read_noise : float
        Relative conductance fluctuation per read (``device.read_noise``).
    thermal_psd : float
        ``4 k T bandwidth`` (A^2/S, :func:`thermal_psd`).
    rng : numpy.random.Generator
        :func:`read_noise_generator` of the die.
    """

    conductances: list[np.ndarray]
    read_noise: float
    thermal_psd: float
    rng: np.random.Generator

    @classmethod
    def of(cls, device: DeviceConfig, conductances: list[np.ndarray], seed: int, die: int) -> ReadNoise | None:
        """The die's read noise under ``device``'s settings; None when it has none."""
        psd = thermal_psd(device)
        if device.read_noise == 0 and psd == 0:
            return None
        return cls(conductances, float(device.read_noise), psd, read_noise_generator(seed, die))

    def add(self, array: int, current: np.ndarray, v: np.ndarray) -> np.ndarray:
        """:func:`add_read_noise` of array ``array``'s currents for row voltages ``v``."""
        return add_read_noise(current, self.conductances[array], v, self.read_noise, self.thermal_psd, self.rng)


def saturate(out: np.ndarray, rail: float) -> np.ndarray:
    """Output voltages through amplifiers that saturate at ``+-rail`` volts; ``rail = 0``:
    unbounded (``out`` returned as is). Saturated outputs of one image may tie at the rail."""
    if rail < 0:
        raise ConfigError(f"arrays.output_rail must be >= 0, got {rail!r}")
    if rail == 0:
        return out
    return np.clip(out, -rail, rail)
