"""The software MLP: forward pass, training, caching, fingerprints."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tests.reference.network import forward_loops
from tests.tolerances import NETWORK_ATOL, NETWORK_RTOL, SOFTMAX_RTOL
from yieldmc.data import load_digits_split
from yieldmc.errors import ConfigError
from yieldmc.network import (
    ACTIVATIONS,
    DEFAULT_MAX_ITER,
    Network,
    NetworkConvergenceWarning,
    from_sklearn,
    load_network,
    network_fingerprint,
    save_network,
    train_network,
)

MIN_SOFTWARE_ACCURACY = 0.90  # the analog die loses a little; the software net must clear this


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def net(digits) -> Network:
    return train_network(digits)


def _random_net(seed: int = 0, sizes=(5, 4, 3), activation: str = "logistic") -> Network:
    rng = np.random.default_rng(seed)
    ws = tuple(rng.normal(size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    bs = tuple(rng.normal(size=b) for b in sizes[1:])
    return Network(ws, bs, activation=activation, metadata={"note": "random"})


# ---- the default network ------------------------------------------------------------

def test_default_architecture(net):
    assert net.layer_sizes == (64, 8, 8, 8, 10)
    assert net.activation == "logistic"
    assert net.n_params == 64 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 10 + 10
    assert all(w.dtype == np.float64 for w in net.weights)


def test_default_accuracy(net, digits):
    acc = net.accuracy(digits.x_test, digits.y_test)
    assert acc >= MIN_SOFTWARE_ACCURACY
    assert net.metadata["test_accuracy"] == acc


def test_default_training_converges(net):
    """The default budget takes the paper network to scikit-learn's tol (677 L-BFGS
    iterations when measured): weights at the optimum, not wherever the budget ran out."""
    meta = net.metadata
    assert meta["converged"] is True
    assert meta["max_iter"] == DEFAULT_MAX_ITER and meta["n_iter"] < DEFAULT_MAX_ITER
    assert meta["train_accuracy"] == 1.0  # 754 parameters, 1617 images: the optimum fits them all


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_unconverged_training_warns(digits, solver):
    with pytest.warns(NetworkConvergenceWarning, match=r"64-8-8-8-10.*20 .*without converging.*max_iter"):
        net = train_network(digits, solver=solver, max_iter=20)
    assert net.metadata["converged"] is False and net.metadata["n_iter"] == 20


def test_training_is_deterministic(digits, net):
    again = train_network(digits)
    for a, b in zip(net.weights + net.biases, again.weights + again.biases, strict=True):
        assert_array_equal(a, b)
    assert network_fingerprint(again) == network_fingerprint(net)
    with pytest.warns(NetworkConvergenceWarning):
        other = train_network(digits, seed=1, max_iter=20)
    assert network_fingerprint(other) != network_fingerprint(net)


def test_restarts_pick_by_validation(digits):
    with pytest.warns(NetworkConvergenceWarning):
        net = train_network(digits, seed=2, n_restarts=2, max_iter=50)
    meta = net.metadata
    assert meta["n_restarts"] == 2 and meta["val_accuracy"] is not None
    assert meta["n_train"] < len(digits.y_train)  # the validation split was held out
    assert meta["random_state"] != 2  # seeds are spawned from the root seed


def test_hard_sigmoid_network(digits):
    net = train_network(digits, activation="hard_sigmoid")
    assert net.activation == "hard_sigmoid" and net.metadata["trained_activation"] == "logistic"
    assert net.accuracy(digits.x_test, digits.y_test) >= MIN_SOFTWARE_ACCURACY
    _, hidden = net.forward(digits.x_test, return_hidden=True)
    assert all(h.min() >= 0.0 and h.max() <= 1.0 for h in hidden)


# ---- forward against scikit-learn ---------------------------------------------------

def test_forward_matches_sklearn(digits):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(8, 6), activation="logistic", max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(digits.x_train, digits.y_train)
    net = from_sklearn(clf)
    logits = net.forward(digits.x_test)
    assert logits.shape == (180, 10)
    assert_array_equal(net.predict(digits.x_test), clf.predict(digits.x_test))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert_allclose(e / e.sum(axis=1, keepdims=True), clf.predict_proba(digits.x_test), rtol=SOFTMAX_RTOL,
                    atol=NETWORK_ATOL)
    assert net.accuracy(digits.x_test, digits.y_test) == pytest.approx(clf.score(digits.x_test, digits.y_test))


def test_forward_plain_loops():
    """The forward pass equals a slow, obvious per-neuron loop (tests/reference/network.py)."""
    net = _random_net(3, sizes=(4, 3, 2, 3))
    x = np.random.default_rng(4).random((5, 4))
    logits, hidden = net.forward(x, return_hidden=True)
    for n in range(len(x)):
        layers = forward_loops(net.weights, net.biases, x[n])
        assert len(layers) == len(net.weights)
        for layer, h in enumerate(layers):
            target = logits[n] if layer == len(layers) - 1 else hidden[layer][n]
            assert_allclose(target, h, rtol=NETWORK_RTOL, atol=NETWORK_ATOL)


def test_forward_single_vector_and_bad_shape():
    net = _random_net()
    x = np.random.default_rng(0).random((3, 5))
    assert_allclose(net.forward(x[1]), net.forward(x)[1], rtol=NETWORK_RTOL, atol=NETWORK_ATOL)
    with pytest.raises(ConfigError, match=r"\(B, 5\)"):
        net.forward(np.zeros((2, 4)))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_hidden_activations_in_unit_interval(activation):
    net = _random_net(1, sizes=(6, 7, 7, 4), activation=activation)
    x = np.random.default_rng(2).normal(scale=100.0, size=(50, 6))  # drives saturation
    _, hidden = net.forward(x, return_hidden=True)
    assert len(hidden) == 2 and hidden[0].shape == (50, 7)
    for h in hidden:
        assert h.min() >= 0.0 and h.max() <= 1.0
    assert ACTIVATIONS[activation](np.array(0.0)) == 0.5


def test_hard_sigmoid_values():
    f = ACTIVATIONS["hard_sigmoid"]
    assert_allclose(f(np.array([-3.0, -2.0, 0.0, 1.0, 2.0, 5.0])), [0.0, 0.0, 0.5, 0.75, 1.0, 1.0])


# ---- validation ---------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [(), [0], (8, 0), (-1,), (2.5,), (True,), None])
def test_bad_hidden_sizes(digits, hidden):
    with pytest.raises(ConfigError, match="hidden"):
        train_network(digits, hidden=hidden)


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "relu"}, "activation"),
    ({"solver": "newton"}, "solver"),
    ({"seed": -1}, "seed"),
    ({"max_iter": 0}, "max_iter"),
    ({"alpha": -1.0}, "alpha"),
    ({"n_restarts": 2, "val_fraction": 1.5}, "val_fraction"),
])
def test_bad_training_settings(digits, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        train_network(digits, **kwargs)


def test_network_validation():
    w = np.ones((3, 2))
    with pytest.raises(ConfigError, match="layer 1.*inputs"):
        Network((w, np.ones((3, 1))), (np.ones(2), np.ones(1)))
    with pytest.raises(ConfigError, match="bias"):
        Network((w,), (np.ones(3),))
    with pytest.raises(ConfigError, match="finite"):
        Network((w * np.nan,), (np.ones(2),))
    with pytest.raises(ConfigError, match="activation"):
        Network((w,), (np.ones(2),), activation="tanh")
    with pytest.raises(ConfigError, match="at least one layer"):
        Network((), ())


def test_network_is_immutable():
    net = _random_net()
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 1.0


# ---- caching ------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path, net):
    path = save_network(net, tmp_path / "net.npz", metadata={"training_key": "abc"})
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]  # no temporary file left
    back = load_network(path)
    assert back.layer_sizes == net.layer_sizes and back.activation == net.activation
    for a, b in zip(net.weights + net.biases, back.weights + back.biases, strict=True):
        assert_array_equal(a, b)
    assert network_fingerprint(back) == network_fingerprint(net)
    assert back.metadata["training_key"] == "abc"
    assert back.metadata["seed"] == net.metadata["seed"] == 0
    assert "training_key" not in net.metadata  # saving does not alter the network


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "n.npz"
    save_network(_random_net(0), path)
    save_network(_random_net(1), path)
    assert network_fingerprint(load_network(path)) == network_fingerprint(_random_net(1))
    assert len(list(tmp_path.iterdir())) == 1


def test_fingerprint_sensitivity():
    a = _random_net(0)
    w = [x.copy() for x in a.weights]
    w[1][0, 0] = np.nextafter(w[1][0, 0], np.inf)
    assert network_fingerprint(Network(tuple(w), a.biases)) != network_fingerprint(a)
    assert network_fingerprint(Network(a.weights, a.biases, "hard_sigmoid")) != network_fingerprint(a)
    assert network_fingerprint(Network(a.weights, a.biases, metadata={})) == network_fingerprint(a)
    assert len(network_fingerprint(a)) == 64


def test_load_random_bytes(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ConfigError, match="junk.npz") as info:
        load_network(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_load_truncated(tmp_path, keep):
    path = save_network(_random_net(), tmp_path / "n.npz")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ConfigError, match="n.npz"):
        load_network(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such"):
        load_network(tmp_path / "absent.npz")


def _write_raw(path, **arrays):
    base = {"n_layers": np.array(2), "layer_sizes": np.array([5, 4, 3]),
            "activation": np.array("logistic"), "metadata": np.array("{}"),
            "W0": np.ones((5, 4)), "b0": np.ones(4), "W1": np.ones((4, 3)), "b1": np.ones(3)}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize("change, match", [
    ({"W1": np.ones((3, 3))}, "layer 1.*inputs"),
    ({"b0": np.ones(5)}, "bias"),
    ({"layer_sizes": np.array([5, 4, 2])}, "layer_sizes"),
    ({"W0": np.full((5, 4), np.inf)}, "finite"),
    ({"b1": None}, "missing layer arrays b1"),
    ({"activation": None}, "missing keys activation"),
    ({"activation": np.array("softsign")}, "activation"),
    ({"metadata": np.array("{not json")}, "metadata"),
    ({"n_layers": np.array(0)}, "no layers"),
])
def test_load_rejects_bad_contents(tmp_path, change, match):
    path = _write_raw(tmp_path / "bad.npz", **change)
    with pytest.raises(ConfigError, match=match):
        load_network(path)


def test_load_minimal_file_without_fingerprint(tmp_path):
    net = load_network(_write_raw(tmp_path / "ok.npz"))
    assert net.layer_sizes == (5, 4, 3)


def test_load_detects_fingerprint_mismatch(tmp_path):
    path = save_network(_random_net(), tmp_path / "n.npz")
    with np.load(path) as npz:
        data = dict(npz)
    data["W0"] = data["W0"] + 1.0
    np.savez(path, **data)
    with pytest.raises(ConfigError, match="fingerprint"):
        load_network(path)


def test_save_rejects_unserialisable_metadata(tmp_path):
    with pytest.raises(ConfigError, match="JSON"):
        save_network(_random_net(), tmp_path / "n.npz", metadata={"x": object()})
    assert list(tmp_path.iterdir()) == []
