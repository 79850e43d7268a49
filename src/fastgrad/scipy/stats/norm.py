"""``fastgrad.scipy.stats.norm``: the normal distribution N(loc, scale²), differentiable in
x, loc and scale.

The forwards are SciPy's formulas written with NumPy and ``scipy.special`` (what
``scipy.stats.norm`` computes after its argument handling, which costs far more than the
arithmetic): the same values to rounding, NaN where scale ≤ 0. A float32 input stays
float32 (SciPy's answer is float64). With z = (x − loc)/scale, φ the standard density:

    pdf = φ(z)/scale,  logpdf = −z²/2 − log √(2π) − log scale,
    cdf = Φ(z),  sf = Φ(−z),  logcdf = log Φ(z),  logsf = log Φ(−z).
"""

import math

import numpy as onp
import scipy.special as _sp

from ... import numpy as fnp
from .._common import Sample, entry
from ._family import location_scale_formula, location_scale_vjps, nan_where_bad_scale

__all__ = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]

_C = math.sqrt(2 * math.pi)  # SciPy's _norm_pdf_C (Python floats: a float32 x stays float32)
_LOG_C = math.log(_C)


def _log(s):
    return math.log(s) if isinstance(s, (int, float)) and s > 0 else onp.log(s)


def _standardized(fun):
    """fun(z, scale) on z = (x − loc)/scale, NaN where scale ≤ 0."""

    def forward(x, loc, scale):
        x = onp.asarray(x)
        if onp.all(onp.asarray(scale) > 0):
            return fun((x - loc) / scale, scale)
        with onp.errstate(divide="ignore", invalid="ignore"):
            return nan_where_bad_scale(fun((x - loc) / scale, scale), scale)

    return forward


_pdf = _standardized(lambda z, s: onp.exp(-z * z / 2.0) / _C / s)
_logpdf = _standardized(lambda z, s: -z * z / 2.0 - _LOG_C - _log(s))
_cdf = _standardized(lambda z, s: _sp.ndtr(z))
_sf = _standardized(lambda z, s: _sp.ndtr(-z))
_logcdf = _standardized(lambda z, s: _sp.log_ndtr(z))
_logsf = _standardized(lambda z, s: _sp.log_ndtr(-z))


def _samples(r):
    return [Sample(r.normal(size=(4,)), r.normal(size=(4,)), r.uniform(0.5, 2.0, size=(4,))),
            Sample(r.normal(size=(4, 3)), r.normal(size=(1, 3)), r.uniform(0.5, 2.0, size=(4, 1))),
            Sample(r.normal(size=(3,)), 0.5, 1.5, wrt=(0,))]


def _z(x, loc, scale):
    return (x - loc) / scale


def _entry(fun, name, dx, kind, forward, dx_text, saves_ans):
    return entry(fun, f"norm.{name}", vjps=location_scale_vjps(dx, kind, 1, 2),
                 saves_ans=saves_ans, samples=_samples,
                 formula=location_scale_formula(forward, dx_text, kind, 1, 2))


# ∂f/∂x of each (D in fastgrad.scipy.stats._family), with z = (x − loc)/s
_pdf_p = _entry(_pdf, "pdf", lambda ans, x, loc, s: -ans * _z(x, loc, s) / s, "pdf",
                "φ(z)/{2}", "(−{out} z/{2})", True)
_logpdf_p = _entry(_logpdf, "logpdf", lambda ans, x, loc, s: -_z(x, loc, s) / s, "logpdf",
                   "log φ(z) − log {2}", "(−z/{2})", False)
_cdf_p = _entry(_cdf, "cdf", lambda ans, x, loc, s: _pdf_p(x, loc, s), "cdf", "Φ(z)",
                "φ(z)/{2}", False)
_sf_p = _entry(_sf, "sf", lambda ans, x, loc, s: -_pdf_p(x, loc, s), "cdf", "Φ(−z)",
               "(−φ(z)/{2})", False)
_logcdf_p = _entry(_logcdf, "logcdf",
                   lambda ans, x, loc, s: fnp.exp(_logpdf_p(x, loc, s) - ans), "cdf",
                   "log Φ(z)", "φ(z)/({2} Φ(z))", True)
_logsf_p = _entry(_logsf, "logsf",
                  lambda ans, x, loc, s: -fnp.exp(_logpdf_p(x, loc, s) - ans), "cdf",
                  "log Φ(−z)", "(−φ(z)/({2} Φ(−z)))", True)


def pdf(x, loc=0.0, scale=1.0):
    """φ((x − loc)/scale)/scale, as ``scipy.stats.norm.pdf``."""
    return _pdf_p(x, loc, scale)


def logpdf(x, loc=0.0, scale=1.0):
    """log of the normal density, as ``scipy.stats.norm.logpdf``."""
    return _logpdf_p(x, loc, scale)


def cdf(x, loc=0.0, scale=1.0):
    """Φ((x − loc)/scale), as ``scipy.stats.norm.cdf``."""
    return _cdf_p(x, loc, scale)


def sf(x, loc=0.0, scale=1.0):
    """1 − Φ((x − loc)/scale), as ``scipy.stats.norm.sf``."""
    return _sf_p(x, loc, scale)


def logcdf(x, loc=0.0, scale=1.0):
    """log Φ((x − loc)/scale), as ``scipy.stats.norm.logcdf``."""
    return _logcdf_p(x, loc, scale)


def logsf(x, loc=0.0, scale=1.0):
    """log(1 − Φ((x − loc)/scale)), as ``scipy.stats.norm.logsf``."""
    return _logsf_p(x, loc, scale)
