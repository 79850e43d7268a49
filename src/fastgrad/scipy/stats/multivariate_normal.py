"""``fastgrad.scipy.stats.multivariate_normal``: the multivariate normal N(mean, cov),
differentiable in x, mean and cov (``allow_singular=True``: in x and mean; in cov it
raises, as autograd's).

As SciPy's, it reads the lower triangle of cov (as the symmetric matrix S it stands for),
so the values are SciPy's for any cov, and the gradient in cov is the exact one of that
function: the symmetric gradient folded onto the lower triangle, zero above it (as
``fastgrad.numpy.linalg.cholesky``'s). On a symmetric function of your parameters
(cov = B Bᵀ) that is the same as autograd's symmetric gradient. The forward factors S
once (Cholesky; SciPy's is an eigendecomposition and costs more): with r = x − mean and
d the dimension,

    logpdf = −½ (d log 2π + log det S + rᵀ S⁻¹ r),
    x̄ = −ȳ S⁻¹ r,  mean̄ = ȳ S⁻¹ r,  S̄ = ½ ȳ (S⁻¹ r rᵀ S⁻¹ − S⁻¹),
    entropy = ½ d (1 + log 2π) + ½ log det S,  S̄ = ½ ȳ S⁻¹.

x, mean and cov take SciPy's shapes: x (d,) or (..., d) (or (n,) points when d = 1), mean
(d,) or a number, cov (d, d), a vector (its diagonal) or a number (times I); the result
is squeezed as SciPy squeezes it.
"""

import numpy as onp
import scipy.linalg as _sla
import scipy.stats as _st

from ... import numpy as fnp
from ...numpy import linalg as fla
from .._common import Formula, Sample, entry, reshape, shape_of, traced, value

__all__ = ["pdf", "logpdf", "entropy"]

_LOG_2PI = onp.log(2 * onp.pi)


def _points_shape(xs, d):
    """x's shape as SciPy reads it: (..., d)."""
    if len(xs) == 0:
        return (1, 1) if d == 1 else (1,) + xs  # SciPy: a number is one point of dimension 1
    if len(xs) == 1:
        return (xs[0], 1) if d == 1 else (1, xs[0])
    return xs


def _squeezed(out):
    out = onp.squeeze(out)
    return out[()] if out.ndim == 0 else out


def _cholesky(cov, where):
    s = onp.asarray(cov, dtype=onp.result_type(cov, 1.0))
    try:
        return onp.linalg.cholesky(s)  # (reads the lower triangle)
    except onp.linalg.LinAlgError:
        raise onp.linalg.LinAlgError(
            f"multivariate_normal.{where}: cov of shape {s.shape} is not positive definite "
            "(pass allow_singular=True for a singular covariance)") from None


def _logpdf_forward(x, mean, cov, allow_singular):
    if allow_singular:
        return _st.multivariate_normal.logpdf(x, mean, cov, allow_singular=True)
    mean = onp.asarray(mean)
    d = mean.shape[0]
    x = onp.asarray(x, dtype=onp.result_type(x, mean, 1.0))
    points = _points_shape(x.shape, d)
    if points[-1] != d:
        raise ValueError(f"multivariate_normal.logpdf: x of shape {x.shape} holds no points of the "
                         f"distribution's dimension {d}")
    r = onp.reshape(x, points) - mean
    low = _cholesky(cov, "logpdf")
    z = _lower_solve(low, r.reshape(-1, d).T)  # L⁻¹ r
    maha = onp.sum(z * z, axis=0).reshape(r.shape[:-1])
    log_det = 2.0 * onp.sum(onp.log(onp.diagonal(low)))
    return _squeezed(-0.5 * (d * _LOG_2PI + log_det + maha))


_LAPACK = {}


def _lapack(name, a):
    """LAPACK's routine for a's dtype (scipy.linalg's wrappers cost more than the solve at
    the sizes a covariance usually has)."""
    key = (name, a.dtype.char)
    fun = _LAPACK.get(key)
    if fun is None:
        fun = _LAPACK[key] = _sla.get_lapack_funcs(name, (a,))
    return fun


# Up to this many right-hand sides a triangular solve (LAPACK trtrs, potrs); above, the
# inverse factor once and matrix products: OpenBLAS's threaded trsm with many right-hand
# sides was measured 200x slower than the product on a shared 2-core machine.
_FEW = 8


