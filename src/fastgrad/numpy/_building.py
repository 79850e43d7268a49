"""The NumPy face's array builders: arrays from parts (``array`` of a list holding tensors,
``concatenate``, the ``stack`` family, ``r_``, ``c_``, ``linspace``) and dtype changes.

The builders are compositions of the core's ``stack`` and ``concatenate`` (whose rules
slice the error signal back into the parts); ``array`` (a copy) and ``astype`` are
registry entries (``fastgrad._registry``). Notation: for y = f(x), a rule turns ȳ
(``g``) into x̄.
"""

import builtins

import numpy as onp

from .. import _ops
from .._compiler import lowering as low
from .._ops import no_macs, reshape, shape_of, value
from .._registry import Formula, Sample, define
from ._shapes import _atleast, ravel
from ._util import contains_tensor, dtype_of, ndim_of, normal, traced

# -------------------------------------------------------------- copies and casts --

# y = a copy of x:  x̄ = ȳ
_copy = define(
    lambda x: onp.array(x), "array", vjps=[lambda g, ans, x: g], saves_args=False,
    formula=Formula("{out} = {0}", {0: "{0}̄ = {out}̄"}, no_macs),
    lowering=low.view(), samples=normal(3, 4),
)


def _astype(x, dtype):
    return onp.asarray(x).astype(dtype)


def _astype_vjp(g, ans, x, dtype):
    # y = x in another dtype:  x̄ = ȳ in x's dtype. A cast to integers or booleans is a
    # step function (as floor is): x̄ = 0.
    if onp.dtype(dtype).kind not in "fc":
        return onp.zeros(shape_of(x), dtype_of(x))
    if dtype_of(x).kind != "c" and onp.iscomplexobj(value(g)):
        from ._elementwise import real  # a real x: only the real part of its signal acts

        g = real(g)
    return astype_p(g, dtype_of(x))


astype_p = define(
    _astype, "astype", vjps=[_astype_vjp],
    formula=Formula("{out} = {0} as another dtype", {0: "{0}̄ = {out}̄ in {0}'s dtype"}, no_macs),
    lowering=low.astype(),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), onp.float64),
                       Sample(r.normal(size=(3, 4)), onp.longdouble),
                       Sample(3.0 * r.normal(size=(3, 4)), onp.int64)],  # a step: x̄ = 0
)


def astype(x, dtype, *args, **kwargs):
    if traced(x):
        return astype_p(x, dtype)
    return onp.asarray(x).astype(dtype, *args, **kwargs)


def _array_from(a, dtype=None):
    """np.array of nested sequences holding tensors: stacked with the ``stack`` primitive."""
    if isinstance(a, (list, tuple)):
        if not contains_tensor(a):
            return onp.array(a, dtype=dtype)
        return _ops.stack([_array_from(v, dtype) for v in a])
    if traced(a):
        return _copy(a)
    return onp.array(a, dtype=dtype)


def array(object, dtype=None, *args, **kwargs):  # noqa: A002
    if traced(object) or (isinstance(object, (list, tuple)) and contains_tensor(object)):
        out = _array_from(object)
        if dtype is not None and onp.dtype(dtype) != dtype_of(out):
            out = astype(out, dtype)
        return out
    return onp.array(object, dtype, *args, **kwargs)


def asarray(a, dtype=None, *args, **kwargs):
    if traced(a):
        return a if dtype is None or onp.dtype(dtype) == dtype_of(a) else astype(a, dtype)
    if isinstance(a, (list, tuple)) and contains_tensor(a):
        return array(a, dtype)
    return onp.asarray(a, dtype, *args, **kwargs)


def full(shape, fill_value, dtype=None, order="C", **kwargs):
    """np.full; differentiable in ``fill_value`` (x̄ = the sum of ȳ over its copies: the
    rule of broadcast_to)."""
    if not traced(fill_value):
        return onp.full(shape, fill_value, dtype, order, **kwargs)
    shape = (int(shape),) if onp.ndim(shape) == 0 else tuple(int(n) for n in shape)
    out = _copy(_ops.broadcast_to(fill_value, shape))
    if dtype is not None and onp.dtype(dtype) != dtype_of(out):
        out = astype(out, dtype)
    return out


# ---------------------------------------------------------- arrays from parts --


def concatenate(arrays, axis=0, out=None, **kwargs):
    arrays = list(arrays)
    if not contains_tensor(arrays):
        return onp.concatenate(arrays, axis, out, **kwargs)
    if axis is None:
        return _ops.concatenate([ravel(a) for a in arrays], 0)
    return _ops.concatenate([asarray(a) for a in arrays], axis)


def stack(arrays, axis=0, out=None, **kwargs):
    arrays = list(arrays)
    if not contains_tensor(arrays):
        return onp.stack(arrays, axis, out, **kwargs)
    return _ops.stack([asarray(a) for a in arrays], axis)


def vstack(tup, **kwargs):
    tup = list(tup)
    if not contains_tensor(tup):
        return onp.vstack(tup, **kwargs)
    return concatenate([_atleast(2, asarray(a)) for a in tup], 0)


row_stack = vstack


def hstack(tup, **kwargs):
    tup = list(tup)
    if not contains_tensor(tup):
        return onp.hstack(tup, **kwargs)
    arrs = [_atleast(1, asarray(a)) for a in tup]
    return concatenate(arrs, 0 if ndim_of(arrs[0]) == 1 else 1)


def dstack(tup):
    tup = list(tup)
    if not contains_tensor(tup):
        return onp.dstack(tup)
    return concatenate([_atleast(3, asarray(a)) for a in tup], 2)


def column_stack(tup):
    tup = list(tup)
    if not contains_tensor(tup):
        return onp.column_stack(tup)
    cols = []
    for a in tup:
        a = asarray(a)
        cols.append(reshape(a, (-1, 1)) if ndim_of(a) < 2 else a)
    return concatenate(cols, 1)


def append(arr, values, axis=None):
    if not contains_tensor([arr, values]):
        return onp.append(arr, values, axis)
    arr, values = asarray(arr), asarray(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


class _RClass:
    """``np.r_`` (``axis=0``) and ``np.c_`` (columns) over tensors too."""

    def __init__(self, columns):
        self.columns = columns

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not contains_tensor(list(items)):
            return (onp.c_ if self.columns else onp.r_)[key]
        parts = []
        for item in items:
            if isinstance(item, slice):
                item = onp.r_[item]
            item = asarray(item)
            if self.columns:
                parts.append(reshape(item, (-1, 1)) if ndim_of(item) < 2 else item)
            else:
                parts.append(_atleast(1, item))
        return concatenate(parts, -1 if self.columns else 0)


r_ = _RClass(False)
c_ = _RClass(True)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    if not traced(start, stop):
        return onp.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    if axis != 0 or retstep:
        raise NotImplementedError("fastgrad differentiates linspace with axis=0 and retstep=False")
    fraction = onp.linspace(0.0, 1.0, num, endpoint)
    if ndim_of(start) or ndim_of(stop):
        fraction = onp.reshape(fraction, (-1,) + (1,) * builtins.max(ndim_of(start), ndim_of(stop)))
    return start + (stop - start) * fraction
