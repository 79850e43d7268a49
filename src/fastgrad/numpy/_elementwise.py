"""The NumPy face's elementwise functions, each one registry entry (``fastgrad._registry``).

Extends the core table (``fastgrad._ops``: + − × ÷ ** max min exp log sqrt abs sin cos
tanh) with the rest of NumPy's elementwise functions: unary one-liners, binary ops
(``unbroadcast`` sums the broadcast axes away), and the selections (clip, where, select).
Notation (the lecture's): for y = f(x), a rule turns ȳ (``g``) into x̄ = ȳ ∂y/∂x.

Every rule is written in primitives (never in plain NumPy on the values), so the backward
pass can itself be recorded and differentiated; ``value(x)`` is read only for masks and
constants. Each entry's ``lowering`` writes its rule again as instructions
(``fastgrad._compiler.lowering_ew``), in the same order, for ``fastgrad.compile``.
"""

import builtins

import numpy as onp

from .. import _opcodes as op
from .. import _ops
from .._compiler import lowering as low
from .._ops import cos, exp, maximum, minimum, no_macs, sqrt, unbroadcast, value
from .._registry import Formula, Sample, define
from ._util import contains_tensor, normal, traced, uniform

# --------------------------------------------------------------- unary elementwise --

_LN2, _LN10 = onp.log(2.0), onp.log(10.0)
_inside_one = uniform(-0.8, 0.8, 3, 4)  # the domain of arcsin, arccos, arctanh

