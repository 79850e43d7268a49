"""``fastgrad.scipy.special``: SciPy's special functions with derivatives (autograd's set).

Each function is SciPy's own ufunc as the forward (on plain arrays it is a plain SciPy
call), with its rule beside it, written with these functions again so the rules can be
differentiated (``grad(grad(gammaln))`` is ψ′). Notation: for y = f(x), x̄ = ȳ ∂y/∂x;
ψ is the digamma function, ψₙ the polygamma of order n, B the beta function.

Arguments that are orders or counts (the ``n`` of ``polygamma``, ``jn``, ``yn``, the ``v``
of ``iv``, the ``d`` of ``multigammaln``) and the shape parameters of the incomplete
functions (``betainc``'s a, b; ``gammainc``'s a) have no derivative here: asking for one
raises NotImplementedError naming the function and the argument.

``logsumexp`` is written with NumPy (SciPy's own wrapper costs more than the arithmetic)
and agrees with ``scipy.special.logsumexp`` to rounding.
"""

import numpy as onp
import scipy.special as _sp

from .. import _ops
from .. import numpy as fnp
from ._common import Formula, Sample, entry, keepdims_shape, refuse, reshape, sign_of, unbroadcast, value

__all__ = [
    "beta", "betainc", "betaln", "polygamma", "psi", "digamma", "gamma", "gammaln",
    "gammainc", "gammaincc", "gammasgn", "rgamma", "multigammaln", "j0", "y0", "j1", "y1",
    "jn", "yn", "i0", "i1", "iv", "ive", "erf", "erfc", "erfinv", "erfcinv", "logit", "expit",
    "logsumexp", "xlogy", "xlog1py",
]

_SQRT_PI = onp.sqrt(onp.pi)


def _unary(fun, name, rule, forward, backward, samples, saves_ans=False, saves_args=True):
    return entry(fun, name, vjps=[rule], saves_ans=saves_ans, saves_args=saves_args,
                 formula=Formula("{out} = " + forward, {0: "{0}̄ = {out}̄ ∘ " + backward}),
                 samples=samples)


def _on(low, high, *shape):
    return lambda r: [Sample(r.uniform(low, high, size=shape or (3, 4)))]


def _order_first(n_sample, low, high):
    """Samples of f(n, x): an order (not differentiated) and x in its domain."""
    return lambda r: [Sample(n, r.uniform(low, high, size=(3, 4)), wrt=(1,)) for n in n_sample]


def _order_rule(name):
    return refuse(name, "its order (argument 0)", "an order has no derivative here")


# ---------------------------------------------------------------- gamma family --

# ψₙ(x) = dⁿ⁺¹ log Γ(x) / dxⁿ⁺¹:  x̄ = ȳ ψₙ₊₁(x)
polygamma = entry(
    _sp.polygamma, "polygamma",
    vjps=[_order_rule("polygamma"), lambda g, ans, n, x: unbroadcast(g * polygamma(n + 1, x), x)],
    formula=Formula("{out} = ψ_{0}({1})", {1: "{1}̄ = {out}̄ ∘ ψ_({0}+1)({1})"}, broadcasts=True),
    samples=_order_first((0, 1, 3), 0.3, 3.0),
)
# ψ(x) = Γ′(x)/Γ(x):  x̄ = ȳ ψ₁(x)
psi = _unary(_sp.psi, "psi", lambda g, ans, x: g * polygamma(1, x), "ψ({0})", "ψ₁({0})",
             _on(0.3, 3.0))
digamma = _unary(_sp.digamma, "digamma", lambda g, ans, x: g * polygamma(1, x), "ψ({0})",
                 "ψ₁({0})", _on(0.3, 3.0))
# log|Γ(x)|:  x̄ = ȳ ψ(x)
gammaln = _unary(_sp.gammaln, "gammaln", lambda g, ans, x: g * psi(x), "log|Γ({0})|", "ψ({0})",
                 lambda r: [Sample(r.uniform(0.3, 4.0, size=(3, 4))),
                            Sample(r.uniform(-2.9, -2.1, size=(5,)))])
# Γ(x):  x̄ = ȳ Γ(x) ψ(x)
gamma = _unary(_sp.gamma, "gamma", lambda g, ans, x: g * ans * psi(x), "Γ({0})",
               "{out} ∘ ψ({0})", _on(0.3, 3.0), saves_ans=True)
# 1/Γ(x):  x̄ = −ȳ ψ(x)/Γ(x)
rgamma = _unary(_sp.rgamma, "rgamma", lambda g, ans, x: -g * ans * psi(x), "1/Γ({0})",
                "(−{out} ∘ ψ({0}))", _on(0.3, 3.0), saves_ans=True)
