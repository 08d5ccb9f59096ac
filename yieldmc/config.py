"""Every setting of a yieldmc run: frozen, documented, unit-carrying dataclasses.

A :class:`Config` is built from a preset shipped in ``yieldmc/presets/*.toml``, then a
user's TOML file, then ``section.field=value`` overrides (CLI ``--set``), each layer
replacing only what it names. Validation happens on creation and raises
:class:`~yieldmc.errors.ConfigError` with a message a user understands.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from yieldmc import defect_kinds
from yieldmc.errors import ConfigError

#: Cell I-V models a config may name; :func:`yieldmc.devices.device_from_config` builds
#: each (a test keeps them in step). Defect kinds come from :mod:`yieldmc.defect_kinds`, a
#: leaf module: its registry is the one place that names them.
DEVICE_MODELS = ("linear", "sinh")
#: Spatial signatures a wafer may carry (:data:`yieldmc.wafer.SIGNATURES`, the same tuple: a
#: test keeps them in step; config does not import the wafer library, which needs pandas
#: and scipy, unless a run places dies on wafers).
WAFER_SIGNATURES = ("none", "center", "edge_ring", "donut", "local", "scratch", "random")
#: How weights become conductance pairs (:class:`MappingConfig`, :mod:`yieldmc.mapping`).
MAPPING_SCHEMES = ("differential", "midrange")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class DeviceConfig:
    """The ReRAM cells.

    Attributes
    ----------
    g_on : float
        Conductance of the low-resistance state, and of a stuck-ON cell (S). Default
        1e-4 S (10 kOhm).
    g_off : float
        Conductance of the high-resistance state, and of a stuck-OFF cell (S). Default
        1e-6 S (1 MOhm).
    levels : int
        Programmable conductance levels per device; 0 means continuous (analog).
    programming_noise : float
        Standard deviation of the programmed conductance, as a fraction of
        ``g_on - g_off``, drawn per die (0 = exact programming).
    model : str
        Cell I-V model (:mod:`yieldmc.devices`): ``"linear"`` (ohmic, the fast default)
        or ``"sinh"`` (gap model ``I = i0 exp(-gap/gap0) sinh(V/v0)``). For ``sinh``,
        ``g_on``/``g_off`` are the small-signal (0 V) conductances, realised by the
        gaps ``gap0 ln(i0 / (v0 g))`` (:attr:`gap_range`); no transfer matrix exists,
        so every image is a non-linear solve.
    i0 : float
        ``sinh`` only: current scale (A). Default 1e-3.
    gap0 : float
        ``sinh`` only: gap scale (nm). Default 0.25.
    v0 : float
        ``sinh`` only: voltage scale of the non-linearity (V). Default 0.25: at 0.2 V a
        cell conducts ``sinh(0.8) / 0.8 = 1.110`` times its small-signal current.
    drift_nu, drift_t0, read_time : float
        Drift ``G(t) = G(t0) (t / t0)^-nu`` of programmed (not stuck) cells, applied in
        mapping (:func:`yieldmc.readout.drift_factor`): exponent (>= 0; default 0), time
        after programming of ``G(t0)`` and of the reads (s; 1, 1; ``read_time >= t0``).
        The law and nu 0.049-0.1 are PCM's (aihwkit's PCM model, Joshi et al., Nat.
        Commun. 11, 2473 (2020)); for ReRAM nu is an order-of-magnitude assumption.
    read_noise, read_bandwidth, temperature : float
        Per read and cell: relative conductance fluctuation ``sigma_G = read_noise G``
        (>= 0; default 0) and Johnson current noise ``4 k T read_bandwidth G`` (A^2;
        bandwidth in Hz, default 0 = none; temperature in K, default 300).
    """

    g_on: float = 1e-4
    g_off: float = 1e-6
    levels: int = 0
    programming_noise: float = 0.0
    model: str = "linear"
    i0: float = 1e-3
    gap0: float = 0.25
    v0: float = 0.25
    drift_nu: float = 0.0
    drift_t0: float = 1.0
    read_time: float = 1.0
    read_noise: float = 0.0
    read_bandwidth: float = 0.0
    temperature: float = 300.0

    def __post_init__(self) -> None:
        _positive("device.g_on", self.g_on)
        _positive("device.g_off", self.g_off)
        if self.g_off >= self.g_on:
            raise ConfigError(f"device.g_off ({self.g_off:g} S) must be below device.g_on ({self.g_on:g} S)")
        if not isinstance(self.levels, int) or self.levels < 0 or self.levels == 1:
            raise ConfigError(f"device.levels must be 0 (continuous) or an integer >= 2, got {self.levels!r}")
        for name in ("programming_noise", "drift_nu", "read_noise", "read_bandwidth"):
            _positive(f"device.{name}", getattr(self, name), allow_zero=True)
        if self.model not in DEVICE_MODELS:
            raise ConfigError(f"device.model {self.model!r} is not available; valid: {', '.join(DEVICE_MODELS)}")
        for name in ("i0", "gap0", "v0", "drift_t0", "read_time", "temperature"):
            _positive(f"device.{name}", getattr(self, name))
        if self.model == "sinh" and self.g_on >= self.i0 / self.v0:
            raise ConfigError(
                f"device.g_on ({self.g_on:g} S) needs a gap <= 0 with i0 = {self.i0:g} A and "
                f"v0 = {self.v0:g} V; the sinh model needs g_on < i0 / v0 = {self.i0 / self.v0:g} S")
        if self.drift_nu > 0 and self.read_time < self.drift_t0:
            raise ConfigError(f"device.read_time ({self.read_time:g} s) must be >= device.drift_t0 "
                              f"({self.drift_t0:g} s): the drift law holds after t0")

    @property
    def gap_range(self) -> tuple[float, float]:
        """``(gap_min, gap_max)`` (nm): the gaps of ``g_on`` (stuck ON) and ``g_off`` (stuck OFF),
        ``gap0 ln(i0 / (v0 g))`` (:meth:`yieldmc.devices.SinhDevice.gap`)."""
        gap_min, gap_max = (self.gap0 * math.log(self.i0 / (self.v0 * g)) for g in (self.g_on, self.g_off))
        return gap_min, gap_max


@dataclass(frozen=True)
class WireConfig:
    """Parasitic resistances of every array (ohm).

    Attributes
    ----------
    r_row, r_col : float
        Resistance of one word-line / bit-line segment between neighbouring cells.
    r_driver : float
        Source resistance of each row driver.
    r_sense : float
        Input impedance of each column's sense amplifier (TIA).
    """

    r_row: float = 1.0
    r_col: float = 1.0
    r_driver: float = 0.0
    r_sense: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _positive(f"wires.{f.name}", getattr(self, f.name), allow_zero=True)

    @property
    def ideal(self) -> WireConfig:
        """The same periphery with ideal (0 ohm) row and column wires."""
        return dataclasses.replace(self, r_row=0.0, r_col=0.0)


@dataclass(frozen=True)
class NetworkConfig:
    """The task and the software network the die implements.

    Attributes
    ----------
    dataset : str
        ``"digits"`` (scikit-learn ``load_digits``, embedded) or ``"mnist"`` (user files).
    data_path : str
        MNIST only: a directory of IDX files or an ``.npz``.
    test_size : int
        Evaluation images (digits: 180, stratified).
    upsample_to : int
        Side length to upsample the 8x8 digits to (0 = keep 8x8).
    hidden : tuple of int
        Hidden layer sizes; the input and output sizes follow from the data.
    activation : str
        Saturating hidden activation with outputs in [0, 1] (``"logistic"``).
    train_seed : int
        Seed of the data split and the training.
    """

    dataset: str = "digits"
    data_path: str = ""
    test_size: int = 180
    upsample_to: int = 0
    hidden: tuple[int, ...] = (8, 8, 8)
    activation: str = "logistic"
    train_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"network.hidden must be a non-empty list of positive integers, got {list(self.hidden)}")
        if self.dataset not in ("digits", "mnist"):
            raise ConfigError(f"network.dataset must be 'digits' or 'mnist', got {self.dataset!r}")
        if self.dataset == "mnist" and not self.data_path:
            raise ConfigError("network.dataset = 'mnist' needs network.data_path (IDX directory or .npz)")
        if not isinstance(self.test_size, int) or self.test_size < 1:
            raise ConfigError(f"network.test_size must be a positive integer, got {self.test_size!r}")
        if not isinstance(self.upsample_to, int) or self.upsample_to < 0:
            raise ConfigError(f"network.upsample_to must be 0 or a positive integer, got {self.upsample_to!r}")


@dataclass(frozen=True)
class ArrayConfig:
    """Arrays, tiling and the analog periphery.

    Attributes
    ----------
    max_rows, max_cols : int
        Largest physical array (cells). A layer needing more is tiled over several
        arrays; a differential pair never straddles two arrays.
    v_read : float
        Full-scale read voltage (V): pixel 1 and hidden activation 1 map to it.
    output_gain : float
        Output neuron gain (V per unit of software logit): the TIA feedback resistance
        is ``output_gain / (g_scale * v_read)``.
    output_rail : float
        The output amplifiers saturate at ``+-output_rail`` (V, >= 0;
        :func:`yieldmc.readout.saturate`). 0 (the default): unbounded.
    """

    max_rows: int = 64
    max_cols: int = 32
    v_read: float = 0.2
    output_gain: float = 0.1
    output_rail: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_rows, int) or self.max_rows < 1:
            raise ConfigError(f"arrays.max_rows must be a positive integer, got {self.max_rows!r}")
        if not isinstance(self.max_cols, int) or self.max_cols < 2 or self.max_cols % 2:
            raise ConfigError(
                f"arrays.max_cols must be an even integer >= 2 (differential pairs), got {self.max_cols!r}")
        _positive("arrays.v_read", self.v_read)
        _positive("arrays.output_gain", self.output_gain)
        _positive("arrays.output_rail", self.output_rail, allow_zero=True)


@dataclass(frozen=True)
class DefectConfig:
    """Which defects the dies of a run receive (docs/defects.md).

    Attributes
    ----------
    kind : str
        Defect kind: a name of :data:`yieldmc.defect_kinds.KINDS` (``circular``, ...,
        ``random``, ``mixed``, ``none``).
    severity : tuple of float
        Range ``(lo, hi)`` of the target faulty share of an affected array, drawn
        uniformly per array; ``()`` draws geometry from the default ranges.
    on_fraction : float
        Probability that a faulty cell is stuck ON (G_on) rather than OFF.
    on_mode : str
        ``"cell"``: ON/OFF drawn per cell; ``"pattern"``: per pattern.
    layers : tuple of int
        Layers (0 = first) whose arrays receive defects; ``()`` means all layers.
    """

    kind: str = "mixed"
    severity: tuple[float, ...] = (0.005, 0.05)
    on_fraction: float = 0.5
    on_mode: str = "cell"
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        sev = tuple(self.severity)
        if any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in sev):
            raise ConfigError(f"defects.severity must be [] or [lo, hi] numbers in [0, 1], got {list(sev)}")
        object.__setattr__(self, "severity", tuple(float(s) for s in sev))
        object.__setattr__(self, "layers", tuple(self.layers))
        kinds = defect_kinds.REGISTRY.kinds  # read now: a kind registered later counts
        if self.kind not in kinds:
            raise ConfigError(f"unknown defect kind {self.kind!r}; valid: {', '.join(kinds)}")
        if len(self.severity) not in (0, 2) or any(not 0 <= s <= 1 for s in self.severity) or (
            self.severity and self.severity[0] > self.severity[1]
        ):
            raise ConfigError(
                f"defects.severity must be [] or [lo, hi] with 0 <= lo <= hi <= 1, got {list(self.severity)}")
        if not 0 <= self.on_fraction <= 1:
            raise ConfigError(f"defects.on_fraction must be in [0, 1], got {self.on_fraction!r}")
        if self.on_mode not in defect_kinds.ON_MODES:
            raise ConfigError(f"defects.on_mode must be one of {', '.join(defect_kinds.ON_MODES)}, "
                              f"got {self.on_mode!r}")
        if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in self.layers):
            raise ConfigError(f"defects.layers must be layer indices >= 0, got {list(self.layers)}")

    @property
    def severity_arg(self) -> tuple[float, float] | None:
        """The severity as :func:`yieldmc.defects.sample_die` takes it."""
        return (self.severity[0], self.severity[1]) if self.severity else None


@dataclass(frozen=True)
class WaferConfig:
    """Dies placed on wafers, and the wafers' clustered defect density (docs/wafer.md).

    With ``wafers = 0`` (the default) a run has no wafers: ``--dies N`` dies, each with
    defects on every array of ``defects.layers`` (a config without ``[wafer]`` is written
    exactly as before this section existed). With ``wafers > 0`` the run holds every die
    site of ``lots * wafers`` wafers (:func:`yieldmc.waferdies.wafer_die_count`); each die draws
    its number of killer defects from the density hierarchy of :mod:`yieldmc.wafer`, and
    that many of its eligible arrays (those of ``defects.layers``) receive the die's
    cell-level defects; a die without a defect is fault-free.

    Attributes
    ----------
    wafers : int
        Wafers per lot (0: no wafers). A FOUP holds 25.
    lots : int
        Lots (>= 1).
    diameter_mm : float
        Wafer diameter (mm). Default 300.
    die_w_mm, die_h_mm : float
        Die width (x) and height (y), scribe lanes included (mm). Default 10 x 10.
    edge_exclusion_mm : float
        Ring at the wafer's edge where no die may lie (mm, >= 0). Default 3.
    d0 : float
        Mean killer-defect density (defects per cm^2, >= 0). Default 0.5: on a 1 cm^2 die
        0.5 defects on average, about 64 % of the dies defect-free with ``alpha = 2``.
    alpha : float
        Clustering shape: each wafer's density is Gamma(alpha, d0 / alpha) per cm^2, so the
        dies' counts are negative-binomial with variance ``m + m^2 / alpha`` (``m`` the mean
        count); small values cluster strongly. ``0``: no clustering (every wafer has density
        ``d0``: Poisson counts). Default 2.
    lot_alpha : float
        Gamma shape of a per-lot density multiplier (mean 1, variance ``1 / lot_alpha``);
        ``0`` (the default): every lot alike.
    signature : str
        Spatial signature of the wafers (:data:`WAFER_SIGNATURES`): ``"none"`` (the
        default), ``"center"``, ``"edge_ring"``, ``"donut"``, ``"local"`` (a disc at a
        random place), ``"scratch"`` (a random chord) or ``"random"`` (the whole wafer).
    signature_strength : float
        The density inside the signature is ``1 + signature_strength`` times the wafer's
        (>= 0). Default 5.
    signature_prob : float
        Share of wafers that carry the signature, in [0, 1]. Default 1.
    """

    wafers: int = 0
    lots: int = 1
    diameter_mm: float = 300.0
    die_w_mm: float = 10.0
    die_h_mm: float = 10.0
    edge_exclusion_mm: float = 3.0
    d0: float = 0.5
    alpha: float = 2.0
    lot_alpha: float = 0.0
    signature: str = "none"
    signature_strength: float = 5.0
    signature_prob: float = 1.0

    def __post_init__(self) -> None:
        for name, low in (("wafers", 0), ("lots", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"wafer.{name} must be an integer >= {low}, got {v!r}")
        for name in ("diameter_mm", "die_w_mm", "die_h_mm"):
            _positive(f"wafer.{name}", getattr(self, name))
        for name in ("edge_exclusion_mm", "d0", "alpha", "lot_alpha", "signature_strength", "signature_prob"):
            _positive(f"wafer.{name}", getattr(self, name), allow_zero=True)
        if self.signature_prob > 1:
            raise ConfigError(f"wafer.signature_prob must lie in [0, 1], got {self.signature_prob!r}")
        if self.signature not in WAFER_SIGNATURES:
            raise ConfigError(f"unknown wafer.signature {self.signature!r}; valid: {', '.join(WAFER_SIGNATURES)}")
        if self.wafers:
            self.spec()  # the die must fit on the wafer (ConfigError naming the settings)

    @property
    def enabled(self) -> bool:
        """Whether the run places its dies on wafers (``wafers > 0``)."""
        return self.wafers > 0

    def spec(self):
        """The wafer geometry, a :class:`yieldmc.wafer.WaferSpec` (imports the wafer library)."""
        from yieldmc.wafer import WaferSpec

        return WaferSpec(diameter_mm=self.diameter_mm, die_w_mm=self.die_w_mm, die_h_mm=self.die_h_mm,
                         edge_exclusion_mm=self.edge_exclusion_mm)

    def density(self):
        """The defect density, a :class:`yieldmc.wafer.DensitySpec` (``alpha``, ``lot_alpha``
        of 0 become None: no clustering, lots alike)."""
        from yieldmc.wafer import DensitySpec

        return DensitySpec(d0=self.d0, alpha=self.alpha or None, lot_alpha=self.lot_alpha or None,
                           signature=self.signature, strength=self.signature_strength,
                           signature_prob=self.signature_prob)


@dataclass(frozen=True)
class MappingConfig:
    """How each layer's weights become conductances (:mod:`yieldmc.mapping`).

    Attributes
    ----------
    scheme : str
        ``"differential"`` (default): ``G+- = g_off + g_scale max(+-W, 0)`` (stuck OFF mild,
        stuck ON harmful). ``"midrange"``: ``G+- = g_mid +- g_scale W / 2``, ``g_mid = (g_on
        + g_off) / 2``: the same ``I+ - I-``; stuck ON / OFF deviate equally from ``g_mid``.
    bias_row : bool
        False (default): biases are added in the periphery. True: each layer's bias is one
        more (last) array row, driven at ``v_read``, mapped like a weight row (defects hit it).
    """

    scheme: str = "differential"
    bias_row: bool = False

    def __post_init__(self) -> None:
        if self.scheme not in MAPPING_SCHEMES:
            raise ConfigError(f"mapping.scheme {self.scheme!r} is not available; valid: {', '.join(MAPPING_SCHEMES)}")
        if not isinstance(self.bias_row, bool):
            raise ConfigError(f"mapping.bias_row must be true or false, got {self.bias_row!r}")


@dataclass(frozen=True)
class Config:
    """A whole run: the die design, its defects and the root seed.

    Attributes
    ----------
    name : str
        Preset or user label.
    seed : int
        Root seed: die ``d`` draws from ``DieStream(seed, d)`` (:func:`yieldmc.rng.die_generator`).
    """

    name: str = "paper"
    seed: int = 0
    device: DeviceConfig = field(default_factory=DeviceConfig)
    wires: WireConfig = field(default_factory=WireConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    arrays: ArrayConfig = field(default_factory=ArrayConfig)
    defects: DefectConfig = field(default_factory=DefectConfig)
    wafer: WaferConfig = field(default_factory=WaferConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-serialisable; tuples become lists).

        Settings added after run format 2 (:data:`LATER_SECTIONS`, :data:`LATER_FIELDS`) are
        left out at their defaults: a config without them is written exactly as before they
        existed (the run.json of earlier runs, which ``--resume`` compares)."""
        data = _full_dict(self)
        for section, cls in LATER_SECTIONS.items():
            if getattr(self, section) == cls():
                del data[section]
        for section, names in LATER_FIELDS.items():
            default = _SECTIONS[section]()
            for name in names:
                if getattr(getattr(self, section), name) == getattr(default, name):
                    del data[section][name]
        return data

    def to_toml(self) -> str:
        """The config as TOML text that :func:`load_config` reads back to an equal Config (over
        ``paper`` or ``large``: ``realistic`` sets settings that :meth:`to_dict` leaves out)."""
        return dumps_toml(self.to_dict())

    def replace(self, **changes: Any) -> Config:
        """A copy with ``section.field`` style changes, e.g. ``{"wires.r_row": 2.0}``."""
        return from_dict(apply_overrides(_full_dict(self), changes))