tan = define(  # y = tan x:  x̄ = ȳ / cos²x
    onp.tan, "tan", vjps=[lambda g, ans, x: g / cos(x) ** 2],
    formula=Formula("{out} = tan({0})", {0: "{0}̄ = {out}̄ / cos²{0}"}),
    lowering=low.elementwise(lambda x: low.call(op.TAN, x), lambda g, y, x: g / low.call(op.COS, x) ** 2),
    samples=uniform(-1.2, 1.2, 3, 4),
)
arcsin = define(  # y = arcsin x:  x̄ = ȳ / √(1 − x²)
    onp.arcsin, "arcsin", vjps=[lambda g, ans, x: g / sqrt(1.0 - x * x)],
    formula=Formula("{out} = arcsin({0})", {0: "{0}̄ = {out}̄ / √(1 − {0}²)"}),
    lowering=low.elementwise(lambda x: low.call(op.ASIN, x),
                             lambda g, y, x: g / low.call(op.SQRT, 1.0 - x * x)), samples=_inside_one,
)
arccos = define(  # y = arccos x:  x̄ = −ȳ / √(1 − x²)
    onp.arccos, "arccos", vjps=[lambda g, ans, x: -g / sqrt(1.0 - x * x)],
    formula=Formula("{out} = arccos({0})", {0: "{0}̄ = −{out}̄ / √(1 − {0}²)"}),
    lowering=low.elementwise(lambda x: low.call(op.ACOS, x),
                             lambda g, y, x: -g / low.call(op.SQRT, 1.0 - x * x)), samples=_inside_one,
)
arctan = define(  # y = arctan x:  x̄ = ȳ / (1 + x²)
    onp.arctan, "arctan", vjps=[lambda g, ans, x: g / (1.0 + x * x)],
    formula=Formula("{out} = arctan({0})", {0: "{0}̄ = {out}̄ / (1 + {0}²)"}),
    lowering=low.elementwise(lambda x: low.call(op.ATAN, x), lambda g, y, x: g / (1.0 + x * x)), samples=normal(3, 4),
)
sinh = define(  # y = sinh x:  x̄ = ȳ cosh x
    onp.sinh, "sinh", vjps=[lambda g, ans, x: g * cosh(x)],
    formula=Formula("{out} = sinh({0})", {0: "{0}̄ = {out}̄ ∘ cosh({0})"}),
    lowering=low.elementwise(lambda x: low.call(op.SINH, x), lambda g, y, x: g * low.call(op.COSH, x)),
    samples=normal(3, 4),
)
cosh = define(  # y = cosh x:  x̄ = ȳ sinh x
    onp.cosh, "cosh", vjps=[lambda g, ans, x: g * sinh(x)],
    formula=Formula("{out} = cosh({0})", {0: "{0}̄ = {out}̄ ∘ sinh({0})"}),
    lowering=low.elementwise(lambda x: low.call(op.COSH, x), lambda g, y, x: g * low.call(op.SINH, x)),
    samples=normal(3, 4),
)
arcsinh = define(  # y = arsinh x:  x̄ = ȳ / √(x² + 1)
    onp.arcsinh, "arcsinh", vjps=[lambda g, ans, x: g / sqrt(x * x + 1.0)],
    formula=Formula("{out} = arsinh({0})", {0: "{0}̄ = {out}̄ / √({0}² + 1)"}),
    lowering=low.elementwise(lambda x: low.call(op.ASINH, x),
                             lambda g, y, x: g / low.call(op.SQRT, x * x + 1.0)), samples=normal(3, 4),
)
arccosh = define(  # y = arcosh x (x > 1):  x̄ = ȳ / √(x² − 1)
    onp.arccosh, "arccosh", vjps=[lambda g, ans, x: g / sqrt(x * x - 1.0)],
    formula=Formula("{out} = arcosh({0})", {0: "{0}̄ = {out}̄ / √({0}² − 1)"}),
    lowering=low.elementwise(lambda x: low.call(op.ACOSH, x),
                             lambda g, y, x: g / low.call(op.SQRT, x * x - 1.0)), samples=uniform(1.2, 3.0, 3, 4),
)
arctanh = define(  # y = artanh x (|x| < 1):  x̄ = ȳ / (1 − x²)
    onp.arctanh, "arctanh", vjps=[lambda g, ans, x: g / (1.0 - x * x)],
    formula=Formula("{out} = artanh({0})", {0: "{0}̄ = {out}̄ / (1 − {0}²)"}),
    lowering=low.elementwise(lambda x: low.call(op.ATANH, x), lambda g, y, x: g / (1.0 - x * x)), samples=_inside_one,
)
log2 = define(  # y = log₂ x:  x̄ = ȳ / (x ln 2)
    onp.log2, "log2", vjps=[lambda g, ans, x: g / (x * _LN2)],
    formula=Formula("{out} = log₂({0})", {0: "{0}̄ = {out}̄ / ({0} ln 2)"}),
    lowering=low.elementwise(lambda x: low.call(op.LOG2, x), lambda g, y, x: g / (x * _LN2)),
    samples=uniform(0.5, 2.0, 3, 4),
)
log10 = define(  # y = log₁₀ x:  x̄ = ȳ / (x ln 10)
    onp.log10, "log10", vjps=[lambda g, ans, x: g / (x * _LN10)],
    formula=Formula("{out} = log₁₀({0})", {0: "{0}̄ = {out}̄ / ({0} ln 10)"}),
    lowering=low.elementwise(lambda x: low.call(op.LOG10, x), lambda g, y, x: g / (x * _LN10)),
    samples=uniform(0.5, 2.0, 3, 4),
)
log1p = define(  # y = log(1 + x):  x̄ = ȳ / (1 + x)
    onp.log1p, "log1p", vjps=[lambda g, ans, x: g / (x + 1.0)],
    formula=Formula("{out} = log(1 + {0})", {0: "{0}̄ = {out}̄ / (1 + {0})"}),
    lowering=low.elementwise(lambda x: low.call(op.LOG1P, x), lambda g, y, x: g / (x + 1.0)),
    samples=uniform(-0.5, 2.0, 3, 4),
)
expm1 = define(  # y = eˣ − 1:  x̄ = ȳ (y + 1)
    onp.expm1, "expm1", vjps=[lambda g, ans, x: g * (ans + 1.0)], saves_args=False,
    saves_ans=True,
    formula=Formula("{out} = exp({0}) − 1", {0: "{0}̄ = {out}̄ ∘ ({out} + 1)"}),
    lowering=low.elementwise(lambda x: low.call(op.EXPM1, x), lambda g, y, x: g * (y + 1.0)), samples=normal(3, 4),
)
exp2 = define(  # y = 2ˣ:  x̄ = ȳ y ln 2
    onp.exp2, "exp2", vjps=[lambda g, ans, x: g * ans * _LN2], saves_args=False, saves_ans=True,
    formula=Formula("{out} = 2^{0}", {0: "{0}̄ = {out}̄ ∘ {out} ln 2"}),
    lowering=low.elementwise(lambda x: low.call(op.EXP2, x), lambda g, y, x: g * y * _LN2), samples=normal(3, 4),
)
square = define(  # y = x²:  x̄ = 2 ȳ x
    onp.square, "square", vjps=[lambda g, ans, x: g * 2.0 * x],
    formula=Formula("{out} = {0}²", {0: "{0}̄ = 2 {out}̄ ∘ {0}"}),
    lowering=low.elementwise(lambda x: x * x, lambda g, y, x: g * 2.0 * x), samples=normal(3, 4),
)
reciprocal = define(  # y = 1/x:  x̄ = −ȳ / x²
    onp.reciprocal, "reciprocal", vjps=[lambda g, ans, x: -g / (x * x)],
    formula=Formula("{out} = 1 / {0}", {0: "{0}̄ = −{out}̄ / {0}²"}),
    lowering=low.elementwise(lambda x: 1.0 / x, lambda g, y, x: -g / (x * x)),
    samples=lambda r: [Sample(r.uniform(0.5, 2.0, size=(3, 4)) * r.choice([-1.0, 1.0], (3, 4)))],
)
rad2deg = define(  # y = (180/π) x:  x̄ = (180/π) ȳ
    onp.rad2deg, "rad2deg", vjps=[lambda g, ans, x: g * (180.0 / onp.pi)], saves_args=False,
    formula=Formula("{out} = (180/π) {0}", {0: "{0}̄ = (180/π) {out}̄"}),
    lowering=low.elementwise(lambda x: x * (180.0 / onp.pi), lambda g, y, x: g * (180.0 / onp.pi)),
    samples=normal(3, 4),
)
deg2rad = define(  # y = (π/180) x:  x̄ = (π/180) ȳ
    onp.deg2rad, "deg2rad", vjps=[lambda g, ans, x: g * (onp.pi / 180.0)], saves_args=False,
    formula=Formula("{out} = (π/180) {0}", {0: "{0}̄ = (π/180) {out}̄"}),
    lowering=low.elementwise(lambda x: x * (onp.pi / 180.0), lambda g, y, x: g * (onp.pi / 180.0)),
    samples=normal(3, 4),
)
fabs = define(  # y = |x| (a float):  x̄ = ȳ sign(x)  (0 at x = 0)
    onp.fabs, "fabs", vjps=[lambda g, ans, x: g * onp.sign(value(x))],
    formula=Formula("{out} = |{0}|", {0: "{0}̄ = {out}̄ ∘ sign({0})"}),
    lowering=low.elementwise(lambda x: low.call(op.ABS, x), lambda g, y, x: g * low.call(op.SIGN, x)),
    samples=normal(3, 4),
)

