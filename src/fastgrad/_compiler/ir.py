"""The program ``fastgrad.compile`` builds: buffers (``Slot``) and instructions (``Ins``).

Elementwise opcodes compute v = f(a, b, c) per element of an R × C iteration space and
write out = α v (or out += α v). Operands and the output have a broadcast mode. The
opcodes are listed once, in ``fastgrad._opcodes``.
"""

import math

import numpy as np

from .._opcodes import ADAM, AFFINE_T, BLK, COL, FULL, GEMM, HOST, NREG, OPNAMES, ROW, SCALAR, SGD  # noqa: F401


class TracingError(RuntimeError):
    """The function cannot be recorded as a replayable program (the message says why)."""


# The operand modes (FULL a[r, c]; SCALAR a[0]; ROW a[c], broadcast down the rows; COL
# a[r]; as an output mode, SCALAR/ROW/COL mean "sum into", the adjoint of that broadcast),
# the fused chains' tile and register counts and the affine map's transpose limit are
# shared with the C executor: fastgrad._opcodes defines them once.


FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


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
    A FUSED instruction runs ``subs``, elementwise instructions over one R × C space.
    A HOST instruction calls ``fn`` with the arrays of its ``args``, of which it writes
    the first ``K`` (``out`` is the first)."""

    __slots__ = ("op", "out", "args", "modes", "omode", "acc", "R", "C", "K", "flags", "f", "dyn",
                 "subs", "subs_code", "fn")

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
        self.fn = None

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
        if self.op == HOST:
            return list(self.args[: self.K])
        if self.op == GEMM and self.flags & 4:  # then W −= η out (args[2] = W)
            return [self.out, self.args[2]]
        return [self.out]

    def __repr__(self):
        if self.subs is not None:
            inner = "; ".join(repr(s) for s in self.subs)
            return f"FUSED[{self.R}x{self.C}]{{{inner}}}"
        args = ", ".join(repr(a) for a in self.args)
        return f"{self.out!r} = {OPNAMES.get(self.op, self.op)}({args}) acc={int(self.acc)}"


# ---------------------------------------------------------- broadcasting helpers --


def broadcast_modes(out_shape, shapes, what):
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


def reduce_mode(shape, axis):
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


