"""The NumPy face's shape functions: moving, copying and selecting elements.

Most are compositions of the core's reshape, transpose, getitem and concatenate (whose
rules they inherit); those that are primitives of their own (flip, rot90, roll, tril,
triu, repeat, tile, pad) are registry entries (``fastgrad._registry``) whose adjoints
move the error signal back: the inverse permutation, a mask again, or a sum over the
copies. Notation: for y = f(x), a rule turns ȳ (``g``) into x̄.
"""

import builtins

import numpy as onp

from .. import _ops
from .._compiler import lowering as low
from .._ops import (
    broadcast_to,
    getitem,
    no_macs,
    reshape,
    shape_of,
    swapaxes,
    transpose,
    value,
)
from .._registry import Formula, Sample, define
from ._util import ndim_of, shape_proxy
from ._util import traced as _traced


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


def _sum_of_copies_macs(out_shape, arg_shapes):
    """Copies forward (no multiply-add); the backward adds every copy back: one per element."""
    return 0, {0: _size(out_shape)}


# --------------------------------------------------------------- reshaping views --


def reshape_fn(a, shape=None, order="C", *, newshape=None, copy=None):
    shape = newshape if shape is None else shape
    if _traced(a):
        return reshape(a, shape)
    return onp.reshape(a, shape, order=order)


def ravel(a, order="C"):
    return reshape(a, (-1,)) if _traced(a) else onp.ravel(a, order)


def squeeze(a, axis=None):
    if not _traced(a):
        return onp.squeeze(a, axis)
    return reshape(a, onp.squeeze(shape_proxy(a), axis).shape)


def expand_dims_fn(a, axis):
    if not _traced(a):
        return onp.expand_dims(a, axis)
    return reshape(a, onp.expand_dims(shape_proxy(a), axis).shape)


def transpose_fn(a, axes=None):
    if not _traced(a):
        return onp.transpose(a, axes)
    return transpose(a, tuple(axes) if axes is not None else None)


def _permutation(ndim, source, destination):
    source = [s % ndim for s in (source if isinstance(source, (list, tuple)) else [source])]
    destination = [
        d % ndim for d in (destination if isinstance(destination, (list, tuple)) else [destination])
    ]
    order = [i for i in range(ndim) if i not in source]
    for d, s in sorted(zip(destination, source)):
        order.insert(d, s)
    return tuple(order)


def moveaxis(a, source, destination):
    if not _traced(a):
        return onp.moveaxis(a, source, destination)
    return transpose(a, _permutation(ndim_of(a), source, destination))


def rollaxis(a, axis, start=0):
    if not _traced(a):
        return onp.rollaxis(a, axis, start)
    n = ndim_of(a)
    axis %= n
    if start < 0:
        start += n
    order = [i for i in range(n) if i != axis]
    order.insert(start - 1 if start > axis else start, axis)
    return transpose(a, tuple(order))


def swapaxes_fn(a, axis1, axis2):
    return swapaxes(a, axis1, axis2) if _traced(a) else onp.swapaxes(a, axis1, axis2)


def _atleast(n, a):
    if not _traced(a):
        return (onp.atleast_1d, onp.atleast_2d, onp.atleast_3d)[n - 1](a)
    shape = shape_of(a)
    if len(shape) >= n:
        return a
    if n == 1:
        return reshape(a, (1,))
    if n == 2:
        return reshape(a, (1,) + shape if shape else (1, 1))
    new = {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)]
    return reshape(a, new)


