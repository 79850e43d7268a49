"""The core primitives, second half: reductions, shapes and indexing, softmax, losses.

Registry entries like those of ``fastgrad._ops`` (whose helpers and elementwise
primitives these rules use, and which re-exports every name here); see the guide at the
top of ``fastgrad._registry``.
"""

import numpy as np

from ._compiler import lowering as low
from ._ops import (
    EveryArgument,
    _keepdims_shape,
    _normal,
    _size,
    no_macs,
    reduction_macs,
    repeat_to_match,
    shape_of,
    unbroadcast,
    value,
)
from ._registry import Formula, Sample, define

# ----------------------------------------------------------------- reductions ----


def _sum(x, axis=None, keepdims=False):
    try:
        return x.sum(axis=axis, keepdims=keepdims)  # the method skips np.sum's dispatch
    except AttributeError:
        return np.sum(x, axis=axis, keepdims=keepdims)


def _mean(x, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def _max(x, axis=None, keepdims=False):
    return np.max(x, axis=axis, keepdims=keepdims)


def _min(x, axis=None, keepdims=False):
    return np.min(x, axis=axis, keepdims=keepdims)


def count(x, axis):
    """How many elements a reduction over ``axis`` combines into each result."""
    shape = shape_of(x)
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


def _extreme_vjp(g, ans, x, axis=None, keepdims=False):
    # The signal goes to the extreme elements; ties share it equally.
    xv = value(x)
    mask = xv == np.reshape(value(ans), _keepdims_shape(xv.shape, axis))
    share = (mask / np.sum(mask, axis=axis, keepdims=True)).astype(xv.dtype, copy=False)
    return repeat_to_match(g, x, axis, keepdims) * share


def _reduction_samples(r):
    x = r.normal(size=(3, 4))
    return [Sample(x), Sample(x, 0), Sample(x, 1, True), Sample(r.normal(size=(2, 3, 4)), (0, 2))]


# s = Σ x:  x̄ = s̄ (repeated over the summed axes)
sum = define(  # noqa: A001
    _sum, "sum", vjps=[lambda g, ans, x, axis=None, keepdims=False: repeat_to_match(g, x, axis, keepdims)],
    saves_args=False,
    formula=Formula("{out} = Σ {0}", {0: "{0}̄ = {out}̄ repeated over the summed axes"}, reduction_macs),
    lowering=low.reduction(mean=False), samples=_reduction_samples,
)
mean = define(
    _mean, "mean",
    vjps=[lambda g, ans, x, axis=None, keepdims=False: repeat_to_match(g, x, axis, keepdims) / count(x, axis)],
    saves_args=False,
    formula=Formula("{out} = mean({0})", {0: "{0}̄ = {out}̄ repeated over the averaged axes / n"},
                    lambda out, args: (_size(args[0]), {0: _size(args[0])})),
    lowering=low.reduction(mean=True), samples=_reduction_samples,
)
amax = define(
    _max, "max", vjps=[_extreme_vjp], saves_ans=True,
    formula=Formula("{out} = max({0})", {0: "{0}̄ = {out}̄ at the largest elements (ties share it)"},
                    reduction_macs),
    lowering=low.extreme(0), samples=_reduction_samples,
)
amin = define(
    _min, "min", vjps=[_extreme_vjp], saves_ans=True,
    formula=Formula("{out} = min({0})", {0: "{0}̄ = {out}̄ at the smallest elements (ties share it)"},
                    reduction_macs),
    lowering=low.extreme(1), samples=_reduction_samples,
)

# ------------------------------------------------------------ shape and indexing ----


def _reshape(x, shape):
    try:
        return x.reshape(shape)  # the method skips np.reshape's dispatch
    except AttributeError:
        return np.reshape(x, shape)


def _transpose(x, axes=None):
    return np.transpose(x, axes)


def _transpose_vjp(g, ans, x, axes=None):
    if axes is None:
        return transpose(g)
    return transpose(g, tuple(np.argsort(axes)))


# These outputs are views of their input: "saving" the input protects it from writes
# while the view lives in a graph (W.data[...] = v after using W.T).
reshape = define(
    _reshape, "reshape", vjps=[lambda g, ans, x, shape: reshape(g, shape_of(x))],
    formula=Formula("{out} = reshape({0})", {0: "{0}̄ = reshape({out}̄)"}, no_macs),
    lowering=low.view(),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), (2, 6)), Sample(r.normal(size=(3, 4)), (-1,))],
)
transpose = define(
    _transpose, "transpose", vjps=[_transpose_vjp],
    formula=Formula("{out} = {0}ᵀ", {0: "{0}̄ = {out}̄ᵀ"}, no_macs),
    lowering=low.transpose(),
    samples=lambda r: [Sample(r.normal(size=(3, 4))), Sample(r.normal(size=(2, 3, 4)), (1, 2, 0))],
)
broadcast_to = define(
    np.broadcast_to, "broadcast_to", vjps=[lambda g, ans, x, shape: unbroadcast(g, x)],
    formula=Formula("{out} = broadcast({0})", {0: "{0}̄ = {out}̄ summed over the broadcast axes"}, no_macs),
    lowering=low.broadcast_to(),
    samples=lambda r: [Sample(r.normal(size=(1, 4)), (3, 4)), Sample(r.normal(size=(4,)), (2, 4))],
)
expand_dims = define(
    np.expand_dims, "expand_dims", vjps=[lambda g, ans, x, axis: reshape(g, shape_of(x))],
    formula=Formula("{out} = expand_dims({0})", {0: "{0}̄ = reshape({out}̄)"}, no_macs),
    lowering=low.view(), samples=lambda r: [Sample(r.normal(size=(3, 4)), 1)],
)
swapaxes = define(
    np.swapaxes, "swapaxes", vjps=[lambda g, ans, x, a1, a2: swapaxes(g, a1, a2)],
    formula=Formula("{out} = swapaxes({0})", {0: "{0}̄ = swapaxes({out}̄)"}, no_macs),
    lowering=low.select(np.swapaxes),
    samples=lambda r: [Sample(r.normal(size=(2, 3, 4)), 0, 2)],
)
identity = define(
    lambda x: x, "identity", vjps=[lambda g, ans, x: g], saves_args=False,
    formula=Formula("{out} = {0}", {0: "{0}̄ = {out}̄"}, no_macs),
    lowering=low.view(), samples=_normal(3, 4),
)


