"""Kernel backends (SPEC §2): every kernel, both backends, against each other and by hand.

The compiled backend is tested only if its extension imports (CI builds it); the
reference backend always is. Float64 must agree to rtol 1e-10, float32 to rtol 1e-4.
"""

import importlib
import warnings

import numpy as np
import pytest
from scipy import special

from fastgrad.backends import KERNELS as KERNEL_NAMES
from fastgrad.backends import reference

try:
    _cykernels = importlib.import_module("fastgrad.backends._cykernels")
except ImportError:  # the extension was not built: its tests skip, the reference's run
    _cykernels = None

BACKENDS = [
    pytest.param(reference, id="reference"),
    pytest.param(
        _cykernels,
        id="cython",
        marks=pytest.mark.skipif(_cykernels is None, reason="compiled kernels not built"),
    ),
]
needs_cython = pytest.mark.skipif(_cykernels is None, reason="compiled kernels not built")
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}

# (N, D, M): batch 1 (the lecture's per-example step), odd sizes, D or M = 1, the
# workloads' shapes, and sizes on both sides of the loop → BLAS crossover.
SHAPES = [
    (1, 784, 100),
    (1, 100, 10),
    (1, 1, 1),
    (3, 5, 7),
    (7, 1, 9),
    (5, 13, 1),
    (2, 33, 17),
    (64, 784, 256),
    (64, 256, 10),
    (256, 100, 130),
]

KERNELS = list(KERNEL_NAMES)
SPEC_KERNELS = ["affine_forward", "sigmoid_forward", "sigmoid_backward", "outer_grad",
                "transpose_matvec", "bias_grad"]  # SPEC §2: every backend has at least these


