"""fastgrad.numpy.linalg beyond the registry walk (tests/test_registry.py checks every
rule against finite differences on its samples): the compositions (multi_dot,
matrix_power, std of one element), eigh's and cholesky's one-triangle convention (against
finite differences, and against autograd where it is installed), and the functions
without a derivative, which must refuse at the backward, naming themselves — never a
zero gradient."""

import numpy as onp
import pytest
from _numeric import numeric_grad

import fastgrad as fg
import fastgrad.numpy as np

rng = onp.random.RandomState(3)


def _check(f, *args, argnum=0):
    """f's gradient with respect to args[argnum] against central differences."""
    got = fg.grad(f, argnum)(*args)
    want = numeric_grad(lambda *a: float(f(*a)), list(args), argnum)
    onp.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def _weights(*shape):
    return onp.random.RandomState(11).normal(size=shape)


# ------------------------------------------------------------------ multi_dot --


@pytest.mark.parametrize("shapes", [[(3, 4), (4, 2)], [(3, 4), (4, 5), (5, 2)],
                                    [(4,), (4, 3), (3, 2)], [(2, 4), (4, 3), (3,)],
                                    [(4,), (4, 3), (3,)]], ids=str)
def test_multi_dot_gradient_of_every_factor(shapes):
    arrays = [rng.normal(size=s) for s in shapes]
    out = onp.linalg.multi_dot(arrays)
    u = _weights(*onp.shape(out))

    def f(*ms):
        return np.sum(u * np.linalg.multi_dot(list(ms)))

    assert onp.allclose(np.linalg.multi_dot([fg.tensor(a) for a in arrays]).data, out)
    for i in range(len(arrays)):
        _check(f, *arrays, argnum=i)


def test_multi_dot_of_one_array_is_refused():
    with pytest.raises(ValueError, match="multi_dot"):
        np.linalg.multi_dot([fg.tensor(onp.eye(2))])


# --------------------------------------------------------------- matrix_power --


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -2])
def test_matrix_power_gradient(n):
    a = rng.normal(size=(3, 3)) + 2.0 * onp.eye(3)
    u = _weights(3, 3)

    def f(m):
        return np.sum(u * np.linalg.matrix_power(m, n))

    assert onp.allclose(np.linalg.matrix_power(fg.tensor(a), n).data, onp.linalg.matrix_power(a, n))
    _check(f, a)


def test_matrix_power_of_a_stack():
    a = rng.normal(size=(2, 3, 3))
    u = _weights(2, 3, 3)
    _check(lambda m: np.sum(u * np.linalg.matrix_power(m, 3)), a)


# ------------------------------------------------------------------------ std --


def test_std_of_one_element_has_gradient_zero():
    # σ of one element is 0 whatever the element is: its derivative is 0 (autograd's
    # answer), not the NaN of (x − x̄)/σ
    for x in (onp.array([2.5]), onp.array([[1.0], [3.0]])):
        g = fg.grad(lambda v: np.sum(np.std(v, axis=-1)))(x)
        assert onp.array_equal(g, onp.zeros_like(x))
    assert fg.grad(lambda v: np.std(v))(onp.array([4.0])) == 0.0


@pytest.mark.parametrize("kwargs", [{}, {"axis": 0}, {"axis": 1, "ddof": 1},
                                    {"axis": (0, 1), "keepdims": True}], ids=str)
def test_std_gradient(kwargs):
    x = rng.normal(size=(3, 4))
    _check(lambda v: np.sum(_weights(*onp.shape(onp.std(x, **kwargs))) * np.std(v, **kwargs)), x)


def test_std_method_of_a_tensor_of_one_element():
    t = fg.tensor([3.0], requires_grad=True)
    t.std().backward()
    assert onp.array_equal(t.grad, [0.0])


# ------------------------------------------------------- eigh: one triangle read --


