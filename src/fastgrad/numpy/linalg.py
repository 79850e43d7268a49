"""``fastgrad.numpy.linalg``: NumPy's linear algebra with derivatives (real matrices).

``DIFFERENTIABLE`` lists the functions with derivatives (the NumPy map's twins of
``numpy.linalg``'s); every other name of ``numpy.linalg`` is recorded without a rule
(``NoRule``), so a backward through it raises NotImplementedError naming it (never a zero
gradient).

The primitives (inv, pinv, solve, det, logabsdet, cholesky, eigh_values, eigh_vectors)
are registry entries (``fastgrad._registry``); slogdet, eigh, eigvalsh, svd's singular
values, norm, multi_dot and matrix_power are compositions of them. Every function accepts
stacks of matrices (``(..., n, n)``), like NumPy's. The rules are written with matmul,
transposes and these functions themselves, so they are differentiable again (the hessian
of log|det A| works). eigh is recorded as one primitive per returned array, each
computing the decomposition: that keeps every output a plain array on the tape.
"""

import numpy as onp

from .. import _ops
from .._ops import matmul, multiply, reshape, shape_of, sqrt, swapaxes, unbroadcast, value
from .._registry import Formula, NotCompiled, Sample, define
from .._tape import TensorBase as Tensor
from ._building import array
from ._shapes import moveaxis
from ._elementwise import conjugate, real_part
from ._spectral import EigResult, SVDResult, eig_values, eig_vectors, svd_u, svd_values, svd_vh
from ._util import NoRule, contains_tensor


def T(x):
    """Swap the last two axes: the matrix transpose of a stack of matrices."""
    return swapaxes(x, -1, -2)


def _iscomplex(x):
    return onp.iscomplexobj(value(x))


def _dot(a, b):
    return matmul(a, b)


def _column(x):  # (..., n) → (..., n, 1)
    return _ops.expand_dims(x, -1)


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


def _cubic_macs(forward, backward):
    """MACs of an n×n matrix function, per matrix of the stack: ``forward`` n³ for the
    factorisation (the leading term of LAPACK's count), ``backward`` n³ for the rule."""

    def macs(out_shape, arg_shapes):
        shape = arg_shapes[0]
        n, stack = shape[-1], _size(shape[:-2])
        return round(forward * stack * n**3), {0: round(backward * stack * n**3)}

    return macs


# Samples: well-conditioned matrices (a random one plus a multiple of I), stacks of them.
def _square(r, *shape, shift=3.0):
    return r.normal(size=shape) + shift * onp.eye(shape[-1])


def _spd(r, *shape):
    b = r.normal(size=shape)
    return b @ onp.swapaxes(b, -1, -2) + shape[-1] * onp.eye(shape[-1])


# ------------------------------------------------------------------------- inverse --

# Y = A⁻¹:  Ā = −Yᵀ Ȳ Yᵀ
inv = define(
    onp.linalg.inv, "inv", vjps=[lambda g, ans, a: -matmul(T(ans), matmul(g, T(ans)))],
    saves_args=False, saves_ans=True,
    formula=Formula("{out} = {0}⁻¹", {0: "{0}̄ = −{out}ᵀ {out}̄ {out}ᵀ"}, _cubic_macs(1, 2)),
    lowering=NotCompiled("inv is not lowered yet"),
    samples=lambda r: [Sample(_square(r, 3, 3)), Sample(_square(r, 2, 3, 3))],
)


def _pinv_vjp(g, ans, a, rcond=None, **kwargs):
    # A⁺ is differentiable where the rank is constant:
    # Ā = −A⁺ᵀ Ḡ A⁺ᵀ + (I − A A⁺) Ḡᵀ A⁺ A⁺ᵀ + A⁺ᵀ A⁺ Ḡᵀ (I − A⁺ A)
    if _iscomplex(a):
        raise NotImplementedError(
            f"fastgrad.numpy.linalg.pinv: no derivative for a complex matrix of shape {shape_of(a)}")
    p = ans
    pt, gt = T(p), T(g)
    left = onp.eye(shape_of(a)[-2]) - matmul(a, p)
    right = onp.eye(shape_of(a)[-1]) - matmul(p, a)
    return (
        -matmul(pt, matmul(g, pt))
        + matmul(left, matmul(gt, matmul(p, pt)))
        + matmul(pt, matmul(p, matmul(gt, right)))
    )


def _pinv(a, rcond=None, **kwargs):
    if rcond is None:
        return onp.linalg.pinv(a, **kwargs)
    return onp.linalg.pinv(a, rcond, **kwargs)


