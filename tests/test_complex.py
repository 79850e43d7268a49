"""Complex numbers through the tape, with autograd's convention.

For f(z) = u(x, y) + i v(x, y) the reverse rules give v̄ f'(z) for holomorphic
primitives and, in general, vjp(ḡ) = conj(J_Rᵀ conj(ḡ)) (J_R the Jacobian of (u, v) by
(x, y)); forward mode is J_R v. fastgrad derives forward mode from the reverse pass, so
the tests of ``make_jvp`` come first: closed forms that always run, then autograd itself
on the same functions (skipped only when autograd is not installed).
"""

import numpy as onp
import pytest

import fastgrad as fg
import fastgrad.numpy as fnp

try:
    import autograd
    import autograd.numpy as anp
except ImportError:  # optional: the comparison with autograd itself
    autograd = anp = None

Z = 0.3 + 0.7j
V = 1.1 - 0.4j


def close(a, b, tol=1e-10):
    onp.testing.assert_allclose(onp.asarray(a), onp.asarray(b), rtol=tol, atol=tol)


def jvp(f, x, v):
    return fg.make_jvp(f)(x)(v)[1]


# ------------------------------------------------------------ closed forms (always run) --


def test_jvp_of_a_holomorphic_function_is_the_complex_derivative_times_v():
    f = lambda z: fnp.sin(z) * z  # noqa: E731
    close(jvp(f, Z, V), (onp.cos(Z) * Z + onp.sin(Z)) * V)
    close(jvp(lambda z: 1.0 / z, Z, V), -V / Z**2)
    close(jvp(fnp.exp, Z, V), onp.exp(Z) * V)
    close(jvp(fnp.log, Z, V), V / Z)


def test_jvp_of_non_holomorphic_functions_is_the_real_jacobian_times_v():
    close(jvp(fnp.conj, Z, V), onp.conj(V))
    close(jvp(fnp.real, Z, V), V.real)
    close(jvp(fnp.imag, Z, V), V.imag)
    close(jvp(fnp.abs, Z, V), (onp.conj(Z) * V).real / abs(Z))
    # |z|² = x² + y²: d = 2 (x vx + y vy)
    close(jvp(lambda z: fnp.real(z * fnp.conj(z)), Z, V), 2 * (Z.real * V.real + Z.imag * V.imag))
    # arg z = atan2(y, x): d = (x vy − y vx) / |z|²
    close(jvp(fnp.angle, Z, V), (Z.real * V.imag - Z.imag * V.real) / abs(Z) ** 2)


def test_jvp_between_real_and_complex_values():
    c = 2.0 - 3.0j
    close(jvp(lambda x: x * c, 0.5, 0.25), 0.25 * c)  # real in, complex out
    x = onp.array([0.3, -1.2, 0.8])
    v = onp.array([1.0, 0.5, -2.0])
    close(jvp(lambda x: fnp.fft.fft(x), x, v), onp.fft.fft(v))  # linear: J v = f(v)
    close(jvp(lambda z: fnp.abs(z) ** 2, Z, 1.0), 2 * Z.real)  # complex in, real out
    # the tangent lives in the output's space: real for a real output
    assert onp.isrealobj(jvp(fnp.abs, Z, V))
    assert onp.iscomplexobj(jvp(lambda x: x * c, 0.5, 0.25))


def test_vjp_conventions():
    # holomorphic: ḡ f'(z), no conjugation
    vjp, _ = fg.make_vjp(lambda z: fnp.sin(z) * z)(Z)
    close(vjp(V), V * (onp.cos(Z) * Z + onp.sin(Z)))
    # conj: conj(ḡ)
    vjp, _ = fg.make_vjp(fnp.conj)(Z)
    close(vjp(V), onp.conj(V))
    # real-valued loss of a complex input: ∂L/∂x − i ∂L/∂y
    L = lambda z: fnp.abs(z) ** 2  # noqa: E731
    close(fg.grad(L)(Z), 2 * onp.conj(Z))


