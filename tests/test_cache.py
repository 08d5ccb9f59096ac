"""The user cache (yieldmc.cache): an explicit ``cache_dir`` everywhere, the environment read
in one place, datasets and networks found again by the hash of their settings.

Every test points ``$YIELDMC_CACHE`` at an empty folder (``default``) and checks that a
call given another ``cache_dir`` writes there and leaves ``default`` empty.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import yieldmc.cache as cache
from yieldmc.cache import (
    dataset_cache_path,
    default_cache_dir,
    network_cache_path,
    obtain_dataset,
    obtain_network,
    training_key,
)
from yieldmc.config import load_config
from yieldmc.data import load_dataset
from yieldmc.errors import ConfigError
from yieldmc.network import (
    DEFAULT_ALPHA,
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    Network,
    NetworkConvergenceWarning,
    load_network,
    network_fingerprint,
    save_network,
    train_network,
)
from yieldmc.presets import MAX_SHIPPED_PARAMS, shipped_network, shipped_network_files, write_shipped_networks


@pytest.fixture
def default(tmp_path, monkeypatch) -> Path:
    """The folder ``$YIELDMC_CACHE`` names during the test (must stay empty)."""
    path = tmp_path / "default"
    path.mkdir()
    monkeypatch.setenv("YIELDMC_CACHE", str(path))
    return path


@pytest.fixture
def explicit(tmp_path) -> Path:
    return tmp_path / "explicit"


def test_default_cache_dir_is_the_environment_or_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("YIELDMC_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    for unset in (lambda: monkeypatch.delenv("YIELDMC_CACHE"), lambda: monkeypatch.setenv("YIELDMC_CACHE", "")):
        unset()
        assert default_cache_dir() == Path.home() / ".cache" / "yieldmc"


def test_paths_follow_the_cache_dir_and_the_settings(default, explicit):
    cfg = load_config("paper")
    assert network_cache_path(cfg).parent == default
    assert network_cache_path(cfg, explicit) == explicit / f"network-{training_key(cfg)}.npz"
    assert dataset_cache_path(cfg, explicit).parent == explicit
    assert dataset_cache_path(cfg, explicit).name.startswith("dataset-digits-")
    # the key is the network settings only: a seed or defect change keeps the weights
    same = cfg.replace(**{"seed": 9, "defects.kind": "ring", "wires.r_row": 3.0})
    assert training_key(same) == training_key(cfg)
    for change in ({"network.train_seed": 1}, {"network.hidden": [8, 8]}, {"network.activation": "hard_sigmoid"}):
        assert training_key(cfg.replace(**change)) != training_key(cfg), change
    assert dataset_cache_path(cfg.replace(**{"network.test_size": 200}), explicit) != dataset_cache_path(cfg, explicit)
    mnist = cfg.replace(**{"network.dataset": "mnist", "network.data_path": str(explicit / "mnist.npz")})
    assert dataset_cache_path(mnist, explicit) is None  # the user's files, read each time


def test_a_network_trained_into_a_cache_dir_lands_there_only(default, explicit, monkeypatch):
    cfg = load_config("paper", overrides={"network.train_seed": 1})  # no network of this key ships
    data = obtain_dataset(cfg, explicit)
    net = obtain_network(cfg, data, cache_dir=explicit)
    assert sorted(p.name.split("-")[0] for p in explicit.iterdir()) == ["dataset", "network"]
    assert network_cache_path(cfg, explicit).is_file()
    assert list(default.iterdir()) == []
    # found again: no training the second time, the same weights
    monkeypatch.setattr(cache, "train_network", lambda *a, **k: pytest.fail("the cached network was not used"))
    again = obtain_network(cfg, data, cache_dir=explicit)
    for w, w2 in zip(net.weights, again.weights, strict=True):
        np.testing.assert_array_equal(w, w2)
    assert list(default.iterdir()) == []


def test_a_die_model_and_a_sweep_use_the_given_cache_dir(default, explicit, tmp_path):
    from yieldmc.die import DieModel
    from yieldmc.montecarlo import run_sample

    cfg = load_config("paper")
    DieModel.build(cfg, cache_dir=explicit)
    assert network_cache_path(cfg, explicit).is_file() and dataset_cache_path(cfg, explicit).is_file()
    other = cfg.replace(**{"network.train_seed": 5})  # a network not trained yet
    summary = run_sample(other, 2, tmp_path / "run", cache_dir=explicit, engine="reference", backend="threads")
    assert summary["dies"] == 2
    assert network_cache_path(other, explicit).is_file()
    assert list(default.iterdir()) == []


def test_a_file_trained_with_other_settings_is_refused(default, explicit):
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    net = obtain_network(cfg, data, cache_dir=explicit)
    other = cfg.replace(**{"network.train_seed": 3})
    path = explicit / "borrowed.npz"
    save_network(net, path, metadata={"training_key": training_key(cfg)})
    with pytest.raises(ConfigError, match="other network settings"):
        obtain_network(other, data, path)
    assert load_network(path).metadata["training_key"] == training_key(cfg)  # left as it was


# ---- the dataset cache (sweep workers start without scikit-learn) ---------------------

def test_cached_digits_are_the_loaded_digits(default, explicit, monkeypatch):
    cfg = load_config("paper", overrides={"network.test_size": 200, "network.train_seed": 3})
    obtain_dataset(cfg, explicit)  # loads and writes the cache
    assert len(list(explicit.glob("dataset-digits-*.npz"))) == 1
    monkeypatch.setattr(cache, "load_dataset", lambda *a, **k: pytest.fail("cache not used"))
    cached = obtain_dataset(cfg, explicit)
    fresh = load_dataset("digits", test_size=200, seed=3)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(cached, name), getattr(fresh, name))
        assert getattr(cached, name).dtype == getattr(fresh, name).dtype
    assert (cached.image_shape, cached.name, cached.n_classes) == (fresh.image_shape, fresh.name, fresh.n_classes)
    # other split settings are another file, never the cached one
    monkeypatch.setattr(cache, "load_dataset", load_dataset)
    other = obtain_dataset(cfg.replace(**{"network.train_seed": 4}), explicit)
    assert not np.array_equal(other.y_test, cached.y_test)
    assert len(list(explicit.glob("dataset-digits-*.npz"))) == 2
    assert list(default.iterdir()) == []


def test_without_a_cache_dir_the_environment_decides(default):
    obtain_dataset(load_config("paper"))
    assert len(list(default.glob("dataset-digits-*.npz"))) == 1


def test_a_corrupt_dataset_cache_is_rebuilt(default, explicit):
    cfg = load_config("paper")
    good = obtain_dataset(cfg, explicit)
    (path,) = explicit.glob("dataset-digits-*.npz")
    path.write_bytes(b"not an npz")
    again = obtain_dataset(cfg, explicit)
    assert np.array_equal(again.x_test, good.x_test)
    assert np.load(path)["x_test"].shape == good.x_test.shape


def test_an_unwritable_dataset_cache_costs_only_time(default, explicit, monkeypatch):
    explicit.mkdir()
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    data = obtain_dataset(load_config("paper"), explicit)
    assert data.x_test.shape == (180, 64) and list(explicit.iterdir()) == []


# ---- the shipped networks (yieldmc/presets/*.network.npz) ------------------------------

SHIPPED = "paper.network.npz"


@pytest.fixture(scope="module")
def paper_shipped() -> Network:
    net = shipped_network(training_key(load_config("paper")))
    assert net is not None, "the paper preset's network does not ship"
    return net


def _fp(net: Network) -> str:
    return network_fingerprint(net)


def test_the_paper_network_ships_and_matches_its_fingerprint(paper_shipped):
    assert shipped_network_files() == [SHIPPED]
    with resources.as_file(resources.files("yieldmc.presets").joinpath(SHIPPED)) as path:
        net = load_network(path)  # checks the fingerprint stored beside the weights
    meta = net.metadata
    assert meta["fingerprint"] == _fp(net) == _fp(paper_shipped)
    cfg = load_config("paper")
    # fails when paper.toml's [network] section changed without regenerating the file
    assert meta["training_key"] == training_key(cfg) and meta["network"] == cfg.to_dict()["network"]
    assert meta["preset"] == "paper" and net.layer_sizes == (64, 8, 8, 8, 10) and net.n_params <= MAX_SHIPPED_PARAMS
    # trained to convergence with today's defaults, so retraining can reproduce it
    assert meta["converged"] is True and meta["n_iter"] < meta["max_iter"] == DEFAULT_MAX_ITER
    assert (meta["alpha"], meta["tol"], meta["solver"], meta["n_restarts"]) == (DEFAULT_ALPHA, DEFAULT_TOL, "lbfgs", 1)
    assert (meta["hidden"], meta["activation"], meta["seed"]) == ([8, 8, 8], "logistic", 0)


def test_only_small_networks_ship(tmp_path):
    large = load_config("large")
    assert shipped_network(training_key(large)) is None
    with pytest.raises(ConfigError, match=r"784-256-10 network has 203530 parameters"):
        write_shipped_networks(["large"], tmp_path)  # refused before training it
    assert list(tmp_path.iterdir()) == []


def test_obtain_network_uses_the_shipped_network_without_training(default, explicit, tmp_path, monkeypatch,
                                                                  paper_shipped):
    monkeypatch.setattr(cache, "train_network", lambda *a, **k: pytest.fail("trained although the network ships"))
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    assert _fp(obtain_network(cfg, data, cache_dir=explicit)) == _fp(paper_shipped)
    # copied into the cache, where a sweep copies its run's network.npz from
    assert _fp(load_network(network_cache_path(cfg, explicit))) == _fp(paper_shipped)
    # found by the training key, not the preset's name: any config with paper's [network]
    other = cfg.replace(**{"name": "realistic", "seed": 4, "defects.kind": "ring", "wires.r_row": 2.0})
    assert _fp(obtain_network(other, data, cache_dir=tmp_path / "other")) == _fp(paper_shipped)
    # a sweep names the cache file itself
    path = network_cache_path(cfg, tmp_path / "third")
    assert _fp(obtain_network(cfg, data, path, cache_dir=tmp_path / "third")) == _fp(paper_shipped)
    assert list(default.iterdir()) == []


def test_a_stale_cached_paper_network_gives_way_to_the_shipped_one(default, explicit, monkeypatch, paper_shipped):
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    with pytest.warns(NetworkConvergenceWarning):
        old = train_network(data, max_iter=300)  # what yieldmc cached before: unconverged
    path = network_cache_path(cfg, explicit)
    save_network(old, path, metadata={"training_key": training_key(cfg)})
    monkeypatch.setattr(cache, "train_network", lambda *a, **k: pytest.fail("trained although the network ships"))
    assert _fp(obtain_network(cfg, data, cache_dir=explicit)) == _fp(paper_shipped) != _fp(old)
    assert _fp(load_network(path)) == _fp(paper_shipped)


def test_a_runs_own_network_wins_over_the_shipped_one(default, explicit, tmp_path, paper_shipped):
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    own = Network(tuple(1.01 * w for w in paper_shipped.weights), paper_shipped.biases,
                  metadata={"training_key": training_key(cfg)})
    path = save_network(own, tmp_path / "network.npz")
    assert _fp(obtain_network(cfg, data, path, cache_dir=explicit)) == _fp(own)
    fresh = tmp_path / "new-run" / "network.npz"  # a new run's file: the shipped weights
    assert _fp(obtain_network(cfg, data, fresh, cache_dir=explicit)) == _fp(paper_shipped)
    assert _fp(load_network(fresh)) == _fp(paper_shipped)


def test_an_unconverged_cache_file_of_an_older_budget_is_retrained(default, explicit):
    cfg = load_config("paper", overrides={"network.train_seed": 2})  # no network of this key ships
    data = obtain_dataset(cfg, explicit)
    with pytest.warns(NetworkConvergenceWarning):
        old = train_network(data, seed=2, max_iter=300)
    path = network_cache_path(cfg, explicit)
    save_network(old, path, metadata={"training_key": training_key(cfg)})
    net = obtain_network(cfg, data, cache_dir=explicit)
    assert net.metadata["converged"] is True and _fp(net) != _fp(old)
    assert _fp(load_network(path)) == _fp(net)


def _damage(src: Path, dst: Path, how: str) -> None:
    if how == "truncated":
        raw = src.read_bytes()
        dst.write_bytes(raw[: len(raw) // 2])
        return
    with np.load(src) as npz:
        data = dict(npz)
    data["W1"] = data["W1"].copy()
    data["W1"][0, 0] = np.nextafter(data["W1"][0, 0], np.inf)  # one ulp of one weight
    if how == "no-fingerprint-array":  # only the metadata's fingerprint is left to catch it
        del data["fingerprint"]
    elif how == "no-key":
        with np.load(src) as npz:
            data = dict(npz)
        data["metadata"] = np.array(str(data["metadata"]).replace('"training_key"', '"key"'))
    np.savez(dst, **data)


@pytest.mark.parametrize("how", ["truncated", "weight-changed", "no-fingerprint-array", "no-key"])
def test_a_damaged_shipped_file_is_a_clear_error(default, explicit, tmp_path, monkeypatch, how):
    folder = tmp_path / "shipped"
    folder.mkdir()
    with resources.as_file(resources.files("yieldmc.presets").joinpath(SHIPPED)) as src:
        _damage(src, folder / SHIPPED, how)
    cfg = load_config("paper")
    with pytest.raises(ConfigError, match=r"shipped network .*paper.network.npz.*reinstall yieldmc") as info:
        shipped_network(training_key(cfg), folder)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(cache, "shipped_network", lambda key: shipped_network(key, folder))
    monkeypatch.setattr(cache, "train_network", lambda *a, **k: pytest.fail("trained past a damaged file"))
    with pytest.raises(ConfigError, match="shipped network"):
        obtain_network(cfg, obtain_dataset(cfg, explicit), cache_dir=explicit)


def test_retraining_with_the_shipped_settings_reproduces_the_shipped_network(default, explicit, paper_shipped):
    """Another CPU may round differently, but a converged fit predicts the same: the shipped
    test accuracy is reproduced to within one of the 180 test images (here: exactly)."""
    meta = paper_shipped.metadata
    cfg = load_config("paper")
    data = obtain_dataset(cfg, explicit)
    net = train_network(data, hidden=meta["hidden"], activation=meta["activation"], seed=meta["seed"],
                        max_iter=meta["max_iter"], alpha=meta["alpha"], solver=meta["solver"],
                        n_restarts=meta["n_restarts"])
    assert net.metadata["converged"] is True
    one_image = 1 / len(data.y_test)
    assert abs(net.metadata["test_accuracy"] - meta["test_accuracy"]) <= one_image
    assert paper_shipped.accuracy(data.x_test, data.y_test) == meta["test_accuracy"]
    assert net.metadata["train_accuracy"] == meta["train_accuracy"]
    assert np.mean(net.predict(data.x_test) == paper_shipped.predict(data.x_test)) >= 1 - one_image


def test_write_shipped_networks_reproduces_the_file(tmp_path, paper_shipped):
    (path,) = write_shipped_networks(folder=tmp_path)
    assert path == tmp_path / SHIPPED
    written = load_network(path)
    assert written.metadata["training_key"] == paper_shipped.metadata["training_key"]
    assert written.metadata["test_accuracy"] == paper_shipped.metadata["test_accuracy"]
    assert shipped_network(written.metadata["training_key"], tmp_path) is not None