def _pinv_macs(out_shape, arg_shapes):
    # an SVD (≈ 4mn² + 8n³ for m ≥ n) forward; the rule's eight products (≈ 8mn²) backward
    m, n = sorted(arg_shapes[0][-2:], reverse=True)
    stack = _size(arg_shapes[0][:-2])
    return stack * (4 * m * n * n + 8 * n**3), {0: stack * 8 * m * n * n}


pinv = define(
    _pinv, "pinv", vjps=[_pinv_vjp], saves_ans=True,
    formula=Formula("{out} = {0}⁺", {0: "{0}̄ = −{out}ᵀ {out}̄ {out}ᵀ + (I − {0} {out}) {out}̄ᵀ {out} {out}ᵀ "
                                         "+ {out}ᵀ {out} {out}̄ᵀ (I − {out} {0})"}, _pinv_macs),
    lowering=NotCompiled("pinv is not lowered yet"),
    samples=lambda r: [Sample(r.normal(size=(4, 3))), Sample(r.normal(size=(3, 4))),
                       Sample(_square(r, 3, 3)), Sample(r.normal(size=(2, 4, 3)), 1e-10)],
)


def _solve_a(g, ans, a, b):
    # x = A⁻¹ b:  b̄ = A⁻ᵀ x̄,  Ā = −b̄ xᵀ
    bbar = solve(T(a), g)
    if len(shape_of(b)) == 1:
        return unbroadcast(-multiply(_column(bbar), _ops.expand_dims(ans, -2)), a)
    return unbroadcast(-matmul(bbar, T(ans)), a)


def _solve_b(g, ans, a, b):
    return unbroadcast(solve(T(a), g), b)


def _solve_macs(out_shape, arg_shapes):
    # LU (n³/3) and the substitutions (n² per column) forward; the same, and b̄ xᵀ, backward
    n = arg_shapes[0][-1]
    cols = _size(out_shape) // n if n else 0
    lu = _size(arg_shapes[0][:-2]) * n**3 // 3
    return lu + cols * n * n, {0: lu + 2 * cols * n * n, 1: lu + cols * n * n}


solve = define(
    onp.linalg.solve, "solve", vjps=[_solve_a, _solve_b], saves_ans=True,
    formula=Formula("{out} = {0}⁻¹ {1}", {0: "{0}̄ = −({0}⁻ᵀ {out}̄) {out}ᵀ",
                                          1: "{1}̄ = {0}⁻ᵀ {out}̄"}, _solve_macs),
    lowering=NotCompiled("solve is not lowered yet"),
    samples=lambda r: [Sample(_square(r, 3, 3), r.normal(size=(3,))),
                       Sample(_square(r, 3, 3), r.normal(size=(3, 2))),
                       Sample(_square(r, 2, 3, 3), r.normal(size=(2, 3, 2))),
                       Sample(_square(r, 2, 3, 3), r.normal(size=(3, 2))),  # b broadcast
                       Sample(_square(r, 3, 3), r.normal(size=(2, 3, 2)))],  # A broadcast
)

# ---------------------------------------------------------------- determinants --

# d = det A:  Ā = d̄ d A⁻ᵀ
det = define(
    onp.linalg.det, "det",
    vjps=[lambda g, ans, a: multiply(_column(_column(g * ans)), T(inv(a)))], saves_ans=True,
    formula=Formula("{out} = det {0}", {0: "{0}̄ = {out}̄ {out} {0}⁻ᵀ"}, _cubic_macs(1 / 3, 1)),
    lowering=NotCompiled("det is not lowered yet"),
    samples=lambda r: [Sample(r.normal(size=(3, 3))), Sample(r.normal(size=(2, 3, 3)))],
)


def _logabsdet(a):
    return onp.linalg.slogdet(a)[1]


# ℓ = log|det A|:  Ā = ℓ̄ A⁻ᵀ
logabsdet = define(  # real for a complex A too:  Ā = Re ℓ̄ A⁻ᵀ
    _logabsdet, "logabsdet",
    vjps=[lambda g, ans, a: multiply(_column(_column(real_part(g))), T(inv(a)))],
    formula=Formula("{out} = log|det {0}|", {0: "{0}̄ = {out}̄ {0}⁻ᵀ"}, _cubic_macs(1 / 3, 1)),
    lowering=NotCompiled("logabsdet is not lowered yet"),
    samples=lambda r: [Sample(r.normal(size=(3, 3))), Sample(r.normal(size=(2, 3, 3))),
                       Sample(onp.array([[0.0, 2.0], [1.5, 0.3]])),  # det < 0
                       Sample(_square(r, 3, 3) + 1j * r.normal(size=(3, 3)))],
)


