"""The tape: nodes, primitives, recording, and the backward sweep.

This module knows nothing about derivatives and nothing about the faces above it
(``fastgrad.Tensor``, ``fastgrad.numpy``, nn): it records and it sweeps.

Recording. A primitive called on tensors (``_apply``) computes its value on the arrays
inside them and, if some input needs a gradient, records one ``Node``: the inputs' nodes
(its parents in the computation graph) and what its local derivative rules will read.
Nodes are numbered as they are recorded, so the numbering is a topological order
(parents before children).

Sweeping. ``run_backward`` is the lecture's backward pass: seed the output's error
signal, then visit the nodes that lead to it in decreasing recording number (every
node after all its children), each turning its error signal v̄ into signals for its
parents with its local rules, v̄ᵢ = Σ_{j ∈ Ch(i)} v̄ⱼ ∂vⱼ/∂vᵢ; where a value fans out,
the contributions add. A loop over a heap, never recursion: graphs of any depth work.

Data a live graph saved is guarded (``_saved``); a linear layer's weight gradient may be
left factored (``_factored``). ``fastgrad.compile`` watches through one hook, the
module global ``_tracer`` (see ``fastgrad._compiler.tracer``).

setup.py compiles this file with Cython (pure-Python mode: the ``cython`` decorators and
declarations below are hints, and no-ops when the file runs as plain Python). Compiled,
``Node``, ``Primitive`` and ``TensorBase`` are extension types with C fields and the hot
loops get typed locals.
"""

import threading

import numpy as np

from ._factored import OuterGrad, add_signals
from ._saved import Saved, clock, marked_writes

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

__all__ = ["TensorBase", "Node", "Primitive", "no_grad", "enable_grad", "is_grad_enabled",
           "run_backward", "GraphFreedError"]


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
# fastgrad.compile's tracer while it traces a function, else None: it records each
# primitive call, backward sweep, optimizer update and escape of a traced value (one
# global read on each of those paths). Its interface: fastgrad._compiler.tracer.Tracer.
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


# ------------------------------------------------------------------------- nodes --