# sign Γ(x) is constant between the poles:  x̄ = 0
gammasgn = _unary(_sp.gammasgn, "gammasgn", lambda g, ans, x: g * 0.0, "sign Γ({0})", "0",
                  lambda r: [Sample(r.uniform(0.3, 3.0, size=(3, 4))),
                             Sample(r.uniform(-1.9, -1.1, size=(3,)))])


def _multigammaln_a(g, ans, a, d):
    # log Γ_d(a) = d(d−1)/4 log π + Σⱼ log Γ(a − j/2):  ā = ȳ Σⱼ ψ(a − j/2), j = 0 … d−1
    total = digamma(a)
    for j in range(1, int(d)):
        total = total + digamma(a - j / 2.0)
    return g * total


multigammaln = entry(
    _sp.multigammaln, "multigammaln",
    vjps=[_multigammaln_a, refuse("multigammaln", "d (argument 1)", "a dimension")],
    formula=Formula("{out} = log Γ_{1}({0})", {0: "{0}̄ = {out}̄ ∘ Σⱼ ψ({0} − j/2)"}),
    samples=lambda r: [Sample(r.uniform(4.0, 5.0, size=(2, 3)), d, wrt=(0,)) for d in (1, 3)]
    + [Sample(4.5, 2, wrt=(0,))],
)

# P(a, x) = γ(a, x)/Γ(a), Q = 1 − P:  x̄ = ±ȳ e⁻ˣ xᵃ⁻¹ / Γ(a)


def _gamma_density(a, x):
    """e⁻ˣ xᵃ⁻¹ / Γ(a), the derivative of P(a, x) in x (0 · log 0 = 0 at x = 0)."""
    return fnp.exp(xlogy(a - 1.0, x) - x - gammaln(a))


def _incomplete_gamma(fun, name, sign, formula):
    return entry(
        fun, name,
        vjps=[refuse(name, "a (argument 0)", "no closed form"),
              lambda g, ans, a, x: unbroadcast(sign * g * _gamma_density(a, x), x)],
        formula=Formula("{out} = " + formula, {1: "{1}̄ = " + ("" if sign > 0 else "−")
                                               + "{out}̄ ∘ e^(−{1}) {1}^({0}−1) / Γ({0})"},
                        broadcasts=True),
        samples=lambda r: [Sample(1.0, r.uniform(0.3, 3.0, size=(4,)), wrt=(1,)),
                           Sample(r.uniform(0.5, 3.0, size=(3, 1)), r.uniform(0.3, 3.0, size=(3, 4)),
                                  wrt=(1,))],
    )


gammainc = _incomplete_gamma(_sp.gammainc, "gammainc", 1.0, "P({0}, {1})")
gammaincc = _incomplete_gamma(_sp.gammaincc, "gammaincc", -1.0, "Q({0}, {1})")

# ----------------------------------------------------------------- beta family --


def _beta_samples(r):
    return [Sample(r.uniform(0.5, 3.0, size=(3, 4)), r.uniform(0.5, 3.0, size=(3, 4))),
            Sample(r.uniform(0.5, 3.0, size=(4,)), r.uniform(0.5, 3.0, size=(3, 4)))]


# B(a, b) = Γ(a)Γ(b)/Γ(a+b):  ā = ȳ B (ψ(a) − ψ(a+b)),  b̄ = ȳ B (ψ(b) − ψ(a+b))
beta = entry(
    _sp.beta, "beta",
    vjps=[lambda g, ans, a, b: unbroadcast(g * ans * (psi(a) - psi(a + b)), a),
          lambda g, ans, a, b: unbroadcast(g * ans * (psi(b) - psi(a + b)), b)],
    saves_ans=True,
    formula=Formula("{out} = B({0}, {1})", {0: "{0}̄ = {out}̄ ∘ {out} ∘ (ψ({0}) − ψ({0}+{1}))",
                                            1: "{1}̄ = {out}̄ ∘ {out} ∘ (ψ({1}) − ψ({0}+{1}))"},
                    broadcasts=True),
    samples=_beta_samples,
)
betaln = entry(
    _sp.betaln, "betaln",
    vjps=[lambda g, ans, a, b: unbroadcast(g * (psi(a) - psi(a + b)), a),
          lambda g, ans, a, b: unbroadcast(g * (psi(b) - psi(a + b)), b)],
    formula=Formula("{out} = log|B({0}, {1})|", {0: "{0}̄ = {out}̄ ∘ (ψ({0}) − ψ({0}+{1}))",
                                                 1: "{1}̄ = {out}̄ ∘ (ψ({1}) − ψ({0}+{1}))"},
                    broadcasts=True),
    samples=_beta_samples,
)


