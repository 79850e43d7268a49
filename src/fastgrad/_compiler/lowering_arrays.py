"""Lowerings that move, select, combine and reduce elements, and those made of others.

A primitive that only moves elements (a transpose of any axes, flip, roll, tril, a
slice, an integer-array index, repeat, tile, pad, diagonal, concatenate, stack) is
its own function applied to an array of element indices, at trace time: the result
says which input element each output element is, and one GATHER replays it (its
adjoint: one SCATTER, adding repeated indices up in order, as np.add.at). Reductions
over any axes map each element to its result the same way (SEGMENT for max, min and
the product; SCATTER for sums). ``body`` lowerings (einsum, tensordot, cross, the
adjoints' own primitives) are traced through: their body is fastgrad operations.
"""

import math

import numpy as np

from .. import _opcodes as op
from .._registry import TraceBody
from .._tape import TensorBase
from .ir import FLOATS, FULL, SCALAR, Ins, TracingError
from .lowering import (
    Lowering,
    _as_shape,
    _contrib,
    _view_backward,
    gather,
    gather_into,
    ids,
    reduce_axes,
    reduce_index,
    scatter,
    scatter_into,
)
from .traced import TracedArray

__all__ = ["select", "pad", "getitem", "untake", "assemble", "extreme", "product", "cumsum", "std",
           "astype", "body", "DATA_DEPENDENT", "NOT_HELD"]

DATA_DEPENDENT = "a result whose shape depends on traced values"
NOT_HELD = "a dtype the replay does not hold"


def _ew(tr, opcode, operands, shape, dtype):
    """A new temporary of ``shape``: opcode over FULL operands (numbers: constants)."""
    out = tr.new(shape, dtype)
    ops = [(tr.const(a, dtype), SCALAR) if isinstance(a, (int, float)) else (a, FULL)
           for a in operands]
    tr.ew(opcode, out, ops, R=1, C=out.size)
    return out


# ------------------------------------------------------------------ selections ----


