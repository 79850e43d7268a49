"""Values of a trace that leave the tensors: ``TracedArray`` and the masks made from them.

While ``fastgrad.compile`` traces, the array of a traced tensor (``t.data``, and the
``value(t)`` the NumPy face's functions read) is a ``TracedArray``: an ndarray whose
shape and dtype work and which the tracer knows by identity, so that passing it to a
primitive (``fg.where(mask, …)``, ``x * mask``) reads its buffer at every replay.

A comparison of traced values (``x > 0``, ``np.greater(x, y)``, ``t.data <= 1``) and the
logical operations on the masks (``&``, ``|``, ``^``, ``~``) are recorded as
instructions producing 1 or 0: a mask is data, as in ``jax.jit``. What needs the value
itself while tracing — ``bool(mask)`` (an ``if``), ``mask.any()``, indexing by a traced
boolean mask (its result's shape depends on the data), NumPy functions without a
compiled counterpart — is refused with a ``TracingError`` naming it.
"""

import numpy as np

from .. import _opcodes as op
from .. import _tape
from .._tape import TensorBase
from .ir import FLOATS, TracingError

__all__ = ["TracedArray", "array_ufunc", "array_function", "plain", "underived"]

# NumPy's comparisons and logical functions on masks, as opcodes (1.0 or 0.0 per element)
_COMPARE = {np.greater: op.GT, np.greater_equal: op.GE, np.less: op.LT, np.less_equal: op.LE,
            np.equal: op.EQ, np.not_equal: op.NE, np.logical_and: op.AND, np.logical_or: op.OR,
            np.logical_xor: op.XOR, np.logical_not: op.NOT}
# on booleans, & | ^ ~ are the logical ones
_ON_BOOLS = {np.bitwise_and: op.AND, np.bitwise_or: op.OR, np.bitwise_xor: op.XOR,
             np.invert: op.NOT}


def plain(x):
    """``x`` without the tracing: a TracedArray's ndarray, a tensor's array; containers too."""
    if type(x) is TracedArray:
        return x.view(np.ndarray)
    if isinstance(x, TensorBase):
        return x._data
    if isinstance(x, (list, tuple)):
        return type(x)(plain(v) for v in x)
    return x


def _is_traced(x):
    return isinstance(x, TensorBase) or type(x) is TracedArray


def _dtype(tracer, inputs):
    """The float dtype a mask of these inputs is held in: theirs (float64 if none is float)."""
    dts = []
    for a in inputs:
        if isinstance(a, TensorBase):
            dts.append(a._data.dtype)
        elif type(a) is TracedArray:
            s = tracer.by_array.get(id(a))
            if s is not None:
                dts.append(s.dtype)
    dts = [d for d in dts if d in FLOATS]
    return np.result_type(*dts) if dts else np.dtype(np.float64)


def record(tracer, opcode, inputs, eager):
    """An elementwise instruction producing ``eager``'s values from ``inputs`` at every
    replay; returns ``eager`` as a TracedArray the tracer knows."""
    dtype = _dtype(tracer, inputs)
    eager = np.asarray(eager)
    slots = [tracer.slot_of(a, dtype) for a in inputs]
    from .lowering import broadcast_or_expand

    R, C, operands = broadcast_or_expand(tracer, eager.shape, slots, "a comparison")[:3]
    out = tracer.new(eager.shape, dtype)
    tracer.ew(opcode, out, operands, R=R, C=C)
    v = eager.view(TracedArray)
    tracer._register(v, out)
    return v


def array_ufunc(tracer, ufunc, method, inputs, kwargs):
    """NumPy's ``ufunc`` on traced values while tracing: a mask, a recorded operation, or
    a TracingError naming it."""
    raw = [plain(a) for a in inputs]
    if not any(_is_traced(a) for a in inputs):
        return getattr(ufunc, method)(*raw, **kwargs)
    name = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if method == "__call__" and not kwargs:
        opcode = _COMPARE.get(ufunc)
        if opcode is None and ufunc in _ON_BOOLS and all(
                np.asarray(r).dtype == np.bool_ for r in raw if isinstance(r, np.ndarray)):
            opcode = _ON_BOOLS[ufunc]
        if opcode is not None:
            with np.errstate(invalid="ignore"):
                return record(tracer, opcode, inputs, ufunc(*raw))
        if not any(isinstance(a, TensorBase) for a in inputs):
            from ..numpy._map import NUMPY_MAP

            twin = NUMPY_MAP.get(ufunc)
            if twin is not None:
                with np.errstate(all="ignore"):
                    kind = np.result_type(*[r for r in raw]).kind if raw else "f"
                if kind == "f":
                    return _through_tensors(tracer, twin, inputs)
    raise TracingError(
        f"fastgrad.compile: {name} on a traced value needs its value while tracing (it would "
        "be frozen at trace time); use tensor operations (comparisons, fg.where, arithmetic "
        "and fastgrad's functions are recorded)"
    )


