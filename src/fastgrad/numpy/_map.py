"""One map from NumPy's functions to fastgrad's: the single source for three faces.

- ``fastgrad.numpy``'s namespace: every NumPy name, its twin where one exists;
- ``Tensor.__array_ufunc__``: ``np.exp(tensor)`` records fastgrad's ``exp``;
- ``Tensor.__array_function__``: ``np.concatenate([t, t])`` records fastgrad's
  ``concatenate``.

``NUMPY_MAP`` maps a NumPy function object (a ufunc, a function, a ``numpy.linalg``
function) to its differentiable twin. ``NOT_DIFFERENTIABLE`` holds the functions that
only look at values (comparisons, ``argmax``, ``shape``, ``zeros_like`` …): on tensors
they act on the data and return constants. A NumPy function in neither is refused on a
tensor with a TypeError naming it; ``fastgrad.numpy`` still offers it (as autograd does),
recorded without a rule, so a backward through it raises NotImplementedError naming it.
"""

import numpy as onp

from .. import _ops
from .._tape import TensorBase
from . import _building, _contractions, _elementwise, _reductions, _shapes, linalg

__all__ = ["NUMPY_MAP", "NOT_DIFFERENTIABLE", "NOGRAD", "TWINS", "unbox"]


def _names(module, names):
    return {name: getattr(module, name) for name in names.split()}


# fastgrad.numpy's name -> its differentiable function (the names are NumPy's).
TWINS = {
    # the core table
    "add": _ops.add, "subtract": _ops.subtract, "multiply": _ops.multiply,
    "true_divide": _ops.true_divide, "divide": _ops.true_divide, "power": _ops.power,
    "pow": _ops.power, "maximum": _ops.maximum, "minimum": _ops.minimum,
    "negative": _ops.negative, "exp": _ops.exp, "log": _ops.log, "sqrt": _ops.sqrt,
    "absolute": _ops.absolute, "abs": _ops.absolute, "sin": _ops.sin, "cos": _ops.cos,
    "tanh": _ops.tanh,
    # the NumPy face's table
    **_names(_elementwise, """
        angle arccos arccosh arcsin arcsinh arctan arctan2 arctanh clip conjugate cosh
        deg2rad exp2 expm1 fabs fmax fmin hypot imag log1p log2 log10 logaddexp logaddexp2
        mod nan_to_num rad2deg real real_if_close reciprocal remainder select sinc sinh
        square tan where"""),
    **_names(_reductions, "cumsum max mean min prod std sum var"),
    **_names(_shapes, """
        array_split atleast_1d atleast_2d atleast_3d diff dsplit flip fliplr flipud gradient hsplit
        moveaxis pad partition ravel repeat roll rollaxis rot90 sort split squeeze
        take_along_axis tile tril triu vsplit"""),
    **_names(_building, """
        append array asarray astype column_stack concatenate dstack full hstack linspace stack
        vstack"""),
    **_names(_contractions, "cross diag diagonal dot einsum inner kron outer tensordot trace vdot"),
    "conj": _elementwise.conjugate, "amax": _reductions.max, "amin": _reductions.min,
    "degrees": _elementwise.rad2deg, "radians": _elementwise.deg2rad,
    "row_stack": _building.vstack, "concat": _building.concatenate,
    "broadcast_to": _shapes.broadcast_to_fn, "expand_dims": _shapes.expand_dims_fn,
    "matmul": _contractions.matmul_fn, "reshape": _shapes.reshape_fn,
    "swapaxes": _shapes.swapaxes_fn, "transpose": _shapes.transpose_fn,
    "permute_dims": _shapes.transpose_fn,
}
LINALG_TWINS = {name: getattr(linalg, name) for name in linalg.DIFFERENTIABLE}


def _numpy_function(name, module=onp):
    return getattr(module, name, None)


NUMPY_MAP = {}
for _name, _twin in TWINS.items():
    _fun = _numpy_function(_name)
    if _fun is not None:
        NUMPY_MAP[_fun] = _twin
for _name, _twin in LINALG_TWINS.items():
    NUMPY_MAP[getattr(onp.linalg, _name)] = _twin

# NumPy's functions that only look at values: on tensors they act on the data.
NOGRAD = """
    floor ceil round rint around fix trunc all any argmax argmin argpartition argsort
    argwhere nonzero flatnonzero count_nonzero searchsorted sign ndim shape size
    floor_divide logical_and logical_or logical_not logical_xor isfinite isinf isnan
    isneginf isposinf allclose isclose array_equal array_equiv greater greater_equal less
    less_equal equal not_equal iscomplexobj iscomplex isrealobj isreal isscalar zeros_like
    ones_like empty_like full_like result_type shares_memory may_share_memory copysign
    signbit heaviside bincount digitize histogram unique in1d isin array_repr array_str
    array2string""".split()

NOT_DIFFERENTIABLE = {
    getattr(onp, name) for name in NOGRAD if hasattr(onp, name)
} | {onp.floor_divide, onp.shape, onp.ndim, onp.size, onp.result_type, onp.copyto,
     onp.iscomplexobj, onp.isrealobj, onp.zeros_like, onp.ones_like, onp.empty_like,
     onp.full_like}


def unbox(x):
    """Tensors inside ``x`` (nested tuples, lists, dicts) replaced by their data."""
    if isinstance(x, TensorBase):
        return x._data
    if isinstance(x, (list, tuple)):
        return type(x)(unbox(v) for v in x)
    if isinstance(x, dict):
        return {k: unbox(v) for k, v in x.items()}
    return x
