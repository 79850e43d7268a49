"""fastgrad.numpy (SPEC §4): each derivative against central finite differences, to
second order (the vjps are differentiated again), plus closed forms and plain-array speed
paths. Mirrors src/fastgrad/numpy/."""

import numpy as onp
import pytest

import fastgrad as fg
import fastgrad.numpy as np
from fastgrad import grad, hessian, make_vjp
from fastgrad.extend import defvjp, primitive
from fastgrad.test_util import check_grads, combo_check

rng = onp.random.RandomState(0)
R = lambda *shape: rng.randn(*shape)  # noqa: E731


def rev(fun, order=2):
    return check_grads(fun, modes=["rev"], order=order)


UNARY = [
    (np.sin, R(3, 2)),
    (np.cos, R(3)),
    (np.tan, 0.3 * R(4)),
    (np.tanh, R(4)),
    (np.exp, R(2, 2)),
    (np.log, 1.5 + R(3) ** 2),
    (np.log2, 1.5 + R(3) ** 2),
    (np.log10, 1.5 + R(3) ** 2),
    (np.log1p, R(3) ** 2),
    (np.expm1, R(3)),
    (np.exp2, R(3)),
    (np.sqrt, 1 + R(3) ** 2),
    (np.square, R(3)),
    (np.reciprocal, 2 + R(3) ** 2),
    (np.sinh, R(3)),
    (np.cosh, R(3)),
    (np.arcsin, 0.5 * onp.tanh(R(3))),
    (np.arccos, 0.5 * onp.tanh(R(3))),
    (np.arctan, R(3)),
    (np.arcsinh, R(3)),
    (np.arccosh, 2 + R(3) ** 2),
    (np.arctanh, 0.5 * onp.tanh(R(3))),
    (np.abs, 1 + R(3) ** 2),
    (np.fabs, R(3) + 3),
    (np.sinc, R(4)),
    (np.degrees, R(3)),
    (np.radians, R(3)),
    (np.negative, R(3)),
]


@pytest.mark.parametrize("fun,x", UNARY, ids=[f.__name__ for f, _ in UNARY])
def test_unary(fun, x):
    rev(fun)(x)


BINARY = [
    np.add,
    np.subtract,
    np.multiply,
    np.true_divide,
    np.power,
    np.arctan2,
    np.hypot,
    np.logaddexp,
    np.logaddexp2,
    np.maximum,
    np.minimum,
    np.fmax,
    np.fmin,
    np.mod,
]


@pytest.mark.parametrize("fun", BINARY, ids=[f.__name__ for f in BINARY])
def test_binary_broadcasting(fun):
    x, y = 1.5 + rng.rand(3, 2), 1.2 + rng.rand(1, 2)
    check_grads(fun, argnum=(0, 1), modes=["rev"])(x, y)


def test_reductions():
    x = R(3, 4)
    for f in (np.sum, np.mean, np.max, np.min, np.prod, np.var, np.std):
        combo_check(f, (0,), modes=["rev"])([x], axis=[None, 0, 1], keepdims=[True, False])


def test_shape_functions():
    x = R(2, 3, 4)
    for f in (
        np.ravel,
        np.squeeze,
        lambda a: np.moveaxis(a, 0, 2),
        lambda a: np.rollaxis(a, 2),
        lambda a: np.transpose(a, (1, 2, 0)),
        np.flipud,
        lambda a: np.rot90(a, 1),
        lambda a: np.roll(a, 2, axis=1),
        lambda a: np.repeat(a, 2, axis=1),
        lambda a: np.tile(a, (2, 1, 1)),
        lambda a: np.cumsum(a, axis=1),
        lambda a: np.diff(a, 2, axis=2),
        lambda a: np.sort(a, axis=1),
        lambda a: np.pad(a, 1),
        lambda a: np.concatenate([a, a * 2], axis=2),
        lambda a: np.stack([a, a], axis=1),
        lambda a: np.split(a, 2, axis=2)[1],
        lambda a: np.triu(a[0]),
        lambda a: np.diagonal(a, 1, 1, 2),
        lambda a: np.trace(a[0], 1),
        lambda a: np.expand_dims(a, 1),
        lambda a: a[1, ::-1, [0, 2, 2]],
    ):
        rev(f)(x)


