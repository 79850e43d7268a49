"""Small data sets that ship inside the package, and a mini-batch iterator.

No network access is ever needed: ``load_digits`` reads the copy in ``datasets/data/``
(UCI Optical Recognition of Handwritten Digits, CC BY 4.0; see ``data/README.md``).

>>> from fastgrad.datasets import load_digits, iterate_minibatches
>>> X_train, y_train, X_test, y_test = load_digits()
>>> X_train.shape, X_test.shape
((1442, 64), (355, 64))
>>> for xb, yb in iterate_minibatches(X_train, y_train, batch_size=32, seed=0):
...     pass
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterator
from importlib import resources

import numpy as np

__all__ = ["load_digits", "iterate_minibatches", "DataLoader", "DIGITS_ATTRIBUTION"]

DIGITS_ATTRIBUTION = (
    "8x8 digits: Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten "
    "Digits. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49 (CC BY 4.0)"
)

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 rows as read from disk: pixels uint8 (N, 64) in 0..16, labels int64 (N,)."""
    path = resources.files(__name__).joinpath("data", "digits.csv.gz")
    with path.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise RuntimeError(f"digits.csv.gz is damaged: expected 1797 rows of 65, got {table.shape}")
    pixels = table[:, :64].astype(np.uint8)
    labels = np.ascontiguousarray(table[:, 64])
    pixels.flags.writeable = False  # cached: callers get copies
    labels.flags.writeable = False
    return pixels, labels


def load_digits(*, split: bool = True, dtype=np.float64):
    """The 8×8 handwritten digits: 1,797 images of 0–9, pixels scaled to [0, 1].

    Returns ``(X_train, y_train, X_test, y_test)`` with X of shape (N, 64) and ``dtype``
    (float64 or float32), y int64 class labels 0..9. The split is fixed and needs no
    random numbers: within each class, taken in file order, every fifth image (the 5th,
    10th, …) is a test image. That gives 1,442 train and 355 test images, stratified
    (each class ~20 % test) and spread over the whole file, so over all writers.
    With ``split=False`` returns ``(X, y)`` for all 1,797 images.
    Arrays are fresh copies: changing them does not change later calls.
    """
    dtype = np.dtype(dtype)
    if dtype not in _FLOATS:
        raise TypeError(f"load_digits: dtype must be float32 or float64, got {dtype}")
    pixels, labels = _digits_raw()
    X = pixels.astype(dtype) / dtype.type(16.0)
    y = labels.copy()
    if not split:
        return X, y
    test = _every_fifth_of_each_class(y)
    return X[~test], y[~test], X[test], y[test]


def _every_fifth_of_each_class(y):
    """Boolean mask: True for the 5th, 10th, … occurrence of each label in order."""
    occurrence = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        occurrence[where] = np.arange(len(where))
    return occurrence % 5 == 4


def _generator(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_batching(X, y, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(
            f"X and y must have the same number of rows, got X {np.shape(X)} and y {np.shape(y)}"
        )
    return n


def iterate_minibatches(
    X, y=None, batch_size: int = 32, shuffle: bool = True, seed=None, drop_last: bool = False
) -> Iterator:
    """Yield ``(X_batch, y_batch)`` pairs (or ``X_batch`` alone when ``y`` is None).

    Each row appears exactly once per pass; the last batch is smaller unless
    ``drop_last``. With ``shuffle`` the order is a permutation drawn from
    ``numpy.random.default_rng(seed)`` — pass an int for a repeatable order, or one
    ``Generator`` reused across epochs for a new order every epoch.
    """
    n = _check_batching(X, y, batch_size)
    order = _generator(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        if y is None:
            yield X[index]
        else:
            yield X[index], y[index]


class DataLoader:
    """Re-iterable mini-batches: a new shuffle each pass, repeatable from ``seed``.

    >>> loader = DataLoader(X_train, y_train, batch_size=32, seed=0)
    >>> len(loader)          # batches per epoch
    45
    >>> for epoch in range(3):
    ...     for xb, yb in loader: ...
    """

    def __init__(
        self,
        X,
        y=None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed=None,
        drop_last: bool = False,
    ):
        self._n = _check_batching(X, y, batch_size)
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = _generator(seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self._n // self.batch_size
        return -(-self._n // self.batch_size)

    def __iter__(self):
        return iterate_minibatches(
            self.X, self.y, self.batch_size, self.shuffle, self._rng, self.drop_last
        )
