# cython: language_level=3
"""The compiled kernels: one source for float32 and float64 (the fused type ``floating``).

Two layers, as in scikit-learn's ``_cython_blas``/``_loss``:

- C-level kernels ``_name(...)``: ``cdef ... noexcept nogil`` loops on raw pointers to
  C-contiguous buffers, no Python objects. They are called with the GIL released, except
  calls touching fewer than ``NOGIL_MIN`` elements (a few µs at most), for which releasing
  and retaking it would cost more than the loop.
- Python-facing wrappers ``name(...)``: check every argument first (type, dtype, ndim,
  shapes, contiguity, ``out``), own the error messages, then call one C kernel.

The wrappers read arrays through the NumPy C API (``PyArray_DATA``), not typed
memoryviews: acquiring a memoryview costs ~0.16 µs per argument, a third of a
batch-1 kernel. Matrix products go to BLAS when the product is large enough to pay for
it (``scipy.linalg.cython_blas`` for products BLAS runs on one thread, NumPy's own
``matmul`` for the threaded ones, so the process has one OpenBLAS thread pool), and to
typed loops below that (batch 1: an outer product by a loop is ~10x faster than NumPy's
matmul); the crossover sizes are measured (docs/kernels.md) and live in ``_tuning``. No OpenMP: its threads fight OpenBLAS's own on
a 2-core machine.

Rows are examples: the lecture's z = W x + b for one column x is z = x Wᵀ + b here.
BLAS is column-major; a C-contiguous (R, C) array is, to BLAS, its (C, R) transpose.
"""

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport exp, expf, fabs, fabsf, log, log1p, log1pf, logf, sqrt, sqrtf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

cnp.import_array()

NAME = "cython"

from fastgrad.backends import KERNELS

__all__ = list(KERNELS)

# Crossovers, loop → BLAS gemm, in rows of the batch (measured; docs/kernels.md). With one
# row a product is a matrix–vector one, bound by reading W once: a loop does it as fast as
# BLAS and never wakes BLAS's threads. From two rows on, gemm's blocking wins.
cdef Py_ssize_t AFFINE_LOOP_ROWS = 1
cdef Py_ssize_t OUTER_LOOP_ROWS = 1
cdef Py_ssize_t TMATVEC_LOOP_ROWS = 1
# BLAS takes 32-bit int sizes: larger arrays stay on the loops.
cdef Py_ssize_t INT_MAX_ = 2147483647
# From this many multiply-adds (rows · inner · outer) on, a product goes to NumPy's matmul
# instead of scipy's BLAS. NumPy and SciPy ship different OpenBLAS builds, each with its
# own thread pool: products this large are the ones OpenBLAS runs on several threads
# (its own cut-off is m·n·k > 65536·4), and two pools spinning on two cores slow each
# other down, so every threaded product goes to NumPy's pool, the one the rest of the
# process uses. Below it both builds run one thread and scipy's is called without
# Python overhead (~1 µs a call). NumPy's build is also faster at several of the
# workloads' shapes (docs/kernels.md).
cdef double NUMPY_MATMUL_MIN = 262144
# affine_forward on NumPy's BLAS computes zᵀ = W xᵀ and transposes it (adding b on the way)
# when the batch has fewer rows than W: OpenBLAS's sgemm runs the x·Wᵀ product 15–25 %
# faster that way round at the workloads' shapes (docs/kernels.md), more than the
# transposing pass costs. AFFINE_TRANSPOSED = 0 turns it off.
cdef bint AFFINE_TRANSPOSED = 1
# affine_forward on scipy's BLAS (the products below NUMPY_MATMUL_MIN) transposes x into
# scratch, calls gemm 'N','N' and transposes zᵀ back (adding b) when the product has at
# least AFFINE_NN multiply-adds per transposed element, D·M / (D + M) ≥ AFFINE_NN, and
# N ≥ 16 rows: scipy's OpenBLAS ran 'N','N' ~2x faster than the direct 'T','N' there
# (32x64→64: 2.1 against 5.9 µs), and the transposes cost ~0.2-0.35 ns an element; at
# M = 10 they ate the gain, below 16 rows 'N','N' was no faster (docs/kernels.md).
# AFFINE_NN = 0 takes it for every shape of 16 rows or more, a huge value never.
cdef double AFFINE_NN = 24
cdef object _np_matmul = np.matmul
# A call that reads and writes fewer elements than this keeps the GIL: releasing and
# retaking it costs ~65-120 ns, 10-25 % of a kernel of a few hundred ns (W4's bias_grad,
# every batch-1 kernel of a 100→10 layer), while such a call holds it a few µs at most
# (a product of 16384 elements, e.g. 52x52x52, takes ~3 µs). Larger calls release it.
cdef Py_ssize_t NOGIL_MIN = 16384

cdef extern from "Python.h":
    ctypedef struct PyThreadState
    PyThreadState* PyEval_SaveThread() nogil
    void PyEval_RestoreThread(PyThreadState*) nogil

# scipy's BLAS (scipy.linalg.cython_blas), looked up when a product first needs it:
# importing scipy.linalg takes ~0.3 s, most of what `import fastgrad` took before.
ctypedef void (*dgemm_t)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                         double*, double*, int*) noexcept nogil
ctypedef void (*sgemm_t)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                         float*, float*, int*) noexcept nogil
cdef dgemm_t dgemm = NULL
cdef sgemm_t sgemm = NULL


cdef void* _blas_function(str name) except NULL:
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


cdef inline int _need_blas(Py_ssize_t rows, Py_ssize_t loop_rows) except -1:
    """Load scipy's gemm before a product of ``rows`` batch rows that may call it."""
    global dgemm, sgemm
    if dgemm == NULL and rows > loop_rows:
        sgemm = <sgemm_t>_blas_function("sgemm")
        dgemm = <dgemm_t>_blas_function("dgemm")
    return 0


def _tuning(**rows):
    """Read (and, for benchmarks and tests, set) the crossovers: the largest batch each
    kernel loops over before it calls BLAS, the product size (multiply-adds) from which
    BLAS means NumPy's matmul rather than scipy's, and affine_forward's layouts:
    ``_tuning(affine=1, outer=1, transpose_matvec=1, numpy_matmul=262144,
    affine_transposed=True, affine_nn=24, nogil_min=16384)`` (the last: the elements a call
    reads and writes from which it releases the GIL)."""
    global AFFINE_LOOP_ROWS, OUTER_LOOP_ROWS, TMATVEC_LOOP_ROWS, NUMPY_MATMUL_MIN
    global AFFINE_TRANSPOSED, AFFINE_NN, NOGIL_MIN
    _need_blas(1, 0)  # a crossover set to 0 rows sends batch-1 products to BLAS too
    unknown = set(rows) - {"affine", "outer", "transpose_matvec", "numpy_matmul",
                           "affine_transposed", "affine_nn", "nogil_min"}
    if unknown:
        raise ValueError(f"unknown kernels {sorted(unknown)}")
    AFFINE_LOOP_ROWS = rows.get("affine", AFFINE_LOOP_ROWS)
    OUTER_LOOP_ROWS = rows.get("outer", OUTER_LOOP_ROWS)
    TMATVEC_LOOP_ROWS = rows.get("transpose_matvec", TMATVEC_LOOP_ROWS)
    NUMPY_MATMUL_MIN = rows.get("numpy_matmul", NUMPY_MATMUL_MIN)
    AFFINE_TRANSPOSED = rows.get("affine_transposed", AFFINE_TRANSPOSED)
    AFFINE_NN = rows.get("affine_nn", AFFINE_NN)
    NOGIL_MIN = rows.get("nogil_min", NOGIL_MIN)
    return {"affine": AFFINE_LOOP_ROWS, "outer": OUTER_LOOP_ROWS,
            "transpose_matvec": TMATVEC_LOOP_ROWS, "numpy_matmul": int(NUMPY_MATMUL_MIN),
            "affine_transposed": bool(AFFINE_TRANSPOSED), "affine_nn": AFFINE_NN,
            "nogil_min": NOGIL_MIN}