def test_real_input_gets_the_real_part_of_its_signal():
    # f(x) = |x (1 + i)|: the derivative of √2 |x|, a real number, on both faces
    close(fg.grad(lambda x: fnp.abs(x * (1 + 1j)))(1.5), onp.sqrt(2.0))
    x = fg.tensor(1.5, requires_grad=True)
    abs(x * (1 + 1j)).backward()
    close(x.grad, onp.sqrt(2.0))
    assert x.grad.dtype == onp.float64
    g = fg.grad(lambda x: fnp.sum(fnp.real(x * (2 - 1j)) ** 2))(onp.array([0.5, -1.0]))
    assert g.dtype == onp.float64
    close(g, 2 * 4 * onp.array([0.5, -1.0]))


def test_fft_convolution_gives_the_real_gradient():
    rng = onp.random.default_rng(0)
    x, k = rng.normal(size=8), rng.normal(size=8)

    def conv_fft(x):  # circular convolution through complex intermediates
        return fnp.real(fnp.fft.ifft(fnp.fft.fft(x) * fnp.fft.fft(k)))

    def conv_direct(x):
        return fnp.stack([fnp.sum(x * onp.roll(k[::-1], i + 1)) for i in range(8)])

    w = rng.normal(size=8)
    close(conv_fft(x), conv_direct(x))
    g_fft = fg.grad(lambda x: fnp.sum(w * conv_fft(x)))(x)
    g_direct = fg.grad(lambda x: fnp.sum(w * conv_direct(x)))(x)
    assert g_fft.dtype == onp.float64
    close(g_fft, g_direct)
    # and on the Tensor face: a real leaf, complex intermediates
    t = fg.tensor(x, requires_grad=True)
    fnp.sum(w * conv_fft(t)).backward()
    close(t.grad, g_direct)


def test_holomorphic_grad_and_refusals():
    close(fg.holomorphic_grad(lambda z: z**3)(Z), 3 * Z**2)
    with pytest.warns(UserWarning, match="not complex"):
        fg.holomorphic_grad(lambda z: z**3)(0.5)
    with pytest.raises(TypeError, match="complex"):
        fg.grad(lambda x: x * (1.0 + 0.2j))(1.0)  # a complex output has no gradient
    with pytest.raises(TypeError, match="complex"):
        fg.elementwise_grad(lambda x: x * (1.0 + 0.2j))(onp.ones(2))
    with pytest.raises(TypeError, match="complex"):
        fg.tensor(onp.ones(2, complex))  # the Tensor face holds real data
    with pytest.raises(TypeError):
        fg.sigmoid(onp.ones(3, complex))  # and its kernels refuse complex arrays


def test_second_order_through_complex_rules():
    # d/dx of grad: the hessian of |z|² along x is 2 (for the real part of the gradient)
    h = fg.grad(lambda x: fnp.real(fg.grad(lambda z: fnp.abs(z) ** 2)(x * (1 + 0j))))(0.7)
    close(h, 2.0)
    # jvp of a jvp: second derivative of sin along v twice: −sin(z) v²
    inner = lambda z: fg.make_jvp(fnp.sin)(z)(V)[1]  # noqa: E731
    close(jvp(inner, Z, V), -onp.sin(Z) * V * V)


# ------------------------------------------------ against autograd (when installed) --

needs_autograd = pytest.mark.skipif(autograd is None, reason="autograd is not installed")

# f(np, x): written once, run on both libraries' NumPy
FUNCTIONS = {
    "holomorphic": lambda np, z: np.sin(z) * np.exp(z) / (z + 2.0),
    "power": lambda np, z: z**3 - 2 * z**2,
    "conj": lambda np, z: np.conj(z) * z + np.conj(z),
    "abs": lambda np, z: np.abs(z) * z,
    "real_imag": lambda np, z: np.real(z) ** 2 + 1j * np.imag(z) * np.real(z),
    "angle": lambda np, z: np.angle(z) * np.abs(z),
    "sum_abs2": lambda np, z: np.sum(np.abs(z) ** 2),
    "var": lambda np, z: np.var(z),
    "std": lambda np, z: np.std(z, axis=0),
    "dot": lambda np, z: np.dot(z, np.conj(z)),
    "matmul": lambda np, z: np.matmul(np.reshape(z, (2, 2)), np.reshape(np.conj(z), (2, 2))),
    "fft": lambda np, z: np.fft.fft(z) * np.fft.ifft(np.conj(z)),
    "tanh_log": lambda np, z: np.tanh(z) + np.log(z + 3.0),
    "prod": lambda np, z: np.prod(z),
    "mean_max": lambda np, z: np.mean(z) + np.max(np.real(z)),
    "to_real": lambda np, z: np.abs(np.sum(z * np.array([1.0, 2.0, -1.0, 0.5]))),
}