def slogdet(a):
    """(sign, log|det a|); the sign is a constant, the log is differentiable."""
    if not isinstance(a, Tensor):
        return onp.linalg.slogdet(a)
    sign = onp.linalg.slogdet(value(a))[0]
    return sign, logabsdet(a)


# ------------------------------------------------------------ the symmetric ones --


def _uplo_projection(m, UPLO):
    """eigh and cholesky read one triangle of A: a change of A[i, j] there moves both
    A[i, j] and A[j, i] of the symmetric matrix it stands for, so its gradient is
    M[i, j] + M[j, i]; the other triangle gets none, the diagonal M[i, i]. For a complex
    (Hermitian) A the mirror entry is conjugated, M[i, j] + conj M[j, i], and the diagonal
    gets Re M[i, i] (its imaginary part is not read)."""
    n = shape_of(m)[-1]
    tri = onp.tril(onp.ones((n, n)), -1) if UPLO == "L" else onp.triu(onp.ones((n, n)), 1)
    if _iscomplex(m):  # Hermitian: A[j, i] = conj A[i, j], and only Re A[i, i] is read
        return multiply(real_part(m), onp.eye(n)) + multiply(m + conjugate(T(m)), tri)
    return multiply(m, onp.eye(n)) + multiply(m + T(m), tri)


def _cholesky_vjp(g, ans, a, upper=False):
    # A = L Lᵀ:  Ā = ½ (S + Sᵀ),  S = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹, Φ = lower triangle with half diagonal
    # (the gradient as a symmetric matrix). Cholesky reads one triangle of A (the lower;
    # the upper for upper=True, where U = Lᵀ), so the gradient with respect to A's entries
    # is that one projected onto it.
    if _iscomplex(a):
        raise NotImplementedError(
            "fastgrad.numpy.linalg.cholesky: no derivative for a complex (Hermitian) matrix "
            f"of shape {shape_of(a)}; only real symmetric ones")
    if upper:
        g, ans = T(g), T(ans)
    n = shape_of(ans)[-1]
    phi = onp.tril(onp.ones((n, n))) - 0.5 * onp.eye(n)
    linv = inv(ans)
    s = matmul(T(linv), matmul(multiply(matmul(T(ans), g), phi), linv))
    return _uplo_projection(0.5 * (s + T(s)), "U" if upper else "L")


def _cholesky(a, upper=False):
    return onp.linalg.cholesky(a, upper=True) if upper else onp.linalg.cholesky(a)


cholesky = define(
    _cholesky, "cholesky", vjps=[_cholesky_vjp], saves_args=False, saves_ans=True,
    formula=Formula("{out} = chol({0}),  {0} = {out} {out}ᵀ",
                    {0: "{0}̄ = sym({out}⁻ᵀ Φ({out}ᵀ {out}̄) {out}⁻¹) on the triangle chol reads"},
                    _cubic_macs(1 / 6, 3)),
    lowering=NotCompiled("cholesky is not lowered yet"),
    samples=lambda r: [Sample(_spd(r, 3, 3)), Sample(_spd(r, 2, 3, 3)),
                       Sample(_spd(r, 3, 3) + onp.triu(r.normal(size=(3, 3)), 1)),  # not symmetric
                       Sample(_spd(r, 3, 3) + onp.tril(r.normal(size=(3, 3)), -1), upper=True)],
)


def _eigh_w(a, UPLO="L"):
    return onp.linalg.eigh(a, UPLO)[0]


def _eigh_v(a, UPLO="L"):
    return onp.linalg.eigh(a, UPLO)[1]


def _eigh_w_vjp(g, ans, a, UPLO="L"):
    # A = V diag(w) Vᴴ:  Ā = conj(V) diag(w̄) Vᵀ  (V diag(w̄) Vᵀ for a real A); w is real
    v = eigh_vectors(a, UPLO)
    g = real_part(g)
    vc = conjugate(v) if _iscomplex(v) else v
    return _uplo_projection(matmul(multiply(vc, _ops.expand_dims(g, -2)), T(v)), UPLO)


