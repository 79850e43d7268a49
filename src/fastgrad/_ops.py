"""The core primitives, each one registry entry: forward, local rules, formula, lowering, samples.

Notation (the lecture's): for v = f(a, b), the rule for ``a`` turns the output's error
signal v̄ (``g``) into ā = v̄ ∂v/∂a. A rule has the signature ``rule(g, ans, *args)``,
where ``ans`` is f's output. Rules are written with the primitives of this file, so the
backward pass can itself be recorded (grad of grad); on plain arrays those primitives
are plain NumPy calls, so a first-order backward pays nothing for that. How to add one:
the guide at the top of ``fastgrad._registry``.

Groups: binary elementwise ops (``unbroadcast`` sums the broadcast axes away), unary
elementwise ops, the compiled dense kernels (affine/sigmoid and their adjoints, which
are primitives too so second derivatives stay closed), reductions, shape and indexing,
the softmax family and the losses. The Tensor face's operators call these
(``fastgrad._tensor``); NumPy's functions map to them (``fastgrad.numpy._map``).
"""

import numpy as np

from . import _opcodes as op
from . import _tape
from ._backend import kernels as _kernels
from ._compiler import lowering as low
from ._factored import factor
from ._registry import Formula, Sample, define
from ._tape import TensorBase

# ----------------------------------------------------------------------- helpers --


def value(x):
    """The array inside a tensor (or ``x`` itself): for masks and constants in rules.
    While fastgrad.compile traces, a traced tensor's array is a TracedArray, so that what
    is computed from it is recorded or refused, never frozen."""
    if isinstance(x, TensorBase):
        if _tape._tracer is not None:
            return _tape._tracer.value(x)
        return x._data
    return x


def shape_of(x):
    try:
        return x.shape  # arrays, NumPy scalars, tensors, shape stand-ins
    except AttributeError:
        return np.shape(x)


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


def repeat_to_match(g, x, axis, keepdims):
    """Broadcast a reduction's error signal back over the reduced axes of ``x``."""
    shape = shape_of(x)
    if axis is None and not isinstance(g, TensorBase):  # a full reduction: g is one number
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


