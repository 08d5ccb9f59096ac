"""Corrector models: small classifiers trained on a die's output voltages to recover its class.

This package holds the models; correcting the dies of a finished run is
:mod:`yieldmc.correction`. Three modules, imported in this order (none imports a later one):

* :mod:`~yieldmc.correctors.batched`: one ridge corrector per die for a stack of dies
  (:class:`BatchedRidgeCorrector`), the random Fourier features and standardization it shares
  with the single-die ridge model;
* :mod:`~yieldmc.correctors.single`: scikit-learn estimators for one die
  (:class:`MLPCorrector`, :class:`LinearCorrector`, :class:`RidgeCorrector`) and
  :func:`n_parameters`;
* :mod:`~yieldmc.correctors.many`: correctors by method name (:data:`METHODS`):
  :func:`fit_predict_many` for a stack of dies, :func:`method_parameters` for their size.
"""

from yieldmc.correctors.batched import (
    DEFAULT_N_FEATURES,
    DEFAULT_RIDGE_ALPHA,
    BatchedRidgeCorrector,
    rff_features,
    rff_projection,
)
from yieldmc.correctors.many import METHODS, fit_predict_many, method_parameters
from yieldmc.correctors.single import (
    DEFAULT_HIDDEN,
    DEFAULT_MLP_ALPHA,
    LinearCorrector,
    MLPCorrector,
    RidgeCorrector,
    n_parameters,
)

__all__ = [
    "DEFAULT_HIDDEN",
    "DEFAULT_MLP_ALPHA",
    "DEFAULT_N_FEATURES",
    "DEFAULT_RIDGE_ALPHA",
    "METHODS",
    "BatchedRidgeCorrector",
    "LinearCorrector",
    "MLPCorrector",
    "RidgeCorrector",
    "fit_predict_many",
    "method_parameters",
    "n_parameters",
    "rff_features",
    "rff_projection",
]
