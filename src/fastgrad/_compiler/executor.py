"""The executors of a plan: the Python reference loop here, and the compiled one.

``PyExecutor`` runs a plan as a loop of NumPy calls (the reference backend, and the
specification the compiled executor, ``fastgrad._replay.Program``, is tested against).
Each elementwise opcode's meaning is one line of ``_EW``; the compiled executor's is
one line of its C table.
"""

import numpy as np

from .. import _opcodes as op
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
    op.COPY: lambda a, b, c, p: a,
    op.ADD: lambda a, b, c, p: a + b,
    op.SUB: lambda a, b, c, p: a - b,
    op.MUL: lambda a, b, c, p: a * b,
    op.DIV: lambda a, b, c, p: a / b,
    op.NEG: lambda a, b, c, p: -a,
    op.EXP: lambda a, b, c, p: np.exp(a),
    op.LOG: lambda a, b, c, p: np.log(a),
    op.SIN: lambda a, b, c, p: np.sin(a),
    op.COS: lambda a, b, c, p: np.cos(a),
    op.TANH: lambda a, b, c, p: np.tanh(a),
    op.SOFTPLUS: lambda a, b, c, p: np.logaddexp(0.0, a),
    op.SIGMOID: lambda a, b, c, p: _sigmoid(a),
    op.RELU: lambda a, b, c, p: np.maximum(a, 0),
    op.SQRT: lambda a, b, c, p: np.sqrt(a),
    op.POW: lambda a, b, c, p: a**b,
    op.RELU_BWD: lambda a, b, c, p: a * (b > 0),
    op.SIGMOID_BWD: lambda a, b, c, p: a * (b * (1.0 - b)),
    op.TANH_BWD: lambda a, b, c, p: a * (1.0 - b * b),
    op.POW_BWD: lambda a, b, c, p: _pow_bwd(a, b, c, p),
    op.POW_BWD_B: lambda a, b, c, p: _pow_bwd_b(a, b, c, p),
    op.SIN_BWD: lambda a, b, c, p: a * np.cos(b),
    op.COS_BWD: lambda a, b, c, p: -a * np.sin(b),
    op.DIV_BWD_B: lambda a, b, c, p: -a * b / (c * c),
    op.SQRT_BWD: lambda a, b, c, p: a / (2.0 * b),
    op.MAX: lambda a, b, c, p: np.maximum(a, b),
    op.MIN: lambda a, b, c, p: np.minimum(a, b),
    op.MAX_BWD: lambda a, b, c, p: _minmax_bwd(a, b, c, np.maximum),
    op.MIN_BWD: lambda a, b, c, p: _minmax_bwd(a, b, c, np.minimum),
    op.WHERE: lambda a, b, c, p: np.where(a != 0, b, c),
    op.GT: lambda a, b, c, p: _mask(a > b),
    op.GE: lambda a, b, c, p: _mask(a >= b),
    op.LT: lambda a, b, c, p: _mask(a < b),
    op.LE: lambda a, b, c, p: _mask(a <= b),
    op.EQ: lambda a, b, c, p: _mask(a == b),
    op.NE: lambda a, b, c, p: _mask(a != b),
    op.AND: lambda a, b, c, p: _mask((a != 0) & (b != 0)),
    op.OR: lambda a, b, c, p: _mask((a != 0) | (b != 0)),
    op.XOR: lambda a, b, c, p: _mask((a != 0) ^ (b != 0)),
    op.NOT: lambda a, b, c, p: _mask(a == 0),
    op.ABS: lambda a, b, c, p: np.abs(a),
    op.SIGN: lambda a, b, c, p: np.sign(a),
    op.FLOOR: lambda a, b, c, p: np.floor(a),
    op.TAN: lambda a, b, c, p: np.tan(a),
    op.ASIN: lambda a, b, c, p: np.arcsin(a),
    op.ACOS: lambda a, b, c, p: np.arccos(a),
    op.ATAN: lambda a, b, c, p: np.arctan(a),
    op.SINH: lambda a, b, c, p: np.sinh(a),
    op.COSH: lambda a, b, c, p: np.cosh(a),
    op.ASINH: lambda a, b, c, p: np.arcsinh(a),
    op.ACOSH: lambda a, b, c, p: np.arccosh(a),
    op.ATANH: lambda a, b, c, p: np.arctanh(a),
    op.LOG2: lambda a, b, c, p: np.log2(a),
    op.LOG10: lambda a, b, c, p: np.log10(a),
    op.LOG1P: lambda a, b, c, p: np.log1p(a),
    op.EXPM1: lambda a, b, c, p: np.expm1(a),
    op.EXP2: lambda a, b, c, p: np.exp2(a),
    op.SINC: lambda a, b, c, p: np.sinc(a),
    op.ANGLE: lambda a, b, c, p: np.angle(a),
    op.ATAN2: lambda a, b, c, p: np.arctan2(a, b),
    op.HYPOT: lambda a, b, c, p: np.hypot(a, b),
    op.LOGADDEXP: lambda a, b, c, p: np.logaddexp(a, b),
    op.LOGADDEXP2: lambda a, b, c, p: np.logaddexp2(a, b),
    op.REMAINDER: lambda a, b, c, p: np.remainder(a, b),
    op.FMAX: lambda a, b, c, p: np.fmax(a, b),
    op.FMIN: lambda a, b, c, p: np.fmin(a, b),
    op.BALANCED: lambda a, b, c, p: (a == b) / (1.0 + (a == c)),
}