class EveryArgument(dict):
    """Rules for a variadic primitive: argument i > 0 gets ``make(i)``."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __contains__(self, i):
        return i > 0

    def __missing__(self, i):
        rule = self[i] = self.make(i)
        return rule


def _size(shape):
    return int(np.prod(shape)) if shape else 1


def no_macs(out_shape, arg_shapes):
    """Moving data (a view, a copy, a sum's repeat) multiplies nothing."""
    return 0, {i: 0 for i in range(len(arg_shapes))}


def _product_macs(out, k):
    """A matrix product summing ``k`` terms per output element, and its two adjoints."""
    n = _size(out) * k
    return n, {0: n, 1: n}


def reduction_macs(out_shape, arg_shapes):
    n = _size(arg_shapes[0])
    return n, {0: 0}


# Samples. Each is a function of a NumPy Generator (tests/test_registry.py seeds it).
def _normal(*shape):
    return lambda r: [Sample(r.normal(size=shape))]


def _positive(*shape):
    return lambda r: [Sample(r.uniform(0.5, 2.0, size=shape))]


def _binary_samples(r):
    """Same shapes, a row broadcast against a matrix, a scalar against an array."""
    return [Sample(r.normal(size=(3, 4)), r.normal(size=(3, 4))),
            Sample(r.normal(size=(3, 4)), r.normal(size=(4,))),
            Sample(r.normal(size=(2, 1)), r.normal(size=(2, 3))),
            Sample(r.normal(), r.normal(size=(3,)))]


# --------------------------------------------------------- binary elementwise ops --


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


def _power_samples(r):
    return [Sample(r.uniform(0.5, 2.0, size=(3, 4)), r.normal(size=(3, 4))),
            Sample(r.uniform(0.5, 2.0, size=(3, 4)), 3.0),
            Sample(r.normal(size=(4,)), 2)]


# z = x + y:  x̄ = z̄,  ȳ = z̄
add = define(
    np.add, "add",
    vjps=[lambda g, ans, x, y: unbroadcast(g, x), lambda g, ans, x, y: unbroadcast(g, y)],
    saves_args=False,
    formula=Formula("{out} = {0} + {1}", {0: "{0}̄ = {out}̄", 1: "{1}̄ = {out}̄"}, no_macs, True),
    lowering=low.binary(op.ADD, lambda g, x, y, z: (op.COPY, [g]),
                        lambda g, x, y, z: (op.COPY, [g])),
    samples=_binary_samples,
)
# z = x − y:  x̄ = z̄,  ȳ = −z̄
subtract = define(
    np.subtract, "subtract",
    vjps=[lambda g, ans, x, y: unbroadcast(g, x), lambda g, ans, x, y: unbroadcast(-g, y)],
    saves_args=False,
    formula=Formula("{out} = {0} − {1}", {0: "{0}̄ = {out}̄", 1: "{1}̄ = −{out}̄"}, no_macs, True),
    lowering=low.binary(op.SUB, lambda g, x, y, z: (op.COPY, [g]),
                        lambda g, x, y, z: (op.NEG, [g])),
    samples=_binary_samples,
)
# z = x y:  x̄ = z̄ y,  ȳ = z̄ x
multiply = define(
    np.multiply, "multiply",
    vjps=[lambda g, ans, x, y: unbroadcast(g * y, x), lambda g, ans, x, y: unbroadcast(g * x, y)],
    formula=Formula("{out} = {0} ∘ {1}", {0: "{0}̄ = {out}̄ ∘ {1}", 1: "{1}̄ = {out}̄ ∘ {0}"},
                    broadcasts=True),
    lowering=low.binary(op.MUL, lambda g, x, y, z: (op.MUL, [g, y]),
                        lambda g, x, y, z: (op.MUL, [g, x])),
    samples=_binary_samples,
)
# z = x / y:  x̄ = z̄ / y,  ȳ = −z̄ x / y²
true_divide = define(
    np.true_divide, "true_divide",
    vjps=[lambda g, ans, x, y: unbroadcast(g / y, x),
          lambda g, ans, x, y: unbroadcast(-g * x / (y * y), y)],
    formula=Formula("{out} = {0} / {1}", {0: "{0}̄ = {out}̄ / {1}", 1: "{1}̄ = −{out}̄ ∘ {0} / {1}²"},
                    broadcasts=True),
    lowering=low.binary(op.DIV, lambda g, x, y, z: (op.DIV, [g, y]),
                        lambda g, x, y, z: (op.DIV_BWD_B, [g, x, y])),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), r.uniform(0.5, 2.0, size=(3, 4))),
                       Sample(r.normal(size=(3, 4)), r.uniform(0.5, 2.0, size=(4,)))],
)
divide = true_divide
# z = xʸ:  x̄ = z̄ y xʸ⁻¹,  ȳ = z̄ log(x) z  (log taken as 0 where x = 0)
power = define(
    np.power, "power",
    vjps=[_power_x, lambda g, ans, x, y: unbroadcast(g * log(_replace_zero(x, 1.0)) * ans, y)],
    saves_ans=True,
    formula=Formula("{out} = {0}^{1}", {0: "{0}̄ = {out}̄ ∘ {1} {0}^({1}−1)",
                                        1: "{1}̄ = {out}̄ ∘ log({0}) ∘ {out}"}, broadcasts=True),
    lowering=low.binary(op.POW, lambda g, x, y, z: (op.POW_BWD, [g, x, y]),
                        lambda g, x, y, z: (op.POW_BWD_B, [g, x, z])),
    samples=_power_samples,
)
# z = max(x, y): the signal goes to the larger; ties split it evenly
maximum = define(
    np.maximum, "maximum",
    vjps=[lambda g, ans, x, y: unbroadcast(g * _balanced_eq(x, ans, y), x),
          lambda g, ans, x, y: unbroadcast(g * _balanced_eq(y, ans, x), y)],
    saves_ans=True,
    formula=Formula("{out} = max({0}, {1})", {0: "{0}̄ = {out}̄ where {0} is larger (ties: half)",
                                              1: "{1}̄ = {out}̄ where {1} is larger (ties: half)"},
                    broadcasts=True),
    lowering=low.binary(op.MAX, lambda g, x, y, z: (op.MAX_BWD, [g, x, y]),
                        lambda g, x, y, z: (op.MAX_BWD, [g, y, x])),
    samples=_binary_samples,
)
minimum = define(
    np.minimum, "minimum",
    vjps=[lambda g, ans, x, y: unbroadcast(g * _balanced_eq(x, ans, y), x),
          lambda g, ans, x, y: unbroadcast(g * _balanced_eq(y, ans, x), y)],
    saves_ans=True,
    formula=Formula("{out} = min({0}, {1})", {0: "{0}̄ = {out}̄ where {0} is smaller (ties: half)",
                                              1: "{1}̄ = {out}̄ where {1} is smaller (ties: half)"},
                    broadcasts=True),
    lowering=low.binary(op.MIN, lambda g, x, y, z: (op.MIN_BWD, [g, x, y]),
                        lambda g, x, y, z: (op.MIN_BWD, [g, y, x])),
    samples=_binary_samples,
)

