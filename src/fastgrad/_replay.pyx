# cython: language_level=3
"""The compiled executor of ``fastgrad.compile``: one call runs a whole plan.

A plan (``fastgrad._compile.Plan``) is a flat array of instructions over numbered
buffers. ``Program`` copies it into C structs and a table of buffer pointers; ``run()``
executes every instruction in one loop with the GIL released. Elementwise instructions
compute out (+)= α f(a, b, c) over an R × C iteration space, each operand broadcast as a
full array, a scalar, a row or a column (and the output summed the same ways: the
adjoint of broadcasting). Dense instructions call BLAS through scipy.linalg.cython_blas
(gemm; gemv when one side is a vector; ger, or a typed loop, for outer products).
The opcodes and their meaning are defined once, in ``fastgrad._compile``; the Python
reference executor there runs the same plans with NumPy.
"""

cimport numpy as cnp
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm, dgemv, dger, sgemm, sgemv, sger

import numpy as np

cnp.import_array()

cdef extern from *:
    """
    #include <math.h>
    #include <string.h>

    /* The loops below assume no FP-exception side effects, so selects (x < 0 ? a : b)
       vectorize; on x86-64 each loop is compiled for AVX-512, AVX2 and the baseline,
       chosen at load time by the CPU (a portable build, unlike -march=native). */
    #pragma GCC push_options
    #pragma GCC optimize ("no-trapping-math")
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
    #define FG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #else
    #define FG_CLONES
    #endif

    typedef struct {
        int op, dt, out, a, b, c, omode, amode, bmode, cmode, acc, flags;
        Py_ssize_t R, C, K;
        double f[8];
    } fg_ins;

    typedef void (*fg_dgemm_t)(char*, char*, int*, int*, int*, double*, double*, int*,
                               double*, int*, double*, double*, int*);
    typedef void (*fg_sgemm_t)(char*, char*, int*, int*, int*, float*, float*, int*,
                               float*, int*, float*, float*, int*);
    typedef void (*fg_dgemv_t)(char*, int*, int*, double*, double*, int*, double*, int*,
                               double*, double*, int*);
    typedef void (*fg_sgemv_t)(char*, int*, int*, float*, float*, int*, float*, int*,
                               float*, float*, int*);
    typedef void (*fg_dger_t)(int*, int*, double*, double*, int*, double*, int*, double*, int*);
    typedef void (*fg_sger_t)(int*, int*, float*, float*, int*, float*, int*, float*, int*);

    static fg_dgemm_t fg_dgemm; static fg_sgemm_t fg_sgemm;
    static fg_dgemv_t fg_dgemv; static fg_sgemv_t fg_sgemv;
    static fg_dger_t fg_dger; static fg_sger_t fg_sger;

    static void fg_set_blas(void *dgemm, void *sgemm, void *dgemv, void *sgemv,
                            void *dger, void *sger) {
        fg_dgemm = (fg_dgemm_t)dgemm; fg_sgemm = (fg_sgemm_t)sgemm;
        fg_dgemv = (fg_dgemv_t)dgemv; fg_sgemv = (fg_sgemv_t)sgemv;
        fg_dger = (fg_dger_t)dger; fg_sger = (fg_sger_t)sger;
    }

    /* e^x without libm: x = k ln2 + r (|r| <= ln2/2), e^r by its Taylor polynomial
       (degree 12 for double: error ~2e-16; 6 for float), 2^k through the exponent bits.
       Branch-free, so the elementwise loops vectorize (libm's exp does not). */
    static inline double fg_exp_d(double x) {
        const double big = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
        double xc = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
        double t = xc * 1.4426950408889634 + big;
        double k = t - big;
        double r = (xc - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10;
        double p = 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0; p = p * r + 1.0 / 3628800.0; p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0; p = p * r + 1.0 / 5040.0; p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0; p = p * r + 1.0 / 24.0; p = p * r + 1.0 / 6.0;
        p = p * r + 0.5; p = p * r + 1.0; p = p * r + 1.0;
        union { double d; long long i; } u, v, w;
        long long ki, k1;
        u.d = t;
        ki = u.i - 0x4338000000000000LL;
        k1 = ki >> 1;  /* 2^k as 2^k1 2^(k - k1): both normal, so results may be subnormal */
        v.i = (k1 + 1023) << 52;
        w.i = (ki - k1 + 1023) << 52;
        return x != x ? x : p * v.d * w.d;
    }
    static inline float fg_exp_f(float x) {
        const float big = 12582912.0f; /* 1.5 * 2^23 */
        float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
        float t = xc * 1.44269504f + big;
        float k = t - big;
        float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
        float p = 1.0f / 5040.0f;
        p = p * r + 1.0f / 720.0f; p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f; p = p * r + 0.5f; p = p * r + 1.0f; p = p * r + 1.0f;
        union { float d; int i; } u, v, w;
        int ki, k1;
        u.d = t;
        ki = u.i - 0x4B400000;
        k1 = ki >> 1;
        v.i = (k1 + 127) << 23;
        w.i = (ki - k1 + 127) << 23;
        return x != x ? x : p * v.d * w.d;
    }
    /* sigma(x) = 1 / (1 + e^-x), from e = e^-|x| so nothing overflows. */
    #define FG_SIGMOID(T, EXPF, x) ({ const T x_ = (x); const T e_ = EXPF(x_ >= 0 ? -x_ : x_); \
                                     const T s_ = (T)1 / ((T)1 + e_); x_ >= 0 ? s_ : e_ * s_; })

    static void fg_strides(int mode, Py_ssize_t C, Py_ssize_t *rs, Py_ssize_t *cs) {
        switch (mode) {
            case 0: *rs = C; *cs = 1; break;   /* full */
            case 1: *rs = 0; *cs = 0; break;   /* scalar */
            case 2: *rs = 0; *cs = 1; break;   /* row: a[c] */
            default: *rs = 1; *cs = 0; break;  /* column: a[r] */
        }
    }

    /* out (+)= al * EXPR(x, y, z) over R x C; x, y, z the operands under their modes. */
    #define FG_LOOPS(T, EXPR) do {                                                      \
        if (full) {                                                                     \
            if (acc) { for (i = 0; i < n; i++) {                                        \
                const T x = A[i], y = B[i], z = Z[i]; (void)x; (void)y; (void)z;         \
                o[i] += al * (EXPR); } }                                                \
            else { for (i = 0; i < n; i++) {                                            \
                const T x = A[i], y = B[i], z = Z[i]; (void)x; (void)y; (void)z;         \
                o[i] = al * (EXPR); } }                                                 \
        } else {                                                                        \
            int add = acc || In->omode != 0;                                             \
            if (In->omode != 0 && !acc) {                                                \
                Py_ssize_t m = In->omode == 1 ? 1 : (In->omode == 2 ? Cn : R);            \
                for (i = 0; i < m; i++) o[i] = 0;                                       \
            }                                                                           \
            for (r = 0; r < R; r++) for (c = 0; c < Cn; c++) {                          \
                const T x = A[r * ars + c * acs], y = B[r * brs + c * bcs],             \
                        z = Z[r * zrs + c * zcs]; (void)x; (void)y; (void)z;             \
                T *d = o + r * ors + c * ocs;                                           \
                if (add) *d += al * (EXPR); else *d = al * (EXPR);                      \
            }                                                                           \
        }                                                                               \
    } while (0)

    #define FG_DEFINE_EW(T, SFX, EXPF, NAME)                                                  \
    static FG_CLONES void NAME(const fg_ins *In, void **P) {                             \
        T *o = (T *)P[In->out];                                                          \
        const T *A = (const T *)P[In->a];                                                \
        const T *B = In->b >= 0 ? (const T *)P[In->b] : A;                                \
        const T *Z = In->c >= 0 ? (const T *)P[In->c] : A;                                \
        const T al = (T)In->f[0];                                                        \
        const T one = 1, two = 2, zero = 0;                                             \
        Py_ssize_t R = In->R, Cn = In->C, n = R * Cn, i, r, c;                            \
        int acc = In->acc;                                                               \
        int bm = In->b >= 0 ? In->bmode : In->amode, zm = In->c >= 0 ? In->cmode : In->amode; \
        int full = In->omode == 0 && In->amode == 0 && bm == 0 && zm == 0;               \
        Py_ssize_t ars, acs, brs, bcs, zrs, zcs, ors, ocs;                              \
        fg_strides(In->amode, Cn, &ars, &acs);                                           \
        fg_strides(bm, Cn, &brs, &bcs);                                                 \
        fg_strides(zm, Cn, &zrs, &zcs);                                                 \
        fg_strides(In->omode, Cn, &ors, &ocs);                                           \
        (void)one; (void)two; (void)zero;                                               \
        switch (In->op) {                                                                \
        case 0: FG_LOOPS(T, x); break;                                                  \
        case 1: FG_LOOPS(T, x + y); break;                                              \
        case 2: FG_LOOPS(T, x - y); break;                                              \
        case 3: FG_LOOPS(T, x * y); break;                                              \
        case 4: FG_LOOPS(T, x / y); break;                                              \
        case 5: FG_LOOPS(T, -x); break;                                                 \
        case 6: FG_LOOPS(T, EXPF(x)); break;                                            \
        case 7: FG_LOOPS(T, log##SFX(x)); break;                                        \
        case 8: FG_LOOPS(T, sin##SFX(x)); break;                                        \
        case 9: FG_LOOPS(T, cos##SFX(x)); break;                                        \
        case 10: FG_LOOPS(T, tanh##SFX(x)); break;                                      \
        case 11: FG_LOOPS(T, FG_SIGMOID(T, EXPF, x)); break;                            \
        case 12: FG_LOOPS(T, x > zero ? x : zero); break;                               \
        case 13: FG_LOOPS(T, sqrt##SFX(x)); break;                                      \
        case 14: FG_LOOPS(T, y == two ? x * x : pow##SFX(x, y)); break;                 \
        case 15: FG_LOOPS(T, y > zero ? x : zero); break;                               \
        case 16: FG_LOOPS(T, x * (y * (one - y))); break;                               \
        case 17: FG_LOOPS(T, x * (one - y * y)); break;                                 \
        case 18: FG_LOOPS(T, z != zero ? x * z * pow##SFX(y, z - one) : x * z * y); break; \
        case 19: FG_LOOPS(T, x * log##SFX(y == zero ? one : y) * z); break;             \
        case 20: FG_LOOPS(T, x * cos##SFX(y)); break;                                   \
        case 21: FG_LOOPS(T, -x * sin##SFX(y)); break;                                  \
        case 22: FG_LOOPS(T, -x * y / (z * z)); break;                                  \
        case 23: FG_LOOPS(T, x / (two * y)); break;                                     \
        }                                                                               \
    }

    FG_DEFINE_EW(double, , fg_exp_d, fg_ew_d)
    FG_DEFINE_EW(float, f, fg_exp_f, fg_ew_f)

    /* Row-major out (M x N) (+)= al op(A) op(B); flags bit 0: A transposed, bit 1: B. */
    #define FG_DEFINE_GEMM(T, GEMM, GEMV, GER, NAME)                                    \
    static void NAME(const fg_ins *In, void **P) {                                       \
        T *o = (T *)P[In->out];                                                          \
        T *A = (T *)P[In->a], *B = (T *)P[In->b];                                         \
        int M = (int)In->R, N = (int)In->C, K = (int)In->K, one = 1;                       \
        int tA = In->flags & 1, tB = (In->flags >> 1) & 1;                                \
        T al = (T)In->f[0], beta = In->acc ? 1 : 0;                                       \
        Py_ssize_t i, j;                                                                \
        if (M == 0 || N == 0) return;                                                   \
        if (K == 1) { /* an outer product: A is a vector of M, B of N */                \
            if (In->acc) { GER(&N, &M, &al, B, &one, A, &one, o, &N); }                  \
            else for (i = 0; i < M; i++) { const T a = al * A[i]; T *row = o + i * N;   \
                for (j = 0; j < N; j++) row[j] = a * B[j]; }                            \
            return;                                                                     \
        }                                                                               \
        if (M == 1) { /* o (1 x N) = a op(B) */                                         \
            if (tB) { GEMV("T", &K, &N, &al, B, &K, A, &one, &beta, o, &one); }         \
            else { GEMV("N", &N, &K, &al, B, &N, A, &one, &beta, o, &one); }            \
            return;                                                                     \
        }                                                                               \
        if (N == 1) { /* o (M x 1) = op(A) b */                                         \
            if (tA) { GEMV("N", &M, &K, &al, A, &M, B, &one, &beta, o, &one); }         \
            else { GEMV("T", &K, &M, &al, A, &K, B, &one, &beta, o, &one); }            \
            return;                                                                     \
        }                                                                               \
        {                                                                               \
            int lda = tA ? M : K, ldb = tB ? K : N;                                     \
            GEMM(tB ? "T" : "N", tA ? "T" : "N", &N, &M, &K, &al, B, &ldb, A, &lda,     \
                 &beta, o, &N);                                                         \
        }                                                                               \
    }

    FG_DEFINE_GEMM(double, fg_dgemm, fg_dgemv, fg_dger, fg_gemm_d)
    FG_DEFINE_GEMM(float, fg_sgemm, fg_sgemv, fg_sger, fg_gemm_f)

    /* z = x W^T + b (N x M), then h = sigmoid(z) in place if flags bit 1. */
    #define FG_DEFINE_AFFINE(T, EXPF, GEMMF, NAME)                                       \
    static FG_CLONES void NAME(const fg_ins *In, void **P) {                             \
        T *z = (T *)P[In->out];                                                          \
        const T *b = In->c >= 0 ? (const T *)P[In->c] : NULL;                             \
        Py_ssize_t N = In->R, M = In->C, i, j;                                            \
        fg_ins G = *In;                                                                  \
        G.a = In->a; G.b = In->b; G.flags = 2; G.f[0] = 1.0; G.acc = b != NULL;           \
        if (b) for (i = 0; i < N; i++) memcpy(z + i * M, b, M * sizeof(T));             \
        GEMMF(&G, P);                                                                   \
        if (In->flags & 2) for (i = 0; i < N * M; i++) z[i] = FG_SIGMOID(T, EXPF, z[i]);  \
        (void)j;                                                                        \
    }

    FG_DEFINE_AFFINE(double, fg_exp_d, fg_gemm_d, fg_affine_d)
    FG_DEFINE_AFFINE(float, fg_exp_f, fg_gemm_f, fg_affine_f)

    #define FG_DEFINE_MISC(T, SFX, SUFFIX)                                              \
    static void fg_transpose_##SUFFIX(const fg_ins *In, void **P) {                      \
        T *o = (T *)P[In->out]; const T *a = (const T *)P[In->a];                         \
        Py_ssize_t R = In->R, C = In->C, r, c;                                            \
        if (In->acc) { for (c = 0; c < C; c++) for (r = 0; r < R; r++) o[c * R + r] += a[r * C + c]; } \
        else { for (c = 0; c < C; c++) for (r = 0; r < R; r++) o[c * R + r] = a[r * C + c]; } \
    }                                                                                   \
    static FG_CLONES void fg_sgd_##SUFFIX(const fg_ins *In, void **P) {                            \
        T *W = (T *)P[In->out]; const T *dW = (const T *)P[In->a];                        \
        T *v = In->b >= 0 ? (T *)P[In->b] : NULL;                                         \
        const T lr = (T)In->f[1], mu = (T)In->f[2], wd = (T)In->f[3];                      \
        Py_ssize_t n = In->C, i;                                                         \
        if (v) { for (i = 0; i < n; i++) { v[i] = mu * v[i] + dW[i] + wd * W[i];        \
                                           W[i] -= lr * v[i]; } }                        \
        else if (wd != 0) { for (i = 0; i < n; i++) W[i] -= lr * (dW[i] + wd * W[i]); } \
        else { for (i = 0; i < n; i++) W[i] -= lr * dW[i]; }                            \
    }                                                                                   \
    static FG_CLONES void fg_adam_##SUFFIX(const fg_ins *In, void **P) {                           \
        T *W = (T *)P[In->out]; const T *dW = (const T *)P[In->a];                        \
        T *m = (T *)P[In->b], *v = (T *)P[In->c];                                         \
        const T lr = (T)In->f[1], b1 = (T)In->f[2], b2 = (T)In->f[3], eps = (T)In->f[4];    \
        const T c1 = (T)In->f[5], c2 = (T)In->f[6], wd = (T)In->f[7];                      \
        Py_ssize_t n = In->C, i;                                                         \
        for (i = 0; i < n; i++) {                                                       \
            const T g = dW[i] + wd * W[i];                                              \
            m[i] = b1 * m[i] + ((T)1 - b1) * g;                                         \
            v[i] = b2 * v[i] + ((T)1 - b2) * (g * g);                                   \
            W[i] -= lr * (m[i] * c1) / (sqrt##SFX(v[i] * c2) + eps);                    \
        }                                                                               \
    }                                                                                   \
    /* log-softmax / softmax of each row, and their backward (op - 36: 0 log fwd,       \
       1 log bwd, 2 fwd, 3 bwd) */                                                      \
    static FG_CLONES void fg_rows_##SUFFIX(const fg_ins *In, void **P, int which) {                \
        T *o = (T *)P[In->out]; const T *a = (const T *)P[In->a];                         \
        const T *y = In->b >= 0 ? (const T *)P[In->b] : NULL;                             \
        Py_ssize_t R = In->R, C = In->C, r, c;                                            \
        for (r = 0; r < R; r++) {                                                       \
            const T *ar = a + r * C; T *orow = o + r * C;                               \
            if (which == 0 || which == 2) {                                             \
                T mx = ar[0], s = 0;                                                    \
                for (c = 1; c < C; c++) if (ar[c] > mx) mx = ar[c];                     \
                for (c = 0; c < C; c++) s += exp##SFX(ar[c] - mx);                      \
                if (which == 0) { T ls = log##SFX(s);                                   \
                    for (c = 0; c < C; c++) orow[c] = (ar[c] - mx) - ls; }              \
                else for (c = 0; c < C; c++) orow[c] = exp##SFX(ar[c] - mx) / s;        \
            } else {                                                                    \
                const T *yr = y + r * C; T s = 0;                                       \
                if (which == 1) {                                                       \
                    for (c = 0; c < C; c++) s += ar[c];                                 \
                    for (c = 0; c < C; c++) { T d = ar[c] - exp##SFX(yr[c]) * s;        \
                        if (In->acc) orow[c] += d; else orow[c] = d; }                   \
                } else {                                                                \
                    for (c = 0; c < C; c++) s += ar[c] * yr[c];                         \
                    for (c = 0; c < C; c++) { T d = yr[c] * (ar[c] - s);                \
                        if (In->acc) orow[c] += d; else orow[c] = d; }                   \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

    FG_DEFINE_MISC(double, , d)
    FG_DEFINE_MISC(float, f, f)

    static void fg_cast(const fg_ins *In, void **P) {
        Py_ssize_t n = In->R * In->C, i;
        if (In->dt == 1) { float *o = (float *)P[In->out]; const double *a = (const double *)P[In->a];
                          for (i = 0; i < n; i++) o[i] = (float)a[i]; }
        else { double *o = (double *)P[In->out]; const float *a = (const float *)P[In->a];
               for (i = 0; i < n; i++) o[i] = (double)a[i]; }
    }

    #pragma GCC pop_options

    static void fg_run(const fg_ins *ins, Py_ssize_t n, void **P) {
        Py_ssize_t k;
        for (k = 0; k < n; k++) {
            const fg_ins *In = ins + k;
            int d = In->dt == 0;
            if (In->op < 24) { if (d) fg_ew_d(In, P); else fg_ew_f(In, P); continue; }
            switch (In->op) {
            case 30: fg_cast(In, P); break;
            case 31: if (d) fg_affine_d(In, P); else fg_affine_f(In, P); break;
            case 32: if (d) fg_gemm_d(In, P); else fg_gemm_f(In, P); break;
            case 33: if (d) fg_transpose_d(In, P); else fg_transpose_f(In, P); break;
            case 34: if (d) fg_sgd_d(In, P); else fg_sgd_f(In, P); break;
            case 35: if (d) fg_adam_d(In, P); else fg_adam_f(In, P); break;
            case 36: case 37: case 38: case 39:
                if (d) fg_rows_d(In, P, In->op - 36); else fg_rows_f(In, P, In->op - 36); break;
            }
        }
    }
    """
    ctypedef struct fg_ins:
        int op, dt, out, a, b, c, omode, amode, bmode, cmode, acc, flags
        Py_ssize_t R, C, K
        double f[8]
    void fg_set_blas(void*, void*, void*, void*, void*, void*) noexcept nogil
    void fg_run(const fg_ins* ins, Py_ssize_t n, void** P) noexcept nogil

