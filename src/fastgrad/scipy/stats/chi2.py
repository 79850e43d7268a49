"""``fastgrad.scipy.stats.chi2``: the χ² distribution, differentiable in x and df (the
cdf in x only: its derivative in df has no closed form, and fastgrad refuses it by
name). ``loc`` and ``scale`` are accepted as SciPy's and differentiated through the
standardisation (x − loc)/scale.

The forwards are ``scipy.stats.chi2``'s. With k = df,
∂ log f/∂x = (k/2 − 1)/x − ½,  ∂ log f/∂k = ½ (log x − log 2 − ψ(k/2));  ∂F/∂x = f.
(autograd answers 0 for ∂/∂x at a non-integer df; this is the derivative for every df.)
"""

import numpy as onp
import scipy.stats as _st

from ... import numpy as fnp
from .._common import Formula, Sample, entry, refuse, unbroadcast
from ..special import psi
from ._family import with_loc_scale

__all__ = ["pdf", "logpdf", "cdf"]

_LOG2 = onp.log(2.0)


def _dx(x, k):
    return (k / 2.0 - 1.0) / x - 0.5


def _dk(x, k):
    return 0.5 * (fnp.log(x) - _LOG2 - psi(k / 2.0))


def _rules(times_ans):
    def rule(d, position):
        if times_ans:
            return lambda g, ans, x, k: unbroadcast(g * ans * d(x, k), (x, k)[position])
        return lambda g, ans, x, k: unbroadcast(g * d(x, k), (x, k)[position])

    return [rule(_dx, 0), rule(_dk, 1)]


def _samples(r):
    return [Sample(r.uniform(0.5, 4.0, size=(4,)), r.uniform(1.5, 4.0, size=(4,))),
            Sample(r.uniform(0.5, 4.0, size=(3, 4)), 3.0, wrt=(0,)),
            Sample(r.uniform(0.5, 4.0, size=(3, 4)), r.uniform(0.6, 4.0, size=(4,)))]


_TEXT = {0: "(({1}/2 − 1)/{0} − ½)", 1: "½(log {0} − log 2 − ψ({1}/2))"}

_logpdf = entry(
    _st.chi2.logpdf, "chi2.logpdf", vjps=_rules(False), samples=_samples,
    formula=Formula("{out} = log χ²({0}; {1})",
                    {i: "{" + str(i) + "}̄ = {out}̄ ∘ " + t for i, t in _TEXT.items()}, broadcasts=True),
)
_pdf = entry(
    _st.chi2.pdf, "chi2.pdf", vjps=_rules(True), samples=_samples, saves_ans=True,
    formula=Formula("{out} = χ²({0}; {1})",
                    {i: "{" + str(i) + "}̄ = {out}̄ ∘ {out} ∘ " + t for i, t in _TEXT.items()}, broadcasts=True),
)
_cdf = entry(
    _st.chi2.cdf, "chi2.cdf",
    vjps=[lambda g, ans, x, k: unbroadcast(g * _pdf(x, k), x),
          refuse("chi2.cdf", "df (argument 1)", "no closed form")],
    formula=Formula("{out} = P({1}/2, {0}/2)", {0: "{0}̄ = {out}̄ ∘ χ²({0}; {1})"}, broadcasts=True),
    samples=lambda r: [Sample(*s.args, wrt=(0,)) for s in _samples(r)],
)


def pdf(x, df, loc=0.0, scale=1.0):
    """The χ² density, as ``scipy.stats.chi2.pdf``."""
    return with_loc_scale("pdf", _pdf, x, (df,), loc, scale)


def logpdf(x, df, loc=0.0, scale=1.0):
    """The log of the χ² density, as ``scipy.stats.chi2.logpdf``."""
    return with_loc_scale("logpdf", _logpdf, x, (df,), loc, scale)


def cdf(x, df, loc=0.0, scale=1.0):
    """The χ² cumulative distribution, as ``scipy.stats.chi2.cdf``."""
    return with_loc_scale("cdf", _cdf, x, (df,), loc, scale)