def _through_tensors(tracer, fun, inputs):
    """``fun`` (a fastgrad primitive or face function) on TracedArrays as tensors; the
    result's array again as a TracedArray (NumPy arithmetic on ``t.data`` or a mask is
    recorded, without a gradient, as eager's array would have none)."""
    from .._tensor import Tensor

    args = []
    for a in inputs:
        if type(a) is TracedArray:
            t = Tensor._wrap(a.view(np.ndarray))
            tracer._register(t, tracer.slot_of(a))
            args.append(t)
        else:
            args.append(a)
    out = fun(*args)
    if isinstance(out, TensorBase):
        return tracer.data(out, out._data)
    return out


def array_function(tracer, func, args, kwargs):
    """A NumPy function on a TracedArray while tracing: ``np.where(mask, x, y)`` is
    recorded, shape queries answer, anything else is refused by name."""
    if func in (np.shape, np.ndim, np.size, np.result_type):
        return func(*plain(args), **kwargs)
    if func is np.where and len(args) + len(kwargs) == 3:
        from .._ops_arrays import _where_prim

        cond, x, y = (list(args) + [kwargs.get("x"), kwargs.get("y")])[:3] if len(args) < 3 else args
        out = _tape._apply(_where_prim, (cond, x, y), {})
        return tracer.data(out, out._data) if isinstance(out, TensorBase) else out
    raise TracingError(
        f"fastgrad.compile: np.{func.__name__} on a traced value (a tensor's .data, a mask) "
        "needs its value while tracing (it would be frozen at trace time); use tensor "
        "operations instead"
    )


class TracedArray(np.ndarray):
    """A traced tensor's array while tracing (``t.data``, a comparison's mask): shape and
    dtype work; comparisons, logical operations and ``np.where`` are recorded; NumPy
    functions that need the values are refused. Outside the trace it is an ndarray."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        tracer = _tape._tracer
        if tracer is None or not tracer._mine():
            if "out" in kwargs:
                kwargs["out"] = plain(kwargs["out"])
            return getattr(ufunc, method)(*plain(inputs), **kwargs)
        if any(isinstance(a, TensorBase) for a in inputs):
            return NotImplemented  # the tensor's own protocol records it
        if "out" in kwargs:
            raise TracingError(
                f"fastgrad.compile: np.{ufunc.__name__}(..., out=...) writes into a traced "
                "value in place, which a compiled function cannot replay; compute a new one")
        return array_ufunc(tracer, ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        tracer = _tape._tracer
        if tracer is None or not tracer._mine():
            return func(*plain(args), **plain(kwargs))
        if any(issubclass(t, TensorBase) for t in types):
            return NotImplemented
        return array_function(tracer, func, args, kwargs)

    def astype(self, dtype, *args, **kwargs):
        """A mask as numbers (``(x > 0).astype(float)``): the same buffer, recorded."""
        tracer = _tape._tracer
        out = self.view(np.ndarray).astype(dtype, *args, **kwargs)
        if tracer is None or not tracer._mine():
            return out
        s = tracer.by_array.get(id(self))
        if s is None:
            raise underived()
        if out.dtype not in FLOATS and out.dtype.kind not in "biu":
            raise TracingError(f"fastgrad.compile: .astype({out.dtype}) of a traced value; "
                               "a compiled function holds float32/float64 values")
        v = out.view(TracedArray)
        tracer._register(v, s if out.dtype not in FLOATS else tracer.operand(s, out.dtype))
        return v

    def __bool__(self):
        if _active():
            raise TracingError("fastgrad.compile: bool() of a traced value (an `if` on a mask or "
                               "on a tensor's .data) needs its value while tracing (Python control "
                               "flow is frozen at trace time); use fg.where")
        return bool(self.view(np.ndarray))


def _active():
    tracer = _tape._tracer
    return tracer is not None and tracer._mine()


def _needs_value(name):
    base = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        if _active():
            raise TracingError(f"fastgrad.compile: {name}() of a traced value (a tensor's .data, "
                               "a mask) needs its value while tracing (it would be frozen at "
                               "trace time)")
        return base(self.view(np.ndarray), *args, **kwargs)

    method.__name__ = name
    return method


for _name in ("__float__", "__int__", "__index__", "__complex__", "any", "all", "argmax", "argmin",
              "argsort", "nonzero", "item", "tolist", "copy", "reshape", "transpose", "ravel",
              "flatten", "squeeze", "sum", "mean", "max", "min", "__getitem__"):
    setattr(TracedArray, _name, _needs_value(_name))
del _name


def underived():
    return TracingError(
        "fastgrad.compile: an array derived from a traced value by an ndarray method "
        "(.reshape, .copy, .T, indexing, ...) of a mask or a tensor's .data would be frozen "
        "at trace time; apply tensor operations to the tensor instead")