# ---------------------------------------------------------- unary elementwise ops --


def _relu(x):
    return np.maximum(x, 0)


negative = define(
    np.negative, "negative", vjps=[lambda g, ans, x: -g], saves_args=False,
    formula=Formula("{out} = −{0}", {0: "{0}̄ = −{out}̄"}, no_macs),
    lowering=low.unary(op.NEG, op.NEG), samples=_normal(3, 4),
)
exp = define(  # y = eˣ:  x̄ = ȳ eˣ
    np.exp, "exp", vjps=[lambda g, ans, x: g * ans], saves_args=False, saves_ans=True,
    formula=Formula("{out} = exp({0})", {0: "{0}̄ = {out}̄ ∘ {out}"}),
    lowering=low.unary(op.EXP, op.MUL, reads="y"), samples=_normal(3, 4),
)
log = define(  # y = log x:  x̄ = ȳ / x
    np.log, "log", vjps=[lambda g, ans, x: g / x],
    formula=Formula("{out} = log({0})", {0: "{0}̄ = {out}̄ / {0}"}),
    lowering=low.unary(op.LOG, op.DIV, reads="x"), samples=_positive(3, 4),
)
sqrt = define(  # y = √x:  x̄ = ȳ / (2y)
    np.sqrt, "sqrt", vjps=[lambda g, ans, x: g / (2.0 * ans)], saves_args=False, saves_ans=True,
    formula=Formula("{out} = √{0}", {0: "{0}̄ = {out}̄ / (2 {out})"}),
    lowering=low.unary(op.SQRT, op.SQRT_BWD, reads="y"), samples=_positive(3, 4),
)


def _absolute_vjp(g, ans, x):  # y = |x|:  x̄ = ȳ sign(x)  (0 at x = 0)
    xv = value(x)
    if not np.iscomplexobj(xv):
        return g * np.sign(xv)
    # y = |z| (real) of a complex z:  z̄ = Re ȳ conj(z) / |z|  (0 at z = 0), autograd's
    from .numpy._elementwise import conjugate, real_part

    at_zero = xv == 0
    return real_part(g) * where(at_zero, 0.0, conjugate(x)) / where(at_zero, 1.0, absolute(x))


