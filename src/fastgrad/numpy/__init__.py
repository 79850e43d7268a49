"""``fastgrad.numpy``: the differentiable NumPy namespace (``import fastgrad.numpy as np``).

Everything in ``numpy`` is here. The functions autograd differentiates are primitives
(or compositions of primitives) with derivative rules: called on plain arrays they are
plain NumPy calls, returning plain arrays; called on a traced value (inside ``grad``) or
on an ``fg.Tensor`` they are recorded on the one tape. Functions with no derivative
(comparisons, ``floor``, ``argmax``, ``allclose``, ...) act on the values inside tensors
and return constants. Any other NumPy function is recorded without a rule: a backward
through it raises NotImplementedError, so nothing is silently differentiated as zero.
"""

import numpy as _onp

from .. import _ops
from . import (
    _box,  # noqa: F401  (NumPy's array methods on fg.Tensor)
    _vjps,
)
from ._vjps import NOGRAD as _NOGRAD
from ._vjps import UndefinedVjps as _UndefinedVjps
from ._vjps import nograd as _nograd
from ._vjps import primitive as _primitive

__version__ = _onp.__version__


def _numpy_face_of(prim, fun):
    """A NumPy-named primitive sharing a core primitive's rules (``np.add.reduce`` works)."""
    p = _primitive(fun, prim.name)
    p.vjps = prim.vjps
    p.saves_args = prim.saves_args
    p.saves_ans = prim.saves_ans
    return p


def _build():
    ns = {}
    wrapped = {}
    for name in dir(_onp):
        if name.startswith("_") or name in ("linalg", "random", "fft"):
            continue
        obj = getattr(_onp, name)
        if isinstance(obj, type(_onp)):  # other submodules: as NumPy has them
            ns[name] = obj
        elif isinstance(obj, type) or not callable(obj):
            ns[name] = obj  # types, dtypes, constants
        elif id(obj) in wrapped:
            ns[name] = wrapped[id(obj)]  # aliases share one wrapper (conj, conjugate)
        else:
            p = _primitive(obj, name)
            p.vjps = _UndefinedVjps(name)
            ns[name] = wrapped[id(obj)] = p
    for name in _NOGRAD:
        if hasattr(_onp, name):
            ns[name] = _nograd(getattr(_onp, name))
    core = {
        "add": _onp.add,
        "subtract": _onp.subtract,
        "multiply": _onp.multiply,
        "true_divide": _onp.true_divide,
        "power": _onp.power,
        "maximum": _onp.maximum,
        "minimum": _onp.minimum,
        "negative": _onp.negative,
        "exp": _onp.exp,
        "log": _onp.log,
        "sqrt": _onp.sqrt,
        "absolute": _onp.absolute,
        "sin": _onp.sin,
        "cos": _onp.cos,
        "tanh": _onp.tanh,
    }
    for name, fun in core.items():
        ns[name] = _numpy_face_of(getattr(_ops, name), fun)
    ns["divide"] = ns["true_divide"]
    ns["abs"] = ns["absolute"]
    ns["pow"] = ns["power"]
    return ns


globals().update(_build())

from ._vjps import (  # noqa: E402,F401
    angle,
    append,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    array,
    array_split,
    asarray,
    astype,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    c_,
    clip,
    column_stack,
    concatenate,
    conjugate,  # noqa: E402,F401
    cosh,
    cross,
    cumsum,
    deg2rad,
    diag,
    diagonal,
    diff,
    dot,
    dsplit,
    dstack,
    einsum,
    exp2,
    expm1,
    fabs,
    flip,
    fliplr,
    flipud,
    fmax,
    fmin,
    hsplit,
    hstack,
    hypot,
    imag,
    inner,
    kron,
    linspace,
    log1p,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    make_diagonal,
    max,
    mean,
    min,
    mod,
    moveaxis,
    nan_to_num,
    outer,
    pad,
    partition,
    prod,
    r_,
    rad2deg,
    ravel,
    real,
    real_if_close,
    reciprocal,
    remainder,
    repeat,
    roll,
    rollaxis,
    rot90,
    row_stack,
    select,
    sinc,
    sinh,
    sort,
    split,
    square,
    squeeze,
    stack,
    std,
    sum,
    take_along_axis,
    tan,
    tensordot,
    tile,
    trace,
    tril,
    triu,
    var,
    vdot,
    vsplit,
    vstack,
    where,
)
from ._vjps import broadcast_to_fn as broadcast_to  # noqa: E402,F401
from ._vjps import expand_dims_fn as expand_dims  # noqa: E402,F401
from ._vjps import matmul_fn as matmul  # noqa: E402,F401
from ._vjps import reshape_fn as reshape  # noqa: E402,F401
from ._vjps import swapaxes_fn as swapaxes  # noqa: E402,F401
from ._vjps import transpose_fn as transpose  # noqa: E402,F401

conj = conjugate
amax = max
amin = min
degrees = rad2deg
radians = deg2rad
permute_dims = transpose
concat = concatenate

from . import fft, linalg, random  # noqa: E402,F401

_ops._UFUNCS.update(_vjps.UFUNCS)  # np.tan(tensor) (plain NumPy) dispatches to the primitive
