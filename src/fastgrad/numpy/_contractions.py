"""The NumPy face's contractions: diagonals and traces, tensordot, dot, einsum, cross.

``diagonal``, ``diag``, ``tensordot``, ``cross`` and ``einsum`` are registry entries
(``fastgrad._registry``) whose adjoints are contractions again (so grad of grad works);
``trace``, ``dot``, ``inner``, ``outer``, ``vdot``, ``kron`` are compositions of them and
of the core's matmul and multiply. Notation: for C = f(A, B), a rule turns C̄ (``g``)
into Ā.
"""

import builtins
import string

import numpy as onp

from .. import _ops
from .._compiler import lowering as low
from .._ops import (
    expand_dims,
    matmul,
    multiply,
    no_macs,
    reshape,
    shape_of,
    transpose,
    unbroadcast,
    untake,
)
from .._registry import Formula, Sample, define
from ._shapes import moveaxis, ravel
from ._util import ndim_of, shape_proxy, traced

try:
    from numpy._core.einsumfunc import _parse_einsum_input
except ImportError:  # NumPy < 2
    from numpy.core.einsumfunc import _parse_einsum_input


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


# ------------------------------------------------------------- diagonals and traces --


def _diagonal_embedding(d, n, m, offset):
    """P with P[k, i, j] = 1 where (i, j) is the k-th element of the offset diagonal."""
    P = onp.zeros((d, n, m))
    k = onp.arange(d)
    P[k, k + builtins.max(-offset, 0), k + builtins.max(offset, 0)] = 1.0
    return P


def _diagonal(a, offset=0, axis1=0, axis2=1):
    return onp.diagonal(a, offset, axis1, axis2)


def _diagonal_vjp(g, ans, a, offset=0, axis1=0, axis2=1):
    # y = the diagonal of x:  x̄ = ȳ placed back on the diagonal, zeros elsewhere (a
    # contraction with a constant 0/1 tensor, so that it is differentiable again)
    shape = shape_of(a)
    nd = len(shape)
    axis1, axis2 = axis1 % nd, axis2 % nd
    n, m = shape[axis1], shape[axis2]
    d = shape_of(g)[-1]
    embedded = tensordot_p(g, _diagonal_embedding(d, n, m, offset), 1)  # (..., n, m)
    return moveaxis(embedded, (-2, -1), (axis1, axis2))


diagonal_p = define(
    _diagonal, "diagonal", vjps=[_diagonal_vjp], saves_args=False,
    formula=Formula("{out} = diag({0})", {0: "{0}̄ = {out}̄ on the diagonal, 0 elsewhere"}, no_macs),
    lowering=low.select(_diagonal),
    samples=lambda r: [Sample(r.normal(size=(4, 5))), Sample(r.normal(size=(4, 5)), 1),
                       Sample(r.normal(size=(4, 5)), -2),
                       Sample(r.normal(size=(2, 3, 4)), 0, 1, 2),
                       Sample(r.normal(size=(3, 2, 4)), 1, 2, 0)],  # axis1 after axis2
)


def diagonal(a, offset=0, axis1=0, axis2=1):
    if traced(a):
        return diagonal_p(a, offset, axis1, axis2)
    return onp.diagonal(a, offset, axis1, axis2)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if not traced(a):
        return onp.trace(a, offset, axis1, axis2, dtype, out)
    return _ops.sum(diagonal_p(a, offset, axis1, axis2), -1)


def _diag(v, k=0):
    return onp.diag(v, k)


def _diag_vjp(g, ans, v, k=0):
    # a vector onto the k-th diagonal:  v̄ = that diagonal of ȳ;
    # a matrix's k-th diagonal:  x̄ = ȳ scattered back onto it
    shape = shape_of(v)
    if len(shape) == 1:
        return diag_p(g, k)
    d = shape_of(g)[0]
    i = onp.arange(d)
    return untake(g, (i + builtins.max(-k, 0), i + builtins.max(k, 0)), shape)