def _beta_density(a, b, x):
    """xᵃ⁻¹ (1−x)ᵇ⁻¹ / B(a, b), the derivative of I_x(a, b) in x, in logs (no overflow of
    B for large a, b; 0 · log 0 = 0 at the ends)."""
    return fnp.exp(xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b))


# I_x(a, b), the regularized incomplete beta:  x̄ = ȳ xᵃ⁻¹ (1−x)ᵇ⁻¹ / B(a, b)
betainc = entry(
    _sp.betainc, "betainc",
    vjps=[refuse("betainc", "a (argument 0)", "no closed form"),
          refuse("betainc", "b (argument 1)", "no closed form"),
          lambda g, ans, a, b, x: unbroadcast(g * _beta_density(a, b, x), x)],
    formula=Formula("{out} = I_{2}({0}, {1})",
                    {2: "{2}̄ = {out}̄ ∘ {2}^({0}−1) (1−{2})^({1}−1) / B({0}, {1})"}, broadcasts=True),
    samples=lambda r: [Sample(r.uniform(0.5, 3.0, size=(4,)), r.uniform(0.5, 3.0, size=(4,)),
                              r.uniform(0.1, 0.9, size=(3, 4)), wrt=(2,))],
)

# x log y and x log(1 + y), 0 where x = 0:  x̄ = z̄ log y,  ȳ = z̄ x / y  (resp. x / (1 + y))
xlogy = entry(
    _sp.xlogy, "xlogy",
    vjps=[lambda g, ans, x, y: unbroadcast(g * fnp.log(y), x),
          lambda g, ans, x, y: unbroadcast(g * x / y, y)],
    formula=Formula("{out} = {0} log {1}", {0: "{0}̄ = {out}̄ ∘ log {1}", 1: "{1}̄ = {out}̄ ∘ {0} / {1}"},
                    broadcasts=True),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), r.uniform(0.5, 2.0, size=(3, 4))),
                       Sample(r.normal(size=(4,)), r.uniform(0.5, 2.0, size=(3, 4)))],
)
xlog1py = entry(
    _sp.xlog1py, "xlog1py",
    vjps=[lambda g, ans, x, y: unbroadcast(g * fnp.log1p(y), x),
          lambda g, ans, x, y: unbroadcast(g * x / (1.0 + y), y)],
    formula=Formula("{out} = {0} log(1 + {1})", {0: "{0}̄ = {out}̄ ∘ log(1 + {1})",
                                                 1: "{1}̄ = {out}̄ ∘ {0} / (1 + {1})"},
                    broadcasts=True),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), r.uniform(-0.5, 2.0, size=(3, 4)))],
)

# ------------------------------------------------------------------- Bessel ----
# J₀′ = −J₁, Y₀′ = −Y₁, J₁′ = (J₀ − J₂)/2, Jₙ′ = (Jₙ₋₁ − Jₙ₊₁)/2 (Y the same),
# I₀′ = I₁, Iᵥ′ = (Iᵥ₋₁ + Iᵥ₊₁)/2, and ive = Iᵥ e^(−|x|) adds −sign(x) ive.

j0 = _unary(_sp.j0, "j0", lambda g, ans, x: -g * j1(x), "J₀({0})", "(−J₁({0}))", _on(0.2, 20.0))
y0 = _unary(_sp.y0, "y0", lambda g, ans, x: -g * y1(x), "Y₀({0})", "(−Y₁({0}))", _on(0.2, 20.0))
j1 = _unary(_sp.j1, "j1", lambda g, ans, x: g * (j0(x) - jn(2, x)) / 2.0, "J₁({0})",
            "(J₀({0}) − J₂({0}))/2", _on(0.2, 20.0))
y1 = _unary(_sp.y1, "y1", lambda g, ans, x: g * (y0(x) - yn(2, x)) / 2.0, "Y₁({0})",
            "(Y₀({0}) − Y₂({0}))/2", _on(0.2, 20.0))