def atleast_1d(*arys):
    res = [_atleast(1, a) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    res = [_atleast(2, a) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_3d(*arys):
    res = [_atleast(3, a) for a in arys]
    return res[0] if len(res) == 1 else res


def broadcast_to_fn(array, shape, subok=False):
    if _traced(array):
        return broadcast_to(array, shape)
    return onp.broadcast_to(array, shape, subok)


# --------------------------------------------------------- permuting elements --


def _flip(x, axis=None):
    return onp.flip(x, axis)


# y = flip(x) (a permutation that is its own inverse):  x̄ = flip(ȳ)
flip_p = define(
    _flip, "flip", vjps=[lambda g, ans, x, axis=None: flip_p(g, axis)], saves_args=False,
    formula=Formula("{out} = flip({0})", {0: "{0}̄ = flip({out}̄)"}, no_macs),
    lowering=low.select(_flip),
    samples=lambda r: [Sample(r.normal(size=(3, 4))), Sample(r.normal(size=(3, 4)), 0),
                       Sample(r.normal(size=(2, 3, 4)), (0, 2))],
)


def flip(m, axis=None):
    return flip_p(m, axis) if _traced(m) else onp.flip(m, axis)


def flipud(m):
    return flip_p(m, 0) if _traced(m) else onp.flipud(m)


def fliplr(m):
    return flip_p(m, 1) if _traced(m) else onp.fliplr(m)


def _rot90(m, k=1, axes=(0, 1)):
    return onp.rot90(m, k, axes)


# y = rot90(x, k):  x̄ = rot90(ȳ, −k)
_rot90_p = define(
    _rot90, "rot90", vjps=[lambda g, ans, m, k=1, axes=(0, 1): _rot90_p(g, -k, axes)],
    saves_args=False,
    formula=Formula("{out} = rot90({0})", {0: "{0}̄ = rot90({out}̄) backwards"}, no_macs),
    lowering=low.select(_rot90),
    samples=lambda r: [Sample(r.normal(size=(3, 4))), Sample(r.normal(size=(3, 4)), 2),
                       Sample(r.normal(size=(2, 3, 4)), -1, (1, 2)),
                       Sample(r.normal(size=(2, 3, 4)), 3, (2, 0))],
)


def rot90(m, k=1, axes=(0, 1)):
    return _rot90_p(m, k, tuple(axes)) if _traced(m) else onp.rot90(m, k, axes)


def _roll(a, shift, axis=None):
    return onp.roll(a, shift, axis)


def _negate(shift):
    return tuple(-s for s in shift) if isinstance(shift, (tuple, list)) else -shift


# y = roll(x, s):  x̄ = roll(ȳ, −s)
_roll_p = define(
    _roll, "roll", vjps=[lambda g, ans, a, shift, axis=None: _roll_p(g, _negate(shift), axis)],
    saves_args=False,
    formula=Formula("{out} = roll({0})", {0: "{0}̄ = {out}̄ rolled back"}, no_macs),
    lowering=low.select(_roll),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), 5), Sample(r.normal(size=(3, 4)), -1, 0),
                       Sample(r.normal(size=(3, 4)), (1, 2), (0, 1))],
)


def roll(a, shift, axis=None):
    return _roll_p(a, shift, axis) if _traced(a) else onp.roll(a, shift, axis)


def _tril(m, k=0):
    return onp.tril(m, k)


def _triu(m, k=0):
    return onp.triu(m, k)


def _triangle_samples(r):
    return [Sample(r.normal(size=(4, 4))), Sample(r.normal(size=(3, 5)), 1),
            Sample(r.normal(size=(2, 4, 3)), -1)]


# y = x on and below (above) the k-th diagonal, 0 elsewhere: a mask, its own adjoint
tril = define(
    _tril, "tril", vjps=[lambda g, ans, m, k=0: tril(g, k)], saves_args=False,
    formula=Formula("{out} = tril({0})", {0: "{0}̄ = tril({out}̄)"}, no_macs),
    lowering=low.select(_tril), samples=_triangle_samples,
)
triu = define(
    _triu, "triu", vjps=[lambda g, ans, m, k=0: triu(g, k)], saves_args=False,
    formula=Formula("{out} = triu({0})", {0: "{0}̄ = triu({out}̄)"}, no_macs),
    lowering=low.select(_triu), samples=_triangle_samples,
)

# ------------------------------------------------------------ copying elements --


def _repeat(a, repeats, axis=None):
    return onp.repeat(a, repeats, axis)


def _repeat_vjp(g, ans, a, repeats, axis=None):
    # y = x with each element copied r times:  x̄ = the sum of its copies' ȳ
    shape = shape_of(a)
    if axis is None:
        n = int(onp.prod(shape))
        return reshape(_ops.sum(reshape(g, (n, repeats)), 1), shape)
    axis %= len(shape)
    grouped = reshape(g, shape[:axis] + (shape[axis], repeats) + shape[axis + 1 :])
    return _ops.sum(grouped, axis + 1)


_repeat_p = define(
    _repeat, "repeat", vjps=[_repeat_vjp], saves_args=False,
    formula=Formula("{out} = repeat({0})", {0: "{0}̄ = Σ over each element's copies of {out}̄"},
                    _sum_of_copies_macs),
    lowering=low.select(_repeat),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), 2), Sample(r.normal(size=(3, 4)), 3, 1),
                       Sample(r.normal(size=(2, 3)), 2, -2)],
)