diag_p = define(
    _diag, "diag", vjps=[_diag_vjp], saves_args=False,
    formula=Formula("{out} = diag({0})", {0: "{0}̄ = diag({out}̄)"}, no_macs),
    lowering=low.select(_diag),
    samples=lambda r: [Sample(r.normal(size=(3,))), Sample(r.normal(size=(3,)), 1),
                       Sample(r.normal(size=(3,)), -2), Sample(r.normal(size=(4, 4))),
                       Sample(r.normal(size=(3, 5)), 1), Sample(r.normal(size=(4, 3)), -1)],
)


def diag(v, k=0):
    return diag_p(v, k) if traced(v) else onp.diag(v, k)


def make_diagonal(D, offset=0, axis1=-1, axis2=-2):
    """A new array with ``D``'s last axis on the diagonal of two new last axes (autograd's)."""
    if offset != 0 or {axis1, axis2} != {-1, -2}:
        raise NotImplementedError("make_diagonal supports offset=0, axis1=-1, axis2=-2")
    n = shape_of(D)[-1]
    if traced(D):
        return multiply(expand_dims(D, -1), onp.eye(n))
    return onp.asarray(D)[..., None] * onp.eye(n)


# ------------------------------------------------------------------ tensordot --


def _tensordot_axes(axes, an, bn):
    if isinstance(axes, (int, onp.integer)):
        return list(range(an - axes, an)), list(range(axes))
    ax_a, ax_b = axes
    ax_a = [ax_a] if isinstance(ax_a, (int, onp.integer)) else list(ax_a)
    ax_b = [ax_b] if isinstance(ax_b, (int, onp.integer)) else list(ax_b)
    return [int(i) % an for i in ax_a], [int(i) % bn for i in ax_b]


def _tensordot(a, b, axes=2):
    return onp.tensordot(a, b, axes)


def _tensordot_a(g, ans, a, b, axes=2):
    # C = Σ A B over the paired axes:  Ā = C̄ contracted with B over B's free axes,
    # its axes put back in A's order
    an, bn = ndim_of(a), ndim_of(b)
    sum_a, sum_b = _tensordot_axes(axes, an, bn)
    free_a = [i for i in range(an) if i not in sum_a]
    free_b = [i for i in range(bn) if i not in sum_b]
    nfa = len(free_a)
    t = tensordot_p(g, b, (list(range(nfa, nfa + len(free_b))), free_b))
    order_b = sorted(sum_b)
    perm = [0] * an
    for p, i in enumerate(free_a):
        perm[i] = p
    for i, j in zip(sum_a, sum_b):
        perm[i] = nfa + order_b.index(j)
    return transpose(t, tuple(perm))


def _tensordot_b(g, ans, a, b, axes=2):
    # B̄ = A contracted with C̄ over A's free axes, its axes put back in B's order
    an, bn = ndim_of(a), ndim_of(b)
    sum_a, sum_b = _tensordot_axes(axes, an, bn)
    free_a = [i for i in range(an) if i not in sum_a]
    free_b = [i for i in range(bn) if i not in sum_b]
    t = tensordot_p(a, g, (free_a, list(range(len(free_a)))))
    order_a = sorted(sum_a)
    perm = [0] * bn
    for p, i in enumerate(free_b):
        perm[i] = len(sum_a) + p
    for i, j in zip(sum_a, sum_b):
        perm[j] = order_a.index(i)
    return transpose(t, tuple(perm))


def _contraction_macs(out, args):
    """|A| |B| = |C| k²: each of C's elements sums k products; each adjoint as many."""
    n = _size(out)
    k = round((_size(args[0]) * _size(args[1]) / n) ** 0.5) if n else 0
    return n * k, {0: n * k, 1: n * k}


