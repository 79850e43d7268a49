"""``fastgrad.Tensor``: a NumPy array that remembers how it was computed.

The face users hold. Every operator and method is defined here, in the class body, on
top of the tape (``fastgrad._tape``: recording and the backward sweep) and the
primitives (``fastgrad._ops``, ``fastgrad.numpy``). NumPy's own functions called on a
tensor go through one map (``fastgrad.numpy._map``): each records like its
``fastgrad.numpy`` twin, or raises a TypeError naming it — never a plain array that
silently drops the graph.

While ``fastgrad.compile`` traces a function, the methods that would hand a traced value
to Python (``bool()``, ``float()``, ``.item()``, ``np.asarray``, ``.argmax()``), the
comparisons (recorded as masks) and the ``.data``/``.grad`` accessors call the tracer's
hooks (``_tape._tracer``).
"""

import numpy as np

from . import _ops, _tape
from . import numpy as _fnp
from ._factored import OuterGrad
from ._saved import inplace_update
from ._tape import TensorBase, _apply, _mode, leaf_node, run_backward, wrap
from .numpy._map import NOT_DIFFERENTIABLE, NUMPY_MAP, unbox

__all__ = ["Tensor", "as_float_array", "AssignmentError"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# L̄ = 1 for a loss held as a NumPy scalar (immutable, so one object serves every backward)
_UNIT_SEEDS = {np.float32: np.float32(1), np.float64: np.float64(1)}
_NO_KWARGS = {}


def as_float_array(data, dtype=None, copy=True, name="data"):
    """Data for a tensor: float32/float64 kept, ints and bools become float64."""
    if isinstance(data, TensorBase):
        data = data._data
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype not in _FLOATS:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    try:
        array = np.array(data, dtype=dtype, copy=copy) if copy else np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} cannot become a float array: {exc}") from exc
    kind = array.dtype.kind
    if array.dtype in _FLOATS:
        return array
    if kind in "biu":
        return array.astype(np.float64)
    if array.dtype == np.float16:
        raise TypeError(
            f"{name} has dtype float16, which fastgrad does not support; "
            "convert to float32 or float64"
        )
    raise TypeError(f"{name} has dtype {array.dtype}; fastgrad holds float32 or float64 data")


