"""The compiled σ and e^x (``_cykernels``' vector exp): accuracy in ulps, edge values, FP flags.

σ(z) = 1 / (1 + e^(−z)) and the exps of softmax run on a branch-free vector e^(−|a|),
compiled for SSE2, AVX2 and AVX-512; every test runs on each variant this CPU has.
Accuracy is measured in units in the last place (ulp) of the exact result: float32
against float64 math, float64 against long double; and against the reference backend.
"""

import ctypes
import ctypes.util
import importlib
import warnings

import numpy as np
import pytest

from fastgrad.backends import reference

try:
    _cykernels = importlib.import_module("fastgrad.backends._cykernels")
except ImportError:
    _cykernels = None

pytestmark = pytest.mark.skipif(_cykernels is None, reason="compiled kernels not built")

DTYPES = [np.float32, np.float64]
# Measured maxima over 10⁶ random z: 2.8 ulp float32, 2.7 float64 (the reference: 3.4, 2.7;
# e/(1 + e) for z < 0 rounds three times). The exp alone: 1.1 ulp.
MAX_ULP = 4.0
MAX_ULP_EXP = 2.0


@pytest.fixture(params=["base", "avx2", "avx512"])
def isa(request):
    """Run the test on one instruction-set variant (a narrower one where the CPU lacks it)."""
    used = _cykernels.ISA
    try:
        yield _cykernels._select_isa(request.param)
    finally:
        _cykernels._select_isa(used)


def exact_sigmoid(z):
    """σ(z) in long double (float64 math would be exact enough for float32 only)."""
    z = np.asarray(z, np.longdouble)
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def ulp_error(got, want, dtype):
    """|got − want| in ulps of want rounded to ``dtype`` (the subnormal spacing below)."""
    spacing = np.spacing(np.abs(np.asarray(want).astype(dtype))).astype(np.longdouble)
    spacing = np.maximum(spacing, np.finfo(dtype).smallest_subnormal)
    return np.abs(np.asarray(got, np.longdouble) - np.asarray(want, np.longdouble)) / spacing


def edge_values(dtype):
    info = np.finfo(dtype)
    values = [
        0.0,
        1.0,
        0.5,
        1e-30,
        16.6,
        36.8,
        88.0,
        89.0,
        103.0,
        104.0,
        105.0,
        709.0,
        745.0,
        746.0,
        1e5,
        float(info.max),
        float(info.tiny),
        float(info.smallest_subnormal),
    ]
    values = [v for v in values if v <= info.max]
    return np.array(values + [-v for v in values] + [np.inf, -np.inf, np.nan, -np.nan], dtype)


# --- accuracy ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_within_ulps_of_exact_math_and_reference(isa, dtype):
    rng = np.random.default_rng(5)
    limit = 110.0 if dtype == np.float32 else 760.0
    z = np.concatenate(
        [rng.uniform(-limit, limit, 50_000), 4 * rng.standard_normal(50_000), np.linspace(-limit, limit, 20_001)]
    ).astype(dtype)
    h = _cykernels.sigmoid_forward(z)
    assert h.dtype == dtype
    assert ulp_error(h, exact_sigmoid(z), dtype).max() <= MAX_ULP
    assert ulp_error(h, reference.sigmoid_forward(z), dtype).max() <= MAX_ULP


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_within_ulps_where_sigma_is_exp(isa, dtype):
    """For z ≪ 0, σ(z) = e^z / (1 + e^z) is e^z to the last bit in float64 (z < −40), down
    into the subnormals (z < −708): the exp alone, and its rounding to subnormal results."""
    rng = np.random.default_rng(6)
    low, high = (-103.0, -17.0) if dtype == np.float32 else (-745.0, -40.0)
    z = rng.uniform(low, high, 100_000).astype(dtype)
    assert ulp_error(_cykernels.sigmoid_forward(z), exact_sigmoid(z), dtype).max() <= MAX_ULP_EXP


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [1, 3, 7, 8, 9, 10, 16, 17, 33, 1000])
def test_softmax_exps_within_ulps(isa, dtype, K):
    """softmax's e^(z − m) runs on the same vector exp; K around every vector width. Exact
    math from the same rounded z − m (its rounding is the algorithm's, not the exp's); the
    row sum adds rounding growing with K (measured: ≤ 3 ulp at K ≤ 33, ≤ 9.3 at K = 1000)."""
    z = (np.random.default_rng(K).standard_normal((6, K)) * 20).astype(dtype)
    t = np.arange(6) % K
    loss, probs = _cykernels.softmax_cross_entropy_forward(z, t)
    e = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.longdouble))
    exact = e / e.sum(axis=1, keepdims=True)
    assert probs.dtype == dtype
    assert ulp_error(probs, exact, dtype).max() <= MAX_ULP + K / 100
    ref_loss, ref_probs = reference.softmax_cross_entropy_forward(z, t)
    assert ulp_error(probs, ref_probs, dtype).max() <= 2 * (MAX_ULP + K / 100)  # both round
    assert loss == pytest.approx(ref_loss, rel=1e-5 if dtype == np.float32 else 1e-12, abs=1e-12)


