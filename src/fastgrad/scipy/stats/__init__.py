"""``fastgrad.scipy.stats``: the distributions autograd differentiates, one module each,
with the functions autograd's have (``norm.logpdf``, ``t.cdf``, ``multivariate_normal.pdf``,
…)."""

from . import beta, chi2, dirichlet, gamma, multivariate_normal, norm, poisson, t

__all__ = ["beta", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson", "t"]
