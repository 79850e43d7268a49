"""The tape: tensors, the nodes they were computed by, and the backward sweep.

This module knows nothing about derivatives. A primitive call on tensors records one
``Node`` holding its inputs' nodes (its parents in the computation graph) and what its
local derivative rules need. Nodes are numbered as they are recorded, so the numbering
is a topological order (parents before children); ``backward`` sweeps the nodes that
lead to the output in reverse order of that number, each turning the error signal of its
output into error signals for its parents (v̄ᵢ = Σ_{j ∈ Ch(i)} v̄ⱼ ∂vⱼ/∂vᵢ, fan-out summed).
No recursion: a graph of any depth is swept with a heap.

Saved data is protected. While a live graph saved a tensor, ``tensor.data`` hands out a
read-only view, so ``w.data[...] = v`` between the forward and the backward raises
instead of silently giving a wrong gradient; plain NumPy arrays passed as constants are
made read-only outright. In-place writes that must happen anyway (an optimizer step, an
in-place operator under ``no_grad``) go through ``inplace_update``, which marks the
tensor written; a graph recorded before the write then refuses to run backward.

setup.py compiles this file with Cython (pure-Python mode: the ``cython`` decorators and
declarations below are hints, and no-ops when the file runs as plain Python). Compiled,
``Node`` is an extension type with C fields and the hot loops get typed locals.
"""

import itertools
import threading

import numpy as np

from ._backend import kernels

try:
    import cython
except ImportError:  # Cython is needed to build, not to run: the hints become no-ops

    class cython:  # noqa: N801  (stands in for the module)
        compiled = False
        Py_ssize_t = bint = int

        @staticmethod
        def cclass(cls):
            return cls

        final = ccall = cfunc = cclass

        @staticmethod
        def cast(type, value):  # noqa: A002
            return value

        @staticmethod
        def locals(**types):
            return lambda fun: fun

        @staticmethod
        def declare(type=None, value=None, **kwds):  # noqa: A002
            return value

__all__ = ["Tensor", "Node", "Primitive", "no_grad", "enable_grad", "is_grad_enabled"]


# ---------------------------------------------------------------- recording state --


class _GradMode(threading.local):
    enabled = True  # per thread: no_grad in one thread leaves the others recording
    depth = 0  # how many functional transforms (grad, make_vjp, ...) are tracing


_mode = _GradMode()
# How many threads have recording switched off right now. While none has, the hot path
# skips the thread-local lookup (which costs several times a global read).
_threads_not_recording = 0
# fastgrad._anomaly's checker while some thread is inside detect_anomaly(), else None: the
# hot path pays one global read for it.
_anomaly = None
# fastgrad._compile's tracer while fastgrad.compile traces a function, else None: it
# records each primitive call and backward sweep (one global read on the hot path).
_tracer = None


def is_grad_enabled() -> bool:
    return _mode.enabled


def _set_recording(enabled):
    global _threads_not_recording
    previous = _mode.enabled
    if previous != enabled:
        _mode.enabled = enabled
        _threads_not_recording += -1 if enabled else 1
    return previous


class _SetGrad:
    """Context manager and decorator that switches recording on or off in this thread."""

    __slots__ = ("enabled", "previous")

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.previous = _set_recording(self.enabled)
        return self

    def __exit__(self, *exc):
        _set_recording(self.previous)
        return False

    def __call__(self, fun):
        import functools

        @functools.wraps(fun)
        def wrapper(*args, **kwargs):
            with _SetGrad(self.enabled):
                return fun(*args, **kwargs)

        return wrapper


def no_grad():
    """Nothing is recorded inside: ``with fg.no_grad(): W -= lr * W.grad``."""
    return _SetGrad(False)


def enable_grad():
    return _SetGrad(True)


# ------------------------------------------------------- protection of saved data --


class _Frozen:
    """A NumPy array made read-only because live graphs saved it (``count`` of them)."""

    __slots__ = ("array", "count", "version")

    def __init__(self, array):
        self.array = array
        self.count = 0
        self.version = 0


_frozen = {}  # id(array) -> _Frozen, for the plain arrays this module made read-only
# No lock: the count updates make no calls between read and write, so CPython does not
# switch threads inside them.