def assert_close(actual, expected, dtype):
    """Relative to the array's scale: float32 sums of D products lose ~D·eps near zero."""
    expected = np.asarray(expected)
    rtol = RTOL[np.dtype(dtype)]
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def data(shape, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return np.asarray(scale * rng.standard_normal(shape), dtype=dtype)


def layer(N, D, M, dtype, seed=0):
    return (
        data((N, D), dtype, seed),
        data((M, D), dtype, seed + 1, 1 / np.sqrt(max(D, 1))),
        data((M,), dtype, seed + 2),
    )


# --- the modules themselves ---------------------------------------------------------


@pytest.mark.parametrize("kernels", BACKENDS)
def test_module_exports_every_kernel(kernels):
    assert set(SPEC_KERNELS) <= set(KERNELS)
    assert sorted(kernels.__all__) == sorted(KERNELS)
    for name in KERNELS:
        assert callable(getattr(kernels, name)), name


def test_module_names():
    assert reference.NAME == "reference"


@needs_cython
def test_cython_module_name():
    cython_backend = importlib.import_module("fastgrad.backends.cython")
    assert cython_backend.NAME == "cython"
    assert sorted(cython_backend.__all__) == sorted(reference.__all__)


# --- the six SPEC kernels, by hand ----------------------------------------------------


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,M", SHAPES)
def test_dense_kernels_by_hand(kernels, dtype, N, D, M):
    x, W, b = layer(N, D, M, dtype)
    dz = data((N, M), dtype, 7)
    x64, W64, b64, dz64 = (a.astype(np.float64) for a in (x, W, b, dz))

    z = kernels.affine_forward(x, W, b)
    assert z.dtype == dtype and z.shape == (N, M)
    assert_close(z, x64 @ W64.T + b64, dtype)

    h = kernels.affine_sigmoid_forward(x, W, b)
    assert h.dtype == dtype and h.shape == (N, M)
    assert_close(h, special.expit(x64 @ W64.T + b64), dtype)

    dW = kernels.outer_grad(dz, x)
    assert dW.dtype == dtype and dW.shape == (M, D)
    assert_close(dW, dz64.T @ x64, dtype)

    dx = kernels.transpose_matvec(W, dz)
    assert dx.dtype == dtype and dx.shape == (N, D)
    assert_close(dx, dz64 @ W64, dtype)

    db = kernels.bias_grad(dz)
    assert db.dtype == dtype and db.shape == (M,)
    assert_close(db, dz64.sum(axis=0), dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_by_hand(kernels, dtype):
    z = np.array([-800.0, -30.0, -1.5, 0.0, 0.25, 30.0, 800.0], dtype=dtype)  # no overflow at ±800
    y = kernels.softplus_forward(z)
    assert y.dtype == dtype and y.shape == z.shape
    z64 = z.astype(np.float64)
    assert_close(y, np.maximum(z64, 0) + np.log1p(np.exp(-np.abs(z64))), dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (5,), (3, 4), (2, 3, 5), (1, 1000)])
def test_sigmoid_by_hand(kernels, dtype, shape):
    z = data(shape, dtype, 3, 4.0)
    h = kernels.sigmoid_forward(z)
    assert h.dtype == dtype and h.shape == z.shape
    assert_close(h, special.expit(z.astype(np.float64)), dtype)

    dh = data(shape, dtype, 4)
    dz = kernels.sigmoid_backward(h, dh)
    assert dz.dtype == dtype and dz.shape == z.shape
    h64 = h.astype(np.float64)
    assert_close(dz, dh * h64 * (1 - h64), dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_large_abs_z_is_stable(kernels, dtype):
    z = np.array([-1000.0, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        h = kernels.sigmoid_forward(z)
        dz = kernels.sigmoid_backward(h, np.ones_like(h))
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(dz))
    assert h[0] == 0.0 and h[-1] == 1.0 and h[4] == 0.5
    assert np.all(np.diff(h) >= 0)
    assert_close(h, special.expit(z.astype(np.float64)), dtype)
    big = np.tile(z, 200)  # large arrays take the vectorised path: same guarantees
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        h_big = kernels.sigmoid_forward(big)
    assert np.all(np.isfinite(h_big))
    assert_close(h_big, np.tile(h, 200), dtype)
    x = np.ones((1, 1), dtype)
    W = np.array([[1000.0], [-1000.0]], dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        h = kernels.affine_sigmoid_forward(x, W, np.zeros(2, dtype))
    np.testing.assert_array_equal(h, [[1.0, 0.0]])


@pytest.mark.parametrize("kernels", BACKENDS)
def test_sigmoid_propagates_nan(kernels):
    h = kernels.sigmoid_forward(np.array([np.nan, 0.0]))
    assert np.isnan(h[0]) and h[1] == 0.5


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batches(kernels, dtype):
    x, W, b = layer(0, 4, 3, dtype)
    assert kernels.affine_forward(x, W, b).shape == (0, 3)
    np.testing.assert_array_equal(kernels.outer_grad(np.zeros((0, 3), dtype), x), 0.0)
    np.testing.assert_array_equal(kernels.bias_grad(np.zeros((0, 3), dtype)), 0.0)
    assert kernels.transpose_matvec(W, np.zeros((0, 3), dtype)).shape == (0, 4)
    # D = 0: z = b on every row; M = 0: x̄ = 0.
    x, W, b = layer(2, 0, 3, dtype)
    np.testing.assert_array_equal(kernels.affine_forward(x, W, b), np.tile(b, (2, 1)))
    W = np.zeros((0, 4), dtype)
    np.testing.assert_array_equal(kernels.transpose_matvec(W, np.zeros((2, 0), dtype)), 0.0)


# --- both backends agree ----------------------------------------------------------------


def _call_dense(kernels, name, N, D, M, dtype):
    x, W, b = layer(N, D, M, dtype)
    dz = data((N, M), dtype, 7)
    args = {
        "affine_forward": (x, W, b),
        "affine_sigmoid_forward": (x, W, b),
        "outer_grad": (dz, x),
        "transpose_matvec": (W, dz),
        "bias_grad": (dz,),
        "sigmoid_forward": (dz * 10,),
        "sigmoid_backward": (special.expit(dz).astype(dtype), data((N, M), dtype, 8)),
    }[name]
    return getattr(kernels, name)(*args)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,M", SHAPES)
@pytest.mark.parametrize(
    "name",
    [
        "affine_forward",
        "affine_sigmoid_forward",
        "outer_grad",
        "transpose_matvec",
        "bias_grad",
        "sigmoid_forward",
        "sigmoid_backward",
    ],
)
def test_dense_kernels_agree_across_backends(name, N, D, M, dtype):
    expected = _call_dense(reference, name, N, D, M, dtype)
    actual = _call_dense(_cykernels, name, N, D, M, dtype)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert_close(actual, expected, dtype)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_blas_and_loop_paths_agree(dtype):
    """Force each side of the loop → BLAS crossover and compare (same shapes, both paths)."""
    saved = _cykernels._tuning()
    names = ["affine_forward", "affine_sigmoid_forward", "outer_grad", "transpose_matvec"]
    try:
        for N, D, M in [(1, 784, 100), (3, 5, 7), (64, 100, 33), (2, 1, 1)]:
            _cykernels._tuning(affine=1 << 40, outer=1 << 40, transpose_matvec=1 << 40)
            loops = [_call_dense(_cykernels, n, N, D, M, dtype) for n in names]
            _cykernels._tuning(affine=0, outer=0, transpose_matvec=0)
            blas = [_call_dense(_cykernels, n, N, D, M, dtype) for n in names]
            for a, b in zip(loops, blas, strict=True):
                assert_close(a, b, dtype)
    finally:
        _cykernels._tuning(**saved)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_results_do_not_depend_on_releasing_the_gil(dtype):
    """Small calls keep the GIL, large ones release it (``nogil_min``); every kernel gives
    the same bits either way, on each path of the products."""
    saved = _cykernels._tuning()

    def every_kernel():
        results = []
        for N, D, M in [(1, 20, 7), (32, 64, 64), (32, 64, 10)]:
            x, W, b = layer(N, D, M, dtype, seed=N)
            dz = data((N, M), dtype, seed=N + 5)
            h = _cykernels.sigmoid_forward(dz)
            results += [_cykernels.affine_forward(x, W, b), _cykernels.affine_sigmoid_forward(x, W, b),
                        h, _cykernels.sigmoid_backward(h, dz), _cykernels.outer_grad(dz, x),
                        _cykernels.transpose_matvec(W, dz), _cykernels.bias_grad(dz)]
            labels = np.arange(N) % M
            loss, probs = _cykernels.softmax_cross_entropy_forward(dz, labels)
            results += [np.array(loss), probs, _cykernels.softmax_cross_entropy_backward(probs, labels)]
            results += [np.array(_cykernels.squared_error_forward(dz, h)),
                        _cykernels.squared_error_backward(dz, h, 0.5)]
            W1, W2, m, v, velocity = W.copy(), W.copy(), np.zeros_like(W), np.zeros_like(W), np.zeros_like(W)
            _cykernels.sgd_update(W1, W, 0.1, 0.9, velocity, 1e-3)
            _cykernels.sgd_outer_update(W2, dz, x, 0.1)
            _cykernels.adam_update(W, W1, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
            results += [W1, W2, W, m, v, velocity]
        return results

    try:
        for paths in [{}, dict(numpy_matmul=0), dict(affine_nn=1e300)]:
            _cykernels._tuning(**saved)
            _cykernels._tuning(nogil_min=0, **paths)
            released = every_kernel()
            _cykernels._tuning(nogil_min=1 << 62)
            kept = every_kernel()
            for a, b in zip(released, kept, strict=True):
                np.testing.assert_array_equal(a, b)
    finally:
        _cykernels._tuning(**saved)


# --- out= --------------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,M", [(1, 784, 100), (3, 5, 7), (64, 100, 33)])
def test_out_is_written_and_returned(kernels, dtype, N, D, M):
    x, W, b = layer(N, D, M, dtype)
    dz = data((N, M), dtype, 7)
    h = special.expit(dz).astype(dtype)
    cases = [
        ("affine_forward", (x, W, b), (N, M)),
        ("affine_sigmoid_forward", (x, W, b), (N, M)),
        ("outer_grad", (dz, x), (M, D)),
        ("transpose_matvec", (W, dz), (N, D)),
        ("bias_grad", (dz,), (M,)),
        ("sigmoid_forward", (dz,), (N, M)),
        ("sigmoid_backward", (h, dz), (N, M)),
    ]
    for name, args, shape in cases:
        fn = getattr(kernels, name)
        out = np.full(shape, np.nan, dtype)
        result = fn(*args, out=out)
        assert result is out, name
        assert_close(out, fn(*args), dtype)


def traced_peak(fn, *args, **kwargs):
    """Bytes allocated at the peak of one call (NumPy's buffers are traced too), after a warm
    call; the call's result is checked against a fresh one by the caller."""
    import tracemalloc

    fn(*args, **kwargs)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,M", [(256, 512, 512), (512, 256, 256), (1, 784, 100), (32, 64, 64)])
def test_out_allocates_nothing_of_the_results_size(kernels, dtype, N, D, M):
    """SPEC §2: given out=, a kernel writes into it without a temporary as large as the
    result (256×512→512 float64 used to allocate a 1 MB zᵀ). The matrix kernels on both
    backends (NumPy's matmul writes into out), the elementwise ones on the compiled one
    (the reference's σ is the lecture's formula, with its temporaries)."""
    x, W, b = layer(N, D, M, dtype)
    dz = data((N, M), dtype, 7)
    h = special.expit(dz).astype(dtype)
    cases = [
        ("affine_forward", (x, W, b), (N, M)),
        ("outer_grad", (dz, x), (M, D)),
        ("transpose_matvec", (W, dz), (N, D)),
        ("bias_grad", (dz,), (M,)),
    ]
    if kernels is _cykernels:
        cases += [
            ("affine_sigmoid_forward", (x, W, b), (N, M)),
            ("sigmoid_forward", (dz,), (N, M)),
            ("sigmoid_backward", (h, dz), (N, M)),
            ("squared_error_backward", (dz, h, 0.5), (N, M)),
        ]
    for name, args, shape in cases:
        fn = getattr(kernels, name)
        out = np.empty(shape, dtype)
        result_bytes = out.nbytes
        if result_bytes < 65536 and kernels is reference:
            continue  # NumPy's matmul may stage a result up to its 64 KiB buffer: not ours
        peak = traced_peak(fn, *args, out=out)
        assert peak < max(result_bytes // 4, 4096), f"{name}: {peak} bytes for a {result_bytes}-byte result"
        assert_close(out, fn(*args), dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_may_alias_an_input(kernels, dtype):
    """Writing into an input's own buffer still gives the right answer."""
    z = data((4, 6), dtype, 1, 5.0)
    expected = kernels.sigmoid_forward(z)
    assert kernels.sigmoid_forward(z, out=z) is z
    assert_close(z, expected, dtype)

    h, dh = special.expit(data((4, 6), dtype)).astype(dtype), data((4, 6), dtype, 2)
    expected = kernels.sigmoid_backward(h, dh)
    assert kernels.sigmoid_backward(h, dh, out=dh) is dh
    assert_close(dh, expected, dtype)

    x, W, b = layer(5, 8, 8, dtype)
    expected = kernels.affine_forward(x, W, b)
    assert kernels.affine_forward(x, W, b, out=x) is x
    assert_close(x, expected, dtype)

    dz, W = data((8, 8), dtype, 3), data((8, 8), dtype, 4)
    expected = kernels.transpose_matvec(W, dz)
    kernels.transpose_matvec(W, dz, out=dz)
    assert_close(dz, expected, dtype)

    dz, x = data((8, 8), dtype, 5), data((8, 8), dtype, 6)
    expected = kernels.outer_grad(dz, x)
    kernels.outer_grad(dz, x, out=x)
    assert_close(x, expected, dtype)

    dz = data((3, 4), dtype, 8)
    expected = kernels.bias_grad(dz)
    kernels.bias_grad(dz, out=dz[0])
    assert_close(dz[0], expected, dtype)

    z, t = data((5, 4), dtype, 9), np.array([0, 3, 1, 1, 2])
    _, probs = kernels.softmax_cross_entropy_forward(z, t)
    expected = kernels.softmax_cross_entropy_backward(probs, t)
    assert kernels.softmax_cross_entropy_backward(probs, t, out=probs) is probs
    assert_close(probs, expected, dtype)


# --- softmax–cross-entropy ----------------------------------------------------------------


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K", [(1, 10), (1, 1), (7, 3), (64, 10), (5, 1000)])
def test_softmax_cross_entropy_by_hand(kernels, dtype, N, K):
    z = data((N, K), dtype, 11, 3.0)
    t = np.random.default_rng(12).integers(0, K, size=N)
    loss, probs = kernels.softmax_cross_entropy_forward(z, t)
    assert isinstance(loss, float)
    assert probs.dtype == dtype and probs.shape == (N, K)
    z64 = z.astype(np.float64)
    assert_close(probs, special.softmax(z64, axis=1), dtype)
    rows = np.arange(N)
    assert loss == pytest.approx(-special.log_softmax(z64, axis=1)[rows, t].mean(),
                                 rel=RTOL[np.dtype(dtype)], abs=RTOL[np.dtype(dtype)])

    dz = kernels.softmax_cross_entropy_backward(probs, t)
    onehot = np.eye(K)[t]
    assert dz.dtype == dtype and dz.shape == (N, K)
    assert_close(dz, (probs.astype(np.float64) - onehot) / N, dtype)
    out = np.empty_like(probs)
    assert kernels.softmax_cross_entropy_backward(probs, t, out=out) is out
    assert_close(out, dz, dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 10), (32, 10), (7, 3, 2), (5,), ()])
def test_squared_error_by_hand(kernels, dtype, shape):
    y, t = data(shape, dtype, 21), data(shape, dtype, 22)
    n = shape[0] if shape else 1
    d = y.astype(np.float64) - t.astype(np.float64)
    loss = kernels.squared_error_forward(y, t)
    assert isinstance(loss, float)
    assert loss == pytest.approx(0.5 * np.sum(d * d) / n, rel=RTOL[np.dtype(dtype)])

    dy = kernels.squared_error_backward(y, t, 0.25)
    assert dy.dtype == dtype and dy.shape == shape
    assert_close(dy, 0.25 * d, dtype)
    out = np.empty_like(y)
    assert kernels.squared_error_backward(y, t, -2.0, out=out) is out
    assert_close(out, -2.0 * d, dtype)
    y_again = y.copy()
    assert kernels.squared_error_backward(y_again, t, 0.25, out=y_again) is y_again  # in place
    assert_close(y_again, dy, dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
def test_squared_error_shifted_out_and_empty_batch(kernels):
    buf = data((12,), np.float64, 23)
    y, t = buf[:10].copy(), data((10,), np.float64, 24)
    expected = 0.5 * (y - t)
    y_view = buf[:10]
    out = buf[2:]  # overlaps y, shifted by two elements
    kernels.squared_error_backward(y_view, t, 0.5, out=out)
    assert_close(out, expected, np.float64)
    empty = np.empty((0, 3))
    assert np.isnan(kernels.squared_error_forward(empty, empty))


@pytest.mark.parametrize("kernels", BACKENDS)
def test_squared_error_bad_input(kernels):
    y = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"y \(4, 3\) and t \(4, 2\)"):
        kernels.squared_error_forward(y, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="one dtype"):
        kernels.squared_error_backward(y, np.zeros((4, 3), np.float32), 1.0)
    with pytest.raises(TypeError, match="t must be a numpy.ndarray"):
        kernels.squared_error_forward(y, [[0.0] * 3] * 4)
    with pytest.raises(ValueError, match="out must have shape"):
        kernels.squared_error_backward(y, y, 1.0, out=np.zeros(3))


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_large_logits(kernels, dtype):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0]], dtype)
    t = np.array([1, 2])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss, probs = kernels.softmax_cross_entropy_forward(z, t)
    assert np.isfinite(loss) and np.all(np.isfinite(probs))
    expected = -special.log_softmax(z.astype(np.float64), axis=1)[[0, 1], t].mean()
    assert loss == pytest.approx(expected, rel=RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("label_dtype", [np.int64, np.intp, np.int32, np.uint8])
def test_softmax_cross_entropy_accepts_integer_labels(kernels, label_dtype):
    z = data((4, 3), np.float64, 13)
    t = np.array([0, 2, 1, 2], dtype=label_dtype)
    loss, probs = kernels.softmax_cross_entropy_forward(z, t)
    loss64, _ = kernels.softmax_cross_entropy_forward(z, t.astype(np.int64))
    assert loss == loss64
    strided = np.array([0, 9, 2, 9, 1, 9, 2, 9])[::2]  # non-contiguous labels are fine
    assert kernels.softmax_cross_entropy_forward(z, strided)[0] == loss64


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K", [(1, 10), (7, 3), (64, 10), (3, 1)])
def test_softmax_cross_entropy_agrees_across_backends(dtype, N, K):
    z = data((N, K), dtype, 14, 5.0)
    t = np.random.default_rng(15).integers(0, K, size=N)
    loss_r, probs_r = reference.softmax_cross_entropy_forward(z, t)
    loss_c, probs_c = _cykernels.softmax_cross_entropy_forward(z, t)
    assert loss_c == pytest.approx(loss_r, rel=RTOL[np.dtype(dtype)])
    assert_close(probs_c, probs_r, dtype)
    assert_close(
        _cykernels.softmax_cross_entropy_backward(probs_r, t),
        reference.softmax_cross_entropy_backward(probs_r, t),
        dtype,
    )


# --- optimizer updates --------------------------------------------------------------------


def _sgd_by_hand(W, dW, lr, momentum, velocity, weight_decay):
    W, dW = W.astype(np.float64), dW.astype(np.float64)
    if velocity is None:
        return W - lr * (dW + weight_decay * W), None
    v = momentum * velocity.astype(np.float64) + dW + weight_decay * W
    return W - lr * v, v


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 784), (10,), (1, 1), (3, 5, 2)])
@pytest.mark.parametrize(
    "momentum,weight_decay,with_velocity", [(0.0, 0.0, False), (0.0, 1e-2, False),
                                            (0.9, 0.0, True), (0.9, 5e-3, True),
                                            (0.0, 0.0, True)]
)
def test_sgd_update_by_hand(kernels, dtype, shape, momentum, weight_decay, with_velocity):
    W, dW = data(shape, dtype, 20), data(shape, dtype, 21)
    velocity = data(shape, dtype, 22) if with_velocity else None
    W_hand, v_hand = _sgd_by_hand(W, dW, 0.1, momentum, velocity, weight_decay)
    result = kernels.sgd_update(W, dW, 0.1, momentum=momentum, velocity=velocity,
                                weight_decay=weight_decay)
    assert result is None
    assert_close(W, W_hand, dtype)
    if with_velocity:
        assert_close(velocity, v_hand, dtype)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_velocity", [False, True])