def repeat(a, repeats, axis=None):
    if _traced(a):
        if not isinstance(repeats, (int, onp.integer)):
            raise NotImplementedError(
                "fastgrad differentiates repeat with an integer number of repeats"
            )
        return _repeat_p(a, int(repeats), axis)
    return onp.repeat(a, repeats, axis)


def _tile_vjp(g, ans, a, reps):
    # y = x tiled:  x̄ = the sum of ȳ over the tiles
    reps = (reps,) if isinstance(reps, (int, onp.integer)) else tuple(reps)
    shape = shape_of(a)
    d = builtins.max(len(shape), len(reps))
    shape_d = (1,) * (d - len(shape)) + tuple(shape)
    reps_d = (1,) * (d - len(reps)) + reps
    paired = []
    for r, n in zip(reps_d, shape_d):
        paired += [r, n]
    summed = _ops.sum(reshape(g, tuple(paired)), tuple(range(0, 2 * d, 2)))
    return reshape(summed, shape)


def _tile(a, reps):
    return onp.tile(a, reps)


_tile_p = define(
    _tile, "tile", vjps=[_tile_vjp], saves_args=False,
    formula=Formula("{out} = tile({0})", {0: "{0}̄ = Σ over the tiles of {out}̄"},
                    _sum_of_copies_macs),
    lowering=low.select(_tile),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), 2), Sample(r.normal(size=(3, 4)), (2, 1)),
                       Sample(r.normal(size=(3,)), (2, 2))],
)


def tile(A, reps):
    return _tile_p(A, reps) if _traced(A) else onp.tile(A, reps)


def _pad(array, pad_width, mode="constant", **kwargs):
    return onp.pad(array, pad_width, mode, **kwargs)


def _pad_vjp(g, ans, array, pad_width, mode="constant", **kwargs):
    # y = x inside a border of constants:  x̄ = ȳ without the border
    if mode != "constant":
        raise NotImplementedError(
            f"fastgrad differentiates pad only in mode 'constant', not {mode!r}"
        )
    shape = shape_of(array)
    widths = onp.broadcast_to(onp.asarray(pad_width, dtype=int), (len(shape), 2))
    return getitem(g, tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, shape)))


_pad_p = define(
    _pad, "pad", vjps=[_pad_vjp], saves_args=False,
    formula=Formula("{out} = pad({0})", {0: "{0}̄ = {out}̄ without the border"}, no_macs),
    lowering=low.pad(),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), 1),
                       Sample(r.normal(size=(3, 4)), ((1, 2), (0, 1))),
                       Sample(r.normal(size=(2, 3)), (2, 1), "constant", constant_values=1.5)],
)


def pad(array, pad_width, mode="constant", **kwargs):
    if _traced(array):
        return _pad_p(array, pad_width, mode, **kwargs)
    return onp.pad(array, pad_width, mode, **kwargs)


# ----------------------------------------------------------- selecting elements --


def diff(a, n=1, axis=-1, prepend=onp._NoValue, append=onp._NoValue):
    if not _traced(a, prepend, append):
        return onp.diff(a, n, axis, prepend, append)
    nd = ndim_of(a)
    axis %= nd
    pieces = []
    for end in (prepend, a, append):
        if end is onp._NoValue:
            continue
        end = end if _traced(end) else onp.asarray(end)
        pieces.append(broadcast_to(end, _with(shape_of(a), axis, 1)) if ndim_of(end) == 0 else end)
    if len(pieces) > 1:
        a = _ops.concatenate(pieces, axis)
    head = [slice(None)] * nd
    tail = [slice(None)] * nd
    head[axis], tail[axis] = slice(1, None), slice(None, -1)
    for _ in range(n):
        a = getitem(a, tuple(head)) - getitem(a, tuple(tail))
    return a


