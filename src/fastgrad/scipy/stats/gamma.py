"""``fastgrad.scipy.stats.gamma``: the gamma distribution, differentiable in x and a (the
cdf in x only, as autograd's: its derivative in a has no closed form, and fastgrad
refuses it by name). ``loc`` and ``scale`` are accepted as SciPy's and differentiated
through the standardisation (x − loc)/scale.

The forwards are ``scipy.stats.gamma``'s. ∂ log f/∂x = (a−1)/x − 1,
∂ log f/∂a = log x − ψ(a); ∂F/∂x = f.
"""

import scipy.stats as _st

from ... import numpy as fnp
from .._common import Formula, Sample, entry, refuse, unbroadcast
from ..special import psi
from ._family import with_loc_scale

__all__ = ["pdf", "logpdf", "cdf"]


def _dx(x, a):
    return (a - 1.0) / x - 1.0


def _da(x, a):
    return fnp.log(x) - psi(a)


def _rules(times_ans):
    def rule(d, position):
        if times_ans:
            return lambda g, ans, x, a: unbroadcast(g * ans * d(x, a), (x, a)[position])
        return lambda g, ans, x, a: unbroadcast(g * d(x, a), (x, a)[position])

    return [rule(_dx, 0), rule(_da, 1)]


def _samples(r):
    return [Sample(r.uniform(0.5, 4.0, size=(4,)), r.uniform(1.1, 4.0, size=(4,))),
            Sample(r.uniform(0.5, 4.0, size=(3, 4)), r.uniform(0.6, 4.0, size=(4,)))]


_TEXT = {0: "(({1}−1)/{0} − 1)", 1: "(log {0} − ψ({1}))"}

_logpdf = entry(
    _st.gamma.logpdf, "gamma.logpdf", vjps=_rules(False), samples=_samples,
    formula=Formula("{out} = log Gamma({0}; {1})",
                    {i: "{" + str(i) + "}̄ = {out}̄ ∘ " + t for i, t in _TEXT.items()}, broadcasts=True),
)
_pdf = entry(
    _st.gamma.pdf, "gamma.pdf", vjps=_rules(True), samples=_samples, saves_ans=True,
    formula=Formula("{out} = Gamma({0}; {1})",
                    {i: "{" + str(i) + "}̄ = {out}̄ ∘ {out} ∘ " + t for i, t in _TEXT.items()}, broadcasts=True),
)
_cdf = entry(
    _st.gamma.cdf, "gamma.cdf",
    vjps=[lambda g, ans, x, a: unbroadcast(g * _pdf(x, a), x),
          refuse("gamma.cdf", "a (argument 1)", "no closed form")],
    formula=Formula("{out} = P({1}, {0})", {0: "{0}̄ = {out}̄ ∘ Gamma({0}; {1})"}, broadcasts=True),
    samples=lambda r: [Sample(*s.args, wrt=(0,)) for s in _samples(r)],
)


def pdf(x, a, loc=0.0, scale=1.0):
    """The gamma density, as ``scipy.stats.gamma.pdf``."""
    return with_loc_scale("pdf", _pdf, x, (a,), loc, scale)


def logpdf(x, a, loc=0.0, scale=1.0):
    """The log of the gamma density, as ``scipy.stats.gamma.logpdf``."""
    return with_loc_scale("logpdf", _logpdf, x, (a,), loc, scale)


def cdf(x, a, loc=0.0, scale=1.0):
    """The regularized lower incomplete gamma P(a, x), as ``scipy.stats.gamma.cdf``."""
    return with_loc_scale("cdf", _cdf, x, (a,), loc, scale)