# --- edge values ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_edge_values(isa, dtype):
    """±0, ±inf, NaN, the under/overflow borders of e^x, subnormals; each value at every
    position of a vector and in the padded tail (offsets 0…16 shift it through the lanes)."""
    edges = edge_values(dtype)
    for offset in range(17):
        z = np.concatenate([np.zeros(offset, dtype), edges, edges[::-1]])
        h = _cykernels.sigmoid_forward(z)
        want = reference.sigmoid_forward(z)
        np.testing.assert_array_equal(np.isnan(h), np.isnan(z))
        finite = ~np.isnan(z)
        assert ulp_error(h[finite], want[finite], dtype).max() <= MAX_ULP
        assert ulp_error(h[finite], exact_sigmoid(z[finite]), dtype).max() <= MAX_ULP
    h = _cykernels.sigmoid_forward(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype))
    np.testing.assert_array_equal(h[:4], np.array([0.5, 0.5, 1.0, 0.0], dtype))
    assert np.isnan(h[4])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_where_the_exact_value_rounds(isa, dtype):
    """σ(z) is exactly 1 once e^(−z) < ulp(1)/2, and 0 once σ(z) rounds below the smallest
    subnormal; just above that it is the subnormal e^z itself."""
    big = 18.0 if dtype == np.float32 else 38.0
    low, zero = (-103.0, -104.0) if dtype == np.float32 else (-744.0, -746.0)
    h = _cykernels.sigmoid_forward(np.array([big, low, zero], dtype))
    assert h[0] == 1.0 and h[2] == 0.0
    assert 0 < h[1] < np.finfo(dtype).tiny
    assert ulp_error(h[1:2], exact_sigmoid([low]), dtype).max() <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000])
def test_sigmoid_every_length(isa, dtype, n):
    """Full vector steps (two and one at a time) and the zero-padded tail, in place too."""
    z = (np.random.default_rng(n).standard_normal(n) * 8).astype(dtype)
    want = reference.sigmoid_forward(z)
    h = _cykernels.sigmoid_forward(z)
    assert h.dtype == dtype and h.shape == (n,)
    assert ulp_error(h, want, dtype).max(initial=0) <= MAX_ULP
    assert _cykernels.sigmoid_forward(z, out=z) is z
    np.testing.assert_array_equal(z, h)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_out_may_overlap_its_input(isa, dtype):
    buffer = (np.random.default_rng(9).standard_normal(1001) * 8).astype(dtype)
    z = buffer[1:]
    want = reference.sigmoid_forward(z.copy())
    h = _cykernels.sigmoid_forward(z, out=buffer[:-1])  # shifted by one element
    assert ulp_error(h, want, dtype).max() <= MAX_ULP
    grid = (np.random.default_rng(10).standard_normal((37, 29)) * 8).astype(dtype)
    want = reference.sigmoid_forward(grid.copy())
    assert _cykernels.sigmoid_forward(grid, out=grid) is grid
    assert ulp_error(grid, want, dtype).max() <= MAX_ULP


# --- tails stay inside the arrays ---------------------------------------------------------


