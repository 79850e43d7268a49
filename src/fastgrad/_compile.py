"""``fastgrad.compile``: record a training step once, replay it as one flat program.

The first call with given argument shapes and dtypes runs the function eagerly on the
tape while a tracer watches: every primitive call (the forward), every backward sweep
(lowered through this module's table of backward instructions, one entry per
primitive, mirroring ``_ops``), and every optimizer update. The result is a flat list
of instructions over numbered buffers. A planner fuses what it can see (affine + sigmoid;
a weight gradient folded into the SGD update that is its only reader; constants folded,
copies propagated, dead code removed; runs of elementwise instructions into one tiled
loop with register temporaries) and lays temporaries out so that buffers are reused once
dead. Later calls with the same
shapes replay the plan: on the cython backend in one compiled call without the GIL
(``fastgrad._replay``), on the reference backend as a Python loop over the same plan.

As in ``jax.jit``, Python runs only while tracing: control flow is frozen, arrays that
are not arguments are constants, and what cannot be replayed is refused with a
:class:`TracingError` (branching on a traced value, NumPy calls on traced data, an
unsupported primitive) instead of giving a wrong answer later. See docs/compile.md.

    @fg.compile
    def step(x, t):
        opt.zero_grad()
        loss = fg.nn.squared_error(model(x), t)
        loss.backward()
        opt.step()
        return loss
"""

from __future__ import annotations

import collections
import functools
import math
import threading

import numpy as np

from . import _backend, _tape
from ._opcodes import (
    ADAM,
    ADD,
    AFFINE,
    BLK,
    CAST,
    COL,
    COPY,
    COS,
    COS_BWD,
    DIV,
    DIV_BWD_B,
    EW_END,
    EXP,
    FULL,
    FUSED,
    GEMM,
    LOG,
    LOGSOFTMAX,
    LOGSOFTMAX_BWD,
    MAX,
    MAX_BWD,
    MIN,
    MIN_BWD,
    MUL,
    NEG,
    NREG,
    OPNAMES,
    POW,
    POW_BWD,
    POW_BWD_B,
    RELU,
    RELU_BWD,
    ROW,
    SCALAR,
    SCE,
    SCE_BWD,
    SGD,
    SIGMOID,
    SIGMOID_BWD,
    SIN,
    SIN_BWD,
    SOFTMAX,
    SOFTMAX_BWD,
    SQRT,
    SQRT_BWD,
    SUB,
    TANH,
    TANH_BWD,
    TRANSPOSE,
    WHERE,
)
from ._tape import Tensor

__all__ = ["compile", "TracingError"]


class TracingError(RuntimeError):
    """The function cannot be recorded as a replayable program (the message says why)."""


# ------------------------------------------------------------------- the program --
# Elementwise opcodes compute v = f(a, b, c) per element of an R × C iteration space and
# write out = α v (or out += α v). Operands and the output have a broadcast mode. The
# opcodes, modes and shared sizes are defined once, in _opcodes (C gets them from it).

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_DT = {np.dtype(np.float64): 0, np.dtype(np.float32): 1}


class Slot:
    """One buffer of the program. ``kind``: temp (owned by the plan), input (argument
    ``ref``), state (tensor ``ref``'s data, read at every call), array (a fixed array
    ``ref``: a constant or optimizer state), gradin (leaf tensor ``ref``'s ``.grad`` at
    call time), alias (a reshaped view of ``base``), lazyT (the transpose of 2-D
    ``base``, materialized only if an instruction needs it)."""

    __slots__ = ("index", "shape", "dtype", "kind", "ref", "base", "leaf", "materialized")

    def __init__(self, index, shape, dtype, kind, ref=None, base=None):
        self.index = index
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.kind = kind
        self.ref = ref
        self.base = base
        self.leaf = None  # the leaf tensor whose error signal accumulates into .grad
        self.materialized = None

    @property
    def size(self):
        return math.prod(self.shape)

    def storage(self):
        s = self
        while s.kind == "alias":
            s = s.base
        return s

    def __repr__(self):
        return f"%{self.index}:{self.kind}{list(self.shape)}{'f' if self.dtype == np.float32 else 'd'}"


class Ins:
    """One instruction. ``args`` are slots (or None), ``f`` eight float parameters
    (f[0] = α for elementwise and GEMM), ``dyn`` maps a parameter index to
    ``(obj, attr, mult)``: the parameter is ``mult * obj.attr``, read at every call (the
    learning rate), or "prelude" to a callable returning {index: value} (Adam's step).
    A FUSED instruction runs ``subs``, elementwise instructions over one R × C space."""

    __slots__ = ("op", "out", "args", "modes", "omode", "acc", "R", "C", "K", "flags", "f", "dyn",
                 "subs", "subs_code")

    def __init__(self, op, out, args=(), modes=(), omode=FULL, acc=False, R=1, C=1, K=0,
                 flags=0, f=None, dyn=None):
        self.op = op
        self.out = out
        self.args = tuple(args)
        self.modes = tuple(modes) + (FULL,) * (4 - len(modes))
        self.omode = omode
        self.acc = acc
        self.R, self.C, self.K = int(R), int(C), int(K)
        self.flags = flags
        self.f = list(f) if f is not None else [1.0]
        self.f += [0.0] * (8 - len(self.f))
        self.dyn = dyn or {}
        self.subs = None

    def reads(self):
        if self.subs is not None:
            return [s for sub in self.subs for s in sub.reads()]
        r = [a for a in self.args if a is not None]
        if self.acc or self.op in (SGD, ADAM):
            r.append(self.out)
        return r

    def writes(self):
        if self.subs is not None:
            return [sub.out for sub in self.subs]
        return [self.out]

    def __repr__(self):
        if self.subs is not None:
            inner = "; ".join(repr(s) for s in self.subs)
            return f"FUSED[{self.R}x{self.C}]{{{inner}}}"
        args = ", ".join(repr(a) for a in self.args)
        return f"{self.out!r} = {OPNAMES.get(self.op, self.op)}({args}) acc={int(self.acc)}"


# ---------------------------------------------------------- broadcasting helpers --


def _bcast(out_shape, shapes, what):
    """(R, C, modes) for operands of ``shapes`` broadcast to ``out_shape``."""
    n = math.prod(out_shape)
    modes = []
    for s in shapes:
        s = tuple(s)
        if s == tuple(out_shape):
            modes.append(FULL)
        elif math.prod(s) == 1:
            modes.append(SCALAR)
        elif len(out_shape) >= 1 and len(s) >= 1 and s[-1] == out_shape[-1] and math.prod(s) == s[-1]:
            modes.append(ROW)
        elif (len(out_shape) >= 2 and len(s) >= 1 and s[-1] == 1
              and math.prod(s) == math.prod(out_shape[:-1])
              and tuple(d for d in s[:-1] if d != 1) == tuple(d for d in out_shape[:-1] if d != 1)):
            modes.append(COL)
        elif math.prod(s) == n and tuple(d for d in s if d != 1) == tuple(d for d in out_shape if d != 1):
            modes.append(FULL)
        else:
            raise TracingError(
                f"fastgrad.compile: {what} broadcasts shapes {', '.join(map(str, shapes))} to "
                f"{tuple(out_shape)}; only same shapes, scalars, rows (…, C) and columns (…, 1) "
                "broadcast in a compiled function"
            )
    if any(m in (ROW, COL) for m in modes):
        C = out_shape[-1]
        return n // max(C, 1), C, modes
    return 1, n, modes


def _reduce_mode(shape, axis):
    """(mode, R, C) for a sum of ``shape`` over ``axis``, or None if unsupported."""
    nd = len(shape)
    n = math.prod(shape)
    if axis is None or nd == 0:
        return SCALAR, 1, n
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = {int(a) % nd for a in axes}
    C = shape[-1]
    R = n // max(C, 1)
    if axes == set(range(nd)):
        return SCALAR, 1, n
    if axes == set(range(nd - 1)):
        return ROW, R, C
    if axes == {nd - 1}:
        return COL, R, C
    return None


# --------------------------------------------------------------------- the tracer --


class _Record:
    """A forward primitive call, kept for lowering the backward sweep."""

    __slots__ = ("name", "out", "ins", "requires", "info")

    def __init__(self, name, out, ins, requires, info):
        self.name, self.out, self.ins, self.requires, self.info = name, out, ins, requires, info