@cython.final
@cython.cclass
class Node:
    """One vertex vᵢ of the computation graph.

    ``parents`` are (argument position, parent node) pairs for the inputs that need an
    error signal; ``raw`` are the inputs as arrays and ``args`` as given (tensors), which
    the derivative rules read; ``seq`` is the recording order; ``shape`` the output's;
    ``nargs`` the number of arguments.
    A leaf node (``prim`` is None) stands for a tensor that requires grad and holds its
    accumulated ``grad``. After a backward without ``retain_graph`` a node is ``freed``:
    its buffers are gone, its place in the graph (prim, parents, shape) stays.
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
    shape = cython.declare(object, visibility="public")
    seq = cython.declare(cython.Py_ssize_t, visibility="public")
    nargs = cython.declare(cython.Py_ssize_t, visibility="public")
    freed = cython.declare(cython.bint, visibility="public")
    grad = cython.declare(object, visibility="public")
    # ``site`` (file, line, function) is set only under detect_anomaly(), never read otherwise.
    site = cython.declare(object, visibility="public")

    # Made by _new_node (compiled: a direct allocation, no call protocol); no __init__.

    @cython.ccall
    def release(self):
        """Drop what the backward needed: the intermediates die with their last user."""
        self._unprotect()
        self.args = self.raw = self.kwargs = self.ans = self.saved = None
        self.freed = True

    @cython.ccall
    def _unprotect(self):
        """Give back the saved-data protection this node holds (counts, frozen arrays)."""
        args = self.args
        if args is not None and cython.cast(Primitive, self.prim).saves_args:
            for a in args:
                if isinstance(a, TensorBase):
                    cython.cast(TensorBase, a)._saves -= 1
        if self.saved is not None:
            self.saved.release()

    def name(self):
        """The primitive's name (PyTorch's ``grad_fn.name()``); leaves are 'leaf'."""
        return "leaf" if self.prim is None else self.prim.name

    def __repr__(self):
        return f"<{self.name()} node {self.seq}>"

    def __del__(self):  # a graph dropped without a backward unprotects what it saved
        self._unprotect()


def leaf_node(shape=()):
    """The node of a tensor that requires grad: no rule, no parents; it holds ``.grad``."""
    return _new_node(None, (), None, None, None, None, None, shape, 0)


@cython.cfunc
def _new_node(prim, parents, args, raw, kwargs, ans, saved, shape, nargs: cython.Py_ssize_t) -> Node:
    # Compiled, a direct allocation of the C struct.
    node: Node = Node.__new__(Node)
    node.prim = prim
    node.parents = parents
    node.args = args
    node.raw = raw
    node.kwargs = kwargs
    node.ans = ans
    node.saved = saved
    node.shape = shape
    node.seq = next(clock)
    node.nargs = nargs
    node.freed = False
    node.grad = None
    return node


# ------------------------------------------------------------------ tensor fields --


@cython.cclass
class TensorBase:
    """The fields every tensor has; ``fastgrad.Tensor`` (the face) subclasses it.

    Compiled, an extension type: the tape reads them as C fields. ``_saves`` counts the
    live nodes that saved this tensor's data (``_saved``); ``_written_at`` is the clock
    time of its last in-place write under inplace_update.
    """

    _data = cython.declare(object, visibility="public")
    _node = cython.declare(object, visibility="public")
    _grad = cython.declare(object, visibility="public")
    _saves = cython.declare(cython.Py_ssize_t, visibility="public")
    _written_at = cython.declare(cython.Py_ssize_t, visibility="public")
    if cython.compiled:  # (uncompiled, a plain class has one already)
        __weakref__ = cython.declare(object)

    # autograd's Box interface (fastgrad.extend.Box is this class): the value inside, and
    # Box.register for a user's own value types (a subclass boxes them when traced).
    @property
    def _value(self):
        return self._data

    @classmethod
    def register(cls, value_type):
        box_type_mappings[value_type] = cls
        box_type_mappings[cls] = cls


# value type -> the TensorBase subclass its traced values are (TensorBase.register)
box_type_mappings = {}


_new_fields = TensorBase.__new__  # the extension type's allocator, bound once
# The class of the tensors results are made of: fastgrad.Tensor, set by fastgrad._tensor
# when it is defined (the face registers itself; the tape does not import it).
_tensor_type = TensorBase


def set_tensor_type(cls):
    global _tensor_type
    _tensor_type = cls


@cython.ccall
@cython.locals(t=TensorBase)
def wrap(cls, data, node):
    """A new tensor of class ``cls`` around ``data``: no copy, no checks (results)."""
    t = _new_fields(cls)  # no __init__, no method lookup per call
    t._data = data
    t._node = node
    t._grad = None
    t._saves = 0
    t._written_at = -1
    return t


def is_tensor(x) -> bool:
    return isinstance(x, TensorBase)


# -------------------------------------------------------------------- primitives --


@cython.cclass
class Primitive:
    """A function with local derivative rules, recorded when a tensor input needs grad.

    ``vjps[i](g, ans, *args, **kwargs)`` gives argument i's error signal from the
    output's, ``g``. Rules are written with primitives, so they can themselves be
    recorded (grad of grad). ``saves_args`` / ``saves_ans`` say what the rules read, so
    only that data is kept alive and protected. The rest of a primitive's entry (its
    formula, kernels, compile lowering, test samples) is set by ``fastgrad._registry``.

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
    # form (an OuterGrad), which only a leaf's .grad ever holds.
    joint_vjp = cython.declare(object, visibility="public")
    saves_args = cython.declare(cython.bint, visibility="public")
    saves_ans = cython.declare(cython.bint, visibility="public")
    # The registry entry (fastgrad._registry): None on a primitive nobody registered.
    formula = cython.declare(object, visibility="public")
    lowering = cython.declare(object, visibility="public")
    kernels = cython.declare(object, visibility="public")
    samples = cython.declare(object, visibility="public")
    order = cython.declare(cython.Py_ssize_t, visibility="public")
    if cython.compiled:  # (uncompiled, a plain class has both already)
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
        self.formula = self.lowering = self.kernels = self.samples = None
        self.order = 0

    def defvjp(self, *rules, saves_args=True, saves_ans=False, argnums=None):
        for i, rule in zip(argnums or range(len(rules)), rules):
            if rule is not None:
                self.vjps[i] = rule
        self.saves_args = saves_args
        self.saves_ans = saves_ans
        return self

    def __repr__(self):
        return f"<fastgrad primitive {self.name}>"

    def __getattr__(self, name):
        # Attributes of the function it stands for (np.add.reduce, np.maximum.accumulate).
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.fun, name)

    def __call__(self, *args, **kwargs):
        for a in args:
            if isinstance(a, TensorBase):
                return _apply(self, args, kwargs)
        if kwargs:
            return self.fun(*args, **kwargs)
        return self.fun(*args)  # plain arrays: plain NumPy, nothing recorded


