"""Lowerings: what ``fastgrad.compile`` emits for a primitive, forward and backward.

A primitive's registry entry holds its ``Lowering`` (made by one of the families below),
so the compiler finds it by the primitive object. ``forward(tr, args, kwargs, ans)``
emits the forward instructions and returns ``(out slot, info)`` — or a bare slot for a
view (no instruction); ``backward(tr, rec, g, i, grads)`` emits argument i's error
signal from the output's, ``g`` (``rec.info`` is what the forward returned).

Every backward here is the same local rule as the primitive's eager one, written as
instructions; tests/test_registry.py checks each against the eager result.
"""

import math

import numpy as np

from .._opcodes import (
    AFFINE,
    BGEMM,
    COPY,
    GATHER,
    GEMM,
    MUL,
    SCATTER,
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
           "softmax_cross_entropy", "softmax_cross_entropy_grad", "broadcast_or_expand", "ids",
           "gather", "scatter_into", "gather_into"]


class Lowering:
    """A primitive's forward and backward as instructions. ``integer_args`` are argument
    positions passed as integers (labels), not read as float64. ``refuses`` names the
    inputs the lowering refuses by design, because no replay of them could be exact (a
    result whose shape depends on the data, a dtype the replay does not hold): the
    TracingError for such an input says so in these words (tests/test_registry.py
    checks that every other input compiles)."""

    __slots__ = ("forward", "backward", "integer_args", "refuses")

    def __init__(self, forward, backward, integer_args=(), refuses=()):
        self.forward = forward
        self.backward = backward
        self.integer_args = frozenset(integer_args)
        self.refuses = tuple(refuses)


def _contrib(tr, grads, target, op, operands, R, C, omode, alpha=1.0):
    """Add one contribution to ``target``'s error signal (the first one writes it)."""
    g, acc = tr.grad_into(target, grads)
    tr.ew(op, g, operands, omode=omode, R=R, C=C, acc=acc, alpha=alpha)


# ------------------------------------------------------- moving elements by index ----
# A constant int64 array says, for each element of a result, which element of an
# operand it is (-1: a zero). GATHER reads by it; its adjoint SCATTER adds back by it,
# in order, so repeated indices add up as np.add.at does.


def ids(shape, start=0):
    """The flat index of each element of an array of ``shape``, as an array of that shape."""
    return np.arange(start, start + math.prod(shape), dtype=np.int64).reshape(shape)


def gather(tr, src, idx, shape, dtype=None):
    """A new slot of ``shape``: src's elements at ``idx`` (flat, -1 reads 0)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    dtype = src.dtype if dtype is None else dtype
    out = tr.new(shape, dtype)
    tr.emit(Ins(GATHER, out, (tr.operand(src, dtype), tr.const(idx, np.int64)), R=1, C=idx.size))
    return out


def gather_into(tr, grads, target, src, idx, alpha=1.0):
    """target's error signal (+)= α src[idx]: the adjoint of a scatter."""
    t, acc = tr.grad_into(target, grads)
    idx = np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    tr.emit(Ins(GATHER, t, (tr.operand(src, t.dtype), tr.const(idx, np.int64)), acc=acc,
                R=1, C=idx.size, f=[alpha]))


def scatter(tr, out, src, idx, acc=False, assign=False, alpha=1.0):
    """out[idx] += α src (zeroed first unless ``acc``), or = where ``assign``."""
    idx = np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    return tr.emit(Ins(SCATTER, out, (tr.operand(src, out.dtype), tr.const(idx, np.int64)),
                       acc=acc, R=1, C=idx.size, K=out.size, flags=int(assign), f=[alpha]))