class _Tracer:
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
        self.producer = {}  # slot -> _Record
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
        if isinstance(obj, Tensor):
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
        if isinstance(a, Tensor):
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
                if not isinstance(data, np.ndarray) or data.dtype not in _FLOATS:
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
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.dtype not in _FLOATS:
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
        if self.int_twins or any(type(a) is _TracedArray for a in args):
            # Integer arguments are read as float64 (their twin) except as labels; traced
            # arrays (t.data) are handed to the eager kernels as plain arrays.
            labels = prim.name == "softmax_cross_entropy"
            args = tuple(self.int_twins.get(id(a), a) if isinstance(a, Tensor) and not labels else a
                         for a in args)
            eager = tuple(a.view(np.ndarray) if type(a) is _TracedArray else a for a in args)
            for a, e in zip(args, eager):
                if e is not a:
                    s = self.by_array.get(id(a))
                    if s is not None:
                        self._register(e, s)
        else:
            eager = args
        out = _untraced(_tape._apply, prim, eager, kwargs)
        rule = _FORWARD.get(prim.name)
        if rule is None:
            raise TracingError(
                f"fastgrad.compile: '{self.fn_name}' calls the primitive '{prim.name}', which "
                f"the compiled executor cannot replay (supported: {', '.join(sorted(_FORWARD))})"
            )
        ans = out._data
        if isinstance(ans, np.generic):
            ans = out._data = np.asarray(ans)  # a 0-d array: it can live in a buffer
        if not isinstance(ans, np.ndarray) or ans.dtype not in _FLOATS:
            raise TracingError(
                f"fastgrad.compile: '{prim.name}' returned {type(ans).__name__} "
                f"{getattr(ans, 'dtype', '')}; only float32/float64 arrays are replayed"
            )
        vjps = prim.vjps
        requires = [] if out._node is None else [
            i for i, a in enumerate(eager) if isinstance(a, Tensor) and a._node is not None and i in vjps]
        info = rule(self, args, kwargs, ans)
        if isinstance(info, Slot):  # an alias or lazy transpose: no instruction
            slot, info = info, None
        else:
            slot, info = info
        self._register(out, slot)
        self._register(ans, slot)
        rec = _Record(prim.name, slot, [self.by_tensor.get(id(a)) if isinstance(a, Tensor) else None
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
                   if isinstance(t, Tensor) and t._node is not None and id(t) in self.by_tensor}
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
        before = {i: _tape.leaf_grad(t._node) for i, t in self.leaves_seen.items()}
        result = _untraced(_tape.run_backward, roots, seeds, retain_graph, create_graph, targets, False)
        grads = {}
        for s, seed in zip(root_slots, seeds):
            if isinstance(seed, Tensor):
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
                _BACKWARD[rec.name](self, rec, g, i, grads)
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


# ------------------------------------------------ lowering: forward and backward --
# _FORWARD[name](tracer, args, kwargs, ans) emits the forward instructions and returns
# (out slot, info) — or a bare slot for a view (no instruction). _BACKWARD[name](tracer,
# record, g, i, grads) emits argument i's error signal from the output's, g.

_FORWARD = {}
_BACKWARD = {}


def _binary(op, name):
    def forward(tr, args, kwargs, ans):
        a, b = args[0], args[1]
        sa, sb = tr.slot_of(a, ans.dtype), tr.slot_of(b, ans.dtype)
        R, C, modes = _bcast(ans.shape, [sa.shape, sb.shape], name)
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(op, out, [(sa, modes[0]), (sb, modes[1])], R=R, C=C)
        return out, (sa, sb, R, C, modes)

    _FORWARD[name] = forward


_binary(ADD, "add")
_binary(SUB, "subtract")
_binary(MUL, "multiply")
_binary(DIV, "true_divide")
_binary(POW, "power")
_binary(MAX, "maximum")
_binary(MIN, "minimum")


def _contrib(tr, grads, target, op, operands, R, C, omode, alpha=1.0):
    g, acc = tr.grad_into(target, grads)
    tr.ew(op, g, operands, omode=omode, R=R, C=C, acc=acc, alpha=alpha)


def _binary_backward(rec_op):
    def backward(tr, rec, g, i, grads):
        sa, sb, R, C, (ma, mb) = rec.info
        target = rec.ins[i]
        mode = (ma, mb)[i]
        if rec_op == "add":
            _contrib(tr, grads, target, COPY, [(g, FULL)], R, C, mode)
        elif rec_op == "subtract":
            _contrib(tr, grads, target, COPY if i == 0 else NEG, [(g, FULL)], R, C, mode)
        elif rec_op == "multiply":  # x̄ = z̄ y, ȳ = z̄ x
            other, om = (sb, mb) if i == 0 else (sa, ma)
            _contrib(tr, grads, target, MUL, [(g, FULL), (other, om)], R, C, mode)
        elif rec_op == "true_divide":  # x̄ = z̄ / y, ȳ = −z̄ x / y²
            if i == 0:
                _contrib(tr, grads, target, DIV, [(g, FULL), (sb, mb)], R, C, mode)
            else:
                _contrib(tr, grads, target, DIV_BWD_B, [(g, FULL), (sa, ma), (sb, mb)], R, C, mode)
        elif rec_op in ("maximum", "minimum"):  # z̄ to the larger (smaller); ties share it
            own, other = ((sa, ma), (sb, mb)) if i == 0 else ((sb, mb), (sa, ma))
            _contrib(tr, grads, target, MAX_BWD if rec_op == "maximum" else MIN_BWD,
                     [(g, FULL), own, other], R, C, mode)
        elif rec_op == "power":  # x̄ = z̄ y xʸ⁻¹, ȳ = z̄ log(x) z
            if i == 0:
                _contrib(tr, grads, target, POW_BWD, [(g, FULL), (sa, ma), (sb, mb)], R, C, mode)
            else:
                _contrib(tr, grads, target, POW_BWD_B, [(g, FULL), (sa, ma), (rec.out, FULL)], R, C, mode)

    return backward


for _name in ("add", "subtract", "multiply", "true_divide", "power", "maximum", "minimum"):
    _BACKWARD[_name] = _binary_backward(_name)


def _where_fwd(tr, args, kwargs, ans):  # where(c, x, y): c a constant (0/1) or a traced mask
    sc, sx, sy = (tr.slot_of(a, ans.dtype) for a in args[:3])
    R, C, modes = _bcast(ans.shape, [sc.shape, sx.shape, sy.shape], "where")
    out = tr.new(ans.shape, ans.dtype)
    tr.ew(WHERE, out, list(zip((sc, sx, sy), modes)), R=R, C=C)
    return out, (sc, R, C, modes)


def _where_bwd(tr, rec, g, i, grads):  # x̄ = where(c, z̄, 0), ȳ = where(c, 0, z̄)
    sc, R, C, modes = rec.info
    zero = (tr.const(0.0, g.dtype), SCALAR)
    pair = [(g, FULL), zero] if i == 1 else [zero, (g, FULL)]
    _contrib(tr, grads, rec.ins[i], WHERE, [(sc, modes[0])] + pair, R, C, modes[i])


_FORWARD["where"], _BACKWARD["where"] = _where_fwd, _where_bwd


def _unary(op, name, bwd_op, reads):
    """y = f(x) with x̄ = bwd(ȳ, x or y); ``reads`` says which (“x”, “y” or None)."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(op, out, [(sx, FULL)])
        return out, sx

    def backward(tr, rec, g, i, grads):
        operands = [(g, FULL)]
        if reads == "x":
            operands.append((rec.info, FULL))
        elif reads == "y":
            operands.append((rec.out, FULL))
        _contrib(tr, grads, rec.ins[0], bwd_op, operands, 1, rec.out.size, FULL)

    _FORWARD[name] = forward
    _BACKWARD[name] = backward


_unary(NEG, "negative", NEG, None)
_unary(EXP, "exp", MUL, "y")  # x̄ = ȳ eˣ
_unary(LOG, "log", DIV, "x")  # x̄ = ȳ / x
_unary(SIN, "sin", SIN_BWD, "x")
_unary(COS, "cos", COS_BWD, "x")
_unary(TANH, "tanh", TANH_BWD, "y")  # x̄ = ȳ (1 − y²)
_unary(SIGMOID, "sigmoid", SIGMOID_BWD, "y")  # z̄ = h̄ h (1 − h)
_unary(RELU, "relu", RELU_BWD, "y")
_unary(SQRT, "sqrt", SQRT_BWD, "y")


def _view(tr, args, kwargs, ans):  # reshape, expand_dims, identity: the same buffer
    src = tr.slot_of(args[0], ans.dtype)
    if src.kind == "lazyT":
        src = tr.operand(src, src.dtype)
    return tr.new(ans.shape, ans.dtype, "alias", base=src)


def _view_backward(tr, rec, g, i, grads):
    _contrib(tr, grads, rec.ins[0], COPY, [(g, FULL)], 1, rec.out.size, FULL)


for _name in ("reshape", "expand_dims", "identity"):
    _FORWARD[_name] = _view
    _BACKWARD[_name] = _view_backward


def _transpose_fwd(tr, args, kwargs, ans):
    src = tr.slot_of(args[0], ans.dtype)
    axes = args[1] if len(args) > 1 else kwargs.get("axes")
    if len(src.shape) < 2:
        return tr.new(ans.shape, ans.dtype, "alias", base=src)
    if len(src.shape) != 2 or (axes is not None and tuple(axes) != (1, 0)):
        raise TracingError(f"fastgrad.compile: transpose of shape {src.shape} with axes {axes}; "
                           "only 2-D transposes are compiled")
    if src.kind == "lazyT":
        return tr.new(ans.shape, ans.dtype, "alias", base=src.base)
    return tr.new(ans.shape, ans.dtype, "lazyT", base=src)


def _transpose_bwd(tr, rec, g, i, grads):
    src = rec.ins[0]
    if len(src.shape) < 2:
        return _view_backward(tr, rec, g, i, grads)
    t, acc = tr.grad_into(src, grads)
    tr.emit(Ins(TRANSPOSE, t, (tr.operand(g, t.dtype),), acc=acc, R=g.shape[0], C=g.shape[1]))


_FORWARD["transpose"] = _transpose_fwd
_BACKWARD["transpose"] = _transpose_bwd


def _reduction(scale):
    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        axis = args[1] if len(args) > 1 else kwargs.get("axis")
        rm = _reduce_mode(sx.shape, axis)
        if rm is None:
            raise TracingError(f"fastgrad.compile: a sum over axis {axis} of shape {sx.shape}; "
                               "compiled reductions sum all axes, the last, or all but the last")
        mode, R, C = rm
        n = sx.size // max(ans.size, 1)
        out = tr.new(ans.shape, ans.dtype)
        alpha = 1.0 / n if scale else 1.0
        tr.ew(COPY, out, [(sx, FULL)], omode=mode, R=R, C=C, alpha=alpha)
        return out, (mode, R, C, alpha)

    def backward(tr, rec, g, i, grads):  # x̄ = s̄ repeated over the summed axes (÷ n for mean)
        mode, R, C, alpha = rec.info
        _contrib(tr, grads, rec.ins[0], COPY, [(g, mode)], R, C, FULL, alpha=alpha)

    return forward, backward


_FORWARD["sum"], _BACKWARD["sum"] = _reduction(False)
_FORWARD["mean"], _BACKWARD["mean"] = _reduction(True)


def _squared_error_fwd(tr, args, kwargs, ans):  # ℒ = (1/N) Σ ½ (y − t)²
    sy, st = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
    if sy.shape != st.shape:
        raise TracingError(f"fastgrad.compile: squared_error of y {sy.shape} and t {st.shape}; "
                           "compiled, both must have one shape")
    n = sy.shape[0] if sy.shape else 1
    d = tr.new(sy.shape, ans.dtype)
    tr.ew(SUB, d, [(sy, FULL), (st, FULL)])
    dd = tr.new(sy.shape, ans.dtype)
    tr.ew(MUL, dd, [(d, FULL), (d, FULL)])
    mode, R, C = _reduce_mode(dd.shape, None)
    out = tr.new(ans.shape, ans.dtype)
    tr.ew(COPY, out, [(dd, FULL)], omode=mode, R=R, C=C, alpha=0.5 / n)
    return out, (d, mode, R, C, n)


def _squared_error_bwd(tr, rec, g, i, grads):  # ȳ = ℒ̄ (y − t) / N,  t̄ = −ȳ
    d, mode, R, C, n = rec.info
    _contrib(tr, grads, rec.ins[i], MUL, [(g, mode), (d, FULL)], R, C, FULL,
             alpha=(1.0 if i == 0 else -1.0) / n)


_FORWARD["squared_error"], _BACKWARD["squared_error"] = _squared_error_fwd, _squared_error_bwd


def _broadcast_to_fwd(tr, args, kwargs, ans):
    sx = tr.slot_of(args[0], ans.dtype)
    R, C, modes = _bcast(ans.shape, [sx.shape], "broadcast_to")
    out = tr.new(ans.shape, ans.dtype)
    tr.ew(COPY, out, [(sx, modes[0])], R=R, C=C)
    return out, (R, C, modes[0])


def _broadcast_to_bwd(tr, rec, g, i, grads):
    R, C, mode = rec.info
    _contrib(tr, grads, rec.ins[0], COPY, [(g, FULL)], R, C, mode)


_FORWARD["broadcast_to"], _BACKWARD["broadcast_to"] = _broadcast_to_fwd, _broadcast_to_bwd


def _resolve_t(tr, slot, trans, dtype):
    """A GEMM operand: a lazy transpose becomes its base with the transpose flag flipped."""
    if slot.kind == "lazyT" and slot.base.dtype == dtype:
        return tr.operand(slot.base, dtype), trans ^ 1
    return tr.operand(slot, dtype), trans


def _gemm(tr, out, A, tA, B, tB, acc=False, alpha=1.0):
    """Row-major out (M×N) (+)= α op(A) op(B)."""
    A, tA = _resolve_t(tr, A, tA, out.dtype)
    B, tB = _resolve_t(tr, B, tB, out.dtype)
    M = A.shape[1] if tA else A.shape[0]
    K = A.shape[0] if tA else A.shape[1]
    N = B.shape[0] if tB else B.shape[1]
    return tr.emit(Ins(GEMM, out, (A, B), acc=acc, R=M, C=N, K=K, flags=tA | (tB << 1), f=[alpha]))


def _as2d(tr, slot, rows, cols):
    if slot.shape == (rows, cols):
        return slot
    if slot.kind == "lazyT":
        slot = tr.operand(slot, slot.dtype)
    return tr.new((rows, cols), slot.dtype, "alias", base=slot)


def _matmul_fwd(tr, args, kwargs, ans):
    sa, sb = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
    if len(sa.shape) != 2 or len(sb.shape) != 2:
        raise TracingError(f"fastgrad.compile: matmul of shapes {sa.shape} and {sb.shape}; "
                           "only 2-D @ 2-D is compiled (reshape vectors to (1, n) or (n, 1))")
    out = tr.new(ans.shape, ans.dtype)
    _gemm(tr, out, sa, 0, sb, 0)
    return out, (sa, sb)


def _matmul_bwd(tr, rec, g, i, grads):  # Ā = C̄ Bᵀ,  B̄ = Aᵀ C̄
    sa, sb = rec.info
    target = rec.ins[i]
    t, acc = tr.grad_into(target, grads)
    if i == 0:
        _gemm(tr, t, g, 0, sb, 1, acc)
    else:
        _gemm(tr, t, sa, 1, g, 0, acc)


_FORWARD["matmul"], _BACKWARD["matmul"] = _matmul_fwd, _matmul_bwd


def _linear_fwd(tr, args, kwargs, ans):
    x, W = args[0], args[1]
    b = args[2] if len(args) > 2 else kwargs.get("b")
    sW = tr.operand(tr.slot_of(W, ans.dtype), ans.dtype)
    M, D = sW.shape
    sx = tr.slot_of(x, ans.dtype)
    N = sx.size // D
    x2 = _as2d(tr, tr.operand(sx, ans.dtype), N, D)
    sb = tr.operand(tr.slot_of(b, ans.dtype), ans.dtype) if b is not None else None
    out = tr.new(ans.shape, ans.dtype)
    tr.emit(Ins(AFFINE, out, (x2, sW, sb), R=N, C=M, K=D, flags=int(sb is not None)))
    return out, (x2, sW, N, M, D)


def _linear_bwd(tr, rec, g, i, grads):
    x2, sW, N, M, D = rec.info
    g2 = _as2d(tr, tr.operand(g, g.dtype), N, M)
    target = rec.ins[i]
    t, acc = tr.grad_into(target, grads)
    if i == 0:  # x̄ = z̄ W
        _gemm(tr, _as2d(tr, t, N, D), g2, 0, sW, 0, acc)
    elif i == 1:  # W̄ = z̄ᵀ x
        _gemm(tr, t, g2, 1, x2, 0, acc)
    else:  # b̄ = Σₙ z̄ₙ
        tr.ew(COPY, t, [(g2, FULL)], omode=ROW, R=N, C=M, acc=acc)


_FORWARD["linear"], _BACKWARD["linear"] = _linear_fwd, _linear_bwd


def _rowwise(op, bwd_op):
    def forward(tr, args, kwargs, ans):
        sz = tr.slot_of(args[0], ans.dtype)
        axis = args[1] if len(args) > 1 else kwargs.get("axis", -1)
        if len(sz.shape) == 0 or axis is None or int(axis) % len(sz.shape) != len(sz.shape) - 1:
            raise TracingError("fastgrad.compile: softmax/log_softmax only over the last axis")
        C = sz.shape[-1]
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(op, out, [(sz, FULL)], R=sz.size // C, C=C)
        return out, (sz.size // C, C)

    def backward(tr, rec, g, i, grads):
        R, C = rec.info
        t, acc = tr.grad_into(rec.ins[0], grads)
        tr.emit(Ins(bwd_op, t, (tr.operand(g, t.dtype), tr.operand(rec.out, t.dtype)),
                    acc=acc, R=R, C=C))

    return forward, backward


_FORWARD["log_softmax"], _BACKWARD["log_softmax"] = _rowwise(LOGSOFTMAX, LOGSOFTMAX_BWD)


def _labels_slot(tr, labels, n):
    """The int64 slot of integer labels: an argument, or a constant array."""
    s = None
    if isinstance(labels, Tensor):
        s = tr.by_tensor.get(id(labels)) or tr.by_array.get(id(labels._data))
        labels = labels._data
    elif isinstance(labels, np.ndarray):
        s = tr.by_array.get(id(labels))
    if s is None:
        arr = np.asarray(labels)
        if arr.dtype.kind not in "iu":
            raise TracingError("fastgrad.compile: softmax_cross_entropy needs integer labels")
        s = tr.new(arr.shape, np.int64, "array", np.ascontiguousarray(arr, dtype=np.int64))
    if s.dtype != np.int64 or s.size != n:
        raise TracingError(
            f"fastgrad.compile: softmax_cross_entropy labels of dtype {s.dtype} and shape "
            f"{s.shape}; compiled, labels are integer arrays of one label per row")
    return s


def _sce_fwd(tr, args, kwargs, ans):  # ℒ = −(1/N) Σₙ log softmax(zₙ)_{tₙ}
    sz = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
    if len(sz.shape) != 2:
        raise TracingError(f"fastgrad.compile: softmax_cross_entropy of logits {sz.shape}; "
                           "compiled, logits are (N, K)")
    N, K = sz.shape
    sl = _labels_slot(tr, args[1], N)
    out = tr.new(ans.shape, ans.dtype)
    tr.emit(Ins(SCE, out, (sz, sl), R=N, C=K))
    return out, (sz, sl, N, K)


def _sce_bwd(tr, rec, g, i, grads):  # z̄ = ℒ̄ (softmax(z) − onehot(t)) / N
    sz, sl, N, K = rec.info
    t, acc = tr.grad_into(rec.ins[0], grads)
    tr.emit(Ins(SCE_BWD, t, (sz, sl, tr.operand(g, t.dtype)), acc=acc, R=N, C=K))


_FORWARD["softmax_cross_entropy"], _BACKWARD["softmax_cross_entropy"] = _sce_fwd, _sce_bwd
_FORWARD["softmax"], _BACKWARD["softmax"] = _rowwise(SOFTMAX, SOFTMAX_BWD)


# ------------------------------------------------------- trace-time interception --


class _Interceptor:
    """Swaps in checks and recorders on Tensor and the optimizers while one trace runs.

    The tape calls the tracer directly (two hooks in _tape); what does not pass through
    the tape — concrete values of traced tensors, optimizer updates, ``.grad`` writes —
    is watched here, only for the duration of the trace.
    """

    _lock = threading.Lock()

    def __init__(self, tracer):
        self.tracer = tracer
        self.saved = []

    def _patch(self, owner, name, value):
        self.saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, value)

    def __enter__(self):
        if not self._lock.acquire(blocking=False):
            raise TracingError("fastgrad.compile: another function is being traced right now")
        tr = self.tracer
        _tape._tracer = tr
        T = Tensor

        def traced(t):
            if threading.get_ident() != tr.thread:
                return False
            return (id(t) in tr.by_tensor or id(t._data) in tr.by_array
                    or (t._node is not None and t._node.prim is None))

        def refuse(what):
            def check(orig):
                def method(self, *a, **k):
                    if traced(self):
                        raise TracingError(
                            f"fastgrad.compile: {what} on a traced tensor of shape {self.shape} "
                            "needs its value while tracing; a compiled function cannot branch on "
                            "or leave the tape with traced values (Python control flow is frozen "
                            "at trace time). Compute it outside the compiled function (fg.where "
                            "and fg.maximum replay; fg.where's condition must come from outside)"
                        )
                    return orig(self, *a, **k)

                return method

            return check

        for name, what in (("__bool__", "bool() (an `if`/`while` on a tensor)"),
                           ("__float__", "float()"), ("__int__", "int()"), ("__index__", "index()"),
                           ("item", ".item()"), ("numpy", ".numpy()"),
                           ("__array__", "a NumPy function (np.asarray(tensor))"),
                           ("__lt__", "a comparison <"), ("__le__", "a comparison <="),
                           ("__gt__", "a comparison >"), ("__ge__", "a comparison >="),
                           ("__eq__", "a comparison =="), ("__ne__", "a comparison !=")):
            self._patch(T, name, refuse(what)(T.__dict__[name]))
        data_prop = T.__dict__["data"]

        def get_data(self):
            d = data_prop.fget(self)
            if threading.get_ident() == tr.thread:
                s = tr.by_tensor.get(id(self)) or tr.by_array.get(id(self._data))
                if s is not None and s.kind not in ("state", "array") and isinstance(d, np.ndarray):
                    v = d.view(_TracedArray)  # shape and dtype readable; NumPy maths refused
                    tr._register(v, s)  # …and usable as an operand (integer labels)
                    return v
            return d

        self._patch(T, "data", property(get_data, data_prop.fset))
        grad_prop = T.__dict__["grad"]

        def get_grad(self):
            g = grad_prop.fget(self)
            if g is not None and id(g) not in tr.by_array:
                entry = tr.leaf_grad.get(id(self))
                if entry is not None:
                    tr._register(g, entry[1])  # the getter cast it to the leaf's dtype
            return g

        def set_grad(self, value):
            if value is None and threading.get_ident() == tr.thread:
                tr.cleared.add(id(self))
                tr.leaf_grad.pop(id(self), None)
                tr.keep.append(self)
            grad_prop.fset(self, value)

        self._patch(T, "grad", property(get_grad, set_grad))
        from . import optim

        sgd_update, adam_update = optim.SGD.__dict__["_update"], optim.Adam.__dict__["_update"]

        def sgd(opt, backend, state, W, dW, hyper):
            if isinstance(dW, _tape.OuterGrad):  # from an eager backward before the trace
                dW = dW.array()
            sgd_update(opt, backend, state, W, dW, hyper)
            if threading.get_ident() == tr.thread:
                tr.optimizer_step("sgd", opt, state, W, dW)

        def adam(opt, backend, state, W, dW, hyper):
            adam_update(opt, backend, state, W, dW, hyper)
            if threading.get_ident() == tr.thread:
                tr.optimizer_step("adam", opt, state, W, dW)

        self._patch(optim.SGD, "_update", sgd)
        self._patch(optim.Adam, "_update", adam)
        if tr.int_twins:  # grad with respect to an integer argument starts at its twin
            from . import _functional

            start_init = _functional._Start.__dict__["__init__"]

            def start(self, x):
                if threading.get_ident() == tr.thread and isinstance(x, Tensor):
                    x = tr.int_twins.get(id(x), x)
                start_init(self, x)

            self._patch(_functional._Start, "__init__", start)
        return self

    def __exit__(self, *exc):
        _tape._tracer = None
        for owner, name, value in reversed(self.saved):
            setattr(owner, name, value)
        self._lock.release()
        return False


class _TracedArray(np.ndarray):
    """``tensor.data`` while tracing: shape and dtype work, NumPy arithmetic is refused."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise TracingError(
            f"fastgrad.compile: NumPy's {ufunc.__name__} on the .data of a traced tensor escapes "
            "the tape (it would be frozen at trace time); use tensor operations instead"
        )

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.shape, np.ndim, np.size, np.result_type):
            return super().__array_function__(func, types, args, kwargs)
        raise TracingError(
            f"fastgrad.compile: np.{func.__name__} on the .data of a traced tensor escapes the "
            "tape (it would be frozen at trace time); use tensor operations instead"
        )

    def __float__(self):
        raise TracingError("fastgrad.compile: float() of traced data while tracing")

    __bool__ = __int__ = __index__ = __float__


