"""Rules shared by the location-scale distributions (norm, t) and the loc/scale arguments
of the others.

For f(x; θ, loc, s) = h(z) with z = (x − loc)/s (a cdf), h(z)/s (a pdf) or h(z) − log s
(a log-density), every rule follows from D = ∂f/∂x:

    x̄ = ȳ D,   loc̄ = −ȳ D,   s̄ = −ȳ (D z + c)

where c is the scale's own term: 0 for a cdf, f/s for a pdf, 1/s for a log-density.
"""

import numpy as onp

from ... import numpy as fnp
from .._common import Formula, unbroadcast, value

__all__ = ["location_scale_vjps", "location_scale_formula", "with_loc_scale", "nan_where_bad_scale"]


def location_scale_vjps(dx, kind, loc, scale, others=()):
    """The rules of f(x, …, loc, scale) from ``dx(ans, *args)`` = ∂f/∂x; ``kind`` is
    "cdf", "pdf" or "logpdf"; ``others`` are (position, rule) pairs for shape parameters."""

    def x_rule(g, ans, *args):
        return unbroadcast(g * dx(ans, *args), args[0])

    def loc_rule(g, ans, *args):
        return unbroadcast(-g * dx(ans, *args), args[loc])

    def scale_rule(g, ans, *args):
        s = args[scale]
        t = dx(ans, *args) * ((args[0] - args[loc]) / s)
        if kind == "pdf":
            t = t + ans / s
        elif kind == "logpdf":
            t = t + 1.0 / s
        return unbroadcast(-g * t, s)

    rules = {0: x_rule, loc: loc_rule, scale: scale_rule, **dict(others)}
    return [rules[i] for i in range(len(rules))]


def location_scale_formula(forward, dx, kind, loc, scale, others=()):
    s, m = _slot(scale), _slot(loc)
    extra = {"cdf": "", "pdf": " + {out}/" + s, "logpdf": " + 1/" + s}[kind]
    z = "({0} − " + m + ")/" + s
    backward = {0: "{0}̄ = {out}̄ ∘ " + dx,
                loc: m + "̄ = −{out}̄ ∘ " + dx,
                scale: s + "̄ = −{out}̄ ∘ (" + dx + " ∘ " + z + extra + ")"}
    backward.update(dict(others))
    return Formula("{out} = " + forward, backward, broadcasts=True)


def _slot(i):
    """The template slot of argument i: "{i}"."""
    return "{" + str(i) + "}"


def nan_where_bad_scale(out, scale):
    """NaN where the scale is not positive, as SciPy's distributions answer."""
    ok = onp.asarray(value(scale)) > 0
    if ok.all():
        return out
    return fnp.where(ok, out, onp.nan)


def _is(v, number):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == number


def with_loc_scale(kind, standard, x, params, loc, scale):
    """f(x; params, loc, scale) from the standard form ``standard(x, *params)``, composed of
    differentiable operations (so loc and scale get their gradients from the rules of
    − and /): f = h((x − loc)/s) [cdf], h(·)/s [pdf], h(·) − log s [logpdf]."""
    if _is(loc, 0) and _is(scale, 1):
        return standard(x, *params)
    with onp.errstate(divide="ignore", invalid="ignore"):
        out = standard((x - loc) / scale, *params)
        if kind == "pdf":
            out = out / scale
        elif kind == "logpdf":
            out = out - fnp.log(scale)
    return nan_where_bad_scale(out, scale)
