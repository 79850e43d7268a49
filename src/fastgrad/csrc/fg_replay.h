/* fastgrad.compile's executor (_replay.pyx): runs a plan's instructions (fg_ins) over a
   table of buffer pointers in one call, without the GIL. Opcodes, operand modes and the
   tile sizes are the names setup.py generates from fastgrad/_opcodes.py (fg_opcodes.h);
   the elementwise opcodes' bodies are the table of fg_elementwise.h; e^x and sigma are
   the kernels' vector functions (fg_vexp.h). BLAS comes from scipy.linalg.cython_blas,
   its function pointers set by fg_set_blas before the first program runs. */
#ifndef FG_REPLAY_H
#define FG_REPLAY_H

#include <Python.h>
#include <math.h>
#include <string.h>

#include "fg_opcodes.h"
#include "fg_vexp.h"
#include "fg_elementwise.h"

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

/* e^x and sigma over an array and of one element, by libm-style name (exp: double,
   expf: float): the VLOOP functions of fg_elementwise.h's table. */
static inline void fg_array_exp(const double *x, double *y, Py_ssize_t n) { fg_exp_d(x, y, n); }
static inline void fg_array_expf(const float *x, float *y, Py_ssize_t n) { fg_exp_f(x, y, n); }
static inline void fg_array_sigmoid(const double *x, double *y, Py_ssize_t n) {
    fg_sigmoid_d(x, NULL, y, n);
}
static inline void fg_array_sigmoidf(const float *x, float *y, Py_ssize_t n) {
    fg_sigmoid_f(x, NULL, y, n);
}
static inline double fg_one_exp(double x) { return fg_exp1_d(x); }
static inline float fg_one_expf(float x) { return fg_exp1_f(x); }
static inline double fg_one_sigmoid(double x) { return fg_sigmoid1_d(x); }
static inline float fg_one_sigmoidf(float x) { return fg_sigmoid1_f(x); }

static void fg_strides(int mode, Py_ssize_t C, Py_ssize_t *rs, Py_ssize_t *cs) {
    switch (mode) {
        case FG_MODE_FULL: *rs = C; *cs = 1; break;
        case FG_MODE_SCALAR: *rs = 0; *cs = 0; break;
        case FG_MODE_ROW: *rs = 0; *cs = 1; break;     /* a[c] */
        default: *rs = 1; *cs = 0; break;              /* FG_MODE_COL: a[r] */
    }
}

/* out (+)= al * EXPR(x, y, z) over R x C, operands and output under their modes. */
#define FG_STRIDED_ZERO do {                                                        \
    if (In->omode != FG_MODE_FULL && !acc) {                                         \
        Py_ssize_t m = In->omode == FG_MODE_SCALAR ? 1 : (In->omode == FG_MODE_ROW ? Cn : R); \
        for (i = 0; i < m; i++) o[i] = 0;                                           \
    }                                                                               \
} while (0)
#define FG_STRIDED(E) do {                                                          \
    int add = acc || In->omode != FG_MODE_FULL;                                      \
    FG_STRIDED_ZERO;                                                                \
    for (r = 0; r < R; r++) for (c = 0; c < Cn; c++) {                              \
        const fgT x = A[r * ars + c * acs], y = B[r * brs + c * bcs],                 \
                z = Z[r * zrs + c * zcs]; (void)x; (void)y; (void)z;                 \
        fgT *d = o + r * ors + c * ocs;                                               \
        if (add) *d += al * (E); else *d = al * (E);                                \
    }                                                                               \
} while (0)
/* The same for a vector function F (unary: x only), a row's tile of x at a time. */
#define FG_STRIDED_V(F) do {                                                        \
    int add = acc || In->omode != FG_MODE_FULL;                                      \
    fgT xt_[FG_BLK], vt_[FG_BLK];                                                   \
    FG_STRIDED_ZERO;                                                                \
    for (r = 0; r < R; r++) for (Py_ssize_t c0_ = 0; c0_ < Cn; c0_ += FG_BLK) {     \
        const Py_ssize_t m_ = Cn - c0_ < FG_BLK ? Cn - c0_ : FG_BLK;                  \
        for (c = 0; c < m_; c++) xt_[c] = A[r * ars + (c0_ + c) * acs];             \
        fg_array_##F(xt_, vt_, m_);                                                 \
        for (c = 0; c < m_; c++) {                                                  \
            fgT *d = o + r * ors + (c0_ + c) * ocs;                                   \
            if (add) *d += al * vt_[c]; else *d = al * vt_[c];                      \
        }                                                                           \
    }                                                                               \
} while (0)

