"""The NumPy face's derivative table: every function autograd differentiates, as primitives.

Extends ``fastgrad._ops`` (which holds the core table: + − × ÷ ** max/min exp log sqrt
abs sin cos tanh matmul sum mean max min reshape transpose indexing concatenate stack
where) with the rest of NumPy, grouped as autograd's ``numpy_vjps`` is: unary
elementwise one-liners, binary elementwise ops (``unbroadcast`` undoes broadcasting),
reductions, shape and indexing, then the contractions (tensordot, einsum), whose adjoints
are contractions again. Notation: for y = f(x), a rule turns ȳ (``g``) into x̄.

Every rule is written in primitives (never in plain NumPy on the values), so the backward
pass can itself be recorded and differentiated: grad of grad of grad. ``value(x)`` is used
only for masks and constants. Functions that are compositions of primitives (var, trace,
dot, norm, ...) are plain Python: on plain arrays they call NumPy directly.
"""

import builtins
import functools
import string

import numpy as onp

from .. import _ops
from .._ops import (
    EveryArgument as _EveryArgument,
)
from .._ops import (
    amax,
    amin,
    broadcast_to,
    cos,
    exp,
    expand_dims,
    getitem,
    matmul,
    maximum,
    minimum,
    multiply,
    reshape,
    shape_of,
    sqrt,
    swapaxes,
    transpose,
    unbroadcast,
    untake,
    value,
)
from .._ops import (
    repeat_to_match as _repeat_to_match,
)
from .._tape import Primitive
from .._tape import TensorBase as Tensor

try:
    from numpy._core.einsumfunc import _parse_einsum_input
except ImportError:  # NumPy < 2
    from numpy.core.einsumfunc import _parse_einsum_input


NumpyPrimitive = Primitive  # (a Primitive forwards NumPy's attributes: np.add.reduce)


def primitive(fun, name=None):
    return Primitive(fun, name or getattr(fun, "__name__", None))


def defvjp(prim, *rules, saves_args=True, saves_ans=False):
    """Attach one rule per argument (``None`` for an argument with no derivative)."""
    prim.defvjp(*rules, saves_args=saves_args, saves_ans=saves_ans)


def traced(*args):
    """True if any argument is a tensor: the slow (recording) path is needed."""
    for a in args:
        if isinstance(a, Tensor):
            return True
    return False


def contains_tensor(x):
    if isinstance(x, Tensor):
        return True
    if isinstance(x, (list, tuple)):
        return builtins.any(contains_tensor(v) for v in x)
    return False


def ndim_of(x):
    return len(shape_of(x))


def dtype_of(x):
    d = getattr(x, "dtype", None)
    return d if d is not None else onp.result_type(x)


def _shape_proxy(x):
    """A zero-stride array of ``x``'s shape, for NumPy helpers that only read shapes."""
    return onp.broadcast_to(0.0, shape_of(x))


# --------------------------------------------------------------- unary elementwise --

tan = primitive(onp.tan)
arcsin = primitive(onp.arcsin)
arccos = primitive(onp.arccos)
arctan = primitive(onp.arctan)
sinh = primitive(onp.sinh)
cosh = primitive(onp.cosh)
arcsinh = primitive(onp.arcsinh)
arccosh = primitive(onp.arccosh)
arctanh = primitive(onp.arctanh)
log2 = primitive(onp.log2)
log10 = primitive(onp.log10)
log1p = primitive(onp.log1p)
expm1 = primitive(onp.expm1)
exp2 = primitive(onp.exp2)
square = primitive(onp.square)
reciprocal = primitive(onp.reciprocal)
rad2deg = primitive(onp.rad2deg)
deg2rad = primitive(onp.deg2rad)
fabs = primitive(onp.fabs)
sinc = primitive(onp.sinc)
real = primitive(onp.real)
imag = primitive(onp.imag)
conjugate = primitive(onp.conjugate)
angle = primitive(onp.angle)
real_if_close = primitive(onp.real_if_close)
nan_to_num = primitive(onp.nan_to_num)