class _Saved:
    """Plain NumPy arrays (constants, not tensors) that a rule reads, frozen until released."""

    __slots__ = ("entries", "versions")

    def __init__(self, arrays):
        entries = []
        for a in arrays:
            # Freeze the array and every array it is a view of, so a write through the
            # base is caught as well.
            while type(a) is np.ndarray:
                entry = _frozen.get(id(a))
                if entry is None:
                    if not a.flags.writeable:
                        break  # read-only already, and not by us: nobody can write it
                    a.setflags(write=False)
                    entry = _frozen[id(a)] = _Frozen(a)
                entry.count += 1
                entries.append(entry)
                a = a.base
        self.entries = entries
        self.versions = [e.version for e in entries]

    def check(self, node):
        for entry, version in zip(self.entries, self.versions):
            if entry.version != version:
                raise RuntimeError(
                    f"an array of shape {entry.array.shape} saved by '{node.prim.name}' for the "
                    "backward pass was modified in place after the graph was recorded; "
                    "recompute the forward pass before calling backward()"
                )

    def release(self):
        entries, self.entries = self.entries, ()
        for entry in reversed(entries):  # bases last frozen, first thawed
            entry.count -= 1
            if entry.count == 0:
                del _frozen[id(entry.array)]
                try:
                    entry.array.setflags(write=True)
                except ValueError:  # a view whose base another graph still protects
                    pass


class inplace_update:
    """Write into a tensor's data in place even while graphs saved it (optimizer steps).

    The write marks the tensor, so a graph recorded before it refuses to run backward
    instead of using the new values::

        with inplace_update(W):
            W.data -= lr * W.grad      # .data is writable inside
    """

    __slots__ = ("tensor", "entries", "_saves")

    def __init__(self, tensor):
        self.tensor = tensor
        entries = []
        a = tensor._data if isinstance(tensor, Tensor) else tensor
        while type(a) is np.ndarray:
            entry = _frozen.get(id(a))
            if entry is not None:
                entries.append(entry)
            a = a.base
        self.entries = entries

    def __enter__(self):
        t = self.tensor
        if isinstance(t, Tensor):
            if t._saves:
                t._written_at = next(_sequence)
                _marked_writes[0] += 1
            self._saves, t._saves = t._saves, 0  # .data is writable inside the block
        for entry in reversed(self.entries):
            entry.array.setflags(write=True)
        return self

    def __exit__(self, *exc):
        t = self.tensor
        if isinstance(t, Tensor):
            t._saves += self._saves
        for entry in self.entries:
            entry.version += 1
            entry.array.setflags(write=False)
        return False


def frozen_by_graph(tensor) -> bool:
    """True if a live graph saved this tensor (or this array), so it must not be written."""
    if isinstance(tensor, Tensor):
        if tensor._saves:
            return True
        tensor = tensor._data
    while type(tensor) is np.ndarray:
        if id(tensor) in _frozen:
            return True
        tensor = tensor.base
    return False


# ------------------------------------------------------------------------- nodes --

_sequence = itertools.count()


@cython.final
@cython.cclass
class Node:
    """One vertex vᵢ of the computation graph.

    ``parents`` are (argument position, parent node) pairs for the inputs that need an
    error signal; ``raw`` are the inputs as arrays and ``args`` as given (tensors), which
    the derivative rules read; ``seq`` is the recording order. A leaf node (``prim`` is
    None) stands for a tensor that requires grad and holds its accumulated ``grad``.
    """

    # Fields, readable and writable from Python (compiled: C fields of the extension type;
    # plain Python: class defaults, which is why there is no __slots__ here).
    prim = cython.declare(object, visibility="public")
    parents = cython.declare(object, visibility="public")
    args = cython.declare(object, visibility="public")
    raw = cython.declare(object, visibility="public")
    kwargs = cython.declare(object, visibility="public")
    ans = cython.declare(object, visibility="public")
    saved = cython.declare(object, visibility="public")
    seq = cython.declare(cython.Py_ssize_t, visibility="public")
    grad = cython.declare(object, visibility="public")
    # ``site`` (file, line, function) is set only under detect_anomaly(), never read otherwise.
    site = cython.declare(object, visibility="public")

    # Made by _new_node (compiled: a direct allocation, no call protocol); no __init__.

    @cython.ccall
    def release(self):
        """Drop what the backward needed: the intermediates die with their last user."""
        self._unprotect()
        self.parents = None
        self.args = self.raw = self.kwargs = self.ans = self.saved = None

    @cython.ccall
    def _unprotect(self):
        """Give back the saved-data protection this node holds (counts, frozen arrays)."""
        args = self.args
        if args is not None and cython.cast(Primitive, self.prim).saves_args:
            for a in args:
                if isinstance(a, _TensorFields):
                    cython.cast(_TensorFields, a)._saves -= 1
        if self.saved is not None:
            self.saved.release()

    def __del__(self):  # a graph dropped without a backward unprotects what it saved
        self._unprotect()


