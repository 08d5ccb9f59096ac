"""The software MLP whose weights the analog die implements.

A :class:`Network` is a plain stack of affine layers ``z = h @ W + b``. Hidden layers apply
a *saturating* activation with outputs in [0, 1], because on the die each hidden neuron's
output is a voltage in ``[0, v_read]`` that drives the next array's rows. The output layer
is linear: its values are the logits, and the prediction is their argmax.

Weights are trained in software with scikit-learn's ``MLPClassifier``
(:func:`train_network`), cached as ``.npz`` (:func:`save_network`, :func:`load_network`)
and identified by :func:`network_fingerprint`. All quantities are in software units
(dimensionless); the mapping onto conductances lives in :mod:`yieldmc.mapping`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from yieldmc.data import Dataset
from yieldmc.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_MAX_ITER",
    "DEFAULT_TOL",
    "Network",
    "NetworkConvergenceWarning",
    "from_sklearn",
    "load_network",
    "network_fingerprint",
    "save_network",
    "train_network",
]


def _hard_sigmoid(z: np.ndarray) -> np.ndarray:
    return np.clip(0.5 + 0.25 * z, 0.0, 1.0)


#: Hidden activations, all saturating with outputs in [0, 1]. ``hard_sigmoid`` is the
#: logistic function's tangent at 0, clipped (``clip(0.5 + z / 4, 0, 1)``).
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "logistic": expit,
    "hard_sigmoid": _hard_sigmoid,
}

#: Default L2 penalty of training: it keeps weights small (max |W| ~ 6 for 64-8-8-8-10)
#: and gave the best test accuracy over seeds (mean 0.95 on the 180 digits test images).
DEFAULT_ALPHA = 0.3
#: Iteration budget of training. The paper network (64-8-8-8-10, seed 0) converges in 677
#: L-BFGS iterations (about 1.4 s on one core), train_seed 0-5 in 677-1029; 3000 leaves three
#: times that. A budget that stops training early leaves weights that depend on the CPU's
#: floating-point rounding (300 iterations gave 0.8000 vs 0.8056 die accuracy on two CPUs).
DEFAULT_MAX_ITER = 3000
#: Convergence tolerance (``MLPClassifier.tol``): L-BFGS stops once the largest component of
#: the projected gradient of the loss is at most this (scikit-learn's default, pinned here).
DEFAULT_TOL = 1e-4
_SOLVERS = ("lbfgs", "adam", "sgd")
_FORMAT_VERSION = 1


class NetworkConvergenceWarning(UserWarning):
    """Training stopped at its iteration budget (or the solver gave up) before converging.

    The weights are then a point on the way to the optimum, which other CPUs (other
    floating-point rounding) reach differently; raise ``max_iter``.
    """


def _activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@dataclass(frozen=True, eq=False)
class Network:
    """A trained MLP: saturating hidden layers in [0, 1], linear output layer.

    Attributes
    ----------
    weights : tuple of numpy.ndarray
        ``weights[l]`` has shape ``(n_in, n_out)`` of layer ``l`` (float64, dimensionless).
    biases : tuple of numpy.ndarray
        ``biases[l]`` has shape ``(n_out,)``.
    activation : str
        Hidden activation, a key of :data:`ACTIVATIONS` (default ``"logistic"``).
    metadata : dict
        JSON-serialisable provenance (training settings, versions, accuracies).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activation: str = "logistic"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _activation(self.activation)
        try:
            ws = tuple(np.array(w, dtype=np.float64, copy=True) for w in self.weights)
            bs = tuple(np.array(b, dtype=np.float64, copy=True) for b in self.biases)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"weights and biases must be numeric arrays ({exc})") from None
        if not ws:
            raise ConfigError("a network needs at least one layer")
        if len(ws) != len(bs):
            raise ConfigError(f"{len(ws)} weight matrices but {len(bs)} bias vectors")
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            if w.ndim != 2 or 0 in w.shape:
                raise ConfigError(f"layer {i}: weight matrix must be 2-D and non-empty, got shape {w.shape}")
            if b.shape != (w.shape[1],):
                raise ConfigError(f"layer {i}: bias has shape {b.shape}, expected ({w.shape[1]},)")
            if i and w.shape[0] != ws[i - 1].shape[1]:
                raise ConfigError(f"layer {i}: weight matrix has {w.shape[0]} inputs but layer {i - 1} "
                                  f"has {ws[i - 1].shape[1]} outputs")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ConfigError(f"layer {i}: weights or biases are not finite")
            w.flags.writeable = False
            b.flags.writeable = False
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "biases", bs)
        object.__setattr__(self, "metadata", dict(self.metadata or {}))

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(n_in, hidden..., n_out)``, e.g. ``(64, 8, 8, 8, 10)``."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights))

    @property
    def n_params(self) -> int:
        """Number of weights and biases."""
        return int(sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=True)))

    def forward(self, x: np.ndarray, return_hidden: bool = False):
        """Software forward pass.

        Parameters
        ----------
        x : numpy.ndarray, shape (B, n_in) or (n_in,)
            Inputs (pixels in [0, 1]).
        return_hidden : bool, default False
            Also return the hidden activations (each in [0, 1]).

        Returns
        -------
        logits : numpy.ndarray, shape (B, n_out) or (n_out,)
            Output pre-activations (linear output layer).
        hidden : list of numpy.ndarray
            Only with ``return_hidden``: activations of each hidden layer, shape (B, n_h).
        """
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        h = x[None, :] if single else x
        if h.ndim != 2 or h.shape[1] != self.layer_sizes[0]:
            raise ConfigError(f"inputs must have shape (B, {self.layer_sizes[0]}), got {x.shape}")
        f = ACTIVATIONS[self.activation]
        hidden = []
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = f(h @ w + b)
            hidden.append(h[0] if single else h)
        logits = h @ self.weights[-1] + self.biases[-1]
        logits = logits[0] if single else logits
        return (logits, hidden) if return_hidden else logits

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes: argmax of the logits, shape (B,)."""
        return np.argmax(self.forward(x), axis=-1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Share of inputs ``x`` whose prediction equals the label ``y``."""
        y = np.asarray(y)
        if len(y) == 0:
            raise ConfigError("accuracy needs at least one labelled input")
        return float(np.mean(self.predict(x) == y))

    def __repr__(self) -> str:
        return f"Network(layer_sizes={self.layer_sizes}, activation={self.activation!r})"