def test_sgd_and_bias_grad_at_every_alignment(dtype, with_velocity):
    """The SGD loop does its first elements alone until W reaches a cache line, then the
    rest; bias_grad sums four rows a pass, then the leftover rows. Arrays starting at every
    element offset within a 64-byte line, lengths around the 64-element threshold."""
    rng = np.random.default_rng(4)
    itemsize = np.dtype(dtype).itemsize
    for n in [63, 64, 65, 100, 1000]:
        for offset in range(64 // itemsize):
            buffers = [np.empty(n + 64, dtype) for _ in range(3)]
            W, dW, v = (b[(-b.ctypes.data % 64) // itemsize + offset:][:n] for b in buffers)
            W[:], dW[:], v[:] = rng.standard_normal((3, n))
            velocity = v if with_velocity else None
            W_hand, v_hand = _sgd_by_hand(W.copy(), dW, 0.1, 0.9 if with_velocity else 0.0,
                                          None if velocity is None else v.copy(), 1e-3)
            _cykernels.sgd_update(W, dW, 0.1, 0.9 if with_velocity else 0.0, velocity, 1e-3)
            assert_close(W, W_hand, dtype)
            if with_velocity:
                assert_close(v, v_hand, dtype)
    for N in [1, 2, 4, 5, 8, 9, 32, 33]:
        for offset in range(3):
            buffer = np.empty(N * 17 + 3, dtype)
            dz = buffer[offset:offset + N * 17].reshape(N, 17)
            dz[:] = rng.standard_normal((N, 17))
            assert_close(_cykernels.bias_grad(dz), dz.astype(np.float64).sum(axis=0), dtype)


@needs_cython
@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch1_affine_and_rank1_sgd_at_every_alignment(isa, dtype):
    """The batch-1 affine loop and the rank-1 SGD row loop on W starting at every element
    offset within a cache line (the SGD loop does a scalar head until W reaches a line),
    rows that are and are not a whole number of lines, every ISA variant: right, and the
    same bits at every offset (the order of a sum never depends on the address)."""
    used = _cykernels.ISA
    rng = np.random.default_rng(5)
    itemsize = np.dtype(dtype).itemsize
    try:
        _cykernels._select_isa(isa)
        for M, D in [(6, 784), (5, 300), (3, 64)]:
            W0 = (rng.standard_normal((M, D)) / np.sqrt(D)).astype(dtype)
            x, b, dz = (rng.standard_normal(s).astype(dtype) for s in ((1, D), (M,), (1, M)))
            z_bits, W_bits = set(), set()
            for offset in range(64 // itemsize):
                buffer = np.empty(M * D + 64, dtype)
                start = (-buffer.ctypes.data % 64) // itemsize + offset
                W = buffer[start:start + M * D].reshape(M, D)
                W[:] = W0
                z = _cykernels.affine_forward(x, W, b)
                assert_close(z, reference.affine_forward(x, W, b), dtype)
                _cykernels.sgd_outer_update(W, dz, x, 0.1)
                assert_close(W, W0 - 0.1 * (dz.T @ x), dtype)
                z_bits.add(z.tobytes())
                W_bits.add(W.tobytes())
            assert len(z_bits) == 1 and len(W_bits) == 1
    finally:
        _cykernels._select_isa(used)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 784), (10,), (1, 1)])
def test_adam_update_by_hand(kernels, dtype, shape):
    W, m, v = data(shape, dtype, 30), data(shape, dtype, 31), np.abs(data(shape, dtype, 32))
    W64, m64, v64 = W.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    for step in (1, 2, 3):
        dW = data(shape, dtype, 33 + step)
        kernels.adam_update(W, dW, m, v, lr, beta1, beta2, eps, step)
        m64 = beta1 * m64 + (1 - beta1) * dW
        v64 = beta2 * v64 + (1 - beta2) * dW.astype(np.float64) ** 2
        m_hat, v_hat = m64 / (1 - beta1**step), v64 / (1 - beta2**step)
        W64 = W64 - lr * m_hat / (np.sqrt(v_hat) + eps)
    assert_close(m, m64, dtype)
    assert_close(v, v64, dtype)
    assert_close(W, W64, dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,D,M", [(1, 784, 100), (1, 100, 10), (3, 5, 7), (1, 1, 1), (0, 4, 3)])
@pytest.mark.parametrize(
    "momentum,weight_decay,with_velocity", [(0.0, 0.0, False), (0.0, 1e-2, False), (0.9, 5e-3, True)]
)
def test_sgd_outer_update_is_sgd_on_the_outer_product(kernels, dtype, N, D, M, momentum,
                                                      weight_decay, with_velocity):
    # W̄ = z̄ᵀ x by NumPy in float64, then the SGD step by hand.
    W, dz, x = data((M, D), dtype, 50), data((N, M), dtype, 51), data((N, D), dtype, 52)
    velocity = data((M, D), dtype, 53) if with_velocity else None
    dW = (dz.astype(np.float64).T @ x.astype(np.float64))
    W_hand, v_hand = _sgd_by_hand(W.astype(np.float64), dW, 0.1, momentum,
                                  None if velocity is None else velocity.astype(np.float64),
                                  weight_decay)
    result = kernels.sgd_outer_update(W, dz, x, 0.1, momentum, velocity, weight_decay)
    assert result is None
    assert W.dtype == dtype
    assert_close(W, W_hand, dtype)
    if with_velocity:
        assert_close(velocity, v_hand, dtype)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
def test_sgd_outer_update_agrees_with_outer_grad_then_sgd_update(isa, N, dtype):
    # The eager tape swaps one for the other: they must agree to a few roundings on every
    # instruction-set variant (the fused pass may contract a multiply-add differently).
    previous = _cykernels.ISA
    try:
        _cykernels._select_isa(isa)
        W, dz, x = data((100, 787), dtype, 60), data((N, 100), dtype, 61), data((N, 787), dtype, 62)
        v1 = data((100, 787), dtype, 63)
        W2, v2 = W.copy(), v1.copy()
        _cykernels.sgd_outer_update(W, dz, x, 0.05, 0.9, v1, 1e-3)
        _cykernels.sgd_update(W2, _cykernels.outer_grad(dz, x), 0.05, 0.9, v2, 1e-3)
    finally:
        _cykernels._select_isa(previous)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(W, W2, rtol=16 * eps, atol=16 * eps)
    np.testing.assert_allclose(v1, v2, rtol=16 * eps, atol=16 * eps)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 5e-3)])