def test_contractions():
    a, b = R(2, 3, 4), R(4, 3, 5)
    check_grads(np.dot, argnum=(0, 1), modes=["rev"], order=3)(R(2, 3), R(3, 4))
    check_grads(np.dot, argnum=(0, 1), modes=["rev"])(a, R(3, 4, 5))
    check_grads(lambda a, b: np.tensordot(a, b, ([1, 2], [1, 0])), argnum=(0, 1), modes=["rev"])(
        a, b
    )
    check_grads(lambda a, b: np.einsum("ijk,kjl->il", a, b), argnum=(0, 1), modes=["rev"])(a, b)
    check_grads(lambda a, b: np.einsum("...k,nk->...", a, b), argnum=(0, 1), modes=["rev"])(
        R(3, 5), R(4, 5)
    )
    check_grads(np.outer, argnum=(0, 1), modes=["rev"])(R(3), R(4))
    check_grads(np.kron, argnum=(0, 1), modes=["rev"])(R(2, 2), R(3, 1))
    check_grads(np.cross, argnum=(0, 1), modes=["rev"])(R(4, 3), R(4, 3))


def test_array_from_traced_values():
    rev(lambda x: np.array([[x, x * 2.0], [x**2, 1.0]]))(1.3)
    assert grad(lambda x: np.mean([x, x + 2]))(0.0) == 1.0
    rev(lambda x: np.r_[x, onp.ones(2), x])(R(3))


LINALG = [
    (np.linalg.inv, R(3, 3) + 3 * onp.eye(3)),
    (np.linalg.det, R(2, 3, 3)),
    (lambda a: np.linalg.slogdet(a)[1], R(3, 3)),
    (lambda a: np.linalg.solve(a, onp.arange(3.0)), R(3, 3) + 3 * onp.eye(3)),
    (np.linalg.pinv, R(4, 3)),
    (lambda a: np.linalg.cholesky(a @ a.T + 3 * onp.eye(3)), R(3, 3)),
    (lambda a: np.linalg.eigh(a + a.T)[0], R(3, 3)),
    (lambda a: np.linalg.eigh(a + a.T)[1], R(3, 3)),
    (lambda a: np.linalg.svd(a, compute_uv=False), R(4, 3)),
    (lambda a: np.linalg.norm(a), R(3, 4)),
    (lambda a: np.linalg.norm(a, 3, axis=1), R(3, 4)),
    (lambda a: np.linalg.norm(a, "nuc"), R(3, 4)),
]


@pytest.mark.parametrize("fun,x", LINALG, ids=[str(i) for i in range(len(LINALG))])
def test_linalg(fun, x):
    rev(fun)(x)


def test_logdet_hessian_closed_form():
    # ∂² log det A / ∂A_ij ∂A_kl = −(A⁻¹)_li (A⁻¹)_jk
    A = R(3, 3) + 3 * onp.eye(3)
    H = hessian(lambda a: np.linalg.slogdet(a)[1])(A)
    Ainv = onp.linalg.inv(A)
    assert onp.allclose(H, -onp.einsum("li,jk->ijkl", Ainv, Ainv))


def test_plain_arrays_in_plain_arrays_out():
    x = R(3, 3)
    for out in (
        np.sin(x),
        np.sum(x, axis=0),
        np.dot(x, x),
        np.linalg.inv(x + 3 * onp.eye(3)),
        np.einsum("ij->j", x),
        np.var(x),
        np.concatenate([x, x]),
    ):
        assert type(out) in (onp.ndarray, onp.float64)


