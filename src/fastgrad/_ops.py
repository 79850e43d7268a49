"""Every primitive and its local derivative, in one table.

Notation (the lecture's): for v = f(a, b), the rule for ``a`` turns the output's error
signal v̄ (``g``) into ā = v̄ ∂v/∂a. A rule has the signature ``rule(g, ans, *args)``,
where ``ans`` is f's output. Rules are written with the primitives of this file, so the
backward pass can itself be recorded (grad of grad); on plain arrays those primitives
are plain NumPy calls, so a first-order backward pays nothing for that.

Groups: binary elementwise ops (``unbroadcast`` sums the broadcast axes away), unary
elementwise ops, the compiled dense kernels (affine/sigmoid and their adjoints, which
are primitives too so second derivatives stay closed), reductions, shape and indexing.
"""

import numpy as np

from ._backend import kernels as _kernels
from ._tape import OuterGrad, Primitive, Tensor, _apply, _mode, inplace_update

# ----------------------------------------------------------------------- helpers --


def value(x):
    """The array inside a tensor (or ``x`` itself): for masks and constants in rules."""
    return x._data if isinstance(x, Tensor) else x


def shape_of(x):
    try:
        return x.shape  # arrays, NumPy scalars, tensors, shape stand-ins
    except AttributeError:
        return np.shape(x)


def primitive(fun, name=None):
    return Primitive(fun, name)


def defvjp(prim, *rules, saves_args=True, saves_ans=False):
    """Attach one rule per argument (``None`` for an argument with no derivative)."""
    prim.defvjp(*rules, saves_args=saves_args, saves_ans=saves_ans)


def unbroadcast(g, x):
    """Sum ``g`` down to ``x``'s shape: the adjoint of NumPy broadcasting."""
    shape = shape_of(x)
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and gshape[lead + i] != 1
    )
    if axes:
        g = sum(g, axis=axes, keepdims=False)
    return reshape(g, shape) if shape_of(g) != shape else g


def _keepdims_shape(shape, axis):
    if axis is None:
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    axes = {a % len(shape) for a in axes} if shape else set()
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _repeat_to_match(g, x, axis, keepdims):
    """Broadcast a reduction's error signal back over the reduced axes of ``x``."""
    shape = shape_of(x)
    if axis is None and not isinstance(g, Tensor):  # a full reduction: g is one number
        return np.full(shape, g, dtype=np.result_type(g))
    if not keepdims:
        g = reshape(g, _keepdims_shape(shape, axis))
    return broadcast_to(g, shape)


def _float_c(a, dtype=None):
    """A C-contiguous float array for a kernel (ints and bools become float64)."""
    a = np.asarray(a, dtype=dtype, order="C")
    if a.dtype.kind != "f":
        _check_real(a)
        a = a.astype(np.float64)
    return a


def _check_real(a):
    # Casting would drop an imaginary part or coerce objects: refuse instead of a wrong answer.
    if a.dtype.kind not in "biu":
        raise TypeError(f"expected real numbers, got dtype {a.dtype} (shape {a.shape})")


def _kernel(name, *arrays):
    """Call the backend's kernel ``name``. Only if it refuses the arrays (mixed or integer
    dtypes, a layout it cannot loop over) are they made one C-contiguous float dtype and
    passed again: the common case pays no Python-side checks (the kernel checks anyway)."""
    kernel = getattr(_kernels(), name)
    try:
        return kernel(*arrays)
    except (TypeError, ValueError):
        return kernel(*_common(*arrays))


def _common(*arrays):
    """Arrays cast to one float dtype, C-contiguous: what the kernels require."""
    dtype = np.result_type(*[a.dtype if hasattr(a, "dtype") else np.float64 for a in arrays])
    if dtype.kind != "f":
        _check_real(np.empty(0, dtype))
        dtype = np.dtype(np.float64)
    return [np.asarray(a, dtype=dtype, order="C") for a in arrays]


# --------------------------------------------------------- binary elementwise ops --

add = primitive(np.add, "add")
subtract = primitive(np.subtract, "subtract")
multiply = primitive(np.multiply, "multiply")
true_divide = primitive(np.true_divide, "true_divide")
divide = true_divide
power = primitive(np.power, "power")
maximum = primitive(np.maximum, "maximum")
minimum = primitive(np.minimum, "minimum")


