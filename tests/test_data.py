"""Task data: digits split, IDX format, MNIST loaders, dispatch."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tests.tolerances import PIXEL_ATOL, UPSAMPLE_MEAN_RTOL
from yieldmc.data import (
    Dataset,
    load_dataset,
    load_digits_split,
    load_mnist,
    read_idx,
    resize_images,
    write_idx,
)
from yieldmc.errors import ConfigError

N_TRAIN, N_TEST, SIDE = 50, 20, 28


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits_split()


def _fake_mnist(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(N_TRAIN, SIDE, SIDE), dtype=np.uint8),
        "y_train": np.arange(N_TRAIN, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, size=(N_TEST, SIDE, SIDE), dtype=np.uint8),
        "y_test": np.arange(N_TEST, dtype=np.uint8) % 10,
    }


def _write_mnist_dir(directory, arrays, gz: bool = False):
    suffix = ".gz" if gz else ""
    names = {
        "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
    }
    for key, stem in names.items():
        write_idx(directory / (stem + suffix), arrays[key])
    return directory


# ---- digits -------------------------------------------------------------------------

def test_digits_split_sizes_types_range(digits):
    assert digits.x_train.shape == (1617, 64) and digits.x_test.shape == (180, 64)
    assert digits.x_train.dtype == np.float64 and digits.y_train.dtype == np.int64
    assert digits.image_shape == (8, 8) and digits.n_classes == 10 and digits.name == "digits"
    for x in (digits.x_train, digits.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert digits.x_train.max() == 1.0  # 16 / 16: the scaling uses the full range


def test_digits_split_is_stratified(digits):
    counts = np.bincount(digits.y_test, minlength=10)
    assert counts.sum() == 180
    assert np.all(np.abs(counts - 18) <= 1)


def test_digits_split_deterministic_and_seed_dependent(digits):
    again = load_digits_split(seed=0)
    assert_array_equal(again.x_test, digits.x_test)
    assert_array_equal(again.y_train, digits.y_train)
    other = load_digits_split(seed=1)
    assert not np.array_equal(other.x_test, digits.x_test)


def test_digits_split_is_a_partition(digits):
    from sklearn.datasets import load_digits

    allx = load_digits().data / 16.0
    both = np.concatenate([digits.x_train, digits.x_test])
    assert len(both) == len(allx) == 1797
    # Same multiset of images: sort rows lexicographically and compare.
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    assert_array_equal(key(both), key(allx))


def test_digits_custom_test_size():
    d = load_digits_split(test_size=360, seed=3)
    assert len(d.y_test) == 360 and np.all(np.abs(np.bincount(d.y_test) - 36) <= 1)


@pytest.mark.parametrize("bad", [0, 5, 1797, 2.5, True, "180"])
def test_digits_bad_test_size(bad):
    with pytest.raises(ConfigError, match="test_size"):
        load_digits_split(test_size=bad)


def test_digits_upsample(digits):
    up = load_digits_split(upsample_to=28)
    assert up.x_train.shape == (1617, 784) and up.x_test.shape == (180, 784)
    assert up.image_shape == (28, 28) and up.name == "digits-28x28"
    assert up.x_train.min() >= 0.0 and up.x_train.max() <= 1.0
    assert_array_equal(up.y_test, digits.y_test)  # same split
    # Bilinear interpolation keeps the mean brightness roughly (within 15 %).
    assert_allclose(up.x_test.mean(), digits.x_test.mean(), rtol=UPSAMPLE_MEAN_RTOL)
    # Corners are kept exactly (zoom aligns the corner pixels).
    img8 = digits.x_test.reshape(-1, 8, 8)
    img28 = up.x_test.reshape(-1, 28, 28)
    assert_allclose(img28[:, 0, 0], img8[:, 0, 0], atol=PIXEL_ATOL)
    assert_allclose(img28[:, -1, -1], img8[:, -1, -1], atol=PIXEL_ATOL)


def test_upsample_zero_keeps_size(digits):
    d = load_digits_split(upsample_to=0)
    assert_array_equal(d.x_test, digits.x_test)


def test_resize_constant_image_is_constant():
    img = np.full((2, 8, 8), 0.25)
    out = resize_images(img, 20)
    assert out.shape == (2, 20, 20)
    assert_allclose(out, 0.25, atol=PIXEL_ATOL)


def test_resize_rejects_bad_size():
    with pytest.raises(ConfigError, match="upsample_to"):
        resize_images(np.zeros((1, 8, 8)), 1)


# ---- Dataset validation -------------------------------------------------------------

def test_dataset_rejects_bad_pixels_and_labels():
    x = np.zeros((3, 4))
    y = np.array([0, 1, 2])
    with pytest.raises(ConfigError, match="pixels"):
        Dataset(x + 2.0, y, x, y, image_shape=(2, 2), name="t", n_classes=3)
    with pytest.raises(ConfigError, match="labels"):
        Dataset(x, y + 1, x, y, image_shape=(2, 2), name="t", n_classes=3)
    with pytest.raises(ConfigError, match="shape"):
        Dataset(x, y, x, y, image_shape=(3, 3), name="t", n_classes=3)
    with pytest.raises(ConfigError, match="y_test"):
        Dataset(x, y, x, y[:2], image_shape=(2, 2), name="t", n_classes=3)


# ---- IDX ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(3, 5, 7)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a{suffix}", a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert_array_equal(a, b)


def test_idx_header_layout(tmp_path):
    path = write_idx(tmp_path / "l", np.array([7, 8, 9], dtype=np.uint8))
    raw = path.read_bytes()
    assert raw == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9])


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(ConfigError, match="bad.*magic"):
        read_idx(path)


def test_idx_unknown_type_code(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(ConfigError, match="type code"):
        read_idx(path)


@pytest.mark.parametrize("cut", [2, 6, 20, -1])
def test_idx_truncated(tmp_path, cut):
    good = write_idx(tmp_path / "good", np.zeros((4, 5), dtype=np.uint8)).read_bytes()
    path = tmp_path / "cut"
    path.write_bytes(good[:cut])
    with pytest.raises(ConfigError, match="cut.*truncated") as info:
        read_idx(path)
    assert "\n" not in str(info.value)


def test_idx_oversized(tmp_path):
    path = write_idx(tmp_path / "big", np.zeros(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ConfigError, match="oversized"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-6])
    with pytest.raises(ConfigError, match="a.gz"):
        read_idx(path)


def test_idx_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such"):
        read_idx(tmp_path / "nope")


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ConfigError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.complex128))


# ---- MNIST --------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_directory(tmp_path, gz):
    arrays = _fake_mnist()
    d = load_mnist(_write_mnist_dir(tmp_path, arrays, gz=gz))
    assert d.x_train.shape == (N_TRAIN, SIDE * SIDE) and d.x_test.shape == (N_TEST, SIDE * SIDE)
    assert d.image_shape == (SIDE, SIDE) and d.n_classes == 10 and d.name == "mnist"
    assert_allclose(d.x_train, arrays["x_train"].reshape(N_TRAIN, -1) / 255.0, rtol=0, atol=0)
    assert_array_equal(d.y_test, arrays["y_test"])
    assert d.y_train.dtype == np.int64


def test_mnist_npz(tmp_path):
    arrays = _fake_mnist(2)
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    d = load_mnist(path)
    assert_allclose(d.x_test, arrays["x_test"].reshape(N_TEST, -1) / 255.0, rtol=0, atol=0)
    assert_array_equal(d.y_train, arrays["y_train"])
    same = load_dataset("mnist", path=path)
    assert_array_equal(same.x_train, d.x_train)


def test_mnist_test_subset_and_upsample(tmp_path):
    arrays = _fake_mnist()
    path = _write_mnist_dir(tmp_path, arrays)
    d = load_mnist(path, test_size=10, seed=0)
    assert len(d.y_test) == 10 and set(d.y_test.tolist()) == set(range(10))  # stratified
    assert_array_equal(load_mnist(path, test_size=10, seed=0).x_test, d.x_test)
    small = load_dataset("mnist", path=path, upsample_to=8)
    assert small.image_shape == (8, 8) and small.x_train.shape == (N_TRAIN, 64)
    with pytest.raises(ConfigError, match="test_size"):
        load_mnist(path, test_size=N_TEST + 1)


def test_mnist_mismatched_counts(tmp_path):
    arrays = _fake_mnist()
    arrays["y_train"] = arrays["y_train"][:-1]
    _write_mnist_dir(tmp_path, arrays)
    with pytest.raises(ConfigError, match=r"train-images.*50 images but 49 labels"):
        load_mnist(tmp_path)


def test_mnist_missing_file(tmp_path):
    _write_mnist_dir(tmp_path, _fake_mnist())
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_mnist_truncated_file_named(tmp_path):
    _write_mnist_dir(tmp_path, _fake_mnist())
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte: truncated"):
        load_mnist(tmp_path)


def test_mnist_npz_missing_keys_and_corrupt(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.zeros(2, np.uint8))
    with pytest.raises(ConfigError, match="missing arrays x_test, y_test"):
        load_mnist(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ConfigError, match="junk.npz"):
        load_mnist(junk)
    np.savez(path, **_fake_mnist())
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ConfigError, match="cut.npz"):
        load_mnist(cut)


# ---- dispatch -----------------------------------------------------------------------

def test_load_dataset_dispatch(digits):
    d = load_dataset()
    assert_array_equal(d.x_test, digits.x_test)
    assert load_dataset("DIGITS", test_size=200).x_test.shape == (200, 64)


def test_load_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="valid names: digits, mnist"):
        load_dataset("cifar")
    with pytest.raises(ConfigError, match="needs a path"):
        load_dataset("mnist")
    with pytest.raises(ConfigError, match="no such"):
        load_dataset("mnist", path=tmp_path / "absent")
