"""fastgrad.datasets: the shipped digits, their fixed split, and mini-batching."""

import gzip
import hashlib
from importlib import resources

import numpy as np
import pytest

from fastgrad.datasets import DataLoader, iterate_minibatches, load_digits

DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # UCI's description


def _data_file():
    return resources.files("fastgrad.datasets").joinpath("data", "digits.csv.gz")


def test_shipped_file_is_the_documented_one():
    raw = _data_file().read_bytes()
    assert hashlib.sha256(raw).hexdigest() == DIGITS_SHA256
    assert len(raw) < 200_000
    readme = _data_file().parent.joinpath("README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme and DIGITS_SHA256 in readme


def test_full_set_matches_the_raw_file():
    X, y = load_digits(split=False)
    table = np.loadtxt(gzip.open(_data_file().open("rb"), "rt"), delimiter=",")
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, table[:, :64] / 16.0)
    np.testing.assert_array_equal(y, table[:, 64])
    assert np.bincount(y).tolist() == CLASS_COUNTS
    assert X.min() == 0.0 and X.max() == 1.0


def test_split_is_fixed_disjoint_complete_and_stratified():
    X_train, y_train, X_test, y_test = load_digits()
    assert X_train.shape == (1442, 64) and y_train.shape == (1442,)
    assert X_test.shape == (355, 64) and y_test.shape == (355,)
    X, y = load_digits(split=False)
    # The documented rule: within each class, in file order, every fifth image is test.
    test = np.zeros(len(y), dtype=bool)
    for label in range(10):
        test[np.flatnonzero(y == label)[4::5]] = True
    np.testing.assert_array_equal(X_test, X[test])
    np.testing.assert_array_equal(y_test, y[test])
    np.testing.assert_array_equal(X_train, X[~test])
    np.testing.assert_array_equal(y_train, y[~test])
    assert np.bincount(y_test).tolist() == [c // 5 for c in CLASS_COUNTS]
    again = load_digits()
    for a, b in zip((X_train, y_train, X_test, y_test), again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_returns_fresh_copies():
    X_train, y_train, _, _ = load_digits()
    X_train[:] = -1
    y_train[:] = -1
    X_train2, y_train2, _, _ = load_digits()
    assert X_train2.min() == 0.0 and y_train2.min() == 0


def test_dtype_option():
    X_train, y_train, X_test, _ = load_digits(dtype=np.float32)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64
    np.testing.assert_allclose(X_train, load_digits()[0], rtol=1e-7)
    with pytest.raises(TypeError, match="float32 or float64"):
        load_digits(dtype=np.int32)


# ----------------------------------------------------------------- mini-batches --


def _toy(n=10):
    X = np.arange(n * 2, dtype=float).reshape(n, 2)
    return X, np.arange(n)


def test_minibatches_cover_every_row_once():
    X, y = _toy(10)
    batches = list(iterate_minibatches(X, y, batch_size=3, seed=0))
    assert [len(b[1]) for b in batches] == [3, 3, 3, 1]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))  # shuffled
    for xb, yb in batches:  # rows stay paired with their labels
        np.testing.assert_array_equal(xb, X[yb])


def test_minibatches_seeded_and_unshuffled():
    X, y = _toy(20)
    order = lambda seed: np.concatenate([b for _, b in iterate_minibatches(X, y, 4, seed=seed)])
    np.testing.assert_array_equal(order(3), order(3))
    assert order(3).tolist() != order(4).tolist()
    plain = [b for _, b in iterate_minibatches(X, y, 4, shuffle=False)]
    assert np.concatenate(plain).tolist() == list(range(20))


def test_minibatches_drop_last_and_x_only():
    X, y = _toy(10)
    assert [len(b) for _, b in iterate_minibatches(X, y, 4, drop_last=True, seed=0)] == [4, 4]
    batches = list(iterate_minibatches(X, batch_size=5, shuffle=False))
    np.testing.assert_array_equal(batches[0], X[:5])


def test_minibatch_errors():
    X, y = _toy(10)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        list(iterate_minibatches(X, y, 0))
    with pytest.raises(ValueError, match=r"X \(10, 2\) and y \(9,\)"):
        list(iterate_minibatches(X, y[:9], 2))
    with pytest.raises(TypeError, match="batch_size must be an int"):
        list(iterate_minibatches(X, y, 2.5))


def test_dataloader_reshuffles_each_epoch_repeatably():
    X, y = _toy(12)
    loader = DataLoader(X, y, batch_size=5, seed=7)
    assert len(loader) == 3
    epochs = [np.concatenate([b for _, b in loader]).tolist() for _ in range(3)]
    assert epochs[0] != epochs[1]
    again = DataLoader(X, y, batch_size=5, seed=7)
    assert [np.concatenate([b for _, b in again]).tolist() for _ in range(3)] == epochs
    assert len(DataLoader(X, y, batch_size=5, drop_last=True)) == 2