fg_set_blas(<void*>dgemm, <void*>sgemm, <void*>dgemv, <void*>sgemv, <void*>dger, <void*>sger)


cdef class Program:
    """A plan in C structs: ``bind`` buffers, ``set_param``, then ``run()`` (GIL released)."""

    cdef fg_ins* ins
    cdef Py_ssize_t n
    cdef void** ptrs
    cdef Py_ssize_t nslots
    cdef list arrays  # keeps every bound array alive; arrays[i] is slot i's array
    cdef list aliases  # (alias number, base number, shape)
    cdef dict alias_of  # base number -> [alias numbers]
    cdef dict owned  # input numbers whose buffer this program allocated (bind_scalar)
    cdef public object plan

    def __cinit__(self, plan):
        self.ins = NULL
        self.ptrs = NULL

    def __init__(self, plan):
        from . import _compile as C

        self.plan = plan
        used = plan.used
        self.nslots = len(used)
        self.ptrs = <void**>malloc(max(self.nslots, 1) * sizeof(void*))
        self.arrays = [None] * self.nslots
        self.aliases = []
        self.alias_of = {}
        self.owned = {}
        for i, s in enumerate(used):
            self.ptrs[i] = NULL
            if s.kind == "alias":
                b = plan.number[id(s.base)]
                self.aliases.append((i, b, s.shape))
                self.alias_of.setdefault(b, []).append(i)
        for i, s in enumerate(used):
            if s.kind != "alias":
                a = plan.initial_array(s)
                if a is not None:
                    self._set(i, a)
        instrs = plan.instrs
        self.n = len(instrs)
        self.ins = <fg_ins*>malloc(max(self.n, 1) * sizeof(fg_ins))
        num = plan.number
        cdef fg_ins* I
        cdef int j
        for k, x in enumerate(instrs):
            I = &self.ins[k]
            I.op = x.op
            I.dt = 0 if x.out.dtype == np.float64 else 1
            I.out = num[id(x.out)]
            args = list(x.args) + [None] * (3 - len(x.args))
            I.a = num[id(args[0])] if args[0] is not None else -1
            I.b = num[id(args[1])] if args[1] is not None else -1
            I.c = num[id(args[2])] if args[2] is not None else -1
            I.omode = x.omode
            I.amode, I.bmode, I.cmode = x.modes[0], x.modes[1], x.modes[2]
            I.acc = 1 if x.acc else 0
            I.flags = x.flags
            I.R, I.C, I.K = x.R, x.C, x.K
            for j in range(8):
                I.f[j] = x.f[j]
            if x.op == C.GEMM and x.K == 1:
                pass
            if x.op == C.CAST:
                I.dt = 0 if x.out.dtype == np.float64 else 1

    def __dealloc__(self):
        free(self.ins)
        free(self.ptrs)

    cdef _set(self, Py_ssize_t i, object a):
        cdef cnp.ndarray arr = <cnp.ndarray?>a
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            raise ValueError("fastgrad.compile: buffer %d of shape %s is not C-contiguous" % (i, a.shape))
        self.arrays[i] = arr
        self.ptrs[i] = cnp.PyArray_DATA(arr)
        lst = self.alias_of.get(i)
        if lst is not None:
            for j in lst:  # views share the pointer; their arrays are made on demand
                self.arrays[j] = None
                self._alias_ptr(j, self.ptrs[i])

    cdef _alias_ptr(self, Py_ssize_t j, void* p):
        self.ptrs[j] = p
        lst = self.alias_of.get(j)
        if lst is not None:
            for k in lst:
                self.arrays[k] = None
                self._alias_ptr(k, p)

    def bind(self, Py_ssize_t i, a):
        """Point slot ``i`` at array ``a`` (C-contiguous, the slot's dtype and size)."""
        self._set(i, a)

    def bind_scalar(self, Py_ssize_t i, double value):
        """Write a number into slot ``i`` (a one-element input), in a buffer this program owns."""
        cdef cnp.ndarray arr = self.arrays[i]
        if arr is None or not self.owned.get(i, False):
            arr = np.empty(self.plan.used[i].shape, self.plan.used[i].dtype)
            self.owned[i] = True
            self._set(i, arr)
        if arr.dtype.itemsize == 8:
            (<double*>self.ptrs[i])[0] = value
        else:
            (<float*>self.ptrs[i])[0] = <float>value

    def set_param(self, Py_ssize_t k, int j, double value):
        self.ins[k].f[j] = value

    def array(self, Py_ssize_t i):
        a = self.arrays[i]
        if a is None:  # a view: its base's array, reshaped
            for j, base, shape in self.aliases:
                if j == i:
                    a = self.arrays[i] = self.array(base).reshape(shape)
                    break
        return a

    def run(self):
        with nogil:
            fg_run(self.ins, self.n, self.ptrs)
