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
(:attr:`DieModel.eligible`). On wafers (``config.wafer.wafers > 0``, docs/wafer.md) die
``d`` is site ``d mod S`` of wafer ``(d // S) mod W`` of lot ``d // (W S)`` (``S`` sites
per wafer, ``W`` wafers per lot: :func:`wafer_die_count`); it draws its killer-defect
count from :mod:`yieldmc.wafer`'s streams, and that many of its eligible arrays, chosen
at random, receive its defects (:func:`wafer_dies`). The cell-level defects of a hit
array are those the die draws without wafers (every array's pattern is drawn whether or
not it is hit), and a die without a defect is fault-free.
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
from yieldmc.network import ACTIVATIONS, Network
from yieldmc.rng import die_generator

#: Per-die columns of a wafer run (:func:`wafer_dies`; declared in ``yieldmc.schema.WAFER_COLUMNS``).
WAFER_COLUMN_TYPES = {"lot": np.int32, "wafer": np.int32, "x": np.int32, "y": np.int32, "r_mm": np.float64,
                      "expected_defects": np.float64, "n_defects": np.int32}


@dataclass(frozen=True)
class WaferDies:
    """Some dies of a wafer run: where they lie, their defects, which arrays those hit.

    Attributes
    ----------
    columns : dict of str -> numpy.ndarray
        One entry per die, in the order asked for: ``lot``, ``wafer`` (the wafer's id,
        unique over the lots: ``lot * wafers + slot``, which keys its streams), ``x``,
        ``y`` (die grid column and row), ``r_mm`` (distance of the die centre from the
        wafer centre, mm), ``expected_defects`` (its Poisson mean) and ``n_defects``.
    affected : numpy.ndarray of bool, shape (dies, arrays)
        Arrays that receive the die's defects: ``min(n_defects, eligible)`` of the
        eligible arrays (none for a die without a defect).
    """

    columns: dict[str, np.ndarray]
    affected: np.ndarray


def _wafer_layout(config: Config) -> tuple[object, object, int]:
    """``(WaferSpec, DensitySpec, sites per wafer)`` of a wafer run's config."""
    from yieldmc.wafer import die_sites

    w = config.wafer
    spec = w.spec()
    return spec, w.density(), len(die_sites(spec))


def wafer_die_count(config: Config) -> int:
    """Dies of a wafer run: ``lots * wafers * sites per wafer`` (0 without wafers)."""
    w = config.wafer
    return w.lots * w.wafers * _wafer_layout(config)[2] if w.enabled else 0


