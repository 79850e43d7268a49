"""``fastgrad.scipy.linalg``: SciPy's linear algebra, with derivatives for ``sqrtm``,
``solve_sylvester``, ``solve_triangular``, ``solve_banded`` and ``cholesky`` (real
matrices). Every other function of ``scipy.linalg`` is here too, as autograd's is:
recorded without a rule, so a backward through it raises NotImplementedError naming it.

    X = sqrtm(A), X² = A:                Ā = sylv(Xᵀ, Xᵀ, X̄)
    X = solve_sylvester(A, B, Q),         Q̄ = sylv(Aᵀ, Bᵀ, X̄),  Ā = −Q̄ Xᵀ,  B̄ = −Xᵀ Q̄
      A X + X B = Q:
    x = solve_triangular(A, b), op(A) x = b:  b̄ = op(A)⁻ᵀ x̄,  Ā = −b̄ xᵀ (op = ᵀ: −x b̄ᵀ),
                                           kept on the triangle A's solve reads
    x = solve_banded((l, u), ab, b):      b̄ = A⁻ᵀ x̄,  āb[u + i − j, j] = −(b̄ xᵀ)ᵢⱼ in the band
    L = cholesky(A):                      Ā = ½ (S + Sᵀ),  S = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹
                                           (Φ: the lower triangle, half the diagonal),
                                           on the triangle SciPy reads

``cholesky`` reads one triangle of A, as LAPACK does (the upper; the lower with
``lower=True``), so its gradient is the exact one of that function: the symmetric
gradient above folded onto that triangle, zero on the other (as ``fastgrad.numpy.linalg``'s).
On a symmetric function of your parameters (``cholesky(B @ B.T)``) it is the same as
autograd's symmetric convention.
"""

import numpy as onp
import scipy.linalg as _sla

from .. import numpy as fnp
from .._ops import matmul, multiply
from ..numpy._util import NoRule
from ._common import Formula, Sample, entry, refuse, shape_of, value

__all__ = ["sqrtm", "solve_sylvester", "solve_triangular", "solve_banded", "cholesky"]


def _T(x):
    return fnp.swapaxes(x, -1, -2)


# ----------------------------------------------------------------- sylvester --

# X = sylv(A, B, Q) solves A X + X B = Q; its adjoint is the same solve transposed.
solve_sylvester = entry(
    _sla.solve_sylvester, "solve_sylvester",
    vjps=[lambda g, ans, a, b, q: -matmul(solve_sylvester(_T(a), _T(b), g), _T(ans)),
          lambda g, ans, a, b, q: -matmul(_T(ans), solve_sylvester(_T(a), _T(b), g)),
          lambda g, ans, a, b, q: solve_sylvester(_T(a), _T(b), g)],
    saves_ans=True,
    formula=Formula("{out} = sylv({0}, {1}, {2})  [{0}{out} + {out}{1} = {2}]",
                    {0: "{0}̄ = −sylv({0}ᵀ, {1}ᵀ, {out}̄) {out}ᵀ",
                     1: "{1}̄ = −{out}ᵀ sylv({0}ᵀ, {1}ᵀ, {out}̄)",
                     2: "{2}̄ = sylv({0}ᵀ, {1}ᵀ, {out}̄)"},
                    macs=lambda out, args: (_cube(out), {0: 3 * _cube(out), 1: 3 * _cube(out),
                                                         2: 2 * _cube(out)})),
    samples=lambda r: [Sample(r.normal(size=(3, 3)) + 3 * onp.eye(3), r.normal(size=(3, 3)) + 3 * onp.eye(3),
                              r.normal(size=(3, 3))),
                       Sample(r.normal(size=(2, 2)) + 2 * onp.eye(2), r.normal(size=(3, 3)) + 2 * onp.eye(3),
                              r.normal(size=(2, 3)))],
)


def _cube(shape):
    n = max(shape) if shape else 1
    return 10 * n ** 3  # a Schur decomposition and a triangular solve


def _sqrtm(A, **kwargs):
    return _sla.sqrtm(A, **kwargs)


def _sqrtm_rule(g, ans, A, **kwargs):
    if kwargs.get("disp") is False:
        raise NotImplementedError("sqrtm: no derivative with disp=False (it returns an error estimate too)")
    a_bar = solve_sylvester(_T(ans), _T(ans), g)
    if onp.iscomplexobj(value(a_bar)) and not onp.iscomplexobj(value(A)):
        return fnp.real(a_bar)  # a real A moves along real directions only (as autograd)
    return a_bar