def _optimizer_step(self, kind, opt, state, W, dW):
    """Record one parameter's update: W (in place) from its error signal dW."""
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


_Tracer.optimizer_step = _optimizer_step


# ------------------------------------------------------------------- the planner --


def _leaves_of(x, out):
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        for v in x:
            _leaves_of(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _leaves_of(v, out)
    else:
        out.append(x)
    return out


def _structure(x):
    """``x``'s nesting of tuples, lists and dicts with every leaf replaced by None."""
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        return type(x)(_structure(v) for v in x)
    if isinstance(x, dict):
        return {k: _structure(v) for k, v in x.items()}
    return None


def _rebuild(template, values):
    it = iter(values)

    def go(x):
        if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
            return type(x)(go(v) for v in x)
        if isinstance(x, dict):
            return {k: go(v) for k, v in x.items()}
        return next(it)

    return go(template)


class Plan:
    """The program of one trace, planned: instructions, buffers and per-call bindings."""

    def __init__(self, tracer, inputs, result, keep_grads):
        self.tracer = tracer
        self.inputs = inputs  # [(position, slot)]
        self.instrs = tracer.instrs
        outs = []
        for v in _leaves_of(result, []):
            if isinstance(v, Tensor):
                s = tracer.by_tensor.get(id(v)) or tracer.by_array.get(id(v._data))
                outs.append(("tensor", s, None) if s is not None else ("const", None, v.detach()))
            elif isinstance(v, np.ndarray):
                s = tracer.by_array.get(id(v))
                outs.append(("array", s, None) if s is not None else ("const", None, v.copy()))
            else:
                outs.append(("const", None, v))
        self.outputs = outs
        # Only the result's structure is kept: holding the traced tensors would keep their
        # graph alive, and with it the parameters' write protection (Tensor._saves).
        self.template = _structure(result)
        # What .grad holds when the function returns, for each leaf it touched.
        effects = []
        touched = {}
        for i, t in tracer.leaves_seen.items():
            touched[i] = t
        for t in tracer.keep:
            if isinstance(t, Tensor) and id(t) in tracer.cleared:
                touched[id(t)] = t
        for i, t in touched.items():
            if t._node is None or t._node.prim is not None:
                continue
            slot_of_t = tracer.by_tensor.get(i)
            if slot_of_t is not None and slot_of_t.kind == "alias":
                continue  # grad's start node, detach(): not the user's tensor
            g = _tape.leaf_grad(t._node)
            if g is None or not keep_grads:
                if g is not None or i in tracer.cleared:
                    effects.append((t, None))
            else:
                s = tracer.by_array.get(id(g))
                if s is not None:
                    effects.append((t, s))
        self.effects = effects
        self.assume_none = list(tracer.assume_none.values())
        observable = {s for _, s, _ in outs if s is not None} | {s for _, s in effects if s is not None}
        self.observable = {s.storage() for s in observable}
        self._fuse_affine_sigmoid()
        self._fuse_sgd()
        self._fold_constants()
        self._propagate_copies()
        self._dead_code()
        self.registers = {}
        self._fuse_chains()
        self._allocate()

    # -- passes --

    def _readers(self):
        readers = collections.defaultdict(list)
        for k, ins in enumerate(self.instrs):
            for s in ins.reads():
                readers[s.storage()].append(k)
        return readers

    def _fuse_affine_sigmoid(self):
        readers = self._readers()
        instrs = self.instrs
        drop = set()
        for _k, ins in enumerate(instrs):
            if ins.op != AFFINE or ins.flags & 2:
                continue
            z = ins.out
            r = readers.get(z.storage(), [])
            if z.kind != "temp" or z in self.observable or len(r) != 1:
                continue
            j = r[0]
            s = instrs[j]
            if (s.op == SIGMOID and s.args[0] is z and s.omode == FULL and not s.acc
                    and s.f[0] == 1.0 and s.out.kind == "temp" and s.out.dtype == z.dtype):
                ins.out = s.out
                ins.flags |= 2
                drop.add(j)
        self.instrs = [ins for k, ins in enumerate(instrs) if k not in drop]

    def _fuse_sgd(self):
        """W −= η W̄ folded into the instructions that compute W̄ (its only reader)."""
        changed = True
        while changed:
            changed = False
            instrs = self.instrs
            readers = self._readers()
            writers = collections.defaultdict(list)
            for k, ins in enumerate(instrs):
                writers[ins.out.storage()].append(k)
            for k, ins in enumerate(instrs):
                if ins.op != SGD or ins.f[2] != 0.0 or ins.f[3] != 0.0 or ins.args[1] is not None:
                    continue
                W, dW = ins.out.storage(), ins.args[0]
                gs = dW.storage()
                if gs.kind != "temp" or gs in self.observable or W.dtype != gs.dtype \
                        or dW is not gs or ins.out is not W:
                    continue
                contribs = writers[gs]
                if not contribs or any(instrs[c].op not in (GEMM,) + tuple(range(EW_END))
                                       or instrs[c].out is not dW for c in contribs):
                    continue
                if [r for r in readers.get(gs, []) if r not in contribs] != [k]:
                    continue
                first = contribs[0]
                # W must not be read between the first contribution and the update.
                if any(W in [s.storage() for s in instrs[j].reads()] for j in range(first, k)
                       if j not in contribs) or any(
                        W in [a.storage() for a in instrs[c].args if a is not None] for c in contribs):
                    continue
                lr_obj, lr_attr, lr_mult = ins.dyn[1]
                for c in contribs:
                    ci = instrs[c]
                    ci.out = W
                    ci.acc = True
                    scale = ci.f[0]
                    ci.f[0] = -ins.f[1] * scale
                    ci.dyn = dict(ci.dyn)
                    ci.dyn[0] = (lr_obj, lr_attr, -lr_mult * scale)
                self.instrs = [x for j, x in enumerate(instrs) if j != k]
                changed = True
                break

    def _writers(self):
        writers = collections.defaultdict(list)
        for k, ins in enumerate(self.instrs):
            for s in ins.writes():
                writers[s.storage()].append(k)
        return writers

    def _fold_constants(self):
        """An elementwise instruction of constants only is computed now (the seed ×
        the mean's 1/N, …): its output becomes a constant. One pass in program order, so
        folded outputs fold further."""
        consts = self.tracer.const_slots
        writers = self._writers()
        keep = []
        for k, ins in enumerate(self.instrs):
            out = ins.out
            if (ins.op >= EW_END or ins.dyn or ins.acc or out.kind != "temp"
                    or out in self.observable or writers[out] != [k]
                    or not all(a is None or a.storage() in consts for a in ins.args)):
                keep.append(ins)
                continue
            val = np.zeros(out.shape, out.dtype)
            with np.errstate(all="ignore"):
                _ew_eval(ins, [None if a is None else a.storage().ref.reshape(a.shape)
                               for a in ins.args], val, ins.f)
            out.kind, out.ref = "array", val
            consts.add(out)
        self.instrs = keep

    def _propagate_copies(self):
        """out = COPY(src), out written nowhere else and src not written afterwards: the
        readers of out read src (the seed copies and the add's ḡ pass-through)."""
        writers = self._writers()
        repl = {}

        def resolve(s):
            while s in repl:
                s = repl[s]
            return s

        keep = []
        for k, ins in enumerate(self.instrs):
            if any(a is not None and a in repl for a in ins.args):
                ins.args = tuple(None if a is None else resolve(a) for a in ins.args)
            out = ins.out
            if (ins.op == COPY and not ins.acc and not ins.dyn and ins.f[0] == 1.0
                    and ins.omode == FULL and ins.modes[0] == FULL and out.kind == "temp"
                    and out not in self.observable):
                src = ins.args[0]
                ss = src.storage()
                if (writers[out] == [k] and src.dtype == out.dtype and src.size == out.size
                        and all(w < k for w in writers.get(ss, ())) and ss.kind != "lazyT"):
                    repl[out] = src
                    continue
            keep.append(ins)
        if repl:
            for s in self.tracer.slots:
                if s.kind == "alias" and s.base in repl:
                    s.base = resolve(s.base)
        self.instrs = keep

    def _fuse_chains(self):
        """Runs of elementwise instructions over one iteration space become one FUSED
        instruction, evaluated tile by tile; temporaries that live only inside the run
        are held in register tiles instead of memory."""
        def eligible(ins):
            return (ins.op < EW_END and not ins.dyn and ins.omode in (FULL, SCALAR)
                    and all(m in (FULL, SCALAR) for a, m in zip(ins.args, ins.modes) if a is not None))

        groups, cur = [], []
        for k, ins in enumerate(self.instrs):
            if eligible(ins) and (not cur or (ins.R * ins.C == cur[0][1].R * cur[0][1].C
                                              and ins.out.dtype == cur[0][1].out.dtype)):
                cur.append((k, ins))
                continue
            if len(cur) >= 2:
                groups.append(cur)
            cur = [(k, ins)] if eligible(ins) else []
        if len(cur) >= 2:
            groups.append(cur)
        if not groups:
            return
        access = collections.defaultdict(list)  # storage -> [(k, how)] over the whole program
        for k, ins in enumerate(self.instrs):
            subs = ins.subs or [ins]
            for sub in subs:
                if sub.op < EW_END:
                    for a, m in zip(sub.args, sub.modes):
                        if a is not None:
                            access[a.storage()].append((k, "r", m, a))
                    access[sub.out.storage()].append((k, "w" if not sub.acc else "a", sub.omode, sub.out))
                else:
                    for s in sub.reads():
                        access[s.storage()].append((k, "r", None, s))
                    for s in sub.writes():
                        access[s.storage()].append((k, "w", None, s))
        replace = {}
        for group in groups:
            n = group[0][1].R * group[0][1].C
            # split where tiling would reorder a reduction and a read of its result
            if n > BLK:
                parts, cur, reduced = [], [], set()
                for k, ins in group:
                    rd = {a.storage() for a in ins.args if a is not None}
                    scalar_rd = {a.storage() for a, m in zip(ins.args, ins.modes)
                                 if a is not None and m == SCALAR}
                    if rd & reduced or scalar_rd & {i.out.storage() for _, i in cur}:
                        parts.append(cur)
                        cur, reduced = [], set()
                    cur.append((k, ins))
                    if ins.omode != FULL:
                        reduced.add(ins.out.storage())
                parts.append(cur)
            else:
                parts = [group]
            for part in parts:
                if len(part) < 2:
                    continue
                ks = {k for k, _ in part}
                regs = self._registers(part, ks, access, n)
                fused = Ins(FUSED, part[-1][1].out, R=1, C=n)
                fused.subs = [ins for _, ins in part]
                replace[part[0][0]] = fused
                for k in ks:
                    replace.setdefault(k, None)
                self.registers.update(regs)
        self.instrs = [replace.get(k, ins) for k, ins in enumerate(self.instrs)
                       if replace.get(k, ins) is not None]

    def _registers(self, part, ks, access, n):
        """Register numbers for the temporaries accessed only inside ``part``, in full
        mode, written before they are read; at most NREG live at once."""
        cands, seen = [], set()
        for _k, ins in part:
            st = ins.out.storage()
            if (st.kind != "temp" or st in self.observable or st.size != n or st in seen
                    or st.dtype != ins.out.dtype):
                continue
            acc = access[st]
            if any(k2 not in ks for k2, *_ in acc):
                continue
            if any(m != FULL for _, _, m, _ in acc):
                continue
            first = acc[0]
            if first[1] != "w":
                continue
            cands.append(st)
            seen.add(st)
        if not cands:
            return {}
        order = [k for k, _ in part]
        pos = {k: i for i, k in enumerate(order)}
        live = {}
        for st in cands:
            idx = [pos[k2] for k2, *_ in access[st]]
            live[st] = (min(idx), max(idx))
        regs, free, active = {}, list(range(NREG - 1, -1, -1)), []
        for st in sorted(cands, key=lambda s: live[s][0]):
            start, end = live[st]
            for other in list(active):
                if live[other][1] < start:
                    active.remove(other)
                    free.append(regs[other])
            if not free:
                continue
            regs[st] = free.pop()
            active.append(st)
        # every slot object over a promoted storage maps to its register
        out = {}
        for st, r in regs.items():
            for _, _, _, s in access[st]:
                out[s] = r
            out[st] = r
        return out

    def _dead_code(self):
        while True:
            readers = self._readers()
            keep = []
            removed = False
            for ins in self.instrs:
                st = ins.out.storage()
                if (st.kind == "temp" and st not in self.observable and not readers.get(st)
                        and ins.op not in (SGD, ADAM)):
                    removed = True
                    continue
                keep.append(ins)
            self.instrs = keep
            if not removed:
                return

    def _allocate(self):
        """Temporaries share storage once dead (same dtype and size; never within one instruction)."""
        tracer = self.tracer
        last = {}
        first = {}
        for k, ins in enumerate(self.instrs):
            for s in ins.reads() + ins.writes():
                st = s.storage()
                if st.kind == "temp":
                    last[st] = k
                    first.setdefault(st, k)
        for st in self.observable:
            if st.kind == "temp":
                last[st] = len(self.instrs)
        pool = collections.defaultdict(list)
        blocks = {}
        self.blocks = []
        ends = collections.defaultdict(list)
        for st, k in last.items():
            ends[k].append(st)
        starts = collections.defaultdict(list)
        for st, k in first.items():
            starts[k].append(st)
        for k in range(len(self.instrs) + 1):
            for st in starts.get(k, ()):
                key = (st.dtype, st.size)
                if pool[key]:
                    blocks[st] = pool[key].pop()
                else:
                    blocks[st] = len(self.blocks)
                    self.blocks.append(np.zeros(max(st.size, 1), st.dtype))
            for st in ends.get(k, ()):
                if st in blocks:
                    pool[(st.dtype, st.size)].append(blocks[st])
        # Temps that are never written by an instruction (seeded constants are "array") get
        # their own zeroed block.
        for s in tracer.slots:
            if s.kind == "temp" and s not in blocks:
                blocks[s] = len(self.blocks)
                self.blocks.append(np.zeros(max(s.size, 1), s.dtype))
        self.block_of = blocks
        # Slot numbering: only slots the program uses (instruction operands and outputs).
        used = []
        seen = set()

        def use(s):
            if s is None or id(s) in seen:
                return
            if s.kind == "alias":
                use(s.base)
            seen.add(id(s))
            used.append(s)

        for ins in self.instrs:
            for sub in ins.subs or (ins,):
                use(sub.out)
                for a in sub.args:
                    use(a)
        for _, s, _ in self.outputs:
            use(s)
        for _, s in self.effects:
            use(s)
        for _, s in self.inputs:
            use(s)
        self.used = used
        self.number = {id(s): i for i, s in enumerate(used)}

    def initial_array(self, s):
        """The array a slot starts bound to (its block, its fixed array, or None)."""
        if s.kind == "temp":
            return self.blocks[self.block_of[s]][: s.size].reshape(s.shape)
        if s.kind == "array":
            return s.ref
        if s.kind == "state":
            return s.ref._data
        return None


# -------------------------------------------------------------------- executors --


def _mode_shape(mode, R, C):
    return ((R, C), (1, 1), (1, C), (R, 1))[mode]


def _sigmoid(x):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _pow_bwd(g, x, y, p):
    return np.where(y != 0, g * y * x ** np.where(y != 0, y - 1, 1.0), g * y * x)


def _pow_bwd_b(g, x, ans, p):
    return g * np.log(np.where(x == 0, 1.0, x)) * ans


_EW = {
    COPY: lambda a, b, c, p: a,
    ADD: lambda a, b, c, p: a + b,
    SUB: lambda a, b, c, p: a - b,
    MUL: lambda a, b, c, p: a * b,
    DIV: lambda a, b, c, p: a / b,
    NEG: lambda a, b, c, p: -a,
    EXP: lambda a, b, c, p: np.exp(a),
    LOG: lambda a, b, c, p: np.log(a),
    SIN: lambda a, b, c, p: np.sin(a),
    COS: lambda a, b, c, p: np.cos(a),
    TANH: lambda a, b, c, p: np.tanh(a),
    SIGMOID: lambda a, b, c, p: _sigmoid(a),
    RELU: lambda a, b, c, p: np.maximum(a, 0),
    SQRT: lambda a, b, c, p: np.sqrt(a),
    POW: lambda a, b, c, p: a**b,
    RELU_BWD: lambda a, b, c, p: a * (b > 0),
    SIGMOID_BWD: lambda a, b, c, p: a * (b * (1.0 - b)),
    TANH_BWD: lambda a, b, c, p: a * (1.0 - b * b),
    POW_BWD: lambda a, b, c, p: _pow_bwd(a, b, c, p),
    POW_BWD_B: lambda a, b, c, p: _pow_bwd_b(a, b, c, p),
    SIN_BWD: lambda a, b, c, p: a * np.cos(b),
    COS_BWD: lambda a, b, c, p: -a * np.sin(b),
    DIV_BWD_B: lambda a, b, c, p: -a * b / (c * c),
    SQRT_BWD: lambda a, b, c, p: a / (2.0 * b),
    MAX: lambda a, b, c, p: np.maximum(a, b),
    MIN: lambda a, b, c, p: np.minimum(a, b),
    MAX_BWD: lambda a, b, c, p: _minmax_bwd(a, b, c, np.maximum),
    MIN_BWD: lambda a, b, c, p: _minmax_bwd(a, b, c, np.minimum),
    WHERE: lambda a, b, c, p: np.where(a != 0, b, c),
}


def _minmax_bwd(g, x, y, pick):  # x̄ = ḡ [x = pick(x, y)] / (1 + [x = y]), as eager
    z = pick(x, y)
    return np.where(x == z, np.where(x == y, g * 0.5, g), 0.0)


def _ew_eval(ins, vals, out, f):
    """out (+)= f[0] op(vals) for elementwise ``ins``; ``vals`` the operand arrays."""
    R, C = ins.R, ins.C
    v3 = [None, None, None]
    for j, a in enumerate(vals[:3]):
        if a is not None:
            v3[j] = a.reshape(_mode_shape(ins.modes[j], R, C))
    v = _EW[ins.op](v3[0], v3[1], v3[2], f[1])
    if f[0] != 1.0:
        v = v * f[0]
    o2 = out.reshape(_mode_shape(ins.omode, R, C))
    if ins.omode != FULL:
        v = np.broadcast_to(v, (R, C))
        axes = {SCALAR: (0, 1), ROW: (0,), COL: (1,)}[ins.omode]
        v = v.sum(axis=axes, keepdims=True)
    if ins.acc:
        o2 += v
    else:
        o2[...] = v


class PyExecutor:
    """The reference executor: the plan as a Python loop of NumPy calls."""

    def __init__(self, plan):
        self.plan = plan
        self.arrays = [None] * len(plan.used)
        self.aliases = []  # (alias number, base number, shape) to refresh after a rebind
        for i, s in enumerate(plan.used):
            if s.kind == "alias":
                self.aliases.append((i, plan.number[id(s.base)], s.shape))
            else:
                self.arrays[i] = plan.initial_array(s)
        self.refresh()
        num = plan.number
        self.code = [(ins, num[id(ins.out)], [num[id(a)] if a is not None else None for a in ins.args],
                      list(ins.f)) for ins in plan.instrs]
        for ins in plan.instrs:
            if ins.subs is not None:
                ins.subs_code = [(s, num[id(s.out)], [num[id(a)] if a is not None else None
                                                      for a in s.args]) for s in ins.subs]

    def refresh(self):
        arrays = self.arrays
        for i, b, shape in self.aliases:
            base = arrays[b]
            arrays[i] = None if base is None else base.reshape(shape)

    def bind(self, i, array):
        self.arrays[i] = array

    def bind_scalar(self, i, value):
        s = self.plan.used[i]
        self.arrays[i] = np.array(value, dtype=s.dtype).reshape(s.shape)

    def set_param(self, k, j, value):
        self.code[k][3][j] = value

    def array(self, i):
        return self.arrays[i]

    def run(self):
        self.refresh()
        A = self.arrays
        for ins, o, args, f in self.code:
            out = A[o]
            op = ins.op
            R, C = ins.R, ins.C
            if op < EW_END:
                _ew_eval(ins, [None if a is None else A[a] for a in args], out, f)
            elif op == FUSED:
                for sub, so, sargs in ins.subs_code:
                    _ew_eval(sub, [None if a is None else A[a] for a in sargs], A[so], sub.f)
            elif op in (SCE, SCE_BWD):
                z = A[args[0]].reshape(R, C)
                t = A[args[1]].reshape(-1)
                if t.shape[0] != R or ((t < 0) | (t >= C)).any():
                    raise ValueError("fastgrad.compile: a label passed to the compiled function "
                                     "is out of range for the number of classes")
                s = z - z.max(axis=1, keepdims=True)
                lse = np.log(np.exp(s).sum(axis=1, keepdims=True))
                if op == SCE:
                    picked = (s - lse)[np.arange(R), t]
                    out.reshape(-1)[0] = -f[0] * picked.astype(np.float64).sum() / R
                else:
                    p = np.exp(s - lse)
                    p[np.arange(R), t] -= 1.0
                    v = p * (f[0] * A[args[2]].reshape(-1)[0] / R)
                    o2 = out.reshape(R, C)
                    if ins.acc:
                        o2 += v
                    else:
                        o2[...] = v
            elif op == CAST:
                out.reshape(-1)[...] = A[args[0]].reshape(-1)
            elif op == AFFINE:
                x, W = A[args[0]], A[args[1]]
                z = x.reshape(R, ins.K) @ W.T
                if args[2] is not None:
                    z += A[args[2]]
                if ins.flags & 2:
                    z = _sigmoid(z)
                out.reshape(R, C)[...] = z
            elif op == GEMM:
                a, b = A[args[0]], A[args[1]]
                a = a.T if ins.flags & 1 else a
                b = b.T if ins.flags & 2 else b
                v = a @ b
                if f[0] != 1.0:
                    v = v * f[0]
                o2 = out.reshape(R, C)
                if ins.acc:
                    o2 += v
                else:
                    o2[...] = v
            elif op == TRANSPOSE:
                v = A[args[0]].reshape(R, C).T
                o2 = out.reshape(C, R)
                if ins.acc:
                    o2 += v
                else:
                    o2[...] = v
            elif op == SGD:
                lr, mu, wd = f[1], f[2], f[3]
                W, dW = out, A[args[0]]
                g = dW + wd * W if wd else dW
                if args[1] is not None:
                    v = A[args[1]]
                    v *= mu
                    v += g
                    g = v
                W -= lr * g
            elif op == ADAM:
                lr, b1, b2, eps, c1, c2, wd = f[1:8]
                W, dW, m, v = out, A[args[0]], A[args[1]], A[args[2]]
                g = dW + wd * W if wd else dW
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                W -= lr * (m * c1) / (np.sqrt(v * c2) + eps)
            elif op in (LOGSOFTMAX, SOFTMAX):
                z = A[args[0]].reshape(R, C)
                s = z - z.max(axis=1, keepdims=True)
                if op == LOGSOFTMAX:
                    v = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
                else:
                    e = np.exp(s)
                    v = e / e.sum(axis=1, keepdims=True)
                out.reshape(R, C)[...] = v
            elif op in (LOGSOFTMAX_BWD, SOFTMAX_BWD):
                g, y = A[args[0]].reshape(R, C), A[args[1]].reshape(R, C)
                if op == LOGSOFTMAX_BWD:
                    v = g - np.exp(y) * g.sum(axis=1, keepdims=True)
                else:
                    v = y * (g - (g * y).sum(axis=1, keepdims=True))
                o2 = out.reshape(R, C)
                if ins.acc:
                    o2 += v
                else:
                    o2[...] = v
            else:  # pragma: no cover
                raise AssertionError(f"unknown opcode {op}")


def _cy_executor(plan):
    from ._replay import Program

    return Program(plan)


# --------------------------------------------------------------- the entry point --


class _Entry:
    """One cached trace: the plan, its executors and the per-call bindings."""

    def __init__(self, plan):
        self.plan = plan
        num = plan.number
        self.input_bind = [(pos, num[id(s)], s) for pos, s in plan.inputs if id(s) in num]
        self.state_bind = []  # (number, tensor, array bound last)
        self.gradin_bind = []
        for i, s in enumerate(plan.used):
            if s.kind == "state":
                self.state_bind.append([i, s.ref, s.ref._data, s])
            elif s.kind == "gradin":
                self.gradin_bind.append((i, s.ref, s))
        self.dyn = []  # [k, j, obj, attr, mult, value set last]
        self.preludes = []
        for k, ins in enumerate(plan.instrs):
            for j, d in ins.dyn.items():
                if j == "prelude":
                    self.preludes.append((k, d))
                else:
                    self.dyn.append([k, j, d[0], d[1], d[2], ins.f[j]])
        self.out_numbers = [(kind, num[id(s)] if s is not None else None, v)
                            for kind, s, v in plan.outputs]
        self.effects = [(t, num[id(s)] if s is not None else None) for t, s in plan.effects]
        self.assume_none = plan.assume_none
        self.executors = {}
        self.simple = (not self.state_bind and not self.gradin_bind and not self.dyn
                       and not self.preludes and not self.effects and len(self.out_numbers) == 1
                       and not isinstance(plan.template, (tuple, list, dict)))
        self.guarded = bool(self.assume_none or self.gradin_bind or self.state_bind)
        self.armed = False

    def executor(self, compiled_ok):
        name = "cython" if compiled_ok else "reference"
        ex = self.executors.get(name)
        if ex is None and compiled_ok:
            try:
                import fastgrad._replay  # noqa: F401
            except ImportError:  # the executor was not built: the reference loop runs the plan
                return self.executor(False)
        if ex is None:
            ex = self.executors[name] = _cy_executor(self.plan) if compiled_ok else PyExecutor(self.plan)
        return ex

    def guard(self):
        if not self.guarded:
            return True
        for t in self.assume_none:
            if t._node is None or t._node.grad is not None:
                return False
        for _i, t, s in self.gradin_bind:
            g = _tape.leaf_grad(t._node) if t._node is not None else None
            if g is None or np.shape(g) != s.shape:
                return False
        for entry in self.state_bind:
            t, s = entry[1], entry[3]
            d = t._data
            if d is not entry[2]:
                if (type(d) is not np.ndarray or d.shape != s.shape or d.dtype != s.dtype
                        or not d.flags.c_contiguous):
                    return False
        return True

    def run(self, args, compiled_ok):
        ex = self.executors.get("cython" if compiled_ok else "reference") or self.executor(compiled_ok)
        for pos, i, s in self.input_bind:
            a = args[pos]
            if type(a) is not np.ndarray:
                ex.bind_scalar(i, a)  # a number: written into the plan's own buffer
                continue
            if a.dtype != s.dtype:
                a = a.astype(s.dtype)
            elif not a.flags.c_contiguous or not a.flags.aligned:
                a = np.ascontiguousarray(a)
            ex.bind(i, a)
        if self.simple:  # no parameters, optimizer or .grad bookkeeping: the S1/S2 path
            ex.run()
            kind, i, v = self.out_numbers[0]
            return ex.array(i).copy() if kind == "array" else self._outputs(ex)
        for entry in self.state_bind:
            d = entry[1]._data
            if d is not entry[2]:
                entry[2] = d
                ex.bind(entry[0], d)
        for i, t, s in self.gradin_bind:
            g = _tape.leaf_grad(t._node)
            if g.dtype != s.dtype or not g.flags.c_contiguous:
                g = np.ascontiguousarray(g, dtype=s.dtype)
            ex.bind(i, g)
        for entry in self.dyn:
            v = entry[4] * getattr(entry[2], entry[3])
            if v != entry[5]:
                entry[5] = v
                ex.set_param(entry[0], entry[1], v)
        for k, fn in self.preludes:
            for j, v in fn().items():
                ex.set_param(k, j, v)
        ex.run()
        for t, i in self.effects:
            t._node.grad = None if i is None else ex.array(i)
        return self._outputs(ex)

    def arm(self, ex, sig):
        """Hand the per-call checks and bindings to the compiled program's ``call``."""
        in_spec = []
        for pos, i, s in self.input_bind:
            is_float = sig[pos] is float
            in_spec.append((pos, i, is_float, len(s.shape), s.shape, s.dtype.num))
        state = [[i, t, None, len(s.shape), s.shape, s.dtype.num] for i, t, _, s in self.state_bind]
        gradin = [(i, t, len(s.shape), s.shape, s.dtype.num) for i, t, s in self.gradin_bind]
        groups = {}
        for k, j, obj, attr, mult, _ in self.dyn:
            g = groups.setdefault((id(obj), attr), [obj, attr, math.nan, []])
            g[3].append((k, j, mult))
        effects = [(t, -1 if i is None else i) for t, i in self.effects]
        single = (len(self.out_numbers) == 1
                  and not isinstance(self.plan.template, (tuple, list, dict)))
        ex.set_call(_MISS, len(sig), in_spec, state, list(self.assume_none), gradin,
                    list(groups.values()), list(self.preludes), effects,
                    self.out_numbers[0] if single else None, Tensor._wrap, self._outputs)

    def _outputs(self, ex):
        outs = []
        for kind, i, v in self.out_numbers:
            if kind == "const":
                outs.append(v)
            elif kind == "tensor":
                outs.append(Tensor._wrap(ex.array(i).copy()))
            else:
                outs.append(ex.array(i).copy())
        if self.plan.template is None or not isinstance(self.plan.template, (tuple, list, dict)):
            return outs[0] if outs else None
        return _rebuild(self.plan.template, outs)


_MISS = object()  # Program.call's "take the Python path"


def _signature(args):
    sig = []
    for a in args:
        if type(a) is float:
            sig.append(float)
        elif isinstance(a, np.ndarray):
            sig.append((a.shape, a.dtype.str))
        elif isinstance(a, Tensor):
            raise TypeError("fastgrad.compile: pass arrays, not tensors, as arguments")
        elif isinstance(a, (float, int, np.floating, np.integer)) and not isinstance(a, bool):
            sig.append(float)
        else:
            raise TypeError(
                f"fastgrad.compile: arguments must be arrays or numbers, got {type(a).__name__} "
                "(close over other objects instead)"
            )
    return tuple(sig)


class Compiled:
    """A function compiled by :func:`compile`: traces per input signature, then replays."""

    def __init__(self, fn, cache_size=8, keep_grads=True):
        self.fn = fn
        self.cache_size = cache_size
        self.keep_grads = keep_grads
        self.cache = collections.OrderedDict()
        self.traces = 0
        self._fast = None  # the compiled program of the last replayed entry
        self._fast_kernels = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args):
        fast = self._fast
        if fast is not None and _backend.kernels() is self._fast_kernels:
            r = fast.call(args)  # checks, binds, runs and builds the outputs in C
            if r is not _MISS:
                return r
        sig = _signature(args)
        entry = self.cache.get(sig)
        if entry is not None and entry.guard():
            kernels = _backend.kernels()
            compiled = kernels.NAME == "cython"
            r = entry.run(args, compiled)
            if compiled:
                ex = entry.executors.get("cython")
                if hasattr(ex, "set_call"):
                    if not entry.armed:
                        entry.arm(ex, sig)
                        entry.armed = True
                    self._fast, self._fast_kernels = ex, kernels
            return r
        return self._trace(sig, args)

    def _trace(self, sig, args):
        tracer = _Tracer(getattr(self.fn, "__name__", "function"))
        traced_args, inputs = [], []
        for pos, a in enumerate(args):
            arr = np.array(a, dtype=np.float64) if type(a) is not np.ndarray else np.ascontiguousarray(a)
            twin = None
            if arr.dtype not in _FLOATS:
                if arr.dtype.kind in "iu":  # integers stay integers (labels), read as float64
                    arr = arr.astype(np.int64)
                    twin = arr.astype(np.float64)
                elif arr.dtype.kind == "b":
                    arr = arr.astype(np.float64)
                else:
                    raise TypeError(f"fastgrad.compile: argument {pos} has dtype {arr.dtype}")
            s = tracer.new(arr.shape, arr.dtype, "input", pos)
            tracer._register(arr, s)
            t = Tensor._wrap(arr)
            tracer._register(t, s)
            if twin is not None:
                ts = tracer.new(arr.shape, np.float64)
                tracer.emit(Ins(CAST, ts, (s,), R=1, C=arr.size))
                tt = Tensor._wrap(twin)
                tracer._register(twin, ts)
                tracer._register(tt, ts)
                tracer.int_twins[id(t)] = tt
            traced_args.append(t)
            inputs.append((pos, s))
        with _Interceptor(tracer):
            result = self.fn(*traced_args)
        plan = Plan(tracer, inputs, result, self.keep_grads)
        tracer.forget()  # the traced tensors (and the graph they hold) may go now
        entry = _Entry(plan)
        self.cache[sig] = entry
        self.cache.move_to_end(sig)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        self.traces += 1
        return _eager_result(result)

    def plan_for(self, *args):
        """The plan that a call with these arguments replays (for inspection and tests)."""
        return self.cache[_signature(args)].plan


def _eager_result(result):
    def conv(v):
        if isinstance(v, Tensor):
            return Tensor._wrap(np.array(v._data))
        if isinstance(v, np.ndarray):
            return np.array(v)
        return v

    if isinstance(result, (tuple, list, dict)):
        return _rebuild(result, [conv(v) for v in _leaves_of(result, [])])
    return conv(result)


def compile(fn=None, *, cache_size: int = 8, keep_grads: bool = True):  # noqa: A001
    """Trace ``fn`` once per argument signature and replay it as a compiled program.

    Arguments must be arrays or numbers (numbers become 0-d float64 arrays); inside
    ``fn`` they are tensors without grad. Tensors ``fn`` reads from outside (model
    parameters) are state, read at every call; arrays it closes over are constants.
    With ``keep_grads=False`` the parameters' ``.grad`` is left as None after each call,
    which lets the planner fold each weight gradient into its SGD update.
    """
    if fn is None:
        return lambda f: Compiled(f, cache_size=cache_size, keep_grads=keep_grads)
    return Compiled(fn, cache_size=cache_size, keep_grads=keep_grads)