def _mask(m):
    return m.astype(np.float64)


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
            code = ins.op
            R, C = ins.R, ins.C
            if code < op.EW_END:
                ew_eval(ins, [None if a is None else A[a] for a in args], out, f)
            elif code == op.HOST:
                ins.fn([A[a] for a in args])
            elif code == op.FUSED:
                for sub, so, sargs in ins.subs_code:
                    ew_eval(sub, [None if a is None else A[a] for a in sargs], A[so], sub.f)
            elif code in (op.SCE, op.SCE_BWD):
                z = A[args[0]].reshape(R, C)
                t = A[args[1]].reshape(-1)
                if t.shape[0] != R or ((t < 0) | (t >= C)).any():
                    raise ValueError("fastgrad.compile: a label passed to the compiled function "
                                     "is out of range for the number of classes")
                s = z - z.max(axis=1, keepdims=True)
                lse = np.log(np.exp(s).sum(axis=1, keepdims=True))
                if code == op.SCE:
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
            elif code == op.CAST:
                with np.errstate(invalid="ignore"):  # NaN to int64: INT64_MIN, as the C cast
                    out.reshape(-1)[...] = A[args[0]].reshape(-1)
            elif code == op.AFFINE:
                x, W = A[args[0]], A[args[1]]
                z = x.reshape(R, ins.K) @ W.T
                if args[2] is not None:
                    z += A[args[2]]
                if ins.flags & 2:
                    z = _sigmoid(z)
                out.reshape(R, C)[...] = z
            elif code == op.GEMM:
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
                if ins.flags & 4:  # then W −= η W̄ (.grad kept; the SGD's numbers)
                    W = A[args[2]].reshape(-1)
                    W -= f[1] * out.reshape(-1)
            elif code == op.TRANSPOSE:
                v = A[args[0]].reshape(R, C).T
                o2 = out.reshape(C, R)
                if ins.acc:
                    o2 += v
                else:
                    o2[...] = v
            elif code == op.SGD:
                lr, mu, wd = f[1], f[2], f[3]
                W, dW = out, A[args[0]]
                g = dW + wd * W if wd else dW
                if args[1] is not None:
                    v = A[args[1]]
                    v *= mu
                    v += g
                    g = v
                W -= lr * g
            elif code == op.ADAM:
                lr, b1, b2, eps, c1, c2, wd = f[1:8]
                W, dW, m, v = out, A[args[0]], A[args[1]], A[args[2]]
                g = dW + wd * W if wd else dW
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                W -= lr * (m * c1) / (np.sqrt(v * c2) + eps)
            elif code in (op.LOGSOFTMAX, op.SOFTMAX):
                z = A[args[0]].reshape(R, C)
                s = z - z.max(axis=1, keepdims=True)
                if code == op.LOGSOFTMAX:
                    v = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
                else:
                    e = np.exp(s)
                    v = e / e.sum(axis=1, keepdims=True)
                out.reshape(R, C)[...] = v
            elif code in (op.LOGSOFTMAX_BWD, op.SOFTMAX_BWD):
                g, y = A[args[0]].reshape(R, C), A[args[1]].reshape(R, C)
                if code == op.LOGSOFTMAX_BWD:
                    v = g - np.exp(y) * g.sum(axis=1, keepdims=True)
                else:
                    v = y * (g - (g * y).sum(axis=1, keepdims=True))
                o2 = out.reshape(R, C)
                if ins.acc:
                    o2 += v
                else:
                    o2[...] = v
            elif code in _DENSE:
                _DENSE[code](ins, A, args, out, f)
            else:  # pragma: no cover
                raise AssertionError(f"unknown opcode {code}")