# X = A^½:  X dX + dX X = dA, so Ā = sylv(Xᵀ, Xᵀ, X̄)
sqrtm = entry(
    _sqrtm, "sqrtm", vjps=[_sqrtm_rule], saves_ans=True,
    formula=Formula("{out} = {0}^½", {0: "{0}̄ = sylv({out}ᵀ, {out}ᵀ, {out}̄)"},
                    macs=lambda out, args: (_cube(out), {0: _cube(out)})),
    samples=lambda r: [Sample(_spd(r, 3)), Sample(_spd(r, 2) + 0.3 * r.normal(size=(2, 2)))],
)


def _spd(r, n):
    m = r.normal(size=(n, n))
    return m @ m.T + n * onp.eye(n)


# ----------------------------------------------------------- triangular solve --


def _transposed(trans):
    """Whether ``trans`` (SciPy's 0/'N', 1/'T', 2/'C') solves with Aᵀ (real matrices)."""
    if trans in (0, "N", "n"):
        return False
    if trans in (1, 2, "T", "C", "t", "c"):
        return True
    raise ValueError(f"solve_triangular: trans={trans!r} is not one of 0, 1, 2, 'N', 'T', 'C'")


def _read_triangle(n, lower, unit_diagonal):
    """1 on the entries of A that solve_triangular reads, 0 elsewhere."""
    k = -1 if unit_diagonal else 0
    return onp.tril(onp.ones((n, n)), k) if lower else onp.triu(onp.ones((n, n)), -k)


def _outer(u, v):
    """u vᵀ for vectors, Σ over columns u vᵀ for matrices (…, n, k)."""
    if len(shape_of(u)) == 1:
        return multiply(fnp.expand_dims(u, -1), fnp.expand_dims(v, -2))
    return matmul(u, _T(v))


def _solve_triangular_a(g, ans, a, b, trans=0, lower=False, unit_diagonal=False, **kwargs):
    t = _transposed(trans)
    b_bar = solve_triangular(a, g, trans=0 if t else 1, lower=lower, unit_diagonal=unit_diagonal)
    full = _outer(ans, b_bar) if t else _outer(b_bar, ans)
    return -full * _read_triangle(shape_of(a)[-1], lower, unit_diagonal)


def _solve_triangular_b(g, ans, a, b, trans=0, lower=False, unit_diagonal=False, **kwargs):
    t = _transposed(trans)
    return solve_triangular(a, g, trans=0 if t else 1, lower=lower, unit_diagonal=unit_diagonal)


def _triangular_samples(r):
    low = onp.tril(r.normal(size=(4, 4))) + 3 * onp.eye(4)
    up = low.T.copy()
    return [Sample(low, r.normal(size=(4,)), lower=True),
            Sample(up, r.normal(size=(4, 2))),
            Sample(low, r.normal(size=(4, 2)), trans="T", lower=True),
            Sample(up, r.normal(size=(4,)), trans=1, unit_diagonal=True)]


solve_triangular = entry(
    _sla.solve_triangular, "solve_triangular",
    vjps=[_solve_triangular_a, _solve_triangular_b], saves_ans=True,
    formula=Formula("{out} = {0}⁻¹ {1}  ({0} triangular)",
                    {0: "{0}̄ = −tri({0}⁻ᵀ {out}̄ {out}ᵀ)", 1: "{1}̄ = {0}⁻ᵀ {out}̄"},
                    macs=lambda out, args: _solve_macs(args)),
    samples=_triangular_samples,
)


def _solve_macs(args):
    if args[0] is None or args[1] is None:
        return 0, {}
    n = args[0][-1]
    k = int(onp.prod(args[1])) // max(n, 1)
    return n * n * k // 2, {0: n * n * k, 1: n * n * k // 2}


# ---------------------------------------------------------------- banded solve --


def _band_transpose_index(l, u, n):
    """For Aᵀ's band storage (u below, l above): the (row, column) of ab each entry is
    read from, and where that lies inside the matrix."""
    rows, cols = onp.mgrid[0:l + u + 1, 0:n]
    i = cols + rows - l  # Aᵀ[i, j] = A[j, i] sits at abᵀ[l + i − j, j]
    src_r, src_c = u + cols - i, i
    inside = (i >= 0) & (i < n)
    return onp.where(inside, src_r, 0), onp.where(inside, src_c, 0), inside.astype(float)


def _band_transpose(l_and_u, ab):
    l, u = (int(v) for v in l_and_u)
    r, c, inside = _band_transpose_index(l, u, shape_of(ab)[-1])
    return ab[r, c] * inside


