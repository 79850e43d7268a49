"""``fastgrad.numpy.fft``: NumPy's discrete Fourier transforms, with derivatives.

Every transform NumPy offers with NumPy's signature (``n``/``s``, ``axis``/``axes``,
``norm``); on plain arrays each is NumPy's own call. On traced values the complex
transforms (fft, ifft, fft2, ifft2, fftn, ifftn) are one registry entry each for the
forward and the inverse (``fftn``, ``ifftn``), the real ones two more (``rfftn``,
``irfftn``), and the shifts two (``fftshift``, ``ifftshift``). Their rules follow
autograd's convention for complex values (fastgrad._functional): the DFT matrix F is
symmetric, so for y = F x the rule is x̄ = F ȳ — the same transform, with the same
``norm``, then cut or zero-padded back to x's shape where ``n``/``s`` changed it.

The real transforms are not complex-linear, and their rules say so:

- y = rfft(x) keeps the frequencies 0 … n//2 of the real x, so x̄ = Re F [ȳ; 0]: ȳ
  zero-padded to length n, transformed, its real part;
- y = irfft(x) reads x as the half of a Hermitian spectrum (the imaginary parts of the
  zero frequency, and of the Nyquist one when n is even, are ignored), so
  x̄_k = c_k ifft(Re ȳ)_k with c_k = 1 at those frequencies and 2 at the others.

Both hold for odd lengths too (autograd refuses those). Repeated axes are refused by
name. hfft, ihfft and the frequency helpers (constants) are NumPy's, hfft and ihfft
recorded without a derivative (a backward through them raises NotImplementedError).
"""

import numpy as onp
import numpy.fft as _fft

from .._ops import getitem, no_macs, shape_of, value
from .._registry import Formula, NotCompiled, Sample, define
from ._elementwise import as_complex, real, real_part
from ._shapes import pad
from ._util import NoRule, traced

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "fftshift", "ifftshift", "hfft", "ihfft", "fftfreq", "rfftfreq"]


def _is_complex(x):
    return onp.iscomplexobj(value(x))


def _fit(g, shape, axes):
    """``g`` cut or zero-padded along ``axes`` to ``shape`` (the adjoint of the transforms'
    own cut-or-pad of their input to ``n``/``s``)."""
    gshape = shape_of(g)
    if tuple(gshape) == tuple(shape):
        return g
    cut = [slice(None)] * len(gshape)
    widths = [(0, 0)] * len(gshape)
    for a in axes:
        if gshape[a] > shape[a]:
            cut[a] = slice(0, shape[a])
        elif gshape[a] < shape[a]:
            widths[a] = (0, shape[a] - gshape[a])
    if any(c != slice(None) for c in cut):
        g = getitem(g, tuple(cut))
    if any(w != (0, 0) for w in widths):
        g = pad(g, widths)
    return g


def _size(shape):
    return int(onp.prod(shape)) if shape else 1


def _fft_macs(out_shape, arg_shapes):
    """≈ N log₂ N multiply-adds for N points, forward and backward (order of magnitude)."""
    n = _size(out_shape)
    cost = int(n * max(onp.log2(max(n, 2)), 1.0))
    return cost, {0: cost}


def _matches(x, y):
    """The rule's result in x's space: real for a real x (autograd's match_complex)."""
    return as_complex(y, x) if _is_complex(x) else real_part(y)


# -------------------------------------------------------------- complex transforms --


def _fftn(x, s, axes, norm):
    return _fft.fftn(x, s, axes, norm)


def _ifftn(x, s, axes, norm):
    return _fft.ifftn(x, s, axes, norm)


def _check_axes(axes, name):
    if len(set(axes)) != len(axes):
        raise NotImplementedError(
            f"fastgrad.numpy.fft.{name}: no derivative for repeated axes {tuple(axes)}")


# y = F P x (P cuts or pads x to s along the axes):  x̄ = Pᵀ F ȳ, with the same norm
def _fftn_vjp(g, ans, x, s, axes, norm):
    _check_axes(axes, "fftn")
    return _matches(x, _fit(fftn_p(g, s, axes, norm), shape_of(x), axes))


def _ifftn_vjp(g, ans, x, s, axes, norm):
    _check_axes(axes, "ifftn")
    return _matches(x, _fit(ifftn_p(g, s, axes, norm), shape_of(x), axes))


def _complex_samples(inverse):
    def samples(r):
        z = r.normal(size=(4, 5)) + 1j * r.normal(size=(4, 5))
        x = r.normal(size=(3, 4, 5))
        return [Sample(z, (5,), (1,), None), Sample(z, (3,), (0,), "ortho"),  # cut
                Sample(z, (7,), (1,), "forward"),  # zero-padded
                Sample(z, (4, 5), (0, 1), None), Sample(x, (2, 6), (2, 0), "ortho"),
                Sample(r.normal(size=(6,)), (6,), (0,), "backward")]  # a real input

    return samples


