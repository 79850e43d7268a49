"""Elementwise lowerings written as expressions, mirroring the eager rules.

A rule such as arcsin's x̄ = ȳ / √(1 − x²) is written here as it is eagerly, over
values ``V`` of one iteration space: ``lambda g, y, x: g / call(SQRT, 1.0 - x * x)``.
Each operation becomes one elementwise instruction (the planner fuses the run into one
tiled loop), in the eager rule's order, so the compiled result rounds as the eager one
does. ``elementwise(forward, *rules)`` is the family: any number of arguments,
broadcast as NumPy does.
"""

import numpy as np

from .._opcodes import ADD, AND, COPY, DIV, EQ, GT, LT, MAX, MIN, MUL, NE, NEG, SUB, WHERE
from .ir import FULL, SCALAR
from .lowering import Lowering, broadcast_or_expand, scatter_into

__all__ = ["V", "call", "elementwise", "clip", "nan_to_num"]


class V:
    """A value of an elementwise expression: an operand (a slot read in a mode), a
    number, or an operation on values (emitted when the expression is)."""

    __slots__ = ("op", "args", "slot", "mode", "num")

    def __init__(self, op=None, args=(), slot=None, mode=FULL, num=None):
        self.op, self.args, self.slot, self.mode, self.num = op, tuple(args), slot, mode, num

    def __add__(self, b):
        return V(ADD, (self, _v(b)))

    def __radd__(self, a):
        return V(ADD, (_v(a), self))

    def __sub__(self, b):
        return V(SUB, (self, _v(b)))

    def __rsub__(self, a):
        return V(SUB, (_v(a), self))

    def __mul__(self, b):
        return V(MUL, (self, _v(b)))

    def __rmul__(self, a):
        return V(MUL, (_v(a), self))

    def __truediv__(self, b):
        return V(DIV, (self, _v(b)))

    def __rtruediv__(self, a):
        return V(DIV, (_v(a), self))

    def __neg__(self):
        return V(NEG, (self,))

    def __pow__(self, p):
        if p != 2:
            raise ValueError("V ** p: only the square (NumPy's x ** 2 is x · x)")
        return V(MUL, (self, self))


def _v(x):
    return x if isinstance(x, V) else V(num=float(x))


def call(op, *args):
    """The elementwise opcode ``op`` applied to values (numbers allowed)."""
    return V(op, [_v(a) for a in args])


class _Space:
    """Emits expressions over an R × C iteration space of one dtype."""

    def __init__(self, tr, R, C, dtype):
        self.tr, self.R, self.C, self.dtype = tr, R, C, dtype

    def operand(self, v):
        if v.slot is not None:
            return v.slot, v.mode
        if v.num is not None:
            return self.tr.const(v.num, self.dtype), SCALAR
        out = self.tr.new((self.R * self.C,), self.dtype)
        self.tr.ew(v.op, out, [self.operand(a) for a in v.args], R=self.R, C=self.C)
        v.slot, v.mode = out, FULL  # emitted once, however often it is read
        return out, FULL

    def emit(self, v, out, omode=FULL, acc=False):
        if v.op is None or v.slot is not None:
            op, operands = COPY, [self.operand(v)]
        else:
            op, operands = v.op, [self.operand(a) for a in v.args]
        self.tr.ew(op, out, operands, omode=omode, R=self.R, C=self.C, acc=acc)