def _solve_banded_ab(g, ans, l_and_u, ab, b, **kwargs):
    # āb[u + i − j, j] = −b̄ᵢ xⱼ (summed over b's columns) for (i, j) in the band
    l, u = (int(v) for v in l_and_u)
    n = shape_of(ab)[-1]
    b_bar = solve_banded((u, l), _band_transpose(l_and_u, ab), g)
    rows, cols = onp.mgrid[0:l + u + 1, 0:n]
    i = cols + rows - u
    inside = ((i >= 0) & (i < n)).astype(float)
    i = onp.clip(i, 0, n - 1)
    x = ans
    if len(shape_of(b_bar)) == 1:
        return -(b_bar[i] * x[cols]) * inside
    return -fnp.sum(b_bar[i] * x[cols], -1) * inside


def _solve_banded_b(g, ans, l_and_u, ab, b, **kwargs):
    return solve_banded(tuple(int(v) for v in l_and_u)[::-1], _band_transpose(l_and_u, ab), g)


def _banded_samples(r):
    ab = r.normal(size=(3, 5))
    ab[1] += 4.0  # a dominant diagonal
    ab2 = r.normal(size=(4, 4))
    ab2[1] += 4.0  # (row u holds the diagonal)
    return [Sample((1, 1), ab, r.normal(size=(5,))),
            Sample((2, 1), ab2, r.normal(size=(4, 3))),
            Sample((0, 2), onp.vstack([r.normal(size=(2, 4)), 4 + r.uniform(size=(1, 4))]),
                   r.normal(size=(4,)))]


solve_banded = entry(
    _sla.solve_banded, "solve_banded",
    vjps=[refuse("solve_banded", "l_and_u (argument 0)", "band widths"), _solve_banded_ab, _solve_banded_b],
    saves_ans=True,
    formula=Formula("{out} = {1}⁻¹ {2}  ({1} banded)",
                    {1: "{1}̄ = −band({1}⁻ᵀ {out}̄ {out}ᵀ)", 2: "{2}̄ = {1}⁻ᵀ {out}̄"}),
    samples=_banded_samples,
)


# -------------------------------------------------------------------- cholesky --


def _onto_triangle(m, lower):
    """The gradient of a function of one triangle of A (read as the symmetric matrix it
    stands for) from its symmetric gradient m: an entry off the diagonal moves both
    m[i, j] and m[j, i]; the other triangle moves nothing."""
    n = shape_of(m)[-1]
    off = onp.tril(onp.ones((n, n)), -1) if lower else onp.triu(onp.ones((n, n)), 1)
    return multiply(m, onp.eye(n)) + multiply(m + _T(m), off)


def _cholesky_rule(g, ans, a, lower=False, **kwargs):
    L, L_bar = (ans, g) if lower else (_T(ans), _T(g))
    n = shape_of(a)[-1]
    phi = onp.tril(onp.ones((n, n))) - 0.5 * onp.eye(n)
    L_inv = solve_triangular(L, onp.eye(n), lower=True)
    s = matmul(_T(L_inv), matmul(multiply(matmul(_T(L), L_bar), phi), L_inv))
    return _onto_triangle(0.5 * (s + _T(s)), lower)


cholesky = entry(
    _sla.cholesky, "scipy.linalg.cholesky", vjps=[_cholesky_rule], saves_ans=True,
    formula=Formula("{out} = chol({0})", {0: "{0}̄ = sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹) on the triangle chol reads"},
                    macs=lambda out, args: (_cube(out) // 30, {0: _cube(out) // 5})),
    samples=lambda r: [Sample(_spd(r, 3)), Sample(_spd(r, 4), lower=True),
                       Sample(_spd(r, 3) + onp.tril(r.normal(size=(3, 3)), -1)),  # not symmetric
                       Sample(_spd(r, 3) + onp.triu(r.normal(size=(3, 3)), 1), lower=True)],
)


# ---------------------------------------------------------- everything else --


def _recorded_without_rule():
    """Every other function of scipy.linalg: recorded, its backward raises (naming it)."""
    for name in dir(_sla):
        obj = getattr(_sla, name)
        if name.startswith("_") or name in globals() or isinstance(obj, type) or not callable(obj):
            if not name.startswith("_") and name not in globals():
                globals()[name] = obj  # LinAlgError, submodules, constants
            continue
        globals()[name] = NoRule(obj, f"scipy.linalg.{name}")


_recorded_without_rule()