fftn_p = define(
    _fftn, "fftn", vjps=[_fftn_vjp],
    formula=Formula("{out} = DFT({0})", {0: "{0}̄ = DFT({out}̄), cut or padded to {0}'s shape"},
                    _fft_macs),
    lowering=NotCompiled("the FFT is not lowered (complex values)"),
    samples=_complex_samples(False),
)
ifftn_p = define(
    _ifftn, "ifftn", vjps=[_ifftn_vjp],
    formula=Formula("{out} = DFT⁻¹({0})", {0: "{0}̄ = DFT⁻¹({out}̄), cut or padded to {0}'s shape"},
                    _fft_macs),
    lowering=NotCompiled("the inverse FFT is not lowered (complex values)"),
    samples=_complex_samples(True),
)

# ----------------------------------------------------------------- real transforms --


def _rfftn(x, s, axes, norm):
    return _fft.rfftn(x, s, axes, norm)


def _irfftn(x, s, axes, norm):
    return _fft.irfftn(x, s, axes, norm)


# y = rfftn(x): the first s[-1]//2 + 1 frequencies of the last axis:  x̄ = Re F [ȳ; 0]
def _rfftn_vjp(g, ans, x, s, axes, norm):
    _check_axes(axes, "rfftn")
    last = axes[-1]
    widths = [(0, 0)] * len(shape_of(g))
    widths[last] = (0, s[-1] - shape_of(g)[last])
    full = fftn_p(pad(g, widths), s, axes, norm)
    return _matches(x, _fit(real(full), shape_of(x), axes))