# Argument types that are never array containers of another library (checked first).
_plain_types = frozenset([float, int, bool, complex, str, type(None), tuple, list, dict, slice,
                          type(Ellipsis), np.float64, np.float32, np.int64, np.int32, np.bool_,
                          np.complex128, np.dtype])
_ufunc_overriders = {}  # type -> whether it takes NumPy's ufuncs over (xarray.DataArray)


def overrides_ufuncs(x):
    """True for a value of another library that overrides NumPy's ufuncs (a DataArray)."""
    cls = type(x)
    found = _ufunc_overriders.get(cls)
    if found is None:
        hook = getattr(cls, "__array_ufunc__", None)
        found = _ufunc_overriders[cls] = (
            hook is not None and hook is not np.ndarray.__array_ufunc__
            and not issubclass(cls, (TensorBase, np.ndarray, np.generic)))
    return found


def _shapes(args):
    return ", ".join(str(np.shape(a._data if isinstance(a, TensorBase) else a)) for a in args)


@cython.ccall
@cython.locals(prim=Primitive, args=tuple, raw=list, parents=list, i=cython.Py_ssize_t, n=cython.Py_ssize_t,
               constants=cython.bint, node=Node, t=TensorBase)
def _apply(prim, args, kwargs):
    """Call ``prim`` on tensors: its value on their arrays, and a node if one needs grad."""
    if _tracer is not None:
        return _tracer.apply(prim, args, kwargs)  # runs this function eagerly and records it
    # One pass over the arguments: their data, and which need an error signal.
    raw = []
    parents = None
    constants = False
    vjps = prim.vjps
    i = 0
    for a in args:
        if isinstance(a, TensorBase):
            t = cython.cast(TensorBase, a)
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
            elif type(a) not in _plain_types and overrides_ufuncs(a):
                # An array container of another library (xarray.DataArray): NumPy's
                # protocols give it the call, and it hands its own data back to us.
                return prim.fun(*args, **kwargs) if kwargs else prim.fun(*args)
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
        return wrap(_tensor_type, ans, None)
    try:
        shape = ans.shape
    except AttributeError:
        shape = np.shape(ans)
    if prim.saves_args:
        for a in args:
            if isinstance(a, TensorBase):
                cython.cast(TensorBase, a)._saves += 1  # released by the node
        # Plain array constants have no Tensor.data to guard: freeze them outright.
        saved = Saved([a for a in args if type(a) is np.ndarray]) if constants else None
        node = _new_node(prim, parents, args, raw, kwargs, ans if prim.saves_ans else None,
                         saved, shape, i)
    else:
        # The rules read only the traced arguments' shapes (to undo broadcasting); other
        # arguments (an index array, an axis) are parameters of the op, kept as given.
        # ``args`` stay for a recorded backward, which recomputes ``ans`` from them.
        shapes = []
        n = i
        i = 0
        for a in args:
            r = raw[i]
            if isinstance(a, TensorBase) and (type(r) is np.ndarray or isinstance(r, np.generic)):
                shapes.append(_shape_only(r.shape))
            else:
                shapes.append(r)
            i += 1
        node = _new_node(prim, parents, args, shapes, kwargs, ans if prim.saves_ans else None,
                         None, shape, n)
    if _anomaly is not None:
        _anomaly.recorded(node)  # the user's file and line, for the backward's report
    return wrap(_tensor_type, ans, node)


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


class GraphFreedError(RuntimeError):
    pass


