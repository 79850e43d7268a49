"""fastgrad.compile takes what a model is written with (issue 17): each case compiles and
its value and gradient equal eager's (float64, rtol 1e-9), on this backend's executor —
the suite runs on both, so on the cython and the reference executors. The eager result
is itself checked by the registry's finite-difference tests; here one more independent
check is NumPy by hand where the gradient is a closed form.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad as fg
import fastgrad.numpy as fnp
from fastgrad import TracingError
from fastgrad._opcodes import BGEMM, GEMM

A = np.random.default_rng(3).normal(size=(4, 5))
TIES = np.round(np.random.default_rng(4).normal(size=(4, 5)))  # many ties in each row

# the table (functions of a (4, 5) array), and the cases its text names
TABLE = {
    "slice": lambda a: a[1:3, ::2],
    "integer arrays": lambda a: a[[0, 2], [1, 3]],
    "concatenate": lambda a: fnp.concatenate([a, 2.0 * a], axis=0),
    "stack": lambda a: fnp.stack([a, fnp.sin(a)], axis=1),
    "max axis 1": lambda a: a.max(axis=1),
    "leaky where": lambda a: fnp.where(a > 0, a, 0.1 * a),
    "abs": lambda a: fnp.abs(a),
    "dot of vectors": lambda a: fnp.dot(a[0], a[1]),
    "einsum": lambda a: fnp.einsum("ij,kj->ik", a, fnp.tanh(a)),
    "clip": lambda a: fnp.clip(a, -0.5, 0.5),
    "cumsum": lambda a: fnp.cumsum(a, axis=1),
    "split": lambda a: fnp.split(a, [1, 3], axis=0)[1] * fnp.split(a, [1, 3], axis=0)[2][:2],
    "constant mask": lambda a: a[np.array([True, False, True, True])],
    "repeated indices": lambda a: a[[0, 2, 0, 0]] * np.arange(20.0).reshape(4, 5),
    "batched matmul": lambda a: fnp.matmul(fnp.reshape(a, (2, 2, 5)), fnp.reshape(a, (2, 5, 2))),
    "batch by matrix": lambda a: fnp.matmul(fnp.stack([a, a]), fnp.transpose(a)),
    "min over all": lambda a: fnp.min(a) * a,
    "comparison mask": lambda a: (a >= 0.2) * a + (a < -0.1) * a * a,
    "prod": lambda a: fnp.prod(a, axis=0),
    "std": lambda a: fnp.std(a, axis=1),
    "pad": lambda a: fnp.pad(a, ((1, 0), (2, 1)), mode="constant", constant_values=0.5),
    "flip": lambda a: fnp.flip(a, 1) * a,
    "softmax axis 0": lambda a: fg.nn.functional.softmax(a, axis=0),
    "tensordot": lambda a: fnp.tensordot(a, fnp.exp(a), axes=([1], [1])),
}


def _check(body, x, rtol=1e-9):
    u = np.random.default_rng(11).normal(size=np.shape(body(x)))

    def f(a):
        return fnp.sum(u * body(a))

    want = fg.value_and_grad(f)(x)
    compiled = fg.compile(fg.value_and_grad(f))
    compiled(x)  # the trace
    for _ in range(2):  # the replays, on a fresh input too
        value, grad = compiled(x)
        np.testing.assert_allclose(value, want[0], rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(grad, want[1], rtol=rtol, atol=1e-12)
    y = x * 1.5 - 0.25
    np.testing.assert_allclose(compiled(y)[1], fg.grad(f)(y), rtol=rtol, atol=1e-12)
    assert compiled.traces == 1
    return compiled


@pytest.mark.parametrize("name", sorted(TABLE))
def test_table_compiles_and_matches_eager(name):
    _check(TABLE[name], A)


def test_max_ties_are_split_as_eagerly():
    """x̄ of max along an axis: the row's cotangent shared evenly by its tied maxima."""
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0]])
    compiled = _check(lambda a: a.max(axis=1), x)
    f = fg.compile(fg.grad(lambda a: fnp.sum(a.max(axis=1))))
    f(x)
    np.testing.assert_array_equal(f(x), [[0, 0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3, 0]])
    assert compiled.traces == 1
    _check(lambda a: a.max(axis=1), TIES)


def test_repeated_indices_add_up():
    """a[[0, 2, 0, 0]]'s adjoint adds the three copies of row 0 (np.add.at)."""
    f = fg.compile(fg.grad(lambda a: fnp.sum(a[[0, 2, 0, 0]] * np.arange(20.0).reshape(4, 5))))
    f(A)
    want = np.zeros((4, 5))
    np.add.at(want, [0, 2, 0, 0], np.arange(20.0).reshape(4, 5))
    np.testing.assert_array_equal(f(A), want)


def test_leaky_where_by_hand():
    f = fg.compile(fg.grad(lambda a: fnp.sum(fnp.where(a > 0, a, 0.1 * a))))
    f(A)
    np.testing.assert_array_equal(f(A), np.where(A > 0, 1.0, 0.1))
    np.testing.assert_array_equal(f(-A), np.where(-A > 0, 1.0, 0.1))  # the mask is data


@pytest.mark.parametrize("lhs,rhs,opcode", [((4, 5), (5, 3), GEMM), ((3, 4, 5), (5, 2), GEMM),
                                            ((3, 4, 5), (3, 5, 2), BGEMM),
                                            ((2, 3, 4, 5), (3, 5, 2), BGEMM)])
