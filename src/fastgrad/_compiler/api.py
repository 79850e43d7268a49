"""``fastgrad.compile``: record a training step once, replay it as one flat program.

The first call with given argument shapes and dtypes runs the function eagerly on the
tape while a tracer watches (``tracer``): every primitive call (the forward), every
backward sweep, every optimizer update, each lowered by its primitive's registry entry
(``lowering``). The result is a flat list of instructions over numbered buffers
(``ir``), which the planner (``planner``) fuses and lays out. Later calls with the same
shapes replay the plan: on the cython backend in one compiled call without the GIL
(``fastgrad._replay``), on the reference backend as a Python loop over the same plan
(``executor``).

As in ``jax.jit``, Python runs only while tracing: control flow is frozen, arrays that
are not arguments are constants, and what cannot be replayed is refused with a
:class:`TracingError` (branching on a traced value, NumPy calls on traced data, a
primitive without a lowering) instead of giving a wrong answer later. See docs/compile.md.

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

import numpy as np

from .. import _backend
from .._factored import leaf_grad
from .._opcodes import CAST
from .._tensor import Tensor
from .executor import PyExecutor, compiled_executor
from .ir import FLOATS, Ins, TracingError
from .planner import Plan, leaves_of, rebuild
from .tracer import Tracer, tracing

__all__ = ["compile", "TracingError", "Compiled"]




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
            ex = self.executors[name] = compiled_executor(self.plan) if compiled_ok else PyExecutor(self.plan)
        return ex

    def guard(self):
        if not self.guarded:
            return True
        for t in self.assume_none:
            if t._node is None or t._node.grad is not None:
                return False
        for _i, t, s in self.gradin_bind:
            g = leaf_grad(t._node) if t._node is not None else None
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
            g = leaf_grad(t._node)
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
        return rebuild(self.plan.template, outs)


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
        tracer = Tracer(getattr(self.fn, "__name__", "function"))
        traced_args, inputs = [], []
        for pos, a in enumerate(args):
            arr = np.array(a, dtype=np.float64) if type(a) is not np.ndarray else np.ascontiguousarray(a)
            twin = None
            if arr.dtype not in FLOATS:
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
        with tracing(tracer):
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
        return rebuild(result, [conv(v) for v in leaves_of(result, [])])
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
