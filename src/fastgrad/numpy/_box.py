"""NumPy's array methods on ``fg.Tensor``, so code written for arrays runs on traced values.

``x.dot(y)``, ``x.ravel()``, ``x.astype(...)``, ``x.var()``, ``x % y``, ... call the
differentiable functions of ``fastgrad.numpy``; ``numpy.sum(x)`` (plain NumPy) calls
``x.sum(axis=..., dtype=..., out=...)`` and so reaches them too.
"""

import numpy as onp

from .. import _ops
from .._tape import Tensor
from . import _vjps as v


def _shape_args(args):
    if len(args) == 1 and (args[0] is None or isinstance(args[0], (tuple, list))):
        return args[0]
    return args


def _values(method):
    def m(self, *args, **kwargs):
        return getattr(
            self._data if isinstance(self._data, onp.ndarray) else onp.asarray(self._data), method
        )(*args, **kwargs)

    return m


T = Tensor
T.sum = lambda self, axis=None, dtype=None, out=None, keepdims=False: v.sum(
    self, axis, keepdims=keepdims
)
T.mean = lambda self, axis=None, dtype=None, out=None, keepdims=False: v.mean(
    self, axis, keepdims=keepdims
)
T.max = lambda self, axis=None, out=None, keepdims=False, **k: v.max(self, axis, keepdims=keepdims)
T.min = lambda self, axis=None, out=None, keepdims=False, **k: v.min(self, axis, keepdims=keepdims)
T.prod = lambda self, axis=None, dtype=None, out=None, keepdims=False, **k: v.prod(
    self, axis, keepdims=keepdims
)
T.var = lambda self, axis=None, dtype=None, out=None, ddof=0, keepdims=False: v.var(
    self, axis, ddof=ddof, keepdims=keepdims
)
T.std = lambda self, axis=None, dtype=None, out=None, ddof=0, keepdims=False: v.std(
    self, axis, ddof=ddof, keepdims=keepdims
)
T.cumsum = lambda self, axis=None, dtype=None, out=None: v.cumsum(self, axis)
T.dot = lambda self, b: v.dot(self, b)
T.ravel = lambda self, order="C": _ops.reshape(self, (-1,))
T.flatten = lambda self, order="C": _ops.reshape(self, (-1,))
T.squeeze = lambda self, axis=None: v.squeeze(self, axis)
T.astype = lambda self, dtype, *a, **k: v.astype(self, dtype)
T.clip = lambda self, min=None, max=None, **k: v.clip(self, min, max)
T.conj = T.conjugate = lambda self: v.conjugate(self)
T.real = property(lambda self: v.real(self))
T.imag = property(lambda self: v.imag(self))
T.diagonal = lambda self, offset=0, axis1=0, axis2=1: v.diagonal(self, offset, axis1, axis2)
T.trace = lambda self, offset=0, axis1=0, axis2=1, dtype=None, out=None: v.trace(
    self, offset, axis1, axis2
)
T.repeat = lambda self, repeats, axis=None: v.repeat(self, repeats, axis)
T.swapaxes = lambda self, axis1, axis2: _ops.swapaxes(self, axis1, axis2)
T.copy = lambda self: v._copy(self)
T.take = lambda self, indices, axis=None: (
    _ops.getitem(_ops.reshape(self, (-1,)), onp.asarray(indices))
    if axis is None
    else _ops.getitem(self, (slice(None),) * (axis % self.ndim) + (onp.asarray(indices),))
)
for _name in (
    "any",
    "all",
    "argmax",
    "argmin",
    "argsort",
    "nonzero",
    "round",
    "tolist",
    "argpartition",
):
    setattr(T, _name, _values(_name))
T.__mod__ = lambda self, other: v.mod(self, other)
T.__rmod__ = lambda self, other: v.mod(other, self)
T.__floordiv__ = lambda self, other: onp.floor_divide(self._data, v.value(other))
T.__rfloordiv__ = lambda self, other: onp.floor_divide(v.value(other), self._data)
T.__iter__ = lambda self: (self[i] for i in range(len(self)))
T.__complex__ = lambda self: complex(self._data)
del T