def _balanced_eq(x, z, y):
    # Where x ties with y both get half the signal: the documented choice for max/min ties.
    x, z, y = value(x), value(z), value(y)
    mask = (x == z) / (1.0 + (x == y))
    return mask.astype(np.result_type(z), copy=False)  # a float32 signal stays float32


def _power_x(g, ans, x, y):  # x̄ = z̄ y xʸ⁻¹
    if isinstance(y, (int, float)) and y == 2:
        return unbroadcast(g * (2 * x), x)  # the squares of losses: no power call
    return unbroadcast(g * y * x ** _exponent_less_one(y), x)


def _exponent_less_one(y):
    """y − 1, with 1 where y = 0 (so 0 · x⁻¹ never makes 0 · ∞ at x = 0)."""
    if isinstance(y, (int, float)):  # a Python number stays weak: float32 stays float32
        return y - 1 if y != 0 else 1.0
    return where(value(y) != 0, y - 1, 1.0)


def _replace_zero(x, val):
    return where(value(x) == 0, val, x)


# z = x + y:  x̄ = z̄,  ȳ = z̄
defvjp(add, lambda g, ans, x, y: unbroadcast(g, x), lambda g, ans, x, y: unbroadcast(g, y),
       saves_args=False)
# z = x − y:  x̄ = z̄,  ȳ = −z̄
defvjp(subtract, lambda g, ans, x, y: unbroadcast(g, x), lambda g, ans, x, y: unbroadcast(-g, y),
       saves_args=False)
# z = x y:  x̄ = z̄ y,  ȳ = z̄ x
defvjp(multiply, lambda g, ans, x, y: unbroadcast(g * y, x), lambda g, ans, x, y: unbroadcast(g * x, y))
# z = x / y:  x̄ = z̄ / y,  ȳ = −z̄ x / y²
defvjp(true_divide, lambda g, ans, x, y: unbroadcast(g / y, x),
       lambda g, ans, x, y: unbroadcast(-g * x / (y * y), y))
# z = xʸ:  x̄ = z̄ y xʸ⁻¹,  ȳ = z̄ log(x) z  (log taken as 0 where x = 0)
defvjp(power,
       _power_x,
       lambda g, ans, x, y: unbroadcast(g * log(_replace_zero(x, 1.0)) * ans, y),
       saves_ans=True)
# z = max(x, y): the signal goes to the larger; ties split it evenly
defvjp(maximum, lambda g, ans, x, y: unbroadcast(g * _balanced_eq(x, ans, y), x),
       lambda g, ans, x, y: unbroadcast(g * _balanced_eq(y, ans, x), y), saves_ans=True)
defvjp(minimum, lambda g, ans, x, y: unbroadcast(g * _balanced_eq(x, ans, y), x),
       lambda g, ans, x, y: unbroadcast(g * _balanced_eq(y, ans, x), y), saves_ans=True)

# ---------------------------------------------------------- unary elementwise ops --

negative = primitive(np.negative, "negative")
exp = primitive(np.exp, "exp")
log = primitive(np.log, "log")
sqrt = primitive(np.sqrt, "sqrt")
absolute = primitive(np.abs, "absolute")
abs = absolute  # noqa: A001  (the NumPy name)
sin = primitive(np.sin, "sin")
cos = primitive(np.cos, "cos")
tanh = primitive(np.tanh, "tanh")


def _relu(x):
    return np.maximum(x, 0)


relu = primitive(_relu, "relu")

defvjp(negative, lambda g, ans, x: -g, saves_args=False)
defvjp(exp, lambda g, ans, x: g * ans, saves_args=False, saves_ans=True)  # x̄ = ȳ eˣ
defvjp(log, lambda g, ans, x: g / x)  # x̄ = ȳ / x
defvjp(sqrt, lambda g, ans, x: g / (2.0 * ans), saves_args=False, saves_ans=True)
defvjp(absolute, lambda g, ans, x: g * np.sign(value(x)))  # 0 at x = 0
defvjp(sin, lambda g, ans, x: g * cos(x))
defvjp(cos, lambda g, ans, x: -g * sin(x))
defvjp(tanh, lambda g, ans, x: g * (1.0 - ans * ans), saves_args=False, saves_ans=True)
defvjp(relu, lambda g, ans, x: g * (value(ans) > 0), saves_args=False, saves_ans=True)

