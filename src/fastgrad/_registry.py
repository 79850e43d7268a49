"""The registry: every primitive of fastgrad is one unit, declared in one place.

A primitive is identified by its object (never by its name). Its entry holds

- ``fun``: the forward on arrays (a NumPy expression or a kernel call);
- ``vjps``: one local derivative rule per argument, ``rule(g, ans, *args, **kwargs)``
  turning the output's error signal v̄ (``g``) into that argument's, v̄ ∂v/∂a, written
  with primitives so the backward can be recorded again (grad of grad);
- ``formula``: the rule in the lecture's notation, as ``explain`` prints it;
- ``kernels``: the backend kernels it calls (names of ``fastgrad.backends.KERNELS``);
- ``lowering``: what ``fastgrad.compile`` emits for it (``fastgrad._compiler.lowering``),
  or ``NotCompiled("why")``: then compile refuses it with a message naming it;
- ``samples``: inputs its tests use, ``samples(rng) -> [Sample, ...]``;
- ``order``: how many times its rules are checked by finite differences (2: its rules
  are differentiable, grad of grad works; 1: first order only).

Adding a primitive
------------------
1. Write its forward and its rules beside it, in the module of its family
   (``fastgrad/_ops.py`` for the core; ``fastgrad/numpy/`` for NumPy's functions)::

       # y = softplus(x) = log(1 + eˣ):  x̄ = ȳ σ(x)
       softplus = define(
           _softplus, "softplus",
           vjps=[lambda g, ans, x: g * sigmoid(x)],
           formula=Formula("{out} = softplus({0})", {0: "{out}̄ ∘ σ({0})"}),
           kernels=("softplus_forward",),
           lowering=unary(SOFTPLUS, grad=SOFTPLUS_BWD, reads="x"),
           samples=lambda r: [Sample(r.normal(size=(3, 4)))],
       )

2. If it has a compiled kernel: the kernel in both backends (``backends/reference.py``
   and ``backends/_cykernels.pyx``, listed in ``backends.KERNELS``); for an elementwise
   lowering, an opcode in ``fastgrad/_opcodes.py`` and its loop body in the C table
   (``csrc/``) and in the Python executor's table.
3. Export it where users find it (``fastgrad.numpy``'s map, ``fastgrad/__init__.py``).

``tests/test_registry.py`` walks every registered primitive and checks: the rules
against central finite differences on every sample, on both backends (second order where
``order`` is 2); the lowering against the eager result and gradient on every sample, on
both executors, or that compile refuses a ``NotCompiled`` one; a formula; kernels that
exist. A primitive missing any of these fails the suite.
"""

import numpy as np

from ._tape import Primitive

__all__ = ["define", "register", "Sample", "Formula", "NotCompiled", "TraceBody", "REGISTRY", "elementwise_macs"]

REGISTRY = []  # every registered primitive, in definition order


class Sample:
    """One input a primitive's tests use: positional ``args`` (arrays, numbers, indices)
    and ``kwargs``. ``wrt`` are the argument positions differentiated (default: every
    floating-point or complex array or number the primitive has a rule for)."""

    __slots__ = ("args", "kwargs", "wrt")

    def __init__(self, *args, wrt=None, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.wrt = wrt

    def positions(self, prim):
        if self.wrt is not None:
            return tuple(self.wrt)
        return tuple(i for i, a in enumerate(self.args)
                     if i in prim.vjps and isinstance(a, (float, complex, np.ndarray))
                     and np.asarray(a).dtype.kind in "fc")

    def __repr__(self):
        shapes = ", ".join(str(np.shape(a)) if isinstance(a, np.ndarray) else repr(a)
                           for a in self.args)
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"Sample({shapes}{extra})"


def elementwise_macs(out_shape, arg_shapes):
    """One multiply-add per output element, forward and per argument backward."""
    n = int(np.prod(out_shape)) if out_shape else 1
    return n, {i: n for i in range(len(arg_shapes))}


class Formula:
    """How ``explain`` writes a node. ``forward`` and ``backward[i]`` are templates:
    ``{out}`` is the node's label, ``{0}``, ``{1}``, … its arguments' labels (a
    value for a constant). ``macs(out_shape, arg_shapes) -> (forward, {i: backward})``
    counts multiply-adds (default: one per output element, as an elementwise op).
    ``broadcasts``: the op broadcasts its arguments, so an argument's error signal is
    summed over its broadcast axes (explain says so where it happens)."""

    __slots__ = ("forward", "backward", "macs", "broadcasts")

    def __init__(self, forward, backward, macs=elementwise_macs, broadcasts=False):
        self.forward = forward
        self.backward = dict(backward)
        self.macs = macs
        self.broadcasts = broadcasts

    def __repr__(self):
        return f"Formula({self.forward!r}, {self.backward!r})"


class NotCompiled:
    """The mark of a primitive ``fastgrad.compile`` refuses: ``reason`` says why a
    replay could not be exact (a data-dependent shape, a value Python must see)."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason

    def __repr__(self):
        return f"NotCompiled({self.reason!r})"


class TraceBody:
    """The mark of a primitive ``fastgrad.compile`` traces through: its ``body`` is
    made of fastgrad operations (a checkpointed block), so the body is recorded."""

    __slots__ = ("body",)

    def __init__(self, body):
        self.body = body


def define(fun, name=None, *, vjps, formula, samples, lowering, kernels=(), saves_args=True,
           saves_ans=False, order=2, joint_vjp=None, cls=Primitive):
    """A new registered primitive: see the guide at the top of this module.

    ``vjps`` is a list (one rule per argument, None for an argument with no derivative)
    or a dict {argument position: rule} (variadic primitives: a dict that answers for
    every position)."""
    prim = cls(fun, name)
    if isinstance(vjps, dict):
        prim.vjps = vjps
    else:
        prim.defvjp(*vjps)
    prim.saves_args = saves_args
    prim.saves_ans = saves_ans
    prim.joint_vjp = joint_vjp
    return register(prim, formula=formula, samples=samples, lowering=lowering,
                    kernels=kernels, order=order)


def register(prim, *, formula, samples, lowering, kernels=(), order=2):
    """Register a primitive made elsewhere (its rules already attached)."""
    prim.formula = formula
    prim.samples = samples
    prim.lowering = lowering
    prim.kernels = tuple(kernels)
    prim.order = order
    REGISTRY.append(prim)
    return prim
