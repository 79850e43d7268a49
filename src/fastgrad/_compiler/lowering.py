"""Lowerings: what ``fastgrad.compile`` emits for a primitive, forward and backward.

A primitive's registry entry holds its ``Lowering`` (made by one of the families below),
so the compiler finds it by the primitive object. ``forward(tr, args, kwargs, ans)``
emits the forward instructions and returns ``(out slot, info)`` — or a bare slot for a
view (no instruction); ``backward(tr, rec, g, i, grads)`` emits argument i's error
signal from the output's, ``g`` (``rec.info`` is what the forward returned).

Every backward here is the same local rule as the primitive's eager one, written as
instructions; tests/test_registry.py checks each against the eager result.
"""

import numpy as np

from .._opcodes import (
    AFFINE,
    COPY,
    GEMM,
    MUL,
    SCE,
    SCE_BWD,
    SUB,
    TRANSPOSE,
    WHERE,
)
from .._tape import TensorBase
from .ir import FULL, ROW, SCALAR, Ins, TracingError, broadcast_modes, reduce_mode

__all__ = ["Lowering", "binary", "where", "unary", "view", "transpose", "reduction",
           "squared_error", "broadcast_to", "matmul", "linear", "rowwise",
           "softmax_cross_entropy"]


class Lowering:
    """A primitive's forward and backward as instructions. ``integer_args`` are argument
    positions passed as integers (labels), not read as float64."""

    __slots__ = ("forward", "backward", "integer_args")

    def __init__(self, forward, backward, integer_args=()):
        self.forward = forward
        self.backward = backward
        self.integer_args = frozenset(integer_args)


def _contrib(tr, grads, target, op, operands, R, C, omode, alpha=1.0):
    """Add one contribution to ``target``'s error signal (the first one writes it)."""
    g, acc = tr.grad_into(target, grads)
    tr.ew(op, g, operands, omode=omode, R=R, C=C, acc=acc, alpha=alpha)


# ------------------------------------------------------------- elementwise ----


def binary(op, grad_x, grad_y):
    """z = op(x, y) with broadcasting. ``grad_x`` and ``grad_y`` are the local rules as
    instructions: ``rule(g, x, y, z) -> (opcode, operands)``, the operands drawn from those
    four (slot, mode) pairs; each contribution is summed over its argument's broadcast
    axes (the output mode)."""

    def forward(tr, args, kwargs, ans):
        sa, sb = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
        R, C, modes = broadcast_modes(ans.shape, [sa.shape, sb.shape], "a binary operation")
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(op, out, [(sa, modes[0]), (sb, modes[1])], R=R, C=C)
        return out, (sa, sb, R, C, modes)

    def backward(tr, rec, g, i, grads):
        sa, sb, R, C, modes = rec.info
        grad_op, operands = (grad_x, grad_y)[i]((g, FULL), (sa, modes[0]), (sb, modes[1]),
                                                 (rec.out, FULL))
        _contrib(tr, grads, rec.ins[i], grad_op, operands, R, C, modes[i])

    return Lowering(forward, backward)


def where():
    """z = where(c, x, y), c a constant (0/1) or a traced mask:  x̄ = where(c, z̄, 0),
    ȳ = where(c, 0, z̄)."""

    def forward(tr, args, kwargs, ans):
        sc, sx, sy = (tr.slot_of(a, ans.dtype) for a in args[:3])
        R, C, modes = broadcast_modes(ans.shape, [sc.shape, sx.shape, sy.shape], "where")
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(WHERE, out, list(zip((sc, sx, sy), modes)), R=R, C=C)
        return out, (sc, R, C, modes)

    def backward(tr, rec, g, i, grads):
        sc, R, C, modes = rec.info
        zero = (tr.const(0.0, g.dtype), SCALAR)
        pair = [(g, FULL), zero] if i == 1 else [zero, (g, FULL)]
        _contrib(tr, grads, rec.ins[i], WHERE, [(sc, modes[0])] + pair, R, C, modes[i])

    return Lowering(forward, backward)


