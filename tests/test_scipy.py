"""fastgrad.scipy: values against SciPy itself, gradients against central finite
differences of SciPy's own functions (independent of the rules), refusals by name.

tests/test_registry.py walks every primitive of fastgrad.scipy on its samples (rules and
their derivatives, compile's refusal); this file checks the public functions as users
call them: keyword arguments, broadcasting, SciPy's shapes and edge values, the
compositions (loc/scale, mvn's parameter forms, dirichlet's left-out component), odeint's
containers and time points.
"""

import subprocess
import sys

import numpy as onp
import pytest
import scipy.integrate as si
import scipy.linalg as sla
import scipy.signal as ssig
import scipy.special as sp
import scipy.stats as st
from _numeric import numeric_grad

import fastgrad as fg
import fastgrad.numpy as np
import fastgrad.scipy.linalg as fla
import fastgrad.scipy.signal as fsig
import fastgrad.scipy.special as fsp
import fastgrad.scipy.stats as fst
from fastgrad.scipy import integrate, misc

rng = onp.random.RandomState(3)
R = rng.randn


def U(low, high, *shape):
    return rng.uniform(low, high, size=shape)


def check_grad(fun, reference, args, argnum, rtol=1e-5, atol=1e-7, **kwargs):
    """fastgrad's gradient of Σ u ∘ fun(args) against central differences of the same
    sum of ``reference`` (SciPy's function): independent of the rules."""
    u = onp.random.RandomState(11).randn(*onp.shape(reference(*args, **kwargs)))

    def loss(x):
        a = list(args)
        a[argnum] = x
        return np.sum(u * fun(*a, **kwargs))

    got = fg.grad(loss)(onp.asarray(args[argnum], dtype=float))
    want = numeric_grad(lambda *a: float(onp.sum(u * reference(*a, **kwargs))), list(args), argnum)
    onp.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ------------------------------------------------------------------- special --

UNARY = [
    ("gammaln", U(0.3, 4.0, 3, 2)), ("digamma", U(0.3, 3.0, 4)), ("psi", U(0.3, 3.0, 4)),
    ("gamma", U(0.3, 3.0, 4)), ("rgamma", U(0.3, 3.0, 4)), ("gammasgn", U(-2.9, 3.0, 5)),
    ("erf", U(-3, 3, 4)), ("erfc", U(-3, 3, 4)), ("erfinv", U(-0.95, 0.95, 4)),
    ("erfcinv", U(0.05, 1.95, 4)), ("expit", U(-5, 5, 3, 2)), ("logit", U(0.1, 0.9, 4)),
    ("j0", U(0.2, 20, 4)), ("j1", U(0.2, 20, 4)), ("y0", U(0.2, 20, 4)), ("y1", U(0.2, 20, 4)),
    ("i0", U(0.2, 10, 4)), ("i1", U(0.2, 10, 4)),
]


@pytest.mark.parametrize("name,x", UNARY, ids=[n for n, _ in UNARY])
def test_unary_special_values_and_gradients(name, x):
    f, ref = getattr(fsp, name), getattr(sp, name)
    if name == "expit":  # fastgrad's sigmoid kernel on float arrays: within 2 ulp of SciPy's
        onp.testing.assert_allclose(f(x), ref(x), rtol=4.5e-16, atol=0)
        onp.testing.assert_allclose(f(onp.float32(x)), ref(onp.float32(x)), rtol=2.5e-7, atol=0)
        assert f(0.3) == ref(0.3) and f(onp.float32(x)).dtype == onp.float32
    else:
        onp.testing.assert_array_equal(f(x), ref(x))  # SciPy's own ufunc on plain arrays
    onp.testing.assert_allclose(f(fg.tensor(x))._data, ref(x), rtol=4.5e-16, atol=0)
    check_grad(f, ref, [x], 0)
    # second derivative: d/dx of f′ against differences of f′ (from the first check)
    d1 = fg.elementwise_grad(f)
    want = (d1(x + 1e-5) - d1(x - 1e-5)) / 2e-5
    onp.testing.assert_allclose(fg.elementwise_grad(d1)(x), want, rtol=1e-4, atol=1e-6)


ORDERED = [("polygamma", [0, 1, 3], U(0.3, 3, 4)), ("jn", [0, 2, 5], U(0.2, 20, 4)),
           ("yn", [0, 2, 5], U(0.5, 20, 4)), ("iv", [0, 1.5, 4], U(0.2, 10, 4)),
           ("ive", [0, 2.5], U(-8, 8, 4))]


@pytest.mark.parametrize("name,orders,x", ORDERED, ids=[n for n, _, _ in ORDERED])
def test_special_with_an_order(name, orders, x):
    f, ref = getattr(fsp, name), getattr(sp, name)
    for n in orders:
        if name == "ive" and n != int(n):
            x = onp.abs(x)
        onp.testing.assert_array_equal(f(n, x), ref(n, x))
        check_grad(f, ref, [n, x], 1)
    with pytest.raises(NotImplementedError, match=f"{name}: no derivative with respect to its order"):
        fg.grad(lambda n: np.sum(f(n, x)))(1.0)