def _leaf_node():
    """The node of a tensor that requires grad: no rule, no parents; it holds ``.grad``."""
    return _new_node(None, (), None, None, None, None, None)


@cython.cfunc
def _new_node(prim, parents, args, raw, kwargs, ans, saved) -> Node:
    # Compiled, a direct allocation of the C struct.
    node: Node = Node.__new__(Node)
    node.prim = prim
    node.parents = parents
    node.args = args
    node.raw = raw
    node.kwargs = kwargs
    node.ans = ans
    node.saved = saved
    node.seq = next(_sequence)
    node.grad = None
    return node


# ------------------------------------------------------------------------ tensor --


def _shape_of(x):
    return np.shape(x._data if isinstance(x, Tensor) else x)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# L̄ = 1 for a loss held as a NumPy scalar (immutable, so one object serves every backward)
_UNIT_SEEDS = {np.float32: np.float32(1), np.float64: np.float64(1)}


def as_float_array(data, dtype=None, copy=True, name="data"):
    """Data for a tensor: float32/float64 kept, ints and bools become float64."""
    if isinstance(data, Tensor):
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


@cython.cclass
class _TensorFields:
    """A tensor's fields. Compiled, an extension type: the tape reads them as C fields.

    ``_saves`` counts the live nodes that saved this tensor's data; ``_written_at`` is the
    recording number of its last in-place write under inplace_update. Tensor (below) is
    a plain Python subclass, so fastgrad._ops can attach its operators and methods.
    """

    _data = cython.declare(object, visibility="public")
    _node = cython.declare(object, visibility="public")
    _grad = cython.declare(object, visibility="public")
    _saves = cython.declare(cython.Py_ssize_t, visibility="public")
    _written_at = cython.declare(cython.Py_ssize_t, visibility="public")
    __weakref__ = cython.declare(object)


_new_fields = _TensorFields.__new__  # the extension type's allocator, bound once


@cython.ccall
@cython.locals(t=_TensorFields)
def _wrap(cls, data, node):
    # Tensor._wrap's body as a plain function: _apply calls it without a classmethod lookup.
    t = _new_fields(cls)  # no __init__, no method lookup per call
    t._data = data
    t._node = node
    t._grad = None
    t._saves = 0
    t._written_at = -1
    return t


class Tensor(_TensorFields):
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
        self._node = _leaf_node() if requires_grad else None
        self._grad = None
        self._saves = 0
        self._written_at = -1

    @classmethod
    def _wrap(cls, data, node=None):
        # The fast constructor the tape uses for results: no copy, no checks.
        return _wrap(cls, data, node)

    # -- data and gradient --

    @property
    def data(self) -> np.ndarray:
        d = self._data
        if type(d) is not np.ndarray:
            return np.asarray(d)
        node = self._node
        if self._saves or (node is not None and node.parents is not None and node.prim is not None):
            # Saved by a live graph: writes would corrupt its backward, so read-only.
            d = d.view()
            d.setflags(write=False)
        return d

    @data.setter
    def data(self, value):
        value = as_float_array(value, copy=False, name="data")
        self._data = value

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
        return g

    @grad.setter
    def grad(self, value):
        if value is not None:
            value = np.asarray(value)
            if value.shape != self.shape:
                raise ValueError(f"grad of shape {value.shape} assigned to a tensor of shape {self.shape}")
        node = self._node
        if node is not None and node.prim is None:
            node.grad = value
        else:
            self._grad = value

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
            self._node = _leaf_node()
        elif not value:
            self._node = None

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

    def __len__(self):
        return len(self._data)

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        a = self.data
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self):
        return self._data.item()

    def __float__(self):
        return float(self._data)

    def __int__(self):
        return int(self._data)

    def __bool__(self):
        return bool(self._data)

    def __index__(self):
        return int(self._data)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._wrap(self._data)

    def requires_grad_(self, value=True):
        self.requires_grad = value
        return self

    def __repr__(self):
        body = np.array2string(np.asarray(self._data), separator=", ", prefix="tensor(")
        extra = ""
        if self._node is not None:
            extra = ", requires_grad=True" if self._node.prim is None else f", grad_fn=<{self._node.prim.name}>"
        if self.dtype != np.float64:
            extra = f", dtype={self.dtype}" + extra
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__

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
            seed = grad._data if isinstance(grad, Tensor) else grad
            if np.iscomplexobj(seed):
                raise TypeError("backward(grad=...) got a complex grad; fastgrad differentiates real values only")
            seed = np.asarray(seed, dtype=data.dtype)
            if seed.shape != np.shape(data):
                raise RuntimeError(
                    f"backward(grad=...) got a grad of shape {seed.shape} for a tensor of shape "
                    f"{np.shape(data)}: they must match"
                )
        run_backward([node], [seed], retain_graph=retain_graph)

    # operators, reductions and the rest are attached by fastgrad._ops


