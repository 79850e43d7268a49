"""autograd's own examples on fastgrad's functional face against autograd (SPEC §4, issue 5).

    pytest benchmarks/test_functional_bench.py --benchmark-only

Same code, two imports: the tanh derivatives of autograd's README (up to the 4th) and the
small neural network of its examples trained with ``grad`` for a few steps. Each pair is
first checked to give the same numbers; then both are timed. Skipped without autograd.
"""

import numpy as onp
import pytest

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402

import fastgrad  # noqa: E402
import fastgrad.numpy as fnp  # noqa: E402

LIBS = {"fastgrad": (fastgrad, fnp), "autograd": (autograd, anp)}


def tanh_derivatives(lib, np):
    def tanh(x):
        y = np.exp(-2.0 * x)
        return (1.0 - y) / (1.0 + y)

    d = lib.elementwise_grad
    x = onp.linspace(-7, 7, 200)
    return [d(tanh)(x), d(d(tanh))(x), d(d(d(tanh)))(x), d(d(d(d(tanh))))(x)]


def _net_data():
    rs = onp.random.RandomState(0)
    X = rs.randn(128, 8)
    t = (X[:, :1] * X[:, 1:2] > 0).astype(float)
    params = [(0.1 * rs.randn(8, 32), onp.zeros(32)), (0.1 * rs.randn(32, 1), onp.zeros(1))]
    return X, t, params


def train_net(lib, np, steps=20):
    X, t, params = _net_data()

    def predict(params, X):
        h = X
        for W, b in params[:-1]:
            h = np.tanh(np.dot(h, W) + b)
        W, b = params[-1]
        return np.dot(h, W) + b

    def loss(params):
        return np.mean((predict(params, X) - t) ** 2)

    g = lib.grad(loss)
    for _ in range(steps):
        grads = g(params)
        params = [(W - 0.1 * dW, b - 0.1 * db) for (W, b), (dW, db) in zip(params, grads)]
    return loss(params), params


def test_same_numbers():
    for a, b in zip(tanh_derivatives(*LIBS["fastgrad"]), tanh_derivatives(*LIBS["autograd"])):
        onp.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    (lf, pf), (la, pa) = train_net(*LIBS["fastgrad"]), train_net(*LIBS["autograd"])
    onp.testing.assert_allclose(lf, la, rtol=1e-9)
    for (Wf, _bf), (Wa, _ba) in zip(pf, pa):
        onp.testing.assert_allclose(Wf, Wa, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lib", list(LIBS))
def test_tanh_derivatives(benchmark, lib):
    benchmark.group = "autograd example: tanh derivatives 1-4"
    benchmark(tanh_derivatives, *LIBS[lib])


@pytest.mark.parametrize("lib", list(LIBS))
def test_train_small_net(benchmark, lib):
    benchmark.group = "autograd example: 8-32-1 tanh net, 20 grad steps"
    benchmark(train_net, *LIBS[lib])