def test_beta_family():
    a, b, x = U(0.5, 3, 4), U(0.5, 3, 3, 4), U(0.05, 0.95, 3, 4)
    for f, ref in [(fsp.beta, sp.beta), (fsp.betaln, sp.betaln)]:
        onp.testing.assert_array_equal(f(a, b), ref(a, b))
        check_grad(f, ref, [a, b], 0)
        check_grad(f, ref, [a, b], 1)
    onp.testing.assert_array_equal(fsp.betainc(a, b, x), sp.betainc(a, b, x))
    check_grad(fsp.betainc, sp.betainc, [a, b, x], 2)
    check_grad(fsp.betainc, sp.betainc, [U(50, 80, 4), U(60, 90, 4), U(0.4, 0.5, 4)], 2)  # B underflows
    for argument, position in (("a", 0), ("b", 1)):
        args = [a, b, x]

        def f(v, position=position, args=args):
            args[position] = v
            return np.sum(fsp.betainc(*args))

        with pytest.raises(NotImplementedError, match=f"betainc: no derivative with respect to {argument}"):
            fg.grad(f)(args[position])


def test_incomplete_gamma_and_multigammaln():
    for f, ref in [(fsp.gammainc, sp.gammainc), (fsp.gammaincc, sp.gammaincc)]:
        for a in (1, U(0.5, 3, 3, 1), 0.7):
            x = U(0.3, 3, 3, 4)
            onp.testing.assert_array_equal(f(a, x), ref(a, x))
            check_grad(f, ref, [a, x], 1)
        with pytest.raises(NotImplementedError, match="no derivative with respect to a"):
            fg.grad(lambda a, f=f: np.sum(f(a, 1.5)))(2.0)
    for d in (1, 2, 3):
        a = U(4.0, 5.0, 2, 3)
        onp.testing.assert_array_equal(fsp.multigammaln(a, d), sp.multigammaln(a, d))
        check_grad(fsp.multigammaln, sp.multigammaln, [a, d], 0)
    assert fg.grad(fsp.multigammaln)(4.5, 2) == pytest.approx(sp.digamma(4.5) + sp.digamma(4.0))


def test_xlogy_xlog1py():
    x, y = R(3, 4), U(0.5, 2, 3, 4)
    for f, ref in [(fsp.xlogy, sp.xlogy), (fsp.xlog1py, sp.xlog1py)]:
        onp.testing.assert_array_equal(f(x, y), ref(x, y))
        check_grad(f, ref, [x, y], 0)
        check_grad(f, ref, [x, y], 1)


LSE_CASES = [
    dict(a=R(4)), dict(a=R(3, 4), axis=1), dict(a=R(3, 4), axis=0, keepdims=True),
    dict(a=R(2, 3, 4), axis=(0, 2)), dict(a=R(2, 3, 4), axis=(1, 2), keepdims=True),
    dict(a=R(3, 4), axis=-1, b=U(0.5, 2, 4)), dict(a=R(3, 4), b=U(0.5, 2, 3, 1), axis=None),
    dict(a=onp.array(1.7)), dict(a=onp.array([1.1])),
]


@pytest.mark.parametrize("case", LSE_CASES, ids=[str(i) for i in range(len(LSE_CASES))])
def test_logsumexp(case):
    case = dict(case)
    a = case.pop("a")
    want = sp.logsumexp(a, **case)
    got = fsp.logsumexp(a, **case)
    onp.testing.assert_allclose(got, want, rtol=1e-14)
    assert onp.shape(got) == onp.shape(want) and type(got) is type(want)
    check_grad(fsp.logsumexp, sp.logsumexp, [a], 0, **case)
    if "b" in case:
        b = case.pop("b")
        check_grad(lambda b, a=a: fsp.logsumexp(a, b=b, **case),
                   lambda b, a=a: sp.logsumexp(a, b=b, **case), [b], 0)
    assert misc.logsumexp is fsp.logsumexp


