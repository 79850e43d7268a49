"""The names programs written for autograd import beyond NumPy (issue 15), each against an
independent expectation: a closed form, central differences, or autograd where installed.
(autograd's own suite runs these paths too: ../shared/tools/autograd-suite.)"""

import numpy as onp
import pytest
from _numeric import numeric_grad

import fastgrad as fg
import fastgrad.numpy as np
from fastgrad import grad
from fastgrad.extend import Box, VSpace, def_linear, defvjp, primitive, vspace

rng = onp.random.RandomState(5)


# ------------------------------------------------------------ primitives, old style --


def test_defvjp_with_argnum_and_defgrad_old_methods():
    @primitive
    def f(x, y):
        return x * onp.sin(y)

    with pytest.warns(UserWarning, match="deprecated"):  # autograd's old forms
        f.defvjp(lambda g, ans, vs, gvs, x, y: g * onp.sin(y), argnum=0)
        f.defgrad(lambda ans, x, y: lambda g: g * x * onp.cos(y), argnum=1)
    x, y = 1.3, 0.4
    assert onp.isclose(grad(f, 0)(x, y), onp.sin(y))
    assert onp.isclose(grad(f, 1)(x, y), x * onp.cos(y))


def test_defvjp_is_zero_gives_an_exact_zero_and_no_rule_still_refuses():
    @primitive
    def f(x, y):
        return x * y

    with pytest.warns(UserWarning, match="deprecated"):
        f.defvjp(lambda g, ans, vs, gvs, x, y: g * y, argnum=0)
        f.defvjp_is_zero(argnums=(1,))
    assert grad(f, 1)(2.0, 3.0) == 0.0

    @primitive
    def h(x):
        return 2 * x
    with pytest.raises(NotImplementedError, match="h"):
        grad(h)(1.0)


def test_def_linear_differentiates_in_every_argument():
    @primitive
    def scaled(a, x):
        return a * x

    def_linear(scaled)
    a, x = rng.normal(size=3), rng.normal(size=3)
    f = lambda a, x: np.sum(np.sin(scaled(a, x)))  # noqa: E731
    for argnum in (0, 1):
        onp.testing.assert_allclose(grad(f, argnum)(a, x),
                                    numeric_grad(lambda *v: float(f(*v)), [a, x], argnum),
                                    rtol=1e-6)


# ----------------------------------------------------------------------- VSpace --


def test_vspace_api_of_arrays_and_containers():
    x = rng.normal(size=(2, 3))
    vs = vspace(x)
    assert vs.shape == (2, 3) and vs.size == 6
    assert onp.array_equal(vs.zeros(), onp.zeros((2, 3)))
    basis = list(vs.standard_basis())
    assert len(basis) == 6 and onp.array_equal(sum(basis), onp.ones((2, 3)))
    assert onp.isclose(vs.inner_prod(x, x), onp.sum(x * x))
    onp.testing.assert_allclose(vs.add(x, x), 2 * x)
    onp.testing.assert_allclose(vs.scalar_mul(x, 3.0), 3 * x)
    c = vspace((x, {"a": 1.5}))
    assert c.size == 7
    assert len(list(c.standard_basis())) == 7
    # add and scalar_mul are differentiable, as autograd's
    g = grad(lambda s: np.sum(vs.scalar_mul(x, s)))(2.0)
    assert onp.isclose(g, onp.sum(x))


def test_a_users_box_and_vspace_for_its_own_type():
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    @primitive
    def make(a, b):
        return Pair(a, b)

    @primitive
    def first_times_second(p):
        return p.a * p.b

    class PairBox(Box):
        pass

    class PairSpace(VSpace):
        def __init__(self, value):
            self.value = value

        def zeros(self):
            return Pair(0.0, 0.0)

        def mut_add(self, x, y):
            return Pair(x.a + y.a, x.b + y.b)

    PairBox.register(Pair)
    PairSpace.register(Pair)
    defvjp(make, lambda ans, a, b: lambda g: g.a, lambda ans, a, b: lambda g: g.b)
    defvjp(first_times_second, lambda ans, p: lambda g: Pair(g * p.b, g * p.a))
    f = lambda a, b: first_times_second(make(a, b)) ** 2  # noqa: E731
    a, b = 1.5, -0.7
    assert onp.isclose(grad(f, 0)(a, b), 2 * a * b * b)
    assert onp.isclose(grad(f, 1)(a, b), 2 * a * a * b)


