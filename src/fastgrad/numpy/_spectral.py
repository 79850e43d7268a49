"""The singular value and eigen decompositions of general matrices, with derivatives.

``svd`` is three registry entries (``svd_u``, ``svd_values``, ``svd_vh``) and ``eig`` two
(``eig_values``, ``eig_vectors``), one per returned array; each computes the
decomposition. Their rules are one joint rule with the other outputs' signals zero (it
is linear in them, so the sum over the outputs a function uses is the joint rule). They
are written with matmul, conjugates and the decompositions themselves, so they can be
differentiated again. Complex matrices follow autograd's convention
(fastgrad._functional): the rule x̄ pairs with dA as Re Σ x̄ ∘ dA = Re Σ ḡ ∘ dY.

Derivations (A = U S Vᴴ thin, k = min(m, n), dP = Uᴴ dA V, F_ij = 1/(s_j² − s_i²) off the
diagonal and 0 on it; A U = U diag(e) with unit columns for eig):

- svd: R = F ∘ (UᵀŪ − (UᵀŪ)ᴴ) S + diag(S̄) + S F ∘ (VᵀV̄ − (VᵀV̄)ᴴ) + i diag(Im UᵀŪ) S⁻¹,
  Ā = conj(U) R Vᵀ, plus (I − conj(U) Uᵀ) Ū S⁻¹ Vᵀ when m > k and
  conj(U S⁻¹ V̄ᵀ (I − V Vᴴ)) when n > k (V̄ = conj(V̄ᴴ's signal)ᵀ). The phases of complex
  singular vectors are NumPy's free choice: the i Im term fixes V's and moves U's, and
  only a function that does not depend on the phases (|U|, U Vᴴ, …) has a derivative.
- eig: with G = Uᵀ Ū, R = diag(ē) + F' ∘ G − F' ∘ (Uᵀ conj(U) diag(Re diag G)),
  F'_ij = 1/(e_j − e_i) off the diagonal (the last term keeps the columns unit length),
  Ā = U⁻ᵀ R Uᵀ (its real part for a real A). Distinct eigenvalues are assumed.
"""

import numpy as onp

from .._ops import expand_dims, matmul, multiply, shape_of, swapaxes, value
from .._registry import Formula, NotCompiled, Sample, define
from .._tape import TensorBase as Tensor
from ._elementwise import conjugate, real_part

try:
    from numpy.linalg._linalg import EigResult, SVDResult
except ImportError:  # NumPy < 2
    from numpy.linalg.linalg import EigResult, SVDResult

__all__ = ["svd_u", "svd_values", "svd_vh", "eig_values", "eig_vectors", "SVDResult", "EigResult"]


def T(x):
    return swapaxes(x, -1, -2)


def _iscomplex(x):
    return onp.iscomplexobj(value(x))


def _conj(x):
    return conjugate(x) if _iscomplex(x) else x


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


def _decomposition_macs(out_shape, arg_shapes):
    m, n = arg_shapes[0][-2:]
    stack = _size(arg_shapes[0][:-2])
    k = min(m, n)
    return stack * 4 * m * n * k, {0: stack * 6 * m * n * k}


# ------------------------------------------------------------------------- svd --


def _svd_u(a, full_matrices=True):
    return onp.linalg.svd(a, full_matrices)[0]


def _svd_values(a):
    return onp.linalg.svd(a, compute_uv=False)


def _svd_vh(a, full_matrices=True):
    return onp.linalg.svd(a, full_matrices)[2]


def _thin_svd(a):
    """(U, S, Vᴴ) thin, recorded when ``a`` is a tensor (a recorded backward)."""
    if isinstance(a, Tensor):
        return svd_u(a, False), svd_values(a), svd_vh(a, False)
    return onp.linalg.svd(a, full_matrices=False)