def test_logsumexp_signs_infinities_and_forward_mode():
    a, b = R(2, 5), onp.array([1.0, -2.0, 0.5, -0.1, 0.3])
    got, sign = fsp.logsumexp(a, axis=1, b=b, return_sign=True)
    want, want_sign = sp.logsumexp(a, axis=1, b=b, return_sign=True)
    onp.testing.assert_allclose(got, want, rtol=1e-13)
    onp.testing.assert_array_equal(sign, want_sign)
    check_grad(lambda a: fsp.logsumexp(a, axis=1, b=b, return_sign=True)[0],
               lambda a: sp.logsumexp(a, axis=1, b=b, return_sign=True)[0], [a], 0)
    with onp.errstate(all="ignore"):
        for x in ([-onp.inf, -onp.inf], [1.0, onp.inf], [onp.nan, 1.0], [-onp.inf, 2.0]):
            onp.testing.assert_array_equal(fsp.logsumexp(onp.array(x)), sp.logsumexp(onp.array(x)))
        assert onp.isnan(fsp.logsumexp(onp.array([1.0, 2.0]), b=onp.array([1.0, -2.0])))
        onp.testing.assert_array_equal(  # a zero weight drops its term, even an infinite one
            fsp.logsumexp(onp.array([onp.inf, 1.0]), b=onp.array([0.0, 1.0])), 1.0)
    # forward mode (derived from the reverse pass) and grad of grad
    x, v = R(3, 4), R(3, 4)
    f = lambda x: fsp.logsumexp(x, axis=1, keepdims=True)  # noqa: E731
    _, jv = fg.make_jvp(f)(x)(v)
    want = (sp.logsumexp(x + 1e-6 * v, axis=1, keepdims=True)
            - sp.logsumexp(x - 1e-6 * v, axis=1, keepdims=True)) / 2e-6
    onp.testing.assert_allclose(jv, want, rtol=1e-6)
    h = fg.hessian(lambda x: fsp.logsumexp(x))(x[0])
    p = onp.exp(x[0] - sp.logsumexp(x[0]))
    onp.testing.assert_allclose(h, onp.diag(p) - onp.outer(p, p), atol=1e-12)  # closed form


# --------------------------------------------------------------------- stats --

NORM = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]


@pytest.mark.parametrize("name", NORM)
def test_norm(name):
    f, ref = getattr(fst.norm, name), getattr(st.norm, name)
    x, loc, scale = R(4, 3), R(1, 3), U(0.5, 2, 4, 1)
    onp.testing.assert_allclose(f(x, loc, scale), ref(x, loc, scale), rtol=1e-13)
    onp.testing.assert_allclose(f(x, loc=loc, scale=scale), ref(x, loc, scale), rtol=1e-13)
    assert type(f(0.3)) is type(ref(0.3)) and f(0.3) == pytest.approx(ref(0.3), rel=1e-14)
    for i in range(3):
        check_grad(f, ref, [x, loc, scale], i)
    # keyword arguments are traced too
    check_grad(lambda s: f(x, loc=loc, scale=s), lambda s: ref(x, loc, s), [scale], 0)
    with onp.errstate(all="ignore"):  # SciPy's answers for a bad scale and at infinity
        bad = onp.array([1.0, 0.0, -1.0])
        onp.testing.assert_array_equal(f(0.5, 0.0, bad), ref(0.5, 0.0, bad))
        inf = onp.array([-onp.inf, onp.inf, onp.nan])
        onp.testing.assert_array_equal(f(inf), ref(inf))
    assert f(onp.float32([0.5, 1.0])).dtype == onp.float32  # (SciPy answers float64)


@pytest.mark.parametrize("name", ["pdf", "logpdf", "cdf", "logcdf"])
def test_t(name):
    f, ref = getattr(fst.t, name), getattr(st.t, name)
    x, df, loc, scale = R(4, 3), U(2.1, 6, 1, 3), R(4, 3), U(0.5, 2, 4, 1)
    onp.testing.assert_allclose(f(x, df, loc, scale), ref(x, df, loc, scale), rtol=1e-13)
    for i in (0, 2, 3) if "cdf" in name else (0, 1, 2, 3):
        check_grad(f, ref, [x, df, loc, scale], i)
    if "cdf" in name:
        with pytest.raises(NotImplementedError, match=f"t.{name}: no derivative with respect to df"):
            fg.grad(lambda d: np.sum(f(x, d, loc, scale)))(df)


LOC = -0.3
STANDARD = [("beta", ["pdf", "logpdf", "cdf"], lambda: [U(0.05, 0.95, 3, 4), U(1.1, 4, 4), U(0.6, 4, 3, 1)]),
            ("gamma", ["pdf", "logpdf", "cdf"], lambda: [U(0.3, 4, 3, 4), U(0.6, 4, 4)]),
            ("chi2", ["pdf", "logpdf", "cdf"], lambda: [U(0.3, 4, 3, 4), U(0.6, 4, 4)])]


