"""``fastgrad.scipy.stats.t``: Student's t distribution, differentiable in x, df, loc and
scale (the cdfs in x and loc only, as autograd's: their derivative in df has no closed
form, and fastgrad refuses it by name).

The forwards are ``scipy.stats.t``'s formulas written with NumPy and ``scipy.special``
(SciPy's own wrapper costs ten times the arithmetic): log t_ν(y) = log poch(ν/2, ½)
− ½ log(νπ) − (ν+1)/2 log(1 + y²/ν) (the normal's at ν = ∞), cdf = stdtr(ν, y),
logcdf = log cdf; NaN where df ≤ 0 or scale ≤ 0, as SciPy. With y = (x − loc)/s,

    ∂ logpdf/∂x = −(ν + 1) y / (s (ν + y²)),
    ∂ logpdf/∂ν = ½ [ψ((ν+1)/2) − ψ(ν/2) − 1/ν − log(1 + y²/ν) + (ν + 1) y² / (ν (ν + y²))].
"""

import math

import numpy as onp
import scipy.special as _sp

from ... import numpy as fnp
from .._common import Sample, entry, refuse, unbroadcast
from ..special import psi
from ._family import location_scale_formula, location_scale_vjps

__all__ = ["pdf", "logpdf", "cdf", "logcdf"]


def _dlogpdf_dx(x, df, loc, s):
    y = (x - loc) / s
    return -(df + 1.0) * y / (s * (df + y * y))


def _dlogpdf_ddf(x, df, loc, s):
    y2 = ((x - loc) / s) ** 2
    return 0.5 * (psi((df + 1.0) / 2.0) - psi(df / 2.0) - 1.0 / df - fnp.log1p(y2 / df)
                  + (df + 1.0) * y2 / (df * (df + y2)))


_DF_TEXT = "½[ψ(({1}+1)/2) − ψ({1}/2) − 1/{1} − log(1 + y²/{1}) + ({1}+1)y²/({1}({1}+y²))]"


_LOG_PI = math.log(math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _log_density(y, df):
    """log t_ν(y), the standard t's log density (SciPy's t._logpdf)."""
    out = onp.log(_sp.poch(0.5 * df, 0.5)) - 0.5 * (onp.log(df) + _LOG_PI) - (df + 1) / 2 * onp.log1p(y * y / df)
    infinite = onp.isinf(df)
    if infinite.any():
        out = onp.where(infinite, -y * y / 2.0 - _LOG_SQRT_2PI, out)
    return out


def _forward(kind):
    def forward(x, df, loc, scale):
        x, df, scale = onp.asarray(x), onp.asarray(df), onp.asarray(scale)
        with onp.errstate(divide="ignore", invalid="ignore"):
            y = (x - loc) / scale
            if kind == "logpdf":
                out = _log_density(y, df) - onp.log(scale)
            elif kind == "pdf":
                out = onp.exp(_log_density(y, df)) / scale
            elif kind == "cdf":
                out = _sp.stdtr(df, y)
            else:
                out = onp.log(_sp.stdtr(df, y))
            valid = (df > 0) & (scale > 0)
            if not valid.all():
                out = onp.where(valid, out, onp.nan)
        return out[()] if onp.ndim(out) == 0 else out

    return forward


def _samples(r):
    return [Sample(r.normal(size=(4,)), r.uniform(2.1, 6.0, size=(4,)), r.normal(size=(4,)),
                   r.uniform(0.5, 2.0, size=(4,))),
            Sample(r.normal(size=(4, 3)), r.uniform(2.1, 6.0, size=(1, 3)), r.normal(size=(4, 3)),
                   r.uniform(0.5, 2.0, size=(4, 1))),
            Sample(r.normal(size=(3,)), 3.5, 0.0, 1.0, wrt=(0,))]


def _cdf_samples(r):
    return [Sample(*s.args, wrt=(0, 2, 3) if len(s.args) > 2 and s.wrt is None else s.wrt)
            for s in _samples(r)]


def _df_rule(fun):
    return lambda g, ans, x, df, loc, s: unbroadcast(g * fun(ans, x, df, loc, s), df)


def _no_df(name):
    return refuse(name, "df (argument 1)", "the t cdf's derivative in df has no closed form")


_pdf_p = entry(
    _forward("pdf"), "t.pdf", saves_ans=True, samples=_samples,
    vjps=location_scale_vjps(lambda ans, x, df, loc, s: ans * _dlogpdf_dx(x, df, loc, s), "pdf", 2, 3,
                             [(1, _df_rule(lambda ans, x, df, loc, s: ans * _dlogpdf_ddf(x, df, loc, s)))]),
    formula=location_scale_formula("t_{1}(y)/{3}", "{out} ∘ (−({1}+1) y / ({3}({1}+y²)))", "pdf", 2, 3,
                                   [(1, "{1}̄ = {out}̄ ∘ {out} ∘ " + _DF_TEXT)]),
)
_logpdf_p = entry(
    _forward("logpdf"), "t.logpdf", samples=_samples,
    vjps=location_scale_vjps(lambda ans, x, df, loc, s: _dlogpdf_dx(x, df, loc, s), "logpdf", 2, 3,
                             [(1, _df_rule(lambda ans, x, df, loc, s: _dlogpdf_ddf(x, df, loc, s)))]),
    formula=location_scale_formula("log t_{1}(y) − log {3}", "(−({1}+1) y / ({3}({1}+y²)))", "logpdf",
                                   2, 3, [(1, "{1}̄ = {out}̄ ∘ " + _DF_TEXT)]),
)
_cdf_p = entry(
    _forward("cdf"), "t.cdf", samples=_cdf_samples,
    vjps=location_scale_vjps(lambda ans, x, df, loc, s: _pdf_p(x, df, loc, s), "cdf", 2, 3,
                             [(1, _no_df("t.cdf"))]),
    formula=location_scale_formula("T_{1}(y)", "pdf", "cdf", 2, 3),
)
_logcdf_p = entry(
    _forward("logcdf"), "t.logcdf", samples=_cdf_samples, saves_ans=True,
    vjps=location_scale_vjps(lambda ans, x, df, loc, s: fnp.exp(_logpdf_p(x, df, loc, s) - ans),
                             "cdf", 2, 3, [(1, _no_df("t.logcdf"))]),
    formula=location_scale_formula("log T_{1}(y)", "pdf/{out}", "cdf", 2, 3),
)


def pdf(x, df, loc=0.0, scale=1.0):
    """The t density, as ``scipy.stats.t.pdf``."""
    return _pdf_p(x, df, loc, scale)


def logpdf(x, df, loc=0.0, scale=1.0):
    """The log of the t density, as ``scipy.stats.t.logpdf``."""
    return _logpdf_p(x, df, loc, scale)


def cdf(x, df, loc=0.0, scale=1.0):
    """The t cumulative distribution, as ``scipy.stats.t.cdf``."""
    return _cdf_p(x, df, loc, scale)


def logcdf(x, df, loc=0.0, scale=1.0):
    """The log of the t cumulative distribution, as ``scipy.stats.t.logcdf``."""
    return _logcdf_p(x, df, loc, scale)
