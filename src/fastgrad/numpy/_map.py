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
from . import _vjps, linalg

__all__ = ["NUMPY_MAP", "NOT_DIFFERENTIABLE", "TWINS", "unbox"]

# fastgrad.numpy's name -> its differentiable function (the names are NumPy's).
TWINS = {
    # the core table
    "add": _ops.add, "subtract": _ops.subtract, "multiply": _ops.multiply,
    "true_divide": _ops.true_divide, "divide": _ops.true_divide, "power": _ops.power,
    "pow": _ops.power, "maximum": _ops.maximum, "minimum": _ops.minimum,
    "negative": _ops.negative, "exp": _ops.exp, "log": _ops.log, "sqrt": _ops.sqrt,
    "absolute": _ops.absolute, "abs": _ops.absolute, "sin": _ops.sin, "cos": _ops.cos,
    "tanh": _ops.tanh,
    # the NumPy face's table (fastgrad.numpy._vjps)
    **{name: getattr(_vjps, name) for name in (
        "angle", "append", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2",
        "arctanh", "array", "array_split", "asarray", "astype", "atleast_1d", "atleast_2d",
        "atleast_3d", "clip", "column_stack", "concatenate", "conjugate", "cosh", "cross",
        "cumsum", "deg2rad", "diag", "diagonal", "diff", "dot", "dsplit", "dstack", "einsum",
        "exp2", "expm1", "fabs", "flip", "fliplr", "flipud", "fmax", "fmin", "hsplit",
        "hstack", "hypot", "imag", "inner", "kron", "linspace", "log1p", "log2", "log10",
        "logaddexp", "logaddexp2", "max", "mean", "min", "mod", "moveaxis", "nan_to_num",
        "outer", "pad", "partition", "prod", "rad2deg", "ravel", "real", "real_if_close",
        "reciprocal", "remainder", "repeat", "roll", "rollaxis", "rot90", "select",
        "sinc", "sinh", "sort", "split", "square", "squeeze", "stack", "std", "sum",
        "take_along_axis", "tan", "tensordot", "tile", "trace", "tril", "triu", "var",
        "vdot", "vsplit", "vstack", "where",
    )},
    "conj": _vjps.conjugate, "amax": _vjps.max, "amin": _vjps.min, "degrees": _vjps.rad2deg,
    "radians": _vjps.deg2rad, "row_stack": _vjps.vstack, "concat": _vjps.concatenate,
    "broadcast_to": _vjps.broadcast_to_fn, "expand_dims": _vjps.expand_dims_fn,
    "matmul": _vjps.matmul_fn, "reshape": _vjps.reshape_fn, "swapaxes": _vjps.swapaxes_fn,
    "transpose": _vjps.transpose_fn, "permute_dims": _vjps.transpose_fn,
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

NOT_DIFFERENTIABLE = {
    getattr(onp, name) for name in _vjps.NOGRAD if hasattr(onp, name)
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