# -------------------------------------------------------------------- primitives --


@cython.cclass
class Primitive:
    """A function with local derivative rules, recorded when a tensor input needs grad.

    ``vjps[i](g, ans, *args, **kwargs)`` gives argument i's error signal from the
    output's, ``g``. Rules are written with primitives, so they can themselves be
    recorded (grad of grad). ``saves_args`` / ``saves_ans`` say what the rules read, so
    only that data is kept alive and protected.

    Compiled, an extension type: calling it and reading its fields are C operations (the
    forward records and the backward sweeps read them once per node); other attributes
    (``__name__``, ``__doc__``, ...) live in its ``__dict__``.
    """

    fun = cython.declare(object, visibility="public")
    name = cython.declare(object, visibility="public")
    vjps = cython.declare(object, visibility="public")
    # joint_vjp(parents, g, ans, defer, *args): every parent's error signal from one call
    # (a list in the order of ``parents``), or None to use the rules one by one. Only in a
    # first-order sweep without keyword arguments: it saves a dispatch per argument on a
    # hot primitive (linear). With ``defer`` it may give a leaf parent's signal in factored
    # form (an OuterGrad: see there), which only a leaf's .grad ever holds.
    joint_vjp = cython.declare(object, visibility="public")
    saves_args = cython.declare(cython.bint, visibility="public")
    saves_ans = cython.declare(cython.bint, visibility="public")
    __dict__ = cython.declare(dict)
    __weakref__ = cython.declare(object)

    def __init__(self, fun, name=None):
        self.fun = fun
        self.name = name or fun.__name__
        self.__name__ = self.name
        self.__doc__ = fun.__doc__
        self.__wrapped__ = fun
        self.vjps = {}
        self.joint_vjp = None
        self.saves_args = True
        self.saves_ans = False

    def defvjp(self, *rules, saves_args=True, saves_ans=False, argnums=None):
        for i, rule in zip(argnums or range(len(rules)), rules):
            if rule is not None:
                self.vjps[i] = rule
        self.saves_args = saves_args
        self.saves_ans = saves_ans
        return self

    def __repr__(self):
        return f"<fastgrad primitive {self.name}>"

    def __call__(self, *args, **kwargs):
        for a in args:
            if isinstance(a, _TensorFields):
                return _apply(self, args, kwargs)
        if kwargs:
            return self.fun(*args, **kwargs)
        return self.fun(*args)  # plain arrays: plain NumPy, nothing recorded


def _shapes(args):
    return ", ".join(str(_shape_of(a)) for a in args)


@cython.ccall
@cython.locals(prim=Primitive, args=tuple, raw=list, parents=list, i=cython.Py_ssize_t,
               constants=cython.bint, node=Node, t=_TensorFields)