def test_sgd_update_many_is_sgd_update_on_each(kernels, dtype, momentum, weight_decay):
    shapes = [(100, 784), (100,), (10, 100), (10,), (1, 1), (3, 5, 2)]
    Ws = [data(s, dtype, 80 + k) for k, s in enumerate(shapes)]
    dWs = [data(s, dtype, 90 + k) for k, s in enumerate(shapes)]
    vs = [data(s, dtype, 100 + k) for k, s in enumerate(shapes)] if momentum else None
    expected = [_sgd_by_hand(W, dW, 0.1, momentum, None if vs is None else vs[k], weight_decay)
                for k, (W, dW) in enumerate(zip(Ws, dWs, strict=True))]
    assert kernels.sgd_update_many(Ws, dWs, 0.1, momentum, vs, weight_decay) is None
    for k, (W_hand, v_hand) in enumerate(expected):
        assert_close(Ws[k], W_hand, dtype)
        if vs is not None:
            assert_close(vs[k], v_hand, dtype)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.01)])
def test_sgd_update_many_takes_factored_gradients(kernels, dtype, momentum, weight_decay):
    # A (dz, x) pair stands for W̄ = dzᵀ x (a linear layer's weight gradient, not formed).
    W1, dz1, x1 = data((100, 784), dtype, 110), data((1, 100), dtype, 111), data((1, 784), dtype, 112)
    W2, dz2, x2 = data((10, 100), dtype, 113), data((3, 10), dtype, 114), data((3, 100), dtype, 115)
    b, db = data((10,), dtype, 116), data((10,), dtype, 117)
    vs = [data(W.shape, dtype, 120 + k) for k, W in enumerate((W1, b, W2))] if momentum else None
    expected = [
        _sgd_by_hand(W, dW, 0.1, momentum, None if vs is None else vs[k], weight_decay)
        for k, (W, dW) in enumerate(((W1, dz1.T @ x1), (b, db), (W2, dz2.T @ x2)))
    ]
    kernels.sgd_update_many([W1, b, W2], [(dz1, x1), db, (dz2, x2)], 0.1, momentum, vs, weight_decay)
    for k, (W, (W_hand, v_hand)) in enumerate(zip((W1, b, W2), expected, strict=True)):
        assert_close(W, W_hand, dtype)
        if vs is not None:
            assert_close(vs[k], v_hand, dtype)