def array_uniforms(seed: int, lot: int, wafer: int, sites: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniforms in (0, 1) per die site of one wafer that choose the arrays its
    defects hit: :func:`yieldmc.wafer.site_uniforms` on the stream tag
    :data:`yieldmc.wafer.TAG_ARRAYS`, a pure function of ``(seed, lot, wafer, site)``.

    Returns
    -------
    numpy.ndarray, shape (len(sites), n)
    """
    from yieldmc.wafer import TAG_ARRAYS, site_uniforms

    return site_uniforms(seed, TAG_ARRAYS, lot, wafer, sites, n)


def hit_arrays(n_defects: np.ndarray, eligible: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Which arrays the defects of each die hit: the ``min(n, eligible)`` eligible arrays
    with the smallest uniforms ``u`` (dies x eligible arrays), each chosen at most once.

    Parameters
    ----------
    n_defects : numpy.ndarray of int, shape (dies,)
    eligible : numpy.ndarray of bool, shape (arrays,)
        Arrays that may receive defects (``defects.layers``).
    u : numpy.ndarray, shape (dies, eligible arrays)

    Returns
    -------
    numpy.ndarray of bool, shape (dies, arrays)

    >>> hit_arrays(np.array([0, 1, 5]), np.array([True, False, True]), np.array([[.1, .2], [.7, .3], [.5, .6]]))
    array([[False, False, False],
           [False, False,  True],
           [ True, False,  True]])
    """
    idx = np.flatnonzero(eligible)
    rank = np.argsort(np.argsort(u, axis=1, kind="stable"), axis=1, kind="stable")
    out = np.zeros((len(n_defects), len(eligible)), dtype=np.bool_)
    out[:, idx] = rank < np.asarray(n_defects)[:, None]
    return out


def wafer_dies(config: Config, eligible: Any, dies: Any) -> WaferDies:
    """The wafer columns and hit arrays of dies ``dies`` of a wafer run.

    Vectorised per wafer: one :func:`yieldmc.wafer.sample_wafer` (the wafer's density and
    signature, its dies' expected and drawn counts) and one :func:`array_uniforms` per
    wafer the dies lie on. Each die's values depend on ``(seed, lot, wafer, site)`` only.

    Parameters
    ----------
    config : Config
        A wafer run's settings (``wafer.wafers > 0``).
    eligible : sequence of bool
        One flag per array: may it receive defects (:attr:`DieModel.eligible`).
    dies : sequence of int
        Die indices in ``[0, wafer_die_count(config))``.

    Raises
    ------
    ConfigError
        No wafers in ``config``, or a die index outside the run.
    """
    from yieldmc.wafer import sample_wafer

    w = config.wafer
    if not w.enabled:
        raise ConfigError("wafer_dies needs a wafer run (wafer.wafers > 0)")
    spec, density, n_sites = _wafer_layout(config)
    dies = np.asarray(dies, dtype=np.int64).reshape(-1)
    total = w.lots * w.wafers * n_sites
    if dies.size and (dies.min() < 0 or dies.max() >= total):
        raise ConfigError(f"die indices must lie in [0, {total - 1}] for {w.lots} lot(s) of {w.wafers} wafer(s) of "
                          f"{n_sites} dies, got {dies.min()}..{dies.max()}")
    eligible = np.asarray(eligible, dtype=np.bool_)
    n_eligible = int(eligible.sum())
    wafer_index, site = np.divmod(dies, n_sites)  # wafer_index = lot * wafers + slot: the wafer's id
    columns = {k: np.empty(dies.size, dtype=t) for k, t in WAFER_COLUMN_TYPES.items()}
    affected = np.zeros((dies.size, eligible.size), dtype=np.bool_)
    for wid in np.unique(wafer_index).tolist():
        rows = np.flatnonzero(wafer_index == wid)
        lot, slot = divmod(wid, w.wafers)
        frame = sample_wafer(spec, density, config.seed, lot, wid, site[rows], slot=slot)
        for k in columns:
            columns[k][rows] = frame[k].to_numpy()
        u = array_uniforms(config.seed, lot, wid, site[rows], n_eligible)
        affected[rows] = hit_arrays(columns["n_defects"][rows], eligible, u)
    return WaferDies(columns, affected)


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
        of the die is stuck, whatever was drawn (:func:`yieldmc.defects.die_label`).
    defect_params : list of dict
        Pattern parameters per array, as drawn even when they hit no cell
        (``{"kind": "none"}`` for unaffected arrays).
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
        self.layout: DieLayout = map_network(network.weights, config.device, config.arrays)
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

    def forward(self, transfers, x: np.ndarray, return_hidden: bool = False):
        """Analog forward pass of images ``x`` (B, n_in) in [0, 1] through the given arrays.

        ``transfers`` holds one transfer matrix (linear device) or :class:`SinhArray`
        per array, as :meth:`die_transfers` returns them.

        Returns the output voltages (B, n_classes) in volts, and with ``return_hidden``
        also the list of hidden-layer voltages (V).
        """
        arr = self.config.arrays
        act = ACTIVATIONS[self.network.activation]
        v = np.asarray(x, dtype=np.float64) * arr.v_read
        hidden = []
        n_layers = len(self.layout.g_scales)
        for layer in range(n_layers):
            n_out = self.layout.layer_sizes[layer + 1]
            current = np.zeros((v.shape[0], 2 * n_out))
            for spec, T in zip(self.layout.arrays, transfers, strict=True):
                if spec.layer == layer:
                    current[:, spec.cols] += array_currents(T, v[:, spec.rows])
            z = (current[:, 0::2] - current[:, 1::2]) / (self.layout.g_scales[layer] * arr.v_read)
            z += self.network.biases[layer]
            if layer < n_layers - 1:
                v = arr.v_read * act(z)
                hidden.append(v)
            else:
                out = arr.output_gain * z
        return (out, hidden) if return_hidden else out

    # ---- one die -------------------------------------------------------------------

    def wafer_dies(self, dies: Any) -> WaferDies:
        """The wafer columns and hit arrays of some dies of a wafer run (:func:`wafer_dies`)."""
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
        cfg = self.config
        rng = die_generator(cfg.seed, die)
        d = cfg.defects
        masks, params = defects.sample_die(
            d.kind, self.layout.shapes, rng, affected=self.die_affected(die) if affected is None else affected,
            severity=d.severity_arg, on_fraction=d.on_fraction, on_mode=d.on_mode,
        )
        dev = cfg.device
        Gs = []
        for spec, m in zip(self.layout.arrays, masks, strict=True):
            G = spec.G
            if dev.programming_noise > 0:
                noise = rng.normal(0.0, dev.programming_noise * (dev.g_on - dev.g_off), G.shape)
                G = np.clip(G + noise, dev.g_off, dev.g_on)
            Gs.append(defects.apply(G, m, dev.g_on, dev.g_off) if m.any() else G)
        return Gs, masks, params

    def die_transfers(self, die: int, affected: Any = None) -> tuple[list[np.ndarray | SinhArray], dict]:
        """Arrays of die ``die`` and a summary of its defects and solves.

        For the linear device these are transfer matrices and the summary's solver
        fields are final; for ``sinh`` they are :class:`SinhArray` objects whose solves
        happen in :meth:`forward`: read the status with :meth:`solver_status` after it.
        ``affected`` as in :meth:`die_conductances`.
        """
        Gs, masks, params = self.die_conductances(die, affected)
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
        transfers, summary = self.die_transfers(die, affected)
        outputs = [self.forward(transfers, x) for x in xs]
        worst, converged = self.solver_status(transfers, summary)
        summary["solver_max_residual"], summary["solver_converged"] = worst, converged
        if strict and not converged:
            raise SolverError(f"die {die}: a circuit solve stopped at relative residual {worst:.3g} "
                              "above its tolerance; the die's outputs are not used")
        return outputs, summary

    def simulate(self, die: int, images: str = "test", return_hidden: bool = False) -> DieResult:
        """Make die ``die`` and run the chosen images (``test``, ``train``, ``all``) through it.

        A solve that misses its tolerance is flagged (``solver_converged``), not raised.
        """
        transfers, summary = self.die_transfers(die)
        x, y = self.images(images)
        out = self.forward(transfers, x, return_hidden)
        summary["solver_max_residual"], summary["solver_converged"] = self.solver_status(transfers, summary)
        outputs, hidden = out if return_hidden else (out, None)
        pred = outputs.argmax(axis=1)
        return DieResult(die=die, outputs=outputs, predictions=pred,
                         accuracy=float(np.mean(pred == y)), hidden=hidden, **summary)

    def fault_free_accuracy(self, ideal_wires: bool = False, images: str = "test") -> float:
        """Accuracy of the defect-free die, with IR drop or with ideal row/column wires."""
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


def compare_die(config: Config, die: int = 0, *, cache_dir: str | Path | None = None) -> DieComparison:
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

    Returns
    -------
    DieComparison
        The ideal-wire die is simulated by a second model of the same network and data,
        with ``wires.r_row = wires.r_col = 0``; solver failures are flagged, not raised.
    """
    model = DieModel.build(config, cache_dir=cache_dir)
    result = model.simulate(die)
    ideal_cfg = config.replace(**{"wires.r_row": 0.0, "wires.r_col": 0.0})
    ideal = DieModel(ideal_cfg, model.network, model.dataset).simulate(die)
    return DieComparison(config=config, die=die, array_shapes=tuple(model.layout.shapes),
                         software_accuracy=model.software_accuracy(),
                         fault_free_accuracy=model.fault_free_accuracy(), result=result, ideal=ideal)