def guarded_array(n, dtype):
    """A fresh (n,) array whose last element ends where an inaccessible page begins: a read
    or write past it faults (the test process dies) instead of passing unnoticed. The pages
    are never unmapped (the arrays do not own them); a test makes a few dozen."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = 4096
    nbytes = n * np.dtype(dtype).itemsize
    span = -(-nbytes // page) * page
    base = libc.mmap(None, span + page, 0x1 | 0x2, 0x02 | 0x20, -1, 0)  # RW, private anonymous
    if base in (None, ctypes.c_void_p(-1).value) or libc.mprotect(base + span, page, 0) != 0:
        pytest.skip("cannot map a guard page")
    buffer = (ctypes.c_char * nbytes).from_address(base + span - nbytes)
    return np.frombuffer(buffer, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tails_read_and_write_nothing_past_the_arrays(isa, dtype):
    """The last partial vector goes through masked loads and stores (AVX-512) or element
    loops: σ, σ(z + b) and softmax's exps on arrays that end at a guard page, every tail
    length, in place too."""
    rng = np.random.default_rng(11)
    for n in range(1, 41):
        z = guarded_array(n, dtype)
        z[:] = rng.standard_normal(n) * 8
        want = reference.sigmoid_forward(z.copy())
        h = guarded_array(n, dtype)
        assert _cykernels.sigmoid_forward(z, out=h) is h
        assert ulp_error(h, want, dtype).max() <= MAX_ULP
        _cykernels.sigmoid_forward(z, out=z)
        np.testing.assert_array_equal(z, h)
        logits = guarded_array(n, dtype).reshape(1, n)
        logits[:] = rng.standard_normal((1, n)) * 4
        loss, probs = _cykernels.softmax_cross_entropy_forward(logits, np.array([n - 1]))
        ref_loss, ref_probs = reference.softmax_cross_entropy_forward(logits, np.array([n - 1]))
        assert ulp_error(probs, ref_probs, dtype).max() <= 2 * (MAX_ULP + n / 100)
    saved = _cykernels._tuning()
    try:  # σ(z + b) row by row with b's tail read by mask: NumPy's matmul, rows ≥ 64
        _cykernels._tuning(**PATHS["numpy matmul"])
        for M in range(64, 81):
            x = rng.standard_normal((3, 5)).astype(dtype)
            W = rng.standard_normal((M, 5)).astype(dtype)
            b = guarded_array(M, dtype)
            b[:] = rng.standard_normal(M)
            h = _cykernels.affine_sigmoid_forward(x, W, b)
            z = _cykernels.affine_forward(x, W, b)
            assert ulp_error(h, reference.sigmoid_forward(z), dtype).max() <= MAX_ULP
    finally:
        _cykernels._tuning(**saved)


# --- no floating-point exceptions ---------------------------------------------------------


def _fenv():
    """(feclearexcept, fetestexcept, mask of FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW), x86 glibc."""
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no libm to read the floating-point status")
    libm = ctypes.CDLL(name)
    return libm.feclearexcept, libm.fetestexcept, 0x01 | 0x04 | 0x08


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_invalid_overflow_or_divide_flags(isa, dtype):
    """Inf and NaN inputs raise no FP exception flag inside the kernels (underflow and
    inexact are expected: results round into the subnormals), and no NumPy warning."""
    clear, test, mask = _fenv()
    z = np.tile(edge_values(dtype), 3)
    x = np.ones((1, 1), dtype)
    W = np.array([[1000.0], [-1000.0], [np.inf], [-np.inf], [np.nan]], dtype)
    logits = np.array([[0.0, -np.inf, -1e30, 88.0], [np.inf, 1.0, 2.0, -np.inf]], dtype)
    labels = np.array([0, 1])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for call in [
            lambda: _cykernels.sigmoid_forward(z),
            lambda: _cykernels.sigmoid_forward(z[:5]),
            lambda: _cykernels.affine_sigmoid_forward(x, W, np.zeros(5, dtype)),
            lambda: _cykernels.softmax_cross_entropy_forward(logits[:1], labels[:1]),
        ]:
            clear(0x3D)
            call()
            assert test(0x3D) & mask == 0
        h = _cykernels.affine_sigmoid_forward(x, W, np.zeros(5, dtype))
    np.testing.assert_array_equal(h[0, :4], [1.0, 0.0, 1.0, 0.0])
    assert np.isnan(h[0, 4])


# --- σ fused into the affine kernel, every path --------------------------------------------


PATHS = {
    "loop": dict(affine=1 << 40),
    "scipy gemm": dict(affine=0, numpy_matmul=1 << 62, affine_nn=1e300),
    "scipy gemm, x transposed": dict(affine=0, numpy_matmul=1 << 62, affine_nn=0),
    "numpy matmul": dict(affine=0, numpy_matmul=0, affine_transposed=0),
    "numpy matmul, transposed": dict(affine=0, numpy_matmul=0, affine_transposed=1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("N,D,M", [(1, 20, 7), (3, 5, 70), (33, 17, 65), (65, 9, 31), (64, 100, 40)])
def test_affine_sigmoid_every_path(isa, dtype, path, N, D, M):
    """σ(x Wᵀ + b) with pre-activations up to ±300 (saturated and subnormal outputs) on each
    path; against σ of the same path's affine_forward, so only σ's error is measured."""
    rng = np.random.default_rng(N * M)
    x = rng.standard_normal((N, D)).astype(dtype)
    W = (rng.standard_normal((M, D)) * 30 / np.sqrt(D)).astype(dtype)
    b = (rng.standard_normal(M) * 10).astype(dtype)
    saved = _cykernels._tuning()
    try:
        _cykernels._tuning(**PATHS[path])
        z = _cykernels.affine_forward(x, W, b)
        h = _cykernels.affine_sigmoid_forward(x, W, b)
        # out= takes the path's layout without a scratch of out's size (SPEC §2)
        z_out = _cykernels.affine_forward(x, W, b, out=np.empty((N, M), dtype))
        out = np.full((N, M), np.nan, dtype)
        assert _cykernels.affine_sigmoid_forward(x, W, b, out=out) is out
    finally:
        _cykernels._tuning(**saved)
    assert h.dtype == dtype and h.shape == (N, M)
    assert ulp_error(h, reference.sigmoid_forward(z), dtype).max() <= MAX_ULP
    assert ulp_error(out, reference.sigmoid_forward(z_out), dtype).max() <= MAX_ULP
