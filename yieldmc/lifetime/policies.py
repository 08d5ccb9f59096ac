"""Correction policies over a die's lifetime, compared on the same dies and checkpoints.

Every corrected policy uses the random-feature ridge corrector of
:class:`~yieldmc.correctors.batched.BatchedRidgeCorrector` (one per die), so they differ only
in *when* and *on what* it learns:

* ``none``: the raw argmax of the output voltages;
* ``once``: calibrated at ``t_0`` on ``budget`` labelled images, never again;
* ``recal``: re-calibrated from scratch at every checkpoint on the same ``budget`` images,
  re-measured;
* ``online``: the ``t_0`` calibration, then incremental ridge with forgetting factor
  ``forgetting`` (:class:`~yieldmc.correctors.online.OnlineRidge`) fed ``stream`` new labelled
  images at each checkpoint (the images seen since the previous one);
* ``drift``: the ``t_0`` calibration, re-done on ``budget`` images only when an unsupervised
  check fires: the mean output voltages of the calibration inputs (read without labels) moved,
  in root mean square over the outputs, by more than ``drift_threshold`` of their spread at
  the last calibration.

Costs per die are counted, cumulatively: labelled images, and floating-point operations of
the training arithmetic (features, Gram matrices, solves; multiply-adds count 2) --
what a chip or its tester would have to do. Inference costs the same for every corrected
policy and is left out.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np

from yieldmc.correctors.batched import DEFAULT_N_FEATURES, DEFAULT_RIDGE_ALPHA, BatchedRidgeCorrector
from yieldmc.correctors.online import OnlineRidge, online_flops
from yieldmc.errors import ConfigError

POLICIES = ("none", "once", "recal", "online", "drift")
#: Policies that need labelled images (the others: none).
LABELLED = ("once", "recal", "online", "drift")
#: Floor of an output's spread in the drift check, as a share of the largest output spread
#: (a stuck output has none; its mean may still move).
SPREAD_FLOOR = 0.05


@dataclass(frozen=True)
class PolicySettings:
    """The policies' settings (see the module text).

    Parameters
    ----------
    policies : tuple of str
        Among :data:`POLICIES`, in the order given.
    budget : int
        Labelled images of a calibration (``t_0``, ``recal``, a triggered ``drift``).
    stream : int
        Labelled images ``online`` learns from at each later checkpoint.
    forgetting : float
        ``online``'s forgetting factor per checkpoint, in (0, 1].
    drift_threshold : float
        ``drift``'s trigger (> 0), in units of the calibration's output spread.
    n_features, alpha : int, float
        The corrector's random features and ridge penalty.
    seed : int
        The corrector's projection and the image order.
    """

    policies: tuple[str, ...] = ("none", "once", "recal", "online")
    budget: int = 200
    stream: int = 50
    forgetting: float = 0.7
    drift_threshold: float = 0.1
    n_features: int = DEFAULT_N_FEATURES
    alpha: float = DEFAULT_RIDGE_ALPHA
    seed: int = 0

    def __post_init__(self) -> None:
        pol = tuple(self.policies)
        object.__setattr__(self, "policies", pol)
        if not pol:
            raise ConfigError(f"--policies: give at least one of {', '.join(POLICIES)}")
        bad = [p for p in pol if p not in POLICIES]
        if bad:
            raise ConfigError(f"unknown policy {bad[0]!r}; the policies are {', '.join(POLICIES)}")
        if not pol or len(set(pol)) != len(pol):
            raise ConfigError(f"policies must be distinct names among {', '.join(POLICIES)}, got {', '.join(pol)}")
        for name in ("budget", "stream", "n_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.forgetting, (int, float)) and 0 < self.forgetting <= 1):
            raise ConfigError(f"--forgetting must lie in (0, 1], got {self.forgetting!r}")
        for name in ("drift_threshold", "alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["policies"] = list(self.policies)
        return d

    @property
    def labelled(self) -> bool:
        """Whether any policy needs labelled images."""
        return any(p in LABELLED for p in self.policies)


def fit_flops(n_images: int, n_inputs: int, width: int, n_targets: int) -> float:
    """Floating-point operations of one ridge calibration of one die (a multiply-add counts
    2): features (``2 n f F + 4 n F``: projection, phase and cosine), then the dual (``n < F``:
    ``2 n^2 F`` Gram, LU ``(2/3) n^3``) or primal (``2 n F^2`` Gram, LU ``(2/3) F^3``) normal
    equations and the weights."""
    n, f, F, t = n_images, n_inputs, width, n_targets
    features = 2 * n * f * F + 4 * n * F
    if n < F:
        return features + 2 * n * n * F + (2 / 3) * n**3 + 2 * n * n * t + 2 * n * F * t
    return features + 2 * n * F * F + (2 / 3) * F**3 + 2 * F * F * t + 2 * n * F * t


def _stats(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return V.mean(axis=1), V.std(axis=1)


def drift_scores(V: np.ndarray, mean_ref: np.ndarray, spread_ref: np.ndarray) -> np.ndarray:
    """RMS over the outputs of the mean shift of voltages ``V`` (D, n, f) from the
    reference means, each in units of its reference spread (floored, :data:`SPREAD_FLOOR`)."""
    floor = SPREAD_FLOOR * spread_ref.max(axis=1, keepdims=True)
    scale = np.maximum(spread_ref, np.maximum(floor, 1e-12))
    return np.sqrt((((V.mean(axis=1) - mean_ref) / scale) ** 2).mean(axis=1))


class PolicyRun:
    """The policies' state for a block of dies, stepped checkpoint by checkpoint.

    Parameters
    ----------
    settings : PolicySettings
    y_test, y_cal : numpy.ndarray
        Labels of the test images and of the calibration images.
    """

    def __init__(self, settings: PolicySettings, y_test: np.ndarray, y_cal: np.ndarray) -> None:
        self.s = settings
        self.y_test = np.asarray(y_test)
        self.y_cal = np.asarray(y_cal)
        self.models: dict[str, object] = {}
        self.labels: dict[str, np.ndarray] = {}
        self.flops: dict[str, np.ndarray] = {}

    def _corrector(self) -> BatchedRidgeCorrector:
        return BatchedRidgeCorrector(n_features=self.s.n_features, alpha=self.s.alpha, random_state=self.s.seed)

    def _targets(self) -> int:
        k = np.unique(self.y_cal).size
        return 1 if k == 2 else k

    def _fit_cost(self, V: np.ndarray) -> float:
        return fit_flops(V.shape[1], V.shape[2], self.s.n_features, self._targets())

    def _online_cost(self, V: np.ndarray) -> float:
        return online_flops(V.shape[1], V.shape[2], self.s.n_features, self._targets())

    def step(self, c: int, v_test: np.ndarray, v_cal: np.ndarray, v_stream: np.ndarray | None = None,
             y_stream: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Advance to checkpoint ``c`` (0 first) with the dies' voltages there.

        Parameters
        ----------
        v_test : numpy.ndarray, shape (D, n_test, f)
        v_cal : numpy.ndarray, shape (D, budget, f)
            The calibration images' voltages (read without labels by the drift check).
        v_stream, y_stream : numpy.ndarray, optional
            The stream's voltages (D, stream, f) and labels (``online``, ``c >= 1``).

        Returns
        -------
        dict
            ``accuracy_<p>``, ``labels_<p>``, ``flops_<p>`` per policy (arrays of D; labels
            and flops cumulative), and with ``drift`` also ``drift_score`` and
            ``drift_recalibrated``.
        """
        n = v_test.shape[0]
        out: dict[str, np.ndarray] = {}
        fit_cost = self._fit_cost(v_cal)
        budget = v_cal.shape[1]
        if c == 0:  # one calibration at t0, shared by every corrected policy (the same fit)
            self._t0 = self._corrector().fit(v_cal, self.y_cal) if self.s.labelled else None
        t0_pred = None  # the t0 corrector's predictions, made once per checkpoint for the policies sharing it
        for p in self.s.policies:
            if c == 0:
                self.labels[p] = np.zeros(n, dtype=np.int64)
                self.flops[p] = np.zeros(n)
                if p in LABELLED:
                    self.labels[p] += budget
                    self.flops[p] += fit_cost
            if p == "none":
                pred = v_test.argmax(axis=2)
            elif p == "once" or (p == "recal" and c == 0):
                self.models[p] = self._t0
                t0_pred = self._t0.predict(v_test) if t0_pred is None else t0_pred
                pred = t0_pred
            elif p == "recal":
                self.models[p] = self._corrector().fit(v_cal, self.y_cal)
                self.labels[p] += budget
                self.flops[p] += fit_cost
                pred = self.models[p].predict(v_test)
            elif p == "online":
                if c == 0:
                    self.models[p] = OnlineRidge(self._t0, v_cal, self.y_cal, self.s.forgetting)
                    self.flops[p] += self._online_cost(v_cal) - fit_cost  # its own state, not the batch fit
                else:
                    if v_stream is None or y_stream is None:
                        raise ConfigError("the online policy needs the stream's voltages and labels")
                    model = self.models[p]
                    model.update(v_stream, y_stream)
                    self.labels[p] += v_stream.shape[1]
                    self.flops[p] += self._online_cost(v_stream)
                pred = self.models[p].predict(v_test)
            else:  # drift
                pred, score, fired = self._drift(c, v_test, v_cal, fit_cost)
                out["drift_score"], out["drift_recalibrated"] = score, fired
            out[f"accuracy_{p}"] = (pred == self.y_test[None, :]).mean(axis=1)
            out[f"labels_{p}"] = self.labels[p].copy()
            out[f"flops_{p}"] = self.flops[p].copy()
        return out

    def _drift(self, c: int, v_test: np.ndarray, v_cal: np.ndarray, fit_cost: float):
        n, budget = v_cal.shape[0], v_cal.shape[1]
        check_cost = 2.0 * budget * v_cal.shape[2]
        if c == 0:
            self.models["drift"] = copy.deepcopy(self._t0)  # its arrays are refitted in place
            self._ref = _stats(v_cal)
            score, fired = np.zeros(n), np.ones(n, dtype=bool)
        else:
            score = drift_scores(v_cal, *self._ref)
            fired = score > self.s.drift_threshold
            self.flops["drift"] += check_cost
            if fired.any():
                idx = np.flatnonzero(fired)
                sub = self._corrector().fit(v_cal[idx], self.y_cal)
                full = self.models["drift"]
                for name in ("mean_", "scale_", "coef_", "intercept_"):
                    getattr(full, name)[idx] = getattr(sub, name)
                mean, spread = _stats(v_cal[idx])
                self._ref[0][idx], self._ref[1][idx] = mean, spread
                self.labels["drift"][idx] += budget
                self.flops["drift"][idx] += fit_cost
        return self.models["drift"].predict(v_test), score, fired


__all__ = ["LABELLED", "POLICIES", "SPREAD_FLOOR", "PolicyRun", "PolicySettings", "drift_scores", "fit_flops"]