def _apply(prim, args, kwargs):
    if _tracer is not None:
        return _tracer.apply(prim, args, kwargs)  # runs this function eagerly and records it
    # One pass over the arguments: their data, and which need an error signal.
    raw = []
    parents = None
    constants = False
    vjps = prim.vjps
    i = 0
    for a in args:
        if isinstance(a, _TensorFields):
            t = cython.cast(_TensorFields, a)
            raw.append(t._data)
            if t._node is not None and i in vjps:
                if parents is None:
                    parents = [(i, t._node)]
                else:
                    parents.append((i, t._node))
        else:
            raw.append(a)
            if type(a) is np.ndarray:
                constants = True
        i += 1
    try:
        if kwargs:
            ans = prim.fun(*raw, **kwargs)
        elif i == 1:  # (the usual arities called directly: no argument tuple built from raw)
            ans = prim.fun(raw[0])
        elif i == 2:
            ans = prim.fun(raw[0], raw[1])
        elif i == 3:
            ans = prim.fun(raw[0], raw[1], raw[2])
        else:
            ans = prim.fun(*raw)
    except (ValueError, TypeError) as exc:
        raise _with_shapes(prim, args, exc) from exc
    if _anomaly is not None:
        _anomaly.forward(prim, args, ans)  # raises on a NaN/inf if this thread checks
    if parents is None or (_threads_not_recording and not _mode.enabled):
        return _wrap(Tensor, ans, None)
    if prim.saves_args:
        for a in args:
            if isinstance(a, _TensorFields):
                cython.cast(_TensorFields, a)._saves += 1  # released by the node
        # Plain array constants have no Tensor.data to guard: freeze them outright.
        saved = _Saved([a for a in args if type(a) is np.ndarray]) if constants else None
        node = _new_node(prim, parents, args, raw, kwargs, ans if prim.saves_ans else None, saved)
    else:
        # The rules read only the traced arguments' shapes (to undo broadcasting); other
        # arguments (an index array, an axis) are parameters of the op, kept as given.
        # ``args`` stay for a recorded backward, which recomputes ``ans`` from them.
        shapes = []
        i = 0
        for a in args:
            r = raw[i]
            if type(a) is Tensor and (type(r) is np.ndarray or isinstance(r, np.generic)):
                shapes.append(_shape_only(r.shape))
            else:
                shapes.append(r)
            i += 1
        node = _new_node(prim, parents, args, shapes, kwargs, ans if prim.saves_ans else None, None)
    if _anomaly is not None:
        _anomaly.recorded(node)  # the user's file and line, for the backward's report
    return _wrap(Tensor, ans, node)


def _with_shapes(prim, args, exc):
    """``exc`` again, its message naming the primitive and the operands' shapes."""
    message = f"{prim.name}: cannot apply to operands of shapes {_shapes(args)}: {exc}"
    try:
        return type(exc)(message)
    except Exception:  # a class with another constructor (NumPy's UFuncTypeError)
        return (ValueError if isinstance(exc, ValueError) else TypeError)(message)


@cython.final
@cython.cclass
class _ShapeOnly:
    """Stands in for an argument whose values the derivative rule never reads."""

    shape = cython.declare(object, visibility="public")

    def __init__(self, shape):
        self.shape = shape

    @property
    def ndim(self):
        return len(self.shape)


@cython.cfunc
def _shape_only(shape) -> _ShapeOnly:
    s: _ShapeOnly = _ShapeOnly.__new__(_ShapeOnly)  # compiled: no __init__ call
    s.shape = shape
    return s


# ---------------------------------------------------------------- backward sweep --


@cython.final
@cython.cclass
class OuterGrad:
    """A linear layer's weight gradient W̄ = z̄ᵀ x kept as its two factors.

    With a small batch, z̄ (N, M) and x (N, D) are far smaller than W̄ (M, D): a
    per-example step would spend most of its backward writing W̄ and most of its update
    reading it back. So a first-order backward leaves this in the leaf's ``.grad`` slot;
    ``SGD.step`` applies it in one pass over W (``sgd_outer_update``), and anything else
    that reads ``.grad`` gets the array, computed once (``array()``, then stored).
    The factors are private copies, so later writes to x cannot change the gradient.
    """

    dz = cython.declare(object, visibility="public")
    x = cython.declare(object, visibility="public")

    def __init__(self, dz, x):
        self.dz = dz
        self.x = x

    @property
    def shape(self):
        return (self.dz.shape[1], self.x.shape[1])

    @property
    def dtype(self):
        return self.dz.dtype

    def array(self):
        return kernels().outer_grad(self.dz, self.x)


def leaf_grad(node):
    """A leaf node's accumulated gradient as an array (or None), computing a factored one."""
    g = node.grad
    if type(g) is OuterGrad:
        g = node.grad = g.array()
    return g


@cython.cfunc
def _add_signals(old, new):
    """Fan-out: v̄ = Σ of the contributions (factored ones computed first)."""
    if type(old) is OuterGrad:
        old = old.array()
    if type(new) is OuterGrad:
        new = new.array()
    return old + new


class GraphFreedError(RuntimeError):
    pass


