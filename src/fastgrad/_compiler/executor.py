"""The executors of a plan: the Python reference loop here, and the compiled one.

``PyExecutor`` runs a plan as a loop of NumPy calls (the reference backend, and the
specification the compiled executor, ``fastgrad._replay.Program``, is tested against).
Each elementwise opcode's meaning is one line of ``_EW``; the compiled executor's is
one line of its C table.
"""

import numpy as np

from .._opcodes import (
    ADAM,
    ADD,
    AFFINE,
    CAST,
    COPY,
    COS,
    COS_BWD,
    DIV,
    DIV_BWD_B,
    EW_END,
    EXP,
    FUSED,
    GEMM,
    HOST,
    LOG,
    LOGSOFTMAX,
    LOGSOFTMAX_BWD,
    MAX,
    MAX_BWD,
    MIN,
    MIN_BWD,
    MUL,
    NEG,
    POW,
    POW_BWD,
    POW_BWD_B,
    RELU,
    RELU_BWD,
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
from .ir import COL, FULL, ROW, SCALAR

__all__ = ["PyExecutor", "compiled_executor", "ew_eval"]




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


def ew_eval(ins, vals, out, f):
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
                ew_eval(ins, [None if a is None else A[a] for a in args], out, f)
            elif op == HOST:
                ins.fn([A[a] for a in args])
            elif op == FUSED:
                for sub, so, sargs in ins.subs_code:
                    ew_eval(sub, [None if a is None else A[a] for a in sargs], A[so], sub.f)
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


def compiled_executor(plan):
    from .._replay import Program

    return Program(plan)