def _tensordot_samples(r):
    return [Sample(r.normal(size=(2, 3, 4)), r.normal(size=(3, 4, 5))),  # axes=2
            Sample(r.normal(size=(3, 4)), r.normal(size=(4, 2)), 1),
            Sample(r.normal(size=(3,)), r.normal(size=(2,)), 0),  # an outer product
            Sample(r.normal(size=(2, 3, 4)), r.normal(size=(4, 3, 5)), ((1, 2), (1, 0))),
            Sample(r.normal(size=(2, 3, 4)), r.normal(size=(3, 5)), ((-2,), (0,)))]


tensordot_p = define(
    _tensordot, "tensordot", vjps=[_tensordot_a, _tensordot_b],
    formula=Formula("{out} = Σ {0} {1} over the paired axes",
                    {0: "{0}̄ = Σ {out}̄ {1} over {1}'s free axes",
                     1: "{1}̄ = Σ {0} {out}̄ over {0}'s free axes"}, _contraction_macs),
    lowering=low.body(low.tensordot_body), samples=_tensordot_samples,
)


def tensordot(a, b, axes=2):
    if traced(a, b):
        if isinstance(axes, (list, tuple)):
            axes = tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in axes)
        return tensordot_p(a, b, axes)
    return onp.tensordot(a, b, axes)


def dot(a, b, out=None):
    if not traced(a, b):
        return onp.dot(a, b, out)
    an, bn = ndim_of(a), ndim_of(b)
    if an == 0 or bn == 0:
        return multiply(a, b)
    if bn <= 2:
        return matmul(a, b)
    return tensordot_p(a, b, ((an - 1,), (bn - 2,)))


def vdot(a, b):
    if not traced(a, b):
        return onp.vdot(a, b)
    return _ops.sum(multiply(ravel(a), ravel(b)))


def inner(a, b):
    if not traced(a, b):
        return onp.inner(a, b)
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return multiply(a, b)
    return tensordot_p(a, b, ((ndim_of(a) - 1,), (ndim_of(b) - 1,)))


def outer(a, b, out=None):
    if not traced(a, b):
        return onp.outer(a, b, out)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def matmul_fn(x1, x2, **kwargs):
    return matmul(x1, x2) if traced(x1, x2) else onp.matmul(x1, x2, **kwargs)


def kron(a, b):
    if not traced(a, b):
        return onp.kron(a, b)
    sa, sb = shape_of(a), shape_of(b)
    d = builtins.max(len(sa), len(sb))
    sa = (1,) * (d - len(sa)) + tuple(sa)
    sb = (1,) * (d - len(sb)) + tuple(sb)
    wide_a, wide_b, out = [], [], []
    for n, m in zip(sa, sb):
        wide_a += [n, 1]
        wide_b += [1, m]
        out.append(n * m)
    return reshape(multiply(reshape(a, tuple(wide_a)), reshape(b, tuple(wide_b))), tuple(out))


# --------------------------------------------------------------------- cross --


def _cross_last(a, b):
    return onp.cross(a, b)


# c = a × b (along the last axis):  ā = b × c̄,  b̄ = c̄ × a
cross_p = define(
    _cross_last, "cross",
    vjps=[lambda g, ans, a, b: unbroadcast(cross_p(b, g), a),
          lambda g, ans, a, b: unbroadcast(cross_p(g, a), b)],
    formula=Formula("{out} = {0} × {1}", {0: "{0}̄ = {1} × {out}̄", 1: "{1}̄ = {out}̄ × {0}"},
                    lambda out, args: (2 * _size(out), {0: 2 * _size(out), 1: 2 * _size(out)}),
                    broadcasts=True),
    lowering=low.body(low.cross_body),
    samples=lambda r: [Sample(r.normal(size=(3,)), r.normal(size=(3,))),
                       Sample(r.normal(size=(4, 3)), r.normal(size=(3,))),
                       Sample(r.normal(size=(2, 1, 3)), r.normal(size=(4, 3)))],
)


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if not traced(a, b):
        return onp.cross(a, b, axisa, axisb, axisc, axis)
    if axis is not None:
        axisa = axisb = axisc = axis
    c = cross_p(moveaxis(a, axisa, -1), moveaxis(b, axisb, -1))
    return moveaxis(c, -1, axisc) if ndim_of(c) > 0 else c


