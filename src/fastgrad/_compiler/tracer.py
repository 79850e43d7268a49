"""The tracer: watches one eager call of a function and records it as a program.

``fastgrad.compile`` runs the function once eagerly with a ``Tracer`` installed as the
tape's hook (``fastgrad._tape._tracer``). The tape hands it every primitive call and
backward sweep; the Tensor face, the optimizers and the functional transforms call its
hooks (``escape``, ``data``, ``grad_read``, ``grad_cleared``, ``optimizer_step``,
``start``) when a traced value would leave the tape or a parameter is updated. Each
primitive is lowered by the ``lowering`` of its registry entry, found by the object; a
primitive without one is refused, naming it.
"""

import contextlib
import threading

import numpy as np

from .. import _tape
from .._factored import leaf_grad
from .._opcodes import ADAM, ADD, CAST, COPY, HOST, SGD, TRANSPOSE
from .._registry import NotCompiled, TraceBody
from .._tape import TensorBase
from .ir import FLOATS, FULL, Ins, Slot, TracingError
from .traced import TracedArray, array_ufunc, plain, underived

__all__ = ["Tracer", "tracing", "TracingError"]

_lock = threading.Lock()


@contextlib.contextmanager
def tracing(tracer):
    """Install ``tracer`` as the tape's hook for the duration of one trace."""
    if not _lock.acquire(blocking=False):
        raise TracingError("fastgrad.compile: another function is being traced right now")
    _tape._tracer = tracer
    try:
        yield tracer
    finally:
        _tape._tracer = None
        _lock.release()




class Record:
    """A forward primitive call, kept for lowering the backward sweep."""

    __slots__ = ("prim", "out", "ins", "requires", "info")

    def __init__(self, prim, out, ins, requires, info):
        self.prim, self.out, self.ins, self.requires, self.info = prim, out, ins, requires, info


