"""A die's lifetime: faults that grow with time, drift, and correction that keeps up (DESIGN.md section 13).

* :mod:`~yieldmc.lifetime.faults`: Weibull cell lifetimes keyed per (seed, die, cell),
  clustered growth around the test-time defects, optional new patterns;
* :mod:`~yieldmc.lifetime.circuit`: the drifted circuit at a checkpoint, exact transfer
  matrices by the rank-k update of one inverse per checkpoint, the batched forward pass;
* :mod:`~yieldmc.lifetime.policies`: none / once / recal / online / drift, with their
  labelled-image and arithmetic costs;
* :mod:`~yieldmc.lifetime.run`: ``yieldmc lifetime`` on a finished run (Parquet rows per
  die and checkpoint, resume), yield over time; :mod:`~yieldmc.lifetime.survival`: time to
  failure and the Kaplan-Meier curve.

docs/lifetime.md describes the model, its parameters and the policies.
"""

from yieldmc.lifetime.faults import FaultModel, fault_history
from yieldmc.lifetime.policies import POLICIES, PolicySettings
from yieldmc.lifetime.run import LifetimeSettings, checkpoint_times, load_lifetime, run_lifetime, yield_at

__all__ = ["POLICIES", "FaultModel", "LifetimeSettings", "PolicySettings", "checkpoint_times", "fault_history",
           "load_lifetime", "run_lifetime", "yield_at"]