# ----------------------------------------------------- tracer, misc, util, numpy --


def test_tracer_node_and_trace_see_each_primitive_once():
    from fastgrad.tracer import Node, trace

    seen = []

    class Rec(Node):
        def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
            seen.append((fun.__name__, parent_argnums, float(value)))

        def initialize_root(self, x):
            pass

    end, node = trace(Rec.new_root(1.2), lambda x: np.sin(x) * x, 1.2)
    assert onp.isclose(end, onp.sin(1.2) * 1.2)
    assert [s[0] for s in seen] == ["sin", "multiply"]
    assert seen[1][1] == (0, 1)
    seen.clear()
    trace(Rec.new_root(1.0), grad(lambda x: np.sin(x + x)), 1.0)
    names = [s[0] for s in seen]
    assert names[:2] == ["add", "sin"] and "cos" in names  # the forward, then the backward
    assert "identity" not in names  # grad's own variable is no primitive (autograd's trace)


def test_fixed_point_gradient_is_the_implicit_one():
    from fastgrad.misc.fixed_points import fixed_point

    # x = a cos(x) / 2: dx/da = cos(x) / (2 + a sin(x))  (implicit function theorem)
    def solve(a):
        return fixed_point(lambda a: lambda x: a * np.cos(x) / 2, a, 0.0,
                           lambda x, y: np.abs(x - y), 1e-12)

    a = 0.8
    x = solve(a)
    assert onp.isclose(x, a * onp.cos(x) / 2)
    assert onp.isclose(grad(solve)(a), onp.cos(x) / (2 + a * onp.sin(x)), rtol=1e-8)


def test_const_graph_replays_without_calling_the_function_again():
    from fastgrad.misc import const_graph

    calls = []

    def f(x):
        calls.append(1)
        return np.sum(np.tanh(x) * x)

    g = const_graph(f)
    x1, x2 = rng.normal(size=4), rng.normal(size=4)
    assert onp.isclose(g(x1), f(x1))
    n = len(calls)
    assert onp.isclose(g(x2), onp.sum(onp.tanh(x2) * x2))
    assert len(calls) == n  # replayed, not re-run


def test_util_func_and_np_gradient_and_full_in_its_fill_value():
    from fastgrad.util import func

    assert func(len) is len
    x = rng.normal(size=(4, 5))
    u, v = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))

    def f(x):
        gy, gx = np.gradient(x)  # a tuple for several axes, as NumPy's
        return np.sum(gy * u) + np.sum(gx ** 2 * v)

    onp.testing.assert_allclose(grad(f)(x), numeric_grad(lambda x: float(f(x)), [x], 0),
                                rtol=1e-6, atol=1e-9)
    assert onp.isclose(grad(lambda c: np.sum(np.full((2, 3), c) ** 2))(1.5), 2 * 1.5 * 6)


def test_xarray_dataarray_around_a_traced_value_passes_the_gradient():
    xr = pytest.importorskip("xarray")
    a, b = onp.arange(1.0, 4.0), onp.array([0.5, -1.0, 2.0])

    def f(x):  # autograd's tests/test_ufunc_dispatch.py: DataArrays around traced values
        out = np.sin(xr.DataArray(a) * x) + xr.DataArray(b) * x
        return np.sum(out.data)  # the traced data (.values is a NumPy copy: detached)

    x = 0.7
    assert onp.isclose(grad(f)(x), onp.sum(a * onp.cos(a * x) + b))
    with pytest.warns(UserWarning, match="independent of input"):  # autograd's warning
        assert grad(lambda x: np.sum((xr.DataArray(a) * x).values))(x) == 0.0


def test_complex_real_loss_matches_autograd():
    autograd = pytest.importorskip("autograd")
    z = rng.normal(size=3) + 1j * rng.normal(size=3)

    def f(z, np=np):
        return np.sum(np.abs(np.fft.fft(z * np.exp(z))) ** 2)

    onp.testing.assert_allclose(grad(f)(z), autograd.grad(lambda z: f(z, autograd.numpy))(z),
                                rtol=1e-10)
    assert isinstance(fg.holomorphic_grad(lambda z: z ** 3)(1j), complex)
