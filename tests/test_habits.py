"""Habits users bring from PyTorch: the names that cost nothing work as there."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn, optim


def test_creation_functions():
    assert fg.zeros(2, 3).shape == (2, 3) and not fg.zeros((2, 3)).data.any()
    assert fg.ones((4,), dtype=np.float32).dtype == np.float32
    assert fg.ones(3, requires_grad=True).requires_grad
    np.testing.assert_array_equal(fg.arange(5).data, np.arange(5.0))
    np.testing.assert_array_equal(fg.arange(1, 2, 0.25).data, [1.0, 1.25, 1.5, 1.75])
    with pytest.raises(ValueError, match="zeros: sizes"):
        fg.zeros(-1)


def test_manual_seed_makes_draws_and_initial_weights_repeatable():
    fg.manual_seed(7)
    a, w1 = fg.randn(3, 2).data, nn.Linear(4, 2).weight.data.copy()
    r1 = fg.rand(5).data
    fg.manual_seed(7)
    b, w2 = fg.randn(3, 2).data, nn.Linear(4, 2).weight.data.copy()
    r2 = fg.rand(5).data
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(r1, r2)
    assert ((r1 >= 0) & (r1 < 1)).all()
    with pytest.raises(ValueError, match="manual_seed"):
        fg.manual_seed(-1)


def test_grad_fn_clone_and_dim():
    x = fg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.grad_fn is None and x.dim() == 2
    y = x * 2
    assert y.grad_fn.name() == "multiply" and y.grad_fn is y._node
    c = y.clone()
    assert c.grad_fn is not None and c is not y
    s = c.sum(dim=1, keepdim=True)
    assert s.shape == (2, 1)
    np.testing.assert_array_equal(x.mean(dim=0).data, [1.5, 2.5, 3.5])
    s.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))
    with pytest.raises(TypeError, match="axis= or dim="):
        x.sum(axis=0, dim=0)


def test_errors_name_the_method_not_a_lambda():
    t = fg.tensor(np.ones((2, 3)))
    for call, name in [(lambda: t.sum(axis=5), "sum"), (lambda: t.reshape(7), "reshape"),
                       (lambda: t.max(axis=4), "max"), (lambda: t @ np.ones(4), "matmul")]:
        with pytest.raises(Exception) as info:
            call()
        assert str(info.value).startswith(f"{name}:") and "<lambda>" not in str(info.value)


def test_compiled_squared_error_with_integer_labels_names_the_call():
    model = nn.MLP((3, 4, 2), dtype=np.float32, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @fg.compile
    def step(x, t):
        opt.zero_grad()
        loss = nn.squared_error(model(x), t)
        loss.backward()
        opt.step()
        return loss

    x = np.ones((5, 3), np.float32)
    with pytest.raises(fg.TracingError, match=r"squared_error\(y, labels\) with integer labels"):
        step(x, np.array([0, 1, 1, 0, 1]))
    one_hot = np.eye(2, dtype=np.float32)[[0, 1, 1, 0, 1]]
    eager = nn.squared_error(model(x), one_hot).item()
    assert abs(float(step(x, one_hot)) - eager) < 1e-6  # one-hot targets compile
