"""The factored weight gradient (OuterGrad): W̄ = z̄ᵀ x kept as z̄ and x at small batch.

Whatever the tape keeps internally, every reader must see exactly the gradient: ``.grad``,
accumulation over several backward passes, fan-out, the optimizers. Expected values are
NumPy by hand (float64), independent of the tape.
"""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import _factored
from fastgrad.nn import functional as F

BACKENDS = fg.available_backends()


def _layer(N=1, D=30, M=20, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(dtype)
    W = (rng.standard_normal((M, D)) / np.sqrt(D)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    t = rng.standard_normal((N, M)).astype(dtype)
    return x, W, b, t


def _grads_by_hand(x, W, b, t):
    """L = (1/N) Σ ½‖σ(x Wᵀ + b) − t‖²: W̄ = z̄ᵀ x, b̄ = Σ z̄, z̄ = (h − t) h (1 − h) / N."""
    x, W, b, t = (a.astype(np.float64) for a in (x, W, b, t))
    h = 1 / (1 + np.exp(-(x @ W.T + b)))
    dz = (h - t) * h * (1 - h) / x.shape[0]
    return dz.T @ x, dz.sum(axis=0)


def _loss(x, W, b, t):
    return F.squared_error(F.sigmoid(F.linear(x, W, b)), t)


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


def test_small_batch_weight_gradient_is_kept_factored_and_reads_exactly(backend):
    x, W0, b0, t = _layer()
    W, b = fg.tensor(W0, requires_grad=True), fg.tensor(b0, requires_grad=True)
    _loss(fg.tensor(x), W, b, fg.tensor(t)).backward()
    assert type(W._node.grad) is _factored.OuterGrad  # the mechanism under test is in use
    dW, db = _grads_by_hand(x, W0, b0, t)
    np.testing.assert_allclose(W.grad, dW, rtol=1e-12, atol=1e-14)
    assert type(W._node.grad) is np.ndarray  # computed once, then kept
    assert W.grad is W.grad
    np.testing.assert_allclose(b.grad, db, rtol=1e-12)


def test_large_batch_weight_gradient_is_an_array():
    x, W0, b0, t = _layer(N=64, D=30, M=20)
    W = fg.tensor(W0, requires_grad=True)
    _loss(fg.tensor(x), W, fg.tensor(b0), fg.tensor(t)).backward()
    assert type(W._node.grad) is np.ndarray
    np.testing.assert_allclose(W.grad, _grads_by_hand(x, W0, b0, t)[0], rtol=1e-12, atol=1e-14)


def test_writing_the_input_after_backward_does_not_change_the_gradient(backend):
    x, W0, b0, t = _layer()
    expected = _grads_by_hand(x, W0, b0, t)[0]
    xt = fg.from_numpy(x)  # shares x's memory: the user's buffer
    W = fg.tensor(W0, requires_grad=True)
    _loss(xt, W, fg.tensor(b0), fg.tensor(t)).backward()
    x[...] = 1e3  # a data loader reusing its buffer for the next example
    np.testing.assert_allclose(W.grad, expected, rtol=1e-12, atol=1e-14)


def test_gradients_accumulate_over_backward_passes(backend):
    x, W0, b0, t = _layer()
    x2, _, _, t2 = _layer(seed=1)
    x3, _, _, t3 = _layer(N=64, seed=2)  # a large batch: an array, added to the factored sum
    W = fg.tensor(W0, requires_grad=True)
    for xs, ts in ((x, t), (x2, t2), (x3, t3)):
        _loss(fg.tensor(xs), W, fg.tensor(b0), fg.tensor(ts)).backward()
    expected = sum(_grads_by_hand(xs, W0, b0, ts)[0] for xs, ts in ((x, t), (x2, t2), (x3, t3)))
    np.testing.assert_allclose(W.grad, expected, rtol=1e-12, atol=1e-13)


def test_fan_out_a_weight_used_twice_sums_its_signals(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 40))
    W0 = rng.standard_normal((40, 40)) / 7
    W = fg.tensor(W0, requires_grad=True)
    h = F.linear(F.sigmoid(F.linear(fg.tensor(x), W)), W)  # y = W σ(W x)
    (h * h).sum().backward()
    # By hand: a = x Wᵀ, s = σ(a), y = s Wᵀ, L = Σ y²; ȳ = 2y; W̄ = ȳᵀ s + āᵀ x, ā = (ȳ W) s(1−s)
    a = x @ W0.T
    s = 1 / (1 + np.exp(-a))
    y = s @ W0.T
    ybar = 2 * y
    abar = (ybar @ W0) * s * (1 - s)
    np.testing.assert_allclose(W.grad, ybar.T @ s + abar.T @ x, rtol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-2), (0.0, 1e-2)])