# ---------------------------------------------------- compiled dense kernels ----
# These call the selected backend (fastgrad.backends.reference or .cython).


def _sigmoid(z):
    kernels = _kernels()
    try:
        return kernels.sigmoid_forward(z)
    except (TypeError, ValueError):
        return kernels.sigmoid_forward(_float_c(z))


def _sigmoid_backward(h, dh):
    try:
        return _kernels().sigmoid_backward(h, dh)
    except (TypeError, ValueError):
        return _kernel("sigmoid_backward", h, np.broadcast_to(dh, np.shape(h)))


sigmoid = primitive(_sigmoid, "sigmoid")
sigmoid_backward = primitive(_sigmoid_backward, "sigmoid_backward")
# (sigmoid's own rule, z̄ = h̄ ∘ h ∘ (1 − h), is _sigmoid_vjp below)
# z̄ = h̄ ∘ h(1 − h) is bilinear-ish in (h, h̄):  ∂/∂h = h̄ ∘ (1 − 2h),  ∂/∂h̄ = h(1 − h)
defvjp(sigmoid_backward, lambda G, ans, h, dh: G * dh * (1.0 - 2.0 * h),
       lambda G, ans, h, dh: G * h * (1.0 - h))


def _as_rows(a, width):
    return np.reshape(a, (-1, width))


def _linear(x, W, b=None):
    if b is not None and type(x) is np.ndarray and x.ndim == 2:
        try:  # the hot path: rows of examples, the kernel checks the rest
            return _kernels().affine_forward(x, W, b)
        except (TypeError, ValueError):
            pass  # below: the checks that name the shapes, then casts
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (out_features, in_features), got shape {W.shape}")
    M, D = W.shape
    xs = np.shape(x)
    if not xs or xs[-1] != D:
        raise ValueError(f"x of shape {xs} does not fit W of shape {W.shape} (need x (..., {D}))")
    if b is None:
        b = np.zeros(M, dtype=W.dtype)
    elif np.shape(b) != (M,):
        raise ValueError(f"b of shape {np.shape(b)} does not fit W of shape {W.shape} (need ({M},))")
    z = _kernel("affine_forward", _as_rows(x, D), W, b)
    return z.reshape(xs[:-1] + (M,))


# The adjoints on arrays: the kernel straight away (the backward's hot path), and only if it
# refuses the arrays, _kernel's casts.
def _transpose_matvec(W, dz):
    try:
        return _kernels().transpose_matvec(W, dz)
    except (TypeError, ValueError):
        return _kernel("transpose_matvec", W, dz)


def _outer_grad(dz, x):
    try:
        return _kernels().outer_grad(dz, x)
    except (TypeError, ValueError):
        return _kernel("outer_grad", dz, x)


def _bias_grad(dz):
    try:
        return _kernels().bias_grad(dz)
    except (TypeError, ValueError):
        return _kernel("bias_grad", dz)


linear = primitive(_linear, "linear")
transpose_matvec = primitive(_transpose_matvec, "transpose_matvec")
outer_grad = primitive(_outer_grad, "outer_grad")
bias_grad = primitive(_bias_grad, "bias_grad")


def _rows(a, width):
    return a if len(shape_of(a)) == 2 else reshape(a, (-1, width))


# On arrays (a first-order backward) the rules call the kernels straight away; on
# tensors (a recorded backward) they go through the primitives.
def _linear_x(g, ans, x, W, b=None):  # x̄ = z̄ W   (each row: Wᵀ z̄)
    if type(g) is np.ndarray and type(W) is np.ndarray and type(x) is np.ndarray and g.ndim == 2 == x.ndim:
        return _transpose_matvec(W, g)
    x_bar = transpose_matvec(W, _rows(g, shape_of(W)[0]))
    return x_bar if shape_of(x_bar) == shape_of(x) else reshape(x_bar, shape_of(x))


def _linear_W(g, ans, x, W, b=None):  # W̄ = z̄ᵀ x  (the outer products z̄ xᵀ, summed)
    if type(g) is np.ndarray and type(x) is np.ndarray and g.ndim == 2 == x.ndim:
        return _outer_grad(g, x)
    M, D = shape_of(W)
    return outer_grad(_rows(g, M), _rows(x, D))