def _lower_solve(low, b):
    """L⁻¹ b for the lower Cholesky factor L and b (d, n)."""
    if b.shape[1] <= _FEW:
        return _lapack("trtrs", low)(low, b, lower=1)[0]
    return _lower_inverse(low) @ b


def _lower_inverse(low):
    return _lapack("trtri", low)(low, lower=1)[0]


def _pdf_forward(x, mean, cov, allow_singular):
    if allow_singular:
        return _st.multivariate_normal.pdf(x, mean, cov, allow_singular=True)
    return onp.exp(_logpdf_forward(x, mean, cov, False))


def _parts(g, x, mean, cov, allow_singular):
    """(ȳ per point as a column (n, 1), S⁻¹ r per point (n, d), S⁻¹ or None): what the
    three rules share."""
    d = shape_of(mean)[0]
    r = reshape(reshape(x, _points_shape(tuple(shape_of(x)), d)) - mean, (-1, d))
    if allow_singular:
        s_inv = fla.pinv(cov)
    else:
        s_inv = fla.inv(_read(cov))
    solved = fnp.matmul(r, s_inv)  # rows rᵀ S⁻¹ (S⁻¹ is symmetric)
    return reshape(g, (-1, 1)), solved, s_inv


def _x_rule(g, ans, x, mean, cov, allow_singular):
    g, solved, _ = _parts(g, x, mean, cov, allow_singular)
    return reshape(-g * solved, shape_of(x))


def _mean_rule(g, ans, x, mean, cov, allow_singular):
    g, solved, _ = _parts(g, x, mean, cov, allow_singular)
    return fnp.sum(g * solved, 0)


def _cov_rule(g, ans, x, mean, cov, allow_singular):
    if allow_singular:
        raise NotImplementedError("multivariate_normal: no derivative with respect to cov "
                                  "(argument 2) when allow_singular=True")
    g, solved, s_inv = _parts(g, x, mean, cov, allow_singular)
    return _onto_lower(0.5 * (fnp.matmul(fnp.transpose(solved), g * solved) - fnp.sum(g) * s_inv))


def _read(cov):
    """The symmetric matrix SciPy reads from cov: its lower triangle, mirrored."""
    return fnp.tril(cov) + fnp.transpose(fnp.tril(cov, -1))


def _onto_lower(m):
    """cov̄ from S̄ (symmetric): an entry below the diagonal moves S[i, j] and S[j, i]."""
    d = shape_of(m)[-1]
    return m * onp.eye(d) + (m + fnp.transpose(m)) * onp.tril(onp.ones((d, d)), -1)


def _times_ans(rule):
    return lambda g, ans, *args: rule(g * ans, ans, *args)


def _joint(times_ans):
    """x̄, mean̄, cov̄ (those asked for) in a first-order sweep on arrays: one Cholesky
    factor serves all three (the rules above, on tensors, stay for grad of grad)."""

    def joint(parents, g, ans, defer, x, mean, cov, allow_singular):
        if allow_singular or traced(g, x, mean, cov):
            return None
        if times_ans:
            g = g * ans
        d = mean.shape[0]
        x = onp.asarray(x)
        r = (onp.reshape(x, _points_shape(x.shape, d)) - mean).reshape(-1, d)
        low = _cholesky(cov, "logpdf")
        if r.shape[0] <= _FEW and len(parents) == 1 and parents[0][0] != 2:
            s_inv = None
            solved = _lapack("potrs", low)(low, r.T, lower=1)[0].T  # rows rᵀ S⁻¹
        else:
            inverse = _lower_inverse(low)
            s_inv = inverse.T @ inverse
            solved = r @ s_inv
        g_col = onp.reshape(g, (-1, 1))
        signals = []
        for argnum, _ in parents:
            if argnum == 0:
                signals.append(onp.reshape(-g_col * solved, x.shape))
            elif argnum == 1:
                signals.append(onp.sum(g_col * solved, 0))
            else:
                signals.append(_onto_lower(0.5 * (solved.T @ (g_col * solved) - onp.sum(g) * s_inv)))
        return signals

    return joint


def _spd(r, d):
    m = r.normal(size=(d, d))
    return m @ m.T + d * onp.eye(d)