@pytest.mark.parametrize("dist,names,make", STANDARD, ids=[d for d, _, _ in STANDARD])
def test_shape_family(dist, names, make):
    for name in names:
        f, ref = getattr(getattr(fst, dist), name), getattr(getattr(st, dist), name)
        args = make()
        onp.testing.assert_allclose(f(*args), ref(*args), rtol=1e-13)
        for i in range(len(args) if name != "cdf" else 1):
            check_grad(f, ref, args, i)
        # loc and scale, composed: value and gradient of each against SciPy's
        scale = U(1.1, 1.6, 4)
        x = args[0] * scale + LOC
        onp.testing.assert_allclose(f(x, *args[1:], loc=LOC, scale=scale),
                                    ref(x, *args[1:], loc=LOC, scale=scale), rtol=1e-12)
        check_grad(lambda s, x=x, args=args, f=f: f(x, *args[1:], loc=LOC, scale=s),
                   lambda s, x=x, args=args, ref=ref: ref(x, *args[1:], loc=LOC, scale=s), [scale], 0, rtol=1e-4)
        check_grad(lambda x, args=args, f=f, s=scale: f(x, *args[1:], loc=LOC, scale=s),
                   lambda x, args=args, ref=ref, s=scale: ref(x, *args[1:], loc=LOC, scale=s), [x], 0, rtol=1e-4)
        with onp.errstate(all="ignore"):
            onp.testing.assert_array_equal(f(x, *args[1:], scale=-1.0), ref(x, *args[1:], scale=-1.0))
    with pytest.raises(NotImplementedError, match=f"{dist}.cdf: no derivative with respect to"):
        args = make()
        fg.grad(lambda p: np.sum(getattr(fst, dist).cdf(args[0], p, *args[2:])))(args[1])


def test_chi2_derivative_at_a_non_integer_df():
    # autograd answers 0 here; the derivative of SciPy's chi2 is not 0
    x, df = U(0.5, 3, 4), onp.array([1.5, 2.5, 3.3, 0.8])
    check_grad(fst.chi2.logpdf, st.chi2.logpdf, [x, df], 0)
    check_grad(fst.chi2.pdf, st.chi2.pdf, [x, df], 1)


def test_poisson():
    k, mu = onp.round(U(0, 6, 4, 3)), U(0.5, 4, 4, 1)
    k_odd = onp.array([0.0, 1.5, -1.0, 3.0])
    for name in ["pmf", "logpmf", "cdf"]:
        f, ref = getattr(fst.poisson, name), getattr(st.poisson, name)
        onp.testing.assert_array_equal(f(k, mu), ref(k, mu))
        check_grad(f, ref, [k, mu], 1)
        if name != "logpmf":  # p = 0 (log p = −∞) off the counts
            check_grad(f, ref, [k_odd, U(0.5, 4, 4)], 1)
        onp.testing.assert_array_equal(f(k, mu, loc=1), ref(k, mu, loc=1))
        with pytest.raises(NotImplementedError, match=f"poisson.{name}: no derivative with respect to k"):
            fg.grad(lambda k, f=f: np.sum(f(k, mu)))(k)


def test_dirichlet():
    alpha = U(1.2, 3, 4)
    x = rng.dirichlet(alpha)
    xs = rng.dirichlet(alpha, size=3).T  # SciPy: the components along the first axis
    for name in ["pdf", "logpdf"]:
        f, ref = getattr(fst.dirichlet, name), getattr(st.dirichlet, name)
        for xx in (x, xs, xs[:-1], x[:-1]):
            onp.testing.assert_allclose(f(xx, alpha), ref(xx, alpha), rtol=1e-12)
            check_grad(f, ref, [xx, alpha], 1)
        # along the simplex: x ↦ x / Σx, as autograd's test
        check_grad(lambda x, f=f: f(x / np.sum(x), alpha), lambda x, r=ref: r(x / onp.sum(x), alpha), [x], 0)
        check_grad(f, ref, [x[:-1], alpha], 0)  # the left-out component moves with the others
        with pytest.raises(ValueError, match="simplex"):
            f(x * 1.1, alpha)
    draws = fst.dirichlet.rvs(alpha, size=3)
    assert draws.shape == (3, 4) and onp.allclose(draws.sum(1), 1.0)
    with pytest.raises(NotImplementedError, match="dirichlet.rvs"):
        fg.grad(lambda a: np.sum(fst.dirichlet.rvs(a, size=2)))(alpha)


def _spd(d):
    m = R(d, d)
    return m @ m.T + d * onp.eye(d)


