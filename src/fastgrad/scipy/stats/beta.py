"""``fastgrad.scipy.stats.beta``: the beta distribution, differentiable in x, a and b
(the cdf in x only, as autograd's: its derivative in a, b has no closed form, and
fastgrad refuses it by name). ``loc`` and ``scale`` are accepted as SciPy's and
differentiated through the standardisation (x − loc)/scale.

The forwards are ``scipy.stats.beta``'s. ∂ log f/∂x = (a−1)/x − (b−1)/(1−x),
∂ log f/∂a = log x − ψ(a) + ψ(a+b), ∂ log f/∂b = log(1−x) − ψ(b) + ψ(a+b); ∂F/∂x = f.
"""

import scipy.stats as _st

from ... import numpy as fnp
from .._common import Formula, Sample, entry, refuse, unbroadcast
from ..special import psi
from ._family import with_loc_scale

__all__ = ["pdf", "logpdf", "cdf"]


def _dx(x, a, b):
    return (a - 1.0) / x - (b - 1.0) / (1.0 - x)


def _da(x, a, b):
    return fnp.log(x) - psi(a) + psi(a + b)


def _db(x, a, b):
    return fnp.log1p(-x) - psi(b) + psi(a + b)


def _rules(times_ans):
    def rule(d, position):
        if times_ans:
            return lambda g, ans, x, a, b: unbroadcast(g * ans * d(x, a, b), (x, a, b)[position])
        return lambda g, ans, x, a, b: unbroadcast(g * d(x, a, b), (x, a, b)[position])

    return [rule(_dx, 0), rule(_da, 1), rule(_db, 2)]


def _samples(r):
    return [Sample(r.uniform(0.1, 0.9, size=(4,)), r.uniform(1.1, 4.0, size=(4,)), r.uniform(1.1, 4.0, size=(4,))),
            Sample(r.uniform(0.1, 0.9, size=(3, 4)), r.uniform(0.6, 4.0, size=(4,)), 2.5, wrt=(0, 1))]


_TEXT = {0: "({1}−1)/{0} − ({2}−1)/(1−{0})", 1: "(log {0} − ψ({1}) + ψ({1}+{2}))",
         2: "(log(1−{0}) − ψ({2}) + ψ({1}+{2}))"}

_logpdf = entry(
    _st.beta.logpdf, "beta.logpdf", vjps=_rules(False), samples=_samples,
    formula=Formula("{out} = log Beta({0}; {1}, {2})",
                    {i: "{" + str(i) + "}̄ = {out}̄ ∘ " + t for i, t in _TEXT.items()}, broadcasts=True),
)
_pdf = entry(
    _st.beta.pdf, "beta.pdf", vjps=_rules(True), samples=_samples, saves_ans=True,
    formula=Formula("{out} = Beta({0}; {1}, {2})",
                    {i: "{" + str(i) + "}̄ = {out}̄ ∘ {out} ∘ " + t for i, t in _TEXT.items()}, broadcasts=True),
)
_cdf = entry(
    _st.beta.cdf, "beta.cdf",
    vjps=[lambda g, ans, x, a, b: unbroadcast(g * _pdf(x, a, b), x),
          refuse("beta.cdf", "a (argument 1)", "no closed form"),
          refuse("beta.cdf", "b (argument 2)", "no closed form")],
    formula=Formula("{out} = I_{0}({1}, {2})", {0: "{0}̄ = {out}̄ ∘ Beta({0}; {1}, {2})"}, broadcasts=True),
    samples=lambda r: [Sample(*s.args, wrt=(0,)) for s in _samples(r)],
)


def pdf(x, a, b, loc=0.0, scale=1.0):
    """The beta density, as ``scipy.stats.beta.pdf``."""
    return with_loc_scale("pdf", _pdf, x, (a, b), loc, scale)


def logpdf(x, a, b, loc=0.0, scale=1.0):
    """The log of the beta density, as ``scipy.stats.beta.logpdf``."""
    return with_loc_scale("logpdf", _logpdf, x, (a, b), loc, scale)


def cdf(x, a, b, loc=0.0, scale=1.0):
    """The regularized incomplete beta I_x(a, b), as ``scipy.stats.beta.cdf``."""
    return with_loc_scale("cdf", _cdf, x, (a, b), loc, scale)