absolute = define(
    np.abs, "absolute", vjps=[_absolute_vjp],
    formula=Formula("{out} = |{0}|", {0: "{0}̄ = {out}̄ ∘ sign({0})  (Re {out}̄ conj({0}) / |{0}| if complex)"}),
    lowering=low.elementwise(lambda x: low.call(op.ABS, x), lambda g, y, x: g * low.call(op.SIGN, x)),
    samples=_normal(3, 4),
)
abs = absolute  # noqa: A001  (the NumPy name)
sin = define(  # y = sin x:  x̄ = ȳ cos x
    np.sin, "sin", vjps=[lambda g, ans, x: g * cos(x)],
    formula=Formula("{out} = sin({0})", {0: "{0}̄ = {out}̄ ∘ cos({0})"}),
    lowering=low.unary(op.SIN, op.SIN_BWD, reads="x"), samples=_normal(3, 4),
)
cos = define(  # y = cos x:  x̄ = −ȳ sin x
    np.cos, "cos", vjps=[lambda g, ans, x: -g * sin(x)],
    formula=Formula("{out} = cos({0})", {0: "{0}̄ = −{out}̄ ∘ sin({0})"}),
    lowering=low.unary(op.COS, op.COS_BWD, reads="x"), samples=_normal(3, 4),
)
tanh = define(  # y = tanh x:  x̄ = ȳ (1 − y²)
    np.tanh, "tanh", vjps=[lambda g, ans, x: g * (1.0 - ans * ans)], saves_args=False,
    saves_ans=True,
    formula=Formula("{out} = tanh({0})", {0: "{0}̄ = {out}̄ ∘ (1 − {out}²)"}),
    lowering=low.unary(op.TANH, op.TANH_BWD, reads="y"), samples=_normal(3, 4),
)
relu = define(  # y = max(x, 0):  x̄ = ȳ [y > 0]
    _relu, "relu", vjps=[lambda g, ans, x: g * (value(ans) > 0)], saves_args=False, saves_ans=True,
    formula=Formula("{out} = max({0}, 0)", {0: "{0}̄ = {out}̄ ∘ [{0} > 0]"}),
    lowering=low.unary(op.RELU, op.RELU_BWD, reads="y"), samples=_normal(3, 4),
)

# ---------------------------------------------------- compiled dense kernels ----
# These call the selected backend (fastgrad.backends.reference or .cython).


def _sigmoid(z):
    kernels = _kernels()
    try:
        return kernels.sigmoid_forward(z)
    except (TypeError, ValueError):
        return kernels.sigmoid_forward(_float_c(z))


def _real_signal(g):
    """The signal of a kernel-computed (so real) value: its real part. A complex one comes
    from complex values further on (autograd's convention, fastgrad._functional), and
    only its real part acts on a real value; the kernels refuse complex arrays."""
    if type(g) is np.ndarray:  # the usual case, without np.iscomplexobj's Python frames
        return g.real if g.dtype.kind == "c" else g
    return g.real if np.iscomplexobj(g) else g


def _sigmoid_backward(h, dh):
    try:
        return _kernels().sigmoid_backward(h, dh)
    except (TypeError, ValueError):
        return _kernel("sigmoid_backward", h, np.broadcast_to(_real_signal(dh), np.shape(h)))


def _sigmoid_vjp(g, ans, z):  # h = σ(z):  z̄ = h̄ ∘ h ∘ (1 − h)
    if type(g) is np.ndarray and type(ans) is np.ndarray:
        return _sigmoid_backward(ans, g)
    return sigmoid_backward(ans, g)


sigmoid = define(
    _sigmoid, "sigmoid", vjps=[_sigmoid_vjp], saves_args=False, saves_ans=True,
    formula=Formula("{out} = σ({0})", {0: "{0}̄ = {out}̄ ∘ {out} ∘ (1 − {out})  [= {out}̄ ∘ σ'({0})]"},
                    lambda out, args: (_size(out), {0: 2 * _size(out)})),
    kernels=("sigmoid_forward", "sigmoid_backward"),
    lowering=low.unary(op.SIGMOID, op.SIGMOID_BWD, reads="y"), samples=_normal(3, 4),
)
def _softplus(x):
    kernels = _kernels()
    try:
        return kernels.softplus_forward(x)
    except (TypeError, ValueError):
        return kernels.softplus_forward(_float_c(x))