#define FG_CONSTS(T) typedef T fgT; const T one = 1, two = 2, zero = 0, half = (T)0.5;  \
    (void)one; (void)two; (void)zero; (void)half; (void)sizeof(fgT);

/* One element: v = EXPR(x, y, z). */
#define FG_DEFINE_SCALAR(T, SFX, NAME)                                                 \
static inline T NAME(int op, T x, T y, T z) {                                        \
    FG_CONSTS(T)                                                                     \
    T v = 0;                                                                         \
    (void)y; (void)z;                                                                \
    switch (op) { FG_EW_TABLE(SFX, FG_SCALAR_SET, FG_SCALAR_V) }                     \
    return v;                                                                        \
}
#define FG_SCALAR_SET(E) v = (E)
#define FG_SCALAR_V(F) v = fg_one_##F(x)

/* Contiguous operands of n elements: o (+)= al EXPR(a, b, c). */
#define FG_CORE_LOOP(E) do {                                                         \
    if (acc) { for (i = 0; i < n; i++) {                                            \
        const fgT x = A[i], y = B[i], z = Z[i]; (void)x; (void)y; (void)z;             \
        o[i] += al * (E); } }                                                       \
    else { for (i = 0; i < n; i++) {                                                \
        const fgT x = A[i], y = B[i], z = Z[i]; (void)x; (void)y; (void)z;             \
        o[i] = al * (E); } }                                                        \
} while (0)
/* The same for a vector function F: straight into o, or a tile at a time for al, acc. */
#define FG_CORE_V(F) do {                                                            \
    if (!acc && al == one) { fg_array_##F(A, o, n); break; }                        \
    fgT t_[FG_BLK];                                                                 \
    for (Py_ssize_t i0_ = 0; i0_ < n; i0_ += FG_BLK) {                              \
        const Py_ssize_t m_ = n - i0_ < FG_BLK ? n - i0_ : FG_BLK;                    \
        fg_array_##F(A + i0_, t_, m_);                                              \
        if (acc) { for (i = 0; i < m_; i++) o[i0_ + i] += al * t_[i]; }             \
        else { for (i = 0; i < m_; i++) o[i0_ + i] = al * t_[i]; }                  \
    }                                                                               \
} while (0)
#define FG_DEFINE_CORE(T, SFX, NAME)                                                   \
static FG_CLONES void NAME(int op, T *o, const T *A, const T *B, const T *Z,           \
                           Py_ssize_t n, T al, int acc) {                            \
    FG_CONSTS(T)                                                                     \
    Py_ssize_t i;                                                                    \
    switch (op) { FG_EW_TABLE(SFX, FG_CORE_LOOP, FG_CORE_V) }                        \
}

