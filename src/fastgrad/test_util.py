"""Gradient checkers with autograd's semantics: ``check_grads(fun, argnum, modes, order)``.

Each mode's derivative map is compared with central finite differences along a random
direction (eps 1e-6), and, up to ``order``, the derivative maps themselves are checked
the same way, so ``order=2`` also tests that the vjps are differentiable:

    check_grads(np.tanh, modes=["rev"], order=2)(0.3)
"""

import itertools

import numpy as np

from ._functional import _leaves, _map, make_jvp, make_vjp
from .extend import getval

__all__ = [
    "check_grads",
    "combo_check",
    "scalar_close",
    "check_equivalent",
    "check_vjp",
    "check_jvp",
]

TOL = 1e-6
RTOL = 1e-6
EPS = 1e-6


def scalar_close(a, b):
    return abs(a - b) < TOL or abs(a - b) / abs(a + b) < RTOL


def _space(x):
    if isinstance(x, dict):
        return ("dict", tuple((k, _space(v)) for k, v in x.items()))
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(_space(v) for v in x))
    x = getval(x)
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"Can't find vector space for value {x!r} of type {type(x)}")
    dt = np.result_type(x)
    if dt.kind not in "fc":
        raise TypeError(f"Can't find vector space for value {x!r} of dtype {dt}")
    return ("array", np.shape(x), dt.str)


def _randn_like(x):
    def one(v):
        v = getval(v)
        r = np.random.randn(*np.shape(v))
        return np.asarray(r, dtype=np.result_type(v)) if np.ndim(v) else np.result_type(v).type(r)

    return _map(one, x)


def _zip_map(f, x, y):
    if isinstance(x, dict):
        return {k: _zip_map(f, x[k], y[k]) for k in x}
    if isinstance(x, (tuple, list)):
        return type(x)(_zip_map(f, a, b) for a, b in zip(x, y))
    return f(x, y)


def _add(x, y):
    return _zip_map(lambda a, b: a + b, x, y)


def _scale(x, c):
    return _map(lambda a: a * c, x)


def _inner(x, y):
    return float(
        sum(
            np.real(np.sum(np.conj(np.asarray(getval(a))) * np.asarray(getval(b))))
            for a, b in zip(_leaves(x), _leaves(y))
        )
    )


def _numerical_jvp(f, x, v):
    plus = f(_add(x, _scale(v, EPS / 2)))
    minus = f(_add(x, _scale(v, -EPS / 2)))
    return _scale(_add(plus, _scale(minus, -1.0)), 1.0 / EPS)


def check_equivalent(x, y):
    assert _space(x) == _space(y), f"VSpace mismatch:\nx: {_space(x)}\ny: {_space(y)}"
    v = _randn_like(x)
    assert scalar_close(_inner(x, v), _inner(y, v)), f"Value mismatch:\nx: {x}\ny: {y}"


def check_vjp(f, x):
    vjp, y = make_vjp(f)(x)
    x_v, y_v = _randn_like(x), _randn_like(y)
    g = vjp(y_v)
    assert _space(g) == _space(x), (
        f"gradient space {_space(g)} differs from input space {_space(x)}"
    )
    analytic = _inner(x_v, g)
    numeric = _inner(y_v, _numerical_jvp(f, x, x_v))
    assert scalar_close(numeric, analytic), (
        f"Derivative (VJP) check of {_name(f)} failed with arg {x}:\nanalytic: {analytic}\nnumeric: {numeric}"
    )


def check_jvp(f, x):
    v = _randn_like(x)
    _, tangent = make_jvp(f)(x)(v)
    check_equivalent(tangent, _numerical_jvp(f, x, v))


def _name(f):
    return getattr(f, "__name__", "[unknown name]")


def check_grads(f, argnum=0, modes=None, order=2):
    """``check_grads(f, argnum=0, modes=["fwd", "rev"], order=2)(*args, **kwargs)``."""
    modes = ["fwd", "rev"] if modes is None else list(modes)

    def _check(*args, **kwargs):
        argnums = tuple(argnum) if isinstance(argnum, (tuple, list)) else (argnum,)

        def unary(x):
            new = list(args)
            for i, xi in zip(argnums, x if isinstance(argnum, (tuple, list)) else (x,)):
                new[i] = xi
            return f(*new, **kwargs)

        unary.__name__ = _name(f)
        x = tuple(args[i] for i in argnums) if isinstance(argnum, (tuple, list)) else args[argnum]
        _check_unary(unary, x, modes, order)

    return _check


def _check_unary(f, x, modes, order):
    if "fwd" in modes:
        check_jvp(f, x)
        if order > 1:
            v = _randn_like(x)
            jvp_f = lambda x, v: make_jvp(f)(x)(v)[1]  # noqa: E731
            jvp_f.__name__ = "jvp_" + _name(f)
            check_grads(jvp_f, (0, 1), modes, order - 1)(x, v)
    if "rev" in modes:
        check_vjp(f, x)
        if order > 1:
            g = _randn_like(f(x))
            vjp_f = lambda x, g: make_vjp(f)(x)[0](g)  # noqa: E731
            vjp_f.__name__ = "vjp_" + _name(f)
            check_grads(vjp_f, (0, 1), modes, order - 1)(x, g)


def combo_check(fun, *args, **kwargs):
    """Check ``fun`` on every combination of the given argument and keyword values."""

    def _combo_check(*arg_values, **kwarg_values):
        keys = list(kwarg_values)
        for xs in itertools.product(*arg_values):
            for vals in itertools.product(*(kwarg_values[k] for k in keys)):
                check_grads(fun, *args, **kwargs)(*xs, **dict(zip(keys, vals)))

    return _combo_check
