"""Transfer protocols of correctors (yieldmc.protocols) on synthetic circuits.

A synthetic circuit's voltages are ``(2 onehot(y) + noise) @ M``: ``M`` is its kind's
distortion (a class permutation mixed into the identity) plus, for a drawn die, a small
die-specific part. A linear corrector undoes ``M``, so what transfers is known: kinds that
share ``M`` transfer fully, kinds with independent ``M`` do not, and a family of one kind's
dies corrects its unseen dies.
"""

from __future__ import annotations

import functools
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeClassifier

from tests.tolerances import ARITHMETIC_RTOL
from yieldmc import protocols as P
from yieldmc.correctors import MLPCorrector
from yieldmc.errors import ConfigError

KINDS = ("circular", "ring", "row")
N_TRAIN, N_TEST, N_CLASSES = 300, 200, 10
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeDies:
    """Synthetic circuits; every array it hands out is kept in ``made`` (bytes -> circuit)."""

    def __init__(self, shared: bool = False, die_spread: float = 0.1, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.y = (rng.integers(0, N_CLASSES, N_TRAIN), rng.integers(0, N_CLASSES, N_TEST))
        eye = np.eye(N_CLASSES)
        self.M = {k: 0.2 * eye + eye[rng.permutation(N_CLASSES)] for k in KINDS}
        if shared:
            self.M = dict.fromkeys(KINDS, self.M[KINDS[0]])
        self.die_spread, self.seed = die_spread, seed
        self.made: dict[bytes, tuple] = {}
        self.family_calls: list[tuple] = []

    def _volts(self, M: np.ndarray, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
        out = tuple((2.0 * np.eye(N_CLASSES)[y] + 0.6 * rng.normal(size=(len(y), N_CLASSES))) @ M for y in self.y)
        for v in out:
            self.made[v.tobytes()] = key
        return out

    def canonical(self, kind, severity, on_mode, layers):
        return self._volts(self.M[kind], ("canonical", kind, severity, on_mode, tuple(layers)))

    def family(self, kind, severity, on_mode, dies):
        self.family_calls.append((kind, severity, on_mode, tuple(dies)))
        rng = np.random.default_rng([self.seed, KINDS.index(kind), 99])
        base = [self.M[kind] + self.die_spread * rng.normal(size=self.M[kind].shape) for _ in dies]
        pairs = [self._volts(Md, ("family", kind, severity, on_mode, d)) for Md, d in zip(base, dies, strict=True)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def circuits_of(self, X: np.ndarray) -> list[tuple]:
        """The circuits whose voltages are stacked in ``X``, in order."""
        n = N_TEST if len(X) == N_TEST else N_TRAIN  # a score sees one test set, a fit stacked training sets
        return [self.made[np.ascontiguousarray(b).tobytes()] for b in np.split(X, len(X) // n)]


class Recording:
    """A ridge classifier that logs (event, its id, the circuits) of every fit and score."""

    def __init__(self, fake: FakeDies, log: list) -> None:
        self.fake, self.log = fake, log

    def fit(self, X, y):
        self.model = RidgeClassifier(alpha=1e-3).fit(X, y)
        self.coef_, self.intercept_ = self.model.coef_, self.model.intercept_
        self.log.append(("fit", id(self), self.fake.circuits_of(X)))
        return self

    def score(self, X, y):
        self.log.append(("score", id(self), self.fake.circuits_of(X)))
        return self.model.score(X, y)


def ridge() -> RidgeClassifier:
    return RidgeClassifier(alpha=1e-3)


def run(fake: FakeDies, **kw) -> pd.DataFrame:
    opts = {"severities": (0.05,), "on_modes": ("cell",), "n_layers": 2, "n_family": 4, "n_unseen": 2,
            "make_corrector": ridge, "kinds": KINDS, **kw}
    return P.run_protocols(fake.canonical, fake.family, fake.y, **opts)


def test_frame_has_the_documented_rows_and_columns():
    df = run(FakeDies(), on_modes=("cell", "on"))
    assert tuple(df.columns) == P.COLUMNS
    k, n_layers, n_family, n_unseen = len(KINDS), 2, 4, 2
    counts = df.groupby(["on_mode", "protocol"]).size().unstack()
    assert (counts.A == k * k).all() and (counts.B == k).all() and (counts.C == k * n_layers).all()
    assert (counts.D == 2 * k * n_unseen).all()  # per kind, then "mixed", each on every unseen die
    assert set(df[df.protocol == "C"].layers) == {"0", "1"} and set(df[df.protocol != "C"].layers) == {"all"}
    n_train = df.groupby(["protocol", "train_type"]).n_train_circuits.unique()
    assert n_train["A"].map(list).tolist() == [[1]] * k
    assert n_train["B"][P.OTHERS].tolist() == [k - 1] and n_train["D"][P.MIXED].tolist() == [k * n_family]
    assert set(df[df.protocol == "D"].test_die) == {4, 5} and set(df[df.protocol != "D"].test_die) == {-1}
    assert (df.corrector_params == N_CLASSES * (N_CLASSES + 1)).all() and (df.scheme == "differential").all()
    assert df[["accuracy_raw", "accuracy_corrected", "accuracy_own"]].notna().all().all()


def test_a_diagonal_is_the_circuits_own_corrector():
    fake = FakeDies()
    df = run(fake, protocols=("A",))
    for kind in KINDS:
        v_tr, v_te = fake.canonical(kind, 0.05, "cell", ())
        own = ridge().fit(v_tr, fake.y[0]).score(v_te, fake.y[1])
        diag = df[(df.train_type == kind) & (df.test_type == kind)].iloc[0]
        assert diag.accuracy_corrected == own == diag.accuracy_own
        assert (df[df.test_type == kind].accuracy_own == own).all()
        assert diag.accuracy_raw == np.mean(v_te.argmax(1) == fake.y[1])


def test_transfer_follows_the_shared_distortion():
    """Kinds sharing one distortion transfer as well as their own corrector; independent
    permutations do not transfer (the corrector then does worse than its own by far)."""
    shared, apart = run(FakeDies(shared=True)), run(FakeDies(shared=False))
    for df in (shared, apart):
        own = df[(df.protocol == "A") & (df.train_type == df.test_type)]
        assert (own.accuracy_corrected > own.accuracy_raw + 0.3).all()  # permuted classes: raw is poor
    s, a = P.summarize(shared).set_index(["protocol", "training", "layers"]), P.summarize(apart).set_index(
        ["protocol", "training", "layers"])
    for key in [("A", "one type", "all"), ("B", P.OTHERS, "all"), ("C", P.OTHERS, "0")]:
        assert s.loc[key].accuracy_corrected > s.loc[key].accuracy_own - 0.05, key
        assert a.loc[key].accuracy_corrected < a.loc[key].accuracy_own - 0.3, key
    fam = a.loc["D", "family", "all"]
    assert fam.accuracy_corrected > fam.accuracy_raw + 0.3 and fam.transfer_gain > 0.3
    regime = P.transfer_regime(apart).set_index(["protocol", "training", "layers"])
    assert regime.loc["D", "family", "all"].regime == "positive" and "own" not in set(regime.index.get_level_values(1))


def _models(log: list) -> dict[int, dict]:
    models: dict[int, dict] = {}
    for event, ident, circuits in log:
        m = models.setdefault(ident, {"fit": None, "score": []})
        if event == "fit":
            m["fit"] = circuits
        else:
            m["score"] += circuits
    return models


def test_leave_one_type_out_never_trains_on_the_held_out_type():
    fake, log = FakeDies(), []
    df = run(fake, protocols=("B", "C"), make_corrector=lambda: Recording(fake, log))
    loto = [m for m in _models(log).values() if len(m["fit"]) > 1]
    assert len(loto) == len(KINDS) * (1 + 2)  # every kind held out, all layers then each of 2 layers
    for m in loto:
        trained = {c[1] for c in m["fit"]}
        assert len(trained) == len(KINDS) - 1 and len({c[4] for c in m["fit"]}) == 1
        assert m["score"] and all(c[1] not in trained and c[4] == m["fit"][0][4] for c in m["score"])
    assert set(df.train_type) == {P.OTHERS}


class Twins(FakeDies):
    """``ring`` gives exactly ``circular``'s circuit (masks that round to the same cells)."""

    def canonical(self, kind, severity, on_mode, layers):
        return super().canonical("circular" if kind == "ring" else kind, severity, on_mode, layers)


class Clones(FakeDies):
    """Every drawn die of a kind gives die 0's circuit."""

    def family(self, kind, severity, on_mode, dies):
        v_tr, v_te = super().family(kind, severity, on_mode, dies)
        return np.repeat(v_tr[:1], len(v_tr), axis=0), np.repeat(v_te[:1], len(v_te), axis=0)


def test_a_kind_identical_to_the_held_out_one_is_left_out_of_its_training():
    with pytest.warns(UserWarning, match="identical circuits: circular=ring"):
        df = run(Twins(), protocols=("A", "B"))
    b = df[df.protocol == "B"].set_index("test_type")
    # held out ring: training on circular would be training on the test circuit itself
    assert b.loc["ring"].n_train_circuits == 1 and b.loc["circular"].n_train_circuits == 1
    assert b.loc["row"].n_train_circuits == 2  # its two others are distinct circuits: both kept
    a = df[df.protocol == "A"].set_index(["train_type", "test_type"])
    assert a.loc[("circular", "ring")].accuracy_corrected == a.loc[("ring", "ring")].accuracy_own
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(FakeDies(), protocols=("B",))  # distinct circuits: no warning
        d = run(Clones(), protocols=("D",))  # drawn dies that coincide are the population's
    assert (d[d.train_type != P.MIXED].n_train_circuits == 4).all()


def test_family_trains_only_on_family_dies_and_tests_only_unseen_dies():
    fake, log = FakeDies(), []
    run(fake, protocols=("D",), n_family=4, n_unseen=2, make_corrector=lambda: Recording(fake, log))
    assert sorted(fake.family_calls) == [(k, 0.05, "cell", tuple(range(6))) for k in sorted(KINDS)]
    models = list(_models(log).values())
    families = [m for m in models if len(m["fit"]) > 1]
    assert len(families) == len(KINDS) + 1  # per kind, and mixed
    for m in families:
        assert all(c[0] == "family" and c[4] < 4 for c in m["fit"])
        assert m["score"] and all(c[4] >= 4 for c in m["score"])
        kinds = {c[1] for c in m["fit"]}
        assert {c[1] for c in m["score"]} == kinds  # a kind's family is tested on its own kind only
    own = [m for m in models if len(m["fit"]) == 1]  # each unseen die's own corrector
    assert sorted(m["fit"][0][4] for m in own) == sorted([4, 5] * len(KINDS))
    assert all(m["score"] == m["fit"] for m in own)


def test_results_do_not_depend_on_n_jobs():
    fake = FakeDies()
    make = functools.partial(MLPCorrector, hidden=(4,), max_iter=60, random_state=3)
    one = run(fake, protocols=("B",), make_corrector=make)
    two = run(fake, protocols=("B",), make_corrector=make, n_jobs=2)
    pd.testing.assert_frame_equal(one, two)
    other_seed = run(fake, protocols=("B",), make_corrector=functools.partial(make, random_state=4))
    assert not one.accuracy_corrected.equals(other_seed.accuracy_corrected)  # the seed does matter


def test_default_corrector_and_progress():
    fake, calls = FakeDies(), []
    df = P.run_protocols(fake.canonical, fake.family, fake.y, severities=(0.05,), on_modes=("off",),
                         n_layers=1, protocols=("A",), kinds=KINDS[:2], progress=lambda d, n: calls.append((d, n)))
    assert (df.corrector_params == 346).all()  # MLPCorrector(hidden=(16,)) on 10 outputs
    assert calls == [(1, 2), (2, 2)]
    again = P.run_protocols(fake.canonical, fake.family, fake.y, severities=(0.05,), on_modes=("off",),
                            n_layers=1, protocols=("A",), kinds=KINDS[:2])
    pd.testing.assert_frame_equal(df, again)


def test_summarize_means_and_gain():
    base = {"protocol": "B", "severity": 0.02, "on_mode": "cell", "scheme": "s", "layers": "all",
            "train_type": P.OTHERS, "test_die": -1, "n_train_circuits": 5, "corrector_params": 346}
    df = pd.DataFrame([{**base, "test_type": "ring", "accuracy_raw": 0.5, "accuracy_corrected": 0.7,
                        "accuracy_own": 0.9},
                       {**base, "test_type": "row", "accuracy_raw": 0.7, "accuracy_corrected": 0.6,
                        "accuracy_own": 0.8},
                       {**base, "protocol": "A", "train_type": "row", "test_type": "row", "accuracy_raw": 0.7,
                        "accuracy_corrected": 0.8, "accuracy_own": 0.8}], columns=P.COLUMNS)
    s = P.summarize(df).set_index(["protocol", "training"])
    b = s.loc["B", P.OTHERS]
    assert b.n == 2
    got = [b.accuracy_raw, b.accuracy_corrected, b.accuracy_own, b.transfer_gain, b.gain_sem]
    assert got == pytest.approx([0.6, 0.65, 0.85, 0.05, 0.15], rel=ARITHMETIC_RTOL)
    assert s.loc["A", "own"].gain_sem == 0
    regime = P.transfer_regime(df)
    assert regime.regime.tolist() == ["within noise"]  # +0.05 +- 0.15
    assert "raw 0.600 -> corrected 0.650 (+0.050 +- 0.150" in regime.verdict[0]
    for gains, want in (((0.10, 0.12), "positive"), ((-0.10, -0.12), "negative"), ((0.10, -0.08), "within noise")):
        rows = [{**base, "test_type": t, "accuracy_raw": 0.5, "accuracy_corrected": 0.5 + g, "accuracy_own": 0.9}
                for t, g in zip(("ring", "row"), gains, strict=True)]
        assert P.transfer_regime(pd.DataFrame(rows, columns=P.COLUMNS)).regime.tolist() == [want], gains


def test_bad_settings_and_bad_voltages_raise():
    fake = FakeDies()
    with pytest.raises(ConfigError, match="unknown protocols"):
        run(fake, protocols=("E",))
    with pytest.raises(ConfigError, match="on_modes"):
        run(fake, on_modes=("both",))
    with pytest.raises(ConfigError, match="at least two kinds"):
        run(fake, protocols=("B",), kinds=KINDS[:1])
    short = lambda *a: tuple(v[:-1] for v in fake.canonical(*a))  # noqa: E731
    with pytest.raises(ConfigError, match="expected finite voltages"):
        P.run_protocols(short, fake.family, fake.y, n_layers=1, protocols=("A",), kinds=KINDS)


def test_plots_write_png(tmp_path):
    from yieldmc import report

    df = run(FakeDies(), on_modes=("cell", "on"), severities=(0.02, 0.05))
    report.plot_protocol_heatmaps(df, tmp_path / "heat.png")
    report.plot_protocol_summary(df, tmp_path / "summary.png")
    for name in ("heat.png", "summary.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    with pytest.raises(ConfigError, match="protocol A"):
        report.plot_protocol_heatmaps(df[df.protocol != "A"], tmp_path / "none.png")


def test_die_sources_on_the_paper_die(network_cache):
    """The adapter on the real die: a "cell" family is the study's instance circuits
    (yieldmc.reproduce.instance_model), stuck-ON and stuck-OFF canonical circuits differ,
    defects on one layer only change the outputs, and every canonical circuit loses accuracy."""
    from yieldmc.config import load_config
    from yieldmc.correction import die_voltages
    from yieldmc.die import DieModel
    from yieldmc.reproduce import instance_model

    model = DieModel.build(load_config("paper"), cache_dir=network_cache)
    src = P.die_sources(model)
    assert src.n_layers == 4 and [len(y) for y in src.labels] == [1617, 180]
    v_tr, v_te = src.family("ring", 0.05, "cell", [0, 1])
    ref = die_voltages(instance_model(model, "ring", 0.05), [0, 1], ("train", "test"))
    assert np.array_equal(v_tr, ref[0]) and np.array_equal(v_te, ref[1])
    on, off, last = (src.canonical("circular", 0.05, mode, layers)
                     for mode, layers in (("on", ()), ("off", ()), ("cell", (3,))))
    clean = model.forward(model.T0, model.images("test")[0])
    assert on[1].shape == off[1].shape == (180, 10) and not np.array_equal(on[1], off[1])
    assert not np.array_equal(last[1], clean)
    fault_free = model.fault_free_accuracy()
    assert all(np.mean(v[1].argmax(1) == src.labels[1]) < fault_free for v in (on, off))