def _linear_b(g, ans, x, W, b=None):  # b̄ = Σₙ z̄ₙ
    if type(g) is np.ndarray and g.ndim == 2:
        return _bias_grad(g)
    return bias_grad(_rows(g, shape_of(W)[0]))


def _sigmoid_vjp(g, ans, z):  # h = σ(z):  z̄ = h̄ ∘ h ∘ (1 − h)
    if type(g) is np.ndarray and type(ans) is np.ndarray:
        return _sigmoid_backward(ans, g)
    return sigmoid_backward(ans, g)


defvjp(sigmoid, _sigmoid_vjp, saves_args=False, saves_ans=True)


def _factored(g, x):
    """W̄ = z̄ᵀ x (2-D arrays) left factored when z̄ and x hold under a quarter of W̄'s
    numbers (a batch much smaller than the layer: per-example SGD). None: compute it."""
    N, M = g.shape
    D = x.shape[1]
    if 4 * N * (M + D) <= M * D and g.dtype == x.dtype:
        return OuterGrad(g.copy(), x.copy())
    return None


def _linear_joint(parents, g, ans, defer, x, W, b=None):
    """x̄, W̄, b̄ (those ``parents`` ask for) from one call in a first-order sweep: the same
    kernels as the rules above, one dispatch and one set of checks instead of three."""
    if type(g) is not np.ndarray or type(x) is not np.ndarray or type(W) is not np.ndarray:
        return None
    if g.ndim != 2 or x.ndim != 2:
        return None
    signals = []
    for argnum, parent in parents:
        if argnum == 0:
            signals.append(_transpose_matvec(W, g))
        elif argnum == 1:
            W_bar = _factored(g, x) if defer and parent.prim is None else None
            signals.append(_outer_grad(g, x) if W_bar is None else W_bar)
        else:
            signals.append(_bias_grad(g))
    return signals


# z = x Wᵀ + b
defvjp(linear, _linear_x, _linear_W, _linear_b)
linear.joint_vjp = _linear_joint
# The adjoints are linear maps; their own adjoints close the table for grad of grad.
defvjp(transpose_matvec,  # X = dz W
       lambda G, ans, W, dz: outer_grad(dz, G), lambda G, ans, W, dz: matmul(G, transpose(W)))
defvjp(outer_grad,  # Y = dzᵀ x
       lambda G, ans, dz, x: matmul(x, transpose(G)), lambda G, ans, dz, x: matmul(dz, G))
defvjp(bias_grad, lambda G, ans, dz: broadcast_to(G, shape_of(dz)), saves_args=False)

# --------------------------------------------------------------------- matmul ----

matmul = primitive(np.matmul, "matmul")


def _swap(a):
    return swapaxes(a, -1, -2)


def _matmul_a(g, ans, a, b):
    an, bn = len(shape_of(a)), len(shape_of(b))
    if an == 1 and bn == 1:  # inner product: ā = ḡ b
        return g * b
    if bn == 1:  # (..., n, k) @ (k,): ā = ḡ bᵀ
        return unbroadcast(expand_dims(g, -1) * b, a)
    if an == 1:  # (k,) @ (..., k, m): ā = Σ_batch b ḡ
        return unbroadcast(reshape(matmul(expand_dims(g, -2), _swap(b)), shape_of(g)[:-1] + (shape_of(a)[0],)), a)
    return unbroadcast(matmul(g, _swap(b)), a)


def _matmul_b(g, ans, a, b):
    an, bn = len(shape_of(a)), len(shape_of(b))
    if an == 1 and bn == 1:
        return g * a
    if an == 1:  # (k,) @ (..., k, m): b̄ = a ḡᵀ
        return unbroadcast(expand_dims(a, -1) * expand_dims(g, -2), b)
    if bn == 1:  # (..., n, k) @ (k,): b̄ = Σ aᵀ ḡ
        return unbroadcast(reshape(matmul(_swap(a), expand_dims(g, -1)), shape_of(g)[:-1] + (shape_of(b)[0],)), b)
    return unbroadcast(matmul(_swap(a), g), b)


# C = A B:  Ā = C̄ Bᵀ,  B̄ = Aᵀ C̄
defvjp(matmul, _matmul_a, _matmul_b)
dot_2d = matmul

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


