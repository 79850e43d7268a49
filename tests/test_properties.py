"""Property-based tests (issue 7, part 2): random shapes, broadcasting pairs and op
compositions, checked against central finite differences and against the reference
backend. Kept fast: at most 50 examples each, no deadline (the machine is shared).
"""

import numpy as np
import pytest
from _numeric import numeric_grad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad as fg
from fastgrad import nn

F = nn.functional
BACKEND_NAMES = fg.available_backends()
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(0.3, 3, allow_nan=False, width=64)


def arrays(shape, elements=finite):
    return hnp.arrays(np.float64, shape, elements=elements)


def _tensor_grads(f, inputs):
    leaves = [fg.tensor(a, requires_grad=True) for a in inputs]
    out = f(*leaves)
    out.backward()
    return float(out), [leaf.grad for leaf in leaves]


def _check_against_fd(f, inputs, rtol=1e-5, atol=1e-6):
    value, grads = _tensor_grads(f, inputs)

    def scalar(*arrays):
        with fg.no_grad():
            return float(f(*[fg.tensor(a) for a in arrays]))

    # Central differences of a sum lose |f|·ε_machine/h to cancellation (h = 1e-6): a small
    # partial beside a large total needs that much absolute slack.
    atol = atol + 1e-16 / 1e-6 * 10 * abs(float(np.asarray(value)))
    for i, g in enumerate(grads):
        assert g.shape == inputs[i].shape and g.dtype == np.float64
        np.testing.assert_allclose(
            g, numeric_grad(scalar, inputs, i), rtol=rtol, atol=atol, err_msg=f"input {i}"
        )
    return value, grads


# ---------------------------------------------------------------- broadcasting --