jn = entry(
    _sp.jn, "jn",
    vjps=[_order_rule("jn"), lambda g, ans, n, x: unbroadcast(g * (jn(n - 1, x) - jn(n + 1, x)) / 2.0, x)],
    formula=Formula("{out} = J_{0}({1})", {1: "{1}̄ = {out}̄ ∘ (J_({0}−1)({1}) − J_({0}+1)({1}))/2"},
                    broadcasts=True),
    samples=_order_first((0, 2, 5), 0.2, 20.0),
)
yn = entry(
    _sp.yn, "yn",
    vjps=[_order_rule("yn"), lambda g, ans, n, x: unbroadcast(g * (yn(n - 1, x) - yn(n + 1, x)) / 2.0, x)],
    formula=Formula("{out} = Y_{0}({1})", {1: "{1}̄ = {out}̄ ∘ (Y_({0}−1)({1}) − Y_({0}+1)({1}))/2"},
                    broadcasts=True),
    samples=_order_first((0, 2, 5), 0.5, 20.0),
)
i0 = _unary(_sp.i0, "i0", lambda g, ans, x: g * i1(x), "I₀({0})", "I₁({0})", _on(0.2, 10.0))
i1 = _unary(_sp.i1, "i1", lambda g, ans, x: g * (i0(x) + iv(2, x)) / 2.0, "I₁({0})",
            "(I₀({0}) + I₂({0}))/2", _on(0.2, 10.0))
iv = entry(
    _sp.iv, "iv",
    vjps=[_order_rule("iv"), lambda g, ans, v, x: unbroadcast(g * (iv(v - 1, x) + iv(v + 1, x)) / 2.0, x)],
    formula=Formula("{out} = I_{0}({1})", {1: "{1}̄ = {out}̄ ∘ (I_({0}−1)({1}) + I_({0}+1)({1}))/2"},
                    broadcasts=True),
    samples=_order_first((0, 1.5, 4), 0.2, 10.0),
)
ive = entry(
    _sp.ive, "ive",
    vjps=[_order_rule("ive"),
          lambda g, ans, v, x: unbroadcast(g * ((ive(v - 1, x) + ive(v + 1, x)) / 2.0 - sign_of(x) * ans), x)],
    saves_ans=True,
    formula=Formula("{out} = I_{0}({1}) e^(−|{1}|)",
                    {1: "{1}̄ = {out}̄ ∘ ((ive_({0}−1)({1}) + ive_({0}+1)({1}))/2 − sign({1}) {out})"},
                    broadcasts=True),
    samples=lambda r: [Sample(v, r.uniform(-8.0, 8.0, size=(3, 4)), wrt=(1,)) for v in (0, 3)]
    + [Sample(2.5, r.uniform(0.5, 8.0, size=(4,)), wrt=(1,))],
)

# ------------------------------------------------------------ error function ----
# erf′(x) = 2/√π e^(−x²);  erfinv′(y) = √π/2 e^(erfinv(y)²)

erf = _unary(_sp.erf, "erf", lambda g, ans, x: g * (2.0 / _SQRT_PI) * fnp.exp(-x * x), "erf({0})",
             "2/√π e^(−{0}²)", _on(-3.0, 3.0))
erfc = _unary(_sp.erfc, "erfc", lambda g, ans, x: g * (-2.0 / _SQRT_PI) * fnp.exp(-x * x),
              "erfc({0})", "(−2/√π e^(−{0}²))", _on(-3.0, 3.0))
erfinv = _unary(_sp.erfinv, "erfinv", lambda g, ans, x: g * (_SQRT_PI / 2.0) * fnp.exp(ans * ans),
                "erfinv({0})", "√π/2 e^({out}²)", _on(-0.95, 0.95), saves_ans=True)
erfcinv = _unary(_sp.erfcinv, "erfcinv",
                 lambda g, ans, x: g * (-_SQRT_PI / 2.0) * fnp.exp(ans * ans),
                 "erfcinv({0})", "(−√π/2 e^({out}²))", _on(0.05, 1.95), saves_ans=True)

# --------------------------------------------------------------- logit, expit ----
# logit(p) = log(p/(1−p)):  p̄ = ȳ / (p(1−p));  expit(x) = 1/(1+e⁻ˣ):  x̄ = ȳ y(1−y)

logit = _unary(_sp.logit, "logit", lambda g, ans, x: g / (x * (1.0 - x)), "logit({0})",
               "1/({0}(1−{0}))", _on(0.1, 0.9))


def _expit(x):
    """σ(x): fastgrad's sigmoid kernel on float arrays (within 2 ulp of SciPy's expit, in a
    third of its time), SciPy's expit otherwise."""
    if type(x) is onp.ndarray and x.dtype.kind == "f" and x.ndim:
        return _ops._sigmoid(x)
    return _sp.expit(x)


# the rule is the sigmoid's: one kernel pass on arrays, the sigmoid_backward primitive when recorded
expit = _unary(_expit, "expit", _ops._sigmoid_vjp, "expit({0})", "{out} ∘ (1 − {out})",
               _on(-4.0, 4.0), saves_ans=True, saves_args=False)

# ----------------------------------------------------------------- logsumexp ----