sum = primitive(_sum, "sum")  # noqa: A001
mean = primitive(_mean, "mean")
amax = primitive(_max, "max")
amin = primitive(_min, "min")


def _count(x, axis):
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
    return _repeat_to_match(g, x, axis, keepdims) * share


# s = Σ x:  x̄ = s̄ (repeated over the summed axes)
defvjp(sum, lambda g, ans, x, axis=None, keepdims=False: _repeat_to_match(g, x, axis, keepdims),
       saves_args=False)
defvjp(mean, lambda g, ans, x, axis=None, keepdims=False:
       _repeat_to_match(g, x, axis, keepdims) / _count(x, axis), saves_args=False)
defvjp(amax, _extreme_vjp, saves_ans=True)
defvjp(amin, _extreme_vjp, saves_ans=True)

# ------------------------------------------------------------ shape and indexing ----


def _reshape(x, shape):
    try:
        return x.reshape(shape)  # the method skips np.reshape's dispatch
    except AttributeError:
        return np.reshape(x, shape)


def _transpose(x, axes=None):
    return np.transpose(x, axes)


reshape = primitive(_reshape, "reshape")
transpose = primitive(_transpose, "transpose")
broadcast_to = primitive(np.broadcast_to, "broadcast_to")
expand_dims = primitive(np.expand_dims, "expand_dims")
swapaxes = primitive(np.swapaxes, "swapaxes")


def _transpose_vjp(g, ans, x, axes=None):
    if axes is None:
        return transpose(g)
    return transpose(g, tuple(np.argsort(axes)))


# These outputs are views of their input: "saving" the input protects it from writes
# while the view lives in a graph (W.data[...] = v after using W.T).
defvjp(reshape, lambda g, ans, x, shape: reshape(g, shape_of(x)))
defvjp(transpose, _transpose_vjp)
defvjp(broadcast_to, lambda g, ans, x, shape: unbroadcast(g, x))
defvjp(expand_dims, lambda g, ans, x, axis: reshape(g, shape_of(x)))
defvjp(swapaxes, lambda g, ans, x, a1, a2: swapaxes(g, a1, a2))


def _has_array_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in items)


def _untake(g, index, shape):
    """The adjoint of ``x[index]``: scatter ``g`` into zeros, repeated indices add up."""
    out = np.zeros(shape, dtype=np.result_type(g, np.float32))
    if _has_array_index(index):
        np.add.at(out, index, g)
    else:
        out[index] = g
    return out


def _index_value(index):
    if isinstance(index, tuple):
        return tuple(value(i) for i in index)
    return value(index)


getitem = primitive(lambda x, index: x[index], "getitem")
untake = primitive(_untake, "untake")
defvjp(getitem, lambda g, ans, x, index: untake(g, index, shape_of(x)))
defvjp(untake, lambda G, ans, g, index, shape: getitem(G, index), saves_args=False)