def test_multivariate_normal():
    mvn, ref = fst.multivariate_normal, st.multivariate_normal
    cov, mean = _spd(3), R(3)
    for x in (R(3), R(5, 3), R(2, 1, 3)):
        for name in ("pdf", "logpdf"):
            f, r = getattr(mvn, name), getattr(ref, name)
            onp.testing.assert_allclose(f(x, mean, cov), r(x, mean, cov), rtol=1e-12)
            assert onp.shape(f(x, mean, cov)) == onp.shape(r(x, mean, cov))
            for i in range(3):  # (both read cov's lower triangle: the differences move single entries)
                check_grad(f, r, [x, mean, cov], i, rtol=1e-5)
    skew, x3 = cov + onp.triu(R(3, 3), 1), R(3)  # above the diagonal: read by neither
    onp.testing.assert_allclose(mvn.logpdf(x3, mean, skew), ref.logpdf(x3, mean, skew), rtol=1e-12)
    check_grad(mvn.logpdf, ref.logpdf, [x3, mean, skew], 2)
    g = fg.grad(lambda c: mvn.logpdf(x3, mean, c))(cov)
    onp.testing.assert_array_equal(onp.triu(g, 1), 0.0)  # the gradient lies on the triangle read
    # a symmetric function of the parameters, cov = B Bᵀ: autograd's symmetric convention agrees
    B = R(3, 3) + 2 * onp.eye(3)
    check_grad(lambda B: mvn.logpdf(x3, mean, B @ B.T), lambda B: ref.logpdf(x3, mean, B @ B.T), [B], 0)
    s_inv, r3 = onp.linalg.inv(B @ B.T), x3 - mean
    sym = 0.5 * (s_inv @ onp.outer(r3, r3) @ s_inv - s_inv)  # autograd's gradient in cov
    onp.testing.assert_allclose(fg.grad(lambda B: mvn.logpdf(x3, mean, B @ B.T))(B), 2 * sym @ B, rtol=1e-10)
    # SciPy's other forms: no mean, a number or a diagonal for cov, points of dimension 1
    x, x1 = R(4, 2), R(5)
    onp.testing.assert_allclose(mvn.logpdf(x1), ref.logpdf(x1), rtol=1e-12)
    onp.testing.assert_allclose(mvn.logpdf(x, onp.zeros(2), cov=2.5), ref.logpdf(x, onp.zeros(2), cov=2.5),
                                rtol=1e-12)
    diag = U(0.5, 2, 2)
    m2 = R(2)
    onp.testing.assert_allclose(mvn.pdf(x, m2, diag), ref.pdf(x, m2, diag), rtol=1e-12)
    check_grad(lambda d: mvn.logpdf(x, m2, d), lambda d: ref.logpdf(x, m2, d), [diag], 0)
    check_grad(lambda c: mvn.logpdf(x, onp.ones(2), c), lambda c: ref.logpdf(x, onp.ones(2), c), [2.5], 0)
    onp.testing.assert_allclose(mvn.logpdf(x1, 0.2, 1.7), ref.logpdf(x1, 0.2, 1.7), rtol=1e-12)
    check_grad(lambda x: mvn.logpdf(x, 0.2, 1.7), lambda x: ref.logpdf(x, 0.2, 1.7), [x1], 0)
    with pytest.raises(onp.linalg.LinAlgError, match="multivariate_normal.logpdf: cov of shape"):
        mvn.logpdf(R(3), mean, -cov)
    with pytest.raises(ValueError, match="multivariate_normal: mean of shape"):
        mvn.logpdf(R(3), R(3), _spd(2))
    with pytest.raises(ValueError, match=r"multivariate_normal.logpdf: x of shape \(4, 2\)"):
        mvn.logpdf(x)


def test_multivariate_normal_entropy_and_singular():
    mvn, ref = fst.multivariate_normal, st.multivariate_normal
    cov = _spd(3)
    assert mvn.entropy(R(3), cov) == pytest.approx(ref.entropy(R(3), cov), rel=1e-13)
    check_grad(lambda c: mvn.entropy(None, c), lambda c: ref.entropy(None, c), [cov + onp.triu(R(3, 3), 1)], 0)
    onp.testing.assert_array_equal(fg.grad(lambda m: mvn.entropy(m, cov))(R(3)), onp.zeros(3))
    # allow_singular: x and mean move along the support (elsewhere the log density is −∞)
    sing = onp.diag([1.0, 2.0, 0.0])
    x0, m0 = onp.array([0.3, -0.2, 0.0]), onp.array([0.1, 0.4, 0.0])
    for name in ("pdf", "logpdf"):
        f, r = getattr(mvn, name), getattr(ref, name)
        pad = lambda v: np.concatenate([v, onp.zeros(1)])  # noqa: E731
        pad_np = lambda v: onp.concatenate([v, onp.zeros(1)])  # noqa: E731
        onp.testing.assert_allclose(f(x0, m0, sing, allow_singular=True), r(x0, m0, sing, allow_singular=True))
        check_grad(lambda x, f=f, pad=pad: f(pad(x), m0, sing, allow_singular=True),
                   lambda x, r=r, pad_np=pad_np: r(pad_np(x), m0, sing, allow_singular=True), [x0[:2]], 0)
        check_grad(lambda m, f=f, pad=pad: f(x0, pad(m), sing, allow_singular=True),
                   lambda m, r=r, pad_np=pad_np: r(x0, pad_np(m), sing, allow_singular=True), [m0[:2]], 0)
        with pytest.raises(NotImplementedError, match="multivariate_normal: no derivative with respect to cov"):
            fg.grad(lambda c, f=f: f(x0, m0, c, allow_singular=True))(sing)


# -------------------------------------------------------------------- signal --