@needs_cython
def test_sgd_update_many_reads_each_gradient_when_it_applies_it():
    # A gradient that is an earlier parameter's array (or a factor of a pair) is read after
    # that parameter's update, in both backends: the entries are applied in order.
    results = []
    for kernels in (reference, _cykernels):
        A, B, C = data((2, 3), np.float64, 130), data((4, 3), np.float64, 131), data((2, 3), np.float64, 132)
        gA, dz = data((2, 3), np.float64, 133), data((2, 4), np.float64, 134)
        kernels.sgd_update_many([A, B, C], [gA, (dz, A), A], 0.1)
        results.append((A, B, C))
    A0, B0, C0 = data((2, 3), np.float64, 130), data((4, 3), np.float64, 131), data((2, 3), np.float64, 132)
    A1 = A0 - 0.1 * data((2, 3), np.float64, 133)
    B1 = B0 - 0.1 * (data((2, 4), np.float64, 134).T @ A1)
    C1 = C0 - 0.1 * A1
    for A, B, C in results:
        assert_close(A, A1, np.float64)
        assert_close(B, B1, np.float64)
        assert_close(C, C1, np.float64)


@pytest.mark.parametrize("kernels", BACKENDS)
def test_sgd_update_many_checks_factored_gradients_before_writing(kernels):
    Ws = [z2(3, 4) + 1, z2(5, 2) + 1]
    before = [W.copy() for W in Ws]
    with pytest.raises(ValueError, match=r"parameter 1: .*W \(5, 2\), dz \(1, 4\), x \(1, 2\) do not fit"):
        kernels.sgd_update_many(Ws, [(z2(1, 3), z2(1, 4)), (z2(1, 4), z2(1, 2))], 0.1)
    with pytest.raises(TypeError, match=r"parameter 0: .*one dtype"):
        kernels.sgd_update_many(Ws, [(z2(1, 3, dtype=f32), z2(1, 4)), (z2(1, 5), z2(1, 2))], 0.1)
    for W, W0 in zip(Ws, before, strict=True):
        np.testing.assert_array_equal(W, W0)