def unary(op, grad, reads=None):
    """y = f(x) with x̄ = grad(ȳ, x or y); ``reads`` says which ("x", "y" or None)."""

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
        _contrib(tr, grads, rec.ins[0], grad, operands, 1, rec.out.size, FULL)

    return Lowering(forward, backward)


# --------------------------------------------------------- views and shapes ----


def _view_forward(tr, args, kwargs, ans):  # the same buffer, another shape
    src = tr.slot_of(args[0], ans.dtype)
    if src.kind == "lazyT":
        src = tr.operand(src, src.dtype)
    return tr.new(ans.shape, ans.dtype, "alias", base=src)


def _view_backward(tr, rec, g, i, grads):
    _contrib(tr, grads, rec.ins[0], COPY, [(g, FULL)], 1, rec.out.size, FULL)


def view():
    """reshape, expand_dims, identity: no instruction forward; x̄ = ȳ reshaped."""
    return Lowering(_view_forward, _view_backward)


def transpose():
    """y = xᵀ (2-D) as a lazy transpose, materialized only if an instruction needs it."""

    def forward(tr, args, kwargs, ans):
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

    def backward(tr, rec, g, i, grads):
        src = rec.ins[0]
        if len(src.shape) < 2:
            return _view_backward(tr, rec, g, i, grads)
        t, acc = tr.grad_into(src, grads)
        tr.emit(Ins(TRANSPOSE, t, (tr.operand(g, t.dtype),), acc=acc, R=g.shape[0], C=g.shape[1]))

    return Lowering(forward, backward)


def broadcast_to():
    """y = x broadcast to a shape:  x̄ = ȳ summed over the broadcast axes."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        R, C, modes = broadcast_modes(ans.shape, [sx.shape], "broadcast_to")
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(COPY, out, [(sx, modes[0])], R=R, C=C)
        return out, (R, C, modes[0])

    def backward(tr, rec, g, i, grads):
        R, C, mode = rec.info
        _contrib(tr, grads, rec.ins[0], COPY, [(g, FULL)], R, C, mode)

    return Lowering(forward, backward)


# ---------------------------------------------------------------- reductions ----


def reduction(mean):
    """s = Σ x (÷ n for a mean) over all axes, the last, or all but the last:
    x̄ = s̄ repeated over the summed axes (÷ n)."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        axis = args[1] if len(args) > 1 else kwargs.get("axis")
        rm = reduce_mode(sx.shape, axis)
        if rm is None:
            raise TracingError(f"fastgrad.compile: a sum over axis {axis} of shape {sx.shape}; "
                               "compiled reductions sum all axes, the last, or all but the last")
        mode, R, C = rm
        n = sx.size // max(ans.size, 1)
        out = tr.new(ans.shape, ans.dtype)
        alpha = 1.0 / n if mean else 1.0
        tr.ew(COPY, out, [(sx, FULL)], omode=mode, R=R, C=C, alpha=alpha)
        return out, (mode, R, C, alpha)

    def backward(tr, rec, g, i, grads):
        mode, R, C, alpha = rec.info
        _contrib(tr, grads, rec.ins[0], COPY, [(g, mode)], R, C, FULL, alpha=alpha)

    return Lowering(forward, backward)


def squared_error():
    """ℒ = (1/N) Σ ½ (y − t)²:  ȳ = ℒ̄ (y − t) / N,  t̄ = −ȳ."""

    def forward(tr, args, kwargs, ans):
        sy, st = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
        if sy.shape != st.shape:
            raise TracingError(f"fastgrad.compile: squared_error of y {sy.shape} and t {st.shape}; "
                               "compiled, both must have one shape")
        n = sy.shape[0] if sy.shape else 1
        d = tr.new(sy.shape, ans.dtype)
        tr.ew(SUB, d, [(sy, FULL), (st, FULL)])
        dd = tr.new(sy.shape, ans.dtype)
        tr.ew(MUL, dd, [(d, FULL), (d, FULL)])
        mode, R, C = reduce_mode(dd.shape, None)
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(COPY, out, [(dd, FULL)], omode=mode, R=R, C=C, alpha=0.5 / n)
        return out, (d, mode, R, C, n)

    def backward(tr, rec, g, i, grads):
        d, mode, R, C, n = rec.info
        _contrib(tr, grads, rec.ins[i], MUL, [(g, mode), (d, FULL)], R, C, FULL,
                 alpha=(1.0 if i == 0 else -1.0) / n)

    return Lowering(forward, backward)