_SINC_SMALL = 1e-3  # below it x̄'s quotient cancels; the series is exact to ~1e-13 there
_PI2_3, _PI4_30 = onp.pi**2 / 3.0, onp.pi**4 / 30.0


def _sinc_vjp(g, ans, x):
    # y = sin(πx)/(πx):  x̄ = ȳ (cos(πx) − y) / x, written near 0 as its series
    # −π²x/3 + π⁴x³/30 (so that its own derivative there, −π²/3, is right too)
    small = onp.abs(value(x)) < _SINC_SMALL
    safe = _ops.where(small, 1.0, x)
    series = x * (x * x * _PI4_30 - _PI2_3)
    return g * _ops.where(small, series, (cos(onp.pi * safe) - sinc(safe)) / safe)


def _sinc_rule(g, y, x):  # _sinc_vjp, as instructions
    small = low.call(op.LT, low.call(op.ABS, x), _SINC_SMALL)
    safe = low.call(op.WHERE, small, 1.0, x)
    series = x * (x * x * _PI4_30 - _PI2_3)
    other = (low.call(op.COS, onp.pi * safe) - low.call(op.SINC, safe)) / safe
    return g * low.call(op.WHERE, small, series, other)


sinc = define(
    onp.sinc, "sinc", vjps=[_sinc_vjp],
    formula=Formula("{out} = sin(π{0}) / (π{0})",
                    {0: "{0}̄ = {out}̄ ∘ (cos(π{0}) − {out}) / {0}  (−π²{0}/3 at 0)"}),
    lowering=low.elementwise(lambda x: low.call(op.SINC, x), _sinc_rule),
    samples=lambda r: [Sample(r.normal(size=(3, 4))),
                       Sample(onp.array([0.0, 2e-4, -5e-4, 0.7]))],  # the series near 0
)