@pytest.mark.parametrize("kernels", BACKENDS)
def test_sgd_update_many_checks_everything_before_writing(kernels):
    Ws = [z2(3, 4) + 1, z2(2) + 1, z2(5) + 1]
    before = [W.copy() for W in Ws]
    bad_grads = [z2(3, 4), z2(2), z2(4)]  # the third does not fit its parameter
    with pytest.raises(ValueError, match=r"parameter 2: .*dW \(4,\) .* W \(5,\)"):
        kernels.sgd_update_many(Ws, bad_grads, 0.1)
    for W, W0 in zip(Ws, before, strict=True):
        np.testing.assert_array_equal(W, W0)  # the first two were not updated either
    with pytest.raises(TypeError, match=r"parameter 1: .*W float64, dW float32"):
        kernels.sgd_update_many(Ws, [z2(3, 4), z2(2, dtype=f32), z2(5)], 0.1)
    with pytest.raises(ValueError, match=r"3 params, 2 grads"):
        kernels.sgd_update_many(Ws, bad_grads[:2], 0.1)
    with pytest.raises(ValueError, match=r"parameter 0: .*momentum=0.9 needs a velocity"):
        kernels.sgd_update_many(Ws, [z2(3, 4), z2(2), z2(5)], 0.1, momentum=0.9)
    kernels.sgd_update_many([], [], 0.1)  # nothing to do is fine


@pytest.mark.parametrize("kernels", BACKENDS)
def test_sgd_outer_update_reads_factors_that_overlap_W(kernels):
    # x is a view into W itself: the update must use x as it was before W is written.
    W = data((4, 6), np.float64, 70)
    x = W[:1]  # (1, 6), shares W's first row
    dz = data((1, 4), np.float64, 71)
    expected = W - 0.1 * (dz.T @ x.copy())
    kernels.sgd_outer_update(W, dz, x, 0.1)
    assert_close(W, expected, np.float64)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_updates_agree_across_backends(dtype):
    shape = (37, 11)
    states = []
    for kernels in (reference, _cykernels):
        W, velocity = data(shape, dtype, 40), np.zeros(shape, dtype)
        W2, m, v = W.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)
        for step in range(1, 6):
            dW = data(shape, dtype, 40 + step)
            kernels.sgd_update(W, dW, 0.05, momentum=0.9, velocity=velocity, weight_decay=1e-3)
            kernels.adam_update(W2, dW, m, v, 1e-2, 0.9, 0.999, 1e-8, step)
        states.append((W, velocity, W2, m, v))
    for a, b in zip(*states, strict=True):
        assert_close(b, a, dtype)


# --- bad input: a clear TypeError/ValueError naming the argument, never a crash -------------

f64, f32 = np.float64, np.float32


def z2(*shape, dtype=f64):
    return np.zeros(shape, dtype)


def readonly(a):
    a.flags.writeable = False
    return a