def scatter_into(tr, grads, target, src, idx, alpha=1.0):
    """target's error signal += α src added back at ``idx`` (the adjoint of a gather). A
    later contribution with repeated indices is summed whole first and then added, as
    the eager backward adds the scattered array."""
    idx = np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    t, acc = tr.grad_into(target, grads)
    valid = idx[idx >= 0]
    if acc and np.unique(valid).size != valid.size:
        part = tr.new(target.shape, target.dtype)
        scatter(tr, part, src, idx, alpha=alpha)
        tr.ew(COPY, t, [(part, FULL)], acc=True)
    else:
        scatter(tr, t, src, idx, acc=acc, alpha=alpha)


def broadcast_or_expand(tr, out_shape, slots, what):
    """(R, C, [(slot, mode)], backs) for operands broadcast to ``out_shape``: a mode where
    one fits (same shape, scalar, row, column), else the operand copied out to the full
    shape by a GATHER (any NumPy broadcast); backs[i] is then its index map, by which
    the operand's error signal is added back (None where a mode did it)."""
    out_shape = tuple(out_shape)
    fixed, backs = [], []
    for s in slots:
        try:
            broadcast_modes(out_shape, [s.shape], what)
            fixed.append(s)
            backs.append(None)
        except TracingError:
            idx = np.broadcast_to(ids(s.shape), out_shape).reshape(-1)
            fixed.append(gather(tr, s, idx, out_shape))
            backs.append(idx)
    R, C, modes = broadcast_modes(out_shape, [s.shape for s in fixed], what)
    return R, C, list(zip(fixed, modes)), backs


def _contrib_back(tr, grads, target, op, operands, R, C, mode, back, alpha=1.0):
    """One contribution to an operand's signal: summed into its broadcast mode, or
    formed at the full shape and added back by its index map."""
    if back is None:
        _contrib(tr, grads, target, op, operands, R, C, mode, alpha)
        return
    full = tr.new((R * C,), target.dtype)
    tr.ew(op, full, operands, R=R, C=C, alpha=alpha)
    scatter_into(tr, grads, target, full, back)


# ------------------------------------------------------------- elementwise ----


def binary(op, grad_x, grad_y):
    """z = op(x, y) with broadcasting. ``grad_x`` and ``grad_y`` are the local rules as
    instructions: ``rule(g, x, y, z) -> (opcode, operands)``, the operands drawn from those
    four (slot, mode) pairs; each contribution is summed over its argument's broadcast
    axes (the output mode)."""

    def forward(tr, args, kwargs, ans):
        sa, sb = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
        R, C, operands, backs = broadcast_or_expand(tr, ans.shape, [sa, sb], "a binary operation")
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(op, out, operands, R=R, C=C)
        return out, (operands, R, C, backs)

    def backward(tr, rec, g, i, grads):
        operands, R, C, backs = rec.info
        grad_op, ops = (grad_x, grad_y)[i]((g, FULL), operands[0], operands[1], (rec.out, FULL))
        _contrib_back(tr, grads, rec.ins[i], grad_op, ops, R, C, operands[i][1], backs[i])

    return Lowering(forward, backward)