def _on_cache_line(array):
    """A parameter's values in a C-contiguous array that starts on a 64-byte cache line.

    The batch-1 kernels stream a weight matrix once per step (the affine forward, the
    per-example update); with rows that start on a line their vector loads never straddle
    two (784 -> 100 float32: ~1.5x faster). Only the speed depends on it: the kernels sum
    in one order whatever the address. Small arrays and already aligned ones are kept.
    """
    if array.nbytes < 4096 or array.ctypes.data % 64 == 0:
        return array
    buffer = np.empty(array.nbytes + 64, np.uint8)
    start = -buffer.ctypes.data % 64
    aligned = buffer[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    aligned[...] = array
    return aligned


class AssignmentError(RuntimeError, TypeError):
    """Item assignment into a recorded tensor: a RuntimeError, and a TypeError as autograd raises."""


def _escape(t, what):
    """A traced value would leave the tape: the compile tracer refuses (no-op otherwise)."""
    if _tape._tracer is not None:
        _tape._tracer.escape(t, what)


def _compare(ufunc, t, other):
    """``t < other`` and its kind: a boolean array; while fastgrad.compile traces, a mask
    recorded by the tracer."""
    if _tape._tracer is not None:
        return _tape._tracer.compare(ufunc, t, other)
    return ufunc(t._data, _ops.value(other))


def _axis(axis, dim):
    """``dim=`` (PyTorch's name) accepted beside ``axis=``."""
    if dim is not None:
        if axis is not None:
            raise TypeError("give axis= or dim=, not both")
        return dim
    return tuple(axis) if isinstance(axis, list) else axis


def _shape_args(args):
    if len(args) == 1 and (args[0] is None or isinstance(args[0], (tuple, list))):
        return args[0]
    return args


class Tensor(TensorBase):
    """A NumPy array that remembers how it was computed, so gradients can flow back.

    ``fg.Tensor(data)`` copies ``data``; ``fg.from_numpy(a)`` shares ``a``'s memory.
    """

    __slots__ = ()
    __array_priority__ = 1000.0  # ndarray ∘ Tensor defers to the Tensor's operators

    def __init__(self, data, requires_grad=False, dtype=None):
        if type(data) is float and dtype is None:
            self._data = np.array(data)  # the common scalar case, without the checks
        else:
            self._data = as_float_array(data, dtype)
            if requires_grad:
                self._data = _on_cache_line(self._data)
        self._node = leaf_node(self._data.shape) if requires_grad else None
        self._grad = None
        self._saves = 0
        self._written_at = -1

    @classmethod
    def _wrap(cls, data, node=None):
        # The fast constructor the tape uses for results: no copy, no checks.
        return wrap(cls, data, node)

    # -- data and gradient --

    @property
    def data(self) -> np.ndarray:
        d = self._data
        if type(d) is not np.ndarray:
            return np.asarray(d)
        node = self._node
        if self._saves or (node is not None and node.prim is not None and not node.freed):
            # Saved by a live graph: writes would corrupt its backward, so read-only.
            d = d.view()
            d.setflags(write=False)
        if _tape._tracer is not None:
            return _tape._tracer.data(self, d)
        return d

    @data.setter
    def data(self, value):
        self._data = as_float_array(value, copy=False, name="data")

    @property
    def grad(self):
        node = self._node
        if node is None or node.prim is not None:
            return self._grad
        g = node.grad
        if type(g) is OuterGrad:
            g = node.grad = g.array()
        if g is not None and g.dtype != self._data.dtype:
            g = node.grad = g.astype(self._data.dtype)  # float64 constants met a float32 leaf
        if _tape._tracer is not None:
            return _tape._tracer.grad_read(self, g)
        return g

    @grad.setter
    def grad(self, value):
        if value is not None:
            value = np.asarray(value)
            if value.shape != self.shape:
                raise ValueError(f"grad of shape {value.shape} assigned to a tensor of shape {self.shape}")
        elif _tape._tracer is not None:
            _tape._tracer.grad_cleared(self)
        node = self._node
        if node is not None and node.prim is None:
            node.grad = value
        else:
            self._grad = value

    @property
    def grad_fn(self):
        """The node that computed this tensor (None for a leaf or a constant), as PyTorch's."""
        node = self._node
        return node if node is not None and node.prim is not None else None

    @property
    def requires_grad(self) -> bool:
        return self._node is not None

    @requires_grad.setter
    def requires_grad(self, value):
        if self._node is not None and self._node.prim is not None:
            if not value:
                raise RuntimeError("requires_grad cannot be switched off on a computed tensor; use .detach()")
            return
        if value and self._node is None:
            self._node = leaf_node(np.shape(self._data))
        elif not value:
            self._node = None

    def requires_grad_(self, value=True):
        self.requires_grad = value
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node is None or self._node.prim is None

    @property
    def shape(self):
        return np.shape(self._data)

    @property
    def ndim(self):
        return np.ndim(self._data)

    @property
    def size(self):
        return np.size(self._data)

    @property
    def dtype(self):
        return self._data.dtype

    def dim(self):
        """The number of axes (PyTorch's name for ``ndim``)."""
        return np.ndim(self._data)

    def __len__(self):
        return len(self._data)

    def detach(self):
        """The same data, cut from the graph."""
        return wrap(Tensor, self._data, None)

    def clone(self):
        """A copy of the data that stays on the graph (PyTorch's ``clone``)."""
        return _fnp.array(self) if self._node is not None else wrap(Tensor, np.array(self._data), None)

    copy = clone

    def __repr__(self):
        body = np.array2string(np.asarray(self._data), separator=", ", prefix="tensor(")
        extra = ""
        if self._node is not None:
            extra = ", requires_grad=True" if self._node.prim is None else f", grad_fn=<{self._node.prim.name}>"
        if self.dtype != np.float64:
            extra = f", dtype={self.dtype}" + extra
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__

    # -- values that leave the tape --

    def numpy(self) -> np.ndarray:
        _escape(self, ".numpy()")
        return self.data

    def __array__(self, dtype=None, copy=None):
        _escape(self, "a NumPy function (np.asarray(tensor))")
        a = self.data
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self):
        _escape(self, ".item()")
        return self._data.item()

    def tolist(self):
        _escape(self, ".tolist()")
        return np.asarray(self._data).tolist()

    def __float__(self):
        _escape(self, "float()")
        return float(self._data)

    def __int__(self):
        _escape(self, "int()")
        return int(self._data)

    def __complex__(self):
        _escape(self, "complex()")
        return complex(self._data)

    def __bool__(self):
        _escape(self, "bool() (an `if`/`while` on a tensor)")
        return bool(self._data)

    def __index__(self):
        _escape(self, "index()")
        return int(self._data)

    # Comparisons give plain boolean arrays (not differentiable), so `np.where(x > 0, …)`
    # and `if x > 0:` work, inside grad too. While fastgrad.compile traces, a comparison of
    # traced values is recorded: the mask is data (an `if` on it is refused).
    def __lt__(self, other):
        return _compare(np.less, self, other)

    def __le__(self, other):
        return _compare(np.less_equal, self, other)

    def __gt__(self, other):
        return _compare(np.greater, self, other)

    def __ge__(self, other):
        return _compare(np.greater_equal, self, other)

    def __eq__(self, other):
        return _compare(np.equal, self, other)

    def __ne__(self, other):
        return _compare(np.not_equal, self, other)

    # The methods of values (argmax, ...): constants computed from the data.
    def any(self, *args, **kwargs):
        _escape(self, ".any()")
        return np.asarray(self._data).any(*args, **kwargs)

    def all(self, *args, **kwargs):
        _escape(self, ".all()")
        return np.asarray(self._data).all(*args, **kwargs)

    def argmax(self, *args, **kwargs):
        _escape(self, ".argmax()")
        return np.asarray(self._data).argmax(*args, **kwargs)

    def argmin(self, *args, **kwargs):
        _escape(self, ".argmin()")
        return np.asarray(self._data).argmin(*args, **kwargs)

    def argsort(self, *args, **kwargs):
        _escape(self, ".argsort()")
        return np.asarray(self._data).argsort(*args, **kwargs)

    def argpartition(self, *args, **kwargs):
        _escape(self, ".argpartition()")
        return np.asarray(self._data).argpartition(*args, **kwargs)

    def nonzero(self):
        _escape(self, ".nonzero()")
        return np.asarray(self._data).nonzero()

    def round(self, *args, **kwargs):
        _escape(self, ".round()")
        return np.asarray(self._data).round(*args, **kwargs)

    # -- the backward pass --

    def backward(self, grad=None, retain_graph=False):
        """Sweep the graph that computed this tensor, accumulating leaves' ``.grad``.

        A one-element tensor is seeded with 1 (L̄ = 1); any other needs ``grad`` of its shape.
        """
        node = self._node
        if node is None:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of its "
                "computation had requires_grad=True (or it was computed under no_grad)"
            )
        data = self._data
        if type(grad) is np.ndarray and grad.dtype == data.dtype and grad.shape == data.shape:
            run_backward([node], [grad], retain_graph=retain_graph)  # nothing to convert
            return
        if grad is None and type(data) in _UNIT_SEEDS:  # a scalar loss: L̄ = 1 of its type
            run_backward([node], [_UNIT_SEEDS[type(data)]], retain_graph=retain_graph)
            return
        if grad is None:
            if data.size != 1:
                raise RuntimeError(
                    f"backward() without grad= needs a tensor of one element; this one has "
                    f"shape {np.shape(data)}: pass grad= of that shape (the error signal of the output)"
                )
            # L̄ = 1 (a NumPy scalar for a 0-d result: cheaper than an array)
            seed = data.dtype.type(1) if data.ndim == 0 else np.ones(data.shape, dtype=data.dtype)
        else:
            seed = grad._data if isinstance(grad, TensorBase) else grad
            if np.iscomplexobj(seed):
                raise TypeError("backward(grad=...) got a complex grad; fastgrad differentiates real values only")
            seed = np.asarray(seed, dtype=data.dtype)
            if seed.shape != np.shape(data):
                raise RuntimeError(
                    f"backward(grad=...) got a grad of shape {seed.shape} for a tensor of shape "
                    f"{np.shape(data)}: they must match"
                )
        run_backward([node], [seed], retain_graph=retain_graph)

    # -- operators: each records its primitive (self is a tensor: straight to the tape) --

    def __add__(self, other):
        return _apply(_ops.add, (self, other), _NO_KWARGS)

    def __radd__(self, other):
        return _apply(_ops.add, (other, self), _NO_KWARGS)

    def __sub__(self, other):
        return _apply(_ops.subtract, (self, other), _NO_KWARGS)

    def __rsub__(self, other):
        return _apply(_ops.subtract, (other, self), _NO_KWARGS)

    def __mul__(self, other):
        return _apply(_ops.multiply, (self, other), _NO_KWARGS)

    def __rmul__(self, other):
        return _apply(_ops.multiply, (other, self), _NO_KWARGS)

    def __truediv__(self, other):
        return _apply(_ops.true_divide, (self, other), _NO_KWARGS)

    def __rtruediv__(self, other):
        return _apply(_ops.true_divide, (other, self), _NO_KWARGS)

    def __pow__(self, other):
        return _apply(_ops.power, (self, other), _NO_KWARGS)

    def __rpow__(self, other):
        return _apply(_ops.power, (other, self), _NO_KWARGS)

    def __matmul__(self, other):
        return _apply(_ops.matmul, (self, other), _NO_KWARGS)

    def __rmatmul__(self, other):
        return _apply(_ops.matmul, (other, self), _NO_KWARGS)

    def __mod__(self, other):
        return _fnp.mod(self, other)

    def __rmod__(self, other):
        return _fnp.mod(other, self)

    def __floordiv__(self, other):  # piecewise constant: no derivative, a constant
        _escape(self, "//")
        return np.floor_divide(self._data, _ops.value(other))

    def __rfloordiv__(self, other):
        _escape(self, "//")
        return np.floor_divide(_ops.value(other), self._data)

    def __neg__(self):
        return _apply(_ops.negative, (self,), _NO_KWARGS)

    def __pos__(self):
        return self

    def __abs__(self):
        return _apply(_ops.absolute, (self,), _NO_KWARGS)

    def _inplace(self, prim, ufunc, other):
        node = self._node
        if _mode.enabled and (node is not None or (isinstance(other, TensorBase) and other._node is not None)):
            if node is not None and node.prim is None:
                raise RuntimeError(
                    "a leaf tensor that requires grad cannot be updated in place while recording; "
                    "update it inside `with fg.no_grad():` (as an optimizer step does)"
                )
            return prim(self, other)  # out of place: the name is rebound to the new result
        data = self._data
        if type(data) is not np.ndarray:
            self._data = ufunc(data, _ops.value(other))
        else:
            with inplace_update(self):
                ufunc(data, _ops.value(other), out=data, casting="same_kind")
        return self

    def __iadd__(self, other):
        return self._inplace(_ops.add, np.add, other)

    def __isub__(self, other):
        return self._inplace(_ops.subtract, np.subtract, other)

    def __imul__(self, other):
        return self._inplace(_ops.multiply, np.multiply, other)

    def __itruediv__(self, other):
        return self._inplace(_ops.true_divide, np.true_divide, other)

    # -- indexing --

    def __getitem__(self, index):
        return _ops.getitem(self, _ops.index_value(index))

    def __setitem__(self, index, new):
        if _mode.enabled and (self._node is not None or (isinstance(new, TensorBase) and new._node is not None)):
            raise AssignmentError(
                "item assignment into a tensor that is part of a recorded computation is not "
                "differentiable; build a new tensor instead (fg.where, fg.concatenate), or assign "
                "inside `with fg.no_grad():`"
            )
        with inplace_update(self):
            self._data[_ops.index_value(index)] = _ops.value(new)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # -- NumPy's protocols: one map from NumPy's functions to fastgrad's --

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs:
            if not isinstance(x, (TensorBase, np.ndarray)) and _tape.overrides_ufuncs(x):
                return NotImplemented  # an xarray.DataArray: it applies the ufunc to its data
        if method == "__call__" and not kwargs:
            twin = NUMPY_MAP.get(ufunc)
            if twin is not None:
                return twin(*inputs)
        if method == "__call__" and ufunc in NOT_DIFFERENTIABLE:
            if _tape._tracer is not None:  # fastgrad.compile: a mask, or refused
                return _tape._tracer.ufunc(ufunc, method, inputs, kwargs)
            return ufunc(*unbox(inputs), **unbox(kwargs))
        name = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        return _refuse(name, ufunc, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if not all(issubclass(t, (TensorBase, np.ndarray)) for t in types):
            return NotImplemented
        twin = NUMPY_MAP.get(func)
        if twin is not None:
            return twin(*args, **kwargs)
        if func in NOT_DIFFERENTIABLE:
            if _tape._tracer is not None:  # fastgrad.compile: refused if it reads a traced value
                return _tape._tracer.function(func, args, kwargs)
            return func(*unbox(args), **unbox(kwargs))
        module = getattr(func, "__module__", "numpy") or "numpy"
        return _refuse(f"{module.replace('numpy._core', 'numpy')}.{func.__name__}", func, kwargs)

    # -- reductions (PyTorch's dim= and keepdim= accepted too) --

    def sum(self, axis=None, dtype=None, out=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops.sum(self, _axis(axis, dim), keepdims or bool(keepdim))

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops.mean(self, _axis(axis, dim), keepdims or bool(keepdim))

    def max(self, axis=None, out=None, keepdims=False, *, dim=None, keepdim=None, **kwargs):
        return _ops.amax(self, _axis(axis, dim), keepdims or bool(keepdim))

    def min(self, axis=None, out=None, keepdims=False, *, dim=None, keepdim=None, **kwargs):
        return _ops.amin(self, _axis(axis, dim), keepdims or bool(keepdim))

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, *, dim=None, keepdim=None):
        return _fnp.prod(self, _axis(axis, dim), keepdims=keepdims or bool(keepdim))

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, dim=None, keepdim=None):
        return _fnp.var(self, _axis(axis, dim), ddof=ddof, keepdims=keepdims or bool(keepdim))

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, dim=None, keepdim=None):
        return _fnp.std(self, _axis(axis, dim), ddof=ddof, keepdims=keepdims or bool(keepdim))

    def cumsum(self, axis=None, dtype=None, out=None, *, dim=None):
        return _fnp.cumsum(self, _axis(axis, dim))

    # -- shape --

    def reshape(self, *shape):
        return _ops.reshape(self, tuple(_shape_args(shape)))

    def transpose(self, *axes):
        axes = _shape_args(axes)
        if not axes:
            return _ops.transpose(self)
        return _ops.transpose(self, tuple(axes))

    @property
    def T(self):
        return _ops.transpose(self)

    def ravel(self, order="C"):
        return _ops.reshape(self, (-1,))

    def flatten(self, order="C"):
        return _ops.reshape(self, (-1,))

    def squeeze(self, axis=None, *, dim=None):
        return _fnp.squeeze(self, _axis(axis, dim))

    def swapaxes(self, axis1, axis2):
        return _ops.swapaxes(self, axis1, axis2)

    def repeat(self, repeats, axis=None):
        return _fnp.repeat(self, repeats, axis)

    def take(self, indices, axis=None):
        indices = np.asarray(indices)
        if axis is None:
            return _ops.getitem(_ops.reshape(self, (-1,)), indices)
        return _ops.getitem(self, (slice(None),) * (axis % self.ndim) + (indices,))

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return _fnp.diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1, dtype=None, out=None):
        return _fnp.trace(self, offset, axis1, axis2)

    def astype(self, dtype, *args, **kwargs):
        return _fnp.astype(self, dtype)

    # -- elementwise functions --

    def dot(self, other):
        return _fnp.dot(self, other)

    def clip(self, min=None, max=None, **kwargs):  # noqa: A002  (NumPy's names)
        return _fnp.clip(self, min, max)

    def conj(self):
        return _fnp.conjugate(self)

    conjugate = conj

    @property
    def real(self):
        return _fnp.real(self)

    @property
    def imag(self):
        return _fnp.imag(self)

    def exp(self):
        return _apply(_ops.exp, (self,), _NO_KWARGS)

    def log(self):
        return _apply(_ops.log, (self,), _NO_KWARGS)

    def sqrt(self):
        return _apply(_ops.sqrt, (self,), _NO_KWARGS)

    def tanh(self):
        return _apply(_ops.tanh, (self,), _NO_KWARGS)

    def sigmoid(self):
        return _apply(_ops.sigmoid, (self,), _NO_KWARGS)

    def relu(self):
        return _apply(_ops.relu, (self,), _NO_KWARGS)

    def abs(self):
        return _apply(_ops.absolute, (self,), _NO_KWARGS)

    def sin(self):
        return _apply(_ops.sin, (self,), _NO_KWARGS)

    def cos(self):
        return _apply(_ops.cos, (self,), _NO_KWARGS)


def _refuse(name, func, kwargs):
    twin = getattr(_fnp, getattr(func, "__name__", ""), None)
    hint = ""
    if kwargs:
        hint = f" (fastgrad records it without the keyword arguments {sorted(kwargs)})"
    elif twin is not None:
        hint = (f"; fastgrad.numpy.{func.__name__} records the call but has no derivative: "
                "a backward through it raises NotImplementedError")
    raise TypeError(
        f"{name} called on a fastgrad.Tensor: fastgrad has no differentiable twin for it{hint}. "
        "Compute it from fastgrad.numpy's functions, or call it on tensor.detach().numpy() "
        "if no gradient should flow through it"
    )


_tape.set_tensor_type(Tensor)
