"""The functional face (SPEC §4): autograd's operators, their conventions, higher order.
Mirrors src/fastgrad/_functional.py."""

import numpy as onp
import pytest

import fastgrad.numpy as np
from fastgrad import (
    checkpoint,
    deriv,
    elementwise_grad,
    grad,
    grad_and_aux,
    hessian,
    hessian_tensor_product,
    jacobian,
    make_hvp,
    make_jvp,
    make_vjp,
    tensor_jacobian_product,
    value_and_grad,
)


def tanh(x):
    return (1.0 - np.exp(-2 * x)) / (1.0 + np.exp(-2 * x))


def test_tanh_derivatives_closed_form():
    x = 0.7
    t = onp.tanh(x)
    assert onp.isclose(grad(tanh)(x), 1 - t**2)
    assert onp.isclose(grad(grad(tanh))(x), -2 * t * (1 - t**2))
    assert onp.isclose(grad(grad(grad(tanh)))(x), -2 * (1 - t**2) * (1 - 3 * t**2))


def test_gradient_matches_argument_structure_and_dtype():
    params = {"W": onp.ones((2, 3), onp.float32), "b": [onp.zeros(2), 1.0]}
    g = grad(lambda p: np.sum(p["W"] ** 2) + np.sum(p["b"][0]) + p["b"][1] * 3.0)(params)
    assert g["W"].dtype == onp.float32 and onp.allclose(g["W"], 2.0)
    assert onp.allclose(g["b"][0], 1.0) and onp.isclose(g["b"][1], 3.0)


def test_argnum_tuple_and_value_and_grad():
    f = lambda x, y: x * np.sin(y)  # noqa: E731
    gx, gy = grad(f, (0, 1))(2.0, 0.5)
    assert onp.isclose(gx, onp.sin(0.5)) and onp.isclose(gy, 2 * onp.cos(0.5))
    v, g = value_and_grad(f, 1)(2.0, 0.5)
    assert onp.isclose(v, 2 * onp.sin(0.5)) and onp.isclose(g, 2 * onp.cos(0.5))


def test_grad_needs_real_scalar_output():
    with pytest.raises(TypeError):
        grad(lambda x: x * 2)(onp.zeros(2))
    with pytest.raises(TypeError):
        grad(lambda x: np.all(x > 0))(onp.zeros(2))


def test_jacobian_hessian_and_products():
    A = onp.random.RandomState(0).randn(3, 3)
    f = lambda x: np.tanh(np.dot(A, x))  # noqa: E731
    x = onp.array([0.1, -0.2, 0.3])
    J = jacobian(f)(x)
    assert onp.allclose(J, (1 - onp.tanh(A @ x) ** 2)[:, None] * A)
    v = onp.array([1.0, 2.0, 3.0])
    assert onp.allclose(make_jvp(f)(x)(v)[1], J @ v)
    assert onp.allclose(make_vjp(f)(x)[0](v), v @ J)
    assert onp.allclose(tensor_jacobian_product(f)(x, v), v @ J)
    s = lambda x: np.sum(x**3)  # noqa: E731
    H = hessian(s)(x)
    assert onp.allclose(H, onp.diag(6 * x))
    assert onp.allclose(make_hvp(s)(x)[0](v), H @ v)
    assert onp.allclose(hessian_tensor_product(s)(x, v), H @ v)


def test_elementwise_grad_deriv_grad_and_aux_checkpoint():
    x = onp.linspace(-1, 1, 5)
    assert onp.allclose(elementwise_grad(np.sin)(x), onp.cos(x))
    assert onp.allclose(deriv(np.sin)(x), onp.cos(x))
    g, aux = grad_and_aux(lambda x: (np.sum(x**2), "aux"))(x)
    assert aux == "aux" and onp.allclose(g, 2 * x)
    assert onp.allclose(grad(lambda x: np.sum(checkpoint(np.sin)(x)))(x), onp.cos(x))


def test_no_perturbation_confusion():
    # d/dx [x · d/dy (x y)] = d/dx x² = 2x
    assert onp.isclose(grad(lambda x: x * grad(lambda y: x * y)(2.0))(3.0), 6.0)


def test_operator_names_follow_autograd():
    def foo(x):
        return x

    assert grad(foo, 1).__name__ == "grad_of_foo_wrt_argnum_1"