def where():
    """z = where(c, x, y), c a constant (0/1) or a traced mask:  x̄ = where(c, z̄, 0),
    ȳ = where(c, 0, z̄)."""

    def forward(tr, args, kwargs, ans):
        slots = [tr.slot_of(a, ans.dtype) for a in args[:3]]
        R, C, operands, backs = broadcast_or_expand(tr, ans.shape, slots, "where")
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(WHERE, out, operands, R=R, C=C)
        return out, (operands, R, C, backs)

    def backward(tr, rec, g, i, grads):
        operands, R, C, backs = rec.info
        zero = (tr.const(0.0, g.dtype), SCALAR)
        pair = [(g, FULL), zero] if i == 1 else [zero, (g, FULL)]
        _contrib_back(tr, grads, rec.ins[i], WHERE, [operands[0]] + pair, R, C, operands[i][1],
                      backs[i])

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
    """y = xᵀ: a 2-D one as a lazy transpose, materialized only if an instruction needs
    it; any other permutation of axes as a GATHER (x̄: ȳ added back by the same map)."""

    def forward(tr, args, kwargs, ans):
        src = tr.slot_of(args[0], ans.dtype)
        axes = args[1] if len(args) > 1 else kwargs.get("axes")
        nd = len(src.shape)
        perm = tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes)
        if perm == tuple(range(nd)):  # the identity (a 0-d or 1-d array, or axes in order)
            return tr.new(ans.shape, ans.dtype, "alias", base=tr.operand(src, ans.dtype)), "identity"
        if nd == 2:
            if src.kind == "lazyT":
                return tr.new(ans.shape, ans.dtype, "alias", base=src.base)
            return tr.new(ans.shape, ans.dtype, "lazyT", base=src)
        idx = np.transpose(ids(src.shape), perm)
        return gather(tr, src, idx, ans.shape, ans.dtype), idx

    def backward(tr, rec, g, i, grads):
        src = rec.ins[0]
        if isinstance(rec.info, str):  # the identity
            return _view_backward(tr, rec, g, i, grads)
        if rec.info is not None:
            return scatter_into(tr, grads, src, g, rec.info)
        # a 2-D transpose, lazy or undoing a lazy one (an alias of its base): x̄ = ȳᵀ
        t, acc = tr.grad_into(src, grads)
        tr.emit(Ins(TRANSPOSE, t, (tr.operand(g, t.dtype),), acc=acc, R=g.shape[0], C=g.shape[1]))

    return Lowering(forward, backward)


def broadcast_to():
    """y = x broadcast to a shape:  x̄ = ȳ summed over the broadcast axes."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        R, C, operands, backs = broadcast_or_expand(tr, ans.shape, [sx], "broadcast_to")
        if backs[0] is not None:  # the expansion is the result
            return tr.new(ans.shape, ans.dtype, "alias", base=operands[0][0]), (R, C, FULL, backs[0])
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(COPY, out, operands, R=R, C=C)
        return out, (R, C, operands[0][1], None)

    def backward(tr, rec, g, i, grads):
        R, C, mode, back = rec.info
        if back is not None:
            return scatter_into(tr, grads, rec.ins[0], g, back)
        _contrib(tr, grads, rec.ins[0], COPY, [(g, FULL)], R, C, mode)

    return Lowering(forward, backward)


# ---------------------------------------------------------------- reductions ----


def reduce_axes(shape, axis):
    """The axes ``axis`` names (None: all) as a sorted tuple of non-negative ints."""
    nd = len(shape)
    if axis is None:
        return tuple(range(nd))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted({int(a) % nd for a in axes})) if nd else ()


def reduce_index(shape, axis):
    """For each element of an array of ``shape``, the flat index of the element of its
    reduction over ``axis`` that it falls in."""
    axes = reduce_axes(shape, axis)
    kept = tuple(1 if d in axes else n for d, n in enumerate(shape))
    return np.broadcast_to(ids(kept), shape).reshape(-1)


def reduction(mean):
    """s = Σ x (÷ n for a mean) over any axes: x̄ = s̄ repeated over the summed axes
    (÷ n). All axes, the last, or all but the last are an output mode; others a SCATTER
    of each element into its sum (x̄: a GATHER)."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        axis = args[1] if len(args) > 1 else kwargs.get("axis")
        n = sx.size // max(ans.size, 1)
        alpha = 1.0 / n if mean and n else 1.0
        out = tr.new(ans.shape, ans.dtype)
        rm = reduce_mode(sx.shape, axis)
        if rm is None or sx.size == 0:
            idx = reduce_index(sx.shape, axis)
            scatter(tr, out, sx, idx, alpha=alpha)
            return out, (idx, alpha)
        mode, R, C = rm
        tr.ew(COPY, out, [(sx, FULL)], omode=mode, R=R, C=C, alpha=alpha)
        return out, (mode, R, C, alpha)

    def backward(tr, rec, g, i, grads):
        if len(rec.info) == 2:
            idx, alpha = rec.info
            return gather_into(tr, grads, rec.ins[0], g, idx, alpha)
        mode, R, C, alpha = rec.info
        _contrib(tr, grads, rec.ins[0], COPY, [(g, mode)], R, C, FULL, alpha=alpha)

    return Lowering(forward, backward)