@pytest.mark.parametrize("mode", ["full", "valid", "same"])
def test_convolve_matches_scipy(mode):
    for a, b in [(R(5), R(3)), (R(3), R(6)), (R(4), R(4)), (R(6, 5), R(3, 2)), (R(3, 4), R(5, 6)),
                 (R(4, 3, 5), R(2, 2, 2))]:
        want = ssig.convolve(a, b, mode=mode)
        onp.testing.assert_allclose(fsig.convolve(a, b, mode=mode), want, atol=1e-12)
        check_grad(lambda a, b=b: fsig.convolve(a, b, mode=mode), lambda a, b=b: ssig.convolve(a, b, mode=mode), [a], 0)
        check_grad(lambda b, a=a: fsig.convolve(a, b, mode=mode), lambda b, a=a: ssig.convolve(a, b, mode=mode), [b], 0)


def _reference_convolve(A, B, axes, dot_axes, mode):
    """autograd's generalized convolve by loops over SciPy's: other axes of A, other axes
    of B, then the convolved axes; dot axes summed."""
    (ca, cb), (da, db) = axes, dot_axes
    oa = [i for i in range(A.ndim) if i not in ca + da]
    ob = [i for i in range(B.ndim) if i not in cb + db]
    At = onp.transpose(A, oa + da + ca)
    Bt = onp.transpose(B, ob + db + cb)
    sa, sb, sd = At.shape[:len(oa)], Bt.shape[:len(ob)], At.shape[len(oa):len(oa) + len(da)]
    out = None
    for i in onp.ndindex(*sa):
        for j in onp.ndindex(*sb):
            total = sum(ssig.convolve(At[i + d], Bt[j + d], mode=mode) for d in onp.ndindex(*sd))
            if out is None:
                out = onp.zeros(sa + sb + onp.shape(total))
            out[i + j] = total
    return out


GENERAL = [((3, 5), (3, 4), ([1], [0]), ([], [])), ((3, 5), (3, 4), ([], []), ([0], [0])),
           ((3, 5), (3, 4, 2), ([1], [2]), ([0], [0])),
           ((2, 5, 4, 3), (2, 4, 2, 3, 2), ([1, 2], [2, 4]), ([0, 3], [0, 3])),
           ((2, 5, 4, 3), (3, 4, 2, 2, 2), ([1, 2], [2, 4]), ([3, 0], [0, 3])),
           ((3, 3, 2), (3, 2, 3), ([1], [1]), ([0], [2])),
           ((4, 3), (3, 2), ([1, 0], [1, 0]), ([], []))]


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("sa,sb,axes,dot_axes", GENERAL, ids=[str(i) for i in range(len(GENERAL))])
def test_convolve_generalized(sa, sb, axes, dot_axes, method, monkeypatch):
    if method == "fft":  # (large arrays take the FFT path: here every array does)
        monkeypatch.setattr(fsig, "_DIRECT_MAX", 0)
    A, B = R(*sa), R(*sb)
    for mode in ["full", "valid", "same"]:
        if mode == "valid" and not (all(sa[i] >= sb[j] for i, j in zip(*axes))
                                    or all(sb[j] >= sa[i] for i, j in zip(*axes))):
            continue
        want = _reference_convolve(A, B, list(map(list, axes)), list(map(list, dot_axes)), mode)
        got = fsig.convolve(A, B, axes=axes, dot_axes=dot_axes, mode=mode)
        onp.testing.assert_allclose(got, want, atol=1e-12)
        for i in (0, 1):
            check_grad(lambda *ab, m=mode: fsig.convolve(*ab, axes=axes, dot_axes=dot_axes, mode=m),
                       lambda *ab, m=mode: _reference_convolve(*ab, [list(a) for a in axes],
                                                               [list(a) for a in dot_axes], m),
                       [A, B], i)


def test_convolve_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="convolve: in mode 'valid' one array must be at least as large"):
        fsig.convolve(R(3, 5), R(4, 2), mode="valid")
    with pytest.raises(ValueError, match="convolve: mode 'circular'"):
        fsig.convolve(R(3), R(2), mode="circular")
    with pytest.raises(ValueError, match="convolve: dot axes 0 of A"):
        fsig.convolve(R(3, 5), R(4, 2), axes=([1], [1]), dot_axes=([0], [0]))


# ----------------------------------------------------------------- integrate --


def _dynamics(y, t, arg1, arg2):
    return -np.sqrt(t) - y + arg1 - np.mean((y + arg2) ** 2)


def _dynamics_np(y, t, arg1, arg2):
    return -onp.sqrt(t) - y + arg1 - onp.mean((y + arg2) ** 2)


TIGHT = dict(rtol=1e-11, atol=1e-11)


def test_odeint_values_and_gradients():
    y0, t, a1, a2 = R(3), onp.linspace(0.1, 0.5, 4), R(3), R(3)
    want = si.odeint(_dynamics_np, y0, t, (a1, a2), **TIGHT)
    onp.testing.assert_allclose(integrate.odeint(_dynamics, y0, t, (a1, a2), **TIGHT), want, rtol=1e-12)
    ref = lambda y0, t, a1, a2: si.odeint(_dynamics_np, y0, t, (a1, a2), **TIGHT)  # noqa: E731
    fun = lambda y0, t, a1, a2: integrate.odeint(_dynamics, y0, t, (a1, a2), **TIGHT)  # noqa: E731
    for i in range(4):
        check_grad(fun, ref, [y0, t, a1, a2], i, rtol=1e-5, atol=1e-6)