@cython.final
@cython.cclass
class _Sweep:
    """The state of one backward sweep: the waiting nodes and their error signals so far."""

    heap = cython.declare(list, visibility="public")  # waiting nodes, highest number first
    grads = cython.declare(dict, visibility="public")  # node -> its error signal so far
    handed_out = cython.declare(set)  # ids of arrays given to a leaf (never alias two .grads)
    results_ = cython.declare(dict)  # targets -> their error signal (None: accumulate)
    targets = cython.declare(object)
    needed = cython.declare(object)  # nodes on a path to a target (recorded sweeps only)
    create_graph = cython.declare(cython.bint)
    defer = cython.declare(cython.bint)
    check_writes = cython.declare(cython.bint)
    anomaly = cython.declare(object)

    @cython.locals(node=Node)
    def __init__(self, roots, seeds, create_graph, targets, defer):
        self.heap = []
        self.grads = {}
        self.handed_out = set()
        self.targets = targets
        self.results_ = None if targets is None else dict.fromkeys(targets)
        self.create_graph = create_graph
        # A first-order sweep skips the pruning: it costs a pass over the graph and saves
        # only rules on arrays, which record nothing.
        self.needed = _needed_nodes(roots, targets) if create_graph and targets is not None else None
        self.check_writes = marked_writes[0] > 0
        self.anomaly = _anomaly  # detect_anomaly()'s checker, or None
        self.defer = defer and targets is None and not create_graph and _anomaly is None
        for node, seed in zip(roots, seeds):
            self.send(node, seed)

    @cython.ccall
    def send(self, node, g):
        """Add ``g`` to ``node``'s error signal (a leaf takes it at once: the same sum,
        and no wait in the heap for the rest of the sweep)."""
        if cython.cast(Node, node).prim is None and self.results_ is None:
            _accumulate_leaf(node, g, self.handed_out)
            return
        old = self.grads.get(node)
        if old is None:
            self.grads[node] = g
            _heap_push(self.heap, node)
        elif type(old) is np.ndarray and type(g) is np.ndarray:
            self.grads[node] = old + g  # fan-out: the multivariate chain rule sums
        else:
            self.grads[node] = add_signals(old, g)

    @cython.ccall
    def reached_leaf(self, node, g):
        if self.results_ is None:
            _accumulate_leaf(node, g, self.handed_out)
        elif node in self.results_:
            self.results_[node] = g

    @cython.ccall
    @cython.locals(node=Node, prim=Primitive)
    def rule_inputs(self, node):
        """(args, ans) for the node's rules, after checking that its saved data is intact."""
        prim = node.prim
        if node.freed:
            _raise_freed(prim)
        if node.saved is not None:
            node.saved.check(prim.name)
        if self.check_writes and prim.saves_args:
            _check_written(node)
        if self.create_graph:  # the rules on the saved tensors, recorded
            return node.args, (prim(*node.args, **node.kwargs) if prim.saves_ans else None)
        return node.raw, node.ans  # the rules on arrays: plain NumPy

    @cython.ccall
    @cython.locals(node=Node, prim=Primitive, signals=list)
    def local_rules(self, node, g, args, ans):
        """The node's error signal sent through each parent's local rule: a list in the
        order of ``node.parents`` (None for a parent that needs none)."""
        prim = node.prim
        parents = node.parents
        kwargs = node.kwargs
        if self.results_ is not None and node in self.results_:
            self.results_[node] = g
        if prim.joint_vjp is not None and not self.create_graph and not kwargs:
            signals = prim.joint_vjp(parents, g, ans, self.defer, *args)
            if signals is not None:
                if self.anomaly is not None:
                    self._check(node, signals)
                return signals
        vjps = prim.vjps
        signals = []
        for argnum, parent in parents:
            if self.needed is not None and parent not in self.needed:
                signals.append(None)
            elif kwargs:
                signals.append(vjps[argnum](g, ans, *args, **kwargs))
            else:
                signals.append(vjps[argnum](g, ans, *args))
        if self.anomaly is not None:
            self._check(node, signals)
        return signals

    def _check(self, node, signals):
        for (argnum, _), pg in zip(node.parents, signals):
            if pg is not None:
                self.anomaly.backward(node, argnum, pg)

    def results(self):
        return None if self.results_ is None else [self.results_[t] for t in self.targets]