def _needed_nodes(roots, targets):
    """The nodes on some path from a root to a target (only those get error signals)."""
    seen = set(roots)
    stack = list(roots)
    while stack:
        for _, parent in stack.pop().parents or ():
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    needed = set(targets)
    for node in sorted(seen, key=lambda n: n.seq):
        if node.parents and any(p in needed for _, p in node.parents):
            needed.add(node)
    return needed


@cython.locals(node=Node, parent=Node, prim=Primitive, grads=dict, heap=list, handed_out=set,
               results=dict, check_writes=cython.bint, k=cython.Py_ssize_t)
def run_backward(roots, seeds, retain_graph=False, create_graph=False, targets=None, defer=True):
    """The lecture's backward pass from ``roots`` seeded with ``seeds``.

    Pops nodes in decreasing recording order (children before parents) and computes
    v̄ᵢ = Σⱼ v̄ⱼ ∂vⱼ/∂vᵢ: each node's rules send its error signal to its parents, where
    the contributions of a fan-out add up. Without ``targets``, leaves accumulate their
    error signal into ``.grad``. With ``targets`` (nodes), nothing is accumulated: their
    error signals are returned. With ``create_graph`` the rules run on tensors and are
    recorded, so the result can be differentiated again; then only nodes between the
    roots and the targets are visited (a first-order sweep skips that pruning: it costs
    a pass over the graph and saves only rules on arrays, which record nothing).
    With ``defer``, a first-order sweep that accumulates may leave a leaf's error signal
    factored (an OuterGrad) where a joint rule offers that (linear's weight).
    """
    if _tracer is not None:
        return _tracer.backward(roots, seeds, retain_graph, create_graph, targets)
    needed = _needed_nodes(roots, targets) if create_graph and targets is not None else None
    grads = {}
    heap = []  # the nodes waiting for their error signal, highest recording number first
    for node, seed in zip(roots, seeds):
        old = grads.get(node)
        if old is None:
            grads[node] = seed
            _heap_push(heap, node)
        else:
            grads[node] = old + seed
    handed_out = set()  # ids of arrays given to a leaf this sweep (never alias two .grads)
    check_writes = _marked_writes[0] > 0
    anomaly = _anomaly  # detect_anomaly()'s checker, or None
    results = None if targets is None else dict.fromkeys(targets)
    defer = defer and results is None and not create_graph and anomaly is None
    while heap:
        node = _heap_pop(heap)
        g = grads.pop(node)
        prim = node.prim
        if results is not None and node in results:
            results[node] = g
        if prim is None:  # a leaf: v̄ is complete
            if results is None:
                _accumulate_leaf(node, g, handed_out)
            continue
        parents = node.parents
        if parents is None:
            _raise_freed(prim)
        if node.saved is not None:
            node.saved.check(node)
        if check_writes and prim.saves_args:
            _check_written(node)
        if create_graph:  # the rules on the saved tensors, recorded
            args = node.args
            ans = prim(*args, **node.kwargs) if prim.saves_ans else None
        else:  # the rules on arrays: plain NumPy
            args, ans = node.raw, node.ans
        kwargs, vjps = node.kwargs, prim.vjps
        signals = None
        if prim.joint_vjp is not None and not create_graph and not kwargs:
            signals = prim.joint_vjp(parents, g, ans, defer, *args)
        k = -1
        for argnum, parent in parents:
            k += 1
            if needed is not None and parent not in needed:
                continue
            if signals is not None:
                pg = signals[k]
            elif kwargs:
                pg = vjps[argnum](g, ans, *args, **kwargs)
            else:
                pg = vjps[argnum](g, ans, *args)
            if anomaly is not None:
                anomaly.backward(node, argnum, pg)
            if parent.prim is None and results is None:
                # A leaf adds each contribution to .grad as it arrives (the same sum, and
                # no wait in the heap for the rest of the sweep).
                _accumulate_leaf(parent, pg, handed_out)
                continue
            old = grads.get(parent)
            if old is None:
                grads[parent] = pg
                _heap_push(heap, parent)
            elif type(old) is np.ndarray and type(pg) is np.ndarray:
                grads[parent] = old + pg  # fan-out: the multivariate chain rule sums
            else:
                grads[parent] = _add_signals(old, pg)
        if not retain_graph:
            node.release()
    return None if results is None else [results[t] for t in targets]