def test_odeint_containers_tfirst_and_second_order():
    def f(t, y, p):  # tfirst, parameters in a dict inside a tuple
        return -p["k"] * y + p["c"] * np.sin(t)

    def f_np(t, y, p):
        return -p["k"] * y + p["c"] * onp.sin(t)

    y0, t, k = R(2), onp.array([0.0, 0.3, 0.9]), U(0.5, 1.5, 2)

    def fun(k, c):
        return integrate.odeint(f, y0, t, args=({"k": k, "c": c},), tfirst=True, **TIGHT)

    def ref(k, c):
        return si.odeint(f_np, y0, t, args=({"k": k, "c": c},), tfirst=True, **TIGHT)

    onp.testing.assert_allclose(fun(k, 0.4), ref(k, 0.4), rtol=1e-12)
    check_grad(fun, ref, [k, 0.4], 0, rtol=1e-5, atol=1e-6)
    check_grad(fun, ref, [k, 0.4], 1, rtol=1e-5, atol=1e-6)
    # grad of grad: d/dk of ⟨w, ∂L/∂y0⟩ through the adjoint's own adjoint
    w = R(2)

    def g_y0(y0, k):
        return fg.grad(lambda y: np.sum(integrate.odeint(lambda y, t, k: -k * y * y, y, t, (k,), **TIGHT)))(y0)

    def h(k):
        return np.sum(w * g_y0(onp.array([0.5, 0.8]), k))

    def h_np(k):
        step = 1e-6
        y = onp.array([0.5, 0.8])
        fd = [(onp.sum(si.odeint(lambda y, t: -k * y * y, y + step * e, t, **TIGHT))
               - onp.sum(si.odeint(lambda y, t: -k * y * y, y - step * e, t, **TIGHT))) / (2 * step)
              for e in onp.eye(2)]
        return onp.sum(w * onp.array(fd))

    assert fg.grad(h)(1.3) == pytest.approx((h_np(1.3 + 1e-4) - h_np(1.3 - 1e-4)) / 2e-4, rel=1e-3)


def test_odeint_forward_mode():
    # make_jvp differentiates the adjoint's vjp again: the tangent of y(t) in y0 and in t
    def f(y, t, k):
        return -k * y * y + np.sin(t)

    def f_np(y, t):
        return -1.3 * y * y + onp.sin(t)

    t, y0 = onp.linspace(0, 1, 4), onp.array([0.5, 0.8])
    for argnum, v in ((0, onp.array([0.3, -1.0])), (1, onp.array([0.0, 0.1, 0.2, 0.3]))):
        fun = lambda y0, t: integrate.odeint(f, y0, t, (1.3,), **TIGHT)  # noqa: E731
        _, tangent = fg.make_jvp(fun, argnum)(y0, t)(v)
        step = [onp.zeros_like(y0), onp.zeros_like(t)]
        step[argnum] = 1e-6 * v
        want = (si.odeint(f_np, y0 + step[0], t + step[1], **TIGHT)
                - si.odeint(f_np, y0 - step[0], t - step[1], **TIGHT)) / 2e-6
        onp.testing.assert_allclose(tangent, want, atol=1e-8)


def test_odeint_refusals():
    p = R(2)

    def closes_over(p):
        return np.sum(integrate.odeint(lambda y, t: -p * y, onp.ones(2), onp.array([0.0, 1.0])))

    with pytest.raises(TypeError, match="odeint: func returned a value that depends on a traced variable"):
        fg.grad(closes_over)(p)
    with pytest.raises(TypeError, match="odeint: args must be a tuple"):
        integrate.odeint(lambda y, t, k: -k * y, onp.ones(2), onp.array([0.0, 1.0]), args=[p])
    y, info = integrate.odeint(lambda y, t: -y, onp.ones(2), onp.array([0.0, 1.0]), full_output=True)
    assert "nst" in info and y.shape == (2, 2)
    with pytest.raises(NotImplementedError, match="odeint: full_output=True has no derivative"):
        fg.grad(lambda y0: np.sum(integrate.odeint(lambda y, t: -y, y0, onp.array([0.0, 1.0]),
                                                   full_output=True)[0]))(onp.ones(2))


# -------------------------------------------------------------------- linalg --