def run_backward(roots, seeds, retain_graph=False, create_graph=False, targets=None, defer=True):
    """The lecture's backward pass from ``roots`` seeded with ``seeds``.

    Without ``targets``, leaves accumulate their error signal into ``.grad``; with
    ``targets`` (nodes) nothing is accumulated and their error signals are returned.
    With ``create_graph`` the rules run on tensors and are recorded, so the result can be
    differentiated again. With ``defer``, a first-order sweep that accumulates may leave
    a leaf's error signal factored (an OuterGrad) where a joint rule offers that.
    """
    if _tracer is not None:
        return _tracer.backward(roots, seeds, retain_graph, create_graph, targets)
    return _sweep(_Sweep(roots, seeds, create_graph, targets, defer), retain_graph)


@cython.cfunc
@cython.locals(sweep=_Sweep, node=Node, k=cython.Py_ssize_t, signals=list)
def _sweep(sweep, retain_graph):
    while sweep.heap:
        node = _heap_pop(sweep.heap)  # the highest number waiting: all its children are done
        g = sweep.grads.pop(node)  # v̄ of this node, complete
        if node.prim is None:  # a leaf: v̄ goes to .grad
            sweep.reached_leaf(node, g)
            continue
        args, ans = sweep.rule_inputs(node)  # what the rules read (recorded: tensors)
        signals = sweep.local_rules(node, g, args, ans)  # v̄ ∂v/∂pᵢ for each parent pᵢ
        k = 0
        for _, parent in node.parents:
            if signals[k] is not None:
                sweep.send(parent, signals[k])  # fan-out: contributions to a parent add up
            k += 1
        if not retain_graph:
            node.release()
    return sweep.results()


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


def _check_written(node):
    for a in node.args:
        if isinstance(a, TensorBase) and a._written_at > node.seq:
            raise RuntimeError(
                f"a tensor of shape {np.shape(a._data)} saved by '{node.prim.name}' for the "
                "backward pass was modified in place (an optimizer step?) after the graph was "
                "recorded; recompute the forward pass before calling backward()"
            )


@cython.cfunc
@cython.locals(node=Node, handed_out=set)
def _accumulate_leaf(node, g, handed_out):
    if type(g) is OuterGrad:  # factored (private copies): kept so until read
        node.grad = g if node.grad is None else add_signals(node.grad, g)
        return
    if isinstance(g, TensorBase):
        g = g._data
    if type(node.grad) is OuterGrad:
        node.grad = node.grad.array()
    if type(g) is not np.ndarray or id(g) in handed_out:
        g = np.array(g)  # own it: two leaves must never share one .grad array
    if g.dtype.kind == "c":
        # Complex intermediates (autograd's convention, fastgrad._functional): a leaf's
        # data is real, and a real perturbation moves only the real part of the signal.
        g = np.ascontiguousarray(g.real)
    if node.grad is None:
        handed_out.add(id(g))
        node.grad = g
    else:
        total = node.grad + g
        if type(total) is not np.ndarray:  # 0-d + 0-d gives a NumPy scalar: keep an array
            total = np.asarray(total)
        handed_out.add(id(total))
        node.grad = total


# ----------------------------------------------- the optimizer's one-call gather --


@cython.ccall
@cython.locals(t=TensorBase)
def stored_grad(tensor):
    """A tensor's gradient as stored, unconverted: a leaf's accumulated one (maybe an
    OuterGrad), or what was assigned to a computed tensor's ``.grad``."""
    t = tensor
    node = t._node
    return node.grad if node is not None and cython.cast(Node, node).prim is None else t._grad


@cython.ccall
@cython.locals(index=list, arrays=list, grads=list, t=TensorBase, i=cython.Py_ssize_t)
def update_arguments(params):
    """For an optimizer step in one kernel call: (indices, arrays, gradients) of the
    tensors in ``params`` that have a gradient, a factored one as its (dz, x) pair. None
    when a parameter is not a tensor or a live graph saved it (the per-parameter path)."""
    index, arrays, grads = [], [], []
    i = -1
    for p in params:
        i += 1
        if type(p) is not _tensor_type:
            return None
        t = cython.cast(TensorBase, p)
        if t._saves:
            return None
        dW = stored_grad(t)
        if dW is None:
            continue
        if type(dW) is OuterGrad:
            dW = (dW.dz, dW.x)
        index.append(i)
        arrays.append(t._data)
        grads.append(dW)
    return index, arrays, grads