# (kernel, args, kwargs, exception, a regex the message must contain)
BAD_INPUTS = [
    ("affine_forward", (z2(2, 3)[0], z2(4, 3), z2(4)), {}, ValueError, r"x must be 2-D.*\(3,\)"),
    ("affine_forward", (z2(2, 3), z2(4, 3, 1), z2(4)), {}, ValueError, r"W must be 2-D"),
    ("affine_forward", (z2(2, 3), z2(4, 3), z2(4, 1)), {}, ValueError, r"b must be 1-D"),
    ("affine_forward", (z2(2, 3), z2(4, 5), z2(4)), {}, ValueError,
     r"x \(2, 3\), W \(4, 5\), b \(4,\)"),
    ("affine_forward", (z2(2, 3), z2(4, 3), z2(5)), {}, ValueError, r"b \(5,\)"),
    ("affine_forward", (z2(2, 3), z2(4, 3, dtype=f32), z2(4)), {}, TypeError,
     r"x float64, W float32"),
    ("affine_forward", (z2(2, 3).astype(np.int64), z2(4, 3), z2(4)), {}, TypeError,
     r"x must be float32 or float64.*int64"),
    ("affine_forward", (z2(2, 3).astype(np.float16), z2(4, 3), z2(4)), {}, TypeError,
     r"x must be float32 or float64.*float16"),
    ("affine_forward", ([[0.0] * 3] * 2, z2(4, 3), z2(4)), {}, TypeError,
     r"x must be a numpy.ndarray, got list"),
    ("affine_forward", (z2(2, 3), z2(4, 3), z2(4)), {"out": z2(4, 2)}, ValueError,
     r"out must have shape \(2, 4\), got \(4, 2\)"),
    ("affine_forward", (z2(2, 3), z2(4, 3), z2(4)), {"out": z2(2, 4, dtype=f32)}, TypeError,
     r"out must have dtype float64, got float32"),
    ("affine_forward", (z2(2, 3), z2(4, 3), z2(4)), {"out": readonly(z2(2, 4))}, ValueError,
     r"out .*read-only"),
    ("affine_sigmoid_forward", (z2(2, 3), z2(4, 5), z2(4)), {}, ValueError, r"W \(4, 5\)"),
    ("sigmoid_forward", (z2(3).astype(np.int32),), {}, TypeError, r"z must be float32"),
    ("sigmoid_forward", (z2(3),), {"out": z2(4)}, ValueError, r"out must have shape \(3,\)"),
    ("sigmoid_forward", (np.zeros(3, dtype=">f8"),), {}, TypeError, r"z must be float32"),
    ("sigmoid_backward", (z2(3), z2(4)), {}, ValueError, r"h \(3,\) and dh \(4,\)"),
    ("sigmoid_backward", (z2(3), z2(3, dtype=f32)), {}, TypeError, r"h float64, dh float32"),
    ("outer_grad", (z2(2, 3), z2(4, 5)), {}, ValueError, r"dz \(2, 3\) and x \(4, 5\)"),
    ("outer_grad", (z2(3), z2(3, 5)), {}, ValueError, r"dz must be 2-D"),
    ("outer_grad", (z2(2, 3), z2(2, 5)), {"out": z2(5, 3)}, ValueError,
     r"out must have shape \(3, 5\)"),
    ("transpose_matvec", (z2(4, 5), z2(2, 3)), {}, ValueError, r"W \(4, 5\) and dz \(2, 3\)"),
    ("transpose_matvec", (z2(4, 5, dtype=f32), z2(2, 4)), {}, TypeError,
     r"W float32, dz float64"),
    ("bias_grad", (z2(3),), {}, ValueError, r"dz must be 2-D"),
    ("bias_grad", (z2(2, 3),), {"out": z2(2)}, ValueError, r"out must have shape \(3,\)"),
    ("bias_grad", (z2(2, 3).astype(bool),), {}, TypeError, r"dz must be float32"),
    ("softmax_cross_entropy_forward", (z2(2, 3), np.array([0, 3])), {}, ValueError,
     r"labels\[1\] = 3 .*\[0, 3\)"),
    ("softmax_cross_entropy_forward", (z2(2, 3), np.array([-1, 0])), {}, ValueError,
     r"labels\[0\] = -1"),
    ("softmax_cross_entropy_forward", (z2(2, 3), np.array([0.0, 1.0])), {}, TypeError,
     r"labels must have an integer dtype"),
    ("softmax_cross_entropy_forward", (z2(2, 3), np.array([0, 1, 2])), {}, ValueError,
     r"labels \(3,\) must have shape \(2,\)"),
    ("softmax_cross_entropy_forward", (z2(2, 3), [0, 1]), {}, TypeError,
     r"labels must be a numpy.ndarray"),
    ("softmax_cross_entropy_forward", (z2(0, 3), np.array([], dtype=int)), {}, ValueError,
     r"z \(0, 3\)"),
    ("softmax_cross_entropy_forward", (z2(3), np.array([0])), {}, ValueError, r"z must be 2-D"),
    ("softmax_cross_entropy_backward", (z2(2, 3), np.array([0, 1])), {"out": z2(3, 2)},
     ValueError, r"out must have shape \(2, 3\)"),
    ("softmax_cross_entropy_backward", (z2(2, 3), np.array([0, 5])), {}, ValueError,
     r"labels\[1\] = 5"),
    ("sgd_update", (readonly(z2(3, 4)), z2(3, 4), 0.1), {}, ValueError, r"W \(shape \(3, 4\)\) is read-only"),
    ("sgd_update", (z2(3, 4), z2(4, 3), 0.1), {}, ValueError, r"dW \(4, 3\) .* W \(3, 4\)"),
    ("sgd_update", (z2(3, 4), z2(3, 4, dtype=f32), 0.1), {}, TypeError, r"W float64, dW float32"),
    ("sgd_update", (z2(3, 4), z2(3, 4), 0.1), {"momentum": 0.9}, ValueError,
     r"momentum=0.9 needs a velocity"),
    ("sgd_update", (z2(3, 4), z2(3, 4), 0.1), {"momentum": 0.9, "velocity": z2(4, 3)},
     ValueError, r"velocity \(4, 3\)"),
    ("sgd_update", (z2(3, 4), z2(3, 4), 0.1), {"momentum": 0.9, "velocity": readonly(z2(3, 4))},
     ValueError, r"velocity .* is read-only"),
    ("sgd_update", (z2(3, 4).astype(np.int64), z2(3, 4), 0.1), {}, TypeError,
     r"W must be float32"),
    ("sgd_outer_update", (z2(2, 4), z2(3, 2), z2(3, 5), 0.1), {}, ValueError,
     r"W \(2, 4\), dz \(3, 2\), x \(3, 5\) do not fit"),
    ("sgd_outer_update", (z2(2, 4), z2(3, 3), z2(3, 4), 0.1), {}, ValueError,
     r"W \(2, 4\), dz \(3, 3\), x \(3, 4\) do not fit"),
    ("sgd_outer_update", (z2(2, 4), z2(3, 2, dtype=f32), z2(3, 4), 0.1), {}, TypeError,
     r"W float64, dz float32, x float64"),
    ("sgd_outer_update", (readonly(z2(2, 4)), z2(3, 2), z2(3, 4), 0.1), {}, ValueError,
     r"W \(shape \(2, 4\)\) is read-only"),
    ("sgd_outer_update", (z2(2, 4), z2(3, 2), z2(3, 4), 0.1), {"momentum": 0.9}, ValueError,
     r"momentum=0.9 needs a velocity"),
    ("sgd_outer_update", (z2(8), z2(3, 2), z2(3, 4), 0.1), {}, ValueError, r"W must be 2-D"),
    ("adam_update", (readonly(z2(3)), z2(3), z2(3), z2(3), 1e-3, 0.9, 0.999, 1e-8, 1), {},
     ValueError, r"W \(shape \(3,\)\) is read-only"),
    ("adam_update", (z2(3), z2(3), readonly(z2(3)), z2(3), 1e-3, 0.9, 0.999, 1e-8, 1), {},
     ValueError, r"m \(shape \(3,\)\) is read-only"),
    ("adam_update", (z2(3), z2(3), z2(3), z2(4), 1e-3, 0.9, 0.999, 1e-8, 1), {},
     ValueError, r"v \(4,\) .* W \(3,\)"),
    ("adam_update", (z2(3), z2(3), z2(3, dtype=f32), z2(3), 1e-3, 0.9, 0.999, 1e-8, 1), {},
     TypeError, r"m float32"),
    ("adam_update", (z2(3), z2(3), z2(3), z2(3), 1e-3, 0.9, 0.999, 1e-8, 0), {},
     ValueError, r"step must be an integer ≥ 1"),
    ("adam_update", (z2(3), z2(3), z2(3), z2(3), 1e-3, 1.0, 0.999, 1e-8, 1), {},
     ValueError, r"beta1 and beta2"),
]


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize(
    "name,args,kwargs,exception,message",
    BAD_INPUTS,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(BAD_INPUTS)],
)
def test_bad_input_is_a_clear_error(kernels, name, args, kwargs, exception, message):
    before = [a.copy() for a in args if isinstance(a, np.ndarray)]
    with pytest.raises(exception, match=message):
        getattr(kernels, name)(*args, **kwargs)
    after = [a for a in args if isinstance(a, np.ndarray)]
    for a, b in zip(before, after, strict=True):  # nothing was written before the check
        np.testing.assert_array_equal(a, b)


NON_CONTIGUOUS = [
    ("affine_forward", lambda: (z2(2, 6)[:, ::2], z2(4, 3), z2(4)), "x"),
    ("affine_forward", lambda: (z2(2, 3), z2(3, 4).T, z2(4)), "W"),
    ("affine_forward", lambda: (z2(2, 3), z2(4, 3), z2(8)[::2]), "b"),
    ("sigmoid_forward", lambda: (z2(4, 4)[:, 1:],), "z"),
    ("sigmoid_backward", lambda: (z2(3, 3), z2(3, 3).T), "dh"),
    ("outer_grad", lambda: (z2(3, 2).T, z2(2, 5)), "dz"),
    ("transpose_matvec", lambda: (z2(5, 4).T, z2(2, 4)), "W"),
    ("bias_grad", lambda: (z2(3, 4).T,), "dz"),
    ("softmax_cross_entropy_forward", lambda: (z2(3, 2).T, np.array([0, 1])), "z"),
    ("sgd_update", lambda: (z2(4, 3).T, z2(3, 4), 0.1), "W"),
    ("adam_update", lambda: (z2(3), z2(6)[::2], z2(3), z2(3), 1e-3, 0.9, 0.999, 1e-8, 1), "dW"),
]


