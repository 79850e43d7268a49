"""NumPy's own functions called on fg.Tensor: each records like its fastgrad.numpy twin,
or raises a TypeError naming it — never a plain array that silently drops the graph."""

import numpy as np
import pytest
from _numeric import numeric_grad

import fastgrad as fg


def _grad_through(fun, *arrays):
    """Gradient of sum(fun(*tensors)²) by the backward, and by finite differences."""
    tensors = [fg.tensor(a, requires_grad=True) for a in arrays]
    out = fun(*tensors)
    assert isinstance(out, fg.Tensor), f"{fun} returned {type(out).__name__}: the graph was dropped"
    (out * out).sum().backward()

    def f(*xs):
        v = np.asarray(fun(*xs))
        return float(np.sum(v * v))

    for i, t in enumerate(tensors):
        want = numeric_grad(f, list(arrays), i)
        np.testing.assert_allclose(t.grad, want, rtol=1e-5, atol=1e-8 * max(1.0, np.abs(want).max()))


R = np.random.default_rng(3)
A, B, V, U = R.normal(size=(3, 4)), R.normal(size=(4, 2)), R.normal(size=4), R.normal(size=4)

CASES = {
    "concatenate": (lambda a, b: np.concatenate([a, b, a]), V, U),
    "stack": (lambda a, b: np.stack([a, b], axis=1), V, U),
    "dot": (np.dot, A, B),
    "dot of vectors": (np.dot, V, U),
    "inner": (np.inner, V, U),
    "einsum": (lambda a, b: np.einsum("ij,jk->ik", a, b), A, B),
    "where": (lambda a, b: np.where(a > 0, a, 0.1 * b), V, U),
    "outer": (np.outer, V, U),
    "tensordot": (lambda a, b: np.tensordot(a, b, axes=1), A, B),
    "linalg.norm": (lambda a: np.linalg.norm(a, axis=1), A),
    "sum": (lambda a: np.sum(a, axis=0), A),
    "clip": (lambda a: np.clip(a, -0.5, 0.5), A),
    "matmul": (np.matmul, A, B),
    "exp ufunc": (np.exp, A),
    "tanh ufunc": (np.tanh, A),
    "maximum ufunc": (np.maximum, V, U),
}


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_function_on_tensors_records(name):
    fun, *arrays = CASES[name]
    _grad_through(fun, *arrays)


def test_the_issue_example():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    loss = w.sum() + (np.concatenate([w, w]) ** 2).sum()
    loss.backward()
    assert w.grad.tolist() == [5.0, 9.0]  # 1 + 2·2w, not [1, 1]


@pytest.mark.parametrize("call,name", [
    (lambda t: np.linalg.qr(t), "numpy.linalg.qr"),
    (lambda t: np.cumprod(t), "numpy.cumprod"),
    (lambda t: np.fft.fft(t), "numpy.fft.fft"),
    (lambda t: np.add.reduce(t), "numpy.add.reduce"),
    (lambda t: np.exp(t, out=np.empty(4)), "numpy.exp"),
])
def test_numpy_function_without_twin_is_refused_by_name(call, name):
    t = fg.tensor(np.arange(1.0, 5.0), requires_grad=True)
    with pytest.raises(TypeError, match=name.replace(".", r"\.")):
        call(t if "qr" not in name else fg.tensor(np.eye(3) + 1.0, requires_grad=True))


def test_functions_of_values_give_constants():
    t = fg.tensor(np.array([3.0, -1.0, 2.0]), requires_grad=True)
    assert np.argmax(t) == 0 and np.shape(t) == (3,) and np.ndim(t) == 1
    assert np.all(np.greater(t, -2.0)) and np.isfinite(t).all()
    assert np.allclose(t, [3.0, -1.0, 2.0])
    np.testing.assert_array_equal(np.zeros_like(t), np.zeros(3))


def test_numpy_map_drives_the_namespace():
    from fastgrad.numpy._map import NUMPY_MAP, TWINS

    for name, twin in TWINS.items():
        assert getattr(fg.numpy, name) is twin
    for fun, twin in NUMPY_MAP.items():
        assert twin is TWINS.get(fun.__name__, twin) or fun.__module__.endswith("linalg")