def _lse_inputs(a, b):
    a = onp.asarray(a)
    if b is not None:
        b = onp.asarray(b)
        if a.shape != b.shape:
            a, b = onp.broadcast_arrays(a, b)
        if (b == 0).any():  # a zero weight drops its term, even an infinite or NaN one (as SciPy)
            a = onp.where(b == 0, -onp.inf, a)
    if a.ndim == 0:
        a = a.reshape(1)
        b = b if b is None else b.reshape(1)
    return a, b


def _logsumexp(a, b, axis, keepdims, return_sign):
    """log |Σ b eᵃ| over ``axis`` (NaN where the sum is negative, unless ``return_sign``),
    shifted by the largest term so nothing overflows."""
    a, b = _lse_inputs(a, b)
    if a.size == 0:  # (−∞, or SciPy's error for an axis of length 0)
        out = _sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
        return out[0] if return_sign else out
    m, s = _shifted_sum(a, b, axis, keepdims)
    if return_sign:
        s = onp.abs(s)
    with onp.errstate(divide="ignore", invalid="ignore"):
        out = onp.log(s)
    out += m if keepdims else onp.squeeze(m, axis=axis)
    return out[()] if out.ndim == 0 else out


def _shifted_sum(a, b, axis, keepdims):
    """(m, Σ b e^(a − m)) with m the largest a over ``axis`` (0 where that is infinite)."""
    m = onp.amax(a, axis=axis, keepdims=True)
    if not onp.isfinite(m).all():
        m = onp.where(onp.isfinite(m), m, 0)
    terms = onp.exp(a - m)
    if b is not None:
        terms *= b
    return m, onp.sum(terms, axis=axis, keepdims=keepdims)


def _lse_rule(arg):
    def rule(g, ans, a, b, axis, keepdims, return_sign):
        shape = onp.broadcast_shapes(onp.shape(value(a)), () if b is None else onp.shape(value(b)))
        shape = shape or (1,)  # a 0-d input is reduced as a vector of one
        if not keepdims:
            ans = reshape(ans, keepdims_shape(shape, axis))
            g = reshape(g, keepdims_shape(shape, axis))
        e = fnp.exp(a - ans)  # ∂y/∂(b eᵃ) for each term: 1/Σ = e^(−y)
        if return_sign and b is not None:  # y = log |Σ|: one more factor, the sum's sign
            e = e * onp.sign(onp.sum(value(b) * value(e), axis=axis, keepdims=True))
        if arg == 0:
            return unbroadcast(g * e if b is None else g * e * b, a)
        return unbroadcast(g * e, b)

    return rule


# y = log Σ b eᵃ:  ā = ȳ b eᵃ⁻ʸ,  b̄ = ȳ eᵃ⁻ʸ  (ȳ repeated over the reduced axes)
_logsumexp_prim = entry(
    _logsumexp, "logsumexp", vjps=[_lse_rule(0), _lse_rule(1)], saves_ans=True,
    formula=Formula("{out} = log Σ {1} e^{0}", {0: "{0}̄ = {out}̄ ∘ {1} e^({0} − {out})",
                                                1: "{1}̄ = {out}̄ ∘ e^({0} − {out})"},
                    macs=lambda out, args: (3 * _size(args[0]), {0: 2 * _size(args[0]),
                                                                 1: 2 * _size(args[0])})),
    samples=lambda r: [Sample(r.normal(size=(3, 4)), None, None, False, False),
                       Sample(r.normal(size=(3, 4)), None, 1, True, False),
                       Sample(r.normal(size=(2, 3, 4)), None, (0, 2), False, False),
                       Sample(r.normal(size=(3, 4)), r.uniform(0.5, 2.0, size=(4,)), 0, False, False),
                       Sample(r.normal(size=(4,)), onp.array([1.0, -0.5, 2.0, -0.3]), None, False, True)],
)


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log Σ b eᵃ over ``axis``, as ``scipy.special.logsumexp`` (``return_sign``: the pair
    (log |Σ b eᵃ|, sign), the sign a constant). Differentiable in ``a`` and in ``b``."""
    if isinstance(axis, list):
        axis = tuple(axis)
    out = _logsumexp_prim(a, b, axis, keepdims, return_sign)
    if not return_sign:
        return out
    a_, b_ = _lse_inputs(value(a), None if b is None else value(b))
    if a_.size == 0:
        return out, _sp.logsumexp(a_, axis=axis, b=b_, keepdims=keepdims, return_sign=True)[1]
    sign = onp.sign(_shifted_sum(a_, b_, axis, keepdims)[1])
    return out, (sign[()] if sign.ndim == 0 else sign)