softplus = define(  # y = log(1 + eˣ):  x̄ = ȳ σ(x)
    _softplus, "softplus", vjps=[lambda g, ans, x: g * sigmoid(x)],
    formula=Formula("{out} = log(1 + e^{0})", {0: "{0}̄ = {out}̄ ∘ σ({0})"}),
    kernels=("softplus_forward",),
    lowering=low.elementwise(lambda x: low.call(op.SOFTPLUS, x), lambda g, y, x: g * low.call(op.SIGMOID, x)),
    samples=lambda r: [Sample(r.normal(size=(3, 4))), Sample(40.0 * r.normal(size=(5,)))],
)
# z̄ = h̄ ∘ h(1 − h) is bilinear-ish in (h, h̄):  ∂/∂h = h̄ ∘ (1 − 2h),  ∂/∂h̄ = h(1 − h)
sigmoid_backward = define(
    _sigmoid_backward, "sigmoid_backward",
    vjps=[lambda G, ans, h, dh: G * dh * (1.0 - 2.0 * h), lambda G, ans, h, dh: G * h * (1.0 - h)],
    formula=Formula("{out} = {1} ∘ {0} ∘ (1 − {0})", {0: "{0}̄ = {out}̄ ∘ {1} ∘ (1 − 2 {0})",
                                                       1: "{1}̄ = {out}̄ ∘ {0} ∘ (1 − {0})"}),
    kernels=("sigmoid_backward",),
    lowering=low.elementwise(lambda h, dh: low.call(op.SIGMOID_BWD, dh, h),
                             lambda G, y, h, dh: G * dh * (1.0 - 2.0 * h),
                             lambda G, y, h, dh: G * h * (1.0 - h)),
    samples=lambda r: [Sample(r.uniform(0.1, 0.9, size=(3, 4)), r.normal(size=(3, 4)))],
)


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
        return _kernel("transpose_matvec", W, _real_signal(dz))


def _outer_grad(dz, x):
    try:
        return _kernels().outer_grad(dz, x)
    except (TypeError, ValueError):
        return _kernel("outer_grad", _real_signal(dz), x)


def _bias_grad(dz):
    try:
        return _kernels().bias_grad(dz)
    except (TypeError, ValueError):
        return _kernel("bias_grad", _real_signal(dz))


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


def _linear_joint(parents, g, ans, defer, x, W, b=None):
    """x̄, W̄, b̄ (those ``parents`` ask for) from one call in a first-order sweep: the same
    kernels as the rules above, one dispatch and one set of checks instead of three. A
    leaf's W̄ may stay factored (``fastgrad._factored``)."""
    if type(g) is not np.ndarray or type(x) is not np.ndarray or type(W) is not np.ndarray:
        return None
    if g.ndim != 2 or x.ndim != 2:
        return None
    signals = []
    for argnum, parent in parents:
        if argnum == 0:
            signals.append(_transpose_matvec(W, g))
        elif argnum == 1:
            W_bar = factor(g, x) if defer and parent.prim is None else None
            signals.append(_outer_grad(g, x) if W_bar is None else W_bar)
        else:
            signals.append(_bias_grad(g))
    return signals


def _linear_macs(out, args):  # N·M·D for the product; the adjoints the same, b̄ N·M
    N, M = _size(out[:-1]), out[-1]
    D = args[1][1] if args[1] is not None else (args[0][-1] if args[0] is not None else 0)
    nmd = N * M * D
    return nmd, {0: nmd, 1: nmd, 2: N * M}


def _linear_samples(r):
    return [Sample(r.normal(size=(5, 4)), r.normal(size=(3, 4)), r.normal(size=(3,))),
            Sample(r.normal(size=(2, 3, 4)), r.normal(size=(3, 4)), r.normal(size=(3,))),
            Sample(r.normal(size=(1, 30)), r.normal(size=(20, 30)), r.normal(size=(20,))),  # factored W̄
            Sample(r.normal(size=(5, 4)), r.normal(size=(3, 4)))]


