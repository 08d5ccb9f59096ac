"""Transfer protocols of correctors: does a corrector fitted on some circuits help others?

The study of :mod:`yieldmc.reproduce` trains a corrector on instance ``i`` of type A and
tests it on instance ``i + 1`` of type B, so placement and defect type change together.
The protocols here separate the two. A *circuit* is the output voltages (images x classes,
volts) one defective die gives for the training and the test images; circuits come from
two injected callables, so the protocols run on synthetic voltages as well as on dies
(:func:`die_sources` builds them from a :class:`~yieldmc.die.DieModel`):

* ``canonical(kind, severity, on_mode, layers) -> (v_train, v_test)``: the die with the
  FIXED, centred canonical pattern of ``kind`` on the arrays of ``layers`` (``()``: all);
* ``family(kind, severity, on_mode, dies) -> (v_train[n], v_test[n])``: drawn dies
  (placement drawn per die), stacked along a first axis.

``on_mode`` is ``"on"`` (every stuck cell ON), ``"off"`` or ``"cell"`` (ON/OFF per cell
from one map that all kinds share). The protocols, per (severity, on_mode):

* **A**: one canonical circuit per spatial kind, train on kind A, test on kind B (6 x 6;
  the diagonal tests the same circuit on the test images: its own corrector);
* **B**: leave one type out: train on the other kinds' circuits stacked, test on the
  held-out kind (``train_type = "others"``);
* **C**: defects on one layer ``l`` at a time (``layers = str(l)``): per kind the raw and
  own-corrected accuracy and the leave-one-type-out transfer within that layer;
* **D**: a family of drawn dies: per kind, train on dies ``0 .. n_family-1`` stacked, test
  on the unseen dies ``n_family .. n_family+n_unseen-1``; ``train_type = "mixed"`` trains
  on every kind's family stacked. D has one row per unseen die (``test_die``; -1 in A-C),
  with that die's own corrector in ``accuracy_own``; :func:`summarize` averages them.

:func:`run_protocols` returns one tidy row per (training set, test circuit);
:func:`summarize` and :func:`transfer_regime` reduce it. Each corrector is fitted once per
training set (a circuit's own fit serves A, B and C) from ``make_corrector()``, so the
results depend on the seed and not on ``n_jobs``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from yieldmc import defect_kinds
from yieldmc.errors import ConfigError

if TYPE_CHECKING:
    from yieldmc.die import DieModel

#: ``(kind, severity, on_mode, layers) -> (v_train, v_test)``: (images, classes) arrays, volts.
CanonicalSource = Callable[[str, float, str, tuple[int, ...]], tuple[np.ndarray, np.ndarray]]
#: ``(kind, severity, on_mode, dies) -> (v_train, v_test)``: (dies, images, classes) arrays, volts.
FamilySource = Callable[[str, float, str, Sequence[int]], tuple[np.ndarray, np.ndarray]]

PROTOCOLS = ("A", "B", "C", "D")
#: Stuck-cell polarity: all ON, all OFF, or per cell from a shared map.
ON_MODES = ("cell", "on", "off")
#: ``defects.on_fraction`` of a drawn die for each on_mode (with ``defects.on_mode = "cell"``).
ON_FRACTION = {"on": 1.0, "off": 0.0, "cell": 0.5}
#: ``train_type`` of a leave-one-type-out training set and of D's all-kinds family.
OTHERS, MIXED = "others", "mixed"
#: Columns of :func:`run_protocols`' frame, in order.
COLUMNS = ("protocol", "severity", "on_mode", "scheme", "layers", "train_type", "test_type", "test_die",
           "accuracy_raw", "accuracy_corrected", "accuracy_own", "n_train_circuits", "corrector_params")
#: :func:`transfer_regime` calls a mean gain positive (negative) beyond this many standard errors.
REGIME_SEMS = 2.0
#: The keys of :func:`summarize`: ``train_type`` reduced to what was trained on.
SUMMARY_KEYS = ("protocol", "severity", "on_mode", "scheme", "layers", "training")

# A circuit: ("canonical", kind, severity, on_mode, layers) or ("family", kind, severity,
# on_mode, die). A training set: a tuple of circuits (their training voltages stacked).
_Circuit = tuple
_TrainSet = tuple[_Circuit, ...]


def default_corrector(seed: int = 0) -> Callable[[], Any]:
    """The default factory: ``MLPCorrector(hidden=(16,), random_state=seed)`` (picklable)."""
    from yieldmc.correctors import MLPCorrector

    return functools.partial(MLPCorrector, hidden=(16,), random_state=seed)


# --- plans: which training set is scored on which circuit --------------------------------

def _row(protocol, sev, mode, layers, train_type, test_type, train: _TrainSet, test: _Circuit,
         own: _TrainSet | None) -> dict:
    return {"protocol": protocol, "severity": sev, "on_mode": mode,
            "layers": "all" if not layers else ",".join(map(str, layers)),
            "train_type": train_type, "test_type": test_type, "train": train, "test": test, "own": own}


def _plan(protocols, kinds, sev, mode, n_layers, n_family, n_unseen) -> list[dict]:
    """Row specifications of one (severity, on_mode), in a fixed order."""
    rows = []

    def canon(kind, layers=()):
        return ("canonical", kind, sev, mode, layers)

    if "A" in protocols:
        rows += [_row("A", sev, mode, (), a, b, (canon(a),), canon(b), (canon(b),))
                 for a in kinds for b in kinds]
    loto_layers = ([()] if "B" in protocols else []) + ([(x,) for x in range(n_layers)] if "C" in protocols else [])
    for layers in loto_layers:
        for held in kinds:
            others = tuple(canon(k, layers) for k in kinds if k != held)
            rows.append(_row("B" if not layers else "C", sev, mode, layers, OTHERS, held, others,
                             canon(held, layers), (canon(held, layers),)))
    if "D" in protocols:
        fams = {k: tuple(("family", k, sev, mode, d) for d in range(n_family)) for k in kinds}
        mixed = tuple(c for k in kinds for c in fams[k])
        for train_type in (*kinds, MIXED):
            for kind in kinds if train_type == MIXED else (train_type,):
                for d in range(n_family, n_family + n_unseen):
                    test = ("family", kind, sev, mode, d)
                    rows.append(_row("D", sev, mode, (), train_type, kind,
                                     mixed if train_type == MIXED else fams[kind], test, (test,)))
    return rows


# --- circuits and fits ---------------------------------------------------------------------

def _check(v: np.ndarray, n_images: int, what: str, lead: tuple[int, ...] = ()) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != len(lead) + 2 or v.shape[:-1] != (*lead, n_images) or not np.isfinite(v).all():
        raise ConfigError(f"{what}: expected finite voltages of shape {(*lead, n_images, 'classes')}, "
                          f"got {v.shape}")
    return v


def _circuits(rows: list[dict], canonical: CanonicalSource, family: FamilySource, labels, n_family: int,
              n_unseen: int) -> dict[_Circuit, tuple[np.ndarray, np.ndarray]]:
    """Voltages of every circuit the rows name; each source call is made once."""
    needed = dict.fromkeys(c for r in rows for c in (*r["train"], r["test"]))
    n_tr, n_te = (len(y) for y in labels)
    out: dict[_Circuit, tuple[np.ndarray, np.ndarray]] = {}
    for c in needed:
        if c in out:
            continue
        source, kind, sev, mode, where = c
        if source == "canonical":
            v_tr, v_te = canonical(kind, sev, mode, where)
            what = f"canonical({kind!r}, {sev}, {mode!r}, {where})"
            out[c] = (_check(v_tr, n_tr, what), _check(v_te, n_te, what))
        else:
            dies = range(n_family + n_unseen)
            what = f"family({kind!r}, {sev}, {mode!r}, {len(dies)} dies)"
            v_tr, v_te = family(kind, sev, mode, dies)
            v_tr, v_te = _check(v_tr, n_tr, what, (len(dies),)), _check(v_te, n_te, what, (len(dies),))
            for d in dies:
                out["family", kind, sev, mode, d] = (v_tr[d], v_te[d])
    return out


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _drop_copies(rows: list[dict], circuits) -> list[dict]:
    """Leave out of B's and C's training sets any circuit identical to the held-out one.

    Two kinds can give the same voltages (their masks round to the same cells on the arrays
    that carry them, or stuck-OFF cells land only on cells already at ``g_off``): training on
    the held-out circuit under another name would leak it. A warning names such pairs (in A
    too, where the row is then an own-corrector score). D's drawn dies are left alone.
    """
    import warnings

    copies: set[tuple] = set()
    out = []
    for r in rows:
        if r["protocol"] == "D":  # drawn dies: two that give one circuit are the population's
            out.append(r)
            continue
        same = [c for c in r["train"] if c != r["test"] and _same(circuits[c], circuits[r["test"]])]
        copies.update((r["severity"], r["on_mode"], r["layers"], *sorted((c[1], r["test"][1]))) for c in same)
        if same and r["protocol"] in ("B", "C"):
            train = tuple(c for c in r["train"] if c not in same)
            if not train:
                raise ConfigError(f"protocol {r['protocol']}: every training circuit of held-out kind "
                                  f"{r['test_type']!r} equals it")
            r = {**r, "train": train}
        out.append(r)
    if copies:
        pairs = ", ".join(f"{a}={b} (severity {sev:g}, on_mode {mode}, layers {lay})"
                          for sev, mode, lay, a, b in sorted(copies))
        warnings.warn(f"kinds give identical circuits: {pairs}; left out of leave-one-out training",
                      UserWarning, stacklevel=3)
    return out


def _fit_all(train_sets: list[_TrainSet], circuits, y_train: np.ndarray, make_corrector, n_jobs: int,
             progress: Callable[[int, int], Any] | None) -> dict[_TrainSet, Any]:
    """One fitted corrector per training set; the largest sets are dispatched first."""
    from joblib import Parallel, delayed

    order = sorted(range(len(train_sets)), key=lambda i: -len(train_sets[i]))

    def data(i: int) -> tuple[np.ndarray, np.ndarray]:
        ts = train_sets[i]
        return np.concatenate([circuits[c][0] for c in ts]), np.tile(y_train, len(ts))

    if n_jobs == 1:
        results = (_fit_indexed(i, make_corrector, *data(i)) for i in order)
    else:
        par = Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="2*n_jobs")
        results = par(delayed(_fit_indexed)(i, make_corrector, *data(i)) for i in order)
    fitted: dict[_TrainSet, Any] = {}
    for done, (i, model) in enumerate(results, 1):
        fitted[train_sets[i]] = model
        if progress is not None:
            progress(done, len(train_sets))
    return fitted


def _fit_indexed(i: int, make_corrector: Callable[[], Any], X: np.ndarray, y: np.ndarray) -> tuple[int, Any]:
    """``(i, make_corrector().fit(X, y))`` with single-threaded BLAS (small matrices: threads
    only oversubscribe the cores; fits run in parallel instead)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return i, make_corrector().fit(X, y)