def test_batched_matmul_is_blas(lhs, rhs, opcode):
    """A batch of products is GEMMs (one, where the batch folds into the rows), no loop
    of elementwise instructions; value and gradients as eager."""
    r = np.random.default_rng(5)
    a, b = r.normal(size=lhs), r.normal(size=rhs)

    def f(a, b):
        return fnp.sum(fnp.tanh(fnp.matmul(a, b)))

    compiled = fg.compile(fg.value_and_grad(f, (0, 1)))
    compiled(a, b)
    value, (ga, gb) = compiled(a, b)
    want_value, (wa, wb) = fg.value_and_grad(f, (0, 1))(a, b)
    np.testing.assert_allclose(value, want_value, rtol=1e-9)
    np.testing.assert_allclose(ga, wa, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, wb, rtol=1e-9, atol=1e-12)
    ops = [ins.op for ins in compiled.plan_for(a, b).instrs]
    assert opcode in ops and ops.count(opcode) == 3  # forward, Ā, B̄


def test_transpose_undone_is_transposed_back():
    """(xᵀ · 1)ᵀ twice: the second transpose of a lazy one is an alias of its base, and its
    adjoint is still a transpose (found by the property test below: it was a reshape)."""
    c = np.arange(24.0).reshape(4, 6)

    def f(t):
        for _ in range(2):
            t = (t.T * 1.0).T
        return (t * c).sum()

    g = fg.compile(fg.grad(f))
    g(np.zeros((4, 6)))
    np.testing.assert_array_equal(g(np.zeros((4, 6))), c)


def test_python_if_on_a_mask_is_refused():
    f = fg.compile(fg.grad(lambda a: fnp.sum(a * 2 if (a > 0).all() else a)))
    with pytest.raises(TracingError, match="needs its value while tracing"):
        f(A)


# ------------------------------------------------ random compositions (hypothesis) --

SHAPE = (4, 6)
C = np.random.default_rng(9).normal(size=SHAPE)
MASK = np.random.default_rng(10).random(SHAPE) > 0.5

# the Tensor face's operations, each (4, 6) → (4, 6)
OPS = {
    "slice": lambda t: fg.concatenate([t[:, ::2], t[:, 1::2]], axis=1),
    "int index": lambda t: t[[3, 0, 0, 1]],
    "flip": lambda t: t[::-1, ::-1],
    "bool mask": lambda t: fg.where(MASK, t, 0.0) + t[MASK].sum(),
    "stack": lambda t: fg.stack([t, t * 0.5]).sum(axis=0),
    "max": lambda t: t - t.max(axis=1, keepdims=True),
    "min": lambda t: t * t.min(axis=0, keepdims=True),
    "where": lambda t: fg.where(t > 0, t, 0.1 * t),
    "maximum": lambda t: fg.maximum(t, C),
    "abs": lambda t: abs(t) + t,
    "clip": lambda t: t.clip(-0.8, 0.8),
    "cumsum": lambda t: t.cumsum(axis=1) * 0.3,
    "matmul": lambda t: fg.tanh(t @ t.T @ t * 0.2),
    "transpose": lambda t: (t.T * 1.0).T,
    "reshape": lambda t: t.reshape(6, 4).reshape(4, 6),
    "mask": lambda t: (t > 0.3) * t + (t <= 0.3) * t * t,
    "softmax": lambda t: fg.nn.functional.softmax(t, axis=0),
    "log_softmax": lambda t: fg.nn.functional.log_softmax(t, axis=-1),
    "exp": lambda t: fg.exp(fg.tanh(t)),
    "log": lambda t: fg.log(t * t + 1.0),
    "sqrt": lambda t: fg.sqrt(t * t + 1.0),
    "sin": fg.sin,
    "relu": fg.relu,
    "sigmoid": fg.sigmoid,
    "mean": lambda t: t - t.mean(axis=0),
    "sum": lambda t: t + t.sum(axis=1, keepdims=True) * 0.1,
    "3-d transpose": lambda t: t.reshape(2, 2, 6).transpose(1, 2, 0).reshape(4, 6),
    "transpose twice": lambda t: (t.T * C.T).T,
    "einsum": lambda t: fnp.einsum("ij,kj->ik", t, C) @ C * 0.1,
    "batched": lambda t: fnp.matmul(t.reshape(2, 2, 6), C.reshape(6, 4)).reshape(4, 4) @ C * 0.1,
    "prod": lambda t: t * fnp.prod(t * 0.1 + 1.0, axis=0),
    "repeat": lambda t: fnp.repeat(t[:, :3], 2, axis=1),
}


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=5),
       x=hnp.arrays(np.float64, SHAPE, elements=st.floats(-2, 2, allow_nan=False, width=64)))
def test_random_compositions_compile_and_match_eager(ops, x):
    """No composition is refused (a TracingError fails the test), and the replay's value
    and gradient equal eager's to rounding (rtol 1e-12: a sum may add in another order)."""

    def f(t):
        for name in ops:
            t = OPS[name](t)
        return (t * C).sum()

    want = fg.value_and_grad(f)(x)
    compiled = fg.compile(fg.value_and_grad(f))
    compiled(x)
    value, grad = compiled(x)
    np.testing.assert_allclose(value, want[0], rtol=1e-12, atol=1e-13, err_msg=str(ops))
    np.testing.assert_allclose(grad, want[1], rtol=1e-12, atol=1e-13, err_msg=str(ops))
