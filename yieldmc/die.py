"""One die end to end: defects -> transfer matrices -> fully analog inference.

A :class:`DieModel` is the design shared by every die of a run: the trained network,
its mapping onto arrays, and each array's fault-free transfer matrix (solved once).
:meth:`DieModel.simulate` makes die ``d``: it draws the die's defects from
``DieStream(seed, d)``, recomputes only the affected arrays' transfer matrices
(low-rank update or fresh solve, whichever is cheaper), and runs the images through
all layers in the analog domain:

    row voltages -> column currents (v @ T, tiles summed at the virtual ground)
    -> differential pair I+ - I- -> neuron: z = (I+ - I-) / (g_scale v_read) + b
    -> hidden: v_read * f(z) drives the next layer's rows;  output: output_gain * z (V)

The prediction is the argmax of the ten output voltages.

With the ``sinh`` device (:mod:`yieldmc.devices`) an array has no transfer matrix: each
array is a :class:`SinhArray` whose currents are a Newton solve per image batch, and
its solver status is gathered by :meth:`DieModel.solver_status` after the forward pass.

Which arrays a die's defects hit: without wafers, every array of ``defects.layers``
(:attr:`DieModel.eligible`); on wafers (``config.wafer.wafers > 0``, docs/wafer.md) the
arrays its wafer defect count hits (:mod:`yieldmc.waferdies`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yieldmc import defects
from yieldmc.cache import obtain_dataset, obtain_network
from yieldmc.circuit import solve_sinh_info, transfer_matrix_info
from yieldmc.circuit.update import faulty_transfer
from yieldmc.config import Config, WireConfig
from yieldmc.data import Dataset
from yieldmc.devices import device_from_config
from yieldmc.errors import ConfigError, SolverError
from yieldmc.mapping import DieLayout, map_network
from yieldmc.masks import EXPLICIT, check_masks
from yieldmc.network import ACTIVATIONS, Network
from yieldmc.readout import ReadNoise, saturate
from yieldmc.rng import die_generator
from yieldmc.waferdies import WaferDies, wafer_dies


class SinhArray:
    """One array of sinh-device cells as the forward pass uses it; records its solves.

    Parameters
    ----------
    G : numpy.ndarray, shape (M, N)
        Small-signal conductances (S).
    v0 : float
        Voltage scale of the device non-linearity (V).
    wires : WireConfig
        Wire, driver and sense resistances.
    raise_on_failure : bool
        Raise :class:`~yieldmc.errors.SolverError` when a solve misses its tolerance
        (the fault-free arrays, as the linear fault-free transfer matrices do), or record
        it in ``max_residual`` / ``converged`` for the caller to flag (a die's arrays).
    """

    method = "newton"

    def __init__(self, G: np.ndarray, v0: float, wires: WireConfig, *,
                 raise_on_failure: bool = False) -> None:
        self.G = G
        self.v0 = v0
        self.wires = wires
        self.raise_on_failure = raise_on_failure
        self.max_residual = 0.0
        self.converged = True

    def currents(self, v: np.ndarray) -> np.ndarray:
        """Column currents (A) for row voltages ``v`` (B, M)."""
        w = self.wires
        out, info = solve_sinh_info(self.G, v, self.v0, w.r_row, w.r_col, r_driver=w.r_driver,
                                    r_sense=w.r_sense, raise_on_failure=self.raise_on_failure)
        self.max_residual = max(self.max_residual, info.max_residual)
        self.converged = self.converged and info.converged
        return out


def array_currents(array: np.ndarray | SinhArray, v: np.ndarray) -> np.ndarray:
    """Column currents of one array: ``v @ T`` for a transfer matrix, a solve for a SinhArray."""
    return v @ array if isinstance(array, np.ndarray) else array.currents(v)


@dataclass
class DieResult:
    """What one die did on a set of images.

    Attributes
    ----------
    die : int
        Die index within the run.
    defect_type : str
        Kind actually drawn (``mixed`` resolves to a spatial kind); ``none`` when no cell
        of the die is stuck, whatever was drawn (:func:`yieldmc.defects.die_label`);
        ``explicit`` for masks given rather than drawn (:meth:`DieModel.simulate_masks`).
    defect_params : list of dict
        Pattern parameters per array, as drawn even when they hit no cell
        (``{"kind": "none"}`` for unaffected arrays; ``{"kind": "explicit"}`` for a given
        mask with a stuck cell).
    layers_affected : list of int
        Layers with at least one stuck cell.
    n_stuck_on, n_stuck_off : int
        Stuck cells over the whole die.
    fault_fraction : float
        Stuck cells / all cells of the die.
    outputs : numpy.ndarray, shape (n_images, n_classes)
        Output voltages (V).
    predictions : numpy.ndarray
        Argmax of the outputs.
    accuracy : float
        Share of correct predictions (nan without labels).
    solver_max_residual : float
        Largest relative residual of the die's solves.
    solver_converged : bool
        All of the die's solves reached tolerance.
    methods : list of str
        Per array: ``reuse``, ``woodbury`` or ``solve``.
    hidden : list of numpy.ndarray or None
        Hidden-layer voltages (V) per layer, when asked for.
    """

    die: int
    defect_type: str
    defect_params: list[dict]
    layers_affected: list[int]
    n_stuck_on: int
    n_stuck_off: int
    fault_fraction: float
    outputs: np.ndarray
    predictions: np.ndarray
    accuracy: float
    solver_max_residual: float
    solver_converged: bool
    methods: list[str] = field(default_factory=list)
    hidden: list[np.ndarray] | None = None


class DieModel:
    """The design shared by all dies of a run; :meth:`simulate` makes one die.

    Parameters
    ----------
    config : Config
        The run's settings.
    network : Network
        Trained software network (its layer sizes must match the data).
    dataset : Dataset
        Task data; test images are the default evaluation set.
    """

    def __init__(self, config: Config, network: Network, dataset: Dataset) -> None:
        n_in = int(np.prod(dataset.x_test.shape[1:]))
        sizes = tuple(network.layer_sizes)
        if sizes[0] != n_in or sizes[-1] != dataset.n_classes:
            raise ConfigError(
                f"network layer sizes {list(sizes)} do not match the data "
                f"({n_in} inputs, {dataset.n_classes} classes)"
            )
        if network.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation {network.activation!r} has no analog neuron; valid: {', '.join(ACTIVATIONS)}")
        self.config = config
        self.network = network
        self.dataset = dataset
        self.layout: DieLayout = map_network(network.weights, config.device, config.arrays, config.mapping,
                                              network.biases)
        self.affected = self.layout.arrays_of_layers(config.defects.layers)
        #: One flag per array: may it receive defects (the arrays of ``defects.layers``).
        self.eligible = np.array(defects.affected_flags(self.affected, len(self.layout.arrays)), dtype=np.bool_)
        self.wires = config.wires
        self.device = device_from_config(config.device)
        self.T0 = tuple(self._solve(a.G, self.wires) for a in self.layout.arrays)
        self._T_ideal: tuple[np.ndarray | SinhArray, ...] | None = None

    @classmethod
    def build(cls, config: Config, network_path: str | Path | None = None, *,
              cache_dir: str | Path | None = None) -> DieModel:
        """Load the data, obtain the network and map it.

        Parameters
        ----------
        config : Config
            The run's settings.
        network_path : path, optional
            The network file (a run's ``network.npz``); default the user cache's copy,
            trained there when absent (:func:`yieldmc.cache.obtain_network`).
        cache_dir : path, optional
            Cache directory of the data and the network; default
            :func:`yieldmc.cache.default_cache_dir`.
        """
        dataset = obtain_dataset(config, cache_dir)
        return cls(config, obtain_network(config, dataset, network_path, cache_dir=cache_dir), dataset)

    # ---- physics -------------------------------------------------------------------

    def _solve(self, G: np.ndarray, wires: WireConfig) -> np.ndarray | SinhArray:
        """A fault-free array: its transfer matrix (linear device) or a :class:`SinhArray`
        (both raise :class:`~yieldmc.errors.SolverError` rather than return a wrong answer)."""
        if not self.device.is_linear:
            return SinhArray(G, self.device.v0, wires, raise_on_failure=True)
        return transfer_matrix_info(G, wires.r_row, wires.r_col, r_driver=wires.r_driver,
                                    r_sense=wires.r_sense)[0]

    @property
    def T_ideal(self) -> tuple[np.ndarray | SinhArray, ...]:
        """Fault-free arrays with ideal row/column wires (periphery kept)."""
        if self._T_ideal is None:
            self._T_ideal = tuple(self._solve(a.G, self.wires.ideal) for a in self.layout.arrays)
        return self._T_ideal

    def images(self, which: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"test"``, ``"train"`` or ``"all"`` (train then test) images."""
        d = self.dataset
        flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
        if which == "test":
            return flat(d.x_test), d.y_test
        if which == "train":
            return flat(d.x_train), d.y_train
        if which == "all":
            return (np.concatenate([flat(d.x_train), flat(d.x_test)]),
                    np.concatenate([d.y_train, d.y_test]))
        raise ConfigError(f"images must be 'test', 'train' or 'all', got {which!r}")

    def forward(self, transfers, x: np.ndarray, return_hidden: bool = False, *,
                noise: ReadNoise | None = None):
        """Analog forward pass of images ``x`` (B, n_in) in [0, 1] through the given arrays.

        ``transfers`` holds one transfer matrix (linear device) or :class:`SinhArray`
        per array, as :meth:`die_transfers` returns them. With ``mapping.bias_row`` each
        layer's inputs get the bias row, driven at ``v_read`` (:meth:`DieLayout.layer_inputs`),
        and the periphery adds no bias. ``noise`` (:meth:`read_noise`) adds each read's
        noise to every array's column currents; the output amplifiers saturate at
        ``arrays.output_rail`` (:func:`yieldmc.readout.saturate`).

        Returns the output voltages (B, n_classes) in volts, and with ``return_hidden``
        also the list of hidden-layer voltages (V).
        """
        arr = self.config.arrays
        act = ACTIVATIONS[self.network.activation]
        layout = self.layout
        biases = layout.periphery_biases(self.network.biases)
        v = np.asarray(x, dtype=np.float64) * arr.v_read
        hidden = []
        n_layers = len(layout.g_scales)
        for layer in range(n_layers):
            n_out = layout.layer_sizes[layer + 1]
            v_in = layout.layer_inputs(layer, v)
            current = np.zeros((v.shape[0], 2 * n_out))
            for a, (spec, T) in enumerate(zip(layout.arrays, transfers, strict=True)):
                if spec.layer == layer:
                    c = array_currents(T, v_in[:, spec.rows])
                    current[:, spec.cols] += c if noise is None else noise.add(a, c, v_in[:, spec.rows])
            z = (current[:, 0::2] - current[:, 1::2]) / (layout.g_scales[layer] * arr.v_read)
            z += biases[layer]
            if layer < n_layers - 1:
                v = arr.v_read * act(z)
                hidden.append(v)
            else:
                out = saturate(arr.output_gain * z, arr.output_rail)
        return (out, hidden) if return_hidden else out

    def read_noise(self, die: int, conductances: list[np.ndarray]) -> ReadNoise | None:
        """The read noise of die ``die`` with these conductances (:class:`yieldmc.readout.ReadNoise`,
        drawn from :func:`yieldmc.readout.read_noise_generator`), or None without read noise."""
        return ReadNoise.of(self.config.device, conductances, self.config.seed, die)

    # ---- one die -------------------------------------------------------------------

    def wafer_dies(self, dies: Any) -> WaferDies:
        """The wafer columns and hit arrays of some dies of a wafer run (:func:`yieldmc.waferdies.wafer_dies`)."""
        return wafer_dies(self.config, self.eligible, dies)

    def die_affected(self, die: int) -> np.ndarray:
        """One flag per array: does die ``die`` receive defects there (:attr:`eligible`
        without wafers; the arrays its wafer defects hit on wafers)."""
        if self.config.wafer.enabled:
            return self.wafer_dies([die]).affected[0]
        return self.eligible

    def die_conductances(self, die: int, affected: Any = None):
        """The die's conductances per array and its defect draw (masks, params).

        ``affected``: the arrays that receive defects, as :func:`yieldmc.defects.sample_die`
        takes them (default :meth:`die_affected`)."""
        rng = die_generator(self.config.seed, die)
        masks, params = self._draw_masks(rng, self.die_affected(die) if affected is None else affected)
        return self._conductances(masks, rng), masks, params

    def mask_conductances(self, masks: Any, die: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The conductances per array of the given masks, and the masks as checked.

        The masks are checked with :func:`yieldmc.masks.check_masks`. ``die`` keys the
        rest of the die's randomness: with ``device.programming_noise > 0`` the noise is that
        of die ``die`` (its stream past its own defect draws, which are made and dropped), so
        the masks die ``die`` draws give exactly :meth:`die_conductances`' values.
        """
        checked = check_masks(masks, self.layout.shapes)
        rng = die_generator(self.config.seed, die)
        if self.config.device.programming_noise > 0:
            self._draw_masks(rng, self.eligible)  # the draws do not depend on ``affected``
        return self._conductances(checked, rng), checked

    def _draw_masks(self, rng: np.random.Generator, affected: Any) -> tuple[list, list]:
        """The die's defect draw from its stream ``rng`` (advanced past it)."""
        d = self.config.defects
        return defects.sample_die(d.kind, self.layout.shapes, rng, affected=affected, severity=d.severity_arg,
                                  on_fraction=d.on_fraction, on_mode=d.on_mode)

    def _conductances(self, masks: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        """Programmed conductances (programming noise from ``rng``, when set) with ``masks`` applied."""
        dev = self.config.device
        f = self.layout.drift  # programming noise happens at t0, drift after it
        Gs = []
        for spec, m in zip(self.layout.arrays, masks, strict=True):
            G = spec.G
            if dev.programming_noise > 0:
                noise = rng.normal(0.0, dev.programming_noise * (dev.g_on - dev.g_off), G.shape)
                G = np.clip(G + noise, dev.g_off, dev.g_on) if f == 1.0 else (
                    f * np.clip(G / f + noise, dev.g_off, dev.g_on))
            Gs.append(defects.apply(G, m, dev.g_on, dev.g_off) if m.any() else G)
        return Gs

    def die_transfers(self, die: int, affected: Any = None) -> tuple[list[np.ndarray | SinhArray], dict]:
        """Arrays of die ``die`` and a summary of its defects and solves.

        For the linear device these are transfer matrices and the summary's solver
        fields are final; for ``sinh`` they are :class:`SinhArray` objects whose solves
        happen in :meth:`forward`: read the status with :meth:`solver_status` after it.
        ``affected`` as in :meth:`die_conductances`.
        """
        return self._transfers(*self.die_conductances(die, affected))

    def mask_transfers(self, masks: Any, die: int = 0) -> tuple[list[np.ndarray | SinhArray], dict]:
        """:meth:`die_transfers` of the given masks (:meth:`mask_conductances`); the summary's
        ``defect_type`` is ``"explicit"`` (``"none"`` when no cell is stuck) and its
        ``defect_params`` ``{"kind": "explicit"}`` per array with a stuck cell."""
        return self._mask_transfers(*self.mask_conductances(masks, die))

    def _mask_transfers(self, Gs: list[np.ndarray], checked: list[np.ndarray]):
        params = [{"kind": EXPLICIT if m.any() else "none"} for m in checked]
        return self._transfers(Gs, checked, params)

    def _transfers(self, Gs: list[np.ndarray], masks: list[np.ndarray],
                   params: list[dict]) -> tuple[list[np.ndarray | SinhArray], dict]:
        """The arrays of conductances ``Gs`` and the summary of their defects and solves."""
        transfers, methods = [], []
        worst, converged = 0.0, True
        w = self.wires
        for spec, G, T0 in zip(self.layout.arrays, Gs, self.T0, strict=True):
            if not self.device.is_linear:
                transfers.append(SinhArray(G, self.device.v0, w))
                methods.append(SinhArray.method)
                continue
            T, info, method = faulty_transfer(spec.G, T0, G, w.r_row, w.r_col, r_driver=w.r_driver,
                                              r_sense=w.r_sense, raise_on_failure=False)
            transfers.append(T)
            methods.append(method)
            worst = max(worst, info.max_residual)
            converged &= info.converged
        n_on = sum(int(np.count_nonzero(m == defects.STUCK_ON)) for m in masks)
        n_off = sum(int(np.count_nonzero(m == defects.STUCK_OFF)) for m in masks)
        summary = {
            "defect_type": defects.die_label(masks, params),  # "none" when no cell is stuck
            "defect_params": params,
            "layers_affected": sorted({s.layer for s, m in zip(self.layout.arrays, masks, strict=True) if m.any()}),
            "n_stuck_on": n_on,
            "n_stuck_off": n_off,
            "fault_fraction": (n_on + n_off) / sum(m.size for m in masks),
            "solver_max_residual": worst,
            "solver_converged": bool(converged),
            "methods": methods,
        }
        return transfers, summary

    @staticmethod
    def solver_status(transfers, summary: dict) -> tuple[float, bool]:
        """``(max residual, converged)`` of a die: its transfer solves and every Newton solve so far."""
        worst, converged = summary["solver_max_residual"], summary["solver_converged"]
        for T in transfers:
            if isinstance(T, SinhArray):
                worst, converged = max(worst, T.max_residual), converged and T.converged
        return float(worst), bool(converged)

    def die_outputs(self, die: int, xs, *, strict: bool = True,
                    affected: Any = None) -> tuple[list[np.ndarray], dict]:
        """Output voltages (V) of die ``die`` for each image batch of ``xs``, and its summary.

        The die is made once for all batches (``affected`` as in :meth:`die_conductances`).
        The summary's ``solver_max_residual`` and ``solver_converged`` cover every solve,
        the forward passes' Newton solves included.

        Raises
        ------
        SolverError
            With ``strict``, if any solve of the die missed its tolerance (its outputs must
            not be used); without, the summary flags it (the sweep records the die).
        """
        Gs, masks, params = self.die_conductances(die, affected)
        return self._outputs(*self._transfers(Gs, masks, params), xs, strict, f"die {die}",
                             self.read_noise(die, Gs))

    def mask_outputs(self, masks: Any, xs, *, die: int = 0,
                     strict: bool = True) -> tuple[list[np.ndarray], dict]:
        """:meth:`die_outputs` of a die with the given masks instead of drawn ones.

        Parameters
        ----------
        masks : sequence of array_like
            One mask per array of :attr:`layout` (codes 0 healthy, 1 stuck OFF, 2 stuck ON;
            checked with :func:`yieldmc.masks.check_masks`, e.g. from
            :func:`yieldmc.masks.canonical_masks` or :func:`yieldmc.masks.load_masks`).
        xs : sequence of numpy.ndarray
            Image batches (B, n_in).
        die : int
            Keys the die's other randomness (programming noise, :meth:`mask_conductances`).
        strict : bool
            As in :meth:`die_outputs`.

        Returns
        -------
        (list of numpy.ndarray, dict)
            Output voltages (V) per batch and the summary (``defect_type`` ``"explicit"``,
            or ``"none"`` when no cell is stuck).

        Raises
        ------
        ConfigError
            Masks that do not fit the die (count, shape, dtype, codes).
        SolverError
            As in :meth:`die_outputs`.
        """
        Gs, checked = self.mask_conductances(masks, die)
        return self._outputs(*self._mask_transfers(Gs, checked), xs, strict, f"die {die} with the given masks",
                             self.read_noise(die, Gs))

    def _outputs(self, transfers, summary: dict, xs, strict: bool, name: str,
                 noise: ReadNoise | None) -> tuple[list[np.ndarray], dict]:
        outputs = [self.forward(transfers, x, noise=noise) for x in xs]
        worst, converged = self.solver_status(transfers, summary)
        summary["solver_max_residual"], summary["solver_converged"] = worst, converged
        if strict and not converged:
            raise SolverError(f"{name}: a circuit solve stopped at relative residual {worst:.3g} "
                              "above its tolerance; the die's outputs are not used")
        return outputs, summary

    def simulate(self, die: int, images: str = "test", return_hidden: bool = False) -> DieResult:
        """Make die ``die`` and run the chosen images (``test``, ``train``, ``all``) through it.

        A solve that misses its tolerance is flagged (``solver_converged``), not raised.
        """
        Gs, masks, params = self.die_conductances(die)
        return self._result(die, *self._transfers(Gs, masks, params), images, return_hidden,
                            self.read_noise(die, Gs))

    def simulate_masks(self, masks: Any, images: str = "test", die: int = 0,
                       return_hidden: bool = False) -> DieResult:
        """:meth:`simulate` with the given masks (:meth:`mask_outputs`); ``die`` keys the
        other randomness and is the result's ``die``."""
        Gs, checked = self.mask_conductances(masks, die)
        return self._result(die, *self._mask_transfers(Gs, checked), images, return_hidden,
                            self.read_noise(die, Gs))

    def _result(self, die: int, transfers, summary: dict, images: str, return_hidden: bool,
                noise: ReadNoise | None) -> DieResult:
        x, y = self.images(images)
        out = self.forward(transfers, x, return_hidden, noise=noise)
        summary["solver_max_residual"], summary["solver_converged"] = self.solver_status(transfers, summary)
        outputs, hidden = out if return_hidden else (out, None)
        pred = outputs.argmax(axis=1)
        return DieResult(die=die, outputs=outputs, predictions=pred,
                         accuracy=float(np.mean(pred == y)), hidden=hidden, **summary)

    def fault_free_accuracy(self, ideal_wires: bool = False, images: str = "test") -> float:
        """Accuracy of the defect-free die, with IR drop or with ideal row/column wires.

        The design's own die: drift, the mapping, the bias row and the rails are in, but no
        programming variation and no read noise (a die's draws; for those, score
        :meth:`mask_outputs` with all-zero masks over several dies).
        """
        x, y = self.images(images)
        out = self.forward(self.T_ideal if ideal_wires else self.T0, x)
        return float(np.mean(out.argmax(axis=1) == y))

    def software_accuracy(self, images: str = "test") -> float:
        """Accuracy of the trained network in software (floating point)."""
        x, y = self.images(images)
        return float(np.mean(self.network.predict(x) == y))


@dataclass(frozen=True)
class DieComparison:
    """One die with IR drop beside the same die with ideal row and column wires.

    What ``yieldmc die`` reports (:func:`compare_die`).

    Attributes
    ----------
    config : Config
        The settings the die was made with.
    die : int
        Die index (its random stream is ``DieStream(config.seed, die)``).
    array_shapes : tuple of (int, int)
        ``(rows, physical columns)`` of each array of the die.
    software_accuracy, fault_free_accuracy : float
        The trained network in floating point; the defect-free die with IR drop.
    result : DieResult
        The die with the configured wires (IR drop).
    ideal : DieResult
        The same die (same defects and noise) with 0 ohm row and column wires; the
        driver and sense resistances are kept.
    """

    config: Config
    die: int
    array_shapes: tuple[tuple[int, int], ...]
    software_accuracy: float
    fault_free_accuracy: float
    result: DieResult
    ideal: DieResult

    def summary(self) -> dict:
        """The JSON object of ``yieldmc die --json`` (plain Python values)."""
        cfg, r = self.config, self.result
        return {
            "preset": cfg.name,
            "device": cfg.device.model,
            "die": self.die,
            "seed": cfg.seed,
            "software_accuracy": self.software_accuracy,
            "fault_free_accuracy": self.fault_free_accuracy,
            "circuit_accuracy": r.accuracy,
            "ideal_wire_accuracy": self.ideal.accuracy,
            "n_arrays": len(self.array_shapes),
            "array_shapes": [list(s) for s in self.array_shapes],
            "defect_type": r.defect_type,
            "fault_fraction": r.fault_fraction,
            "n_stuck_on": r.n_stuck_on,
            "n_stuck_off": r.n_stuck_off,
            "layers_affected": r.layers_affected,
            "solver_max_residual": r.solver_max_residual,
            "solver_converged": r.solver_converged,
            "ideal_wire_solver_converged": self.ideal.solver_converged,
            "update_methods": r.methods,
        }

    def unconverged(self) -> list[tuple[str, DieResult]]:
        """``("with IR drop" | "with ideal wires", result)`` for each version of the die whose
        circuit solves missed their tolerance: its accuracy is not trustworthy."""
        both = (("with IR drop", self.result), ("with ideal wires", self.ideal))
        return [(name, r) for name, r in both if not r.solver_converged]


def compare_die(config: Config, die: int = 0, *, cache_dir: str | Path | None = None,
                masks: Any = None) -> DieComparison:
    """Make die ``die`` of ``config`` with IR drop and with ideal wires; the design's references.

    Parameters
    ----------
    config : Config
        The settings (design, defects, root seed).
    die : int
        Die index, >= 0.
    cache_dir : path, optional
        Cache directory of the data and network (:func:`yieldmc.cache.obtain_network`);
        default :func:`yieldmc.cache.default_cache_dir`.
    masks : sequence of array_like, optional
        The die's masks, one per array (:meth:`DieModel.simulate_masks`), instead of the
        defects die ``die`` draws; ``die`` then keys only its other randomness.

    Returns
    -------
    DieComparison
        The ideal-wire die is simulated by a second model of the same network and data,
        with ``wires.r_row = wires.r_col = 0``; solver failures are flagged, not raised.
    """
    model = DieModel.build(config, cache_dir=cache_dir)
    ideal_cfg = config.replace(**{"wires.r_row": 0.0, "wires.r_col": 0.0})
    ideal_model = DieModel(ideal_cfg, model.network, model.dataset)
    if masks is None:
        result, ideal = model.simulate(die), ideal_model.simulate(die)
    else:
        result, ideal = model.simulate_masks(masks, die=die), ideal_model.simulate_masks(masks, die=die)
    return DieComparison(config=config, die=die, array_shapes=tuple(model.layout.shapes),
                         software_accuracy=model.software_accuracy(),
                         fault_free_accuracy=model.fault_free_accuracy(), result=result, ideal=ideal)