def _gather(ins, A, args, out, f):
    a, idx = A[args[0]].reshape(-1), A[args[1]].reshape(-1)
    v = np.where(idx >= 0, a[np.maximum(idx, 0)] * f[0] if a.size else 0.0, 0.0)
    o = out.reshape(-1)
    if ins.acc:
        o += v
    else:
        o[...] = v


def _scatter(ins, A, args, out, f):
    a, idx = A[args[0]].reshape(-1), A[args[1]].reshape(-1)
    keep = idx >= 0
    o = out.reshape(-1)
    v = a[keep] * f[0] if f[0] != 1.0 else a[keep]
    if ins.flags & 1:  # a part of a concatenation: assigned, nothing zeroed
        o[idx[keep]] = v
        return
    if not ins.acc:
        o[...] = 0
    np.add.at(o, idx[keep], v)  # in order: repeated indices add up


def _segment(ins, A, args, out, f):
    a, idx = A[args[0]].reshape(-1), A[args[1]].reshape(-1)
    o = out.reshape(-1)
    ufunc, start = ((np.maximum, -np.inf), (np.minimum, np.inf), (np.multiply, 1.0))[ins.flags]
    o[...] = start
    ufunc.at(o, idx, a)


def _cumsum(ins, A, args, out, f):
    x = A[args[0]].reshape(ins.R, ins.K, ins.C)
    if ins.flags & 1:
        v = np.flip(np.cumsum(np.flip(x, 1), axis=1), 1)
    else:
        v = np.cumsum(x, axis=1)
    if f[0] != 1.0:
        v = v * f[0]
    o = out.reshape(ins.R, ins.K, ins.C)
    if ins.acc:
        o += v
    else:
        o[...] = v


def _bgemm(ins, A, args, out, f):
    nb, sa, sb, so = (int(v) for v in f[1:5])
    M, N, K = ins.R, ins.C, ins.K
    a_all, b_all, o_all = A[args[0]].reshape(-1), A[args[1]].reshape(-1), out.reshape(-1)
    for t in range(nb):
        a = a_all[t * sa: t * sa + M * K].reshape((K, M) if ins.flags & 1 else (M, K))
        b = b_all[t * sb: t * sb + K * N].reshape((N, K) if ins.flags & 2 else (K, N))
        v = (a.T if ins.flags & 1 else a) @ (b.T if ins.flags & 2 else b)
        if f[0] != 1.0:
            v = v * f[0]
        o = o_all[t * so: t * so + M * N].reshape(M, N)
        if ins.acc or (so == 0 and t > 0):
            o += v
        else:
            o[...] = v


_DENSE = {op.GATHER: _gather, op.SCATTER: _scatter, op.SEGMENT: _segment, op.CUMSUM: _cumsum,
          op.BGEMM: _bgemm}


def compiled_executor(plan):
    from .._replay import Program

    return Program(plan)