# z = x Wᵀ + b
linear = define(
    _linear, "linear", vjps=[_linear_x, _linear_W, _linear_b], joint_vjp=_linear_joint,
    formula=Formula("{out} = {0} {1}ᵀ + {2}", {0: "{0}̄ = {out}̄ {1}", 1: "{1}̄ = {out}̄ᵀ {0}",
                                               2: "{2}̄ = Σₙ {out}̄ₙ"}, _linear_macs),
    kernels=("affine_forward", "transpose_matvec", "outer_grad", "bias_grad"),
    lowering=low.linear(), samples=_linear_samples,
)
# The adjoints are linear maps; their own adjoints close the table for grad of grad.
transpose_matvec = define(  # X = dz W
    _transpose_matvec, "transpose_matvec",
    vjps=[lambda G, ans, W, dz: outer_grad(dz, G), lambda G, ans, W, dz: matmul(G, transpose(W))],
    formula=Formula("{out} = {1} {0}", {0: "{0}̄ = {1}ᵀ {out}̄", 1: "{1}̄ = {out}̄ {0}ᵀ"},
                    lambda out, args: _product_macs(out, args[0][0])),
    kernels=("transpose_matvec",),
    lowering=low.body(lambda W, dz: matmul(dz, W)),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), r.normal(size=(5, 3)))],
)
outer_grad = define(  # Y = dzᵀ x
    _outer_grad, "outer_grad",
    vjps=[lambda G, ans, dz, x: matmul(x, transpose(G)), lambda G, ans, dz, x: matmul(dz, G)],
    formula=Formula("{out} = {0}ᵀ {1}", {0: "{0}̄ = {1} {out}̄ᵀ", 1: "{1}̄ = {0} {out}̄"},
                    lambda out, args: _product_macs(out, args[0][0])),
    kernels=("outer_grad",),
    lowering=low.body(lambda dz, x: matmul(transpose(dz), x)),
    samples=lambda r: [Sample(r.normal(size=(5, 3)), r.normal(size=(5, 4)))],
)
bias_grad = define(  # y = Σₙ dzₙ
    _bias_grad, "bias_grad", vjps=[lambda G, ans, dz: broadcast_to(G, shape_of(dz))],
    saves_args=False,
    formula=Formula("{out} = Σₙ {0}ₙ", {0: "{0}̄ = {out}̄ repeated over the rows"}, reduction_macs),
    kernels=("bias_grad",),
    lowering=low.body(lambda dz: sum(dz, 0)),
    samples=_normal(5, 3),
)

# --------------------------------------------------------------------- matmul ----


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


def _matmul_macs(out, args):
    k = args[0][-1] if args[0] is not None else (args[1][0] if args[1] is not None else 0)
    return _product_macs(out, k)


# C = A B:  Ā = C̄ Bᵀ,  B̄ = Aᵀ C̄
matmul = define(
    np.matmul, "matmul", vjps=[_matmul_a, _matmul_b],
    formula=Formula("{out} = {0} {1}", {0: "{0}̄ = {out}̄ {1}ᵀ", 1: "{1}̄ = {0}ᵀ {out}̄"}, _matmul_macs),
    lowering=low.matmul(),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), r.normal(size=(4, 2))),
                       Sample(r.normal(size=(4,)), r.normal(size=(4,))),
                       Sample(r.normal(size=(3, 4)), r.normal(size=(4,))),
                       Sample(r.normal(size=(4,)), r.normal(size=(4, 2))),
                       Sample(r.normal(size=(2, 3, 4)), r.normal(size=(4, 2)))],
)
dot_2d = matmul


# ----------------------------------------------------------- softmax family ----


def _softmax(z, axis=-1):
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(z, axis=-1):
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _rows_samples(r):
    return [Sample(r.normal(size=(3, 5))), Sample(r.normal(size=(3, 5)), 0)]


# y = softmax(z):  z̄ = y ∘ (ȳ − Σ ȳ ∘ y)
softmax = define(
    _softmax, "softmax",
    vjps=[lambda g, ans, z, axis=-1: ans * (g - sum(g * ans, axis=axis, keepdims=True))],
    saves_args=False, saves_ans=True,
    formula=Formula("{out} = softmax({0})", {0: "{0}̄ = {out} ∘ ({out}̄ − Σ {out}̄ ∘ {out})"}),
    lowering=low.rowwise(op.SOFTMAX, op.SOFTMAX_BWD), samples=_rows_samples,
)
# ℓ = log softmax(z):  z̄ = ℓ̄ − softmax(z) Σ ℓ̄
log_softmax = define(
    _log_softmax, "log_softmax",
    vjps=[lambda g, ans, z, axis=-1: g - exp(ans) * sum(g, axis=axis, keepdims=True)],
    saves_args=False, saves_ans=True,
    formula=Formula("{out} = log_softmax({0})", {0: "{0}̄ = {out}̄ − softmax({0}) Σ {out}̄"}),
    lowering=low.rowwise(op.LOGSOFTMAX, op.LOGSOFTMAX_BWD), samples=_rows_samples,
)


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
            return _kernels().squared_error_backward(y, t, float(_real_signal(g)) / _batch(y))
        except (TypeError, ValueError):
            pass
    return unbroadcast(g * (1.0 / _batch(y)) * (y - t), y)