def _eigh_loss(UPLO, u, v_weights):
    def f(a):
        w, V = np.linalg.eigh(a, UPLO)
        # V's columns have a sign NumPy chooses: weigh V ∘ V, which does not depend on it
        return np.sum(u * w) + np.sum(v_weights * V * V)

    return f


@pytest.mark.parametrize("UPLO", ["L", "U"])
def test_eigh_gradient_is_on_the_triangle_it_reads(UPLO):
    a = rng.normal(size=(4, 4))  # not symmetric: eigh reads the UPLO triangle only
    f = _eigh_loss(UPLO, _weights(4), _weights(4, 4))
    g = fg.grad(f)(a)
    other = onp.triu(onp.ones((4, 4)), 1) if UPLO == "L" else onp.tril(onp.ones((4, 4)), -1)
    assert onp.all(g[other == 1] == 0.0)
    _check(f, a)


def test_eigh_gradient_of_a_symmetric_function_of_parameters():
    b = rng.normal(size=(3, 3))
    f = _eigh_loss("L", _weights(3), _weights(3, 3))
    _check(lambda m: f(m + m.T), b)


def test_eigh_matches_autograd():
    autograd = pytest.importorskip("autograd")
    anp = autograd.numpy
    u, vw = _weights(4), _weights(4, 4)
    for UPLO in ("L", "U"):
        a = rng.normal(size=(4, 4))

        def ag(m, UPLO=UPLO):
            w, V = anp.linalg.eigh(m, UPLO)
            return anp.sum(u * w) + anp.sum(vw * V * V)

        onp.testing.assert_allclose(fg.grad(_eigh_loss(UPLO, u, vw))(a), autograd.grad(ag)(a),
                                    rtol=1e-9, atol=1e-12)


def test_cholesky_gradient_is_on_the_triangle_it_reads():
    b = rng.normal(size=(3, 3))
    a = b @ b.T + 3 * onp.eye(3) + onp.triu(rng.normal(size=(3, 3)), 1)  # upper: not read
    u = _weights(3, 3)
    g = fg.grad(lambda m: np.sum(u * np.linalg.cholesky(m)))(a)
    assert onp.all(g[onp.triu_indices(3, 1)] == 0.0)
    _check(lambda m: np.sum(u * np.linalg.cholesky(m)), a)


def test_cholesky_of_a_symmetric_function_matches_autograd():
    autograd = pytest.importorskip("autograd")
    b = rng.normal(size=(3, 3))
    u = _weights(3, 3)

    def f(m, np=np):
        return np.sum(u * np.linalg.cholesky(m @ m.T + 3 * onp.eye(3)))

    onp.testing.assert_allclose(fg.grad(f)(b), autograd.grad(lambda m: f(m, autograd.numpy))(b),
                                rtol=1e-9, atol=1e-12)


# -------------------------------------------- functions without a derivative --


NO_RULE = {
    "qr": lambda a: np.sum(np.linalg.qr(a)[1]),
    "lstsq": lambda a: np.sum(np.linalg.lstsq(a, onp.ones(3), rcond=None)[0]),
}


@pytest.mark.parametrize("name", sorted(NO_RULE))
def test_function_without_a_rule_refuses_at_the_backward(name):
    a = rng.normal(size=(3, 3)) + 3 * onp.eye(3)
    with pytest.raises(NotImplementedError, match=f"numpy.linalg.{name}\\b"):
        fg.grad(NO_RULE[name])(a)


@pytest.mark.parametrize("name", sorted(NO_RULE))
def test_function_without_a_rule_records_its_forward_on_tensors(name):
    # the forward works on a tensor and gives NumPy's value; only the backward refuses
    a = rng.normal(size=(3, 3)) + 3 * onp.eye(3)
    t = fg.tensor(a, requires_grad=True)
    loss = NO_RULE[name](t)
    assert onp.isclose(float(loss.data), NO_RULE[name](a))
    with pytest.raises(NotImplementedError, match=f"numpy.linalg.{name}\\b"):
        loss.backward()