# ---------------------------------------------------------- matrix products ----


def _resolve_t(tr, slot, trans, dtype):
    """A GEMM operand: a lazy transpose becomes its base with the transpose flag flipped."""
    if slot.kind == "lazyT" and slot.base.dtype == dtype:
        return tr.operand(slot.base, dtype), trans ^ 1
    return tr.operand(slot, dtype), trans


def gemm(tr, out, A, tA, B, tB, acc=False, alpha=1.0):
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


def matmul():
    """C = A B (2-D):  Ā = C̄ Bᵀ,  B̄ = Aᵀ C̄."""

    def forward(tr, args, kwargs, ans):
        sa, sb = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
        if len(sa.shape) != 2 or len(sb.shape) != 2:
            raise TracingError(f"fastgrad.compile: matmul of shapes {sa.shape} and {sb.shape}; "
                               "only 2-D @ 2-D is compiled (reshape vectors to (1, n) or (n, 1))")
        out = tr.new(ans.shape, ans.dtype)
        gemm(tr, out, sa, 0, sb, 0)
        return out, (sa, sb)

    def backward(tr, rec, g, i, grads):
        sa, sb = rec.info
        t, acc = tr.grad_into(rec.ins[i], grads)
        if i == 0:
            gemm(tr, t, g, 0, sb, 1, acc)
        else:
            gemm(tr, t, sa, 1, g, 0, acc)

    return Lowering(forward, backward)


def linear():
    """z = x Wᵀ + b:  x̄ = z̄ W,  W̄ = z̄ᵀ x,  b̄ = Σₙ z̄ₙ."""

    def forward(tr, args, kwargs, ans):
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

    def backward(tr, rec, g, i, grads):
        x2, sW, N, M, D = rec.info
        g2 = _as2d(tr, tr.operand(g, g.dtype), N, M)
        t, acc = tr.grad_into(rec.ins[i], grads)
        if i == 0:  # x̄ = z̄ W
            gemm(tr, _as2d(tr, t, N, D), g2, 0, sW, 0, acc)
        elif i == 1:  # W̄ = z̄ᵀ x
            gemm(tr, t, g2, 1, x2, 0, acc)
        else:  # b̄ = Σₙ z̄ₙ
            tr.ew(COPY, t, [(g2, FULL)], omode=ROW, R=N, C=M, acc=acc)

    return Lowering(forward, backward)


# ---------------------------------------------------------------- row-wise ----


def rowwise(op, grad):
    """softmax/log_softmax over the last axis: one row-wise instruction each way."""

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
        tr.emit(Ins(grad, t, (tr.operand(g, t.dtype), tr.operand(rec.out, t.dtype)),
                    acc=acc, R=R, C=C))

    return Lowering(forward, backward)


def _labels_slot(tr, labels, n):
    """The int64 slot of integer labels: an argument, or a constant array."""
    s = None
    if isinstance(labels, TensorBase):
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


def softmax_cross_entropy():
    """ℒ = −(1/N) Σₙ log softmax(zₙ)_{tₙ}:  z̄ = ℒ̄ (softmax(z) − onehot(t)) / N."""

    def forward(tr, args, kwargs, ans):
        sz = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
        if len(sz.shape) != 2:
            raise TracingError(f"fastgrad.compile: softmax_cross_entropy of logits {sz.shape}; "
                               "compiled, logits are (N, K)")
        N, K = sz.shape
        sl = _labels_slot(tr, args[1], N)
        out = tr.new(ans.shape, ans.dtype)
        tr.emit(Ins(SCE, out, (sz, sl), R=N, C=K))
        return out, (sz, sl, N, K)

    def backward(tr, rec, g, i, grads):
        sz, sl, N, K = rec.info
        t, acc = tr.grad_into(rec.ins[0], grads)
        tr.emit(Ins(SCE_BWD, t, (sz, sl, tr.operand(g, t.dtype)), acc=acc, R=N, C=K))

    return Lowering(forward, backward, integer_args=(1,))