def test_tensor_face_and_numpy_face_are_one_tape():
    W = fg.tensor(R(3, 2), requires_grad=True)
    loss = np.sum(np.tanh(W @ onp.ones(2)) ** 2) + (W * W).sum()
    loss.backward()
    expected = grad(
        lambda w: onp.sum(0) + np.sum(np.tanh(np.dot(w, onp.ones(2))) ** 2) + np.sum(w * w)
    )(W.data)
    assert onp.allclose(W.grad, expected)
    # and grad of a function written with Tensor methods
    assert onp.allclose(grad(lambda x: (x * x).sum())(onp.arange(3.0)), 2 * onp.arange(3.0))


def test_constants_and_nondifferentiable_functions():
    def fun(x):
        assert np.allclose(x, x * 3.0 / 3.0)
        return np.sum(np.floor(x) + x * np.sign(x))

    assert onp.allclose(grad(fun)(onp.array([1.5, -2.5])), [1.0, -1.0])
    with pytest.raises(TypeError):
        grad(lambda x: np.allclose(x, x))(onp.ones(2))


def test_unknown_function_raises_not_implemented():
    with pytest.raises(NotImplementedError):
        grad(lambda x: np.sum(np.cumprod(x)))(onp.ones(3))


def test_custom_primitive_and_its_second_derivative():
    @primitive
    def cube(x):
        return x**3

    defvjp(cube, lambda ans, x: lambda g: g * 3 * x**2)
    assert onp.isclose(grad(cube)(2.0), 12.0)
    assert onp.isclose(grad(grad(cube))(2.0), 12.0)
    rev(cube)(R(3))


def test_item_assignment_into_traced_value_is_a_type_error():
    def fun(a):
        a[0] = 1.0
        return a

    with pytest.raises(TypeError):
        grad(lambda a: np.sum(fun(a)))(onp.ones(3))


def test_astype_gradient_keeps_input_dtype():
    x = onp.arange(3, dtype=onp.float32)
    assert grad(lambda x: np.sum(np.sin(x.astype("float64"))))(x).dtype == onp.float32


def test_vjp_of_vjp_of_index():
    W = R(5, 4)
    fun = lambda w: np.sum(w[onp.array([0, 0, 3])] ** 2)  # noqa: E731
    vjp2, _ = make_vjp(lambda c: make_vjp(fun)(W)[0](c))(1.0)
    expected = onp.zeros_like(W)
    expected[0] = 4 * W[0]
    expected[3] = 2 * W[3]
    assert onp.allclose(vjp2(onp.ones_like(W)), onp.sum(expected * 1.0))


# --------------------------------------------- rules fixed with the registry walk --


def test_clip_differentiates_its_bounds():
    # y = min(max(x, lo), hi): each element comes from exactly one of the three
    x = onp.array([-2.0, -0.5, 0.1, 0.7, 3.0])
    lo, hi = onp.array([-1.0, -1.0, 0.5, 0.5, 0.5]), 1.0
    gx, glo, ghi = grad(lambda x, lo, hi: np.sum(np.clip(x, lo, hi)), (0, 1, 2))(x, lo, hi)
    assert onp.array_equal(gx, [0, 1, 0, 1, 0])
    assert onp.array_equal(glo, [1, 0, 1, 0, 0])
    assert ghi == 1.0
    check_grads(lambda lo, hi: np.clip(x, lo, hi), argnum=(0, 1), modes=["rev"])(lo, 1.0)


def test_clip_bounds_may_broadcast_x():
    x, hi = R(3), 0.5 + R(2, 3)
    check_grads(lambda x, hi: np.clip(x, -0.5, hi), argnum=(0, 1), modes=["rev"])(x, hi)


def test_astype_to_integers_is_a_step_function():
    x = onp.array([0.4, 1.7, -2.3])
    assert onp.array_equal(grad(lambda v: np.sum(np.astype(v, onp.int64) * v))(x), [0.0, 1.0, -2.0])
    assert onp.array_equal(grad(lambda v: np.sum(v.astype(bool) * 1.0))(x), [0.0, 0.0, 0.0])