# ------------------------------------------------------------------ complex parts --
# autograd's convention for complex values (fastgrad._functional): a rule is v̄ f'(z) for a
# holomorphic f and the stated formula otherwise. A primitive with a real output takes the
# real part of its signal first (only that part acts on a real value: the signal of a real
# node may carry an imaginary part nobody has dropped yet, as real inputs drop it at the
# end); a real input's signal is made real by the start of the transform.


def _iscomplex(x):
    return onp.iscomplexobj(value(x))


def real_part(g):
    """Re ḡ: what acts on a real value (recorded when ``g`` is a tensor)."""
    return real(g) if _iscomplex(g) else g


def as_complex(g, like):
    """``g`` in ``like``'s complex dtype (autograd's match_complex, real to complex)."""
    return g if _iscomplex(g) else _astype_p(g, onp.result_type(value(like), onp.complex64))


def _astype_p(g, dtype):
    from ._building import astype_p  # (_building imports this module's samples)

    return astype_p(g, dtype)


def _complex_samples(*shape):
    return lambda r: [Sample(r.normal(size=shape) + 1j * r.normal(size=shape)),
                      Sample(r.normal(size=shape))]


# y = Re z:  z̄ = Re ȳ (as a complex number for a complex z)
def _real_vjp(g, ans, x):
    g = real_part(g)
    return as_complex(g, x) if _iscomplex(x) else g


real = define(
    onp.real, "real", vjps=[_real_vjp],
    formula=Formula("{out} = Re {0}", {0: "{0}̄ = Re {out}̄"}, no_macs),
    lowering=low.view(), samples=_complex_samples(3, 4),
)


# y = Im z:  z̄ = −i Re ȳ (0 for a real z: it has no imaginary part)
def _imag_vjp(g, ans, x):
    g = real_part(g)
    return g * -1j if _iscomplex(x) else g * 0.0


imag = define(
    onp.imag, "imag", vjps=[_imag_vjp],
    formula=Formula("{out} = Im {0}", {0: "{0}̄ = −i Re {out}̄  (0 for a real {0})"}, no_macs),
    lowering=low.elementwise(lambda x: low.call(op.COPY, 0.0), lambda g, y, x: g * 0.0), samples=_complex_samples(3, 4),
)
# y = conj z:  z̄ = conj ȳ
conjugate = define(
    onp.conjugate, "conjugate", vjps=[lambda g, ans, x: conjugate(g) if _iscomplex(g) else g],
    saves_args=False, formula=Formula("{out} = conj({0})", {0: "{0}̄ = conj({out}̄)"}, no_macs),
    lowering=low.view(), samples=_complex_samples(3, 4),
)


# θ = arg z:  z̄ = Re θ̄ · conj(i z) / |z|² (0 for a real z: θ is 0 or π there)
def _angle_vjp(g, ans, x):
    g = real_part(g)
    if not _iscomplex(x):
        return g * 0.0
    return g * conjugate(x * 1j) / (real_part(x * conjugate(x)))


angle = define(
    onp.angle, "angle", vjps=[_angle_vjp],
    formula=Formula("{out} = arg {0}", {0: "{0}̄ = Re {out}̄ conj(i {0}) / |{0}|²  (0 for a real {0})"}),
    lowering=low.elementwise(lambda x: low.call(op.ANGLE, x), lambda g, y, x: g * 0.0), samples=_complex_samples(3, 4),
)


