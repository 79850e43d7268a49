"""``fastgrad.scipy.stats.dirichlet``: the Dirichlet distribution, differentiable in x and
alpha. As SciPy's, the components run along x's first axis (x of shape (K,) is one point,
(K, N) is N points), and x may leave out its last component (1 − the others' sum).

The forwards are SciPy's formula, log f = Σᵢ (αᵢ − 1) log xᵢ − log B(α), and ``pdf`` and
``logpdf`` check x and alpha as SciPy does (x on the simplex, alpha > 0). The primitives
themselves take any positive x (the formula's own domain), so their rules are the
derivatives of the formula:
∂ log f/∂xᵢ = (αᵢ − 1)/xᵢ,  ∂ log f/∂αᵢ = ψ(Σα) − ψ(αᵢ) + log xᵢ.
``rvs`` draws samples: it has no derivative (a backward through it raises, naming it).
"""

import numpy as onp
import scipy.special as _sp
import scipy.stats as _st

from ... import numpy as fnp
from ...numpy._util import NoRule
from .._common import Formula, Sample, entry, reshape, shape_of, value
from ..special import digamma

__all__ = ["pdf", "logpdf", "rvs"]


def _columns(alpha, x):
    """alpha as a column against x's first axis: (K, 1, …, 1)."""
    return reshape(alpha, (shape_of(alpha)[0],) + (1,) * (len(shape_of(x)) - 1))


def _per_point(g, x):
    """The error signal of each point, against x's first axis: (1, N, …)."""
    return reshape(g, (1,) + tuple(shape_of(x)[1:]))


def _dx(g, x, alpha):
    return _per_point(g, x) * (_columns(alpha, x) - 1.0) / x


def _dalpha(g, x, alpha):
    terms = _per_point(g, x) * (digamma(fnp.sum(alpha)) - digamma(_columns(alpha, x)) + fnp.log(x))
    return reshape(fnp.sum(reshape(terms, (shape_of(alpha)[0], -1)), 1), shape_of(alpha))


def _samples(r):
    alpha = r.uniform(1.2, 3.0, size=(4,))
    x = r.dirichlet(alpha)
    xs = r.dirichlet(alpha, size=3).T
    return [Sample(x, alpha), Sample(xs, alpha)]


def _logpdf_forward(x, alpha):
    x, alpha = onp.asarray(x), onp.asarray(alpha)
    log_b = onp.sum(_sp.gammaln(alpha)) - _sp.gammaln(onp.sum(alpha))
    out = onp.sum(_sp.xlogy(alpha - 1.0, x.T).T, 0) - log_b
    return _squeezed(out)


def _pdf_forward(x, alpha):
    return onp.exp(_logpdf_forward(x, alpha))


def _squeezed(out):
    out = onp.squeeze(out)
    return out[()] if out.ndim == 0 else out


_logpdf = entry(
    _logpdf_forward, "dirichlet.logpdf", samples=_samples,
    vjps=[lambda g, ans, x, alpha: _dx(g, x, alpha), lambda g, ans, x, alpha: _dalpha(g, x, alpha)],
    formula=Formula("{out} = log Dir({0}; {1})", {0: "{0}̄ = {out}̄ ∘ ({1} − 1)/{0}",
                                                 1: "{1}̄ = {out}̄ ∘ (ψ(Σ{1}) − ψ({1}) + log {0})"}),
)
_pdf = entry(
    _pdf_forward, "dirichlet.pdf", samples=_samples, saves_ans=True,
    vjps=[lambda g, ans, x, alpha: _dx(g * ans, x, alpha),
          lambda g, ans, x, alpha: _dalpha(g * ans, x, alpha)],
    formula=Formula("{out} = Dir({0}; {1})", {0: "{0}̄ = {out}̄ ∘ {out} ∘ ({1} − 1)/{0}",
                                             1: "{1}̄ = {out}̄ ∘ {out} ∘ (ψ(Σ{1}) − ψ({1}) + log {0})"}),
)


def _complete(x, alpha):
    """x with its last component (1 − the others' sum) when it was left out, checked as
    SciPy checks it (raising its ValueErrors)."""
    xv, av = onp.asarray(value(x)), onp.asarray(value(alpha))
    if av.ndim != 1 or not (av > 0).all():
        raise ValueError(f"dirichlet: alpha must be a vector of positive numbers, got shape {av.shape}")
    if xv.ndim == 0 or xv.shape[0] not in (av.shape[0], av.shape[0] - 1):
        raise ValueError(f"dirichlet: x of shape {xv.shape} needs {av.shape[0]} or {av.shape[0] - 1} "
                         f"entries along its first axis (alpha has shape {av.shape})")
    if xv.shape[0] + 1 == av.shape[0]:
        x = fnp.concatenate([x, 1.0 - fnp.sum(x, 0, keepdims=True)], 0)
        xv = onp.concatenate([xv, 1.0 - onp.sum(xv, 0, keepdims=True)], 0)
    if xv.min() < 0 or xv.max() > 1:
        raise ValueError("dirichlet: each entry of x must lie in [0, 1]")
    if ((xv == 0) & (av < 1).reshape((-1,) + (1,) * (xv.ndim - 1))).any():
        raise ValueError("dirichlet: each entry of x must be greater than zero where alpha < 1")
    if (onp.abs(onp.sum(xv, 0) - 1.0) > 10e-10).any():
        raise ValueError(f"dirichlet: x must lie on the simplex, but its sum is {onp.sum(xv, 0)}")
    return x


def pdf(x, alpha):
    """The Dirichlet density, as ``scipy.stats.dirichlet.pdf``."""
    return _pdf(_complete(x, alpha), alpha)


def logpdf(x, alpha):
    """The log of the Dirichlet density, as ``scipy.stats.dirichlet.logpdf``."""
    return _logpdf(_complete(x, alpha), alpha)


rvs = NoRule(_st.dirichlet.rvs, "scipy.stats.dirichlet.rvs")