def _eigh_v_vjp(g, ans, a, UPLO="L"):
    # Ā = conj(V) (F ∘ Vᵀ V̄) Vᵀ with F_ij = 1 / (w_j − w_i) off the diagonal, 0 on it (for a
    # complex A, up to the phase of each eigenvector, which NumPy chooses freely: only a
    # function of V that does not depend on those phases has a derivative)
    w = eigh_values(a, UPLO)
    v = ans
    n = shape_of(a)[-1]
    off = 1.0 - onp.eye(n)
    gaps = _ops.expand_dims(w, -2) - _ops.expand_dims(w, -1) + onp.eye(n)
    f = off / gaps
    vc = conjugate(v) if _iscomplex(v) else v
    return _uplo_projection(matmul(vc, matmul(multiply(f, matmul(T(v), g)), T(v))), UPLO)


def _eigh_samples(r):
    """Symmetric matrices (distinct eigenvalues), a stack, and matrices whose other
    triangle differs (eigh does not read it: its gradient there is 0)."""
    s = r.normal(size=(3, 3))
    return [Sample(s + s.T), Sample(_spd(r, 2, 3, 3)), Sample(r.normal(size=(3, 3))),
            Sample(r.normal(size=(3, 3)), "U")]


def _eigh_complex_samples(r):
    """Hermitian (complex) matrices, read from either triangle: only the eigenvalues, as
    the eigenvectors' phases are NumPy's free choice (tests/test_linalg_complex.py checks
    functions of V that do not depend on them)."""
    h = r.normal(size=(3, 3)) + 1j * r.normal(size=(3, 3))
    return _eigh_samples(r) + [Sample(h), Sample(h, "U"), Sample(h + h.conj().T)]


eigh_values = define(
    _eigh_w, "eigh_values", vjps=[_eigh_w_vjp],
    formula=Formula("{out} = eigenvalues of {0} (symmetric)",
                    {0: "{0}̄ = conj(V) diag({out}̄) Vᵀ on {0}'s read triangle"}, _cubic_macs(4 / 3, 2)),
    lowering=NotCompiled("eigh is not lowered yet"), samples=_eigh_complex_samples,
)
eigh_vectors = define(
    _eigh_v, "eigh_vectors", vjps=[_eigh_v_vjp], saves_ans=True,
    formula=Formula("{out} = eigenvectors of {0} (symmetric)",
                    {0: "{0}̄ = conj({out}) (F ∘ {out}ᵀ {out}̄) {out}ᵀ on {0}'s read triangle, "
                        "F_ij = 1/(w_j − w_i)"}, _cubic_macs(9, 4)),
    lowering=NotCompiled("eigh is not lowered yet"), samples=_eigh_samples,
)


def eigh(a, UPLO="L"):
    """(w, V) of a symmetric matrix; derivatives assume distinct eigenvalues.

    As NumPy's, it reads only the ``UPLO`` triangle of ``a``; the gradient is that of the
    symmetric matrix the triangle stands for (zero on the other triangle), as autograd's.
    """
    if not isinstance(a, Tensor):
        return onp.linalg.eigh(a, UPLO)
    return eigh_values(a, UPLO), eigh_vectors(a, UPLO)


def eigvalsh(a, UPLO="L"):
    return eigh_values(a, UPLO) if isinstance(a, Tensor) else onp.linalg.eigvalsh(a, UPLO)


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """(U, S, Vᴴ), or S alone with ``compute_uv=False``, of a (stack of) real or complex
    matrix, differentiable (fastgrad.numpy._spectral): S always; U and Vᴴ with
    ``full_matrices=False`` or a square matrix, and for a complex matrix only through
    functions that do not depend on the phases NumPy gives the singular vectors."""
    if not isinstance(a, Tensor):
        return onp.linalg.svd(a, full_matrices, compute_uv, hermitian)
    if hermitian:
        raise NotImplementedError("fastgrad.numpy.linalg.svd: no derivative with hermitian=True; "
                                  "call it with hermitian=False")
    if not compute_uv:
        return svd_values(a)
    return SVDResult(svd_u(a, full_matrices), svd_values(a), svd_vh(a, full_matrices))


def eig(a):
    """(w, V) of a (stack of) square matrix, differentiable (fastgrad.numpy._spectral)."""
    if not isinstance(a, Tensor):
        return onp.linalg.eig(a)
    return EigResult(eig_values(a), eig_vectors(a))


def eigvals(a):
    return eig_values(a) if isinstance(a, Tensor) else onp.linalg.eigvals(a)


# ------------------------------------------------------------------------ norms --


