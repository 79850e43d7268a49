"""Every primitive's backward against central finite differences of NumPy itself."""

import numpy as np
import pytest
from _numeric import numeric_grad

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import _ops


def check(fg_fun, np_fun, *arrays, rtol=1e-6, atol=1e-7, diff=None):
    """Backward of Σ P ∘ fg_fun(*tensors) equals finite differences of Σ P ∘ np_fun(*arrays)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    diff = range(len(arrays)) if diff is None else diff
    tensors = [fg.tensor(a, requires_grad=(i in diff)) for i, a in enumerate(arrays)]
    out = fg_fun(*tensors)
    expected_value = np_fun(*arrays)
    np.testing.assert_allclose(out.data, expected_value, rtol=1e-12, atol=1e-12)
    projection = np.random.default_rng(1).standard_normal(np.shape(expected_value))
    (out * projection).sum().backward()
    for i in diff:
        expected = numeric_grad(lambda *a: float(np.sum(np_fun(*a) * projection)), arrays, i)
        assert tensors[i].grad.shape == arrays[i].shape
        np.testing.assert_allclose(tensors[i].grad, expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of argument {i}")


R = np.random.default_rng(42)


def r(*shape, positive=False):
    a = R.standard_normal(shape)
    return np.abs(a) + 0.5 if positive else a


BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)),
                   ((), (3,)), ((5,), ())]


@pytest.mark.parametrize("sx,sy", BROADCAST_PAIRS)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
def test_binary_ops_broadcast(op, sx, sy):
    x, y = r(*sx), r(*sy)
    funs = {
        "add": (lambda a, b: a + b, np.add),
        "sub": (lambda a, b: a - b, np.subtract),
        "mul": (lambda a, b: a * b, np.multiply),
        "div": (lambda a, b: a / b, np.divide),
        "pow": (lambda a, b: a ** b, np.power),
        "maximum": (fg.maximum, np.maximum),
        "minimum": (fg.minimum, np.minimum),
    }
    if op in ("div", "pow"):
        y = np.abs(y) + 0.5
    if op == "pow":
        x = np.abs(x) + 0.5
    check(*funs[op], x, y)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid",
                                  "relu", "neg"])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_unary_ops(name, shape):
    positive = name in ("log", "sqrt")
    x = r(*shape, positive=positive)
    if name in ("abs", "relu"):  # keep away from the kink
        x = np.where(np.abs(x) < 0.1, 0.3, x)
    funs = {
        "exp": (fg.exp, np.exp), "log": (fg.log, np.log), "sqrt": (fg.sqrt, np.sqrt),
        "abs": (abs, np.abs), "sin": (fg.sin, np.sin), "cos": (fg.cos, np.cos),
        "tanh": (fg.tanh, np.tanh), "sigmoid": (F.sigmoid, lambda z: 1 / (1 + np.exp(-z))),
        "relu": (F.relu, lambda z: np.maximum(z, 0)), "neg": (lambda a: -a, np.negative),
    }
    check(*funs[name], x)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 5))])
def test_matmul(sa, sb):
    check(lambda a, b: a @ b, np.matmul, r(*sa), r(*sb))


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False),
                                           (-1, True)])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions(name, axis, keepdims):
    x = r(2, 3, 4)
    fgf = lambda a: getattr(a, name)(axis=axis, keepdims=keepdims)
    npf = lambda a: getattr(np, name)(a, axis=axis, keepdims=keepdims)
    check(fgf, npf, x)


def test_max_ties_share_the_signal_equally():
    x = fg.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5, 0.0])
    a = fg.tensor([2.0, 1.0], requires_grad=True)
    b = fg.tensor([2.0, 5.0], requires_grad=True)
    fg.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0])


def test_shape_ops():
    x = r(2, 3, 4)
    check(lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), x)
    check(lambda a: a.reshape((-1,)), lambda a: a.reshape(-1), x)
    check(lambda a: a.transpose(), lambda a: a.transpose(), x)
    check(lambda a: a.transpose(1, 2, 0), lambda a: a.transpose(1, 2, 0), x)
    check(lambda a: a.T, lambda a: a.T, r(3, 5))


@pytest.mark.parametrize("index", [1, (slice(None), 2), (Ellipsis, 1), (slice(1, None), None),
                                   (np.array([0, 1, 0]),), (slice(None), np.array([2, 2, 0]))])
def test_indexing(index):
    check(lambda a: a[index], lambda a: a[index], r(3, 4))


def test_repeated_indices_accumulate():
    x = fg.tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 0.0, 1.0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis):
    a, b = r(2, 3), r(2, 3)
    check(lambda x, y: fg.concatenate([x, y], axis=axis),
          lambda x, y: np.concatenate([x, y], axis=axis), a, b)
    check(lambda x, y: fg.stack([x, y], axis=axis), lambda x, y: np.stack([x, y], axis=axis), a, b)


def test_where():
    c = R.standard_normal((3, 4)) > 0
    check(lambda x, y: fg.where(c, x, y), lambda x, y: np.where(c, x, y), r(3, 4), r(4))


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family(axis):
    def np_softmax(z):
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    check(lambda z: F.softmax(z, axis=axis), np_softmax, r(3, 5))
    check(lambda z: F.log_softmax(z, axis=axis), lambda z: np.log(np_softmax(z)), r(3, 5))


def test_softmax_stable_for_large_inputs():
    z = fg.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    y = F.log_softmax(z)
    assert np.all(np.isfinite(y.data))
    np.testing.assert_allclose(y.data, [[0.0, -1000.0, -2000.0]])
    y[0, 0].backward()
    assert np.all(np.isfinite(z.grad))
    h = F.sigmoid(fg.tensor([-1000.0, 1000.0]))
    np.testing.assert_array_equal(h.data, [0.0, 1.0])


@pytest.mark.parametrize("xs", [(5, 4), (4,), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_primitive(xs, bias):
    W = r(3, 4)
    args = [r(*xs), W] + ([r(3)] if bias else [])
    check(lambda x, w, *b: F.linear(x, w, *b), lambda x, w, *b: x @ w.T + (b[0] if b else 0), *args)


def test_linear_errors_name_shapes():
    x = fg.tensor(np.zeros((2, 5)))
    W = fg.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(3, 4\)"):
        F.linear(x, W)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        F.linear(fg.tensor(np.zeros((2, 4))), W, fg.tensor(np.zeros(2)))


def test_matmul_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        fg.tensor(np.zeros((2, 3))) @ fg.tensor(np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        fg.tensor(np.zeros((2, 3))) + fg.tensor(np.zeros(4))


def test_every_primitive_has_a_rule_for_each_differentiable_argument():
    prims = [v for v in vars(_ops).values() if isinstance(v, fg._tape.Primitive)]
    assert len(prims) > 30
    for p in prims:
        assert p.vjps, p.name