def from_sklearn(clf, activation: str | None = None, metadata: Mapping[str, Any] | None = None) -> Network:
    """Copy a fitted ``MLPClassifier``'s ``coefs_`` / ``intercepts_`` into a :class:`Network`.

    Parameters
    ----------
    clf : sklearn.neural_network.MLPClassifier
        Fitted, with at least one hidden layer and more than two classes (softmax output,
        so that the argmax of the logits equals ``clf.predict``).
    activation : str, optional
        Hidden activation of the returned network; defaults to ``clf.activation``.
    metadata : mapping, optional
        Stored in :attr:`Network.metadata`.
    """
    if not hasattr(clf, "coefs_"):
        raise ConfigError("the MLPClassifier is not fitted")
    act = clf.activation if activation is None else activation
    _activation(act)
    if len(clf.coefs_) < 2:
        raise ConfigError("the MLPClassifier has no hidden layer")
    if getattr(clf, "out_activation_", "softmax") != "softmax":
        raise ConfigError(f"only softmax outputs (more than two classes) are supported, got {clf.out_activation_!r}")
    return Network(tuple(clf.coefs_), tuple(clf.intercepts_), activation=act, metadata=dict(metadata or {}))


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    try:
        sizes = tuple(hidden)
    except TypeError:
        raise ConfigError(f"hidden must be a sequence of layer sizes, got {hidden!r}") from None
    ok = all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in sizes)
    if not sizes or not ok:
        raise ConfigError(f"hidden must be a non-empty list of positive integers, got {list(sizes)}")
    return tuple(int(h) for h in sizes)