def gradient(f, *varargs, axis=None, edge_order=1):
    """np.gradient composed of slices: central differences (x_{i+1} − x_{i−1}) / 2h inside,
    one-sided ones at the ends (first order, or second with ``edge_order=2``), so its rule
    is the slices' and grad of grad works. A tuple for several axes, as NumPy's. Spacings
    may be numbers (one, or one per axis); coordinate arrays are refused by name."""
    if not _traced(f):
        return onp.gradient(f, *varargs, axis=axis, edge_order=edge_order)
    nd = ndim_of(f)
    axes = tuple(range(nd)) if axis is None else (
        (axis,) if isinstance(axis, (int, onp.integer)) else tuple(axis))
    axes = tuple(int(a) % nd for a in axes)
    if len(varargs) == 0:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1:
        spacing = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise TypeError(f"np.gradient: {len(varargs)} spacings for {len(axes)} axes")
    if any(onp.ndim(h) != 0 or _traced(h) for h in spacing):
        raise NotImplementedError(
            "fastgrad.numpy.gradient: no derivative with coordinate arrays as spacing; give "
            "one number per axis")
    if edge_order not in (1, 2):
        raise ValueError("'edge_order' greater than 2 not supported")
    out = tuple(_gradient_along(f, a, float(h), edge_order) for a, h in zip(axes, spacing))
    return out[0] if len(out) == 1 else out


def _gradient_along(f, axis, h, edge_order):
    n = shape_of(f)[axis]
    if n < edge_order + 1:
        raise ValueError(
            "Shape of array too small to calculate a numerical gradient, at least "
            "(edge_order + 1) elements are required.")
    nd = ndim_of(f)

    def at(index):
        key = [slice(None)] * nd
        key[axis] = index
        return getitem(f, tuple(key))

    inside = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * h)
    if edge_order == 1:
        first = (at(slice(1, 2)) - at(slice(0, 1))) / h
        last = (at(slice(-1, None)) - at(slice(-2, -1))) / h
    else:
        first = (-1.5 * at(slice(0, 1)) + 2.0 * at(slice(1, 2)) - 0.5 * at(slice(2, 3))) / h
        last = (1.5 * at(slice(-1, None)) - 2.0 * at(slice(-2, -1)) + 0.5 * at(slice(-3, -2))) / h
    return _ops.concatenate([first, inside, last], axis)


def _with(shape, axis, n):
    shape = list(shape)
    shape[axis] = n
    return tuple(shape)


def _along_axis_index(indices, axis):
    """A fancy index with the effect of take_along_axis(·, indices, axis)."""
    indices = onp.asarray(indices)
    axis %= indices.ndim
    grids = onp.indices(indices.shape, sparse=True)
    return tuple(indices if i == axis else grids[i] for i in range(indices.ndim))


def sort(a, axis=-1, kind=None, order=None, **kwargs):
    if not _traced(a):
        return onp.sort(a, axis, kind, order, **kwargs)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return getitem(a, _along_axis_index(onp.argsort(value(a), axis=axis, kind=kind), axis))


def partition(a, kth, axis=-1, kind="introselect", order=None):
    if not _traced(a):
        return onp.partition(a, kth, axis, kind, order)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return getitem(a, _along_axis_index(onp.argpartition(value(a), kth, axis=axis), axis))


def take_along_axis(arr, indices, axis=-1):
    if not _traced(arr):
        return onp.take_along_axis(arr, value(indices), axis)
    if axis is None:
        arr, axis = reshape(arr, (-1,)), 0
    return getitem(arr, _along_axis_index(value(indices), axis))


def _split_slices(ary, indices_or_sections, axis, name):
    n = shape_of(ary)[axis]
    pieces = (
        getattr(onp, name)(onp.arange(n), indices_or_sections)
        if name == "array_split"
        else onp.split(onp.arange(n), indices_or_sections)
    )
    nd = ndim_of(ary)
    axis %= nd
    out = []
    start = 0
    for p in pieces:
        index = [slice(None)] * nd
        index[axis] = slice(start, start + len(p))
        start += len(p)
        out.append(getitem(ary, tuple(index)))
    return out


def split(ary, indices_or_sections, axis=0):
    if not _traced(ary):
        return onp.split(ary, indices_or_sections, axis)
    return _split_slices(ary, indices_or_sections, axis, "split")


def array_split(ary, indices_or_sections, axis=0):
    if not _traced(ary):
        return onp.array_split(ary, indices_or_sections, axis)
    return _split_slices(ary, indices_or_sections, axis, "array_split")


def hsplit(ary, indices_or_sections):
    if not _traced(ary):
        return onp.hsplit(ary, indices_or_sections)
    return split(ary, indices_or_sections, 1 if ndim_of(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    if not _traced(ary):
        return onp.vsplit(ary, indices_or_sections)
    return split(ary, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    if not _traced(ary):
        return onp.dsplit(ary, indices_or_sections)
    return split(ary, indices_or_sections, 2)