@st.composite
def broadcasting_pair(draw):
    """Two shapes that broadcast together (some axes 1, some missing)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))

    def variant():
        dims = list(shape)
        dims = [1 if draw(st.booleans()) else n for n in dims]
        drop = draw(st.integers(0, len(dims)))
        return tuple(dims[drop:])

    return variant(), variant()


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "pow": lambda a, b: (a * a + 1.0) ** b,
    "max": lambda a, b: fg.maximum(a, b),
    "where": lambda a, b: fg.where((a > 0) if isinstance(a, fg.Tensor) else a > 0, a, b),
}


@pytest.mark.parametrize("op", sorted(BINARY))
@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_broadcasting_binary_ops_match_finite_differences(op, data):
    sa, sb = data.draw(broadcasting_pair())
    a = data.draw(arrays(sa))
    b = data.draw(arrays(sb))
    if op == "max":  # keep away from ties, where the derivative is not defined
        wa, wb = np.broadcast_arrays(a, b)
        if np.any(np.abs(wa - wb) < 1e-3):
            return
    if op == "where" and np.any(np.abs(a) < 1e-4):
        return
    fun = BINARY[op]
    _check_against_fd(
        lambda x, y: (fun(x, y) * fun(x, y)).sum() if op != "where" else (fun(x, y) ** 2).sum(),
        [a, b],
    )


# ------------------------------------------------------------ op compositions --

UNARY = {
    "exp": lambda t: fg.exp(fg.tanh(t)),  # bounded: five in a row must not overflow
    "log": lambda t: fg.log(t * t + 1.0),
    "sqrt": lambda t: fg.sqrt(t * t + 1.0),
    "sin": fg.sin,
    "cos": fg.cos,
    "tanh": fg.tanh,
    "sigmoid": F.sigmoid,
    "square": lambda t: t * t,
    "neg": lambda t: -t,
    "softmax": lambda t: F.softmax(t, axis=-1),
    "log_softmax": lambda t: F.log_softmax(t, axis=-1),
    "sum0": lambda t: t.sum(axis=0, keepdims=True),
    "mean": lambda t: t.mean(axis=-1, keepdims=True) + t,
    "transpose2": lambda t: t.T.T,
    "reshape": lambda t: t.reshape(-1).reshape(t.shape),
    "index": lambda t: t[::-1] * 1.5,
}


@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    ops=st.lists(st.sampled_from(sorted(UNARY)), min_size=1, max_size=5),
    data=st.data(),
)
def test_random_compositions_match_finite_differences(shape, ops, data):
    x = data.draw(arrays(shape))

    def f(t):
        for name in ops:
            t = UNARY[name](t)
        return (t * t).sum()

    _check_against_fd(f, [x], rtol=1e-4, atol=1e-5)


@SETTINGS
@given(n=st.integers(1, 5), d=st.integers(1, 6), m=st.integers(1, 5), data=st.data())
def test_linear_sigmoid_stack_matches_finite_differences(n, d, m, data):
    x = data.draw(arrays((n, d)))
    W = data.draw(arrays((m, d)))
    b = data.draw(arrays((m,)))

    def f(x, W, b):
        h = F.sigmoid(F.linear(x, W, b))
        return (h @ (W * 0.5) + x).sum() ** 2 / 10

    _check_against_fd(f, [x, W, b], rtol=1e-4, atol=1e-5)


@SETTINGS
@given(
    a=st.tuples(st.integers(1, 3), st.integers(1, 4)),
    k=st.integers(1, 4),
    batch=st.sampled_from([(), (2,), (1,), (2, 1)]),
    vec=st.sampled_from(["none", "left", "right"]),
    data=st.data(),
)
def test_matmul_shapes_match_finite_differences(a, k, batch, vec, data):
    n, m = a
    left = (k,) if vec == "left" else batch + (n, k)
    right = (k,) if vec == "right" else (k, m)
    A = data.draw(arrays(left))
    B = data.draw(arrays(right))
    _check_against_fd(lambda x, y: ((x @ y) ** 2).sum(), [A, B])


@SETTINGS
@given(
    n=st.integers(1, 6),
    k=st.integers(1, 5),
    data=st.data(),
    scale=st.sampled_from([1.0, 30.0, 1000.0]),
)
def test_cross_entropy_matches_finite_differences_and_stays_finite(n, k, data, scale):
    z = data.draw(arrays((n, k))) * scale
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    value, (g,) = _tensor_grads(lambda t: F.cross_entropy(t, labels), [z])
    assert np.isfinite(value) and np.isfinite(g).all()
    if scale == 1.0:
        _check_against_fd(lambda t: F.cross_entropy(t, labels), [z])
    # the error signal is (softmax − onehot)/N whatever the scale
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(n), labels] -= 1
    np.testing.assert_allclose(g, p / n, atol=1e-12)


# ------------------------------------------------- against the reference backend --


@pytest.mark.skipif(len(BACKEND_NAMES) < 2, reason="one backend only")
@SETTINGS
@given(
    n=st.integers(0, 9),
    d=st.integers(1, 9),
    m=st.integers(1, 9),
    dtype=st.sampled_from([np.float64, np.float32]),
    depth=st.integers(1, 3),
    data=st.data(),
)
def test_backends_agree_on_random_networks(n, d, m, dtype, depth, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, d)).astype(dtype) * data.draw(st.sampled_from([1.0, 100.0]))
    sizes = [d] + [m] * depth

    def run(backend):
        with fg.use_backend(backend):
            model = nn.MLP(sizes, rng=0, dtype=dtype)
            out = model(x)
            loss = (out * out).sum() if out.size else out.sum()
            loss.backward()
            return [out.data] + [p.grad for p in model.parameters()]

    tol = {np.float64: 1e-10, np.float32: 1e-4}[dtype]
    for a, b in zip(run("reference"), run(BACKEND_NAMES[0]), strict=True):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(a).max(initial=0)))


@pytest.mark.skipif(len(BACKEND_NAMES) < 2, reason="one backend only")
@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    dtype=st.sampled_from([np.float64, np.float32]),
    data=st.data(),
)
def test_backends_agree_on_sigmoid_of_any_values(shape, dtype, data):
    z = data.draw(
        hnp.arrays(
            dtype,
            shape,
            elements=st.one_of(
                st.floats(-1e4, 1e4, width=32), st.sampled_from([np.nan, np.inf, -np.inf])
            ),
        )
    )
    outs = []
    for backend in ("reference", BACKEND_NAMES[0]):
        with fg.use_backend(backend), np.errstate(all="ignore"):
            t = fg.tensor(z, requires_grad=True)
            h = F.sigmoid(t)
            h.backward(np.ones(shape, dtype))
            outs.append((h.data, t.grad))
    (h1, g1), (h2, g2) = outs
    np.testing.assert_allclose(h1, h2, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-30, equal_nan=True)
    finite = np.isfinite(z)
    assert np.all((h1[finite] >= 0) & (h1[finite] <= 1))