def _check_thin(a, full_matrices, name):
    m, n = shape_of(a)[-2:]
    if full_matrices and m != n:
        raise NotImplementedError(
            f"fastgrad.numpy.linalg.svd: no derivative of {name} with full_matrices=True for a "
            f"non-square matrix of shape {shape_of(a)} (the extra columns are not unique); "
            "pass full_matrices=False")


def _svd_vjp(a, g_u, g_s, g_vh):
    """Ā from the signals of U, S and Vᴴ (None: no signal), the joint rule above."""
    u, s, vh = _thin_svd(a)
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    cplx = _iscomplex(a)
    v = T(_conj(vh))
    eye = onp.eye(k)
    s_j, s_i = expand_dims(s, -2), expand_dims(s, -1)  # s along the columns, the rows
    r = 0.0
    if g_s is not None:
        r = r + eye * expand_dims(real_part(g_s), -2)
    if g_u is not None or g_vh is not None:
        f = (1.0 - eye) / (s_j * s_j - s_i * s_i + eye)
    if g_u is not None:
        ju = matmul(T(u), g_u)
        r = r + f * (ju - _conj(T(ju))) * s_j
        if cplx:  # i Im(diag UᵀŪ) / s: the phase of U's columns
            r = r + eye * (ju - conjugate(ju)) * 0.5 / s_j
    if g_vh is not None:
        g_v = T(_conj(g_vh))
        jv = matmul(T(v), g_v)
        r = r + s_i * (f * (jv - _conj(T(jv))))
    a_bar = matmul(matmul(_conj(u), r), T(v))
    if g_u is not None and m > k:
        a_bar = a_bar + matmul(matmul(onp.eye(m) - matmul(_conj(u), T(u)), g_u / s_j), T(v))
    if g_vh is not None and n > k:
        outside = onp.eye(n) - matmul(v, _conj(T(v)))
        a_bar = a_bar + _conj(matmul(matmul(u / s_j, T(g_v)), outside))
    return a_bar if cplx else real_part(a_bar)


def _svd_u_vjp(g, ans, a, full_matrices=True):
    _check_thin(a, full_matrices, "U")
    return _svd_vjp(a, g, None, None)


def _svd_vh_vjp(g, ans, a, full_matrices=True):
    _check_thin(a, full_matrices, "Vᴴ")
    return _svd_vjp(a, None, None, g)


def _svd_samples(r):
    """Tall, wide, square and stacked real matrices (distinct singular values)."""
    return [Sample(r.normal(size=(4, 3)), False), Sample(r.normal(size=(3, 5)), False),
            Sample(r.normal(size=(3, 3))), Sample(r.normal(size=(2, 3, 4)), False),
            Sample(r.normal(size=(2, 4, 3)), False)]


def _svd_values_samples(r):
    """The singular values of complex matrices too: they do not depend on the phases."""
    z = r.normal(size=(4, 3)) + 1j * r.normal(size=(4, 3))
    return [Sample(s.args[0]) for s in _svd_samples(r)] + [Sample(z), Sample(z.T.copy())]


svd_u = define(
    _svd_u, "svd_u", vjps=[_svd_u_vjp], saves_args=True,
    formula=Formula("{out} = U of svd({0})",
                    {0: "{0}̄ = conj(U) (F ∘ (Uᵀ{out}̄ − (Uᵀ{out}̄)ᴴ) S) Vᵀ + (I − conj(U)Uᵀ) {out}̄ S⁻¹ Vᵀ"},
                    _decomposition_macs),
    lowering=NotCompiled("svd is not lowered yet"), samples=_svd_samples,
)
svd_values = define(
    _svd_values, "svd_values",
    vjps=[lambda g, ans, a: _svd_vjp(a, None, g, None)],
    formula=Formula("{out} = singular values of {0}", {0: "{0}̄ = conj(U) diag(Re {out}̄) Vᵀ"},
                    _decomposition_macs),
    lowering=NotCompiled("svd is not lowered yet"), samples=_svd_values_samples,
)
svd_vh = define(
    _svd_vh, "svd_vh", vjps=[_svd_vh_vjp],
    formula=Formula("{out} = Vᴴ of svd({0})",
                    {0: "{0}̄ = conj(U) (S F ∘ (VᵀV̄ − (VᵀV̄)ᴴ)) Vᵀ + conj(U S⁻¹ V̄ᵀ (I − V Vᴴ))"},
                    _decomposition_macs),
    lowering=NotCompiled("svd is not lowered yet"), samples=_svd_samples,
)