def _score(rows: list[dict], fits, circuits, labels, scheme: str) -> pd.DataFrame:
    from yieldmc.correctors import n_parameters

    y_test = labels[1]
    scores: dict[tuple, float] = {}

    def score(train: _TrainSet, test: _Circuit) -> float:
        if (train, test) not in scores:
            scores[train, test] = float(fits[train].score(circuits[test][1], y_test))
        return scores[train, test]

    out = []
    for r in rows:
        v_test = circuits[r["test"]][1]
        out.append({
            **{k: r[k] for k in ("protocol", "severity", "on_mode")}, "scheme": scheme,
            **{k: r[k] for k in ("layers", "train_type", "test_type")},
            "test_die": r["test"][4] if r["test"][0] == "family" else -1,
            "accuracy_raw": float(np.mean(v_test.argmax(axis=1) == y_test)),
            "accuracy_corrected": score(r["train"], r["test"]),
            "accuracy_own": score(r["own"], r["test"]) if r["own"] is not None else np.nan,
            "n_train_circuits": len(r["train"]),
            "corrector_params": n_parameters(fits[r["train"]]),
        })
    return pd.DataFrame(out, columns=list(COLUMNS))


# --- the driver ----------------------------------------------------------------------------

def run_protocols(canonical: CanonicalSource, family: FamilySource, labels: tuple[np.ndarray, np.ndarray], *,
                  severities: Sequence[float] = (0.02, 0.05), on_modes: Sequence[str] = ON_MODES,
                  scheme: str = "differential", n_layers: int, protocols: Sequence[str] = PROTOCOLS,
                  n_family: int = 20, n_unseen: int = 5, seed: int = 0,
                  make_corrector: Callable[[], Any] | None = None, n_jobs: int = 1,
                  progress: Callable[[int, int], Any] | None = None,
                  kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Score correctors under transfer protocols A-D (module docstring) and return one row each.

    Parameters
    ----------
    canonical, family : callable
        The circuits (:data:`CanonicalSource`, :data:`FamilySource`); each distinct call is
        made once. ``family`` is called with dies ``range(n_family + n_unseen)``.
    labels : (ndarray, ndarray)
        Classes of the training and the test images.
    severities : sequence of float
        Faulty share of every defective array.
    on_modes : sequence of {"cell", "on", "off"}
    scheme : str
        Stored in the ``scheme`` column (the weight mapping the circuits use).
    n_layers : int
        Layers of the network (protocol C puts defects on each in turn).
    protocols : sequence of {"A", "B", "C", "D"}
    n_family, n_unseen : int
        Protocol D: training dies and unseen test dies per kind.
    seed : int
        ``random_state`` of the default corrector.
    make_corrector : callable, optional
        Returns a new unfitted estimator with ``fit`` and ``score`` (default
        :func:`default_corrector`\\ ``(seed)``); it must be picklable when ``n_jobs > 1``.
    n_jobs : int
        joblib processes for the fits (results do not depend on it).
    progress : callable, optional
        Called with ``(fits done, fits in all)`` after each fit.
    kinds : sequence of str, optional
        Defect kinds (default every spatial kind, :data:`yieldmc.defect_kinds.REGISTRY`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: per (protocol, severity, on_mode, layers, training set,
        test circuit) the raw argmax accuracy of the test circuit, the accuracy of the
        training set's corrector on it and that of its own corrector (fitted on its training
        images), the number of circuits trained on and the corrector's parameters.
        ``test_die`` is the unseen die of protocol D, -1 for canonical circuits.

    Notes
    -----
    Cost is the fits. Per (severity, on_mode) with the defaults on the ``paper`` die (6
    kinds, 4 layers): 60 fits on one circuit (1,617 images), 30 leave-one-out fits (5
    circuits), 6 family fits (20 dies) and one ``mixed`` fit (120 dies, 194,040 images).
    Measured on a shared 2-core machine (load ~5), one BLAS thread: 0.7 s, 4.8 s, 31 s and
    190 s per fit, about 9 minutes per (severity, on_mode) in one process.
    """
    kinds = tuple(defect_kinds.REGISTRY.spatial if kinds is None else kinds)
    protocols = tuple(protocols)
    if bad := [p for p in protocols if p not in PROTOCOLS]:
        raise ConfigError(f"unknown protocols {bad}; valid: {', '.join(PROTOCOLS)}")
    if bad := [m for m in on_modes if m not in ON_MODES]:
        raise ConfigError(f"unknown on_modes {bad}; valid: {', '.join(ON_MODES)}")
    if bad := [s for s in severities if not 0 < s <= 1]:
        raise ConfigError(f"severities must lie in (0, 1], got {bad}")
    if {"B", "C"} & set(protocols) and len(kinds) < 2:
        raise ConfigError("protocols B and C leave one kind out: they need at least two kinds")
    if n_layers < 1 or n_family < 1 or n_unseen < 1 or n_jobs < 1:
        raise ConfigError("n_layers, n_family, n_unseen and n_jobs must be >= 1")
    rows = [r for sev in severities for mode in on_modes
            for r in _plan(protocols, kinds, float(sev), mode, n_layers, n_family, n_unseen)]
    circuits = _circuits(rows, canonical, family, labels, n_family, n_unseen)
    rows = _drop_copies(rows, circuits)
    train_sets = list(dict.fromkeys(t for r in rows for t in (r["train"], r["own"]) if t is not None))
    fits = _fit_all(train_sets, circuits, np.asarray(labels[0]), make_corrector or default_corrector(seed),
                    n_jobs, progress)
    return _score(rows, fits, circuits, labels, scheme)


# --- reductions ----------------------------------------------------------------------------

def _training(df: pd.DataFrame) -> pd.Series:
    """What each row trained on: ``own`` (A's diagonal), ``one type``, ``others``, ``family``, ``mixed``."""
    same = df.train_type == df.test_type
    return pd.Series(np.select([df.protocol.isin(["B", "C"]), df.train_type == MIXED,
                                (df.protocol == "D") & same, same],
                               [OTHERS, MIXED, "family", "own"], "one type"), index=df.index)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Means per :data:`SUMMARY_KEYS` of a :func:`run_protocols` frame.

    ``training`` splits ``train_type``: ``own`` (A's diagonal: the circuit's own corrector),
    ``one type`` (A off the diagonal), ``others`` (B, C), ``family`` and ``mixed`` (D).

    Returns
    -------
    pandas.DataFrame
        :data:`SUMMARY_KEYS`, ``n`` (rows averaged), the mean ``accuracy_raw``,
        ``accuracy_corrected`` and ``accuracy_own``, ``transfer_gain`` (corrected - raw)
        and ``gain_sem``, the standard error of the mean per-row gain (0 for one row).
    """
    d = df.assign(training=_training(df), gain=df.accuracy_corrected - df.accuracy_raw)
    g = d.groupby(list(SUMMARY_KEYS), sort=False)
    out = g.agg(n=("gain", "size"), accuracy_raw=("accuracy_raw", "mean"),
                accuracy_corrected=("accuracy_corrected", "mean"), accuracy_own=("accuracy_own", "mean"),
                gain_std=("gain", "std"))
    out["transfer_gain"] = out.accuracy_corrected - out.accuracy_raw
    out["gain_sem"] = (out.pop("gain_std") / np.sqrt(out.n)).fillna(0.0)
    return out.reset_index()


def transfer_regime(df: pd.DataFrame) -> pd.DataFrame:
    """Where a corrector helps circuits it was not fitted on: :func:`summarize` without the
    ``own`` rows, with ``regime`` ``"positive"`` (the mean gain over raw is above
    :data:`REGIME_SEMS` standard errors), ``"negative"`` (below minus that) or ``"within
    noise"``, and ``verdict``, a one-line reading for the docs."""
    s = summarize(df)
    s = s[s.training != "own"].reset_index(drop=True)
    margin = REGIME_SEMS * s.gain_sem
    s["regime"] = np.select([s.transfer_gain > margin, s.transfer_gain < -margin], ["positive", "negative"],
                            "within noise")
    s["verdict"] = [
        f"{r.protocol} ({r.training}), {100 * r.severity:g}% {r.on_mode}, layers {r.layers}: "
        f"raw {r.accuracy_raw:.3f} -> corrected {r.accuracy_corrected:.3f} "
        f"({r.transfer_gain:+.3f} +- {r.gain_sem:.3f}; own {r.accuracy_own:.3f}): {r.regime}"
        for r in s.itertuples()]
    return s


# --- circuits of a die --------------------------------------------------------------------

class Sources(NamedTuple):
    """The circuits of a die for :func:`run_protocols`, its labels and its layer count."""

    canonical: CanonicalSource
    family: FamilySource
    labels: tuple[np.ndarray, np.ndarray]
    n_layers: int


def die_sources(model: DieModel, *, images: tuple[str, str] = ("train", "test")) -> Sources:
    """The two circuit callables of ``model``'s die, with its labels and layer count.

    ``canonical`` puts :func:`yieldmc.masks.canonical_masks` on the arrays of ``layers``
    and solves the die (:meth:`~yieldmc.die.DieModel.mask_outputs`); ``family`` draws dies
    of a copy of ``model`` with ``defects.kind = kind``, ``defects.severity = [s, s]`` on
    every layer and ``defects.on_fraction`` from :data:`ON_FRACTION` (per-cell draw), on the
    per-die path of :func:`yieldmc.correction.die_voltages`.

    Examples
    --------
    >>> src = die_sources(model)                                        # doctest: +SKIP
    >>> df = run_protocols(src.canonical, src.family, src.labels,       # doctest: +SKIP
    ...                    n_layers=src.n_layers, protocols=("A", "B"))
    """
    from yieldmc.correction import die_voltages
    from yieldmc.die import DieModel

    xs = [model.images(w)[0] for w in images]
    labels = tuple(model.images(w)[1] for w in images)
    n_arrays = len(model.layout.arrays)

    def canonical(kind: str, severity: float, on_mode: str, layers: tuple[int, ...]):
        from yieldmc.masks import canonical_masks

        chosen = set(model.layout.arrays_of_layers(tuple(layers)))
        masks = canonical_masks(kind, model.layout.shapes, severity, on_mode=on_mode,
                                affected=[i in chosen for i in range(n_arrays)])
        outputs, _ = model.mask_outputs(masks, xs)
        return outputs[0], outputs[1]

    def family(kind: str, severity: float, on_mode: str, dies: Sequence[int]):
        cfg = model.config.replace(**{"defects.kind": kind, "defects.severity": [severity, severity],
                                      "defects.layers": [], "defects.on_mode": "cell",
                                      "defects.on_fraction": ON_FRACTION[on_mode]})
        v_train, v_test = die_voltages(DieModel(cfg, model.network, model.dataset), dies, images)
        return v_train, v_test

    return Sources(canonical, family, labels, len(model.layout.g_scales))