# -------------------------------------------------------------------- einsum --


def _einsum(subscripts, *operands):
    return onp.einsum(subscripts, *operands)


def _einsum_rule(argnum):
    def rule(g, ans, subscripts, *operands):
        # Ā_k = C̄ contracted with every other operand, out to A_k's indices; indices
        # summed in A_k alone are contracted against a tensor of ones.
        k = argnum - 1
        in_subs, out_subs, _ = _parse_einsum_input(
            (subscripts,) + tuple(shape_proxy(o) for o in operands)
        )
        subs = in_subs.split(",")
        wrt = subs[k]
        if len(set(wrt)) != len(wrt):
            raise NotImplementedError(
                f"einsum: fastgrad has no derivative for an operand with a repeated index "
                f"({wrt!r} in {subscripts!r})")
        others = subs[:k] + subs[k + 1 :]
        inputs, ops = [out_subs] + others, [g] + list(operands[:k] + operands[k + 1 :])
        named = set(out_subs + "".join(others))
        shape = shape_of(operands[k])
        naked = [(i, c) for i, c in enumerate(wrt) if c not in named]
        if naked:
            inputs.append("".join(c for _, c in naked))
            ops.append(onp.ones([shape[i] for i, _ in naked]))
        return unbroadcast(einsum_p(",".join(inputs) + "->" + wrt, *ops), operands[k])

    return rule


def _einsum_samples(r):
    n = r.normal
    return [Sample("ij,jk->ik", n(size=(3, 4)), n(size=(4, 2))),
            Sample("ij,jk", n(size=(3, 4)), n(size=(4, 2))),  # the implicit output
            Sample("i,i->", n(size=(4,)), n(size=(4,))),
            Sample("ij->j", n(size=(3, 4))),  # i summed in one operand alone
            Sample("ijk,kjl->il", n(size=(2, 3, 4)), n(size=(4, 3, 5))),
            Sample("ij,jk,kl->il", n(size=(2, 3)), n(size=(3, 4)), n(size=(4, 2))),
            Sample("...ij,...jk->...ik", n(size=(2, 3, 4)), n(size=(1, 4, 2)))]  # broadcast


def _unknown_macs(out_shape, arg_shapes):
    """How many products an einsum sums depends on its subscripts, which a shape does not say."""
    return None, {i: None for i in range(len(arg_shapes))}


einsum_p = define(
    _einsum, "einsum", vjps=_ops.EveryArgument(_einsum_rule),
    formula=Formula("{out} = einsum(…)",
                    {i: f"{{{i}}}̄ = einsum of {{out}}̄ with the other operands, to {{{i}}}'s indices"
                     for i in range(1, 9)}, _unknown_macs),
    lowering=low.body(low.einsum_body), samples=_einsum_samples,
)


def _sublists_to_subscripts(args):
    """einsum(op0, sublist0, op1, sublist1, ..., [out]) → ('ij,jk->ik', ops)."""

    def letters(sub):
        return "".join("..." if s is Ellipsis else string.ascii_letters[s] for s in sub)

    args = list(args)
    out = args.pop() if len(args) % 2 else None
    ops, subs = args[0::2], args[1::2]
    spec = ",".join(letters(s) for s in subs)
    if out is not None:
        spec += "->" + letters(out)
    return spec, ops


def einsum(*operands, **kwargs):
    if not traced(*operands):
        return onp.einsum(*operands, **kwargs)
    if isinstance(operands[0], str):
        return einsum_p(operands[0], *operands[1:])
    spec, ops = _sublists_to_subscripts(operands)
    return einsum_p(spec, *ops)