# ------------------------------------------------------------------------- eig --


def _eig_values(a):
    return onp.linalg.eig(a)[0]


def _eig_vectors(a):
    return onp.linalg.eig(a)[1]


def _eig_vjp(a, g_e, g_u):
    from ._contractions import diagonal  # (_contractions imports this package's shapes)
    from .linalg import inv

    if isinstance(a, Tensor):
        e, u = eig_values(a), eig_vectors(a)
    else:
        e, u = onp.linalg.eig(a)
    n = shape_of(a)[-1]
    eye = onp.eye(n)
    r = 0.0
    if g_e is not None:
        r = r + eye * expand_dims(g_e, -2)
    if g_u is not None:
        f = (1.0 - eye) / (expand_dims(e, -2) - expand_dims(e, -1) + eye)
        gram = matmul(T(u), g_u)
        unit = real_part(diagonal(gram, 0, -2, -1))  # the columns stay of unit length
        r = r + f * gram - f * multiply(matmul(T(u), _conj(u)), expand_dims(unit, -2))
    a_bar = matmul(matmul(inv(T(u)), r), T(u))
    return a_bar if _iscomplex(a) else real_part(a_bar)


def _eig_samples(r):
    """Real eigenvalues (a symmetric matrix plus a little), a complex pair (a rotation
    block), a complex matrix, a stack."""
    s = r.normal(size=(3, 3))
    rot = onp.array([[0.5, -2.0, 0.1], [2.0, 0.4, 0.0], [0.3, 0.1, -1.5]])
    return [Sample(s + s.T + 0.1 * r.normal(size=(3, 3))), Sample(rot),
            Sample(r.normal(size=(3, 3)) + 1j * r.normal(size=(3, 3))),
            Sample(r.normal(size=(2, 3, 3)) + 1j * r.normal(size=(2, 3, 3)))]


def _eig_vector_samples(r):
    """Real matrices with real, distinct eigenvalues: real unit eigenvectors, whose sign is
    the one thing NumPy chooses (complex ones have a free phase: tests/test_linalg.py
    checks functions of them that do not depend on it)."""
    s = r.normal(size=(3, 3))
    return [Sample(s + s.T + 0.1 * r.normal(size=(3, 3))),
            Sample(onp.diag([1.0, 2.5, -1.0]) + 0.2 * r.normal(size=(3, 3)))]


eig_values = define(
    _eig_values, "eig_values", vjps=[lambda g, ans, a: _eig_vjp(a, g, None)],
    formula=Formula("{out} = eigenvalues of {0}", {0: "{0}̄ = U⁻ᵀ diag({out}̄) Uᵀ"},
                    _decomposition_macs),
    lowering=NotCompiled("eig is not lowered yet"), samples=_eig_samples,
)
eig_vectors = define(
    _eig_vectors, "eig_vectors", vjps=[lambda g, ans, a: _eig_vjp(a, None, g)],
    formula=Formula("{out} = eigenvectors of {0} (unit columns)",
                    {0: "{0}̄ = U⁻ᵀ (F ∘ Uᵀ{out}̄ − F ∘ (Uᵀ conj(U) diag(Re diag Uᵀ{out}̄))) Uᵀ"},
                    _decomposition_macs),
    lowering=NotCompiled("eig is not lowered yet"), samples=_eig_vector_samples,
)