def test_tuple_results_keep_their_names_and_constants():
    a = rng.normal(size=(3, 3)) + 3 * onp.eye(3)
    t = fg.tensor(a, requires_grad=True)
    q, r = np.linalg.qr(t)
    assert isinstance(q, fg.Tensor) and onp.allclose(q.data @ r.data, a)
    x, residuals, rank, s = np.linalg.lstsq(t, onp.ones(3), rcond=None)
    assert rank == 3 and isinstance(x, fg.Tensor)
    assert onp.allclose(x.data, onp.linalg.solve(a, onp.ones(3)))
    w = np.linalg.eig(t).eigenvalues
    assert onp.allclose(onp.sort(w.data), onp.sort(onp.linalg.eigvals(a)))


def test_plain_numpy_linalg_on_a_tensor_is_a_type_error_naming_it():
    t = fg.tensor(rng.normal(size=(3, 3)), requires_grad=True)
    for call, name in [(lambda: onp.linalg.qr(t), "numpy.linalg.qr"),
                       (lambda: onp.linalg.lstsq(t, onp.ones(3)), "numpy.linalg.lstsq")]:
        with pytest.raises(TypeError, match=name.replace(".", r"\.")):
            call()


def test_plain_numpy_linalg_with_a_twin_records():
    a = rng.normal(size=(3, 3)) + 3 * onp.eye(3)
    t = fg.tensor(a, requires_grad=True)
    onp.linalg.det(t).backward()  # NumPy's det on a tensor is fastgrad's
    onp.testing.assert_allclose(t.grad, onp.linalg.det(a) * onp.linalg.inv(a).T)


# ------------------------------------- eig and svd with U and V (autograd's rules) --

# Functions of the decompositions that do not depend on the sign or phase NumPy picks.
DECOMPOSED = {
    "eigvals": lambda a: np.sum(np.real(np.linalg.eigvals(a)) ** 2),
    "eig": lambda a: np.sum(np.abs(np.linalg.eig(a)[1]) ** 2 * _weights(3, 3)),
    "svd": lambda a: np.sum(np.abs(np.linalg.svd(a, full_matrices=False)[0]) * _weights(3, 3))
    + np.sum(np.linalg.svd(a, full_matrices=False)[1] ** 3)
    + np.sum(np.abs(np.linalg.svd(a, full_matrices=False)[2]) * _weights(3, 3).T),
}


@pytest.mark.parametrize("name", sorted(DECOMPOSED))
def test_decompositions_with_vectors_are_differentiable(name):
    a = rng.normal(size=(3, 3)) + onp.diag([3.0, -1.0, 0.5])  # distinct eigen/singular values
    _check(DECOMPOSED[name], a)


@pytest.mark.parametrize("name", sorted(DECOMPOSED))
def test_decompositions_with_vectors_match_autograd(name):
    autograd = pytest.importorskip("autograd")
    a = rng.normal(size=(3, 3)) + onp.diag([3.0, -1.0, 0.5])
    f = DECOMPOSED[name] if name != "eigvals" else (  # autograd has no rule for eigvals
        lambda a: np.sum(np.real(np.linalg.eig(a)[0]) ** 2))
    g = f.__globals__.copy()
    g["np"] = autograd.numpy
    f_ag = type(f)(f.__code__, g)
    onp.testing.assert_allclose(fg.grad(f)(a), autograd.grad(f_ag)(a), rtol=1e-8, atol=1e-10)


def test_svd_full_matrices_of_a_non_square_matrix_refuses_naming_it():
    # U or V then has columns the input does not determine: autograd refuses, so do we
    a = rng.normal(size=(4, 3))
    with pytest.raises(NotImplementedError, match="svd"):
        fg.grad(lambda a: np.sum(np.linalg.svd(a, full_matrices=True)[0]))(a)