defvjp(tan, lambda g, ans, x: g / cos(x) ** 2)  # x̄ = ȳ / cos²x
defvjp(arcsin, lambda g, ans, x: g / sqrt(1.0 - x * x))
defvjp(arccos, lambda g, ans, x: -g / sqrt(1.0 - x * x))
defvjp(arctan, lambda g, ans, x: g / (1.0 + x * x))
defvjp(sinh, lambda g, ans, x: g * cosh(x))
defvjp(cosh, lambda g, ans, x: g * sinh(x))
defvjp(arcsinh, lambda g, ans, x: g / sqrt(x * x + 1.0))
defvjp(arccosh, lambda g, ans, x: g / sqrt(x * x - 1.0))
defvjp(arctanh, lambda g, ans, x: g / (1.0 - x * x))
defvjp(log2, lambda g, ans, x: g / (x * onp.log(2.0)))
defvjp(log10, lambda g, ans, x: g / (x * onp.log(10.0)))
defvjp(log1p, lambda g, ans, x: g / (x + 1.0))
defvjp(expm1, lambda g, ans, x: g * (ans + 1.0), saves_args=False, saves_ans=True)
defvjp(exp2, lambda g, ans, x: g * ans * onp.log(2.0), saves_args=False, saves_ans=True)
defvjp(square, lambda g, ans, x: g * 2.0 * x)
defvjp(reciprocal, lambda g, ans, x: -g / (x * x))
defvjp(rad2deg, lambda g, ans, x: g * (180.0 / onp.pi), saves_args=False)
defvjp(deg2rad, lambda g, ans, x: g * (onp.pi / 180.0), saves_args=False)
defvjp(fabs, lambda g, ans, x: g * onp.sign(value(x)))


def _sinc_vjp(g, ans, x):
    # d/dx sin(πx)/(πx) = (cos(πx) − sinc(x)) / x, and 0 at x = 0
    safe = _ops.where(value(x) == 0, 1.0, x)
    return g * _ops.where(value(x) == 0, 0.0, (cos(onp.pi * safe) - sinc(safe)) / safe)


defvjp(sinc, _sinc_vjp)
# Real inputs only (complex numbers are out of scope): real, conj pass ȳ through, imag
# and angle are locally constant.
defvjp(real, lambda g, ans, x: _ops.identity(g) if traced(g) else g, saves_args=False)
defvjp(real_if_close, lambda g, ans, x: g, saves_args=False)
defvjp(conjugate, lambda g, ans, x: g, saves_args=False)
defvjp(imag, lambda g, ans, x: g * 0.0, saves_args=False)
defvjp(angle, lambda g, ans, x: g * 0.0, saves_args=False)
defvjp(nan_to_num, lambda g, ans, x, *a, **k: g * onp.isfinite(value(x)))

# -------------------------------------------------------------- binary elementwise --

arctan2 = primitive(onp.arctan2)
hypot = primitive(onp.hypot)
logaddexp = primitive(onp.logaddexp)
logaddexp2 = primitive(onp.logaddexp2)
mod = primitive(onp.mod)
remainder = mod
fmax = primitive(onp.fmax)
fmin = primitive(onp.fmin)

# θ = atan2(y, x):  ȳ = θ̄ x / (x² + y²),  x̄ = −θ̄ y / (x² + y²)
defvjp(
    arctan2,
    lambda g, ans, y, x: unbroadcast(g * x / (x * x + y * y), y),
    lambda g, ans, y, x: unbroadcast(-g * y / (x * x + y * y), x),
)
# h = √(x² + y²):  x̄ = h̄ x / h
defvjp(
    hypot,
    lambda g, ans, x, y: unbroadcast(g * x / ans, x),
    lambda g, ans, x, y: unbroadcast(g * y / ans, y),
    saves_ans=True,
)
# z = log(eˣ + eʸ):  x̄ = z̄ eˣ⁻ᶻ
defvjp(
    logaddexp,
    lambda g, ans, x, y: unbroadcast(g * exp(x - ans), x),
    lambda g, ans, x, y: unbroadcast(g * exp(y - ans), y),
    saves_ans=True,
)
defvjp(
    logaddexp2,
    lambda g, ans, x, y: unbroadcast(g * exp2(x - ans), x),
    lambda g, ans, x, y: unbroadcast(g * exp2(y - ans), y),
    saves_ans=True,
)
# z = x mod y = x − y ⌊x/y⌋:  x̄ = z̄,  ȳ = −z̄ ⌊x/y⌋
defvjp(
    mod,
    lambda g, ans, x, y: unbroadcast(g, x),
    lambda g, ans, x, y: unbroadcast(-g * onp.floor(value(x) / value(y)), y),
)
fmax.vjps = maximum.vjps
fmax.saves_ans = True
fmin.vjps = minimum.vjps
fmin.saves_ans = True

# --------------------------------------------------------------------- reductions --


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _as_array_if_sequence(a):
    return array(a) if isinstance(a, (list, tuple)) and contains_tensor(a) else a


def sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    a = _as_array_if_sequence(a)
    if isinstance(a, Tensor):
        return _ops.sum(a, _axis(axis), keepdims)
    return onp.sum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_array_if_sequence(a)
    if isinstance(a, Tensor):
        return _ops.mean(a, _axis(axis), keepdims)
    return onp.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def max(a, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    a = _as_array_if_sequence(a)
    if isinstance(a, Tensor):
        return amax(a, _axis(axis), keepdims)
    return onp.max(a, axis=axis, out=out, keepdims=keepdims, **kwargs)


def min(a, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    a = _as_array_if_sequence(a)
    if isinstance(a, Tensor):
        return amin(a, _axis(axis), keepdims)
    return onp.min(a, axis=axis, out=out, keepdims=keepdims, **kwargs)


def _prod(x, axis=None, keepdims=False):
    return onp.prod(x, axis=axis, keepdims=keepdims)


_prod_p = primitive(_prod, "prod")
# p = Π x:  x̄ = p̄ p / x  (inputs without zeros, as autograd)
defvjp(
    _prod_p,
    lambda g, ans, x, axis=None, keepdims=False: _repeat_to_match(g * ans, x, axis, keepdims) / x,
    saves_ans=True,
)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_array_if_sequence(a)
    if isinstance(a, Tensor):
        return _prod_p(a, _axis(axis), keepdims)
    return onp.prod(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def _count(x, axis):
    shape = shape_of(x)
    if axis is None:
        return int(onp.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(onp.prod([shape[a] for a in axes]))


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """σ² = Σ (x − x̄)² / (N − ddof), composed of primitives."""
    a = _as_array_if_sequence(a)
    if not isinstance(a, Tensor):
        return onp.var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    axis = _axis(axis)
    centered = a - _ops.mean(a, axis, True)
    return _ops.sum(centered * centered, axis, keepdims) / (_count(a, axis) - ddof)


def _std(x, axis=None, ddof=0, keepdims=False):
    return onp.std(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _std_vjp(g, ans, x, axis=None, ddof=0, keepdims=False):
    # σ = √(Σ (x − x̄)² / (n − ddof)):  x̄ᵢ = σ̄ (xᵢ − x̄) / ((n − ddof) σ); 0 for a single
    # element (σ is 0 whatever x is), as autograd's
    n = _count(x, axis)
    if n <= 1:
        return _repeat_to_match(g, x, axis, keepdims) * 0.0
    centered = x - _ops.mean(x, axis, True)
    return _repeat_to_match(g / ans, x, axis, keepdims) * centered / (n - ddof)


_std_p = primitive(_std, "std")
defvjp(_std_p, _std_vjp, saves_ans=True)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    a = _as_array_if_sequence(a)
    if not isinstance(a, Tensor):
        return onp.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    return _std_p(a, _axis(axis), ddof, keepdims)


def _cumsum(x, axis=None):
    return onp.cumsum(x, axis=axis)


def _flip(x, axis=None):
    return onp.flip(x, axis)


cumsum_p = primitive(_cumsum, "cumsum")
flip_p = primitive(_flip, "flip")
defvjp(flip_p, lambda g, ans, x, axis=None: flip_p(g, axis), saves_args=False)


def _cumsum_vjp(g, ans, x, axis=None):
    # s = cumsum(x):  x̄ = reverse-cumsum(s̄)
    if axis is None:
        return reshape(flip_p(cumsum_p(flip_p(g))), shape_of(x))
    return flip_p(cumsum_p(flip_p(g, axis), axis), axis)


defvjp(cumsum_p, _cumsum_vjp, saves_args=False)


def cumsum(a, axis=None, dtype=None, out=None):
    if isinstance(a, Tensor):
        return cumsum_p(a, axis)
    return onp.cumsum(a, axis=axis, dtype=dtype, out=out)


def flip(m, axis=None):
    return flip_p(m, axis) if isinstance(m, Tensor) else onp.flip(m, axis)


def flipud(m):
    return flip_p(m, 0) if isinstance(m, Tensor) else onp.flipud(m)


def fliplr(m):
    return flip_p(m, 1) if isinstance(m, Tensor) else onp.fliplr(m)


# ------------------------------------------------------------ elementwise selection --


def _clip(x, a_min, a_max):
    return onp.clip(x, a_min, a_max)


def _clip_vjp(g, ans, x, a_min, a_max):
    xv = value(x)
    mask = onp.ones(onp.shape(xv), dtype=bool)
    if a_min is not None:
        mask &= xv > value(a_min)
    if a_max is not None:
        mask &= xv < value(a_max)
    return g * mask


_clip_p = primitive(_clip, "clip")
defvjp(_clip_p, _clip_vjp)


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if isinstance(a, Tensor):
        return _clip_p(a, a_min, a_max)
    return onp.clip(a, a_min, a_max, out=out, **kwargs)


def _numpy_like(x):
    if isinstance(x, (Tensor, onp.ndarray, onp.generic)):
        return True
    return isinstance(x, (list, tuple)) and builtins.any(_numpy_like(v) for v in x)


def where(condition, *args, **kwargs):
    """np.where; like autograd's, on Python scalars and lists only it returns Python values."""
    if not args and not kwargs:
        return onp.where(value(condition))
    if len(args) + len(kwargs) != 2:
        raise ValueError("either both or neither of x and y should be given")
    x = args[0] if args else kwargs["x"]
    y = args[1] if len(args) > 1 else kwargs["y"]
    if traced(x, y):
        return _ops.where(condition, x, y)
    res = onp.where(value(condition), x, y)
    if not (_numpy_like(condition) or _numpy_like(x) or _numpy_like(y)) and isinstance(
        res, onp.ndarray
    ):
        return res.tolist()
    return res


def select(condlist, choicelist, default=0):
    if not contains_tensor(list(choicelist)) and not isinstance(default, Tensor):
        return onp.select([value(c) for c in condlist], choicelist, default)
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = _ops.where(value(cond), choice, out)
    return out


# --------------------------------------------------------------- shape functions --


def reshape_fn(a, shape=None, order="C", *, newshape=None, copy=None):
    shape = newshape if shape is None else shape
    if isinstance(a, Tensor):
        return reshape(a, shape)
    return onp.reshape(a, shape, order=order)


def ravel(a, order="C"):
    return reshape(a, (-1,)) if isinstance(a, Tensor) else onp.ravel(a, order)


def squeeze(a, axis=None):
    if not isinstance(a, Tensor):
        return onp.squeeze(a, axis)
    return reshape(a, onp.squeeze(_shape_proxy(a), axis).shape)


def expand_dims_fn(a, axis):
    if not isinstance(a, Tensor):
        return onp.expand_dims(a, axis)
    return reshape(a, onp.expand_dims(_shape_proxy(a), axis).shape)


def transpose_fn(a, axes=None):
    if not isinstance(a, Tensor):
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
    if not isinstance(a, Tensor):
        return onp.moveaxis(a, source, destination)
    return transpose(a, _permutation(ndim_of(a), source, destination))


def rollaxis(a, axis, start=0):
    if not isinstance(a, Tensor):
        return onp.rollaxis(a, axis, start)
    n = ndim_of(a)
    axis %= n
    if start < 0:
        start += n
    order = [i for i in range(n) if i != axis]
    order.insert(start - 1 if start > axis else start, axis)
    return transpose(a, tuple(order))


def swapaxes_fn(a, axis1, axis2):
    return swapaxes(a, axis1, axis2) if isinstance(a, Tensor) else onp.swapaxes(a, axis1, axis2)


def _atleast(n, a):
    if not isinstance(a, Tensor):
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
    return (
        broadcast_to(array, shape)
        if isinstance(array, Tensor)
        else onp.broadcast_to(array, shape, subok)
    )


def _rot90(m, k=1, axes=(0, 1)):
    return onp.rot90(m, k, axes)


_rot90_p = primitive(_rot90, "rot90")
defvjp(_rot90_p, lambda g, ans, m, k=1, axes=(0, 1): _rot90_p(g, -k, axes), saves_args=False)


def rot90(m, k=1, axes=(0, 1)):
    return _rot90_p(m, k, tuple(axes)) if isinstance(m, Tensor) else onp.rot90(m, k, axes)


def _roll(a, shift, axis=None):
    return onp.roll(a, shift, axis)


_roll_p = primitive(_roll, "roll")
defvjp(
    _roll_p, lambda g, ans, a, shift, axis=None: _roll_p(g, _negate(shift), axis), saves_args=False
)


def _negate(shift):
    return tuple(-s for s in shift) if isinstance(shift, (tuple, list)) else -shift


def roll(a, shift, axis=None):
    return _roll_p(a, shift, axis) if isinstance(a, Tensor) else onp.roll(a, shift, axis)


def _tri(upper):
    f = onp.triu if upper else onp.tril

    def tri(m, k=0):
        return f(m, k)

    p = primitive(tri, "triu" if upper else "tril")
    defvjp(p, lambda g, ans, m, k=0: p(g, k), saves_args=False)  # a mask: its own adjoint
    return p


triu = _tri(True)
tril = _tri(False)


def _repeat(a, repeats, axis=None):
    return onp.repeat(a, repeats, axis)


def _repeat_vjp(g, ans, a, repeats, axis=None):
    # Each input element was copied ``repeats`` times: its signal is the sum of the copies.
    shape = shape_of(a)
    if axis is None:
        n = int(onp.prod(shape))
        return reshape(_ops.sum(reshape(g, (n, repeats)), 1), shape)
    axis %= len(shape)
    grouped = reshape(g, shape[:axis] + (shape[axis], repeats) + shape[axis + 1 :])
    return _ops.sum(grouped, axis + 1)


_repeat_p = primitive(_repeat, "repeat")
defvjp(_repeat_p, _repeat_vjp, saves_args=False)


def repeat(a, repeats, axis=None):
    if isinstance(a, Tensor):
        if not isinstance(repeats, (int, onp.integer)):
            raise NotImplementedError(
                "fastgrad differentiates repeat with an integer number of repeats"
            )
        return _repeat_p(a, int(repeats), axis)
    return onp.repeat(a, repeats, axis)


def _tile_vjp(g, ans, a, reps):
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


_tile_p = primitive(onp.tile, "tile")
defvjp(_tile_p, _tile_vjp, saves_args=False)


def tile(A, reps):
    return _tile_p(A, reps) if isinstance(A, Tensor) else onp.tile(A, reps)


def _pad_vjp(g, ans, array, pad_width, mode="constant", **kwargs):
    if mode != "constant":
        raise NotImplementedError(
            f"fastgrad differentiates pad only in mode 'constant', not {mode!r}"
        )
    shape = shape_of(array)
    widths = onp.broadcast_to(onp.asarray(pad_width, dtype=int), (len(shape), 2))
    return getitem(g, tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, shape)))


_pad_p = primitive(onp.pad, "pad")
defvjp(_pad_p, _pad_vjp, saves_args=False)


def pad(array, pad_width, mode="constant", **kwargs):
    return (
        _pad_p(array, pad_width, mode, **kwargs)
        if isinstance(array, Tensor)
        else onp.pad(array, pad_width, mode, **kwargs)
    )


def diff(a, n=1, axis=-1, prepend=onp._NoValue, append=onp._NoValue):
    if (
        not isinstance(a, Tensor)
        and not isinstance(prepend, Tensor)
        and not isinstance(append, Tensor)
    ):
        return onp.diff(a, n, axis, prepend, append)
    nd = ndim_of(a)
    axis %= nd
    pieces = []
    if prepend is not onp._NoValue:
        pieces.append(
            broadcast_to(prepend, _with(shape_of(a), axis, 1)) if ndim_of(prepend) == 0 else prepend
        )
    pieces.append(a)
    if append is not onp._NoValue:
        pieces.append(
            broadcast_to(append, _with(shape_of(a), axis, 1)) if ndim_of(append) == 0 else append
        )
    if len(pieces) > 1:
        a = concatenate(pieces, axis)
    head = [slice(None)] * nd
    tail = [slice(None)] * nd
    head[axis], tail[axis] = slice(1, None), slice(None, -1)
    for _ in range(n):
        a = getitem(a, tuple(head)) - getitem(a, tuple(tail))
    return a


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
    if not isinstance(a, Tensor):
        return onp.sort(a, axis, kind, order, **kwargs)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return getitem(a, _along_axis_index(onp.argsort(value(a), axis=axis, kind=kind), axis))


def partition(a, kth, axis=-1, kind="introselect", order=None):
    if not isinstance(a, Tensor):
        return onp.partition(a, kth, axis, kind, order)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return getitem(a, _along_axis_index(onp.argpartition(value(a), kth, axis=axis), axis))


def take_along_axis(arr, indices, axis=-1):
    if not isinstance(arr, Tensor):
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
    if not isinstance(ary, Tensor):
        return onp.split(ary, indices_or_sections, axis)
    return _split_slices(ary, indices_or_sections, axis, "split")


def array_split(ary, indices_or_sections, axis=0):
    if not isinstance(ary, Tensor):
        return onp.array_split(ary, indices_or_sections, axis)
    return _split_slices(ary, indices_or_sections, axis, "array_split")


def hsplit(ary, indices_or_sections):
    if not isinstance(ary, Tensor):
        return onp.hsplit(ary, indices_or_sections)
    return split(ary, indices_or_sections, 1 if ndim_of(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    if not isinstance(ary, Tensor):
        return onp.vsplit(ary, indices_or_sections)
    return split(ary, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    if not isinstance(ary, Tensor):
        return onp.dsplit(ary, indices_or_sections)
    return split(ary, indices_or_sections, 2)


# --------------------------------------------------------- building arrays from parts --


def _array_from(a, dtype=None):
    """np.array of nested sequences holding tensors: stacked with the ``stack`` primitive."""
    if isinstance(a, (list, tuple)):
        if not contains_tensor(a):
            return onp.array(a, dtype=dtype)
        return _ops.stack([_array_from(v, dtype) for v in a])
    if isinstance(a, Tensor):
        return _copy(a)
    return onp.array(a, dtype=dtype)


_copy = primitive(lambda x: onp.array(x), "array")
defvjp(_copy, lambda g, ans, x: g, saves_args=False)


def array(object, dtype=None, *args, **kwargs):  # noqa: A002
    if isinstance(object, Tensor) or (
        isinstance(object, (list, tuple)) and contains_tensor(object)
    ):
        out = _array_from(object)
        if dtype is not None and onp.dtype(dtype) != dtype_of(out):
            out = astype(out, dtype)
        return out
    return onp.array(object, dtype, *args, **kwargs)


def asarray(a, dtype=None, *args, **kwargs):
    if isinstance(a, Tensor):
        return a if dtype is None or onp.dtype(dtype) == dtype_of(a) else astype(a, dtype)
    if isinstance(a, (list, tuple)) and contains_tensor(a):
        return array(a, dtype)
    return onp.asarray(a, dtype, *args, **kwargs)


def _astype(x, dtype):
    return onp.asarray(x).astype(dtype)


astype_p = primitive(_astype, "astype")
defvjp(astype_p, lambda g, ans, x, dtype: astype_p(g, dtype_of(x)))


def astype(x, dtype, *args, **kwargs):
    if isinstance(x, Tensor):
        return astype_p(x, dtype)
    return onp.asarray(x).astype(dtype, *args, **kwargs)


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
    if not traced(arr, values) and not contains_tensor([arr, values]):
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


# ------------------------------------------------------------- diagonals and traces --


def _diagonal_embedding(d, n, m, offset):
    """P with P[k, i, j] = 1 where (i, j) is the k-th element of the offset diagonal."""
    P = onp.zeros((d, n, m))
    k = onp.arange(d)
    P[k, k + builtins.max(-offset, 0), k + builtins.max(offset, 0)] = 1.0
    return P


def _diagonal(a, offset=0, axis1=0, axis2=1):
    return onp.diagonal(a, offset, axis1, axis2)


def _diagonal_vjp(g, ans, a, offset=0, axis1=0, axis2=1):
    # x̄ = ȳ placed back on the diagonal (a contraction with a constant 0/1 tensor)
    shape = shape_of(a)
    nd = len(shape)
    axis1, axis2 = axis1 % nd, axis2 % nd
    n, m = shape[axis1], shape[axis2]
    d = shape_of(g)[-1]
    embedded = tensordot(g, _diagonal_embedding(d, n, m, offset), 1)  # (..., n, m)
    return moveaxis(embedded, (-2, -1), (axis1, axis2))


diagonal_p = primitive(_diagonal, "diagonal")
defvjp(diagonal_p, _diagonal_vjp, saves_args=False)


def diagonal(a, offset=0, axis1=0, axis2=1):
    if isinstance(a, Tensor):
        return diagonal_p(a, offset, axis1, axis2)
    return onp.diagonal(a, offset, axis1, axis2)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if not isinstance(a, Tensor):
        return onp.trace(a, offset, axis1, axis2, dtype, out)
    return _ops.sum(diagonal_p(a, offset, axis1, axis2), -1)


def _diag(v, k=0):
    return onp.diag(v, k)


def _diag_vjp(g, ans, v, k=0):
    shape = shape_of(v)
    if len(shape) == 1:
        return diag_p(g, k)
    d = shape_of(g)[0]
    i = onp.arange(d)
    return untake(g, (i + builtins.max(-k, 0), i + builtins.max(k, 0)), shape)


diag_p = primitive(_diag, "diag")
defvjp(diag_p, _diag_vjp, saves_args=False)


def diag(v, k=0):
    return diag_p(v, k) if isinstance(v, Tensor) else onp.diag(v, k)


def make_diagonal(D, offset=0, axis1=-1, axis2=-2):
    """A new array with ``D``'s last axis on the diagonal of two new last axes (autograd's)."""
    if offset != 0 or {axis1, axis2} != {-1, -2}:
        raise NotImplementedError("make_diagonal supports offset=0, axis1=-1, axis2=-2")
    n = shape_of(D)[-1]
    if isinstance(D, Tensor):
        return multiply(expand_dims(D, -1), onp.eye(n))
    return onp.asarray(D)[..., None] * onp.eye(n)


# ------------------------------------------------------------------ contractions --


def _tensordot_axes(axes, an, bn):
    if isinstance(axes, (int, onp.integer)):
        return list(range(an - axes, an)), list(range(axes))
    ax_a, ax_b = axes
    ax_a = [ax_a] if isinstance(ax_a, (int, onp.integer)) else list(ax_a)
    ax_b = [ax_b] if isinstance(ax_b, (int, onp.integer)) else list(ax_b)
    return [int(i) % an for i in ax_a], [int(i) % bn for i in ax_b]


def _tensordot(a, b, axes=2):
    return onp.tensordot(a, b, axes)


def _tensordot_a(g, ans, a, b, axes=2):
    # C = Σ A B over the paired axes:  Ā = C̄ contracted with B over B's free axes
    an, bn = ndim_of(a), ndim_of(b)
    sum_a, sum_b = _tensordot_axes(axes, an, bn)
    free_a = [i for i in range(an) if i not in sum_a]
    free_b = [i for i in range(bn) if i not in sum_b]
    nfa = len(free_a)
    t = tensordot_p(g, b, (list(range(nfa, nfa + len(free_b))), free_b))
    order_b = sorted(sum_b)
    perm = [0] * an
    for p, i in enumerate(free_a):
        perm[i] = p
    for i, j in zip(sum_a, sum_b):
        perm[i] = nfa + order_b.index(j)
    return transpose(t, tuple(perm))


def _tensordot_b(g, ans, a, b, axes=2):
    an, bn = ndim_of(a), ndim_of(b)
    sum_a, sum_b = _tensordot_axes(axes, an, bn)
    free_a = [i for i in range(an) if i not in sum_a]
    free_b = [i for i in range(bn) if i not in sum_b]
    t = tensordot_p(a, g, (free_a, list(range(len(free_a)))))
    order_a = sorted(sum_a)
    perm = [0] * bn
    for p, i in enumerate(free_b):
        perm[i] = len(sum_a) + p
    for i, j in zip(sum_a, sum_b):
        perm[j] = order_a.index(i)
    return transpose(t, tuple(perm))


tensordot_p = primitive(_tensordot, "tensordot")
defvjp(tensordot_p, _tensordot_a, _tensordot_b)


def tensordot(a, b, axes=2):
    if traced(a, b):
        if isinstance(axes, (list, tuple)):
            axes = tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in axes)
        return tensordot_p(a, b, axes)
    return onp.tensordot(a, b, axes)


def dot(a, b, out=None):
    if not traced(a, b):
        return onp.dot(a, b, out)
    an, bn = ndim_of(a), ndim_of(b)
    if an == 0 or bn == 0:
        return multiply(a, b)
    if bn <= 2:
        return matmul(a, b)
    return tensordot_p(a, b, ((an - 1,), (bn - 2,)))


def vdot(a, b):
    if not traced(a, b):
        return onp.vdot(a, b)
    return _ops.sum(multiply(ravel(a), ravel(b)))


def inner(a, b):
    if not traced(a, b):
        return onp.inner(a, b)
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return multiply(a, b)
    return tensordot_p(a, b, ((ndim_of(a) - 1,), (ndim_of(b) - 1,)))


def outer(a, b, out=None):
    if not traced(a, b):
        return onp.outer(a, b, out)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def matmul_fn(x1, x2, **kwargs):
    return matmul(x1, x2) if traced(x1, x2) else onp.matmul(x1, x2, **kwargs)


def kron(a, b):
    if not traced(a, b):
        return onp.kron(a, b)
    sa, sb = shape_of(a), shape_of(b)
    d = builtins.max(len(sa), len(sb))
    sa = (1,) * (d - len(sa)) + tuple(sa)
    sb = (1,) * (d - len(sb)) + tuple(sb)
    wide_a, wide_b, out = [], [], []
    for n, m in zip(sa, sb):
        wide_a += [n, 1]
        wide_b += [1, m]
        out.append(n * m)
    return reshape(multiply(reshape(a, tuple(wide_a)), reshape(b, tuple(wide_b))), tuple(out))


def _cross_last(a, b):
    return onp.cross(a, b)


cross_p = primitive(_cross_last, "cross")
# c = a × b:  ā = b × c̄,  b̄ = c̄ × a
defvjp(
    cross_p,
    lambda g, ans, a, b: unbroadcast(cross_p(b, g), a),
    lambda g, ans, a, b: unbroadcast(cross_p(g, a), b),
)


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if not traced(a, b):
        return onp.cross(a, b, axisa, axisb, axisc, axis)
    if axis is not None:
        axisa = axisb = axisc = axis
    c = cross_p(moveaxis(a, axisa, -1), moveaxis(b, axisb, -1))
    return moveaxis(c, -1, axisc) if ndim_of(c) > 0 else c


def _einsum(subscripts, *operands):
    return onp.einsum(subscripts, *operands)


def _einsum_rule(argnum):
    def rule(g, ans, subscripts, *operands):
        # ȳ contracted with every other operand, out to this operand's indices; indices
        # summed in this operand alone are contracted against a tensor of ones.
        k = argnum - 1
        in_subs, out_subs, _ = _parse_einsum_input(
            (subscripts,) + tuple(_shape_proxy(o) for o in operands)
        )
        subs = in_subs.split(",")
        wrt = subs[k]
        if len(set(wrt)) != len(wrt):
            raise NotImplementedError(f"einsum derivative for repeated indices {wrt!r}")
        others = subs[:k] + subs[k + 1 :]
        inputs, ops = [out_subs] + others, [g] + list(operands[:k] + operands[k + 1 :])
        named = set(out_subs + "".join(others))
        shape = shape_of(operands[k])
        naked = [(i, c) for i, c in enumerate(wrt) if c not in named]
        if naked:
            inputs.append("".join(c for _, c in naked))
            ops.append(onp.ones([shape[i] for i, _ in naked]))
        return unbroadcast(einsum_p(",".join(inputs) + "->" + wrt, *ops), operands[k])

    return rule


einsum_p = primitive(_einsum, "einsum")
einsum_p.vjps = _EveryArgument(_einsum_rule)


def _sublists_to_subscripts(args):
    """einsum(op0, sublist0, op1, sublist1, ..., [out]) → ('ij,jk->ik', ops)."""

    def letters(sub):
        return "".join("..." if s is Ellipsis else string.ascii_letters[s] for s in sub)

    args = list(args)
    out = args.pop() if len(args) % 2 else None
    ops, subs = args[0::2], args[1::2]
    spec = ",".join(letters(s) for s in subs)
    if out is not None:
        spec += "->" + letters(out)
    return spec, ops


def einsum(*operands, **kwargs):
    if not traced(*operands):
        return onp.einsum(*operands, **kwargs)
    if isinstance(operands[0], str):
        return einsum_p(operands[0], *operands[1:])
    spec, ops = _sublists_to_subscripts(operands)
    return einsum_p(spec, *ops)


# -------------------------------------------------------------- not differentiable --

NOGRAD = [
    "floor",
    "ceil",
    "round",
    "rint",
    "around",
    "fix",
    "trunc",
    "all",
    "any",
    "argmax",
    "argmin",
    "argpartition",
    "argsort",
    "argwhere",
    "nonzero",
    "flatnonzero",
    "count_nonzero",
    "searchsorted",
    "sign",
    "ndim",
    "shape",
    "size",
    "floor_divide",
    "logical_and",
    "logical_or",
    "logical_not",
    "logical_xor",
    "isfinite",
    "isinf",
    "isnan",
    "isneginf",
    "isposinf",
    "allclose",
    "isclose",
    "array_equal",
    "array_equiv",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "equal",
    "not_equal",
    "iscomplexobj",
    "iscomplex",
    "isrealobj",
    "isreal",
    "isscalar",
    "zeros_like",
    "ones_like",
    "empty_like",
    "full_like",
    "result_type",
    "shares_memory",
    "may_share_memory",
    "copysign",
    "signbit",
    "heaviside",
    "bincount",
    "digitize",
    "histogram",
    "unique",
    "in1d",
    "isin",
    "array_repr",
    "array_str",
    "array2string",
]


def _unbox(x):
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, list) and contains_tensor(x):
        return [_unbox(v) for v in x]
    if isinstance(x, tuple) and contains_tensor(x):
        return tuple(_unbox(v) for v in x)
    return x


def nograd(fun):
    """``fun`` on the values inside any tensors: the result is a constant."""

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        return fun(*[_unbox(a) for a in args], **{k: _unbox(v) for k, v in kwargs.items()})

    return wrapped


# ufunc prims that np.sin(tensor) (a plain NumPy call) should dispatch to
UFUNCS = {
    onp.tan: tan,
    onp.arcsin: arcsin,
    onp.arccos: arccos,
    onp.arctan: arctan,
    onp.sinh: sinh,
    onp.cosh: cosh,
    onp.arcsinh: arcsinh,
    onp.arccosh: arccosh,
    onp.arctanh: arctanh,
    onp.log2: log2,
    onp.log10: log10,
    onp.log1p: log1p,
    onp.expm1: expm1,
    onp.exp2: exp2,
    onp.square: square,
    onp.reciprocal: reciprocal,
    onp.rad2deg: rad2deg,
    onp.deg2rad: deg2rad,
    onp.fabs: fabs,
    onp.conjugate: conjugate,
    onp.arctan2: arctan2,
    onp.hypot: hypot,
    onp.logaddexp: logaddexp,
    onp.logaddexp2: logaddexp2,
    onp.remainder: mod,
    onp.fmax: fmax,
    onp.fmin: fmin,
}


class UndefinedVjps(dict):
    """Rules of a primitive nobody gave a derivative: recording works, the backward
    through it raises NotImplementedError (as autograd does)."""

    def __init__(self, name, zero=()):
        super().__init__()
        self.name = name
        self.zero = set(zero)  # argnums declared to have no derivative (rule None)

    def __contains__(self, i):
        return i not in self.zero

    def __missing__(self, i):
        name = self.name

        def rule(g, ans, *args, **kwargs):
            raise NotImplementedError(f"VJP of {name} wrt argnum {i} not defined")

        return rule