@needs_cython
@pytest.mark.parametrize("name,make_args,argument", NON_CONTIGUOUS)
def test_cython_refuses_non_contiguous(name, make_args, argument):
    with pytest.raises(ValueError, match=rf"\b{argument} must be C-contiguous"):
        getattr(_cykernels, name)(*make_args())


@needs_cython
def test_cython_refuses_non_contiguous_out():
    out = z2(4, 4)[:, :2]
    with pytest.raises(ValueError, match=r"out must be C-contiguous"):
        _cykernels.sigmoid_forward(z2(4, 2), out=out)


@pytest.mark.parametrize("kernels", BACKENDS)
def test_readonly_inputs_are_fine(kernels):
    """Only what a kernel writes must be writeable; the tape marks saved inputs read-only."""
    x, W, b = (readonly(a) for a in layer(3, 4, 5, f64))
    dW = readonly(z2(5, 4))
    z = kernels.affine_forward(x, W, b)
    kernels.sgd_update(z2(5, 4), dW, 0.1)
    assert z.flags.writeable


@needs_cython
@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_instruction_set_variant_agrees(isa, dtype):
    """The batch-1 loops exist for SSE2, AVX2 and AVX-512; each gives the reference's numbers."""
    used = _cykernels.ISA
    try:
        _cykernels._select_isa(isa)  # falls back to a narrower variant on older CPUs
        # (1, 50, 6): four-row blocks plus a row, and each of the vector loops' tails
        for N, D, M in [(1, 784, 100), (1, 37, 5), (1, 50, 6), (1, 1, 3), (3, 70, 9), (64, 100, 33)]:
            for name in ["affine_forward", "affine_sigmoid_forward", "outer_grad",
                         "transpose_matvec", "bias_grad", "sigmoid_backward"]:
                assert_close(_call_dense(_cykernels, name, N, D, M, dtype),
                             _call_dense(reference, name, N, D, M, dtype), dtype)
        # The update loops, every branch (with and without velocity, weight decay).
        for shape in [(1,), (37,), (100, 33)]:
            for momentum, weight_decay, with_velocity in [(0.0, 0.0, False), (0.0, 0.1, False),
                                                          (0.9, 0.01, True)]:
                got = [data(shape, dtype, 1), data(shape, dtype, 2), data(shape, dtype, 3)]
                want = [a.copy() for a in got]
                for kernels, (W, dW, v) in ((_cykernels, got), (reference, want)):
                    kernels.sgd_update(W, dW, 0.1, momentum=momentum,
                                       velocity=v if with_velocity else None,
                                       weight_decay=weight_decay)
                assert_close(got[0], want[0], dtype)
                assert_close(got[2], want[2], dtype)
    finally:
        _cykernels._select_isa(used)


@needs_cython
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_and_scipy_blas_paths_agree(dtype):
    """Products from ``numpy_matmul`` multiply-adds on go to NumPy's matmul (one BLAS thread
    pool for the process), smaller ones to scipy's BLAS; affine_forward on NumPy's path
    computes zᵀ and transposes it when N < M. Force every path and compare with NumPy."""
    saved = _cykernels._tuning()
    names = ["affine_forward", "affine_sigmoid_forward", "outer_grad", "transpose_matvec"]
    try:
        # N < M and N > M, σ by the C loop (N·M < 512) and by NumPy's ufuncs, odd sizes
        # for the transposing pass's 32 x 32 tiles, and the workloads' shapes.
        for N, D, M in [(2, 1, 1), (3, 5, 7), (7, 5, 3), (33, 17, 65), (65, 9, 31),
                        (64, 100, 33), (64, 784, 256), (256, 64, 10)]:
            expected = [_call_dense(reference, n, N, D, M, dtype) for n in names]
            for tuning in [dict(numpy_matmul=1 << 62, affine_nn=1e300),
                           dict(numpy_matmul=1 << 62, affine_nn=0),
                           dict(numpy_matmul=0, affine_transposed=0),
                           dict(numpy_matmul=0, affine_transposed=1)]:
                _cykernels._tuning(**tuning)
                for name, want in zip(names, expected, strict=True):
                    got = _call_dense(_cykernels, name, N, D, M, dtype)
                    assert got.shape == want.shape and got.dtype == want.dtype
                    assert_close(got, want, dtype)
                    out = np.full(want.shape, np.nan, dtype)
                    assert _call_dense_out(name, N, D, M, dtype, out) is out
                    assert_close(out, want, dtype)
    finally:
        _cykernels._tuning(**saved)
    assert _cykernels._tuning() == saved


@needs_cython
@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_layouts_agree(isa, dtype):
    """affine_forward's scipy-BLAS path either calls gemm 'T','N' on x and W as stored, or
    transposes x into scratch, calls 'N','N' and transposes zᵀ back adding b (and σ), the
    transposes in L x L register blocks with ragged edges: sizes around 2, 4, 8 and 16
    lanes, N ≥ 16 (the layout's minimum), D or M of 1."""
    used, saved = _cykernels.ISA, _cykernels._tuning()
    names = ["affine_forward", "affine_sigmoid_forward"]
    try:
        _cykernels._select_isa(isa)
        for N, D, M in [(16, 1, 1), (16, 16, 16), (17, 33, 65), (31, 8, 9), (32, 64, 64),
                        (33, 5, 7), (48, 100, 33), (64, 64, 10), (100, 20, 100)]:
            expected = [_call_dense(reference, n, N, D, M, dtype) for n in names]
            for affine_nn in [1e300, 0]:  # 'T','N' always; 'N','N' from 16 rows on
                _cykernels._tuning(affine=0, numpy_matmul=1 << 62, affine_nn=affine_nn)
                for name, want in zip(names, expected, strict=True):
                    assert_close(_call_dense(_cykernels, name, N, D, M, dtype), want, dtype)
                    out = np.full(want.shape, np.nan, dtype)
                    assert _call_dense_out(name, N, D, M, dtype, out) is out
                    assert_close(out, want, dtype)
    finally:
        _cykernels._select_isa(used)
        _cykernels._tuning(**saved)
    assert _cykernels._tuning() == saved


def _call_dense_out(name, N, D, M, dtype, out):
    x, W, b = layer(N, D, M, dtype)
    dz = data((N, M), dtype, 7)
    args = {"affine_forward": (x, W, b), "affine_sigmoid_forward": (x, W, b),
            "outer_grad": (dz, x), "transpose_matvec": (W, dz)}[name]
    return getattr(_cykernels, name)(*args, out=out)


@needs_cython
def test_tuning_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown"):
        _cykernels._tuning(bogus=1)


@needs_cython
def test_select_isa_refuses_unknown_names():
    with pytest.raises(ValueError, match="limit must be one of"):
        _cykernels._select_isa("sse9")