#define FG_DEFINE_EW(T, SFX, NAME, SCALAR, CORE)                                        \
FG_DEFINE_SCALAR(T, SFX, SCALAR)                                                     \
FG_DEFINE_CORE(T, SFX, CORE)                                                         \
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
    int full = In->omode == FG_MODE_FULL && In->amode == FG_MODE_FULL                \
               && bm == FG_MODE_FULL && zm == FG_MODE_FULL;                          \
    Py_ssize_t ars, acs, brs, bcs, zrs, zcs, ors, ocs;                              \
    if (n == 1) { /* one element: every mode reads and writes element 0 */           \
        const T v = al * SCALAR(In->op, A[0], B[0], Z[0]);                           \
        if (acc) o[0] += v; else o[0] = v;                                           \
        return;                                                                     \
    }                                                                               \
    if (full) { CORE(In->op, o, A, B, Z, n, al, acc); return; }                      \
    if ((In->omode == FG_MODE_FULL || In->omode == FG_MODE_ROW)                      \
            && (In->amode == FG_MODE_FULL || In->amode == FG_MODE_ROW)                \
            && (bm == FG_MODE_FULL || bm == FG_MODE_ROW)                              \
            && (zm == FG_MODE_FULL || zm == FG_MODE_ROW)) {                           \
        /* rows (x) broadcast down, or the output summed over rows: row by row */    \
        if (In->omode == FG_MODE_ROW && !acc) for (i = 0; i < Cn; i++) o[i] = 0;     \
        for (r = 0; r < R; r++)                                                      \
            CORE(In->op, In->omode == FG_MODE_FULL ? o + r * Cn : o,                 \
                 In->amode == FG_MODE_FULL ? A + r * Cn : A,                         \
                 bm == FG_MODE_FULL ? B + r * Cn : B,                                \
                 zm == FG_MODE_FULL ? Z + r * Cn : Z, Cn, al,                        \
                 acc || In->omode == FG_MODE_ROW);                                   \
        return;                                                                     \
    }                                                                               \
    fg_strides(In->amode, Cn, &ars, &acs);                                           \
    fg_strides(bm, Cn, &brs, &bcs);                                                 \
    fg_strides(zm, Cn, &zrs, &zcs);                                                 \
    fg_strides(In->omode, Cn, &ors, &ocs);                                           \
    switch (In->op) { FG_EW_TABLE(SFX, FG_STRIDED, FG_STRIDED_V) }                   \
}
FG_DEFINE_EW(double, , fg_ew_d, fg_scalar_d, fg_core_d)
FG_DEFINE_EW(float, f, fg_ew_f, fg_scalar_f, fg_core_f)

/* Does the table have opcode op (the executor refuses a program that needs one it lacks)? */
#define FG_HAS(E) return 1
static int fg_ew_has(int op) {
    switch (op) { FG_EW_TABLE(, FG_HAS, FG_HAS) default: return 0; }
    return 0;
}

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

/* FG_OP_GEMM with flags bit 2 (.grad kept, then SGD): out = al op(A) op(B), then
   W -= f[1] out (W: buffer c), a panel of out's rows at a time while the panel is in
   cache, so the gradient is not read back from memory by a separate update. Each
   element of out is complete before it is used: the numbers are the separate SGD's. */
