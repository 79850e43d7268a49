"""What the NumPy face's modules share: argument tests, sample makers, and the two kinds of
NumPy function that are not registry entries.

- ``nograd(fun)``: a function that only looks at values (comparisons, ``floor``,
  ``argmax``): on tensors it acts on their data and returns constants.
- ``NoRule(fun, name)``: a NumPy function fastgrad has no derivative for. It is recorded
  (one node per returned array), and a backward that reaches it raises
  NotImplementedError naming it (``UndefinedVjps``): never a zero gradient.

Every function with a derivative is a registry entry (``fastgrad._registry.define``) in
``_elementwise``, ``_shapes``, ``_building``, ``_reductions``, ``_contractions`` or ``linalg``.
"""

import builtins
import functools

import numpy as onp

from .._ops import shape_of
from .._registry import Sample
from .._tape import Primitive
from .._tape import TensorBase as Tensor

__all__ = ["NoRule", "UndefinedVjps", "nograd", "traced", "contains_tensor", "ndim_of",
           "dtype_of", "shape_proxy", "unbox", "normal", "uniform"]


# ----------------------------------------------------------------- argument tests --


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


def shape_proxy(x):
    """A zero-stride array of ``x``'s shape, for NumPy helpers that only read shapes."""
    return onp.broadcast_to(0.0, shape_of(x))


def unbox(x):
    """Tensors in ``x`` (and in lists and tuples holding them) replaced by their data."""
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, list) and contains_tensor(x):
        return [unbox(v) for v in x]
    if isinstance(x, tuple) and contains_tensor(x):
        return type(x)(*[unbox(v) for v in x]) if hasattr(x, "_fields") else \
            tuple(unbox(v) for v in x)
    return x


# --------------------------------------------------------------------- samples --
# Sample makers for the registry entries: functions of a NumPy Generator.


def normal(*shape):
    return lambda r: [Sample(r.normal(size=shape))]


def uniform(low, high, *shape):
    return lambda r: [Sample(r.uniform(low, high, size=shape))]


# -------------------------------------------------- functions without a derivative --


def nograd(fun):
    """``fun`` on the values inside any tensors: the result is a constant."""

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        return fun(*[unbox(a) for a in args], **{k: unbox(v) for k, v in kwargs.items()})

    return wrapped


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


class NoRule(Primitive):
    """A NumPy function recorded without a derivative (``UndefinedVjps(name)``).

    On tensors it runs once on their data; each array it returns (``eig``'s w and V,
    ``lstsq``'s four results) becomes its own node, whose backward raises
    NotImplementedError naming ``name``. Other results (``lstsq``'s rank) are constants.
    """

    def __init__(self, fun, name):
        super().__init__(fun, name)
        self.vjps = UndefinedVjps(name)

    def __call__(self, *args, **kwargs):
        if not traced(*args):
            return self.fun(*args, **kwargs)
        ans = self.fun(*[unbox(a) for a in args], **kwargs)
        if not isinstance(ans, (tuple, list)):
            return self._part(ans)(*args, **kwargs)
        parts = [self._part(v)(*args, **kwargs) if isinstance(v, (onp.ndarray, onp.generic))
                 else v for v in ans]
        if hasattr(ans, "_fields"):  # a named tuple (EigResult, QRResult, ...)
            return type(ans)(*parts)
        return type(ans)(parts)

    def _part(self, value):
        """A one-off primitive returning ``value`` (already computed), with these rules
        (``fastgrad.extend.defvjp`` may have given the function some since)."""
        part = Primitive(lambda *args, **kwargs: value, self.name)
        part.vjps = self.vjps
        part.saves_args, part.saves_ans = self.saves_args, self.saves_ans
        return part
