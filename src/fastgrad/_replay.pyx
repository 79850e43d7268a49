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

    /* out (+)= al * EXPR(x, y, z) over R x C, operands and output under their modes. */
    #define FG_STRIDED(E) do {                                                          \
        int add = acc || In->omode != 0;                                                 \
        if (In->omode != 0 && !acc) {                                                    \
            Py_ssize_t m = In->omode == 1 ? 1 : (In->omode == 2 ? Cn : R);                \
            for (i = 0; i < m; i++) o[i] = 0;                                           \
        }                                                                               \
        for (r = 0; r < R; r++) for (c = 0; c < Cn; c++) {                              \
            const fgT x = A[r * ars + c * acs], y = B[r * brs + c * bcs],                 \
                    z = Z[r * zrs + c * zcs]; (void)x; (void)y; (void)z;                 \
            fgT *d = o + r * ors + c * ocs;                                               \
            if (add) *d += al * (E); else *d = al * (E);                                \
        }                                                                               \
    } while (0)

    /* Every elementwise expression, once: CASES(LOOP) expands LOOP(op, EXPR) per opcode. */
    #define FG_CASES(T, SFX, EXPF, LOOP)                                                    \
        case 0: LOOP(x); break;                                                         \
        case 1: LOOP(x + y); break;                                                     \
        case 2: LOOP(x - y); break;                                                     \
        case 3: LOOP(x * y); break;                                                     \
        case 4: LOOP(x / y); break;                                                     \
        case 5: LOOP(-x); break;                                                        \
        case 6: LOOP(EXPF(x)); break;                                                   \
        case 7: LOOP(log##SFX(x)); break;                                               \
        case 8: LOOP(sin##SFX(x)); break;                                               \
        case 9: LOOP(cos##SFX(x)); break;                                               \
        case 10: LOOP(tanh##SFX(x)); break;                                             \
        case 11: LOOP(FG_SIGMOID(T, EXPF, x)); break;                                   \
        case 12: LOOP(x > zero ? x : zero); break;                                      \
        case 13: LOOP(sqrt##SFX(x)); break;                                             \
        case 14: LOOP(y == two ? x * x : pow##SFX(x, y)); break;                        \
        case 15: LOOP(y > zero ? x : zero); break;                                      \
        case 16: LOOP(x * (y * (one - y))); break;                                      \
        case 17: LOOP(x * (one - y * y)); break;                                        \
        case 18: LOOP(z == two ? x * two * y : (z != zero ? x * z * pow##SFX(y, z - one) : x * z * y)); break; \
        case 19: LOOP(x * log##SFX(y == zero ? one : y) * z); break;                    \
        case 20: LOOP(x * cos##SFX(y)); break;                                          \
        case 21: LOOP(-x * sin##SFX(y)); break;                                         \
        case 22: LOOP(-x * y / (z * z)); break;                                         \
        case 23: LOOP(x / (two * y)); break;                                            \
        case 24: LOOP((x != x || x > y) ? x : y); break;                  /* maximum */ \
        case 25: LOOP((x != x || x < y) ? x : y); break;                  /* minimum */ \
        /* x̄ = ḡ [x = max(x, y)] / (1 + [x = y]): ties share the signal, as eager */  \
        case 26: LOOP(y == ((y != y || y > z) ? y : z) ? (y == z ? x * half : x) : zero); break; \
        case 27: LOOP(y == ((y != y || y < z) ? y : z) ? (y == z ? x * half : x) : zero); break; \
        case 28: LOOP(x != zero ? y : z); break;                          /* where */

    #define FG_CONSTS(T) typedef T fgT; const T one = 1, two = 2, zero = 0, half = (T)0.5;  \
        (void)one; (void)two; (void)zero; (void)half;

    /* One element: v = EXPR(x, y, z). */
    #define FG_DEFINE_SCALAR(T, SFX, EXPF, NAME)                                           \
    static inline T NAME(int op, T x, T y, T z) {                                        \
        FG_CONSTS(T)                                                                     \
        T v = 0;                                                                         \
        (void)y; (void)z;                                                                \
        switch (op) { FG_CASES(T, SFX, EXPF, FG_SCALAR_SET) }                           \
        return v;                                                                        \
    }
    #define FG_SCALAR_SET(E) v = (E)

    /* Contiguous operands of n elements: o (+)= al EXPR(a, b, c). */
    #define FG_CORE_LOOP(E) do {                                                         \
        if (acc) { for (i = 0; i < n; i++) {                                            \
            const fgT x = A[i], y = B[i], z = Z[i]; (void)x; (void)y; (void)z;             \
            o[i] += al * (E); } }                                                       \
        else { for (i = 0; i < n; i++) {                                                \
            const fgT x = A[i], y = B[i], z = Z[i]; (void)x; (void)y; (void)z;             \
            o[i] = al * (E); } }                                                        \
    } while (0)
    #define FG_DEFINE_CORE(T, SFX, EXPF, NAME)                                             \
    static FG_CLONES void NAME(int op, T *o, const T *A, const T *B, const T *Z,           \
                               Py_ssize_t n, T al, int acc) {                            \
        FG_CONSTS(T)                                                                     \
        Py_ssize_t i;                                                                    \
        switch (op) { FG_CASES(T, SFX, EXPF, FG_CORE_LOOP) }                            \
    }

    #define FG_DEFINE_EW(T, SFX, EXPF, NAME, SCALAR, CORE)                                  \
    FG_DEFINE_SCALAR(T, SFX, EXPF, SCALAR)                                               \
    FG_DEFINE_CORE(T, SFX, EXPF, CORE)                                                   \
    static FG_CLONES void NAME(const fg_ins *In, void **P) {                             \
        T *o = (T *)P[In->out];                                                          \
        const T *A = (const T *)P[In->a];                                                \
        const T *B = In->b >= 0 ? (const T *)P[In->b] : A;                                \
        const T *Z = In->c >= 0 ? (const T *)P[In->c] : A;                                \
        const T al = (T)In->f[0];                                                        \
        FG_CONSTS(T)                                                                     \
        Py_ssize_t R = In->R, Cn = In->C, n = R * Cn, i, r, c;                            \
        int acc = In->acc;                                                               \
        int bm = In->b >= 0 ? In->bmode : In->amode, zm = In->c >= 0 ? In->cmode : In->amode; \
        int full = In->omode == 0 && In->amode == 0 && bm == 0 && zm == 0;               \
        Py_ssize_t ars, acs, brs, bcs, zrs, zcs, ors, ocs;                              \
        if (n == 1) { /* one element: every mode reads and writes element 0 */           \
            const T v = al * SCALAR(In->op, A[0], B[0], Z[0]);                           \
            if (acc) o[0] += v; else o[0] = v;                                           \
            return;                                                                     \
        }                                                                               \
        if (full) { CORE(In->op, o, A, B, Z, n, al, acc); return; }                      \
        if ((In->omode == 0 || In->omode == 2) && (In->amode == 0 || In->amode == 2)     \
                && (bm == 0 || bm == 2) && (zm == 0 || zm == 2)) {                       \
            /* rows (x) broadcast down, or the output summed over rows: row by row */    \
            if (In->omode == 2 && !acc) for (i = 0; i < Cn; i++) o[i] = 0;               \
            for (r = 0; r < R; r++)                                                      \
                CORE(In->op, In->omode == 0 ? o + r * Cn : o,                            \
                     In->amode == 0 ? A + r * Cn : A, bm == 0 ? B + r * Cn : B,          \
                     zm == 0 ? Z + r * Cn : Z, Cn, al, acc || In->omode == 2);           \
            return;                                                                     \
        }                                                                               \
        fg_strides(In->amode, Cn, &ars, &acs);                                           \
        fg_strides(bm, Cn, &brs, &bcs);                                                 \
        fg_strides(zm, Cn, &zrs, &zcs);                                                 \
        fg_strides(In->omode, Cn, &ors, &ocs);                                           \
        switch (In->op) { FG_CASES(T, SFX, EXPF, FG_STRIDED) }                          \
    }
    FG_DEFINE_EW(double, , fg_exp_d, fg_ew_d, fg_scalar_d, fg_core_d)
    FG_DEFINE_EW(float, f, fg_exp_f, fg_ew_f, fg_scalar_f, fg_core_f)

    /* Batch-1 products as typed loops (memory-bound: one pass over the matrix; BLAS
       gemv/ger add a call and, for ger, a slower loop). The dot products keep four
       vector sums (a reassociation the compiler makes only under -ffast-math). */
    /* Elements (of size sz) before p is 64-byte aligned, at most n; 0 if it never can be. */
    static inline Py_ssize_t fg_peel(const void *p, size_t sz, Py_ssize_t n) {
        size_t off = (size_t)p & 63;
        Py_ssize_t k;
        if (off % sz) return n;  /* misaligned for the element type: scalar loop */
        k = (Py_ssize_t)(((64 - off) & 63) / sz);
        return k < n ? k : n;
    }

    #define FG_DEFINE_VEC(T, SUFFIX)                                                      \
    typedef T fg_v##SUFFIX __attribute__((vector_size(64)));                               \
    /* o[i] (+)= al sum_j W[i, j] x[j] (+ b[i]), W (M x D) row-major */                    \
    static FG_CLONES void fg_rowdots_##SUFFIX(const T *W, const T *x, const T *b, T *o,    \
                                              Py_ssize_t M, Py_ssize_t D, T al, int acc) { \
        typedef fg_v##SUFFIX V;                                                          \
        const Py_ssize_t L = 64 / sizeof(T);                                             \
        for (Py_ssize_t i = 0; i < M; i++) {                                             \
            const T *w = W + i * D;                                                      \
            V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, p, q;                              \
            T t = 0;                                                                     \
            /* numpy's large arrays start 16 bytes past a page: align the row's loads */ \
            Py_ssize_t j = 0, j0 = fg_peel(w, sizeof(T), D);                             \
            for (; j < j0; j++) t += w[j] * x[j];                                        \
            for (; j + 4 * L <= D; j += 4 * L) {                                         \
                p = *(const V *)(w + j); __builtin_memcpy(&q, x + j, 64); s0 += p * q;   \
                p = *(const V *)(w + j + L); __builtin_memcpy(&q, x + j + L, 64); s1 += p * q; \
                p = *(const V *)(w + j + 2 * L); __builtin_memcpy(&q, x + j + 2 * L, 64); s2 += p * q; \
                p = *(const V *)(w + j + 3 * L); __builtin_memcpy(&q, x + j + 3 * L, 64); s3 += p * q; \
            }                                                                            \
            for (; j + L <= D; j += L) {                                                 \
                p = *(const V *)(w + j); __builtin_memcpy(&q, x + j, 64); s0 += p * q;   \
            }                                                                            \
            s0 = (s0 + s1) + (s2 + s3);                                                  \
            for (; j < D; j++) t += w[j] * x[j];                                         \
            for (Py_ssize_t l = 0; l < L; l++) t += s0[l];                               \
            t *= al;                                                                     \
            if (b) t += b[i];                                                            \
            if (acc) o[i] += t; else o[i] = t;                                           \
        }                                                                                \
    }                                                                                    \
    /* y (+)= al sum_k c[k] X[k, :], X (K x n): four rows per pass over y */               \
    static FG_CLONES void fg_lincomb_##SUFFIX(T *restrict y, const T *c,                   \
                                              const T *restrict X, Py_ssize_t K,           \
                                              Py_ssize_t n, T al, int acc) {               \
        Py_ssize_t k = 0, j;                                                             \
        if (!acc) for (j = 0; j < n; j++) y[j] = 0;                                      \
        for (; k + 4 <= K; k += 4) {                                                     \
            const T c0 = al * c[k], c1 = al * c[k + 1], c2 = al * c[k + 2], c3 = al * c[k + 3]; \
            const T *x0 = X + k * n, *x1 = x0 + n, *x2 = x1 + n, *x3 = x2 + n;           \
            for (j = 0; j < n; j++)                                                      \
                y[j] += (c0 * x0[j] + c1 * x1[j]) + (c2 * x2[j] + c3 * x3[j]);           \
        }                                                                                \
        for (; k < K; k++) {                                                             \
            const T c0 = al * c[k], *x0 = X + k * n;                                     \
            for (j = 0; j < n; j++) y[j] += c0 * x0[j];                                  \
        }                                                                                \
    }                                                                                    \
    /* o[i, j] (+)= al a[i] b[j]: the outer product, and SGD's rank-1 update of W */       \
    static FG_CLONES void fg_outer_##SUFFIX(T *restrict o, const T *a, const T *restrict b, \
                                            Py_ssize_t M, Py_ssize_t N, T al, int acc) {   \
        typedef fg_v##SUFFIX V;                                                          \
        const Py_ssize_t L = 64 / sizeof(T);                                             \
        for (Py_ssize_t i = 0; i < M; i++) {                                             \
            const T s = al * a[i]; T *restrict row = o + i * N;                          \
            Py_ssize_t j = 0, j0 = fg_peel(row, sizeof(T), N), l;                        \
            V sv, q;                                                                     \
            for (l = 0; l < L; l++) sv[l] = s;                                           \
            if (acc) {                                                                   \
                for (; j < j0; j++) row[j] += s * b[j];                                  \
                for (; j + L <= N; j += L) { __builtin_memcpy(&q, b + j, 64); *(V *)(row + j) += sv * q; } \
                for (; j < N; j++) row[j] += s * b[j];                                   \
            } else {                                                                     \
                for (; j < j0; j++) row[j] = s * b[j];                                   \
                for (; j + L <= N; j += L) { __builtin_memcpy(&q, b + j, 64); *(V *)(row + j) = sv * q; } \
                for (; j < N; j++) row[j] = s * b[j];                                    \
            }                                                                            \
        }                                                                                \
    }

    FG_DEFINE_VEC(double, d)
    FG_DEFINE_VEC(float, f)

    /* Row-major out (M x N) (+)= al op(A) op(B); flags bit 0: A transposed, bit 1: B. */
    static int fg_vec_blas = 0; /* 1: batch-1 products through BLAS gemv/ger (for comparison) */
    #define FG_DEFINE_GEMM(T, GEMM, GEMV, GER, SUFFIX)                                   \
    static void fg_gemm_##SUFFIX(const fg_ins *In, void **P) {                           \
        T *o = (T *)P[In->out];                                                          \
        T *A = (T *)P[In->a], *B = (T *)P[In->b];                                         \
        int M = (int)In->R, N = (int)In->C, K = (int)In->K, one = 1;                      \
        int tA = In->flags & 1, tB = (In->flags >> 1) & 1;                                \
        T al = (T)In->f[0], beta = In->acc ? 1 : 0;                                       \
        if (M == 0 || N == 0) return;                                                   \
        if (K == 0) { if (!In->acc) memset(o, 0, (size_t)M * N * sizeof(T)); return; }   \
        if (fg_vec_blas && K == 1 && In->acc) { GER(&N, &M, &al, B, &one, A, &one, o, &N); return; } \
        if (fg_vec_blas && M == 1) {                                                    \
            if (tB) { GEMV("T", &K, &N, &al, B, &K, A, &one, &beta, o, &one); }         \
            else { GEMV("N", &N, &K, &al, B, &N, A, &one, &beta, o, &one); }            \
            return;                                                                     \
        }                                                                               \
        if (K == 1) { fg_outer_##SUFFIX(o, A, B, M, N, al, In->acc); return; }           \
        if (M == 1) { /* o (1 x N) = a op(B) */                                         \
            if (tB) fg_rowdots_##SUFFIX(B, A, NULL, o, N, K, al, In->acc);               \
            else fg_lincomb_##SUFFIX(o, A, B, K, N, al, In->acc);                         \
            return;                                                                     \
        }                                                                               \
        if (N == 1) { /* o (M x 1) = op(A) b */                                         \
            if (tA) fg_lincomb_##SUFFIX(o, B, A, K, M, al, In->acc);                      \
            else fg_rowdots_##SUFFIX(A, B, NULL, o, M, K, al, In->acc);                  \
            return;                                                                     \
        }                                                                               \
        {                                                                               \
            int lda = tA ? M : K, ldb = tB ? K : N;                                     \
            GEMM(tB ? "T" : "N", tA ? "T" : "N", &N, &M, &K, &al, B, &ldb, A, &lda,     \
                 &beta, o, &N);                                                         \
        }                                                                               \
    }

    FG_DEFINE_GEMM(double, fg_dgemm, fg_dgemv, fg_dger, d)
    FG_DEFINE_GEMM(float, fg_sgemm, fg_sgemv, fg_sger, f)

    /* z = x W^T + b (N x M), then h = sigmoid(z) in place if flags bit 1. */
    #define FG_AFFINE_T 65536 /* W of up to this many elements is transposed first */
    /* z = sigmoid(z) in place (one pointer: the vectoriser needs no overlap check) */
    #define FG_DEFINE_SIGMOID(T, EXPF, SUFFIX)                                            \
    static FG_CLONES void fg_sigmoid_##SUFFIX(T *z, Py_ssize_t n) {                        \
        for (Py_ssize_t i = 0; i < n; i++) z[i] = FG_SIGMOID(T, EXPF, z[i]);               \
    }                                                                                    \
    /* t (D x M) = w^T for w (M x D), in 8 x 8 blocks */                                  \
    static void fg_transpose_blk_##SUFFIX(T *restrict t, const T *restrict w,             \
                                          Py_ssize_t M, Py_ssize_t D) {                  \
        for (Py_ssize_t i0 = 0; i0 < M; i0 += 8)                                         \
            for (Py_ssize_t j0 = 0; j0 < D; j0 += 8) {                                   \
                Py_ssize_t i1 = i0 + 8 < M ? i0 + 8 : M, j1 = j0 + 8 < D ? j0 + 8 : D;   \
                for (Py_ssize_t i = i0; i < i1; i++)                                     \
                    for (Py_ssize_t j = j0; j < j1; j++) t[j * M + i] = w[i * D + j];     \
            }                                                                            \
    }
    FG_DEFINE_SIGMOID(double, fg_exp_d, d)
    FG_DEFINE_SIGMOID(float, fg_exp_f, f)
    #define FG_DEFINE_AFFINE(T, EXPF, SUFFIX)                                            \
    static FG_CLONES void fg_affine_##SUFFIX(const fg_ins *In, void **P, void *scratch) { \
        T *z = (T *)P[In->out];                                                          \
        const T *b = In->c >= 0 ? (const T *)P[In->c] : NULL;                             \
        Py_ssize_t N = In->R, M = In->C, i;                                               \
        if (N == 1 && !fg_vec_blas) fg_rowdots_##SUFFIX((const T *)P[In->b], (const T *)P[In->a], b, z,  \
                                        M, In->K, (T)1, 0);                              \
        else {                                                                          \
            fg_ins G = *In;                                                              \
            const T *W = (const T *)P[In->b];                                             \
            Py_ssize_t D = In->K;                                                         \
            G.flags = 2; G.f[0] = 1.0; G.acc = b != NULL;                                 \
            if (b) for (i = 0; i < N; i++) memcpy(z + i * M, b, M * sizeof(T));         \
            if (scratch && M * D <= FG_AFFINE_T) {                                       \
                /* small W: BLAS's x W^T kernel is slow here; W^T copied, then x (W^T) */ \
                T *Wt = (T *)scratch; void *Q[3];                                        \
                fg_transpose_blk_##SUFFIX(Wt, W, M, D);                                   \
                Q[0] = P[In->a]; Q[1] = Wt; Q[2] = z;                                     \
                G.a = 0; G.b = 1; G.out = 2; G.flags = 0;                                 \
                fg_gemm_##SUFFIX(&G, Q);                                                 \
            } else fg_gemm_##SUFFIX(&G, P);                                              \
        }                                                                               \
        if (In->flags & 2) fg_sigmoid_##SUFFIX(z, N * M);                                \
    }

    FG_DEFINE_AFFINE(double, fg_exp_d, d)
    FG_DEFINE_AFFINE(float, fg_exp_f, f)

    /* Softmax cross-entropy with integer labels t (R rows of C logits):
       op 41: out = -(al / R) sum_r log softmax(z_r)[t_r];
       op 42: out (+)= al g (softmax(z) - onehot(t)) / R, g = P[c][0].
       Returns 1 for a label outside [0, C). */
    #define FG_DEFINE_SCE(T, SFX, SUFFIX)                                                 \
    static FG_CLONES int fg_sce_##SUFFIX(const fg_ins *In, void **P) {                   \
        const T *z = (const T *)P[In->a]; const long long *t = (const long long *)P[In->b]; \
        T *o = (T *)P[In->out];                                                          \
        Py_ssize_t R = In->R, C = In->C, r, c;                                            \
        for (r = 0; r < R; r++) if (t[r] < 0 || t[r] >= C) return 1;                     \
        if (In->op == 41) {                                                             \
            double loss = 0;                                                            \
            for (r = 0; r < R; r++) {                                                   \
                const T *zr = z + r * C; T mx = zr[0], s = 0;                           \
                for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];                     \
                for (c = 0; c < C; c++) s += exp##SFX(zr[c] - mx);                      \
                loss += (double)(log##SFX(s) - (zr[t[r]] - mx));                        \
            }                                                                           \
            o[0] = (T)(In->f[0] * loss / (double)R);                                      \
            return 0;                                                                   \
        }                                                                               \
        {                                                                               \
            const T g = (T)In->f[0] * ((const T *)P[In->c])[0] / (T)R;                    \
            for (r = 0; r < R; r++) {                                                   \
                const T *zr = z + r * C; T *orow = o + r * C; T mx = zr[0], s = 0;      \
                for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];                     \
                for (c = 0; c < C; c++) s += exp##SFX(zr[c] - mx);                      \
                const T inv = g / s;                                                    \
                for (c = 0; c < C; c++) {                                               \
                    T d = exp##SFX(zr[c] - mx) * inv - (c == t[r] ? g : (T)0);          \
                    if (In->acc) orow[c] += d; else orow[c] = d;                         \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        return 0;                                                                       \
    }

    FG_DEFINE_SCE(double, , d)
    FG_DEFINE_SCE(float, f, f)

    /* An elementwise chain in one loop: subs[In->a .. In->a + In->K) over n = R C
       elements, in tiles of FG_BLK. An operand index <= -2 is register -2 - idx (a tile
       in scratch); a memory operand is full (offset by the tile) or a scalar (element 0,
       broadcast). A sub whose output mode is 1 sums its values into element 0. */
    #define FG_BLK 256
    #define FG_NREG 16
    #define FG_DEFINE_FUSED(T, SUFFIX)                                                    \
    static void fg_fused_##SUFFIX(const fg_ins *In, const fg_ins *subs, void **P,        \
                                  void *scratch) {                                       \
        T *regs = (T *)scratch;                                                          \
        T *bc = regs + FG_NREG * FG_BLK; /* 3 broadcast tiles, then a reduction tile */  \
        Py_ssize_t n = In->R * In->C, e0, k, j;                                           \
        for (e0 = 0; e0 < n; e0 += FG_BLK) {                                            \
            const Py_ssize_t m = n - e0 < FG_BLK ? n - e0 : FG_BLK;                       \
            for (k = 0; k < In->K; k++) {                                               \
                const fg_ins *S = subs + In->a + k;                                     \
                const T *ops[3]; T *o;                                                  \
                int idx[3] = {S->a, S->b, S->c}, md[3] = {S->amode, S->bmode, S->cmode};  \
                for (j = 0; j < 3; j++) {                                               \
                    int x = idx[j];                                                     \
                    if (x == -1) ops[j] = ops[0];                                       \
                    else if (x <= -2) ops[j] = regs + (Py_ssize_t)(-2 - x) * FG_BLK;    \
                    else if (md[j] == 0) ops[j] = (const T *)P[x] + e0;                   \
                    else if (m == 1) ops[j] = (const T *)P[x];                            \
                    else { T v = ((const T *)P[x])[0]; T *d = bc + j * FG_BLK;           \
                           for (Py_ssize_t i = 0; i < m; i++) d[i] = v; ops[j] = d; }    \
                }                                                                       \
                if (S->omode != 0) { /* a sum into element 0 */                          \
                    T *dst = S->out <= -2 ? regs + (Py_ssize_t)(-2 - S->out) * FG_BLK : (T *)P[S->out]; \
                    T *tmp = bc + 3 * FG_BLK, s = 0;                                    \
                    fg_core_##SUFFIX(S->op, tmp, ops[0], ops[1], ops[2], m, (T)S->f[0], 0); \
                    for (Py_ssize_t i = 0; i < m; i++) s += tmp[i];                     \
                    if (e0 == 0 && !S->acc) dst[0] = s; else dst[0] += s;               \
                    continue;                                                           \
                }                                                                       \
                o = S->out <= -2 ? regs + (Py_ssize_t)(-2 - S->out) * FG_BLK : (T *)P[S->out] + e0; \
                if (m == 1) {                                                           \
                    const T v = (T)S->f[0] * fg_scalar_##SUFFIX(S->op, ops[0][0], ops[1][0], ops[2][0]); \
                    if (S->acc) o[0] += v; else o[0] = v;                                \
                } else fg_core_##SUFFIX(S->op, o, ops[0], ops[1], ops[2], m, (T)S->f[0], S->acc); \
            }                                                                           \
        }                                                                               \
    }

    FG_DEFINE_FUSED(double, d)
    FG_DEFINE_FUSED(float, f)

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
        if (In->dt == 1) { float *o = (float *)P[In->out];
            if (In->flags == 2) { const long long *a = (const long long *)P[In->a];
                                  for (i = 0; i < n; i++) o[i] = (float)a[i]; }
            else { const double *a = (const double *)P[In->a]; for (i = 0; i < n; i++) o[i] = (float)a[i]; } }
        else { double *o = (double *)P[In->out];
            if (In->flags == 2) { const long long *a = (const long long *)P[In->a];
                                  for (i = 0; i < n; i++) o[i] = (double)a[i]; }
            else { const float *a = (const float *)P[In->a]; for (i = 0; i < n; i++) o[i] = (double)a[i]; } }
    }

    #pragma GCC pop_options

    /* Runs the program; returns 0, or 1 + the index of an instruction that failed. */
    static Py_ssize_t fg_run(const fg_ins *ins, Py_ssize_t n, void **P, const fg_ins *subs,
                             void *scratch) {
        Py_ssize_t k;
        for (k = 0; k < n; k++) {
            const fg_ins *In = ins + k;
            int d = In->dt == 0;
            if (In->op < 29) { if (d) fg_ew_d(In, P); else fg_ew_f(In, P); continue; }
            switch (In->op) {
            case 30: fg_cast(In, P); break;
            case 31: if (d) fg_affine_d(In, P, scratch); else fg_affine_f(In, P, scratch); break;
            case 32: if (d) fg_gemm_d(In, P); else fg_gemm_f(In, P); break;
            case 33: if (d) fg_transpose_d(In, P); else fg_transpose_f(In, P); break;
            case 34: if (d) fg_sgd_d(In, P); else fg_sgd_f(In, P); break;
            case 35: if (d) fg_adam_d(In, P); else fg_adam_f(In, P); break;
            case 36: case 37: case 38: case 39:
                if (d) fg_rows_d(In, P, In->op - 36); else fg_rows_f(In, P, In->op - 36); break;
            case 40: if (d) fg_fused_d(In, subs, P, scratch); else fg_fused_f(In, subs, P, scratch); break;
            case 41: case 42:
                if (d ? fg_sce_d(In, P) : fg_sce_f(In, P)) return k + 1;
                break;
            }
        }
        return 0;
    }
    """
    ctypedef struct fg_ins:
        int op, dt, out, a, b, c, omode, amode, bmode, cmode, acc, flags
        Py_ssize_t R, C, K
        double f[8]
    void fg_set_blas(void*, void*, void*, void*, void*, void*) noexcept nogil
    int fg_vec_blas
    Py_ssize_t fg_run(const fg_ins* ins, Py_ssize_t n, void** P, const fg_ins* subs,
                      void* scratch) noexcept nogil

fg_set_blas(<void*>dgemm, <void*>sgemm, <void*>dgemv, <void*>sgemv, <void*>dger, <void*>sger)


cdef inline void _fill(fg_ins* I, object x, dict num, object C):
    """Copy instruction ``x`` into ``I``; ``num`` maps slots to buffer numbers (registers
    of a fused chain map to negative numbers, <= -2)."""
    cdef int j
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


def _vec_blas(bint on):
    """Batch-1 products through BLAS gemv/ger instead of the typed loops (benchmarks)."""
    global fg_vec_blas
    fg_vec_blas = 1 if on else 0


cdef class Program:
    """A plan in C structs: ``bind`` buffers, ``set_param``, then ``run()`` (GIL released).

    ``call(args)`` is the whole per-call path of a compiled function in one C method: it
    checks and binds the arguments, the parameters' arrays and ``.grad``s, reads the
    learning rates, runs the program and builds the outputs; it returns ``miss`` when
    anything differs from what the plan was traced with (the caller then takes the
    Python path, which re-checks, converts or traces again).
    """

    cdef fg_ins* ins
    cdef Py_ssize_t n
    cdef fg_ins* subs
    cdef Py_ssize_t nsubs
    cdef void* scratch
    cdef void** ptrs
    cdef Py_ssize_t nslots
    cdef list arrays  # keeps every bound array alive; arrays[i] is slot i's array
    cdef list aliases  # (alias number, base number, shape)
    cdef dict alias_of  # base number -> [alias numbers]
    cdef dict owned  # input numbers whose buffer this program allocated (bind_scalar)
    cdef public object plan
    # the fast call path (set_call)
    cdef bint callable_
    cdef object miss
    cdef Py_ssize_t nargs
    cdef list in_spec  # (pos, number, is_float, ndim, shape, type_num)
    cdef list state_spec  # [number, tensor, last array, ndim, shape, type_num]
    cdef list none_spec  # tensors whose .grad must be None
    cdef list gradin_spec  # (number, tensor, ndim, shape, type_num)
    cdef list dyn_spec  # [obj, attr, last value, [(k, j, mult)]]
    cdef list preludes  # (k, fn)
    cdef list effects  # (tensor, number or -1)
    cdef int out_kind  # 0 array, 1 tensor, 2 const, 3 the Python builder
    cdef Py_ssize_t out_num
    cdef object out_value
    cdef object wrap
    cdef object builder

    def __cinit__(self, plan):
        self.ins = NULL
        self.subs = NULL
        self.scratch = NULL
        self.ptrs = NULL
        self.callable_ = False

    def __init__(self, plan):
        from . import _opcodes as C
        from ._compiler import ir

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
        subs = []
        for k, x in enumerate(instrs):
            _fill(&self.ins[k], x, num, C)
            if x.op == C.FUSED:
                self.ins[k].a = len(subs)
                self.ins[k].K = len(x.subs)
                subs.extend(x.subs)
            if x.op == C.CAST:
                self.ins[k].flags = 2 if x.args[0].dtype.kind in "iu" else 0
        self.nsubs = len(subs)
        self.subs = <fg_ins*>malloc(max(self.nsubs, 1) * sizeof(fg_ins))
        regnum = dict(num)
        for s, r in plan.registers.items():
            regnum[id(s)] = -2 - r
        for k, x in enumerate(subs):
            _fill(&self.subs[k], x, regnum, C)
        cdef Py_ssize_t need = (ir.NREG + 4) * ir.BLK if self.nsubs else 0
        for x in instrs:
            if x.op == C.AFFINE and x.R > 1 and x.C * x.K <= ir.AFFINE_T:
                need = max(need, x.C * x.K)
        if need:
            self.scratch = malloc(need * sizeof(double))

    def __dealloc__(self):
        free(self.ins)
        free(self.subs)
        free(self.scratch)
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

    cdef _scalar(self, Py_ssize_t i, double value):
        cdef cnp.ndarray arr = self.arrays[i]
        if arr is None or not self.owned.get(i, False):
            arr = np.empty(self.plan.used[i].shape, self.plan.used[i].dtype)
            self.owned[i] = True
            self._set(i, arr)
        if arr.dtype.itemsize == 8:
            (<double*>self.ptrs[i])[0] = value
        else:
            (<float*>self.ptrs[i])[0] = <float>value

    def bind_scalar(self, Py_ssize_t i, double value):
        """Write a number into slot ``i`` (a one-element input), in a buffer this program owns."""
        self._scalar(i, value)

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

    cdef int _exec(self) except -1:
        cdef Py_ssize_t bad
        with nogil:
            bad = fg_run(self.ins, self.n, self.ptrs, self.subs, self.scratch)
        if bad:
            raise ValueError(
                "fastgrad.compile: a label passed to the compiled function is out of range "
                "for the number of classes (instruction %d)" % (bad - 1))
        return 0

    def run(self):
        self._exec()

    def profile(self, int reps=100):
        """Seconds per run of each instruction alone, ``reps`` times each (for tuning;
        the instructions' effects repeat too, so run it on a scratch copy of the state)."""
        import time
        out = []
        cdef Py_ssize_t k
        cdef int r
        for k in range(self.n):
            t0 = time.perf_counter()
            with nogil:
                for r in range(reps):
                    fg_run(self.ins + k, 1, self.ptrs, self.subs, self.scratch)
            out.append((time.perf_counter() - t0) / reps)
        return out

    # -- the fast call path --

    def set_call(self, miss, nargs, in_spec, state_spec, none_spec, gradin_spec, dyn_spec,
                 preludes, effects, out, wrap, builder):
        """Arm ``call``: what to check and bind per call (see _compile._Entry)."""
        self.miss = miss
        self.nargs = nargs
        self.in_spec = in_spec
        for pos, i, is_float, nd, shape, tn in in_spec:
            if is_float:
                self._scalar(i, 0.0)
        self.state_spec = state_spec
        self.none_spec = none_spec
        self.gradin_spec = gradin_spec
        self.dyn_spec = dyn_spec
        self.preludes = preludes
        self.effects = effects
        if out is None:
            self.out_kind = 3
        else:
            kind, i, v = out
            self.out_kind = {"array": 0, "tensor": 1, "const": 2}[kind]
            self.out_num = i if i is not None else -1
            self.out_value = v
        self.wrap = wrap
        self.builder = builder
        self.callable_ = True

    cdef bint _fits(self, object a, int nd, tuple shape, int tn):
        cdef cnp.ndarray arr
        cdef int d
        if not cnp.PyArray_CheckExact(a):
            return False
        arr = <cnp.ndarray>a
        if cnp.PyArray_NDIM(arr) != nd or cnp.PyArray_TYPE(arr) != tn:
            return False
        if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
            return False
        for d in range(nd):
            if cnp.PyArray_DIM(arr, d) != <cnp.npy_intp>shape[d]:
                return False
        return True

    def call(self, tuple args):
        """One call of the compiled function, or ``miss``."""
        cdef Py_ssize_t pos, i
        cdef int is_float, nd, tn
        cdef list entry
        if not self.callable_ or len(args) != self.nargs:
            return self.miss
        for pos, i, is_float, nd, shape, tn in self.in_spec:
            a = args[pos]
            if is_float:
                if not isinstance(a, float):  # float and its subclasses (NumPy's float64)
                    return self.miss
                if tn == cnp.NPY_DOUBLE:
                    (<double*>self.ptrs[i])[0] = <double>a
                else:
                    (<float*>self.ptrs[i])[0] = <float><double>a
            else:
                if not self._fits(a, nd, shape, tn):
                    return self.miss
                if self.arrays[i] is not a:
                    self._set(i, a)
        for t in self.none_spec:
            node = t._node
            if node is None or node.grad is not None:
                return self.miss
        for entry in self.state_spec:
            d = entry[1]._data
            if d is not entry[2]:
                if not self._fits(d, entry[3], entry[4], entry[5]):
                    return self.miss
                entry[2] = d
                self._set(entry[0], d)
        for i, t, nd, shape, tn in self.gradin_spec:
            node = t._node
            g = node.grad if node is not None else None
            if g is None or not self._fits(g, nd, shape, tn):
                return self.miss
            if self.arrays[i] is not g:
                self._set(i, g)
        for entry in self.dyn_spec:
            v = getattr(entry[0], entry[1])
            if v != entry[2]:
                entry[2] = v
                for k, j, mult in entry[3]:
                    self.ins[<Py_ssize_t>k].f[<int>j] = mult * v
        for k, fn in self.preludes:
            for j, v in fn().items():
                self.ins[<Py_ssize_t>k].f[<int>j] = v
        self._exec()
        for t, i in self.effects:
            t._node.grad = None if i < 0 else self.array(i)
        if self.out_kind == 0:
            return cnp.PyArray_NewCopy(<cnp.ndarray>self.array(self.out_num), cnp.NPY_CORDER)
        if self.out_kind == 1:
            return self.wrap(cnp.PyArray_NewCopy(<cnp.ndarray>self.array(self.out_num), cnp.NPY_CORDER))
        if self.out_kind == 2:
            return self.out_value
        return self.builder(self)