# y = z, made real when its imaginary parts are negligible:  z̄ = ȳ (Re ȳ when y is real)
def _real_if_close_vjp(g, ans, x, *args, **kwargs):
    if not _iscomplex(ans):
        g = real_part(g)
    return as_complex(g, x) if _iscomplex(x) else g


real_if_close = define(
    onp.real_if_close, "real_if_close", vjps=[_real_if_close_vjp], saves_ans=True,
    formula=Formula("{out} = {0}", {0: "{0}̄ = {out}̄  (Re {out}̄ where {out} came out real)"}, no_macs),
    lowering=low.view(),
    samples=lambda r: _complex_samples(3, 4)(r) + [Sample(r.normal(size=(3, 4)) + 1e-20j)],
)
nan_to_num = define(  # y = x where finite, a number elsewhere:  x̄ = ȳ where x is finite
    onp.nan_to_num, "nan_to_num", vjps=[lambda g, ans, x, *a, **k: g * onp.isfinite(value(x))],
    formula=Formula("{out} = nan_to_num({0})", {0: "{0}̄ = {out}̄ where {0} is finite, else 0"}),
    lowering=low.nan_to_num(),
    samples=lambda r: [Sample(onp.where(r.normal(size=(3, 4)) > 0.8, onp.nan, r.normal(size=(3, 4)))),
                       Sample(onp.array([onp.nan, 1.5, -0.5]), nan=2.0)],
)

# -------------------------------------------------------------- binary elementwise --


def _binary_samples(r):
    """Same shapes, a row broadcast against a matrix, a column against a matrix, a
    scalar against an array."""
    return [Sample(r.normal(size=(3, 4)), r.normal(size=(3, 4))),
            Sample(r.normal(size=(3, 4)), r.normal(size=(4,))),
            Sample(r.normal(size=(2, 1)), r.normal(size=(2, 3))),
            Sample(r.normal(), r.normal(size=(3,)))]


# θ = atan2(y, x):  ȳ = θ̄ x / (x² + y²),  x̄ = −θ̄ y / (x² + y²)
arctan2 = define(
    onp.arctan2, "arctan2",
    vjps=[lambda g, ans, y, x: unbroadcast(g * x / (x * x + y * y), y),
          lambda g, ans, y, x: unbroadcast(-g * y / (x * x + y * y), x)],
    formula=Formula("{out} = atan2({0}, {1})", {0: "{0}̄ = {out}̄ ∘ {1} / ({0}² + {1}²)",
                                                1: "{1}̄ = −{out}̄ ∘ {0} / ({0}² + {1}²)"},
                    broadcasts=True),
    lowering=low.elementwise(lambda y, x: low.call(op.ATAN2, y, x),
                             lambda g, a, y, x: g * x / (x * x + y * y),
                             lambda g, a, y, x: -g * y / (x * x + y * y)), samples=_binary_samples,
)
# h = √(x² + y²):  x̄ = h̄ x / h,  ȳ = h̄ y / h
hypot = define(
    onp.hypot, "hypot",
    vjps=[lambda g, ans, x, y: unbroadcast(g * x / ans, x),
          lambda g, ans, x, y: unbroadcast(g * y / ans, y)],
    saves_ans=True,
    formula=Formula("{out} = √({0}² + {1}²)", {0: "{0}̄ = {out}̄ ∘ {0} / {out}",
                                               1: "{1}̄ = {out}̄ ∘ {1} / {out}"}, broadcasts=True),
    lowering=low.elementwise(lambda x, y: low.call(op.HYPOT, x, y), lambda g, h, x, y: g * x / h,
                             lambda g, h, x, y: g * y / h), samples=_binary_samples,
)
# z = log(eˣ + eʸ):  x̄ = z̄ eˣ⁻ᶻ,  ȳ = z̄ eʸ⁻ᶻ
logaddexp = define(
    onp.logaddexp, "logaddexp",
    vjps=[lambda g, ans, x, y: unbroadcast(g * exp(x - ans), x),
          lambda g, ans, x, y: unbroadcast(g * exp(y - ans), y)],
    saves_ans=True,
    formula=Formula("{out} = log(e^{0} + e^{1})", {0: "{0}̄ = {out}̄ ∘ e^({0} − {out})",
                                                   1: "{1}̄ = {out}̄ ∘ e^({1} − {out})"},
                    broadcasts=True),
    lowering=low.elementwise(lambda x, y: low.call(op.LOGADDEXP, x, y),
                             lambda g, z, x, y: g * low.call(op.EXP, x - z),
                             lambda g, z, x, y: g * low.call(op.EXP, y - z)), samples=_binary_samples,
)
# z = log₂(2ˣ + 2ʸ):  x̄ = z̄ 2ˣ⁻ᶻ,  ȳ = z̄ 2ʸ⁻ᶻ
logaddexp2 = define(
    onp.logaddexp2, "logaddexp2",
    vjps=[lambda g, ans, x, y: unbroadcast(g * exp2(x - ans), x),
          lambda g, ans, x, y: unbroadcast(g * exp2(y - ans), y)],
    saves_ans=True,
    formula=Formula("{out} = log₂(2^{0} + 2^{1})", {0: "{0}̄ = {out}̄ ∘ 2^({0} − {out})",
                                                    1: "{1}̄ = {out}̄ ∘ 2^({1} − {out})"},
                    broadcasts=True),
    lowering=low.elementwise(lambda x, y: low.call(op.LOGADDEXP2, x, y),
                             lambda g, z, x, y: g * low.call(op.EXP2, x - z),
                             lambda g, z, x, y: g * low.call(op.EXP2, y - z)), samples=_binary_samples,
)