def _points(seed):
    r = onp.random.default_rng(seed)
    return r.normal(size=4) + 1j * r.normal(size=4), r.normal(size=4) + 1j * r.normal(size=4)


@needs_autograd
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_make_jvp_agrees_with_autograds_forward_mode(name):
    f = FUNCTIONS[name]
    for seed in range(3):
        z, v = _points(seed)
        want_value, want = _autograd_jvp(lambda z: f(anp, z), z, v)
        got_value, got = fg.make_jvp(lambda z: f(fnp, z))(z)(v)
        close(got_value, want_value)
        close(got, want, tol=1e-9)
        assert onp.result_type(got) == onp.result_type(want)
    # a real input, its tangent real
    x, v = onp.random.default_rng(9).normal(size=(2, 4))
    close(fg.make_jvp(lambda z: f(fnp, z))(x)(v)[1], _autograd_jvp(lambda z: f(anp, z), x, v)[1],
          tol=1e-9)


def _autograd_jvp(f, x, v):
    """autograd's forward mode; where it has no forward rule (its FFTs), its vjp of the vjp
    (make_jvp_reversemode), which equals forward mode wherever both exist (checked below)."""
    try:
        return autograd.make_jvp(f)(x)(v)
    except NotImplementedError:
        from autograd.differential_operators import make_jvp_reversemode

        return f(x), make_jvp_reversemode(f)(x)(v)


@needs_autograd
def test_autograds_vjp_of_vjp_is_its_forward_mode():
    from autograd.differential_operators import make_jvp_reversemode

    z, v = _points(1)
    for name in ("holomorphic", "conj", "abs", "var", "to_real"):
        f = lambda z: FUNCTIONS[name](anp, z)  # noqa: E731
        close(make_jvp_reversemode(f)(z)(v), autograd.make_jvp(f)(z)(v)[1], tol=1e-9)


@needs_autograd
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_make_vjp_agrees_with_autograd(name):
    f = FUNCTIONS[name]
    for seed in range(3):
        z, _ = _points(seed)
        vjp_a, y = autograd.make_vjp(lambda z: f(anp, z))(z)
        vjp_f, _ = fg.make_vjp(lambda z: f(fnp, z))(z)
        r = onp.random.default_rng(seed + 10)
        u = r.normal(size=onp.shape(y)) + (1j * r.normal(size=onp.shape(y)) if onp.iscomplexobj(y) else 0)
        want, got = vjp_a(u), vjp_f(u)
        close(got, want, tol=1e-9)
        assert onp.result_type(got) == onp.result_type(want)


@needs_autograd
@pytest.mark.parametrize("name", ["holomorphic", "abs", "angle", "var", "fft", "to_real"])
def test_second_order_agrees_with_autograd(name):
    f = FUNCTIONS[name]
    z, v = _points(4)

    def grad_of_jvp(lib, np):  # d/dz Re Σ jvp(z, v)²: forward over reverse over ...
        def inner(z):
            t = lib.make_jvp(lambda z: f(np, z))(z)(v)[1]
            return np.sum(np.real(t * np.conj(t)))

        return lib.grad(inner)(z)

    if name == "fft":  # autograd has no forward rule for its FFTs: its vjp of the vjp
        from autograd.differential_operators import make_jvp_reversemode

        def inner(z):
            t = make_jvp_reversemode(lambda z: f(anp, z))(z)(v)
            return anp.sum(anp.real(t * anp.conj(t)))

        close(grad_of_jvp(fg, fnp), autograd.grad(inner)(z), tol=1e-8)
        return
    close(grad_of_jvp(fg, fnp), grad_of_jvp(autograd, anp), tol=1e-8)