def squared_error():
    """ℒ = (1/N) Σ ½ (y − t)², t broadcast to y:  ȳ = ℒ̄ (y − t) / N,  t̄ = −ℒ̄ (y − t) / N
    summed over t's broadcast axes."""

    def forward(tr, args, kwargs, ans):
        sy, st = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
        if tuple(np.broadcast_shapes(sy.shape, st.shape)) != sy.shape:
            raise TracingError(f"fastgrad.compile: squared_error of y {sy.shape} and t {st.shape}; "
                               "compiled, t must broadcast to y's shape")
        R, C, operands, backs = broadcast_or_expand(tr, sy.shape, [sy, st], "squared_error")
        n = sy.shape[0] if sy.shape else 1
        d = tr.new(sy.shape, ans.dtype)
        tr.ew(SUB, d, operands, R=R, C=C)
        dd = tr.new(sy.shape, ans.dtype)
        tr.ew(MUL, dd, [(d, FULL), (d, FULL)])
        mode, R0, C0 = reduce_mode(dd.shape, None)
        out = tr.new(ans.shape, ans.dtype)
        tr.ew(COPY, out, [(dd, FULL)], omode=mode, R=R0, C=C0, alpha=0.5 / n)
        return out, (d, mode, R0, C0, n, R, C, operands[1][1], backs[1])

    def backward(tr, rec, g, i, grads):
        d, mode, R0, C0, n, R, C, tmode, tback = rec.info
        if i == 0 or (tmode == FULL and tback is None):
            _contrib(tr, grads, rec.ins[i], MUL, [(g, mode), (d, FULL)], R0, C0, FULL,
                     alpha=(1.0 if i == 0 else -1.0) / n)
            return
        _contrib_back(tr, grads, rec.ins[1], MUL, [(g, SCALAR), (d, FULL)], R, C, tmode, tback,
                      alpha=-1.0 / n)

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


def _as_shape(tr, slot, shape):
    """``slot`` seen with another shape of the same size (an alias; no copy)."""
    shape = tuple(shape)
    if slot.shape == shape:
        return slot
    if slot.kind == "lazyT":
        slot = tr.operand(slot, slot.dtype)
    return tr.new(shape, slot.dtype, "alias", base=slot)


def bgemm(tr, out, A, tA, sa, B, tB, sb, so, batch, M, N, K, acc=False):
    """out[t] (+)= op(A[t]) op(B[t]) for t < batch, element strides sa, sb, so (0: one
    matrix for every t; an output of stride 0 sums the products)."""
    A, B = tr.operand(A, out.dtype), tr.operand(B, out.dtype)
    return tr.emit(Ins(BGEMM, out, (A, B), acc=acc, R=M, C=N, K=K, flags=tA | (tB << 1),
                       f=[1.0, batch, sa, sb, so]))