def _remainder_samples(r):
    # away from the jumps (x/y an integer): a fixed draw
    return [Sample(3.0 * r.normal(size=(3, 4)), r.uniform(0.5, 2.0, size=(3, 4))),
            Sample(3.0 * r.normal(size=(3, 4)), -r.uniform(0.5, 2.0, size=(4,))),
            Sample(3.0 * r.normal(size=(2, 3)), 1.7)]


# z = x mod y = x − y ⌊x/y⌋:  x̄ = z̄,  ȳ = −z̄ ⌊x/y⌋
remainder = define(
    onp.remainder, "remainder",
    vjps=[lambda g, ans, x, y: unbroadcast(g, x),
          lambda g, ans, x, y: unbroadcast(-g * onp.floor(value(x) / value(y)), y)],
    formula=Formula("{out} = {0} mod {1}", {0: "{0}̄ = {out}̄", 1: "{1}̄ = −{out}̄ ∘ ⌊{0}/{1}⌋"},
                    broadcasts=True),
    lowering=low.elementwise(lambda x, y: low.call(op.REMAINDER, x, y), lambda g, z, x, y: g,
                             lambda g, z, x, y: -g * low.call(op.FLOOR, x / y)), samples=_remainder_samples,
)
mod = remainder


def _nan_samples(r):
    """The binary samples, and NaNs (fmax and fmin pick the other argument)."""
    x = r.normal(size=(2, 3))
    x[0, 1] = x[1, 2] = onp.nan
    return _binary_samples(r) + [Sample(x, r.normal(size=(2, 3)))]


# z = max(x, y), a NaN losing: the signal goes to the larger; ties split it evenly
fmax = define(
    onp.fmax, "fmax", vjps=[maximum.vjps[0], maximum.vjps[1]], saves_ans=True,
    formula=Formula("{out} = fmax({0}, {1})",
                    {0: "{0}̄ = {out}̄ where {0} is larger or {1} NaN (ties: half)",
                     1: "{1}̄ = {out}̄ where {1} is larger or {0} NaN (ties: half)"}, broadcasts=True),
    lowering=low.elementwise(lambda x, y: low.call(op.FMAX, x, y),
                             lambda g, z, x, y: g * low.call(op.BALANCED, x, z, y),
                             lambda g, z, x, y: g * low.call(op.BALANCED, y, z, x)), samples=_nan_samples,
)
fmin = define(
    onp.fmin, "fmin", vjps=[minimum.vjps[0], minimum.vjps[1]], saves_ans=True,
    formula=Formula("{out} = fmin({0}, {1})",
                    {0: "{0}̄ = {out}̄ where {0} is smaller or {1} NaN (ties: half)",
                     1: "{1}̄ = {out}̄ where {1} is smaller or {0} NaN (ties: half)"}, broadcasts=True),
    lowering=low.elementwise(lambda x, y: low.call(op.FMIN, x, y),
                             lambda g, z, x, y: g * low.call(op.BALANCED, x, z, y),
                             lambda g, z, x, y: g * low.call(op.BALANCED, y, z, x)), samples=_nan_samples,
)