def test_sgd_applies_the_factored_gradient_as_the_array_would(backend, dtype, momentum, weight_decay):
    # Two models, same data: one steps on the factored gradient, the other on .grad read
    # (which turns it into the array first). Both must follow the SGD formula by hand.
    x, W0, b0, t = _layer(dtype=dtype)
    Wa, Wb = fg.tensor(W0, requires_grad=True), fg.tensor(W0, requires_grad=True)
    optA = fg.optim.SGD([Wa], lr=0.5, momentum=momentum, weight_decay=weight_decay)
    optB = fg.optim.SGD([Wb], lr=0.5, momentum=momentum, weight_decay=weight_decay)
    W_hand, v_hand = W0.astype(np.float64), np.zeros(W0.shape)
    for _ in range(3):
        dW = _grads_by_hand(x, W_hand.astype(dtype), b0, t)[0]
        for W, opt, read in ((Wa, optA, False), (Wb, optB, True)):
            opt.zero_grad()
            _loss(fg.tensor(x), W, fg.tensor(b0), fg.tensor(t)).backward()
            assert type(W._node.grad) is _factored.OuterGrad
            if read:
                W.grad  # noqa: B018  (reading it makes it an array)
            opt.step()
        g = dW + weight_decay * W_hand
        v_hand = momentum * v_hand + g if momentum else g
        W_hand = W_hand - 0.5 * v_hand
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(Wa.data, W_hand, rtol=rtol, atol=rtol)
    # The same arithmetic in another order (one fused pass): equal to a few roundings.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(Wa.data, Wb.data, rtol=8 * eps, atol=8 * eps)


def test_grad_after_the_step_is_still_the_gradient(backend):
    x, W0, b0, t = _layer()
    W = fg.tensor(W0, requires_grad=True)
    opt = fg.optim.SGD([W], lr=0.1)
    _loss(fg.tensor(x), W, fg.tensor(b0), fg.tensor(t)).backward()
    opt.step()
    np.testing.assert_allclose(W.grad, _grads_by_hand(x, W0, b0, t)[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(W.data, W0 - 0.1 * W.grad, rtol=1e-12)


def test_adam_reads_the_factored_gradient(backend):
    x, W0, b0, t = _layer()
    W = fg.tensor(W0, requires_grad=True)
    opt = fg.optim.Adam([W], lr=1e-2)
    _loss(fg.tensor(x), W, fg.tensor(b0), fg.tensor(t)).backward()
    opt.step()
    g = _grads_by_hand(x, W0, b0, t)[0]
    m, v = 0.1 * g, 0.001 * g * g
    expected = W0 - 1e-2 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(W.data, expected, rtol=1e-10, atol=1e-12)


def test_functional_grad_and_anomaly_mode_give_arrays():
    x, W0, b0, t = _layer()
    dW = fg.grad(lambda W: _loss(x, W, b0, t))(W0)
    assert type(dW) is np.ndarray
    np.testing.assert_allclose(dW, _grads_by_hand(x, W0, b0, t)[0], rtol=1e-12, atol=1e-14)
    W = fg.tensor(W0, requires_grad=True)
    with fg.detect_anomaly():
        _loss(fg.tensor(x), W, fg.tensor(b0), fg.tensor(t)).backward()
    assert type(W._node.grad) is np.ndarray