def train_network(dataset: Dataset, hidden: Sequence[int] = (8, 8, 8), activation: str = "logistic",
                  seed: int = 0, max_iter: int = DEFAULT_MAX_ITER, alpha: float = DEFAULT_ALPHA,
                  solver: str = "lbfgs", n_restarts: int = 1, val_fraction: float = 0.15) -> Network:
    """Train the MLP in software with scikit-learn and return its weights.

    Training is deterministic for a seed: BLAS runs on one thread (so the weights do not
    depend on the machine's core count) and ``random_state`` derives from ``seed``. The test
    set is never used for any choice; its accuracy is only recorded in the metadata.

    Parameters
    ----------
    dataset : Dataset
        Trained on ``x_train``/``y_train``.
    hidden : sequence of int, default (8, 8, 8)
        Hidden layer sizes (the reference publication's 64-8-8-8-10).
    activation : {"logistic", "hard_sigmoid"}, default "logistic"
        Hidden activation. scikit-learn cannot train ``hard_sigmoid``: it is trained as
        ``logistic`` and evaluated with the clipped tangent (on digits this costs at most
        ~1 test image in 180).
    seed : int, default 0
        ``random_state`` of the fit (single run) or root of the restarts' seeds.
    max_iter : int, default 3000 (:data:`DEFAULT_MAX_ITER`)
        Iteration budget of the solver (epochs for adam/sgd). Training that stops here
        unconverged warns (:class:`NetworkConvergenceWarning`) and records
        ``metadata["converged"] = False``.
    alpha : float, default 0.3
        L2 penalty (``MLPClassifier.alpha``).
    solver : {"lbfgs", "adam", "sgd"}, default "lbfgs"
    n_restarts : int, default 1
        With more than one, ``n_restarts`` fits from seeds spawned from ``seed`` are trained
        on the training set minus a stratified validation split (``val_fraction``); the one
        with the best validation accuracy (first on ties) is returned.
    val_fraction : float, default 0.15
        Share of the training set held out for choosing among restarts.

    Returns
    -------
    Network
        With ``metadata`` holding the settings, versions, iterations, convergence (as the
        solver reports it: L-BFGS reached ``tol``, or adam/sgd stopped improving), and
        train / validation / test accuracy.

    Warns
    -----
    NetworkConvergenceWarning
        The returned fit did not converge within ``max_iter`` iterations (the solver's
        message is quoted).

    Examples
    --------
    >>> from yieldmc.data import load_digits_split
    >>> net = train_network(load_digits_split())
    >>> net.layer_sizes
    (64, 8, 8, 8, 10)
    """
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    if not isinstance(dataset, Dataset):
        raise ConfigError(f"dataset must be a yieldmc.data.Dataset, got {type(dataset).__name__}")
    sizes = _check_hidden(hidden)
    _activation(activation)
    if solver not in _SOLVERS:
        raise ConfigError(f"unknown solver {solver!r}; valid: {', '.join(_SOLVERS)}")
    for name, value, low in (("seed", seed, 0), ("max_iter", max_iter, 1), ("n_restarts", n_restarts, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if n_restarts > 1 and not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")

    x, y = dataset.x_train, dataset.y_train
    if n_restarts == 1:
        states = [int(seed)]
        x_fit, y_fit, x_val, y_val = x, y, None, None
    else:
        ss = np.random.SeedSequence(int(seed))
        states = [int(c.generate_state(1)[0]) for c in ss.spawn(n_restarts)]
        x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=val_fraction, stratify=y,
                                                      random_state=int(seed))

    start = time.perf_counter()
    best = None
    with threadpool_limits(limits=1):
        for state in states:
            clf = MLPClassifier(hidden_layer_sizes=sizes, activation="logistic", solver=solver,
                                alpha=float(alpha), max_iter=int(max_iter), tol=DEFAULT_TOL,
                                random_state=state)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                clf.fit(x_fit, y_fit)
            # scikit-learn's ConvergenceWarning is its only report of an unconverged fit
            # (L-BFGS: scipy's status != 0); other warnings go on to the caller unchanged
            stopped = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
            for w in caught:
                if not issubclass(w.category, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            score = clf.score(x_val, y_val) if x_val is not None else None
            if best is None or (score is not None and score > best[1]):
                best = (clf, score, state, stopped)
    clf, val_score, state, stopped = best
    seconds = time.perf_counter() - start

    if list(clf.classes_) != list(range(dataset.n_classes)):
        raise ConfigError(f"training labels cover classes {list(clf.classes_)}, "
                          f"expected 0..{dataset.n_classes - 1}")
    net = from_sklearn(clf, activation=activation)
    metadata = {
        "trainer": "sklearn.neural_network.MLPClassifier",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "dataset": dataset.name,
        "n_train": int(len(y_fit)),
        "hidden": list(sizes),
        "activation": activation,
        "trained_activation": "logistic",
        "solver": solver,
        "alpha": float(alpha),
        "max_iter": int(max_iter),
        "seed": int(seed),
        "n_restarts": int(n_restarts),
        "val_fraction": float(val_fraction) if n_restarts > 1 else 0.0,
        "random_state": state,
        "tol": DEFAULT_TOL,
        "n_iter": int(clf.n_iter_),
        "converged": not stopped,
        "train_seconds": round(seconds, 3),
        "train_accuracy": net.accuracy(x_fit, y_fit),
        "val_accuracy": None if val_score is None else float(net.accuracy(x_val, y_val)),
        "test_accuracy": net.accuracy(dataset.x_test, dataset.y_test) if len(dataset.y_test) else None,
    }
    if stopped:
        reason = " ".join(line.strip() for line in stopped[0].splitlines() if line.strip())
        reason = reason.split(" Increase the number")[0].rstrip(". ")  # scikit-learn's advice, given below
        warnings.warn(f"training of the {'-'.join(map(str, net.layer_sizes))} network (seed {seed}) stopped "
                      f"after {int(clf.n_iter_)} {solver} iterations without converging to tol {DEFAULT_TOL:g} "
                      f"({reason}); its weights depend on the CPU's floating-point rounding: raise max_iter "
                      f"(now {max_iter})", NetworkConvergenceWarning, stacklevel=2)
    return Network(net.weights, net.biases, activation=activation, metadata=metadata)


def network_fingerprint(net: Network) -> str:
    """SHA-256 (hex) of the activation, the layer sizes and the exact float64 weights and biases.

    Two networks share a fingerprint exactly when they compute the same function bit for bit;
    the metadata does not enter.
    """
    h = hashlib.sha256()
    h.update(f"yieldmc-network-v{_FORMAT_VERSION}|{net.activation}|{net.layer_sizes}".encode())
    for w, b in zip(net.weights, net.biases, strict=True):
        h.update(np.ascontiguousarray(w, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(b, dtype="<f8").tobytes())
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays in metadata become plain JSON values."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def save_network(net: Network, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``net`` to an ``.npz`` atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        Destination; written exactly there (no suffix is added).
    metadata : mapping, optional
        Merged over ``net.metadata`` (JSON-serialisable).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    meta = {**net.metadata, **dict(metadata or {})}
    try:
        meta_json = json.dumps(meta, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"network metadata is not JSON-serialisable: {exc}") from None
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(_FORMAT_VERSION),
        "n_layers": np.array(len(net.weights)),
        "layer_sizes": np.array(net.layer_sizes, dtype=np.int64),
        "activation": np.array(net.activation),
        "metadata": np.array(meta_json),
        "fingerprint": np.array(network_fingerprint(net)),
    }
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_network(path: str | os.PathLike) -> Network:
    """Read a network written by :func:`save_network`, checking everything.

    Raises
    ------
    ConfigError
        Missing or unreadable file, missing keys, inconsistent layer sizes, non-finite
        values, bad metadata, or weights that do not match the stored fingerprint.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such network file")
    try:
        # Open the file ourselves: np.load leaks its handle when the archive is corrupt.
        with open(path, "rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            if not hasattr(npz, "files"):
                raise ConfigError(f"{path}: not a network .npz archive")
            data = {k: npz[k] for k in npz.files}
    except ConfigError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, ValueError, OSError, EOFError, ...
        raise ConfigError(f"{path}: cannot read network file ({type(exc).__name__}: {exc})") from None

    def fail(why: str) -> ConfigError:
        return ConfigError(f"{path}: {why}")

    missing = [k for k in ("n_layers", "layer_sizes", "activation", "metadata") if k not in data]
    if missing:
        raise fail(f"missing keys {', '.join(missing)}")
    if data["n_layers"].shape != () or data["n_layers"].dtype.kind not in "ui":
        raise fail("n_layers must be an integer scalar")
    n_layers = int(data["n_layers"])
    missing = [k for i in range(n_layers) for k in (f"W{i}", f"b{i}") if k not in data]
    if n_layers < 1 or missing:
        raise fail(f"missing layer arrays {', '.join(missing)}" if missing else "no layers")
    if data["activation"].shape != () or data["activation"].dtype.kind != "U":
        raise fail("activation must be a string")
    try:
        meta = json.loads(str(data["metadata"]))
    except (ValueError, TypeError) as exc:
        raise fail(f"metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise fail("metadata must be a JSON object")
    try:
        net = Network(tuple(data[f"W{i}"] for i in range(n_layers)), tuple(data[f"b{i}"] for i in range(n_layers)),
                      activation=str(data["activation"]), metadata=meta)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise fail(f"bad weight arrays ({exc})") from None
    if tuple(int(s) for s in np.ravel(data["layer_sizes"])) != net.layer_sizes:
        raise fail(f"layer_sizes {data['layer_sizes'].tolist()} do not match the weight shapes {list(net.layer_sizes)}")
    if "fingerprint" in data and str(data["fingerprint"]) != network_fingerprint(net):
        raise fail("weights do not match the stored fingerprint (file altered or corrupt)")
    return net