def _samples(r):
    # (allow_singular=True is tested in tests/test_scipy.py: off its support the log density
    # is −∞, so finite differences must move x and mean along the support only)
    return [Sample(r.normal(size=(3,)), r.normal(size=(3,)), _spd(r, 3), False),
            Sample(r.normal(size=(5, 3)), r.normal(size=(3,)), _spd(r, 3), False),
            Sample(r.normal(size=(4,)), r.normal(size=(1,)), _spd(r, 1), False),
            Sample(r.normal(size=(2, 3)), r.normal(size=(3,)), _spd(r, 3) + onp.triu(r.normal(size=(3, 3)), 1),
                   False)]  # (not symmetric: only the lower triangle is read)


_TEXT = {0: "{0}̄ = −{out}̄ S⁻¹ r", 1: "{1}̄ = {out}̄ S⁻¹ r",
         2: "{2}̄ = ½ {out}̄ (S⁻¹ r rᵀ S⁻¹ − S⁻¹) on the lower triangle"}

_logpdf = entry(
    _logpdf_forward, "multivariate_normal.logpdf", samples=_samples,
    vjps=[_x_rule, _mean_rule, _cov_rule], joint_vjp=_joint(False),
    formula=Formula("{out} = log N({0}; {1}, {2})  [r = {0} − {1}, S: {2}'s lower triangle]", _TEXT),
)
_pdf = entry(
    _pdf_forward, "multivariate_normal.pdf", samples=_samples, saves_ans=True,
    vjps=[_times_ans(_x_rule), _times_ans(_mean_rule), _times_ans(_cov_rule)], joint_vjp=_joint(True),
    formula=Formula("{out} = N({0}; {1}, {2})  [r = {0} − {1}, S: {2}'s lower triangle]",
                    {i: t.replace("{out}̄", "{out}̄ {out}") for i, t in _TEXT.items()}),
)


def _entropy_forward(cov):
    low = _cholesky(cov, "entropy")
    d = low.shape[0]
    return 0.5 * d * (1.0 + _LOG_2PI) + onp.sum(onp.log(onp.diagonal(low)))


_entropy = entry(
    _entropy_forward, "multivariate_normal.entropy",
    vjps=[lambda g, ans, cov: _onto_lower(0.5 * g * fla.inv(_read(cov)))],
    formula=Formula("{out} = ½ d (1 + log 2π) + ½ log det {0}", {0: "{0}̄ = ½ {out}̄ {0}⁻¹ (on the lower triangle)"}),
    samples=lambda r: [Sample(_spd(r, 3)), Sample(_spd(r, 1)),
                       Sample(_spd(r, 3) + onp.triu(r.normal(size=(3, 3)), 1))],
)


def _parameters(mean, cov):
    """(mean (d,), cov (d, d)) from SciPy's accepted forms, composed of differentiable
    operations so a number or a diagonal given for cov still gets its gradient. The
    dimension is SciPy's: the mean's size, else cov's side (1 for a number or a vector)."""
    mv, cv = value(mean), value(cov)
    if mean is not None:
        d = int(onp.size(mv))
        if onp.shape(mv) != (d,):
            mean = reshape(mean, (d,))
    else:
        d = onp.shape(cv)[0] if cov is not None and onp.ndim(cv) >= 2 else 1
        mean = onp.zeros(d)
    if cov is None:
        cov = onp.eye(d)
    elif onp.ndim(cv) == 0:
        cov = cov * onp.eye(d)
    elif onp.ndim(cv) == 1:
        cov = fnp.diag(cov)
    cs = onp.shape(value(cov))
    if cs != (d, d):
        raise ValueError(f"multivariate_normal: mean of shape {onp.shape(mv)} and cov of shape "
                         f"{onp.shape(cv)} do not describe one distribution (need {d} and ({d}, {d}))")
    return mean, cov


def logpdf(x, mean=None, cov=1, allow_singular=False):
    """The log density of N(mean, cov) at x, as ``scipy.stats.multivariate_normal.logpdf``."""
    mean, cov = _parameters(mean, cov)
    return _logpdf(x, mean, cov, bool(allow_singular))


def pdf(x, mean=None, cov=1, allow_singular=False):
    """The density of N(mean, cov) at x, as ``scipy.stats.multivariate_normal.pdf``."""
    mean, cov = _parameters(mean, cov)
    return _pdf(x, mean, cov, bool(allow_singular))


def entropy(mean=None, cov=1):
    """The differential entropy of N(mean, cov) (it does not depend on the mean), as
    ``scipy.stats.multivariate_normal.entropy``."""
    _, cov = _parameters(mean, cov)
    return _entropy(cov)