#define FG_DEFINE_GEMM_UPDATE(T, GEMM, SUFFIX)                                        \
static FG_CLONES void fg_axpy_neg_##SUFFIX(T *restrict w, const T *restrict g, T lr,   \
                                            Py_ssize_t n) {                            \
    for (Py_ssize_t i = 0; i < n; i++) w[i] -= lr * g[i];                             \
}                                                                                    \
static void fg_gemm_update_##SUFFIX(const fg_ins *In, void **P) {                    \
    T *o = (T *)P[In->out], *W = (T *)P[In->c];                                      \
    T *A = (T *)P[In->a], *B = (T *)P[In->b];                                         \
    const T lr = (T)In->f[1], al = (T)In->f[0];                                       \
    const Py_ssize_t M = In->R, N = In->C, K = In->K;                                 \
    const int tA = In->flags & 1, tB = (In->flags >> 1) & 1;                          \
    Py_ssize_t pr = (Py_ssize_t)(32768 / sizeof(T)) / (N > 0 ? N : 1), r0;             \
    if (pr < 1) pr = 1;                                                              \
    if (M <= 1 || N <= 1 || K == 0 || (K > 1 && !GEMM)) {                             \
        fg_ins G = *In; G.flags &= 3;                                                \
        fg_gemm_##SUFFIX(&G, P);                                                     \
        fg_axpy_neg_##SUFFIX(W, o, lr, M * N);                                       \
        return;                                                                      \
    }                                                                                \
    for (r0 = 0; r0 < M; r0 += pr) {                                                 \
        const Py_ssize_t m = M - r0 < pr ? M - r0 : pr;                              \
        T *op = o + r0 * N, *wp = W + r0 * N;                                        \
        if (K == 1) fg_outer_##SUFFIX(op, A + r0, B, m, N, al, 0);                    \
        else {                                                                       \
            int n_ = (int)N, m_ = (int)m, k_ = (int)K;                               \
            int lda = tA ? (int)M : (int)K, ldb = tB ? (int)K : (int)N;              \
            T beta = 0;                                                              \
            GEMM(tB ? "T" : "N", tA ? "T" : "N", &n_, &m_, &k_, (T *)&al, B, &ldb,   \
                 A + (tA ? r0 : r0 * K), &lda, &beta, op, &n_);                      \
        }                                                                            \
        fg_axpy_neg_##SUFFIX(wp, op, lr, m * N);                                     \
    }                                                                                \
}

FG_DEFINE_GEMM_UPDATE(double, fg_dgemm, d)
FG_DEFINE_GEMM_UPDATE(float, fg_sgemm, f)

/* t (D x M) = w^T for w (M x D), in 8 x 8 blocks */
#define FG_DEFINE_TRANSPOSE_BLK(T, SUFFIX)                                            \
static void fg_transpose_blk_##SUFFIX(T *restrict t, const T *restrict w,             \
                                      Py_ssize_t M, Py_ssize_t D) {                  \
    for (Py_ssize_t i0 = 0; i0 < M; i0 += 8)                                         \
        for (Py_ssize_t j0 = 0; j0 < D; j0 += 8) {                                   \
            Py_ssize_t i1 = i0 + 8 < M ? i0 + 8 : M, j1 = j0 + 8 < D ? j0 + 8 : D;   \
            for (Py_ssize_t i = i0; i < i1; i++)                                     \
                for (Py_ssize_t j = j0; j < j1; j++) t[j * M + i] = w[i * D + j];     \
        }                                                                            \
}
FG_DEFINE_TRANSPOSE_BLK(double, d)
FG_DEFINE_TRANSPOSE_BLK(float, f)
/* z = x W^T + b (N x M), then h = sigmoid(z) in place if flags bit 1; a W of at most
   FG_AFFINE_T elements is transposed first. */
#define FG_DEFINE_AFFINE(T, SUFFIX)                                                  \
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
    if (In->flags & 2) fg_sigmoid_##SUFFIX(z, NULL, z, N * M);                       \
}

FG_DEFINE_AFFINE(double, d)
FG_DEFINE_AFFINE(float, f)

/* sum_c e^(z[c] - m) over a row of C logits (m >= each): the kernels' fg_expsum, a tile
   of FG_BLK at a time through `tile` (one call for C <= FG_BLK, as eager softmax). */
#define FG_DEFINE_EXPSUM(T, SUFFIX)                                                   \
static T fg_rowexpsum_##SUFFIX(const T *z, T m, Py_ssize_t C, T *tile) {               \
    T s = 0;                                                                         \
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FG_BLK)                                    \
        s += fg_expsum_##SUFFIX(z + c0, m, tile, C - c0 < FG_BLK ? C - c0 : FG_BLK);     \
    return s;                                                                        \
}                                                                                    \
static T fg_rowmax_##SUFFIX(const T *z, Py_ssize_t C) {                                \
    T m = z[0];                                                                      \
    for (Py_ssize_t c = 1; c < C; c++) if (z[c] > m) m = z[c];                         \
    return m;                                                                        \
}
FG_DEFINE_EXPSUM(double, d)
FG_DEFINE_EXPSUM(float, f)