# ℒ = (1/N) Σₙ ½‖yₙ − tₙ‖², one primitive (not four):  ȳ = ℒ̄ (y − t) / N,  t̄ = −ȳ
squared_error = define(
    _squared_error, "squared_error",
    vjps=[_squared_error_y, lambda g, ans, y, t: unbroadcast(g * (-1.0 / _batch(y)) * (y - t), t)],
    formula=Formula("{out} = (1/N) Σₙ ½‖{0}ₙ − {1}ₙ‖²", {0: "{0}̄ = {out}̄ ({0} − {1}) / N",
                                                         1: "{1}̄ = −{out}̄ ({0} − {1}) / N"}),
    kernels=("squared_error_forward", "squared_error_backward"),
    lowering=low.squared_error(),
    samples=lambda r: [Sample(r.normal(size=(4, 3)), r.normal(size=(4, 3))),
                       Sample(r.normal(size=(4, 3)), r.normal(size=(3,)))],
)


def _softmax_cross_entropy(z, labels):
    z = _float_c(z)
    loss, _ = _kernels().softmax_cross_entropy_forward(z, labels)
    return z.dtype.type(loss)


def _softmax_cross_entropy_grad(z, labels):
    k = _kernels()
    z = _float_c(z)
    _, probs = k.softmax_cross_entropy_forward(z, labels)
    return k.softmax_cross_entropy_backward(probs, labels, out=probs)


def _softmax_vjp_rows(G, z):
    y = softmax(z, axis=-1)
    return y * (G - sum(G * y, axis=-1, keepdims=True))


def _labels_samples(r):
    return [Sample(r.normal(size=(4, 3)), np.array([0, 2, 1, 2]))]


# The fused kernel pair: one pass for the loss, one for the gradient (the backward
# recomputes the softmax rather than saving an (N, K) array beside a scalar output).
# ℒ = −(1/N) Σₙ log softmax(zₙ)_{tₙ}:  z̄ = ℒ̄ (softmax(z) − onehot(t)) / N
softmax_cross_entropy = define(
    _softmax_cross_entropy, "softmax_cross_entropy",
    vjps=[lambda g, ans, z, labels: g * softmax_cross_entropy_grad(z, labels)],
    formula=Formula("{out} = −(1/N) Σₙ log softmax({0}ₙ)_{{{1}ₙ}}",
                    {0: "{0}̄ = {out}̄ (softmax({0}) − onehot({1})) / N"}),
    kernels=("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
    lowering=low.softmax_cross_entropy(), samples=_labels_samples,
)
# (y − t)/N has the softmax's Jacobian over N:  z̄ = y ∘ (Ḡ − Σ Ḡ ∘ y) / N
softmax_cross_entropy_grad = define(
    _softmax_cross_entropy_grad, "softmax_cross_entropy_grad",
    vjps=[lambda G, ans, z, labels: _softmax_vjp_rows(G, z) / shape_of(z)[0]],
    formula=Formula("{out} = (softmax({0}) − onehot({1})) / N",
                    {0: "{0}̄ = softmax({0}) ∘ ({out}̄ − Σ {out}̄ ∘ softmax({0})) / N"}),
    kernels=("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
    lowering=low.softmax_cross_entropy_grad(),
    samples=_labels_samples,
)


# Reductions, shapes and indexing: the table's second half (not compiled: off the hot path). Its rules
# use the primitives above, and the rules above use its (sum, reshape, where, ...).
from ._ops_arrays import (  # noqa: E402,F401  (re-exported: the core table is _ops)
    _concatenate,
    _stack,
    _where_prim,
    amax,
    amin,
    broadcast_to,
    concatenate,
    count,
    expand_dims,
    getitem,
    has_array_index,
    identity,
    index_value,
    mean,
    reshape,
    stack,
    sum,
    swapaxes,
    transpose,
    untake,
    where,
)