def matmul():
    """C = A B, as np.matmul: vectors as a row (k,) → (1, k) or a column (k,) → (k, 1);
    2-D by 2-D, or a batch by a matrix (the batch folded into the rows), one GEMM; other
    batches one BGEMM, a factor shared by the whole batch read with stride 0 and one
    broadcast otherwise copied out to the batch.
    Ā = C̄ Bᵀ,  B̄ = Aᵀ C̄  (summed over the batch where a factor was shared)."""

    def forward(tr, args, kwargs, ans):
        sa, sb = tr.slot_of(args[0], ans.dtype), tr.slot_of(args[1], ans.dtype)
        an, bn = len(sa.shape), len(sb.shape)
        if an == 0 or bn == 0:
            raise TracingError("fastgrad.compile: matmul of a 0-d operand")
        a_shape = (1,) + sa.shape if an == 1 else sa.shape
        b_shape = sb.shape + (1,) if bn == 1 else sb.shape
        (M, K), N = a_shape[-2:], b_shape[-1]
        ba, bb = a_shape[:-2], b_shape[:-2]
        bo = tuple(np.broadcast_shapes(ba, bb))
        out = tr.new(ans.shape, ans.dtype)
        if not bo:
            gemm(tr, _as_shape(tr, out, (M, N)), _as_shape(tr, sa, a_shape), 0,
                 _as_shape(tr, sb, b_shape), 0)
            return out, ("2d", sa, sb, a_shape, b_shape)
        if not bb:  # a batch of rows by one matrix: one product
            rows = math.prod(ba) * M
            A2 = _as_shape(tr, tr.operand(sa, ans.dtype), (rows, K))
            gemm(tr, _as_shape(tr, out, (rows, N)), A2, 0, _as_shape(tr, sb, b_shape), 0)
            return out, ("fold", A2, sb, (rows, K), b_shape)
        nb = math.prod(bo)
        parts = []
        for s, shape, batch, mat in ((sa, a_shape, ba, (M, K)), (sb, b_shape, bb, (K, N))):
            s = _as_shape(tr, tr.operand(s, ans.dtype), shape)
            if batch == bo:
                parts.append((s, math.prod(mat), None))
            elif math.prod(batch) == 1:
                parts.append((s, 0, None))
            else:
                idx = np.broadcast_to(ids(shape), bo + mat).reshape(-1)
                parts.append((gather(tr, s, idx, bo + mat), math.prod(mat), idx))
        (A, sA, backA), (B, sB, backB) = parts
        bgemm(tr, out, A, 0, sA, B, 0, sB, M * N, nb, M, N, K)
        return out, ("batch", A, B, sA, sB, backA, backB, nb, M, N, K)

    def backward(tr, rec, g, i, grads):
        kind = rec.info[0]
        target = rec.ins[i]
        if kind in ("2d", "fold"):
            _, A, B, a_shape, b_shape = rec.info
            shape = a_shape if i == 0 else b_shape
            g2 = _as_shape(tr, tr.operand(g, g.dtype), (a_shape[0], b_shape[1]))
            t, acc = tr.grad_into(target, grads)
            t2 = _as_shape(tr, t, shape)
            if i == 0:
                gemm(tr, t2, g2, 0, B if B.shape == b_shape else _as_shape(tr, B, b_shape), 1, acc)
            else:
                gemm(tr, t2, A if A.shape == a_shape else _as_shape(tr, A, a_shape), 1, g2, 0, acc)
            return
        _, A, B, sA, sB, backA, backB, nb, M, N, K = rec.info
        g = tr.operand(g, g.dtype)
        back = (backA, backB)[i]
        mat = (M, K) if i == 0 else (K, N)
        stride = (sA, sB)[i]
        if back is not None:
            t = tr.new((nb,) + mat, g.dtype)
            acc = False
        else:
            t, acc = tr.grad_into(target, grads)
        if i == 0:  # Ā[t] = C̄[t] B[t]ᵀ
            bgemm(tr, t, g, 0, M * N, B, 1, sB, stride, nb, M, K, N, acc)
        else:  # B̄[t] = A[t]ᵀ C̄[t]
            bgemm(tr, t, A, 1, sA, g, 0, M * N, stride, nb, K, N, M, acc)
        if back is not None:
            scatter_into(tr, grads, target, t, back)

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
    """softmax/log_softmax along an axis: one row-wise instruction each way over the last
    axis; another axis is moved last (and back) by a GATHER."""

    def forward(tr, args, kwargs, ans):
        sz = tr.slot_of(args[0], ans.dtype)
        axis = args[1] if len(args) > 1 else kwargs.get("axis", -1)
        nd = len(sz.shape)
        if nd == 0 or axis is None:
            raise TracingError("fastgrad.compile: softmax/log_softmax over all axes or of a "
                               "0-d array is not compiled; reshape to a row first")
        axis = int(axis) % nd
        C = sz.shape[axis]
        R = sz.size // max(C, 1)
        if axis == nd - 1:
            out = tr.new(ans.shape, ans.dtype)
            tr.ew(op, out, [(sz, FULL)], R=R, C=C)
            return out, (R, C, out, None)
        perm = np.moveaxis(ids(sz.shape), axis, -1).reshape(-1)
        y = tr.new((R, C), ans.dtype)
        tr.ew(op, y, [(gather(tr, sz, perm, (R, C), ans.dtype), FULL)], R=R, C=C)
        return gather(tr, y, perm_inverse(perm), ans.shape), (R, C, y, perm)

    def backward(tr, rec, g, i, grads):
        R, C, y, perm = rec.info
        if perm is None:
            t, acc = tr.grad_into(rec.ins[0], grads)
            tr.emit(Ins(grad, t, (tr.operand(g, t.dtype), tr.operand(y, t.dtype)),
                        acc=acc, R=R, C=C))
            return
        gp = gather(tr, g, perm, (R, C))
        tp = tr.new((R, C), g.dtype)
        tr.emit(Ins(grad, tp, (gp, y), R=R, C=C))
        gather_into(tr, grads, rec.ins[0], tp, perm_inverse(perm))

    return Lowering(forward, backward)