# The heap of waiting nodes, ordered by recording number (children before parents).
# Compiled, C comparisons of ``seq``; no (key, node) tuples.
@cython.cfunc
@cython.locals(heap=list, node=Node, parent_node=Node, i=cython.Py_ssize_t,
               up=cython.Py_ssize_t, seq=cython.Py_ssize_t)
def _heap_push(heap, node):
    heap.append(node)
    i = len(heap) - 1
    seq = node.seq
    while i > 0:
        up = (i - 1) >> 1
        parent_node = heap[up]
        if parent_node.seq >= seq:
            break
        heap[i] = parent_node
        i = up
    heap[i] = node


@cython.cfunc
@cython.locals(heap=list, top=Node, last=Node, child=Node, i=cython.Py_ssize_t,
               c=cython.Py_ssize_t, n=cython.Py_ssize_t, seq=cython.Py_ssize_t)
def _heap_pop(heap):
    top = heap[0]
    last = heap.pop()
    n = len(heap)
    if n == 0:
        return top
    seq = last.seq
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and cython.cast(Node, heap[c + 1]).seq > cython.cast(Node, heap[c]).seq:
            c += 1
        child = heap[c]
        if child.seq <= seq:
            break
        heap[i] = child
        i = c
    heap[i] = last
    return top


def _raise_freed(prim):
    raise GraphFreedError(
        f"trying to run backward through '{prim.name}' a second time, but its saved "
        "buffers were already freed after the first backward; pass retain_graph=True "
        "to the first backward() to keep them"
    )


_marked_writes = [0]  # in-place writes into saved tensors so far (checks are skipped until one)


def _check_written(node):
    for a in node.args:
        if isinstance(a, Tensor) and a._written_at > node.seq:
            raise RuntimeError(
                f"a tensor of shape {a.shape} saved by '{node.prim.name}' for the backward pass "
                "was modified in place (an optimizer step?) after the graph was recorded; "
                "recompute the forward pass before calling backward()"
            )


@cython.ccall
@cython.locals(t=_TensorFields)
def stored_grad(tensor):
    """A tensor's gradient as stored, unconverted: a leaf's accumulated one (maybe an
    OuterGrad), or what was assigned to a computed tensor's ``.grad``."""
    t = tensor
    node = t._node
    return node.grad if node is not None and cython.cast(Node, node).prim is None else t._grad


@cython.ccall
@cython.locals(index=list, arrays=list, grads=list, t=_TensorFields, og=OuterGrad,
               i=cython.Py_ssize_t)
def update_arguments(params):
    """For an optimizer step in one kernel call: (indices, arrays, gradients) of the
    tensors in ``params`` that have a gradient, a factored one as its (dz, x) pair. None
    when a parameter is not a Tensor or a live graph saved it (the per-parameter path)."""
    index, arrays, grads = [], [], []
    i = -1
    for p in params:
        i += 1
        if type(p) is not Tensor:
            return None
        t = cython.cast(_TensorFields, p)
        if t._saves:
            return None
        dW = stored_grad(t)
        if dW is None:
            continue
        if type(dW) is OuterGrad:
            og = cython.cast(OuterGrad, dW)
            dW = (og.dz, og.x)
        index.append(i)
        arrays.append(t._data)
        grads.append(dW)
    return index, arrays, grads


@cython.cfunc
@cython.locals(node=Node, handed_out=set)
def _accumulate_leaf(node, g, handed_out):
    if type(g) is OuterGrad:  # factored (private copies): kept so until read
        node.grad = g if node.grad is None else _add_signals(node.grad, g)
        return
    if isinstance(g, Tensor):
        g = g._data
    if type(node.grad) is OuterGrad:
        node.grad = node.grad.array()
    if type(g) is not np.ndarray or id(g) in handed_out:
        g = np.array(g)  # own it: two leaves must never share one .grad array
    if g.dtype.kind == "c":  # a complex constant met the graph; its rules assume real values
        raise TypeError(
            f"the error signal of a real tensor of shape {g.shape} came out complex: a complex "
            "value entered the computation, and fastgrad does not differentiate complex numbers"
        )
    if node.grad is None:
        handed_out.add(id(g))
        node.grad = g
    else:
        total = node.grad + g
        if type(total) is not np.ndarray:  # 0-d + 0-d gives a NumPy scalar: keep an array
            total = np.asarray(total)
        handed_out.add(id(total))
        node.grad = total


from . import _ops  # noqa: E402,F401  (attaches the operators to Tensor)