def test_sqrtm_and_sylvester():
    a = _spd(3)
    onp.testing.assert_allclose(fla.sqrtm(a), sla.sqrtm(a), rtol=1e-12)
    check_grad(fla.sqrtm, sla.sqrtm, [a], 0)
    A, B, Q = R(3, 3) + 3 * onp.eye(3), R(3, 3) + 3 * onp.eye(3), R(3, 3)
    onp.testing.assert_allclose(fla.solve_sylvester(A, B, Q), sla.solve_sylvester(A, B, Q), rtol=1e-12)
    for i in range(3):
        check_grad(fla.solve_sylvester, sla.solve_sylvester, [A, B, Q], i)
    # forward mode of sqrtm to second order (the suite's check): jvp of jvp against differences
    v = R(3, 3)
    v = v + v.T
    jvp = lambda a: fg.make_jvp(fla.sqrtm)(a)(v)[1]  # noqa: E731
    want = (sla.sqrtm(a + 1e-5 * v) - sla.sqrtm(a - 1e-5 * v)) / 2e-5
    onp.testing.assert_allclose(jvp(a), want, rtol=1e-6, atol=1e-8)
    second = fg.make_jvp(jvp)(a)(v)[1]
    onp.testing.assert_allclose(second, (jvp(a + 1e-5 * v) - jvp(a - 1e-5 * v)) / 2e-5, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("trans", [0, 1, "T", "C"])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular(trans, lower, unit):
    a = R(4, 4) + 4 * onp.eye(4)  # both triangles filled: only one may be read
    kw = dict(trans=trans, lower=lower, unit_diagonal=unit)
    for b in (R(4), R(4, 2)):
        onp.testing.assert_allclose(fla.solve_triangular(a, b, **kw), sla.solve_triangular(a, b, **kw), rtol=1e-13)
        check_grad(fla.solve_triangular, sla.solve_triangular, [a, b], 0, **kw)
        check_grad(fla.solve_triangular, sla.solve_triangular, [a, b], 1, **kw)


def test_solve_banded_and_cholesky():
    for (l, u), n, bshape in [((1, 1), 5, (5,)), ((2, 1), 4, (4, 3)), ((0, 2), 4, (4,))]:
        ab = R(l + u + 1, n)
        ab[u] += 5.0
        b = R(*bshape)
        onp.testing.assert_allclose(fla.solve_banded((l, u), ab, b), sla.solve_banded((l, u), ab, b), rtol=1e-13)
        check_grad(fla.solve_banded, sla.solve_banded, [(l, u), ab, b], 1)
        check_grad(fla.solve_banded, sla.solve_banded, [(l, u), ab, b], 2)
    a = _spd(4) + onp.triu(R(4, 4), 1)  # not symmetric: each call reads one triangle
    for lower in (False, True):
        a = a.T
        onp.testing.assert_allclose(fla.cholesky(a, lower=lower), sla.cholesky(a, lower=lower), rtol=1e-13)
        check_grad(fla.cholesky, sla.cholesky, [a], 0, lower=lower)
        g = fg.grad(lambda a, lw=lower: np.sum(R(4, 4) * fla.cholesky(a, lower=lw)))(a)
        unread = onp.triu(g, 1) if lower else onp.tril(g, -1)
        onp.testing.assert_array_equal(unread, 0.0)  # the gradient lies on the triangle read


def test_other_scipy_linalg_functions_record_without_a_rule():
    a = _spd(3)
    onp.testing.assert_allclose(fla.expm(a), sla.expm(a))
    assert fla.LinAlgError is sla.LinAlgError
    with pytest.raises(NotImplementedError, match="scipy.linalg.expm"):
        fg.grad(lambda a: np.sum(fla.expm(a)))(a)


# ------------------------------------------------------------- the import ----


def test_import_fastgrad_does_not_import_scipy_special_or_stats():
    code = ("import sys, fastgrad, fastgrad.numpy; "
            "print(sorted(m for m in sys.modules if m.startswith(('scipy.special', 'scipy.stats', "
            "'scipy.integrate', 'scipy.signal', 'fastgrad.scipy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_compile_refuses_a_scipy_primitive_by_name():
    f = fg.compile(fg.grad(lambda x: np.sum(fsp.gammaln(x))))
    with pytest.raises(fg.TracingError, match="'gammaln'"):
        f(U(1, 2, 3))


def test_t_edges_as_scipy():
    with onp.errstate(all="ignore"):
        x = onp.array([-onp.inf, -3.0, 0.0, 2.0, onp.inf, onp.nan])
        for name in ["pdf", "logpdf", "cdf", "logcdf"]:
            f, ref = getattr(fst.t, name), getattr(st.t, name)
            for df, loc, scale in ((3.0, 0.0, 1.0), (onp.inf, 0.5, 2.0), (-1.0, 0.0, 1.0), (2.5, 0.0, 0.0),
                                   (onp.array([1.0, 2.0, onp.inf, 0.5, 4.0, 3.0]), 0.1, 1.5)):
                onp.testing.assert_allclose(f(x, df, loc, scale), ref(x, df, loc, scale), rtol=1e-13)
            assert type(f(0.3, 3.0)) is type(ref(0.3, 3.0))