def has_array_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in items)


def _untake(g, index, shape):
    """The adjoint of ``x[index]``: scatter ``g`` into zeros, repeated indices add up."""
    out = np.zeros(shape, dtype=np.result_type(g, np.float32))
    if has_array_index(index):
        np.add.at(out, index, g)
    else:
        out[index] = g
    return out


def index_value(index):
    if isinstance(index, tuple):
        return tuple(value(i) for i in index)
    return value(index)


def _getitem(x, index):
    return x[index]


def _index_samples(r):
    x = r.normal(size=(4, 5))
    return [Sample(x, (slice(1, 3), slice(None, None, 2))),
            Sample(x, (np.array([0, 2, 0]), np.array([1, 3, 1]))),  # repeats accumulate
            Sample(x, np.array([True, False, True, True])),
            Sample(x, (Ellipsis, 2))]


getitem = define(
    _getitem, "getitem", vjps=[lambda g, ans, x, index: untake(g, index, shape_of(x))],
    formula=Formula("{out} = {0}[index]", {0: "{0}̄ = {out}̄ scattered into zeros (repeats add)"}, no_macs),
    lowering=low.getitem(), samples=_index_samples,
)
untake = define(
    _untake, "untake", vjps=[lambda G, ans, g, index, shape: getitem(G, index)], saves_args=False,
    formula=Formula("{out} = scatter({0})", {0: "{0}̄ = {out}̄[index]"}, no_macs),
    lowering=low.untake(),
    samples=lambda r: [Sample(r.normal(size=(3,)), (np.array([0, 2, 0]),), (4,)),
                       Sample(r.normal(size=(2, 5)), (slice(1, 3),), (4, 5))],
)


def _concatenate_args(axis, *arrays):
    return np.concatenate(arrays, axis=axis)


def _stack_args(axis, *arrays):
    return np.stack(arrays, axis=axis)


def _concatenate_rule(i):
    def rule(g, ans, axis, *arrays):
        axis_n = axis % len(shape_of(g))
        start = int(np.sum([shape_of(a)[axis_n] for a in arrays[: i - 1]], dtype=int))
        index = [slice(None)] * len(shape_of(g))
        index[axis_n] = slice(start, start + shape_of(arrays[i - 1])[axis_n])
        return getitem(g, tuple(index))

    return rule


def _stack_rule(i):
    def rule(g, ans, axis, *arrays):
        index = [slice(None)] * len(shape_of(g))
        index[axis % len(shape_of(g))] = i - 1
        return getitem(g, tuple(index))

    return rule


_concatenate = define(
    _concatenate_args, "concatenate", vjps=EveryArgument(_concatenate_rule), saves_args=False,
    formula=Formula("{out} = concatenate(…)", {}, no_macs),
    lowering=low.assemble(_concatenate_args),
    samples=lambda r: [Sample(0, r.normal(size=(2, 3)), r.normal(size=(4, 3))),
                       Sample(-1, r.normal(size=(2, 3)), r.normal(size=(2, 1)), r.normal(size=(2, 2)))],
)
_stack = define(
    _stack_args, "stack", vjps=EveryArgument(_stack_rule), saves_args=False,
    formula=Formula("{out} = stack(…)", {}, no_macs),
    lowering=low.assemble(_stack_args),
    samples=lambda r: [Sample(0, r.normal(size=(2, 3)), r.normal(size=(2, 3))),
                       Sample(1, r.normal(size=(4,)), r.normal(size=(4,)), r.normal(size=(4,)))],
)


def concatenate(arrays, axis=0):
    return _concatenate(axis, *arrays)


def stack(arrays, axis=0):
    return _stack(axis, *arrays)


def _where(condition, x, y):
    return np.where(condition, x, y)


# z = where(c, x, y):  x̄ = z̄ where c holds (0 elsewhere), ȳ = z̄ where it does not
_where_prim = define(
    _where, "where",
    vjps=[None, lambda g, ans, c, x, y: unbroadcast(where(value(c), g, 0.0), x),
          lambda g, ans, c, x, y: unbroadcast(where(value(c), 0.0, g), y)],
    formula=Formula("{out} = where({0}, {1}, {2})", {1: "{1}̄ = {out}̄ where {0}, else 0",
                                                     2: "{2}̄ = {out}̄ where not {0}, else 0"}, no_macs),
    lowering=low.where(),
    samples=lambda r: [Sample(r.normal(size=(3, 4)) > 0, r.normal(size=(3, 4)), r.normal(size=(3, 4))),
                       Sample(r.normal(size=(3, 4)) > 0, r.normal(size=(4,)), 0.5)],
)


def where(condition, x=None, y=None):
    """``np.where``: picks from ``x`` where ``condition`` holds, else from ``y``."""
    if x is None and y is None:
        return np.where(value(condition))
    return _where_prim(value(condition), x, y)