_SECTIONS = {"device": DeviceConfig, "wires": WireConfig, "network": NetworkConfig, "arrays": ArrayConfig,
             "defects": DefectConfig, "wafer": WaferConfig, "mapping": MappingConfig}
#: Sections, and fields (section -> names), that :meth:`Config.to_dict` leaves out at their defaults.
LATER_SECTIONS = {"wafer": WaferConfig, "mapping": MappingConfig}
LATER_FIELDS = {"device": ("drift_nu", "drift_t0", "read_time", "read_noise", "read_bandwidth", "temperature"),
                "arrays": ("output_rail",)}


def _full_dict(config: Config) -> dict[str, Any]:
    """:meth:`Config.to_dict` with every section and field (what overrides may name)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _build_section(cls, values: Any, section: str):
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table of settings")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{section}]: {', '.join(unknown)}; valid: {', '.join(known)}")
    converted = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{section}.{key} must be a list, got {value!r}")
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif type(default) is not type(value):
            raise ConfigError(f"{section}.{key} must be of type {type(default).__name__}, got {value!r}")
        converted[key] = value
    return cls(**converted)


def from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a nested dict (as read from TOML)."""
    top = {"name", "seed", *_SECTIONS}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ConfigError(f"unknown top-level setting(s): {', '.join(unknown)}; valid: {', '.join(sorted(top))}")
    kwargs: dict[str, Any] = {k: data[k] for k in ("name", "seed") if k in data}
    for section, cls in _SECTIONS.items():
        if section in data:
            kwargs[section] = _build_section(cls, data[section], section)
    return Config(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_value(text: str) -> Any:
    """A CLI override value: TOML syntax (``2.0``, ``[0.1, 0.3]``, ``"x"``), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """Apply ``{"section.field": value}`` overrides to a nested dict."""
    out = json.loads(json.dumps(data))
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown setting {dotted!r}: no section {part!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown setting {dotted!r}")
        node[parts[-1]] = value
    return out


PRESETS = ("paper", "large", "realistic")


def preset_dict(name: str) -> dict[str, Any]:
    """The TOML of a shipped preset, as a dict."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    text = resources.files("yieldmc.presets").joinpath(f"{name}.toml").read_text()
    return tomllib.loads(text)


def load_config(preset: str = "paper", path: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """Preset, then the user's TOML file, then ``section.field`` overrides.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable or invalid TOML, unknown or invalid settings.
    """
    data = preset_dict(preset)
    if path is not None:
        try:
            user = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        data = _merge(data, user)
    if overrides:
        data = apply_overrides(_merge(_full_dict(Config()), data), overrides)
    return from_dict(data)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):  # TOML basic string: escape quotes, backslashes, controls
        out = "".join(c if c not in '"\\' and 0x1F < ord(c) != 0x7F else f"\\u{ord(c):04X}"
                      for c in value)
        return f'"{out}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML text of a dict of scalars and one level of tables (the Config schema)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