def perm_inverse(perm):
    """The inverse of a permutation given as flat indices."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return inv


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



def softmax_cross_entropy_grad():
    """G = (softmax(z) − onehot(t)) / N (the loss's gradient as a primitive, met in a
    recorded backward):  z̄ = softmax(z) ∘ (Ḡ − Σ Ḡ ∘ softmax(z)) / N."""

    def forward(tr, args, kwargs, ans):
        sz = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
        if len(sz.shape) != 2:
            raise TracingError(f"fastgrad.compile: softmax_cross_entropy_grad of logits {sz.shape}; "
                               "compiled, logits are (N, K)")
        N, K = sz.shape
        sl = _labels_slot(tr, args[1], N)
        out = tr.new(ans.shape, ans.dtype)
        tr.emit(Ins(SCE_BWD, out, (sz, sl, tr.const(1.0, ans.dtype)), R=N, C=K))
        return out, (sz, N, K)

    def backward(tr, rec, g, i, grads):
        from .._opcodes import DIV, SOFTMAX, SOFTMAX_BWD

        sz, N, K = rec.info
        y = tr.new((N, K), g.dtype)
        tr.ew(SOFTMAX, y, [(sz, FULL)], R=N, C=K)
        t = tr.new((N, K), g.dtype)
        tr.emit(Ins(SOFTMAX_BWD, t, (tr.operand(g, g.dtype), y), R=N, C=K))
        _contrib(tr, grads, rec.ins[0], DIV, [(t, FULL), (tr.const(float(N), g.dtype), SCALAR)],
                 1, N * K, FULL)

    return Lowering(forward, backward, integer_args=(1,))

# The families built on these helpers (elementwise expressions; moving, selecting and
# reducing elements), re-exported so that a registry entry reads ``low.<family>``.
from .lowering_arrays import (  # noqa: E402
    DATA_DEPENDENT,
    NOT_HELD,
    assemble,
    astype,
    body,
    cross_body,
    cumsum,
    einsum_body,
    extreme,
    getitem,
    pad,
    product,
    select,
    std,
    tensordot_body,
    untake,
)
from .lowering_ew import V, call, clip, elementwise, nan_to_num  # noqa: E402

__all__ += ["DATA_DEPENDENT", "NOT_HELD", "assemble", "astype", "body", "cross_body", "cumsum",
            "einsum_body", "extreme", "getitem", "pad", "product", "select", "std", "tensordot_body",
            "untake", "V", "call", "clip", "elementwise", "nan_to_num"]