/* Softmax cross-entropy with integer labels t (R rows of C logits):
   FG_OP_SCE: out = -(al / R) sum_r log softmax(z_r)[t_r];
   FG_OP_SCE_BWD: out (+)= al g (softmax(z) - onehot(t)) / R, g = P[c][0].
   Returns 1 for a label outside [0, C). */
#define FG_DEFINE_SCE(T, SFX, SUFFIX)                                                 \
static FG_CLONES int fg_sce_##SUFFIX(const fg_ins *In, void **P) {                         \
    const T *z = (const T *)P[In->a]; const long long *t = (const long long *)P[In->b]; \
    T *o = (T *)P[In->out];                                                          \
    T tile[FG_BLK];                                                                  \
    Py_ssize_t R = In->R, C = In->C, r, c, c0;                                        \
    for (r = 0; r < R; r++) if (t[r] < 0 || t[r] >= C) return 1;                     \
    if (In->op == FG_OP_SCE) {                                                      \
        double loss = 0;                                                            \
        for (r = 0; r < R; r++) {                                                   \
            const T *zr = z + r * C, mx = fg_rowmax_##SUFFIX(zr, C);                \
            const T s = fg_rowexpsum_##SUFFIX(zr, mx, C, tile);                     \
            loss += (double)(log##SFX(s) - (zr[t[r]] - mx));                        \
        }                                                                           \
        o[0] = (T)(In->f[0] * loss / (double)R);                                      \
        return 0;                                                                   \
    }                                                                               \
    {                                                                               \
        const T g = (T)In->f[0] * ((const T *)P[In->c])[0] / (T)R;                    \
        for (r = 0; r < R; r++) {                                                   \
            const T *zr = z + r * C, mx = fg_rowmax_##SUFFIX(zr, C);                \
            T *orow = o + r * C;                                                    \
            const T inv = g / fg_rowexpsum_##SUFFIX(zr, mx, C, tile);               \
            for (c0 = 0; c0 < C; c0 += FG_BLK) {                                    \
                const Py_ssize_t m = C - c0 < FG_BLK ? C - c0 : FG_BLK;              \
                fg_expsum_##SUFFIX(zr + c0, mx, tile, m);                           \
                for (c = 0; c < m; c++) {                                           \
                    const T d = tile[c] * inv - (c0 + c == t[r] ? g : (T)0);        \
                    if (In->acc) orow[c0 + c] += d; else orow[c0 + c] = d;           \
                }                                                                   \
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
   broadcast). A sub whose output mode is not FULL sums its values into element 0. */
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
                else if (md[j] == FG_MODE_FULL) ops[j] = (const T *)P[x] + e0;        \
                else if (m == 1) ops[j] = (const T *)P[x];                            \
                else { T v = ((const T *)P[x])[0]; T *d = bc + j * FG_BLK;           \
                       for (Py_ssize_t i = 0; i < m; i++) { d[i] = v; }              \
                       ops[j] = d; }                                                   \
            }                                                                       \
            if (S->omode != FG_MODE_FULL) { /* a sum into element 0 */               \
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
/* log-softmax / softmax of each row (FG_OP_LOGSOFTMAX, FG_OP_SOFTMAX) and their   \
   backward (FG_OP_LOGSOFTMAX_BWD, FG_OP_SOFTMAX_BWD: a the signal, y the output). */   \
static FG_CLONES void fg_rows_##SUFFIX(const fg_ins *In, void **P) {                     \
    T *o = (T *)P[In->out]; const T *a = (const T *)P[In->a];                         \
    const T *y = In->b >= 0 ? (const T *)P[In->b] : NULL;                             \
    T tile[FG_BLK];                                                                  \
    Py_ssize_t R = In->R, C = In->C, r, c, c0, m;                                     \
    for (r = 0; r < R; r++) {                                                       \
        const T *ar = a + r * C; T *orow = o + r * C;                               \
        if (In->op == FG_OP_LOGSOFTMAX || In->op == FG_OP_SOFTMAX) {                \
            const T mx = fg_rowmax_##SUFFIX(ar, C);                                  \
            const T s = fg_rowexpsum_##SUFFIX(ar, mx, C, tile);                      \
            if (In->op == FG_OP_LOGSOFTMAX) { const T ls = log##SFX(s);              \
                for (c = 0; c < C; c++) orow[c] = (ar[c] - mx) - ls; }              \
            else for (c0 = 0; c0 < C; c0 += FG_BLK) {                               \
                m = C - c0 < FG_BLK ? C - c0 : FG_BLK;                               \
                fg_expsum_##SUFFIX(ar + c0, mx, tile, m);                           \
                for (c = 0; c < m; c++) orow[c0 + c] = tile[c] / s;                 \
            }                                                                       \
        } else {                                                                    \
            const T *yr = y + r * C; T s = 0;                                       \
            if (In->op == FG_OP_LOGSOFTMAX_BWD) {                                   \
                for (c = 0; c < C; c++) s += ar[c];                                 \
                for (c0 = 0; c0 < C; c0 += FG_BLK) {                                \
                    m = C - c0 < FG_BLK ? C - c0 : FG_BLK;                           \
                    fg_exp_##SUFFIX(yr + c0, tile, m);                              \
                    for (c = 0; c < m; c++) { const T d = ar[c0 + c] - tile[c] * s; \
                        if (In->acc) orow[c0 + c] += d; else orow[c0 + c] = d; }     \
                }                                                                   \
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

/* Moving elements by a constant index array (int64, FG_OP_GATHER/FG_OP_SCATTER), reducing
   by one (FG_OP_SEGMENT), prefix sums along an axis (FG_OP_CUMSUM) and a batch of
   products (FG_OP_BGEMM). */
#define FG_DEFINE_INDEXED(T, SUFFIX)                                                  \
/* o[i] (+)= al a[idx[i]] for i < R C; idx[i] < 0 reads 0 */                          \
static void fg_gather_##SUFFIX(const fg_ins *In, void **P) {                         \
    T *o = (T *)P[In->out]; const T *a = (const T *)P[In->a];                         \
    const long long *idx = (const long long *)P[In->b];                              \
    const T al = (T)In->f[0];                                                        \
    Py_ssize_t n = In->R * In->C, i;                                                 \
    if (In->acc) { for (i = 0; i < n; i++) if (idx[i] >= 0) o[i] += al * a[idx[i]]; } \
    else for (i = 0; i < n; i++) o[i] = idx[i] >= 0 ? al * a[idx[i]] : (T)0;         \
}                                                                                   \
/* o[idx[i]] += al a[i] for i < R C (o, of K elements, zeroed first unless acc), in   \
   order, so repeated indices add up as np.add.at; flags bit 0: o[idx[i]] = al a[i]    \
   instead, nothing zeroed (a part of a concatenation). idx[i] < 0: skipped. */        \
static void fg_scatter_##SUFFIX(const fg_ins *In, void **P) {                        \
    T *o = (T *)P[In->out]; const T *a = (const T *)P[In->a];                         \
    const long long *idx = (const long long *)P[In->b];                              \
    const T al = (T)In->f[0];                                                        \
    Py_ssize_t n = In->R * In->C, i;                                                 \
    if (In->flags & 1) { for (i = 0; i < n; i++) if (idx[i] >= 0) o[idx[i]] = al * a[i]; return; } \
    if (!In->acc) memset(o, 0, (size_t)In->K * sizeof(T));                             \
    for (i = 0; i < n; i++) if (idx[i] >= 0) o[idx[i]] += al * a[i];                 \
}                                                                                   \
/* o[idx[i]] = op(o[idx[i]], a[i]) for i < R C, in order, o (K elements) starting at   \
   op's identity; flags: 0 max, 1 min (a NaN wins, as np.max), 2 product */           \
static void fg_segment_##SUFFIX(const fg_ins *In, void **P) {                        \
    T *o = (T *)P[In->out]; const T *a = (const T *)P[In->a];                         \
    const long long *idx = (const long long *)P[In->b];                              \
    Py_ssize_t n = In->R * In->C, m = In->K, i;                                      \
    const T start = In->flags == 2 ? (T)1 : (In->flags == 0 ? -(T)INFINITY : (T)INFINITY); \
    for (i = 0; i < m; i++) o[i] = start;                                            \
    for (i = 0; i < n; i++) {                                                       \
        const long long j = idx[i]; const T v = a[i], w = o[j];                      \
        if (In->flags == 2) o[j] = w * v;                                            \
        else if (In->flags == 0) o[j] = (v > w || v != v) ? v : w;                    \
        else o[j] = (v < w || v != v) ? v : w;                                       \
    }                                                                               \
}                                                                                   \
/* o[a, n, b] (+)= al sum_{k <= n} x[a, k, b] over (R, K, C); flags bit 0: k >= n */  \
static void fg_cumsum_##SUFFIX(const fg_ins *In, void **P) {                         \
    T *o = (T *)P[In->out]; const T *x = (const T *)P[In->a];                         \
    const T al = (T)In->f[0];                                                        \
    Py_ssize_t A = In->R, N = In->K, B = In->C, p, q, k;                              \
    for (p = 0; p < A; p++) for (q = 0; q < B; q++) {                                 \
        T s = 0;                                                                     \
        for (k = 0; k < N; k++) {                                                    \
            const Py_ssize_t e = (p * N + ((In->flags & 1) ? N - 1 - k : k)) * B + q; \
            s += x[e];                                                               \
            if (In->acc) o[e] += al * s; else o[e] = al * s;                           \
        }                                                                           \
    }                                                                               \
}                                                                                   \
/* f[1] products out[t so] (+)= al op(A[t sa]) op(B[t sb]), t < f[1] (element strides \
   f[2], f[3], f[4]); with so = 0 they add up into one output */                     \
static void fg_bgemm_##SUFFIX(const fg_ins *In, void **P) {                          \
    const Py_ssize_t nb = (Py_ssize_t)In->f[1], sa = (Py_ssize_t)In->f[2],            \
                     sb = (Py_ssize_t)In->f[3], so = (Py_ssize_t)In->f[4];            \
    fg_ins G = *In; void *Q[3]; Py_ssize_t t;                                        \
    G.a = 0; G.b = 1; G.out = 2;                                                     \
    for (t = 0; t < nb; t++) {                                                       \
        Q[0] = (T *)P[In->a] + t * sa; Q[1] = (T *)P[In->b] + t * sb;                  \
        Q[2] = (T *)P[In->out] + t * so;                                             \
        G.acc = In->acc || (so == 0 && t > 0);                                       \
        fg_gemm_##SUFFIX(&G, Q);                                                     \
    }                                                                               \
}

FG_DEFINE_INDEXED(double, d)
FG_DEFINE_INDEXED(float, f)

/* A conversion between float64, float32 and int64 (flags: source code | target code << 2,
   0 float64, 1 float32, 2 int64); a float outside int64's range (or NaN) becomes
   INT64_MIN, as NumPy's cast does on x86. */
#define FG_TO_I64(v) ((v) != (v) || (v) >= 9.2233720368547758e18 || (v) < -9.2233720368547758e18 \
                      ? (long long)(-9223372036854775807LL - 1) : (long long)(v))