def elementwise(forward, *rules, arity=None, refuses=()):
    """y = forward(x₀, x₁, …) elementwise, the arguments broadcast as NumPy does;
    x̄ᵢ = rules[i](ȳ, y, x₀, x₁, …) summed over xᵢ's broadcast axes. ``forward`` and
    the rules are expressions of ``V`` (an argument that is None stays None). ``arity``:
    how many leading arguments are arrays (default: one per rule); the others are
    passed to ``forward`` and the rules as given (after the values)."""
    n = arity if arity is not None else len(rules)

    def forward_(tr, args, kwargs, ans):
        xs = list(args[:n]) + [None] * (n - len(args[:n]))
        present = [k for k, a in enumerate(xs) if a is not None]
        slots = [tr.slot_of(xs[k], ans.dtype) for k in present]
        R, C, operands, backs = broadcast_or_expand(tr, ans.shape, slots, "an elementwise function")
        ops, bk = [None] * n, [None] * n
        for k, o, b in zip(present, operands, backs):
            ops[k], bk[k] = o, b
        extra = tuple(args[n:])
        space = _Space(tr, R, C, ans.dtype)
        out = tr.new(ans.shape, ans.dtype)
        space.emit(forward(*_values(ops), *extra, **kwargs), out)
        return out, (R, C, ops, bk, extra, kwargs)

    def backward(tr, rec, g, i, grads):
        R, C, ops, bk, extra, kwargs = rec.info
        space = _Space(tr, R, C, g.dtype)
        v = rules[i](V(slot=tr.operand(g, g.dtype)), V(slot=rec.out), *_values(ops), *extra, **kwargs)
        target = rec.ins[i]
        if bk[i] is None:
            t, acc = tr.grad_into(target, grads)
            space.emit(v, t, omode=ops[i][1], acc=acc)
        else:
            full = tr.new((R * C,), g.dtype)
            space.emit(v, full)
            scatter_into(tr, grads, target, full, bk[i])

    return Lowering(forward_, backward, refuses=refuses)


def _values(ops):
    return [None if o is None else V(slot=o[0], mode=o[1]) for o in ops]


# --------------------------------------------------------------- selections ----


def _clip_forward(x, lo, hi):
    v = x
    if lo is not None:
        v = call(MAX, v, lo)  # np.clip: min(max(x, lo), hi), a NaN anywhere winning
    if hi is not None:
        v = call(MIN, v, hi)
    return v


def _both(a, b):
    if a is None:
        return b
    return a if b is None else call(AND, a, b)


def clip():
    """y = min(max(x, lo), hi) (lo or hi may be None): each element comes from one of the
    three, and its signal goes there (x̄ where lo < x < hi; lō where x < lo < hi; hī where
    max(x, lo) > hi), as eagerly."""
    return elementwise(
        _clip_forward,
        lambda g, y, x, lo, hi: g * _both(None if lo is None else call(GT, x, lo),
                                          None if hi is None else call(LT, x, hi)),
        lambda g, y, x, lo, hi: g * _both(call(LT, x, lo), None if hi is None else call(LT, lo, hi)),
        lambda g, y, x, lo, hi: g * call(GT, x if lo is None else call(MAX, x, lo), hi),
    )


def nan_to_num():
    """y = x with NaN, +inf and −inf replaced (by 0, the largest and the smallest
    number, or the given ones):  x̄ = ȳ where x is finite, else 0."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        given = dict(zip(("copy", "nan", "posinf", "neginf"), args[1:]))
        given.update(kwargs)
        big = float(np.finfo(ans.dtype).max)
        nan = given.get("nan", 0.0)
        posinf = big if given.get("posinf") is None else given["posinf"]
        neginf = -big if given.get("neginf") is None else given["neginf"]
        x = V(slot=sx)
        inner = call(WHERE, call(EQ, x, -np.inf), neginf, x)
        v = call(WHERE, call(NE, x, x), nan, call(WHERE, call(EQ, x, np.inf), posinf, inner))
        out = tr.new(ans.shape, ans.dtype)
        _Space(tr, 1, sx.size, ans.dtype).emit(v, out)
        return out, sx

    def backward(tr, rec, g, i, grads):
        x = V(slot=rec.info)
        t, acc = tr.grad_into(rec.ins[0], grads)
        finite = call(EQ, x - x, 0.0)  # x − x is 0 exactly where x is finite
        _Space(tr, 1, rec.info.size, g.dtype).emit(V(slot=tr.operand(g, g.dtype)) * finite, t, acc=acc)

    return Lowering(forward, backward)
