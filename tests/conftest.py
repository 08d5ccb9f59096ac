"""Shared fixtures and the policy for tests that need ngspice.

In CI (environment variable ``CI`` set) a missing ngspice is a failure, never a skip:
the tests run and :func:`yieldmc.spice.run_ngspice` raises. On a developer machine
without ngspice those tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    if shutil.which("ngspice") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="ngspice is not installed (apt-get install -y ngspice)")
    for item in items:
        if "ngspice" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def network_cache(tmp_path_factory):
    """One trained-network cache folder for the whole session (sweep and CLI tests)."""
    path = tmp_path_factory.getbasetemp() / "yieldmc-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def pytest_configure(config):
    """Trained networks go to a per-session cache, never to the user's ~/.cache."""
    if not os.environ.get("YIELDMC_CACHE"):
        import tempfile

        os.environ["YIELDMC_CACHE"] = tempfile.mkdtemp(prefix="yieldmc-test-cache-")