class _EveryArgument(dict):
    """Rules for a variadic primitive: argument i > 0 gets ``make(i)``."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __contains__(self, i):
        return i > 0

    def __missing__(self, i):
        rule = self[i] = self.make(i)
        return rule


def _concatenate_args(axis, *arrays):
    return np.concatenate(arrays, axis=axis)


def _stack_args(axis, *arrays):
    return np.stack(arrays, axis=axis)


_concatenate = primitive(_concatenate_args, "concatenate")
_stack = primitive(_stack_args, "stack")


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


_concatenate.vjps = _EveryArgument(_concatenate_rule)
_concatenate.saves_args = False
_stack.vjps = _EveryArgument(_stack_rule)
_stack.saves_args = False


def concatenate(arrays, axis=0):
    return _concatenate(axis, *arrays)


def stack(arrays, axis=0):
    return _stack(axis, *arrays)


def _where(condition, x, y):
    return np.where(condition, x, y)


_where_prim = primitive(_where, "where")
defvjp(_where_prim, None,
       lambda g, ans, c, x, y: unbroadcast(where(value(c), g, 0.0), x),
       lambda g, ans, c, x, y: unbroadcast(where(value(c), 0.0, g), y))


def where(condition, x=None, y=None):
    """``np.where``: picks from ``x`` where ``condition`` holds, else from ``y``."""
    if x is None and y is None:
        return np.where(value(condition))
    return _where_prim(value(condition), x, y)


# ----------------------------------------------------------- softmax family ----


def _softmax(z, axis=-1):
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(z, axis=-1):
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


softmax = primitive(_softmax, "softmax")
log_softmax = primitive(_log_softmax, "log_softmax")
# y = softmax(z):  z̄ = y ∘ (ȳ − Σ ȳ ∘ y)
defvjp(softmax, lambda g, ans, z, axis=-1: ans * (g - sum(g * ans, axis=axis, keepdims=True)),
       saves_args=False, saves_ans=True)
# ℓ = log softmax(z):  z̄ = ℓ̄ − softmax(z) Σ ℓ̄
defvjp(log_softmax, lambda g, ans, z, axis=-1: g - exp(ans) * sum(g, axis=axis, keepdims=True),
       saves_args=False, saves_ans=True)


def _batch(y):
    shape = shape_of(y)
    return shape[0] if shape else 1


def _squared_error(y, t):
    if type(y) is np.ndarray and type(t) is np.ndarray:
        try:  # arrays of one shape and dtype (the usual case): one pass in the kernel
            return y.dtype.type(_kernels().squared_error_forward(y, t))
        except (TypeError, ValueError):
            pass  # broadcasting, mixed dtypes, strides: NumPy
    d = np.subtract(y, t)
    return np.vdot(d, d) * (0.5 / _batch(y))


def _squared_error_y(g, ans, y, t):  # ȳ = ℒ̄ (y − t) / N
    if type(y) is np.ndarray and type(t) is np.ndarray and isinstance(g, (np.generic, np.ndarray)):
        try:
            return _kernels().squared_error_backward(y, t, float(g) / _batch(y))
        except (TypeError, ValueError):
            pass
    return unbroadcast(g * (1.0 / _batch(y)) * (y - t), y)


# ℒ = (1/N) Σₙ ½‖yₙ − tₙ‖², one primitive (not four):  ȳ = ℒ̄ (y − t) / N,  t̄ = −ȳ
squared_error = primitive(_squared_error, "squared_error")
defvjp(squared_error,
       _squared_error_y,
       lambda g, ans, y, t: unbroadcast(g * (-1.0 / _batch(y)) * (y - t), t))


def _softmax_cross_entropy(z, labels):
    z = _float_c(z)
    loss, _ = _kernels().softmax_cross_entropy_forward(z, labels)
    return z.dtype.type(loss)


def _softmax_cross_entropy_grad(z, labels):
    k = _kernels()
    z = _float_c(z)
    _, probs = k.softmax_cross_entropy_forward(z, labels)
    return k.softmax_cross_entropy_backward(probs, labels, out=probs)


# The fused kernel pair: one pass for the loss, one for the gradient (the backward
# recomputes the softmax rather than saving an (N, K) array beside a scalar output).
softmax_cross_entropy = primitive(_softmax_cross_entropy, "softmax_cross_entropy")
softmax_cross_entropy_grad = primitive(_softmax_cross_entropy_grad, "softmax_cross_entropy_grad")
# ℒ = −(1/N) Σₙ log softmax(zₙ)_{tₙ}:  z̄ = ℒ̄ (softmax(z) − onehot(t)) / N
defvjp(softmax_cross_entropy, lambda g, ans, z, labels: g * softmax_cross_entropy_grad(z, labels))
# (y − t)/N has the softmax's Jacobian over N:  z̄ = y ∘ (Ḡ − Σ Ḡ ∘ y) / N
defvjp(softmax_cross_entropy_grad,
       lambda G, ans, z, labels: _softmax_vjp_rows(G, z) / shape_of(z)[0])


def _softmax_vjp_rows(G, z):
    y = softmax(z, axis=-1)
    return y * (G - sum(G * y, axis=-1, keepdims=True))


def identity(x):
    return x


identity = primitive(identity, "identity")
defvjp(identity, lambda g, ans, x: g, saves_args=False)

# ------------------------------------------------------------- Tensor operators ----

_UFUNCS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: true_divide,
    np.power: power, np.maximum: maximum, np.minimum: minimum, np.negative: negative,
    np.exp: exp, np.log: log, np.sqrt: sqrt, np.absolute: absolute, np.sin: sin, np.cos: cos,
    np.tanh: tanh, np.matmul: matmul,
}
_NOT_DIFFERENTIABLE = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal,
                       np.not_equal, np.sign, np.isfinite, np.isnan, np.isinf, np.floor,
                       np.ceil, np.round, np.logical_and, np.logical_or, np.logical_not}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method == "__call__" and not kwargs:
        prim = _UFUNCS.get(ufunc)
        if prim is not None:
            return prim(*inputs)
        if ufunc in _NOT_DIFFERENTIABLE:
            return ufunc(*[value(i) for i in inputs])
    return NotImplemented


_NO_KWARGS = {}


def _binary(prim):
    # ``self`` is a tensor, so skip the primitive's scan for one: straight to the tape.
    def forward(self, other):
        return _apply(prim, (self, other), _NO_KWARGS)

    def reflected(self, other):
        return _apply(prim, (other, self), _NO_KWARGS)

    return forward, reflected


def _unary(prim):
    return lambda self: _apply(prim, (self,), _NO_KWARGS)


def _inplace(prim, ufunc):
    def method(self, other):
        node = self._node
        if _mode.enabled and (node is not None or (isinstance(other, Tensor) and other._node is not None)):
            if node is not None and node.prim is None:
                raise RuntimeError(
                    "a leaf tensor that requires grad cannot be updated in place while recording; "
                    "update it inside `with fg.no_grad():` (as an optimizer step does)"
                )
            return prim(self, other)  # out of place: the name is rebound to the new result
        data = self._data
        if type(data) is not np.ndarray:
            self._data = ufunc(data, value(other))
        else:
            with inplace_update(self):
                ufunc(data, value(other), out=data, casting="same_kind")
        return self

    return method


class AssignmentError(RuntimeError, TypeError):
    """Item assignment into a recorded tensor: a RuntimeError, and a TypeError as autograd raises."""


def _setitem(self, index, new):
    if _mode.enabled and (self._node is not None or (isinstance(new, Tensor) and new._node is not None)):
        raise AssignmentError(
            "item assignment into a tensor that is part of a recorded computation is not "
            "differentiable; build a new tensor instead (fg.where, fg.concatenate), or assign "
            "inside `with fg.no_grad():`"
        )
    with inplace_update(self):
        self._data[_index_value(index)] = value(new)


def _getitem(self, index):
    return getitem(self, _index_value(index))


def _compare(op):
    return lambda self, other: op(self._data, value(other))


def _method_transpose(self, *axes):
    if not axes:
        return transpose(self)
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = axes[0]
    return transpose(self, tuple(axes) if axes is not None else None)


def _method_reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return reshape(self, tuple(shape))


T = Tensor
T.__add__, T.__radd__ = _binary(add)
T.__sub__, T.__rsub__ = _binary(subtract)
T.__mul__, T.__rmul__ = _binary(multiply)
T.__truediv__, T.__rtruediv__ = _binary(true_divide)
T.__pow__, T.__rpow__ = _binary(power)
T.__matmul__, T.__rmatmul__ = _binary(matmul)
T.__iadd__ = _inplace(add, np.add)
T.__isub__ = _inplace(subtract, np.subtract)
T.__imul__ = _inplace(multiply, np.multiply)
T.__itruediv__ = _inplace(true_divide, np.true_divide)
T.__neg__ = _unary(negative)
T.__pos__ = lambda self: self
T.__abs__ = _unary(absolute)
T.__getitem__ = _getitem
T.__setitem__ = _setitem
T.__lt__ = _compare(np.less)
T.__le__ = _compare(np.less_equal)
T.__gt__ = _compare(np.greater)
T.__ge__ = _compare(np.greater_equal)
T.__eq__ = _compare(np.equal)
T.__ne__ = _compare(np.not_equal)
T.__array_ufunc__ = _array_ufunc
T.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims)
T.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)
T.max = lambda self, axis=None, keepdims=False: amax(self, axis, keepdims)
T.min = lambda self, axis=None, keepdims=False: amin(self, axis, keepdims)
T.reshape = _method_reshape
T.transpose = _method_transpose
T.T = property(lambda self: transpose(self))
T.exp = _unary(exp)
T.log = _unary(log)
T.sqrt = _unary(sqrt)
T.tanh = _unary(tanh)
T.sigmoid = _unary(sigmoid)
T.relu = _unary(relu)
T.abs = _unary(absolute)
T.sin = _unary(sin)
T.cos = _unary(cos)
del T