cdef inline bint _numpy_product(Py_ssize_t rows, Py_ssize_t loop_rows, Py_ssize_t a,
                                Py_ssize_t b) noexcept:
    """Does a product of ``rows`` batch rows by a (a, b) matrix go to NumPy's matmul?"""
    return rows > loop_rows and <double>rows * <double>a * <double>b >= NUMPY_MATMUL_MIN


# ---------------------------------------------------------------------------------------
# Argument checks (Python level, before any loop). Messages match _checks.py.
# ---------------------------------------------------------------------------------------

cdef inline tuple _shp(object a):
    return (<object>a).shape


cdef inline cnp.ndarray _check(str name, object a, int ndim):
    """``a`` as an ndarray if it is native float32/float64, ``ndim``-D (-1: any), C-contiguous."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t != cnp.NPY_FLOAT64 and t != cnp.NPY_FLOAT32) or cnp.PyArray_ISBYTESWAPPED(arr):
        raise TypeError(
            f"{name} must be float32 or float64, got dtype {arr.dtype} (shape {_shp(arr)})")
    if ndim >= 0 and cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {_shp(arr)}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(
            f"{name} must be C-contiguous (shape {_shp(arr)}, strides {(<object>arr).strides}); "
            "pass numpy.ascontiguousarray(...)")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{name} must be aligned (shape {_shp(arr)})")
    return arr


cdef inline int _same_dtype(str n1, cnp.ndarray a1, str n2, cnp.ndarray a2,
                            str n3=None, cnp.ndarray a3=None) except -1:
    cdef int t = cnp.PyArray_TYPE(a1)
    if cnp.PyArray_TYPE(a2) != t or (a3 is not None and cnp.PyArray_TYPE(a3) != t):
        listed = f"{n1} {a1.dtype}, {n2} {a2.dtype}"
        if a3 is not None:
            listed += f", {n3} {a3.dtype}"
        raise TypeError(f"arguments must share one dtype, got {listed}")
    return 0


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_NDIM(b) != nd:
        return False
    cdef int i
    for i in range(nd):
        if cnp.PyArray_DIMS(a)[i] != cnp.PyArray_DIMS(b)[i]:
            return False
    return True


cdef inline cnp.ndarray _out(object out, cnp.ndarray like, int nd, cnp.npy_intp* dims):
    """A fresh (dims) array of ``like``'s dtype, or ``out`` checked to be exactly that."""
    cdef int t = cnp.PyArray_TYPE(like)
    if out is None:
        return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, t, 0)
    cdef cnp.ndarray o = _check("out", out, -1)
    cdef bint ok = cnp.PyArray_NDIM(o) == nd
    cdef int i
    if ok:
        for i in range(nd):
            if cnp.PyArray_DIMS(o)[i] != dims[i]:
                ok = False
    if not ok:
        shape = tuple([dims[i] for i in range(nd)])
        raise ValueError(f"out must have shape {shape}, got {_shp(o)}")
    if cnp.PyArray_TYPE(o) != t:
        raise TypeError(f"out must have dtype {like.dtype}, got {o.dtype}")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError(f"out (shape {_shp(o)}) is read-only")
    return o


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Do the (contiguous) buffers of a and b share any byte?"""
    cdef char* pa = <char*>cnp.PyArray_DATA(a)
    cdef char* pb = <char*>cnp.PyArray_DATA(b)
    cdef cnp.npy_intp na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


cdef inline cnp.ndarray _unshared(cnp.ndarray a, cnp.ndarray out):
    """``a``, or a copy of it if it shares bytes with ``out`` (elementwise loops read each
    input element before writing the same index, so only distinct overlapping buffers
    need the copy; we copy on any overlap but the exact alias)."""
    if _overlap(a, out) and cnp.PyArray_DATA(a) != cnp.PyArray_DATA(out):
        return a.copy()
    return a


cdef inline int _disjoint(str name_a, cnp.ndarray a, str name_b, cnp.ndarray b) except -1:
    if _overlap(a, b):
        raise ValueError(f"{name_a} {_shp(a)} and {name_b} {_shp(b)} must not share memory "
                         "(both are updated in place)")
    return 0


cdef inline int _writeable(str name, cnp.ndarray a) except -1:
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(
            f"{name} (shape {_shp(a)}) is read-only; the tape marks a parameter read-only "
            "while a graph that saved it is alive: run backward() (or drop the graph) "
            "before updating it")
    return 0


cdef inline int _fits(str name, cnp.ndarray a, str ref_name, cnp.ndarray ref) except -1:
    if not _same_shape(a, ref):
        raise ValueError(f"{name} {_shp(a)} must have the shape of {ref_name} {_shp(ref)}")
    return 0


# ---------------------------------------------------------------------------------------
# C-level kernels: noexcept nogil, raw pointers, C-contiguous row-major buffers.
# ---------------------------------------------------------------------------------------

# The batch-1 loops, transposes, elementwise loops and σ/e^x are C (csrc/fg_kernels.h,
# csrc/fg_vexp.h), compiled per ISA (SSE2, AVX2+FMA, AVX-512) and picked at import by the
# CPU that runs the wheel (fg_select_isa): no -march=native build.
cdef extern from "fg_kernels.h":
    void fg_rowdots_d(const double* W, const double* x, const double* b, double* z,
                      Py_ssize_t M, Py_ssize_t D) noexcept nogil
    void fg_rowdots_f(const float* W, const float* x, const float* b, float* z,
                      Py_ssize_t M, Py_ssize_t D) noexcept nogil
    void fg_lincomb_d(double* y, const double* c, Py_ssize_t cs, const double* X, Py_ssize_t K,
                      Py_ssize_t n) noexcept nogil
    void fg_lincomb_f(float* y, const float* c, Py_ssize_t cs, const float* X, Py_ssize_t K,
                      Py_ssize_t n) noexcept nogil
    void fg_sgd_d(double* W, const double* dW, double* v, Py_ssize_t n, double lr, double mu,
                  double wd) noexcept nogil
    void fg_sgd_f(float* W, const float* dW, float* v, Py_ssize_t n, float lr, float mu,
                  float wd) noexcept nogil
    void fg_sgdrank1_d(double* W, double c, const double* x, double* v, Py_ssize_t n, double lr,
                       double mu, double wd) noexcept nogil
    void fg_sgdrank1_f(float* W, float c, const float* x, float* v, Py_ssize_t n, float lr,
                       float mu, float wd) noexcept nogil
    void fg_colsum_d(const double* dz, double* out, Py_ssize_t N, Py_ssize_t M) noexcept nogil
    void fg_colsum_f(const float* dz, float* out, Py_ssize_t N, Py_ssize_t M) noexcept nogil
    void fg_sigback_d(const double* h, const double* dh, double* dz, Py_ssize_t n) noexcept nogil
    void fg_sigback_f(const float* h, const float* dh, float* dz, Py_ssize_t n) noexcept nogil
    void fg_addrows_d(double* z, const double* b, Py_ssize_t N, Py_ssize_t M, int sig) noexcept nogil
    void fg_addrows_f(float* z, const float* b, Py_ssize_t N, Py_ssize_t M, int sig) noexcept nogil
    void fg_transpose_d(double* t, const double* a, const double* b, Py_ssize_t R, Py_ssize_t C,
                        int sig) noexcept nogil
    void fg_transpose_f(float* t, const float* a, const float* b, Py_ssize_t R, Py_ssize_t C,
                        int sig) noexcept nogil
    void fg_sigmoid_d(const double* z, const double* b, double* h, Py_ssize_t n) noexcept nogil
    void fg_sigmoid_f(const float* z, const float* b, float* h, Py_ssize_t n) noexcept nogil
    double fg_expsum_d(const double* z, double m, double* p, Py_ssize_t K) noexcept nogil
    float fg_expsum_f(const float* z, float m, float* p, Py_ssize_t K) noexcept nogil
    const char* fg_select_isa(int limit) noexcept nogil


def _select_isa(str limit="avx512"):
    """Use the widest of base (SSE2), avx2, avx512 this CPU runs, up to ``limit``; its name.

    Tests call it to run every variant; FASTGRAD_ISA caps it at import.
    """
    levels = {"base": 0, "avx2": 1, "avx512": 2}
    if limit not in levels:
        raise ValueError(f"limit must be one of {', '.join(levels)}, got {limit!r}")
    return fg_select_isa(levels[limit]).decode()


import os as _os

ISA = _select_isa(_os.environ.get("FASTGRAD_ISA", "avx512"))


cdef inline void _rowdots(const floating* W, const floating* x, const floating* b, floating* z,
                          Py_ssize_t M, Py_ssize_t D) noexcept nogil:
    """z[i] = Wᵢ · x + b[i] for the M rows of W (M, D)."""
    if floating is float:
        fg_rowdots_f(W, x, b, z, M, D)
    else:
        fg_rowdots_d(W, x, b, z, M, D)


cdef inline void _lincomb(floating* y, const floating* c, Py_ssize_t cs, const floating* X,
                          Py_ssize_t K, Py_ssize_t n) noexcept nogil:
    """y = Σₖ c[k·cs] Xₖ over the K rows of X (K, n)."""
    if floating is float:
        fg_lincomb_f(y, c, cs, X, K, n)
    else:
        fg_lincomb_d(y, c, cs, X, K, n)


cdef inline void _gemm(char transa, char transb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """Column-major C = op(A) op(B) + beta C through BLAS (s/dgemm)."""
    cdef int m_ = <int>m, n_ = <int>n, k_ = <int>k
    cdef int lda_ = <int>lda, ldb_ = <int>ldb, ldc_ = <int>ldc
    cdef floating one = 1
    if floating is float:
        sgemm(&transa, &transb, &m_, &n_, &k_, &one, <float*>a, &lda_, <float*>b, &ldb_,
              &beta, c, &ldc_)
    else:
        dgemm(&transa, &transb, &m_, &n_, &k_, &one, <double*>a, &lda_, <double*>b, &ldb_,
              &beta, c, &ldc_)


cdef inline void* _line(void* p) noexcept nogil:
    """p rounded up to a 64-byte boundary (a cache line)."""
    return <void*>((<size_t>p + 63) & ~(<size_t>63))


cdef inline bint _blas_ok(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept nogil:
    return 0 < a <= INT_MAX_ and 0 < b <= INT_MAX_ and 0 < c <= INT_MAX_


cdef void _affine(const floating* x, const floating* W, const floating* b, floating* z,
                  Py_ssize_t N, Py_ssize_t D, Py_ssize_t M, bint sigmoid,
                  bint direct) noexcept nogil:
    """z = x Wᵀ + b (then h = σ(z) in place if ``sigmoid``).  x (N,D), W (M,D), b (M,).
    ``direct``: gemm straight into z, no scratch of z's size (a caller's ``out=``)."""
    cdef Py_ssize_t n, i
    cdef floating* zn
    cdef floating* xt
    cdef floating* zt
    cdef void* scratch
    if N > AFFINE_LOOP_ROWS and _blas_ok(N, D, M):
        if not direct and N >= 16 and <double>D * <double>M >= AFFINE_NN * <double>(D + M):
            # OpenBLAS's gemm runs 'N','N' ~2x faster than 'T','N' at these sizes, more than
            # the two transposes cost: xᵀ (D,N) into scratch; column-major, z (N,M) = x (N,D)
            # · Wᵀ (D,M) with both stored as needed, which is zᵀ (M,N) row-major; then one
            # pass writes z = (zᵀ)ᵀ + b (and σ).
            scratch = malloc((N * D + M * N) * sizeof(floating) + 128)
            if scratch != NULL:
                xt = <floating*>_line(scratch)
                zt = <floating*>_line(xt + N * D)
                _transpose(xt, x, N, D)
                _gemm(c'N', c'N', N, M, D, xt, N, W, D, 0, zt, N)
                _transpose_add(z, zt, b, N, M, sigmoid)
                free(scratch)
                return
        # Column-major: zᵀ (M,N) = W (M,D) · xᵀ (D,N); W is stored as Wᵀ, so transpose it.
        for n in range(N):
            memcpy(z + n * M, b, M * sizeof(floating))
        _gemm(c'T', c'N', M, N, D, W, D, x, D, 1, z, M)
        if sigmoid:
            _sigmoid(z, z, N * M)
        return
    for n in range(N):
        zn = z + n * M
        _rowdots(W, x + n * D, b, zn, M, D)
        if sigmoid:
            _sigmoid(zn, zn, M)


cdef void _outer(const floating* dz, const floating* x, floating* out,
                 Py_ssize_t N, Py_ssize_t M, Py_ssize_t D) noexcept nogil:
    """W̄ = z̄ᵀ x = Σₙ z̄ₙ xₙᵀ.  dz (N,M), x (N,D) → (M,D)."""
    cdef Py_ssize_t n, i, j
    cdef floating* row
    cdef floating c
    if N > OUTER_LOOP_ROWS and _blas_ok(N, D, M):
        # Column-major: W̄ᵀ (D,M) = xᵀ (D,N) · z̄ (N,M); z̄ is stored as z̄ᵀ, so transpose it.
        _gemm(c'N', c'T', D, M, N, x, D, dz, M, 0, out, D)
        return
    for i in range(M):  # row i of W̄ = Σₙ z̄ₙᵢ xₙ
        _lincomb(out + i * D, dz + i, M, x, N, D)


cdef void _tmatvec(const floating* W, const floating* dz, floating* out,
                   Py_ssize_t N, Py_ssize_t M, Py_ssize_t D) noexcept nogil:
    """x̄ = z̄ W, row n = Σᵢ z̄ₙᵢ Wᵢ.  W (M,D), dz (N,M) → (N,D)."""
    cdef Py_ssize_t n, i, j
    cdef floating* row
    cdef floating c
    if N > TMATVEC_LOOP_ROWS and _blas_ok(N, D, M):
        # Column-major: x̄ᵀ (D,N) = Wᵀ (D,M) · z̄ᵀ (M,N), both stored as they are needed.
        _gemm(c'N', c'N', D, N, M, W, D, dz, M, 0, out, D)
        return
    for n in range(N):  # row n of x̄ = Σᵢ z̄ₙᵢ Wᵢ
        _lincomb(out + n * D, dz + n * M, 1, W, M, D)


cdef inline void _bias_grad(const floating* dz, floating* out, Py_ssize_t N,
                            Py_ssize_t M) noexcept nogil:
    """b̄ = Σₙ z̄ₙ (out does not overlap dz)."""
    if floating is float:
        fg_colsum_f(dz, out, N, M)
    else:
        fg_colsum_d(dz, out, N, M)


cdef inline void _add_rows(floating* z, const floating* b, Py_ssize_t N, Py_ssize_t M,
                           bint sigmoid) noexcept nogil:
    """zₙ += b for every row (sigmoid: zₙ = σ(zₙ + b)); z does not overlap b."""
    if floating is float:
        fg_addrows_f(z, b, N, M, sigmoid)
    else:
        fg_addrows_d(z, b, N, M, sigmoid)


cdef inline void _transpose_add(floating* z, const floating* zt, const floating* b,
                                Py_ssize_t N, Py_ssize_t M, bint sigmoid) noexcept nogil:
    """z = ztᵀ + b (sigmoid: σ(ztᵀ + b)), zt (M, N) → z (N, M); no overlaps."""
    if floating is float:
        fg_transpose_f(z, zt, b, M, N, sigmoid)
    else:
        fg_transpose_d(z, zt, b, M, N, sigmoid)


cdef inline void _transpose(floating* t, const floating* a, Py_ssize_t R, Py_ssize_t C) noexcept nogil:
    """t = aᵀ, a (R, C) → t (C, R); no overlap."""
    if floating is float:
        fg_transpose_f(t, a, NULL, R, C, 0)
    else:
        fg_transpose_d(t, a, NULL, R, C, 0)


cdef inline void _sigmoid(const floating* z, floating* h, Py_ssize_t size) noexcept nogil:
    """h = σ(z) = 1 / (1 + e^(−z)), one vector pass (h may be z)."""
    if floating is float:
        fg_sigmoid_f(z, NULL, h, size)
    else:
        fg_sigmoid_d(z, NULL, h, size)


cdef inline void _softplus(const floating* z, floating* y, Py_ssize_t size) noexcept nogil:
    """y = max(z, 0) + log1p(e^(−|z|)) (y may be z)."""
    cdef Py_ssize_t i
    cdef floating v
    for i in range(size):
        v = z[i]
        if floating is float:
            y[i] = (v if v > 0 else 0) + log1pf(expf(-fabsf(v)))
        else:
            y[i] = (v if v > 0 else 0) + log1p(exp(-fabs(v)))


cdef inline void _sigmoid_back(const floating* h, const floating* dh, floating* dz,
                               Py_ssize_t size) noexcept nogil:
    """z̄ = h̄ ∘ h ∘ (1 − h)."""
    if floating is float:
        fg_sigback_f(h, dh, dz, size)
    else:
        fg_sigback_d(h, dh, dz, size)


cdef Py_ssize_t _bad_label(const cnp.npy_int64* t, Py_ssize_t N, Py_ssize_t K) noexcept nogil:
    """Index of the first label outside [0, K), or -1."""
    cdef Py_ssize_t n
    for n in range(N):
        if t[n] < 0 or t[n] >= K:
            return n
    return -1


cdef double _softmax_ce(const floating* z, const cnp.npy_int64* t, floating* p,
                        Py_ssize_t N, Py_ssize_t K) noexcept nogil:
    """p = softmax(z) row-wise; returns Σₙ −log pₙ,tₙ = Σₙ log Σₖ e^(zₙₖ − mₙ) − (zₙ,tₙ − mₙ)."""
    cdef Py_ssize_t n, k
    cdef const floating* zn
    cdef floating* pn
    cdef floating m, s
    cdef double loss = 0
    for n in range(N):
        zn = z + n * K
        pn = p + n * K
        m = zn[0]
        for k in range(1, K):
            if zn[k] > m:
                m = zn[k]
        if floating is float:
            s = fg_expsum_f(zn, m, pn, K)
        else:
            s = fg_expsum_d(zn, m, pn, K)
        for k in range(K):
            pn[k] = pn[k] / s
        if floating is float:
            loss += logf(s) - (zn[t[n]] - m)
        else:
            loss += log(s) - (zn[t[n]] - m)
    return loss


cdef void _softmax_ce_back(const floating* p, const cnp.npy_int64* t, floating* out,
                           Py_ssize_t N, Py_ssize_t K) noexcept nogil:
    """z̄ = (p − onehot(t)) / N."""
    cdef Py_ssize_t n, k
    cdef floating scale = <floating>N
    cdef floating picked
    for n in range(N):
        picked = p[n * K + t[n]] - 1  # read before writing: out may be p itself
        for k in range(K):
            out[n * K + k] = p[n * K + k] / scale
        out[n * K + t[n]] = picked / scale


cdef inline void _sgd(floating* W, const floating* dW, floating* v, Py_ssize_t size,
                      floating lr, floating momentum, floating weight_decay) noexcept nogil:
    """v = μ v + W̄ + λ W;  W −= η v   (without v: W −= η (W̄ + λ W))."""
    if floating is float:
        fg_sgd_f(W, dW, v, size, lr, momentum, weight_decay)
    else:
        fg_sgd_d(W, dW, v, size, lr, momentum, weight_decay)


cdef void _sgd_outer(floating* W, const floating* dz, const floating* x, floating* v,
                     floating* row, Py_ssize_t N, Py_ssize_t M, Py_ssize_t D, floating lr,
                     floating momentum, floating weight_decay) noexcept nogil:
    """sgd on W̄ = z̄ᵀ x without storing W̄: row i of W̄ (Σₙ z̄ₙᵢ xₙ) is built in ``row``
    (D elements, stays in L1) and applied at once — at N = 1 formed and applied in the
    same loop — so W is read and written in one pass."""
    cdef Py_ssize_t i
    cdef floating* vi = NULL
    for i in range(M):
        if v != NULL:
            vi = v + i * D
        if N == 1:  # per example: row i of W̄ is dz[i] x, applied as it is formed
            if floating is float:
                fg_sgdrank1_f(W + i * D, dz[i], x, vi, D, lr, momentum, weight_decay)
            else:
                fg_sgdrank1_d(W + i * D, dz[i], x, vi, D, lr, momentum, weight_decay)
        else:
            _lincomb(row, dz + i, M, x, N, D)
            _sgd(W + i * D, row, vi, D, lr, momentum, weight_decay)


cdef void _adam(floating* W, const floating* dW, floating* m, floating* v, Py_ssize_t size,
                floating lr, floating beta1, floating beta2, floating eps,
                floating c1, floating c2) noexcept nogil:
    """m = β₁m + (1−β₁)W̄; v = β₂v + (1−β₂)W̄²; W −= η m̂ / (√v̂ + ε), m̂ = c1·m, v̂ = c2·v."""
    cdef Py_ssize_t i
    cdef floating g, r
    for i in range(size):
        g = dW[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * (g * g)
        if floating is float:
            r = sqrtf(v[i] * c2)
        else:
            r = sqrt(v[i] * c2)
        W[i] -= lr * (m[i] * c1) / (r + eps)


# ---------------------------------------------------------------------------------------
# Python-facing wrappers: check everything, then one C kernel with the GIL released.
# ---------------------------------------------------------------------------------------

cdef inline bint _is64(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64


cdef inline PyThreadState* _release_gil(Py_ssize_t touched) noexcept:
    """Release the GIL for a call that reads and writes ``touched`` ≥ NOGIL_MIN elements
    (returns the thread state to restore), keep it for a smaller one (returns NULL).
    Between this and ``_restore_gil`` only C code runs."""
    return PyEval_SaveThread() if touched >= NOGIL_MIN else NULL


cdef inline void _restore_gil(PyThreadState* state) noexcept:
    if state != NULL:
        PyEval_RestoreThread(state)


cdef inline void* _data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


cdef object _affine_wrapper(object x, object W, object b, object out, bint sigmoid, str fname):
    cdef cnp.ndarray ax = _check("x", x, 2)
    cdef cnp.ndarray aW = _check("W", W, 2)
    cdef cnp.ndarray ab = _check("b", b, 1)
    _same_dtype("x", ax, "W", aW, "b", ab)
    cdef Py_ssize_t N = ax.shape[0], D = ax.shape[1], M = aW.shape[0]
    if aW.shape[1] != D or ab.shape[0] != M:
        raise ValueError(
            f"{fname}: x {_shp(ax)}, W {_shp(aW)}, b {_shp(ab)} do not fit "
            "(need x (N, D), W (M, D), b (M,))")
    cdef cnp.npy_intp dims[2]
    dims[0] = N
    dims[1] = M
    cdef cnp.ndarray z = _out(out, ax, 2, dims)
    cdef cnp.ndarray zt = None
    cdef bint transposed = False
    cdef PyThreadState* gil
    if out is not None and (_overlap(z, ax) or _overlap(z, aW) or _overlap(z, ab)):
        z[...] = _affine_wrapper(ax, aW, ab, None, sigmoid, fname)
        return z
    if _numpy_product(N, AFFINE_LOOP_ROWS, D, M):
        # NumPy's BLAS (one thread pool for the process), then b (and σ) in one C pass.
        # Into a caller's out=, the product goes straight in: no zᵀ scratch of out's size.
        transposed = AFFINE_TRANSPOSED and N < M and out is None
        if transposed:
            dims[0] = M
            dims[1] = N
            zt = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, cnp.PyArray_TYPE(ax), 0)
            _np_matmul(aW, cnp.PyArray_Transpose(ax, NULL), zt)
        else:
            _np_matmul(ax, cnp.PyArray_Transpose(aW, NULL), z)
        gil = _release_gil(2 * N * M + M)
        if _is64(ax):
            if not transposed:
                _add_rows(<double*>cnp.PyArray_DATA(z), <double*>cnp.PyArray_DATA(ab), N, M, sigmoid)
            else:
                _transpose_add(<double*>cnp.PyArray_DATA(z), <double*>cnp.PyArray_DATA(zt),
                               <double*>cnp.PyArray_DATA(ab), N, M, sigmoid)
        else:
            if not transposed:
                _add_rows(<float*>cnp.PyArray_DATA(z), <float*>cnp.PyArray_DATA(ab), N, M, sigmoid)
            else:
                _transpose_add(<float*>cnp.PyArray_DATA(z), <float*>cnp.PyArray_DATA(zt),
                               <float*>cnp.PyArray_DATA(ab), N, M, sigmoid)
        _restore_gil(gil)
        return z
    _need_blas(N, AFFINE_LOOP_ROWS)
    gil = _release_gil(N * D + M * D + N * M)
    if _is64(ax):
        _affine(<double*>cnp.PyArray_DATA(ax), <double*>cnp.PyArray_DATA(aW), <double*>cnp.PyArray_DATA(ab),
                <double*>cnp.PyArray_DATA(z), N, D, M, sigmoid, out is not None)
    else:
        _affine(<float*>cnp.PyArray_DATA(ax), <float*>cnp.PyArray_DATA(aW), <float*>cnp.PyArray_DATA(ab),
                <float*>cnp.PyArray_DATA(z), N, D, M, sigmoid, out is not None)
    _restore_gil(gil)
    return z


def affine_forward(x, W, b, out=None):
    """z = x Wᵀ + b.   x (N, D), W (M, D), b (M,) → z (N, M)."""
    return _affine_wrapper(x, W, b, out, False, "affine_forward")


def affine_sigmoid_forward(x, W, b, out=None):
    """h = σ(x Wᵀ + b), fused: z is never stored.   x (N, D), W (M, D), b (M,) → (N, M)."""
    return _affine_wrapper(x, W, b, out, True, "affine_sigmoid_forward")


def sigmoid_forward(z, out=None):
    """h = σ(z) = 1 / (1 + e^(−z)), computed without overflow for large |z|. Any shape."""
    cdef cnp.ndarray az = _check("z", z, -1)
    cdef cnp.ndarray h = _out(out, az, cnp.PyArray_NDIM(az), cnp.PyArray_DIMS(az))
    az = _unshared(az, h)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(az)
    cdef PyThreadState* gil = _release_gil(2 * size)
    if _is64(az):
        _sigmoid(<double*>cnp.PyArray_DATA(az), <double*>cnp.PyArray_DATA(h), size)
    else:
        _sigmoid(<float*>cnp.PyArray_DATA(az), <float*>cnp.PyArray_DATA(h), size)
    _restore_gil(gil)
    return h


def softplus_forward(z, out=None):
    """y = log(1 + e^z) = max(z, 0) + log1p(e^(−|z|)), without overflow. Any shape."""
    cdef cnp.ndarray az = _check("z", z, -1)
    cdef cnp.ndarray y = _out(out, az, cnp.PyArray_NDIM(az), cnp.PyArray_DIMS(az))
    az = _unshared(az, y)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(az)
    cdef PyThreadState* gil = _release_gil(8 * size)
    if _is64(az):
        _softplus(<double*>cnp.PyArray_DATA(az), <double*>cnp.PyArray_DATA(y), size)
    else:
        _softplus(<float*>cnp.PyArray_DATA(az), <float*>cnp.PyArray_DATA(y), size)
    _restore_gil(gil)
    return y


def sigmoid_backward(h, dh, out=None):
    """z̄ = h̄ ∘ h ∘ (1 − h): the error signal of z from that of h = σ(z). Any shape."""
    cdef cnp.ndarray ah = _check("h", h, -1)
    cdef cnp.ndarray adh = _check("dh", dh, -1)
    _same_dtype("h", ah, "dh", adh)
    if not _same_shape(ah, adh):
        raise ValueError(f"sigmoid_backward: h {_shp(ah)} and dh {_shp(adh)} must have one shape")
    cdef cnp.ndarray dz = _out(out, ah, cnp.PyArray_NDIM(ah), cnp.PyArray_DIMS(ah))
    ah = _unshared(ah, dz)
    adh = _unshared(adh, dz)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(ah)
    cdef PyThreadState* gil = _release_gil(3 * size)
    if _is64(ah):
        _sigmoid_back(<double*>cnp.PyArray_DATA(ah), <double*>cnp.PyArray_DATA(adh), <double*>cnp.PyArray_DATA(dz), size)
    else:
        _sigmoid_back(<float*>cnp.PyArray_DATA(ah), <float*>cnp.PyArray_DATA(adh), <float*>cnp.PyArray_DATA(dz), size)
    _restore_gil(gil)
    return dz


def outer_grad(dz, x, out=None):
    """W̄ = z̄ᵀ x: the sum over examples of outer products z̄ₙ xₙᵀ.  (N, M), (N, D) → (M, D)."""
    cdef cnp.ndarray adz = _check("dz", dz, 2)
    cdef cnp.ndarray ax = _check("x", x, 2)
    _same_dtype("dz", adz, "x", ax)
    cdef Py_ssize_t N = adz.shape[0], M = adz.shape[1], D = ax.shape[1]
    if ax.shape[0] != N:
        raise ValueError(f"outer_grad: dz {_shp(adz)} and x {_shp(ax)} need the same number of rows")
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = D
    cdef cnp.ndarray dW = _out(out, adz, 2, dims)
    if out is not None and (_overlap(dW, adz) or _overlap(dW, ax)):
        dW[...] = outer_grad(adz, ax)
        return dW
    if _numpy_product(N, OUTER_LOOP_ROWS, M, D):
        _np_matmul(cnp.PyArray_Transpose(adz, NULL), ax, dW)  # NumPy's BLAS, see above
        return dW
    _need_blas(N, OUTER_LOOP_ROWS)
    cdef PyThreadState* gil = _release_gil(N * M + N * D + M * D)
    if _is64(adz):
        _outer(<double*>cnp.PyArray_DATA(adz), <double*>cnp.PyArray_DATA(ax), <double*>cnp.PyArray_DATA(dW), N, M, D)
    else:
        _outer(<float*>cnp.PyArray_DATA(adz), <float*>cnp.PyArray_DATA(ax), <float*>cnp.PyArray_DATA(dW), N, M, D)
    _restore_gil(gil)
    return dW


def transpose_matvec(W, dz, out=None):
    """x̄ = z̄ W: each row is Wᵀ z̄ₙ.   W (M, D), dz (N, M) → (N, D)."""
    cdef cnp.ndarray aW = _check("W", W, 2)
    cdef cnp.ndarray adz = _check("dz", dz, 2)
    _same_dtype("W", aW, "dz", adz)
    cdef Py_ssize_t M = aW.shape[0], D = aW.shape[1], N = adz.shape[0]
    if adz.shape[1] != M:
        raise ValueError(
            f"transpose_matvec: W {_shp(aW)} and dz {_shp(adz)} do not fit (need dz (N, M))")
    cdef cnp.npy_intp dims[2]
    dims[0] = N
    dims[1] = D
    cdef cnp.ndarray dx = _out(out, aW, 2, dims)
    if out is not None and (_overlap(dx, aW) or _overlap(dx, adz)):
        dx[...] = transpose_matvec(aW, adz)
        return dx
    if _numpy_product(N, TMATVEC_LOOP_ROWS, M, D):
        _np_matmul(adz, aW, dx)  # NumPy's BLAS, see above
        return dx
    _need_blas(N, TMATVEC_LOOP_ROWS)
    cdef PyThreadState* gil = _release_gil(M * D + N * M + N * D)
    if _is64(aW):
        _tmatvec(<double*>cnp.PyArray_DATA(aW), <double*>cnp.PyArray_DATA(adz), <double*>cnp.PyArray_DATA(dx), N, M, D)
    else:
        _tmatvec(<float*>cnp.PyArray_DATA(aW), <float*>cnp.PyArray_DATA(adz), <float*>cnp.PyArray_DATA(dx), N, M, D)
    _restore_gil(gil)
    return dx


def bias_grad(dz, out=None):
    """b̄ = Σₙ z̄ₙ.   (N, M) → (M,)."""
    cdef cnp.ndarray adz = _check("dz", dz, 2)
    cdef Py_ssize_t N = adz.shape[0], M = adz.shape[1]
    cdef cnp.npy_intp dims[1]
    dims[0] = M
    cdef cnp.ndarray db = _out(out, adz, 1, dims)
    if out is not None and _overlap(db, adz):
        db[...] = bias_grad(adz)
        return db
    cdef PyThreadState* gil = _release_gil(N * M + M)
    if _is64(adz):
        _bias_grad(<double*>cnp.PyArray_DATA(adz), <double*>cnp.PyArray_DATA(db), N, M)
    else:
        _bias_grad(<float*>cnp.PyArray_DATA(adz), <float*>cnp.PyArray_DATA(db), N, M)
    _restore_gil(gil)
    return db


cdef cnp.ndarray _labels(object labels, Py_ssize_t N, Py_ssize_t K, str zname, tuple zshape):
    """Integer class labels (N,) in [0, K) as a contiguous int64 array, else raise."""
    if not cnp.PyArray_Check(labels):
        raise TypeError(f"labels must be a numpy.ndarray of integers, got {type(labels).__name__}")
    cdef cnp.ndarray t = <cnp.ndarray>labels
    if not cnp.PyArray_ISINTEGER(t):
        raise TypeError(f"labels must have an integer dtype, got {t.dtype} (shape {_shp(t)})")
    if cnp.PyArray_NDIM(t) != 1 or t.shape[0] != N:
        raise ValueError(f"labels {_shp(t)} must have shape ({N},) to match {zname} {zshape}")
    if (cnp.PyArray_TYPE(t) != cnp.NPY_INT64 or cnp.PyArray_ISBYTESWAPPED(t)
            or not cnp.PyArray_IS_C_CONTIGUOUS(t) or not cnp.PyArray_ISALIGNED(t)):
        t = np.ascontiguousarray(t, dtype=np.int64)
    cdef Py_ssize_t bad
    cdef PyThreadState* gil = _release_gil(N)
    bad = _bad_label(<cnp.npy_int64*>cnp.PyArray_DATA(t), N, K)
    _restore_gil(gil)
    if bad >= 0:
        raise ValueError(
            f"labels[{bad}] = {t[bad]} is not a class index in [0, {K}) for {zname} {zshape}")
    return t


def softmax_cross_entropy_forward(z, labels):
    """(L, p): p = softmax(z) row-wise, L = −(1/N) Σₙ log pₙ,tₙ.   z (N, K), labels (N,) ints."""
    cdef cnp.ndarray az = _check("z", z, 2)
    cdef Py_ssize_t N = az.shape[0], K = az.shape[1]
    if N == 0 or K == 0:
        raise ValueError(f"softmax_cross_entropy_forward: z {_shp(az)} needs N ≥ 1 rows and K ≥ 1 classes")
    cdef cnp.ndarray t = _labels(labels, N, K, "z", _shp(az))
    cdef cnp.ndarray p = <cnp.ndarray>cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(az),
                                                        cnp.PyArray_TYPE(az), 0)
    cdef double loss
    cdef PyThreadState* gil = _release_gil(2 * N * K)
    if _is64(az):
        loss = _softmax_ce(<double*>cnp.PyArray_DATA(az), <cnp.npy_int64*>cnp.PyArray_DATA(t), <double*>cnp.PyArray_DATA(p), N, K)
    else:
        loss = _softmax_ce(<float*>cnp.PyArray_DATA(az), <cnp.npy_int64*>cnp.PyArray_DATA(t), <float*>cnp.PyArray_DATA(p), N, K)
    _restore_gil(gil)
    return loss / N, p


def softmax_cross_entropy_backward(probs, labels, out=None):
    """z̄ = (p − onehot(t)) / N, the error signal of the logits of the mean loss."""
    cdef cnp.ndarray ap = _check("probs", probs, 2)
    cdef Py_ssize_t N = ap.shape[0], K = ap.shape[1]
    if N == 0 or K == 0:
        raise ValueError(f"softmax_cross_entropy_backward: probs {_shp(ap)} needs N ≥ 1 rows and K ≥ 1 classes")
    cdef cnp.ndarray t = _labels(labels, N, K, "probs", _shp(ap))
    cdef cnp.ndarray dz = _out(out, ap, 2, cnp.PyArray_DIMS(ap))
    if _overlap(dz, ap) and cnp.PyArray_DATA(dz) != cnp.PyArray_DATA(ap):
        dz[...] = softmax_cross_entropy_backward(ap, t)
        return dz
    cdef PyThreadState* gil = _release_gil(2 * N * K)
    if _is64(ap):
        _softmax_ce_back(<double*>cnp.PyArray_DATA(ap), <cnp.npy_int64*>cnp.PyArray_DATA(t), <double*>cnp.PyArray_DATA(dz), N, K)
    else:
        _softmax_ce_back(<float*>cnp.PyArray_DATA(ap), <cnp.npy_int64*>cnp.PyArray_DATA(t), <float*>cnp.PyArray_DATA(dz), N, K)
    _restore_gil(gil)
    return dz


cdef cnp.ndarray _velocity_argument(object velocity, cnp.ndarray aW, double mu, str fname):
    """The SGD updates' velocity: None, or an array like W that the loop may write, which
    momentum ≠ 0 requires."""
    if velocity is None:
        if mu != 0:
            raise ValueError(f"{fname}: momentum={mu!r} needs a velocity array of W's shape {_shp(aW)}")
        return None
    cdef cnp.ndarray av = _check("velocity", velocity, -1)
    _same_dtype("W", aW, "velocity", av)
    _fits("velocity", av, "W", aW)
    _writeable("velocity", av)
    _disjoint("velocity", av, "W", aW)
    return av


cdef tuple _sgd_arguments(object W, object dW, object velocity, double mu, str fname):
    """sgd_update's checks: (W, dW, velocity) as arrays the loop may use (dW copied where
    it overlaps what the loop writes), or a TypeError/ValueError naming the argument."""
    cdef cnp.ndarray aW = _check("W", W, -1)
    cdef cnp.ndarray adW = _check("dW", dW, -1)
    _same_dtype("W", aW, "dW", adW)
    _fits("dW", adW, "W", aW)
    _writeable("W", aW)
    cdef cnp.ndarray av = _velocity_argument(velocity, aW, mu, fname)
    if av is not None and _overlap(adW, av):
        adW = adW.copy()
    return aW, _unshared(adW, aW), av


cdef void _sgd_arrays(cnp.ndarray aW, cnp.ndarray adW, cnp.ndarray av, double lr, double mu,
                      double wd) noexcept:
    cdef Py_ssize_t size = cnp.PyArray_SIZE(aW)
    cdef void* pW = _data(aW)
    cdef void* pdW = _data(adW)
    cdef void* pv = NULL if av is None else _data(av)
    cdef PyThreadState* gil = _release_gil(3 * size)
    if _is64(aW):
        _sgd(<double*>pW, <double*>pdW, <double*>pv, size, lr, mu, wd)
    else:
        _sgd(<float*>pW, <float*>pdW, <float*>pv, size, <float>lr, <float>mu, <float>wd)
    _restore_gil(gil)


def sgd_update(W, dW, lr, momentum=0.0, velocity=None, weight_decay=0.0):
    """In place: v = μ v + W̄ + λ W, W −= η v; without ``velocity``: W −= η (W̄ + λ W)."""
    cdef double lr_ = lr, mu = momentum, wd = weight_decay
    aW, adW, av = _sgd_arguments(W, dW, velocity, mu, "sgd_update")
    _sgd_arrays(aW, adW, av, lr_, mu, wd)


def sgd_update_many(params, grads, lr, momentum=0.0, velocities=None, weight_decay=0.0):
    """``sgd_update(params[i], grads[i], lr, momentum, velocities[i], weight_decay)`` for
    every i, in one call (an optimizer step over all its parameters). A gradient given as
    a pair ``(dz, x)`` stands for W̄ = dzᵀ x and is applied as ``sgd_outer_update`` does.
    Every argument is checked before anything is written; an error names the index."""
    cdef double lr_ = lr, mu = momentum, wd = weight_decay
    cdef Py_ssize_t n = len(params), i
    if len(grads) != n or (velocities is not None and len(velocities) != n):
        raise ValueError(
            f"sgd_update_many: {n} params, {len(grads)} grads"
            + ("" if velocities is None else f", {len(velocities)} velocities")
            + ": the lists must have one length")
    cdef list checked = []
    for i in range(n):
        grad = grads[i]
        velocity = None if velocities is None else velocities[i]
        try:
            if type(grad) is tuple and len(<tuple>grad) == 2:
                checked.append(_sgd_outer_arguments(params[i], (<tuple>grad)[0], (<tuple>grad)[1],
                                                    velocity, mu, "sgd_update_many"))
            else:
                checked.append(_sgd_arguments(params[i], grad, velocity, mu, "sgd_update_many"))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"sgd_update_many: parameter {i}: {exc}") from None
    cdef tuple arrays
    for arrays in checked:
        if len(arrays) == 4:
            _sgd_outer_arrays(arrays[0], arrays[1], arrays[2], arrays[3], lr_, mu, wd)
        else:
            _sgd_arrays(arrays[0], arrays[1], arrays[2], lr_, mu, wd)


cdef tuple _sgd_outer_arguments(object W, object dz, object x, object velocity, double mu,
                                str fname):
    """sgd_outer_update's checks: (W, dz, x, velocity) as arrays the loop may use (dz and x
    copied where W or the velocity overlaps them), or a TypeError/ValueError."""
    cdef cnp.ndarray aW = _check("W", W, 2)
    cdef cnp.ndarray adz = _check("dz", dz, 2)
    cdef cnp.ndarray ax = _check("x", x, 2)
    _same_dtype("W", aW, "dz", adz, "x", ax)
    cdef Py_ssize_t M = aW.shape[0], D = aW.shape[1], N = adz.shape[0]
    if adz.shape[1] != M or ax.shape[0] != N or ax.shape[1] != D:
        raise ValueError(
            f"{fname}: W {_shp(aW)}, dz {_shp(adz)}, x {_shp(ax)} do not fit "
            "(need W (M, D), dz (N, M), x (N, D))")
    _writeable("W", aW)
    cdef cnp.ndarray av = _velocity_argument(velocity, aW, mu, fname)
    # dz and x are read for every row: copy them if W or the velocity is written over them.
    if _overlap(adz, aW) or (av is not None and _overlap(adz, av)):
        adz = adz.copy()
    if _overlap(ax, aW) or (av is not None and _overlap(ax, av)):
        ax = ax.copy()
    return aW, adz, ax, av


cdef void _sgd_outer_arrays(cnp.ndarray aW, cnp.ndarray adz, cnp.ndarray ax, cnp.ndarray av,
                            double lr, double mu, double wd):
    cdef Py_ssize_t M = aW.shape[0], D = aW.shape[1], N = adz.shape[0]
    cdef cnp.npy_intp dims[1]
    dims[0] = D
    cdef cnp.ndarray row = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, cnp.PyArray_TYPE(aW), 0)
    cdef void* pv = NULL if av is None else _data(av)
    cdef void* pW = _data(aW)
    cdef void* pdz = _data(adz)
    cdef void* px = _data(ax)
    cdef void* prow = _data(row)
    cdef PyThreadState* gil = _release_gil(N * M + N * D + 2 * M * D)
    if _is64(aW):
        _sgd_outer(<double*>pW, <double*>pdz, <double*>px, <double*>pv, <double*>prow,
                   N, M, D, lr, mu, wd)
    else:
        _sgd_outer(<float*>pW, <float*>pdz, <float*>px, <float*>pv, <float*>prow,
                   N, M, D, <float>lr, <float>mu, <float>wd)
    _restore_gil(gil)


def sgd_outer_update(W, dz, x, lr, momentum=0.0, velocity=None, weight_decay=0.0):
    """``sgd_update(W, dz.T @ x, ...)`` without storing the weight gradient W̄ = z̄ᵀ x:
    W (M, D), dz (N, M), x (N, D). One pass over W, for a small batch (N ≪ M, D)."""
    cdef double lr_ = lr, mu = momentum, wd = weight_decay
    arrays = _sgd_outer_arguments(W, dz, x, velocity, mu, "sgd_outer_update")
    _sgd_outer_arrays(arrays[0], arrays[1], arrays[2], arrays[3], lr_, mu, wd)


def adam_update(W, dW, m, v, lr, beta1, beta2, eps, step):
    """In place, bias-corrected Adam: m = β₁m + (1−β₁)W̄, v = β₂v + (1−β₂)W̄²,
    W −= η m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), t = ``step`` ≥ 1."""
    cdef cnp.ndarray aW = _check("W", W, -1)
    cdef cnp.ndarray adW = _check("dW", dW, -1)
    cdef cnp.ndarray am = _check("m", m, -1)
    cdef cnp.ndarray av = _check("v", v, -1)
    _same_dtype("W", aW, "dW", adW, "m", am)
    _same_dtype("W", aW, "v", av)
    _fits("dW", adW, "W", aW)
    _fits("m", am, "W", aW)
    _fits("v", av, "W", aW)
    _writeable("W", aW)
    _writeable("m", am)
    _writeable("v", av)
    _disjoint("m", am, "W", aW)
    _disjoint("v", av, "W", aW)
    _disjoint("m", am, "v", av)
    if _overlap(adW, am) or _overlap(adW, av):
        adW = adW.copy()
    adW = _unshared(adW, aW)
    cdef double lr_ = lr, b1 = beta1, b2 = beta2, eps_ = eps
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise ValueError(f"adam_update: step must be an integer ≥ 1, got {step!r}")
    if not (0 <= b1 < 1) or not (0 <= b2 < 1):
        raise ValueError(f"adam_update: beta1 and beta2 must be in [0, 1), got {beta1!r}, {beta2!r}")
    cdef double c1 = 1.0 / (1.0 - b1 ** step), c2 = 1.0 / (1.0 - b2 ** step)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(aW)
    cdef PyThreadState* gil = _release_gil(4 * size)
    if _is64(aW):
        _adam(<double*>cnp.PyArray_DATA(aW), <double*>cnp.PyArray_DATA(adW), <double*>cnp.PyArray_DATA(am), <double*>cnp.PyArray_DATA(av),
              size, lr_, b1, b2, eps_, c1, c2)
    else:
        _adam(<float*>cnp.PyArray_DATA(aW), <float*>cnp.PyArray_DATA(adW), <float*>cnp.PyArray_DATA(am), <float*>cnp.PyArray_DATA(av),
              size, <float>lr_, <float>b1, <float>b2, <float>eps_, <float>c1, <float>c2)
    _restore_gil(gil)


# ---------------------------------------------------------------------------------------
# Squared error: L = (1/N) Σₙ ½ ‖yₙ − tₙ‖² and ȳ = scale · (y − t), one pass each.
# ---------------------------------------------------------------------------------------

cdef double _sq_sum(const floating* y, const floating* t, Py_ssize_t size) noexcept nogil:
    cdef double s = 0.0, d
    cdef Py_ssize_t i
    for i in range(size):
        d = <double>y[i] - <double>t[i]
        s += d * d
    return s


cdef void _scaled_diff(const floating* y, const floating* t, floating* out, floating scale,
                       Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        out[i] = scale * (y[i] - t[i])


cdef tuple _squared_error_arguments(object y, object t, str fname):
    cdef cnp.ndarray ay = _check("y", y, -1)
    cdef cnp.ndarray at = _check("t", t, -1)
    _same_dtype("y", ay, "t", at)
    if not _same_shape(ay, at):
        raise ValueError(f"{fname}: y {_shp(ay)} and t {_shp(at)} must have one shape")
    return ay, at


def squared_error_forward(y, t):
    """L = (1/N) Σₙ ½ ‖yₙ − tₙ‖², N the rows of y (1 for a 0-d y), as a Python float
    (summed in float64)."""
    cdef cnp.ndarray ay, at
    ay, at = _squared_error_arguments(y, t, "squared_error_forward")
    cdef Py_ssize_t size = cnp.PyArray_SIZE(ay)
    cdef Py_ssize_t N = cnp.PyArray_DIMS(ay)[0] if cnp.PyArray_NDIM(ay) > 0 else 1
    cdef double s
    cdef PyThreadState* gil = _release_gil(2 * size)
    if _is64(ay):
        s = _sq_sum(<double*>cnp.PyArray_DATA(ay), <double*>cnp.PyArray_DATA(at), size)
    else:
        s = _sq_sum(<float*>cnp.PyArray_DATA(ay), <float*>cnp.PyArray_DATA(at), size)
    _restore_gil(gil)
    return 0.5 * s / N if N > 0 else float("nan")  # the mean over no rows


def squared_error_backward(y, t, scale, out=None):
    """ȳ = scale · (y − t): the error signal of y (scale = L̄ / N for the mean loss above)."""
    cdef cnp.ndarray ay, at
    ay, at = _squared_error_arguments(y, t, "squared_error_backward")
    cdef double c = scale
    cdef cnp.ndarray o = _out(out, ay, cnp.PyArray_NDIM(ay), cnp.PyArray_DIMS(ay))
    if ((_overlap(o, ay) and cnp.PyArray_DATA(o) != cnp.PyArray_DATA(ay))
            or (_overlap(o, at) and cnp.PyArray_DATA(o) != cnp.PyArray_DATA(at))):
        o[...] = squared_error_backward(ay, at, c)  # out shifted against y or t: go through a copy
        return o
    cdef Py_ssize_t size = cnp.PyArray_SIZE(ay)
    cdef PyThreadState* gil = _release_gil(3 * size)
    if _is64(ay):
        _scaled_diff(<double*>cnp.PyArray_DATA(ay), <double*>cnp.PyArray_DATA(at),
                     <double*>cnp.PyArray_DATA(o), c, size)
    else:
        _scaled_diff(<float*>cnp.PyArray_DATA(ay), <float*>cnp.PyArray_DATA(at),
                     <float*>cnp.PyArray_DATA(o), <float>c, size)
    _restore_gil(gil)
    return o