def _as_array(x):
    if isinstance(x, (list, tuple)) and contains_tensor(x):
        return array(x)
    return x


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector and matrix norms, composed of differentiable primitives."""
    x = _as_array(x)
    if not isinstance(x, Tensor):
        return onp.linalg.norm(x, ord, axis, keepdims)
    nd = len(shape_of(x))
    if isinstance(axis, list):
        axis = tuple(axis)
    if axis is None and (ord is None or nd == 1 or (nd == 2 and ord is not None)):
        if ord is None:
            return _finish(sqrt(_ops.sum(_abs2(x))), nd, keepdims)
        axis = tuple(range(nd))
    if axis is None:
        raise ValueError("norm: give axis for an ord on an array of more than two dimensions")
    if isinstance(axis, int) or len(axis) == 1:
        return _vector_norm(x, ord, axis if isinstance(axis, int) else axis[0], keepdims)
    return _matrix_norm(x, ord, axis, keepdims)


def _abs2(x):
    """|x|², real: x x, or Re(x conj x) for a complex x."""
    return real_part(x * conjugate(x)) if _iscomplex(x) else x * x


def _finish(r, nd, keepdims):
    return reshape(r, (1,) * nd) if keepdims else r


def _vector_norm(x, ord, axis, keepdims):
    s = _ops.sum
    if ord is None or ord == 2:
        return sqrt(s(_abs2(x), axis, keepdims))
    a = _ops.absolute(x)
    if ord == onp.inf:
        return _ops.amax(a, axis, keepdims)
    if ord == -onp.inf:
        return _ops.amin(a, axis, keepdims)
    if ord == 0:
        return onp.sum(value(x) != 0, axis=axis, keepdims=keepdims).astype(float)
    if ord == 1:
        return s(a, axis, keepdims)
    return s(a**ord, axis, keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, axis, keepdims):
    nd = len(shape_of(x))
    row, col = (a % nd for a in axis)
    if ord is None or ord == "fro":
        return sqrt(_ops.sum(_abs2(x), (row, col), keepdims))
    if ord in ("nuc", 2, -2):
        moved = moveaxis(x, (row, col), (-2, -1))
        sv = svd_values(moved)
        r = {"nuc": _ops.sum, 2: _ops.amax, -2: _ops.amin}[ord](sv, -1)
        if keepdims:
            r = _ops.expand_dims(_ops.expand_dims(r, min(row, col)), max(row, col))
        return r
    a = _ops.absolute(x)
    if ord in (1, -1):
        sums, other = _ops.sum(a, row, True), col
    elif ord in (onp.inf, -onp.inf):
        sums, other = _ops.sum(a, col, True), row
    else:
        raise ValueError(f"invalid norm order {ord!r} for matrices")
    pick = _ops.amax if ord in (1, onp.inf) else _ops.amin
    r = pick(sums, other, True)
    return (
        r
        if keepdims
        else reshape(r, tuple(n for i, n in enumerate(shape_of(r)) if i not in (row, col)))
    )


# ------------------------------------------------------------- products and powers --


def multi_dot(arrays, *, out=None):
    """A₁ A₂ ⋯ Aₖ, vectors at either end as NumPy's; the product of matmuls (its rules)."""
    arrays = list(arrays)
    if not contains_tensor(arrays):
        return onp.linalg.multi_dot(arrays, out=out)
    if len(arrays) < 2:
        raise ValueError("multi_dot: expecting at least two arrays")
    result = arrays[0]
    for a in arrays[1:]:
        result = matmul(result, a)
    return result


def matrix_power(a, n):
    """Aⁿ by repeated squaring (A⁻¹ first for n < 0), so its rule is matmul's (and inv's)."""
    if not isinstance(a, Tensor):
        return onp.linalg.matrix_power(a, n)
    n = int(n)
    if n == 0:
        return _ops.broadcast_to(onp.eye(shape_of(a)[-1]), shape_of(a)) + 0.0 * a
    if n < 0:
        a, n = inv(a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else matmul(result, a)
        n >>= 1
        if n:
            a = matmul(a, a)
    return result


DIFFERENTIABLE = ("inv", "pinv", "solve", "det", "slogdet", "cholesky", "eigh", "eigvalsh",
                  "svd", "eig", "eigvals", "norm", "multi_dot", "matrix_power")


def _recorded_without_rule():
    """Every other function of numpy.linalg: recorded, its backward raises (naming it)."""
    for name in dir(onp.linalg):
        obj = getattr(onp.linalg, name)
        if name.startswith("_") or name in DIFFERENTIABLE or name in globals():
            continue
        if callable(obj) and not isinstance(obj, type):
            globals()[name] = NoRule(obj, f"numpy.linalg.{name}")
        else:
            globals()[name] = obj  # LinAlgError and the like


_recorded_without_rule()