def _hermitian_weights(n, m, ndim, last):
    """c_k over the kept half of a length-n spectrum (m entries): 1 where irfft reads only
    a real part (k = 0, and k = n/2 for an even n), 2 where the entry stands for itself
    and its mirror image."""
    c = onp.full(m, 2.0)
    c[0] = 1.0
    if n % 2 == 0 and n // 2 < m:
        c[n // 2] = 1.0
    shape = [1] * ndim
    shape[last] = m
    return c.reshape(shape)


# y = irfftn(x), real:  x̄ = c ∘ ifftn(Re ȳ) on the kept half of the last axis
def _irfftn_vjp(g, ans, x, s, axes, norm):
    _check_axes(axes, "irfftn")
    last, n = axes[-1], s[-1]
    m = n // 2 + 1
    full = ifftn_p(real_part(g), s, axes, norm)
    cut = [slice(None)] * len(shape_of(full))
    cut[last] = slice(0, m)
    half = getitem(full, tuple(cut)) * _hermitian_weights(n, m, len(shape_of(full)), last)
    return _matches(x, _fit(half, shape_of(x), axes))


def _rfft_samples(r):
    x = r.normal(size=(4, 6))
    return [Sample(x, (6,), (1,), None), Sample(x, (4,), (0,), "ortho"),
            Sample(r.normal(size=(4, 5)), (5,), (1,), None),  # odd length
            Sample(x, (3,), (1,), "forward"), Sample(x, (9,), (1,), None),  # cut, padded
            Sample(r.normal(size=(3, 4, 6)), (4, 6), (0, 2), "ortho")]


def _irfft_samples(r):
    def spectrum(*shape):
        return r.normal(size=shape) + 1j * r.normal(size=shape)

    z = spectrum(4, 4)
    return [Sample(z, (6,), (1,), None), Sample(z, (7,), (1,), "ortho"),  # even, odd n
            Sample(z, (4,), (1,), None),  # z longer than n//2 + 1: cut
            Sample(z, (12,), (1,), "forward"),  # shorter: zero-padded
            Sample(spectrum(3, 4, 3), (3, 4), (0, 2), None),
            Sample(spectrum(3, 4, 3), (4, 5), (1, 2), "ortho")]


rfftn_p = define(
    _rfftn, "rfftn", vjps=[_rfftn_vjp],
    formula=Formula("{out} = DFT({0}), frequencies 0 … n/2 of the last axis",
                    {0: "{0}̄ = Re DFT([{out}̄; 0])"}, _fft_macs),
    lowering=NotCompiled("the real FFT is not lowered (complex values)"),
    samples=_rfft_samples,
)
irfftn_p = define(
    _irfftn, "irfftn", vjps=[_irfftn_vjp],
    formula=Formula("{out} = DFT⁻¹ of the Hermitian spectrum whose half is {0}",
                    {0: "{0}̄ = c ∘ DFT⁻¹(Re {out}̄) on the half (c = 1 at 0 and n/2, else 2)"},
                    _fft_macs),
    lowering=NotCompiled("the real inverse FFT is not lowered (complex values)"),
    samples=_irfft_samples,
)

# ------------------------------------------------------------------------ shifts --

fftshift_p = define(
    lambda x, axes=None: _fft.fftshift(x, axes), "fftshift",
    vjps=[lambda g, ans, x, axes=None: ifftshift_p(g, axes)], saves_args=False,
    formula=Formula("{out} = fftshift({0})", {0: "{0}̄ = ifftshift({out}̄)"}, no_macs),
    lowering=NotCompiled("fftshift is not lowered yet"),
    samples=lambda r: [Sample(r.normal(size=(5, 4))), Sample(r.normal(size=(5, 4)), 1),
                       Sample(r.normal(size=(3, 5)) + 1j * r.normal(size=(3, 5)), (0, 1))],
)
ifftshift_p = define(
    lambda x, axes=None: _fft.ifftshift(x, axes), "ifftshift",
    vjps=[lambda g, ans, x, axes=None: fftshift_p(g, axes)], saves_args=False,
    formula=Formula("{out} = ifftshift({0})", {0: "{0}̄ = fftshift({out}̄)"}, no_macs),
    lowering=NotCompiled("ifftshift is not lowered yet"),
    samples=lambda r: [Sample(r.normal(size=(5, 4))), Sample(r.normal(size=(5, 4)), 0),
                       Sample(r.normal(size=(3, 5)) + 1j * r.normal(size=(3, 5)), (1,))],
)

# ------------------------------------------------------------- NumPy's signatures --


def _resolve(x, s, axes, name):
    """(s, axes) as tuples of non-negative ints, as NumPy resolves them: axes default to
    all of x's (the last len(s) when s is given)."""
    nd = len(shape_of(x))
    if axes is None:
        axes = range(nd) if s is None else range(nd - len(s), nd)
    axes = tuple(int(a) % nd for a in axes)
    if s is not None:
        s = tuple(int(n) for n in s)
        if len(s) != len(axes):
            raise ValueError(f"fastgrad.numpy.fft.{name}: s {s} and axes {axes} differ in length")
    return s, axes


def _complex_transform(prim, name):
    def one(a, n=None, axis=-1, norm=None, out=None):
        if not traced(a):
            return getattr(_fft, name)(a, n, axis, norm, out=out)
        axes = (int(axis) % len(shape_of(a)),)
        s = (shape_of(a)[axes[0]] if n is None else int(n),)
        return prim(a, s, axes, norm)

    one.__name__ = name
    one.__doc__ = getattr(_fft, name).__doc__
    return one


def _complex_transform_nd(prim, name, default_axes):
    def many(a, s=None, axes=default_axes, norm=None, out=None):
        if not traced(a):
            return getattr(_fft, name)(a, s, axes, norm, out=out)
        s, axes = _resolve(a, s, axes, name)
        if s is None:
            s = tuple(shape_of(a)[k] for k in axes)
        return prim(a, s, axes, norm)

    many.__name__ = name
    many.__doc__ = getattr(_fft, name).__doc__
    return many


fft = _complex_transform(fftn_p, "fft")
ifft = _complex_transform(ifftn_p, "ifft")
fft2 = _complex_transform_nd(fftn_p, "fft2", (-2, -1))
ifft2 = _complex_transform_nd(ifftn_p, "ifft2", (-2, -1))
fftn = _complex_transform_nd(fftn_p, "fftn", None)
ifftn = _complex_transform_nd(ifftn_p, "ifftn", None)


def _real_full_shape(a, s, axes, inverse):
    """The real signal's lengths along ``axes``: ``s``, or ``a``'s (for the inverse, the
    last one 2 (m − 1), as NumPy's default)."""
    if s is not None:
        return s
    shape = shape_of(a)
    s = [shape[k] for k in axes]
    if inverse:
        s[-1] = 2 * (s[-1] - 1)
    return tuple(s)


def _real_transform(prim, name, inverse):
    def one(a, n=None, axis=-1, norm=None, out=None):
        if not traced(a):
            return getattr(_fft, name)(a, n, axis, norm, out=out)
        axes = (int(axis) % len(shape_of(a)),)
        s = _real_full_shape(a, None if n is None else (int(n),), axes, inverse)
        return prim(a, s, axes, norm)

    one.__name__ = name
    one.__doc__ = getattr(_fft, name).__doc__
    return one


def _real_transform_nd(prim, name, default_axes, inverse):
    def many(a, s=None, axes=default_axes, norm=None, out=None):
        if not traced(a):
            return getattr(_fft, name)(a, s, axes, norm, out=out)
        s, axes = _resolve(a, s, axes, name)
        return prim(a, _real_full_shape(a, s, axes, inverse), axes, norm)

    many.__name__ = name
    many.__doc__ = getattr(_fft, name).__doc__
    return many


rfft = _real_transform(rfftn_p, "rfft", False)
irfft = _real_transform(irfftn_p, "irfft", True)
rfft2 = _real_transform_nd(rfftn_p, "rfft2", (-2, -1), False)
irfft2 = _real_transform_nd(irfftn_p, "irfft2", (-2, -1), True)
rfftn = _real_transform_nd(rfftn_p, "rfftn", None, False)
irfftn = _real_transform_nd(irfftn_p, "irfftn", None, True)


def fftshift(x, axes=None):
    if not traced(x):
        return _fft.fftshift(x, axes)
    return fftshift_p(x, tuple(axes) if isinstance(axes, list) else axes)


def ifftshift(x, axes=None):
    if not traced(x):
        return _fft.ifftshift(x, axes)
    return ifftshift_p(x, tuple(axes) if isinstance(axes, list) else axes)


hfft = NoRule(_fft.hfft, "numpy.fft.hfft")
ihfft = NoRule(_fft.ihfft, "numpy.fft.ihfft")
fftfreq = _fft.fftfreq
rfftfreq = _fft.rfftfreq