def select(fun, refuses=()):
    """y = fun(x, *rest, **kwargs) for a ``fun`` that only moves elements of x (or puts
    zeros): replayed as a GATHER by fun of x's element indices; x̄ = ȳ added back by
    the same map. The identity is a view."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0], ans.dtype)
        idx = np.asarray(fun(ids(sx.shape, 1), *args[1:], **kwargs))
        if idx.shape != ans.shape or idx.dtype.kind not in "iu":
            raise TracingError(f"fastgrad.compile: this function does not only move the "
                               f"elements of {sx.shape} (its index map is {idx.dtype} {idx.shape})")
        flat = idx.reshape(-1).astype(np.int64) - 1  # 0 (a filled-in zero) becomes -1
        if sx.size == flat.size and np.array_equal(flat, np.arange(flat.size)):
            return tr.new(ans.shape, ans.dtype, "alias", base=tr.operand(sx, ans.dtype)), None
        return gather(tr, sx, flat, ans.shape, ans.dtype), flat

    def backward(tr, rec, g, i, grads):
        if rec.info is None:
            return _view_backward(tr, rec, g, i, grads)
        scatter_into(tr, grads, rec.ins[0], g, rec.info)

    return Lowering(forward, backward, refuses=refuses)


def pad():
    """y = x inside a border: mode 'constant' a GATHER (the border reads 0) plus the
    border's constants; 'edge', 'reflect', 'symmetric', 'wrap' a GATHER of x's own
    elements. x̄: ȳ added back by the same map (the border's constants have none)."""
    moves = ("edge", "reflect", "symmetric", "wrap")

    def index_map(x, pad_width, mode="constant", **kwargs):
        if mode == "constant":
            return np.pad(x, pad_width, "constant")
        if mode in moves:
            return np.pad(x, pad_width, mode, **{k: v for k, v in kwargs.items() if k == "reflect_type"})
        raise TracingError(f"fastgrad.compile: pad in mode {mode!r} is not compiled (only "
                           f"'constant' and the modes that copy elements: {', '.join(moves)})")

    inner = select(index_map)

    def forward(tr, args, kwargs, ans):
        out, flat = inner.forward(tr, args, kwargs, ans)
        mode = args[2] if len(args) > 2 else kwargs.get("mode", "constant")
        values = kwargs.get("constant_values", 0)
        if mode == "constant" and np.any(np.asarray(values) != 0):
            sx = tr.slot_of(args[0], ans.dtype)
            border = np.pad(np.zeros(sx.shape, ans.dtype), args[1], "constant", constant_values=values)
            total = tr.new(ans.shape, ans.dtype)
            tr.ew(op.ADD, total, [(out, FULL), (tr.const(border, ans.dtype), FULL)])
            out = total
        return out, flat

    return Lowering(forward, inner.backward)


def _check_index(index):
    """An index read at trace time must be a constant: a traced boolean mask would give a
    result whose shape depends on the data, a traced integer array another element."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if isinstance(item, (list, tuple)):
            _check_index(tuple(item))
            continue
        if type(item) is TracedArray or isinstance(item, TensorBase):
            if np.asarray(item).dtype == np.bool_:
                raise TracingError(
                    f"fastgrad.compile: indexing by a boolean mask computed from traced values "
                    f"gives {DATA_DEPENDENT}, which a replay cannot have; use "
                    "fg.where(mask, x, 0) (a mask is data), or a constant mask")
            raise TracingError(
                "fastgrad.compile: indexing by an integer array computed from traced values (or "
                "passed as an argument) is not compiled; index by constant arrays, or use a "
                "one-hot product or fg.where")


def _getitem_ids(x, index):
    _check_index(index)
    return x[index]


def getitem():
    """y = x[index]: slices, integers, None, Ellipsis, constant integer arrays (repeats
    add up in x̄) and constant boolean masks; a traced mask is refused (y's shape would
    depend on the data: use fg.where)."""
    return select(_getitem_ids, refuses=(DATA_DEPENDENT,))


def untake():
    """y = zeros(shape) with g added at index (np.add.at):  ḡ = ȳ[index]."""

    def forward(tr, args, kwargs, ans):
        sg = tr.slot_of(args[0], ans.dtype)
        index, shape = args[1], tuple(args[2])
        _check_index(index)
        pos = ids(shape)[index]
        src, back = sg, None
        if sg.shape != pos.shape:  # g broadcast over the selection
            back = np.broadcast_to(ids(sg.shape), pos.shape).reshape(-1)
            src = gather(tr, sg, back, pos.shape, ans.dtype)
        out = tr.new(ans.shape, ans.dtype)
        scatter(tr, out, src, pos.reshape(-1))
        return out, (pos.reshape(-1), back)

    def backward(tr, rec, g, i, grads):
        pos, back = rec.info
        if back is None:
            return gather_into(tr, grads, rec.ins[0], g, pos)
        picked = gather(tr, g, pos, (pos.size,))
        scatter_into(tr, grads, rec.ins[0], picked, back)

    return Lowering(forward, backward, refuses=(DATA_DEPENDENT,))


def assemble(fun):
    """y = fun(axis, *parts) for concatenate and stack: each part assigned into its
    place in y by a SCATTER; a part's p̄ is its place in ȳ, a GATHER."""

    def forward(tr, args, kwargs, ans):
        parts = [tr.slot_of(a, ans.dtype) for a in args[1:]]
        offsets = np.cumsum([0] + [p.size for p in parts])
        glob = np.asarray(fun(args[0], *[ids(p.shape, int(o)) for p, o in zip(parts, offsets)]))
        pos = np.empty(ans.size, np.int64)
        pos[glob.reshape(-1)] = np.arange(ans.size)
        out = tr.new(ans.shape, ans.dtype)
        places = [pos[offsets[k]: offsets[k + 1]] for k in range(len(parts))]
        for p, place in zip(parts, places):
            if p.size:
                scatter(tr, out, p, place, assign=True)
        return out, places

    def backward(tr, rec, g, i, grads):
        gather_into(tr, grads, rec.ins[i], g, rec.info[i - 1])

    return Lowering(forward, backward)


# ----------------------------------------------------------------- reductions ----


def _axis_arg(args, kwargs, k=1, name="axis"):
    return args[k] if len(args) > k else kwargs.get(name)


def extreme(kind):
    """s = max (kind 0) or min (kind 1) over any axes, a NaN winning as in np.max:
    x̄ = s̄ at the elements equal to s, shared evenly by ties (as eagerly)."""

    def forward(tr, args, kwargs, ans):
        sx = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
        idx = reduce_index(sx.shape, _axis_arg(args, kwargs))
        out = tr.new(ans.shape, ans.dtype)
        tr.emit(Ins(op.SEGMENT, out, (sx, tr.const(idx, np.int64)), R=1, C=sx.size, K=out.size,
                    flags=kind))
        return out, (sx, idx)

    def backward(tr, rec, g, i, grads):
        # share = [x = s] / #{x = s} over each reduction; x̄ = repeat(s̄) share
        sx, idx = rec.info
        shape, dt = sx.shape, g.dtype
        mask = _ew(tr, op.EQ, [sx, gather(tr, rec.out, idx, shape)], shape, dt)
        count = tr.new(rec.out.shape, dt)
        scatter(tr, count, mask, idx)
        share = _ew(tr, op.DIV, [mask, gather(tr, count, idx, shape)], shape, dt)
        _contrib(tr, grads, rec.ins[0], op.MUL, [(gather(tr, g, idx, shape), FULL), (share, FULL)],
                 1, sx.size, FULL)

    return Lowering(forward, backward)


def product():
    """p = Π x over any axes (in order, as NumPy's reduction): x̄ = p̄ Π_{j≠i} xⱼ, as
    eagerly: p̄ p / x when no x is 0, else the product of the others written with the
    count of zeros; the choice (any zero in x) made at every replay."""

    def forward(tr, args, kwargs, ans):
        sx = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
        idx = reduce_index(sx.shape, _axis_arg(args, kwargs))
        out = tr.new(ans.shape, ans.dtype)
        tr.emit(Ins(op.SEGMENT, out, (sx, tr.const(idx, np.int64)), R=1, C=sx.size, K=out.size,
                    flags=2))
        return out, (sx, idx)

    def backward(tr, rec, g, i, grads):
        x, idx = rec.info
        shape, dt, oshape = x.shape, g.dtype, rec.out.shape

        def at_x(s):  # a per-reduction value at each element
            return gather(tr, s, idx, shape)

        def per_reduction(values):  # a sum over each reduction
            s = tr.new(oshape, dt)
            scatter(tr, s, values, idx)
            return s

        zero = _ew(tr, op.EQ, [x, 0.0], shape, dt)
        any_zero = tr.new((1,), dt)
        scatter(tr, any_zero, zero, np.zeros(x.size, np.int64))
        # without zeros: (p̄ p) / x
        plain = _ew(tr, op.DIV, [at_x(_ew(tr, op.MUL, [g, rec.out], oshape, dt)), x], shape, dt)
        # with zeros: q = Π of the non-zeros, z their count, S the sum of the zeros (0)
        safe = _ew(tr, op.WHERE, [zero, 1.0, x], shape, dt)
        q = tr.new(oshape, dt)
        tr.emit(Ins(op.SEGMENT, q, (safe, tr.const(idx, np.int64)), R=1, C=x.size, K=q.size,
                    flags=2))
        z = at_x(per_reduction(zero))
        s = at_x(per_reduction(_ew(tr, op.WHERE, [zero, x, 0.0], shape, dt)))
        z0, z1, z2 = (_ew(tr, op.EQ, [z, float(k)], shape, dt) for k in (0, 1, 2))
        at_nonzero = _ew(tr, op.DIV, [_ew(tr, op.WHERE, [z0, 1.0, _ew(tr, op.WHERE, [z1, s, 0.0], shape, dt)],
                                          shape, dt), safe], shape, dt)
        at_zero = _ew(tr, op.WHERE, [z1, 1.0, _ew(tr, op.WHERE, [z2, _ew(tr, op.SUB, [s, x], shape, dt), 0.0],
                                                  shape, dt)], shape, dt)
        others = _ew(tr, op.MUL, [at_x(q), _ew(tr, op.WHERE, [zero, at_zero, at_nonzero], shape, dt)],
                     shape, dt)
        with_zeros = _ew(tr, op.MUL, [at_x(g), others], shape, dt)
        _contrib(tr, grads, rec.ins[0], op.WHERE, [(any_zero, SCALAR), (with_zeros, FULL), (plain, FULL)],
                 1, x.size, FULL)

    return Lowering(forward, backward)


def _line(shape, axis):
    """(before, along, after) sizes of ``shape`` around ``axis`` (None: all of it flat)."""
    if axis is None:
        return 1, math.prod(shape), 1
    axis = int(axis) % len(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def cumsum():
    """s = cumsum(x) along an axis (None: flat), in order as NumPy: x̄ = the reverse
    cumulative sum of s̄."""

    def forward(tr, args, kwargs, ans):
        sx = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
        A, N, B = _line(sx.shape, _axis_arg(args, kwargs))
        out = tr.new(ans.shape, ans.dtype)
        tr.emit(Ins(op.CUMSUM, out, (sx,), R=A, C=B, K=N))
        return out, (A, N, B)

    def backward(tr, rec, g, i, grads):
        A, N, B = rec.info
        t, acc = tr.grad_into(rec.ins[0], grads)
        tr.emit(Ins(op.CUMSUM, t, (tr.operand(g, t.dtype),), acc=acc, R=A, C=B, K=N, flags=1))

    return Lowering(forward, backward)


def std():
    """σ = √(Σ (x − mean x)² / (n − ddof)) over any axes, as NumPy computes it:
    x̄ = repeat(σ̄ / σ) (x − mean x) / (n − ddof), and 0 for a single element."""

    def forward(tr, args, kwargs, ans):
        sx = tr.operand(tr.slot_of(args[0], ans.dtype), ans.dtype)
        axis = _axis_arg(args, kwargs)
        ddof = _axis_arg(args, kwargs, 2, "ddof") or 0
        idx = reduce_index(sx.shape, axis)
        n = sx.size // max(ans.size, 1)
        shape, dt = sx.shape, ans.dtype
        total = tr.new(ans.shape, dt)
        scatter(tr, total, sx, idx)
        mean = _ew(tr, op.DIV, [total, float(n)], ans.shape, dt)
        centered = _ew(tr, op.SUB, [sx, gather(tr, mean, idx, shape)], shape, dt)
        squares = tr.new(ans.shape, dt)
        scatter(tr, squares, _ew(tr, op.MUL, [centered, centered], shape, dt), idx)
        var = _ew(tr, op.DIV, [squares, float(max(n - ddof, 0))], ans.shape, dt)
        out = tr.new(ans.shape, dt)
        tr.ew(op.SQRT, out, [(var, FULL)])
        return out, (idx, centered, n, ddof)

    def backward(tr, rec, g, i, grads):
        idx, centered, n, ddof = rec.info
        shape, dt = centered.shape, g.dtype
        if n <= 1:
            return _contrib(tr, grads, rec.ins[0], op.MUL,
                            [(gather(tr, g, idx, shape), FULL), (tr.const(0.0, dt), SCALAR)],
                            1, centered.size, FULL)
        ratio = gather(tr, _ew(tr, op.DIV, [g, rec.out], rec.out.shape, dt), idx, shape)
        _contrib(tr, grads, rec.ins[0], op.DIV,
                 [(_ew(tr, op.MUL, [ratio, centered], shape, dt), FULL),
                  (tr.const(float(n - ddof), dt), SCALAR)], 1, centered.size, FULL)

    return Lowering(forward, backward)


# ---------------------------------------------------------------------- dtypes ----


def astype():
    """y = x in another dtype: float32, float64 (x̄ = ȳ in x's dtype) or int64 (a step:
    x̄ = 0). Other dtypes (longdouble, int32, bool) are refused: the replay holds
    float32, float64 and int64."""

    def forward(tr, args, kwargs, ans):
        sx = tr.slot_of(args[0])
        dt = np.dtype(ans.dtype)
        if dt not in FLOATS and dt != np.int64:
            raise TracingError(f"fastgrad.compile: a cast to {dt}, {NOT_HELD} (float32, float64, "
                               "int64); cast outside the compiled function")
        if dt == sx.dtype:
            return tr.new(ans.shape, dt, "alias", base=tr.operand(sx, dt)), None
        out = tr.new(ans.shape, dt)
        tr.emit(Ins(op.CAST, out, (tr.operand(sx, sx.dtype),), R=1, C=out.size))
        return out, None

    def backward(tr, rec, g, i, grads):
        target = rec.ins[0]
        if rec.out.dtype not in FLOATS:  # a step function: x̄ = 0
            return _contrib(tr, grads, target, op.COPY, [(tr.const(0.0, target.dtype), SCALAR)],
                            1, target.size, FULL)
        _contrib(tr, grads, target, op.COPY, [(g, FULL)], 1, target.size, FULL)

    return Lowering(forward, backward, refuses=(NOT_HELD,))


# ------------------------------------------------------------ traced through ----


def body(fun):
    """A primitive replayed as its body, ``fun``, made of fastgrad operations that
    compile (their forward and backward are the body's): einsum and tensordot as
    transposes, reshapes and matrix products, cross as products of components."""
    return TraceBody(fun)


__all__ += ["einsum_body", "tensordot_body", "cross_body"]


def tensordot_body(a, b, axes=2):
    """np.tensordot's own algorithm: both operands transposed to (free, summed) and
    (summed, free), reshaped to matrices, multiplied."""
    from .. import _ops
    from ..numpy._contractions import _tensordot_axes

    sa, sb = np.shape(_value(a)), np.shape(_value(b))
    sum_a, sum_b = _tensordot_axes(axes, len(sa), len(sb))
    free_a = [i for i in range(len(sa)) if i not in sum_a]
    free_b = [i for i in range(len(sb)) if i not in sum_b]
    k = math.prod(sa[i] for i in sum_a)
    ta = _ops.reshape(_ops.transpose(a, tuple(free_a + sum_a)), (math.prod(sa[i] for i in free_a), k))
    tb = _ops.reshape(_ops.transpose(b, tuple(sum_b + free_b)), (k, math.prod(sb[i] for i in free_b)))
    return _ops.reshape(_ops.matmul(ta, tb), tuple(sa[i] for i in free_a) + tuple(sb[i] for i in free_b))


def _value(x):
    return x._data if isinstance(x, TensorBase) else np.asarray(x)


def einsum_body(subscripts, *operands):
    """An einsum as fastgrad operations: repeated indices of an operand taken as its
    diagonal, indices in one operand alone summed first, then the operands contracted
    left to right (a matmul over the shared indices, batched over those still needed),
    the result transposed to the output's order."""
    from .. import _ops

    try:
        from numpy._core.einsumfunc import _parse_einsum_input
    except ImportError:  # NumPy < 2
        from numpy.core.einsumfunc import _parse_einsum_input

    shapes = [np.shape(_value(o)) for o in operands]
    ins, out, _ = _parse_einsum_input((subscripts,) + tuple(np.broadcast_to(0.0, s) for s in shapes))
    terms = ins.split(",")
    size = {}
    for t, s in zip(terms, shapes):
        for c, n in zip(t, s):
            size[c] = max(size.get(c, 1), n)
    items = []
    for t, o, s in zip(terms, operands, shapes):
        o, t = _diagonals(_ops, o, t, s)
        full = tuple(size[c] for c in t)
        if np.shape(_value(o)) != full:  # a broadcast (size-1) index
            o = _ops.broadcast_to(o, full)
        items.append([o, t])
    for k, item in enumerate(items):  # indices no other term names: summed now
        others = out + "".join(t for j, (_, t) in enumerate(items) if j != k)
        alone = [p for p, c in enumerate(item[1]) if c not in others]
        if alone:
            item[0] = _ops.sum(item[0], tuple(alone))
            item[1] = "".join(c for c in item[1] if c in others)
    cur, ct = items[0]
    for k in range(1, len(items)):
        nxt, nt = items[k]
        later = out + "".join(t for _, t in items[k + 1:])
        batch = [c for c in ct if c in nt and c in later]
        summed = [c for c in ct if c in nt and c not in later]
        left = [c for c in ct if c not in nt]
        right = [c for c in nt if c not in ct]
        cur = _ops.transpose(cur, tuple(ct.index(c) for c in batch + left + summed))
        nxt = _ops.transpose(nxt, tuple(nt.index(c) for c in batch + summed + right))
        nb, nl, ns, nr = (math.prod(size[c] for c in g) for g in (batch, left, summed, right))
        prod = _ops.matmul(_ops.reshape(cur, (nb, nl, ns)), _ops.reshape(nxt, (nb, ns, nr)))
        cur = _ops.reshape(prod, tuple(size[c] for c in batch + left + right))
        ct = "".join(batch + left + right)
    gone = tuple(p for p, c in enumerate(ct) if c not in out)
    if gone:
        cur = _ops.sum(cur, gone)
        ct = "".join(c for c in ct if c in out)
    if ct != out:
        cur = _ops.transpose(cur, tuple(ct.index(c) for c in out))
    if not out and np.shape(_value(cur)) != ():
        cur = _ops.reshape(cur, ())
    return cur


def _diagonals(_ops, o, term, shape):
    """An operand whose term repeats an index ('ii', 'iij'): its diagonal over them."""
    while len(set(term)) != len(term):
        c = next(c for c in term if term.count(c) > 1)
        p, q = term.index(c), term.index(c, term.index(c) + 1)
        n = shape[p]
        index = [slice(None)] * len(term)
        index[p] = index[q] = np.arange(n)
        o = _ops.getitem(o, tuple(index))
        # NumPy puts the advanced axis first when the indexed axes are not adjacent
        rest = [t for k, t in enumerate(term) if k not in (p, q)]
        if q == p + 1:
            term = term[:p] + c + term[q + 1:]
        else:
            term = c + "".join(rest)
        shape = np.shape(_value(o))
    return o, term


def cross_body(a, b):
    """a × b along the last axis, as np.cross computes it: c₀ = a₁b₂ − a₂b₁, …"""
    from .. import _ops

    na, nb = np.shape(_value(a))[-1], np.shape(_value(b))[-1]
    if na != 3 or nb != 3:
        raise TracingError("fastgrad.compile: cross of vectors of length 2 is not compiled")

    def part(x, k):
        return _ops.getitem(x, (Ellipsis, k))

    a0, a1, a2 = (part(a, k) for k in range(3))
    b0, b1, b2 = (part(b, k) for k in range(3))
    return _ops.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


_ = (reduce_axes, _as_shape)  # (re-exported helpers some lowerings build on)