#define FG_CAST_LOOP(S, D, CONV) { const S *a = (const S *)P[In->a]; D *o = (D *)P[In->out]; \
                                   for (i = 0; i < n; i++) o[i] = CONV(a[i]); } break;
#define FG_PLAIN(v) (v)
static void fg_cast(const fg_ins *In, void **P) {
    Py_ssize_t n = In->R * In->C, i;
    switch (In->flags) {
    case 0 | 1 << 2: FG_CAST_LOOP(double, float, (float))
    case 0 | 2 << 2: FG_CAST_LOOP(double, long long, FG_TO_I64)
    case 1 | 0 << 2: FG_CAST_LOOP(float, double, (double))
    case 1 | 2 << 2: FG_CAST_LOOP(float, long long, FG_TO_I64)
    case 2 | 0 << 2: FG_CAST_LOOP(long long, double, (double))
    case 2 | 1 << 2: FG_CAST_LOOP(long long, float, (float))
    case 0: FG_CAST_LOOP(double, double, FG_PLAIN)
    case 1 | 1 << 2: FG_CAST_LOOP(float, float, FG_PLAIN)
    case 2 | 2 << 2: FG_CAST_LOOP(long long, long long, FG_PLAIN)
    }
}

#pragma GCC pop_options

/* Runs the program; returns 0, or 1 + the index of an instruction that failed. */
static Py_ssize_t fg_run(const fg_ins *ins, Py_ssize_t n, void **P, const fg_ins *subs,
                         void *scratch) {
    Py_ssize_t k;
    for (k = 0; k < n; k++) {
        const fg_ins *In = ins + k;
        int d = In->dt == 0;
        if (In->op < FG_OP_EW_END) { if (d) fg_ew_d(In, P); else fg_ew_f(In, P); continue; }
        switch (In->op) {
        case FG_OP_CAST: fg_cast(In, P); break;
        case FG_OP_AFFINE:
            if (d) fg_affine_d(In, P, scratch); else fg_affine_f(In, P, scratch);
            break;
        case FG_OP_GEMM:
            if (In->flags & 4) { if (d) fg_gemm_update_d(In, P); else fg_gemm_update_f(In, P); }
            else if (d) fg_gemm_d(In, P); else fg_gemm_f(In, P);
            break;
        case FG_OP_TRANSPOSE: if (d) fg_transpose_d(In, P); else fg_transpose_f(In, P); break;
        case FG_OP_SGD: if (d) fg_sgd_d(In, P); else fg_sgd_f(In, P); break;
        case FG_OP_ADAM: if (d) fg_adam_d(In, P); else fg_adam_f(In, P); break;
        case FG_OP_LOGSOFTMAX: case FG_OP_LOGSOFTMAX_BWD: case FG_OP_SOFTMAX: case FG_OP_SOFTMAX_BWD:
            if (d) fg_rows_d(In, P); else fg_rows_f(In, P);
            break;
        case FG_OP_FUSED:
            if (d) fg_fused_d(In, subs, P, scratch); else fg_fused_f(In, subs, P, scratch);
            break;
        case FG_OP_SCE: case FG_OP_SCE_BWD:
            if (d ? fg_sce_d(In, P) : fg_sce_f(In, P)) return k + 1;
            break;
        case FG_OP_GATHER: if (d) fg_gather_d(In, P); else fg_gather_f(In, P); break;
        case FG_OP_SCATTER: if (d) fg_scatter_d(In, P); else fg_scatter_f(In, P); break;
        case FG_OP_SEGMENT: if (d) fg_segment_d(In, P); else fg_segment_f(In, P); break;
        case FG_OP_CUMSUM: if (d) fg_cumsum_d(In, P); else fg_cumsum_f(In, P); break;
        case FG_OP_BGEMM: if (d) fg_bgemm_d(In, P); else fg_bgemm_f(In, P); break;
        }
    }
    return 0;
}

#endif