# ------------------------------------------------------------ elementwise selection --


def _clip(x, a_min, a_max):
    return onp.clip(x, a_min, a_max)


# y = min(max(x, lo), hi): each element comes from exactly one of the three
def _clip_x(g, ans, x, lo, hi):  # x̄ = ȳ where lo < x < hi
    xv = value(x)
    mask = onp.ones(onp.shape(xv), dtype=bool)
    if lo is not None:
        mask = mask & (xv > value(lo))
    if hi is not None:
        mask = mask & (xv < value(hi))
    return unbroadcast(g * mask, x)


def _clip_lo(g, ans, x, lo, hi):  # lō = ȳ where x < lo (and lo < hi)
    mask = value(x) < value(lo)
    if hi is not None:
        mask = mask & (value(lo) < value(hi))
    return unbroadcast(g * mask, lo)


def _clip_hi(g, ans, x, lo, hi):  # hī = ȳ where max(x, lo) > hi
    above = value(x) if lo is None else onp.maximum(value(x), value(lo))
    return unbroadcast(g * (above > value(hi)), hi)


def _clip_samples(r):
    x = r.normal(size=(3, 4))
    return [Sample(x, -0.5, 0.5), Sample(x, None, 0.3), Sample(x, -0.2, None),
            Sample(x, r.normal(size=(4,)) - 0.5, r.normal(size=(3, 1)) + 0.5),
            Sample(x, 0.6, -0.6)]  # lo > hi: everything is hi


_clip_p = define(
    _clip, "clip", vjps=[_clip_x, _clip_lo, _clip_hi],
    formula=Formula("{out} = clip({0}, {1}, {2})", {0: "{0}̄ = {out}̄ where {1} < {0} < {2}",
                                                    1: "{1}̄ = {out}̄ where {0} < {1} < {2}",
                                                    2: "{2}̄ = {out}̄ where max({0}, {1}) > {2}"},
                    broadcasts=True),
    lowering=low.clip(), samples=_clip_samples,
)


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if traced(a, a_min, a_max):
        return _clip_p(a, a_min, a_max)
    return onp.clip(a, a_min, a_max, out=out, **kwargs)


def _numpy_like(x):
    if isinstance(x, (onp.ndarray, onp.generic)) or traced(x):
        return True
    return isinstance(x, (list, tuple)) and builtins.any(_numpy_like(v) for v in x)


def where(condition, *args, **kwargs):
    """np.where; like autograd's, on Python scalars and lists only it returns Python values."""
    if not args and not kwargs:
        return onp.where(value(condition))
    if len(args) + len(kwargs) != 2:
        raise ValueError("either both or neither of x and y should be given")
    x = args[0] if args else kwargs["x"]
    y = args[1] if len(args) > 1 else kwargs["y"]
    if traced(x, y):
        return _ops.where(condition, x, y)
    res = onp.where(value(condition), x, y)
    if not (_numpy_like(condition) or _numpy_like(x) or _numpy_like(y)) and isinstance(
        res, onp.ndarray
    ):
        return res.tolist()
    return res


def select(condlist, choicelist, default=0):
    """np.select as nested wheres (the last condition innermost, so the first wins)."""
    if not contains_tensor(list(choicelist)) and not traced(default):
        return onp.select([value(c) for c in condlist], choicelist, default)
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = _ops.where(value(cond), choice, out)
    return out