def test_prod_with_zeros():
    # ∂/∂xᵢ Π x = Π_{j≠i} xⱼ: where xᵢ is the only zero, the product of the others
    assert onp.array_equal(grad(np.prod)(onp.array([2.0, 0.0, 3.0])), [0.0, 6.0, 0.0])
    assert onp.array_equal(grad(np.prod)(onp.array([2.0, 0.0, 0.0])), [0.0, 0.0, 0.0])
    # ∂²/∂x₁∂x₂ Π x = x₀ at two zeros
    H = hessian(np.prod)(onp.array([2.0, 0.0, 0.0]))
    assert onp.array_equal(H, [[0, 0, 0], [0, 0, 2.0], [0, 2.0, 0]])
    x = R(3, 4)
    x[1, 2] = x[2, 0] = x[2, 3] = 0.0
    combo_check(np.prod, (0,), modes=["rev"])([x], axis=[None, 0, 1], keepdims=[True, False])


def test_sinc_derivatives_at_zero():
    # sinc(x) = 1 − (πx)²/6 + …: sinc'(0) = 0, sinc''(0) = −π²/3
    assert grad(np.sinc)(0.0) == 0.0
    assert onp.isclose(grad(grad(np.sinc))(0.0), -onp.pi**2 / 3, rtol=1e-12)
    assert onp.isclose(grad(grad(np.sinc))(1e-4), -onp.pi**2 / 3 + onp.pi**4 / 10 * 1e-8, rtol=1e-9)


def test_diff_with_prepend_and_append():
    x = R(2, 4)
    rev(lambda a: np.diff(a, prepend=[[0.5], [1.0]], append=2.0))(x)
    rev(lambda a: np.diff(a, 2, axis=0, prepend=a[:1]))(x)


# -------------------------------------- derivatives fastgrad refuses, by name --


def test_pad_in_another_mode_refuses_at_the_backward():
    x = R(3)
    assert onp.allclose(np.pad(fg.tensor(x), 1, "edge").data, onp.pad(x, 1, "edge"))
    with pytest.raises(NotImplementedError, match="pad only in mode 'constant', not 'edge'"):
        grad(lambda a: np.sum(np.pad(a, 1, "edge")))(x)


def test_einsum_with_a_repeated_index_refuses_at_the_backward():
    with pytest.raises(NotImplementedError, match="einsum.*'ii'"):
        grad(lambda a: np.einsum("ii->", a))(R(3, 3))


def test_function_without_a_rule_returning_several_arrays():
    # each array of a tuple result is recorded; the backward through any raises, naming it
    x, y = fg.tensor(R(3), requires_grad=True), fg.tensor(R(2), requires_grad=True)
    X, Y = np.meshgrid(x, y)
    assert onp.array_equal(X.data, onp.meshgrid(x.data, y.data)[0])
    with pytest.raises(NotImplementedError, match="meshgrid"):
        np.sum(X * Y).backward()


# ------------------------------------------------------- the face's registry entries --


def _face_entries():
    from fastgrad._registry import REGISTRY

    return [p for p in REGISTRY if "fastgrad.numpy" in getattr(p.samples, "__module__", "")]


@pytest.mark.parametrize("prim", _face_entries(), ids=lambda p: p.name)
def test_explain_writes_every_face_entry(prim):
    """Each entry's formula formats on every one of its samples: one forward line with its
    multiply-adds, and a rule of its own (not the generic ∂) for each argument."""
    for sample in prim.samples(onp.random.default_rng(0)):
        positions = sample.positions(prim)
        args = [fg.tensor(onp.asarray(a, dtype=float), requires_grad=True) if i in positions else a
                for i, a in enumerate(sample.args)]
        text = fg.explain(prim(*args, **sample.kwargs))
        forward = [ln for ln in text.splitlines() if ln.startswith("  v") and " forward " in ln]
        backward = [ln for ln in text.splitlines() if ln.startswith("      ")]
        assert len(forward) == 1, text
        assert len(backward) == len(positions), text
        assert not any("∂" in ln for ln in backward), text
        if prim.name != "einsum":  # (its count depends on the subscripts, not the shapes)
            assert "forward ? MAC" not in forward[0] and not any("(? MAC)" in ln for ln in backward)
