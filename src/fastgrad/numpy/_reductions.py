"""The NumPy face's reductions: sum, mean, max, min (the core's), prod, var, std, cumsum.

``prod``, ``std`` and ``cumsum`` are registry entries (``fastgrad._registry``); ``var``
is composed of the core's mean and sum. Each face function takes NumPy's signature and
calls NumPy on plain arrays. Notation: for y = f(x), a rule turns ȳ (``g``) into x̄;
``repeat_to_match`` broadcasts a reduced signal back over the reduced axes.
"""

import numpy as onp

from .. import _ops
from .._compiler import lowering as low
from .._ops import amax, amin, count, repeat_to_match, shape_of, value
from .._registry import Formula, Sample, define
from ._building import array
from ._shapes import flip_p
from ._util import contains_tensor, traced


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _as_array_if_sequence(a):
    return array(a) if isinstance(a, (list, tuple)) and contains_tensor(a) else a


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


def _reduction_samples(r):
    x = r.normal(size=(3, 4))
    return [Sample(x), Sample(x, 0), Sample(x, 1, True), Sample(r.normal(size=(2, 3, 4)), (0, 2))]


# ------------------------------------------------------------- the core's four --


def sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    a = _as_array_if_sequence(a)
    if traced(a):
        return _ops.sum(a, _axis(axis), keepdims)
    return onp.sum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_array_if_sequence(a)
    if traced(a):
        return _ops.mean(a, _axis(axis), keepdims)
    return onp.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def max(a, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    a = _as_array_if_sequence(a)
    if traced(a):
        return amax(a, _axis(axis), keepdims)
    return onp.max(a, axis=axis, out=out, keepdims=keepdims, **kwargs)


def min(a, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    a = _as_array_if_sequence(a)
    if traced(a):
        return amin(a, _axis(axis), keepdims)
    return onp.min(a, axis=axis, out=out, keepdims=keepdims, **kwargs)


# ----------------------------------------------------------------------- prod --


def _prod(x, axis=None, keepdims=False):
    return onp.prod(x, axis=axis, keepdims=keepdims)


def _prod_vjp(g, ans, x, axis=None, keepdims=False):
    # p = Π x:  x̄ᵢ = p̄ Π_{j≠i} xⱼ, which is p̄ p / xᵢ when no x is 0 (the usual case)
    zero = value(x) == 0
    if not zero.any():
        return repeat_to_match(g * ans, x, axis, keepdims) / x
    return repeat_to_match(g, x, axis, keepdims) * _product_of_others(x, zero, axis)


def _product_of_others(x, zero, axis):
    """Π_{j≠i} xⱼ over each product, where some x are 0. With q the product of the
    non-zero x and z their number of zeros: for a non-zero xᵢ it is q/xᵢ if z = 0,
    q/xᵢ · (the zero) if z = 1, else 0; for a zero xᵢ it is q if z = 1, q · (the other
    zero) if z = 2, else 0. The zeros are written as variables (their sum, S, or S − xᵢ),
    not as constants, so that the second derivatives are right too."""
    q = prod_p(_ops.where(zero, 1.0, x), axis, True)
    zeros = onp.sum(zero, axis=axis, keepdims=True)
    s = _ops.sum(_ops.where(zero, x, 0.0), axis, True)  # 0, as a function of the zeros
    safe = _ops.where(zero, 1.0, x)
    at_nonzero = _ops.where(zeros == 0, 1.0, _ops.where(zeros == 1, s, 0.0)) / safe
    at_zero = _ops.where(zeros == 1, 1.0, _ops.where(zeros == 2, s - x, 0.0))
    return q * _ops.where(zero, at_zero, at_nonzero)


def _prod_samples(r):
    x = r.uniform(0.5, 1.5, size=(3, 4)) * r.choice([-1.0, 1.0], size=(3, 4))
    zeros = x.copy()
    zeros[0, 1] = 0.0  # row 0: one zero
    zeros[1, 0] = zeros[1, 3] = 0.0  # row 1: two zeros
    zeros[2, :3] = 0.0  # row 2: three zeros
    return [Sample(x), Sample(x, 0), Sample(x, 1, True), Sample(r.normal(size=(2, 3, 4)), (0, 2)),
            Sample(zeros, 1), Sample(zeros, 0, True), Sample(zeros[:1]), Sample(zeros[1:2])]


prod_p = define(
    _prod, "prod", vjps=[_prod_vjp], saves_ans=True,
    formula=Formula("{out} = Π {0}", {0: "{0}̄ᵢ = {out}̄ Π_{{j≠i}} {0}ⱼ  (= {out}̄ {out} / {0}ᵢ without zeros)"},
                    lambda out, args: (_size(args[0]), {0: 2 * _size(args[0])})),
    lowering=low.product(), samples=_prod_samples,
)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_array_if_sequence(a)
    if traced(a):
        return prod_p(a, _axis(axis), keepdims)
    return onp.prod(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


# ----------------------------------------------------------- variance, deviation --


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """σ² = Σ (x − x̄)² / (N − ddof), composed of primitives."""
    a = _as_array_if_sequence(a)
    if not traced(a):
        return onp.var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    axis = _axis(axis)
    centered = a - _ops.mean(a, axis, True)
    if onp.iscomplexobj(value(a)):  # |x − x̄|², real (as NumPy's)
        from ._elementwise import conjugate, real

        squares = real(centered * conjugate(centered))
    else:
        squares = centered * centered
    return _ops.sum(squares, axis, keepdims) / (count(a, axis) - ddof)


def _std(x, axis=None, ddof=0, keepdims=False):
    return onp.std(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _std_vjp(g, ans, x, axis=None, ddof=0, keepdims=False):
    # σ = √(Σ (x − x̄)² / (n − ddof)):  x̄ᵢ = σ̄ (xᵢ − x̄) / ((n − ddof) σ); 0 for a single
    # element (σ is 0 whatever x is), as autograd's
    n = count(x, axis)
    if n <= 1:
        return repeat_to_match(g, x, axis, keepdims) * 0.0
    centered = x - _ops.mean(x, axis, True)
    if onp.iscomplexobj(value(x)):  # σ real:  x̄ = Re σ̄ conj(x − x̄) / ((n − ddof) σ)
        from ._elementwise import conjugate, real_part

        g, centered = real_part(g), conjugate(centered)
    return repeat_to_match(g / ans, x, axis, keepdims) * centered / (n - ddof)


std_p = define(
    _std, "std", vjps=[_std_vjp], saves_ans=True,
    formula=Formula("{out} = √(Σ ({0} − mean {0})² / (n − ddof))",
                    {0: "{0}̄ = {out}̄ ({0} − mean {0}) / ((n − ddof) {out})  (0 if n = 1)"},
                    lambda out, args: (2 * _size(args[0]), {0: 2 * _size(args[0])})),
    lowering=low.std(),
    samples=lambda r: _reduction_samples(r) + [
        Sample(r.normal(size=(3, 4)), 1, 1),  # ddof = 1
        Sample(r.normal(size=(1,))),  # one element: σ = 0 whatever x is
        Sample(r.normal(size=(3, 1)), 1, 0, True),
        Sample(r.normal(size=(3, 4)) + 1j * r.normal(size=(3, 4)), 0)],  # complex: σ real
)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    a = _as_array_if_sequence(a)
    if not traced(a):
        return onp.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    return std_p(a, _axis(axis), ddof, keepdims)


# ------------------------------------------------------------------- cumulative --


def _cumsum(x, axis=None):
    return onp.cumsum(x, axis=axis)


def _cumsum_vjp(g, ans, x, axis=None):
    # s = cumsum(x):  x̄ = reverse-cumsum(s̄)  (each xᵢ counts in sᵢ, sᵢ₊₁, …)
    if axis is None:
        return _ops.reshape(flip_p(cumsum_p(flip_p(g))), shape_of(x))
    return flip_p(cumsum_p(flip_p(g, axis), axis), axis)


cumsum_p = define(
    _cumsum, "cumsum", vjps=[_cumsum_vjp], saves_args=False,
    formula=Formula("{out} = cumsum({0})", {0: "{0}̄ = reverse cumsum of {out}̄"},
                    lambda out, args: (_size(out), {0: _size(out)})),
    lowering=low.cumsum(),
    samples=lambda r: [Sample(r.normal(size=(3, 4))), Sample(r.normal(size=(3, 4)), 0),
                       Sample(r.normal(size=(2, 3, 4)), -1)],
)


def cumsum(a, axis=None, dtype=None, out=None):
    if traced(a):
        return cumsum_p(a, axis)
    return onp.cumsum(a, axis=axis, dtype=dtype, out=out)

