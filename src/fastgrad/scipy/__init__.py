"""``fastgrad.scipy``: the differentiable parts of SciPy, as ``autograd.scipy`` has them.

    import fastgrad.scipy.stats.norm as norm
    from fastgrad.scipy.special import logsumexp, gammaln
    from fastgrad.scipy.integrate import odeint

Same module layout, names and signatures as autograd's: ``special`` (gamma, beta, Bessel,
error functions, expit/logit, logsumexp), ``stats`` (norm, t, beta, chi2, gamma, poisson,
dirichlet, multivariate_normal), ``signal.convolve``, ``integrate.odeint`` (adjoint
method), ``linalg`` (sqrtm, solve_sylvester, solve_triangular, solve_banded, cholesky)
and ``misc.logsumexp``. Every differentiable function is a registry primitive
(``fastgrad._registry``) with rules written in fastgrad's own functions, so grad of grad
works; on plain arrays each is a plain SciPy (or NumPy) call. Real inputs.

SciPy is imported here, not by ``import fastgrad``.
"""

from . import integrate, linalg, misc, signal, special, stats

__all__ = ["integrate", "linalg", "misc", "signal", "special", "stats"]
