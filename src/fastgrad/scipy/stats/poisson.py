"""``fastgrad.scipy.stats.poisson``: the Poisson distribution, differentiable in its mean
mu (k is a count: asking for its derivative raises, naming it). ``loc`` shifts k, as
SciPy's.

The forwards are ``scipy.stats.poisson``'s. ∂ log p(k)/∂mu = k/mu − 1 at a count k ≥ 0
(elsewhere p = 0, constant); ∂F(k)/∂mu = −p(⌊k⌋).
"""

import numpy as onp
import scipy.stats as _st

from ... import numpy as fnp
from .._common import Formula, Sample, entry, refuse, unbroadcast, value

__all__ = ["pmf", "logpmf", "cdf"]


def _dmu(k, mu):
    k = value(k)
    counts = (k >= 0) & (onp.floor(k) == k)  # where p(k) > 0; elsewhere log p = −∞, constant
    if counts.all():
        return k / mu - 1.0
    return fnp.where(counts, k / mu - 1.0, 0.0)


def _no_k(name):
    return refuse(name, "k (argument 0)", "k is a count")


def _samples(r):
    return [Sample(onp.round(r.uniform(0.0, 6.0, size=(4,))), r.uniform(0.5, 4.0, size=(4,)), wrt=(1,)),
            Sample(onp.round(r.uniform(0.0, 6.0, size=(4, 3))), r.uniform(0.5, 4.0, size=(4, 1)), wrt=(1,))]


def _samples_off_counts(r):
    """Also k that is no count (p = 0 there): for pmf and cdf, whose values stay finite."""
    return _samples(r) + [Sample(onp.array([0.0, 1.5, -1.0, 3.0]), r.uniform(0.5, 4.0, size=(4,)), wrt=(1,))]


_logpmf = entry(
    _st.poisson.logpmf, "poisson.logpmf",
    vjps=[_no_k("poisson.logpmf"), lambda g, ans, k, mu: unbroadcast(g * _dmu(k, mu), mu)],
    formula=Formula("{out} = log Poisson({0}; {1})", {1: "{1}̄ = {out}̄ ∘ ({0}/{1} − 1)"}, broadcasts=True),
    samples=_samples,
)
_pmf = entry(
    _st.poisson.pmf, "poisson.pmf", saves_ans=True,
    vjps=[_no_k("poisson.pmf"), lambda g, ans, k, mu: unbroadcast(g * ans * _dmu(k, mu), mu)],
    formula=Formula("{out} = Poisson({0}; {1})", {1: "{1}̄ = {out}̄ ∘ {out} ∘ ({0}/{1} − 1)"},
                    broadcasts=True),
    samples=_samples_off_counts,
)
_cdf = entry(
    _st.poisson.cdf, "poisson.cdf",
    vjps=[_no_k("poisson.cdf"), lambda g, ans, k, mu: unbroadcast(-g * _pmf(onp.floor(value(k)), mu), mu)],
    formula=Formula("{out} = Σ_(j ≤ {0}) Poisson(j; {1})", {1: "{1}̄ = −{out}̄ ∘ Poisson(⌊{0}⌋; {1})"},
                    broadcasts=True),
    samples=_samples_off_counts,
)


def _shift(k, loc):
    return k if isinstance(loc, (int, float)) and loc == 0 else k - loc


def pmf(k, mu, loc=0):
    """The Poisson probability of k, as ``scipy.stats.poisson.pmf``."""
    return _pmf(_shift(k, loc), mu)


def logpmf(k, mu, loc=0):
    """Its log, as ``scipy.stats.poisson.logpmf``."""
    return _logpmf(_shift(k, loc), mu)


def cdf(k, mu, loc=0):
    """P(K ≤ k), as ``scipy.stats.poisson.cdf``."""
    return _cdf(_shift(k, loc), mu)