class Tracer:
    """Watches one call of the function being compiled and builds its program."""

    def __init__(self, fn_name):
        self.fn_name = fn_name
        self.thread = threading.get_ident()
        self.slots = []
        self.instrs = []
        self.records = []
        self.by_tensor = {}  # id(tensor) -> slot; `keep` holds the objects so ids stay valid
        self.by_array = {}
        self.keep = []
        self.leaf_grad = {}  # id(leaf tensor) -> (tensor, slot holding its .grad)
        self.cleared = set()  # ids of tensors whose .grad the function set to None
        self.assume_none = {}  # id(tensor) -> tensor: .grad must be None when a call starts
        self.leaves_seen = {}  # id(tensor) -> tensor: leaf tensors met as arguments
        self.preludes = []  # callables run before every replay (Adam's step counter)
        self.producer = {}  # slot -> Record
        self.consts = {}
        self.const_slots = set()  # slots holding constants (not optimizer state)
        self.int_twins = {}  # id(integer input tensor) -> its float64 twin tensor

    # -- slots --

    def new(self, shape, dtype, kind="temp", ref=None, base=None):
        s = Slot(len(self.slots), shape, dtype, kind, ref, base)
        self.slots.append(s)
        return s

    def forget(self):
        """Drop the objects kept alive for the trace (their ids keyed the maps below).

        Once planned, nothing looks a tensor up again; keeping them would keep the traced
        graph alive, and with it the parameters' write protection (``Tensor._saves``).
        """
        self.keep.clear()
        self.by_tensor.clear()
        self.by_array.clear()
        self.leaves_seen.clear()
        self.int_twins.clear()

    def _register(self, obj, slot):
        self.keep.append(obj)
        if isinstance(obj, TensorBase):
            self.by_tensor[id(obj)] = slot
        else:
            self.by_array[id(obj)] = slot

    def const(self, value, dtype):
        """A constant (a Python number or an array not passed in): baked into the plan."""
        arr = np.array(value, dtype=dtype, order="C")
        key = (arr.dtype, arr.shape, arr.tobytes()) if arr.size <= 16 else None
        if key is not None and key in self.consts:
            return self.consts[key]
        s = self.new(arr.shape, arr.dtype, "array", arr)
        self.const_slots.add(s)
        if key is not None:
            self.consts[key] = s
        return s

    def slot_of(self, a, dtype=None):
        """The slot holding argument ``a`` of a primitive call."""
        if isinstance(a, TensorBase):
            s = self.by_tensor.get(id(a))
            if s is not None:
                return s
            data = a._data
            node = a._node
            if node is not None and node.prim is not None:
                raise TracingError(
                    f"fastgrad.compile: '{self.fn_name}' uses a tensor of shape {a.shape} that was "
                    "computed outside the function and still has a graph; pass it as an argument "
                    "or .detach() it"
                )
            base = self.by_array.get(id(data))
            if base is not None:  # a new tensor over a known array (detach(), grad's input)
                s = self.new(base.shape, base.dtype, "alias", base=base)
            else:  # a tensor from outside (a parameter): its data are read at every call
                if not isinstance(data, np.ndarray) or data.dtype not in FLOATS:
                    data = a._data = np.asarray(data, dtype=np.float64)
                if not data.flags.c_contiguous:
                    raise TracingError(
                        f"fastgrad.compile: a tensor of shape {data.shape} read by the function "
                        "holds a non-contiguous array; give it contiguous data (np.ascontiguousarray)"
                    )
                s = self.new(data.shape, data.dtype, "state", a)
                self._register(data, s)
            if node is not None:
                s.leaf = a
                self.leaves_seen[id(a)] = a
            self._register(a, s)
            return s
        if isinstance(a, np.ndarray):
            s = self.by_array.get(id(a))
            if s is not None:
                return s
            if type(a) is TracedArray:  # made from a traced value outside the hooks
                raise underived()
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.dtype not in FLOATS:
                a = a.astype(dtype or np.float64)
            return self.const(a, a.dtype)
        if isinstance(a, (bool, int, float, np.number, np.bool_)):
            return self.const(a, dtype or np.float64)
        raise TracingError(
            f"fastgrad.compile: an argument of type {type(a).__name__} cannot be an operand"
        )

    def operand(self, slot, dtype):
        """``slot`` readable by an instruction of ``dtype``: materialized, cast if needed."""
        if slot.kind == "lazyT":
            if slot.materialized is None:
                src = self.operand(slot.base, slot.base.dtype)
                m = self.new(slot.shape, slot.dtype)
                self.emit(Ins(TRANSPOSE, m, (src,), R=src.shape[0], C=src.shape[1]))
                slot.materialized = m
            slot = slot.materialized
        if slot.kind == "alias" and slot.storage().kind == "lazyT":
            base = self.operand(slot.storage(), slot.dtype)
            s = self.new(slot.shape, slot.dtype, "alias", base=base)
            slot = s
        if slot.dtype != dtype:
            c = self.new(slot.shape, dtype)
            self.emit(Ins(CAST, c, (slot,), R=1, C=slot.size))
            return c
        return slot

    def emit(self, ins):
        self.instrs.append(ins)
        return ins

    def ew(self, op, out, operands, omode=FULL, R=None, C=None, acc=False, alpha=1.0, p=0.0):
        """Emit out (+)= α f(operands) with operands [(slot, mode), ...] cast to out's dtype."""
        slots = [self.operand(s, out.dtype) for s, _ in operands]
        if R is None:
            R, C = 1, out.size
        return self.emit(Ins(op, out, slots, [m for _, m in operands], omode, acc, R, C,
                             f=[alpha, p]))

    # -- recording the forward --

    def apply(self, prim, args, kwargs):
        if threading.get_ident() != self.thread:  # another thread: not ours to record
            return _untraced(_tape._apply, prim, args, kwargs)
        lowering = prim.lowering
        if type(lowering) is TraceBody:  # a checkpointed block: its body is traced instead
            return lowering.body(*args, **kwargs)
        if lowering is None or type(lowering) is NotCompiled:
            why = (f": {lowering.reason}" if lowering is not None else
                   " (no compile lowering is registered for it: a primitive defined with "
                   "fastgrad.extend, or one fastgrad cannot replay)")
            raise TracingError(
                f"fastgrad.compile: '{self.fn_name}' calls the primitive '{prim.name}', which "
                f"the compiled executor cannot replay{why}; call it outside the compiled "
                "function, or compose it of fastgrad operations"
            )
        if self.int_twins or any(type(a) is TracedArray for a in args):
            # Integer arguments are read as float64 (their twin) except where the lowering
            # takes integers (labels); traced arrays (t.data) go to the eager kernels as
            # plain arrays.
            keep = lowering.integer_args
            args = tuple(self.int_twins.get(id(a), a)
                         if isinstance(a, TensorBase) and i not in keep else a
                         for i, a in enumerate(args))
            eager = tuple(a.view(np.ndarray) if type(a) is TracedArray else a for a in args)
            for a, e in zip(args, eager):
                if e is not a:
                    s = self.by_array.get(id(a))
                    if s is not None:
                        self._register(e, s)
        else:
            eager = args
        out = _untraced(_tape._apply, prim, eager, kwargs)
        ans = out._data
        if isinstance(ans, np.generic):
            ans = out._data = np.asarray(ans)  # a 0-d array: it can live in a buffer
        if not isinstance(ans, np.ndarray) or (ans.dtype not in FLOATS and ans.dtype != np.int64):
            raise TracingError(
                f"fastgrad.compile: '{prim.name}' returned {type(ans).__name__} "
                f"{getattr(ans, 'dtype', '')}, a dtype the replay does not hold (float32, "
                "float64, int64)"
            )
        vjps = prim.vjps
        requires = [] if out._node is None else [
            i for i, a in enumerate(eager) if isinstance(a, TensorBase) and a._node is not None and i in vjps]
        try:
            info = lowering.forward(self, args, kwargs, ans)
        except TracingError as exc:
            raise TracingError(f"{exc} (in '{prim.name}')") from None
        if isinstance(info, Slot):  # an alias or lazy transpose: no instruction
            slot, info = info, None
        else:
            slot, info = info
        self._register(out, slot)
        self._register(ans, slot)
        rec = Record(prim, slot, [self.by_tensor.get(id(a)) if isinstance(a, TensorBase) else None
                                  for a in args], requires, info)
        self.records.append(rec)
        self.producer[slot] = rec
        return out

    # -- recording the backward --

    def backward(self, roots, seeds, retain_graph, create_graph, targets):
        if threading.get_ident() != self.thread:
            return _untraced(_tape.run_backward, roots, seeds, retain_graph, create_graph, targets)
        if create_graph:
            raise TracingError(
                f"fastgrad.compile: '{self.fn_name}' differentiates a derivative (grad of grad, "
                "create_graph); higher-order derivatives are not compiled yet"
            )
        by_node = {id(t._node): self.by_tensor[id(t)] for t in self.keep
                   if isinstance(t, TensorBase) and t._node is not None and id(t) in self.by_tensor}
        root_slots = []
        for r in roots:
            s = by_node.get(id(r))
            if s is None:
                raise TracingError(
                    f"fastgrad.compile: '{self.fn_name}' runs backward() from a tensor computed "
                    "outside the function"
                )
            root_slots.append(s)
        target_slots = None
        if targets is not None:
            target_slots = []
            for t in targets:
                s = by_node.get(id(t))
                if s is None:
                    raise TracingError("fastgrad.compile: a gradient target is not part of the trace")
                target_slots.append(s)
        before = {i: leaf_grad(t._node) for i, t in self.leaves_seen.items()}
        result = _untraced(_tape.run_backward, roots, seeds, retain_graph, create_graph, targets, False)
        grads = {}
        for s, seed in zip(root_slots, seeds):
            if isinstance(seed, TensorBase):
                seed = seed._data
            seed_slot = self.by_array.get(id(seed)) if isinstance(seed, np.ndarray) else None
            if seed_slot is None:
                seed_slot = self.const(np.broadcast_to(np.asarray(seed, dtype=s.dtype), s.shape), s.dtype)
            g, acc = self.grad_into(s, grads)
            self.ew(COPY, g, [(seed_slot, FULL)], acc=acc)
        needed = None
        if target_slots is not None:
            needed = set(target_slots)
            for rec in self.records:
                if any(rec.ins[i] in needed for i in rec.requires):
                    needed.add(rec.out)
        for rec in reversed(self.records):
            g = grads.get(rec.out)
            if g is None:
                continue
            for i in rec.requires:
                src = rec.ins[i]
                if needed is not None and src not in needed:
                    continue
                rec.prim.lowering.backward(self, rec, g, i, grads)
        if targets is not None:
            result = list(result)
            for k, (s, r) in enumerate(zip(target_slots, result)):
                g = grads.get(s)
                if isinstance(r, np.generic):  # a 0-d result as an array, so it has an identity
                    r = result[k] = np.asarray(r)
                if g is not None and isinstance(r, np.ndarray):
                    self._register(r, g)
            return result
        # Leaves accumulate their error signal into .grad, as _accumulate_leaf does.
        for s, g in list(grads.items()):
            t = s.leaf
            if t is None or s in self.producer:
                continue
            node = t._node
            prev = before.get(id(t))
            if prev is None:
                if id(t) not in self.cleared and s.kind in ("state", "alias"):
                    self.assume_none[id(t)] = t
                total = g
            else:
                known = self.by_array.get(id(prev))
                if known is None:
                    known = self.new(np.shape(prev), prev.dtype, "gradin", t)
                total = self.new(s.shape, s.dtype)
                self.ew(ADD, total, [(known, FULL), (g, FULL)])
            self.leaf_grad[id(t)] = (t, total)
            if isinstance(node.grad, np.ndarray):
                self._register(node.grad, total)
        return result

    # -- hooks: the Tensor face, the optimizers and the transforms call these --

    def _mine(self):
        return threading.get_ident() == self.thread

    def traced(self, t):
        """Is tensor ``t`` a value of the trace (not a constant of it)?"""
        return self._mine() and (id(t) in self.by_tensor or id(t._data) in self.by_array
                                 or (t._node is not None and t._node.prim is None))

    def escape(self, tensor, what):
        """``what`` (bool(), float(), np.asarray, ...) needs a traced value: refused."""
        if self.traced(tensor):
            raise TracingError(
                f"fastgrad.compile: {what} on a traced tensor of shape {np.shape(tensor._data)} "
                "needs its value while tracing; a compiled function cannot branch on or leave "
                "the tape with traced values (Python control flow is frozen at trace time). "
                "Compute it with tensor operations: comparisons give masks, fg.where, "
                "fg.maximum and fg.clip replay"
            )

    def compare(self, ufunc, a, b):
        """``a < b`` and its kind with a tensor ``a``: a mask (1 or 0), recorded."""
        if not self._mine():
            return ufunc(a._data, plain(b))
        return array_ufunc(self, ufunc, "__call__", (a, b), {})

    def ufunc(self, ufunc, method, inputs, kwargs):
        """A NumPy ufunc without a derivative (``np.greater``, ``np.sign``, ...) called on
        a tensor: a mask where it is a comparison, else refused if a value is traced."""
        if not self._mine():
            return getattr(ufunc, method)(*plain(inputs), **plain(kwargs))
        return array_ufunc(self, ufunc, method, inputs, kwargs)

    def function(self, func, args, kwargs):
        """A NumPy function without a derivative (``np.argmax``, ``np.nonzero``, ...)
        called on a tensor: refused if it reads a traced value, answered if it only reads
        shapes."""
        if self._mine() and func not in _SHAPE_ONLY and any(
                isinstance(a, TensorBase) and self.traced(a) for a in _leaves(args, kwargs)):
            raise TracingError(
                f"fastgrad.compile: np.{getattr(func, '__name__', func)} on a traced tensor needs "
                "its value while tracing (it would be frozen at trace time); use tensor "
                "operations instead")
        return func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})

    def value(self, tensor):
        """The array of ``tensor`` for the NumPy face's functions (``_ops.value``): a
        TracedArray for a traced one, so that what is computed from it is recorded."""
        return self.data(tensor, tensor._data)

    def data(self, tensor, d):
        """``tensor.data`` while tracing: a view whose shape and dtype work, known to the
        tracer (a primitive reading it reads its buffer), whose NumPy arithmetic is
        recorded or refused (it would be frozen at trace time)."""
        if self._mine():
            s = self.by_tensor.get(id(tensor)) or self.by_array.get(id(tensor._data))
            if s is not None and s.kind not in ("state", "array") and isinstance(d, np.ndarray):
                v = d.view(TracedArray)
                self._register(v, s)  # ...and usable as an operand (integer labels)
                return v
        return d

    def grad_read(self, tensor, g):
        """``tensor.grad`` read while tracing: the array is the slot of its gradient."""
        if g is not None and self._mine() and id(g) not in self.by_array:
            entry = self.leaf_grad.get(id(tensor))
            if entry is not None:
                self._register(g, entry[1])  # the getter cast it to the leaf's dtype
        return g

    def grad_cleared(self, tensor):
        """``tensor.grad = None`` while tracing (zero_grad)."""
        if self._mine():
            self.cleared.add(id(tensor))
            self.leaf_grad.pop(id(tensor), None)
            self.keep.append(tensor)

    def start(self, x):
        """The value a functional transform differentiates from: an integer argument's
        float64 twin."""
        if self._mine() and isinstance(x, TensorBase):
            return self.int_twins.get(id(x), x)
        return x

    def optimizer_step(self, opt, state, W, dW):
        """Record one parameter's update by ``opt`` (already applied eagerly)."""
        if not self._mine():
            return
        from .. import optim

        kind = {optim.SGD: "sgd", optim.Adam: "adam"}.get(type(opt))  # exactly: not subclasses
        if type(opt) is optim.AdamW and opt.weight_decay == 0:
            kind = "adam"  # without its decoupled decay AdamW is Adam
        if kind is None:
            raise TracingError(
                f"fastgrad.compile: '{self.fn_name}' steps the optimizer {type(opt).__name__}, "
                "whose update is not compiled (SGD and Adam are); step it outside the "
                "compiled function"
            )
        sW = self.by_array.get(id(W))
        if sW is None:
            sW = self.new(W.shape, W.dtype, "array", W)
            self._register(W, sW)
        sg = self.by_array.get(id(dW))
        if sg is None:
            raise TracingError(
                f"fastgrad.compile: the optimizer updates a parameter of shape {W.shape} with a "
                "gradient not computed inside the compiled function (call backward() inside it)"
            )
        sg = self.operand(sg, sW.dtype)
        if kind == "sgd":
            vel = state.get("velocity")
            sv = None
            if vel is not None:
                sv = self.new(vel.shape, vel.dtype, "array", vel)
            self.emit(Ins(SGD, sW, (sg, sv), R=1, C=sW.size,
                          f=[1.0, opt.lr, opt.momentum, opt.weight_decay],
                          dyn={1: (opt, "lr", 1.0)}))
            return
        beta1, beta2 = opt.betas
        sm = self.new(W.shape, W.dtype, "array", state["m"])
        sv = self.new(W.shape, W.dtype, "array", state["v"])
        ins = self.emit(Ins(ADAM, sW, (sg, sm, sv), R=1, C=sW.size,
                            f=[1.0, opt.lr, beta1, beta2, opt.eps, 0.0, 0.0, opt.weight_decay]))

        def prelude(ins=ins, state=state, opt=opt):
            state["step"] += 1
            t = state["step"]
            b1, b2 = opt.betas
            return {1: opt.lr, 5: 1.0 / (1.0 - b1**t), 6: 1.0 / (1.0 - b2**t)}

        t = state["step"]
        ins.f[5], ins.f[6] = 1.0 / (1.0 - beta1**t), 1.0 / (1.0 - beta2**t)
        ins.dyn = {"prelude": prelude}

    def host(self, fn, writes, reads=()):
        """An instruction that calls ``fn(arrays)`` in Python at this point of every replay,
        with the arrays of ``writes`` then ``reads`` (it may write the first ones in place):
        the Allreduce of a distributed step."""
        args = tuple(writes) + tuple(reads)
        ins = self.emit(Ins(HOST, args[0], args, K=len(writes)))
        ins.fn = fn
        return ins

    def grad_into(self, target, grads):
        """The error-signal buffer of ``target`` and whether it already holds a contribution."""
        g = grads.get(target)
        if g is None:
            g = grads[target] = self.new(target.shape, target.dtype)
            return g, False
        return g, True


def _untraced(fun, *args):
    tracer = _tape._tracer
    _tape._tracer = None
    try:
        return fun(*args)
    finally:
        _tape._tracer = tracer


_SHAPE_ONLY = {np.shape, np.ndim, np.size, np.result_type, np.zeros_like, np.ones_like,
               np.empty_like, np.full_like, np.iscomplexobj, np.isrealobj, np.isscalar,
               np.shares_memory, np.may_share_memory}


def _leaves(args, kwargs):
    out = []

    def walk(x):
        if isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            out.append(x)

    walk(list(args))
    walk(list(kwargs.values()))
    return out
