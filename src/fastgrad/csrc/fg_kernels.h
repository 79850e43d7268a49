/* The compiled kernels' loops (backends/_cykernels.pyx): batch-1 products, transposes in
   registers, the elementwise and reduction loops. Each is compiled three times, for SSE2,
   AVX2+FMA and AVX-512 (function target attributes), and fg_select_isa() points
   fg_rowdots_d/f, ... (and fg_vexp.h's e^x and sigma) at the widest variant the running
   CPU supports: a portable build, no -march=native. The dot products need several vector
   sums, a reassociation the compiler does not make on its own without -ffast-math; the
   elementwise loops vectorise by themselves and only gain the wider ISA. Other compilers
   get the plain C loops. docs/kernels.md has the measurements. */
#ifndef FG_KERNELS_H
#define FG_KERNELS_H

#include "fg_vexp.h"

#if FG_VECTORS
/* z[i] = b[i] + sum_j W[i, j] x[j], i < M (row-major W). Four rows a pass (each load of
   x serves four rows of W), two vector sums per row, and each row's lanes added as a
   tree (a chain of L dependent scalar adds per row cost as much as the row itself).
   The loads start at the row's first element, wherever that falls in a cache line:
   aligning them (a scalar head) ran 784 -> 100 1.4-1.6x faster, but made the order of
   the sum, so the result's last bits, depend on W's address. */
#define FG_ROWDOTS(T, BYTES, ISA, TARGET)                                               \
TARGET static inline T fg_hsum_##T##_##ISA(fg_##T##_##ISA s) {                           \
    T lanes[BYTES / sizeof(T)];                                                          \
    __builtin_memcpy(lanes, &s, BYTES);                                                  \
    for (Py_ssize_t w = BYTES / sizeof(T) / 2; w > 0; w /= 2)                            \
        for (Py_ssize_t l = 0; l < w; l++) lanes[l] += lanes[l + w];                     \
    return lanes[0];                                                                     \
}                                                                                        \
TARGET static void fg_rowdots_##T##_##ISA(const T *W, const T *x, const T *b, T *z,      \
                                          Py_ssize_t M, Py_ssize_t D) {                  \
    typedef fg_##T##_##ISA V;                                                            \
    const Py_ssize_t L = BYTES / sizeof(T);                                              \
    Py_ssize_t i = 0, j;                                                                 \
    V a, c;                                                                              \
    for (; i + 4 <= M; i += 4) {                                                         \
        const T *w0 = W + i * D, *w1 = w0 + D, *w2 = w1 + D, *w3 = w2 + D;               \
        V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0};  \
        for (j = 0; j + 2 * L <= D; j += 2 * L) {                                        \
            __builtin_memcpy(&c, x + j, BYTES);                                          \
            __builtin_memcpy(&a, w0 + j, BYTES); s0 += a * c;                            \
            __builtin_memcpy(&a, w1 + j, BYTES); s1 += a * c;                            \
            __builtin_memcpy(&a, w2 + j, BYTES); s2 += a * c;                            \
            __builtin_memcpy(&a, w3 + j, BYTES); s3 += a * c;                            \
            __builtin_memcpy(&c, x + j + L, BYTES);                                      \
            __builtin_memcpy(&a, w0 + j + L, BYTES); t0 += a * c;                        \
            __builtin_memcpy(&a, w1 + j + L, BYTES); t1 += a * c;                        \
            __builtin_memcpy(&a, w2 + j + L, BYTES); t2 += a * c;                        \
            __builtin_memcpy(&a, w3 + j + L, BYTES); t3 += a * c;                        \
        }                                                                                \
        for (; j + L <= D; j += L) {                                                     \
            __builtin_memcpy(&c, x + j, BYTES);                                          \
            __builtin_memcpy(&a, w0 + j, BYTES); s0 += a * c;                            \
            __builtin_memcpy(&a, w1 + j, BYTES); s1 += a * c;                            \
            __builtin_memcpy(&a, w2 + j, BYTES); s2 += a * c;                            \
            __builtin_memcpy(&a, w3 + j, BYTES); s3 += a * c;                            \
        }                                                                                \
        T r0 = fg_hsum_##T##_##ISA(s0 + t0), r1 = fg_hsum_##T##_##ISA(s1 + t1);          \
        T r2 = fg_hsum_##T##_##ISA(s2 + t2), r3 = fg_hsum_##T##_##ISA(s3 + t3);          \
        for (; j < D; j++) {                                                             \
            r0 += w0[j] * x[j]; r1 += w1[j] * x[j];                                      \
            r2 += w2[j] * x[j]; r3 += w3[j] * x[j];                                      \
        }                                                                                \
        z[i] = r0 + b[i]; z[i + 1] = r1 + b[i + 1];                                      \
        z[i + 2] = r2 + b[i + 2]; z[i + 3] = r3 + b[i + 3];                              \
    }                                                                                    \
    for (; i < M; i++) {                                                                 \
        const T *w = W + i * D;                                                          \
        V s0 = {0}, t0 = {0};                                                            \
        for (j = 0; j + 2 * L <= D; j += 2 * L) {                                        \
            __builtin_memcpy(&c, x + j, BYTES);                                          \
            __builtin_memcpy(&a, w + j, BYTES); s0 += a * c;                             \
            __builtin_memcpy(&c, x + j + L, BYTES);                                      \
            __builtin_memcpy(&a, w + j + L, BYTES); t0 += a * c;                         \
        }                                                                                \
        for (; j + L <= D; j += L) {                                                     \
            __builtin_memcpy(&c, x + j, BYTES);                                          \
            __builtin_memcpy(&a, w + j, BYTES); s0 += a * c;                             \
        }                                                                                \
        T r = fg_hsum_##T##_##ISA(s0 + t0);                                              \
        for (; j < D; j++) r += w[j] * x[j];                                             \
        z[i] = r + b[i];                                                                 \
    }                                                                                    \
}
#else
#define FG_ROWDOTS(T, BYTES, ISA, TARGET)                                               \
static void fg_rowdots_##T##_##ISA(const T *W, const T *x, const T *b, T *z,             \
                                   Py_ssize_t M, Py_ssize_t D) {                         \
    for (Py_ssize_t i = 0; i < M; i++) {                                                 \
        T t = 0;                                                                         \
        for (Py_ssize_t j = 0; j < D; j++) t += W[i * D + j] * x[j];                     \
        z[i] = t + b[i];                                                                 \
    }                                                                                    \
}
#endif

/* y = sum_k c[k * cs] X[k, :] over K rows of X (K, n): four rows per pass over y. */
#define FG_LINCOMB(T, ISA, TARGET)                                                      \
TARGET static void fg_lincomb_##T##_##ISA(T *restrict y, const T *c, Py_ssize_t cs,     \
                                          const T *restrict X, Py_ssize_t K,            \
                                          Py_ssize_t n) {                               \
    Py_ssize_t k = 0, j;                                                                 \
    if (K == 0) { for (j = 0; j < n; j++) y[j] = 0; return; }                            \
    for (; k + 4 <= K; k += 4) {                                                         \
        const T c0 = c[k * cs], c1 = c[(k + 1) * cs];                                    \
        const T c2 = c[(k + 2) * cs], c3 = c[(k + 3) * cs];                              \
        const T *x0 = X + k * n, *x1 = x0 + n, *x2 = x1 + n, *x3 = x2 + n;               \
        if (k == 0) {                                                                    \
            for (j = 0; j < n; j++)                                                      \
                y[j] = (c0 * x0[j] + c1 * x1[j]) + (c2 * x2[j] + c3 * x3[j]);            \
        } else {                                                                         \
            for (j = 0; j < n; j++)                                                      \
                y[j] += (c0 * x0[j] + c1 * x1[j]) + (c2 * x2[j] + c3 * x3[j]);           \
        }                                                                                \
    }                                                                                    \
    for (; k < K; k++) {                                                                 \
        const T c0 = c[k * cs], *x0 = X + k * n;                                         \
        if (k == 0) { for (j = 0; j < n; j++) y[j] = c0 * x0[j]; }                       \
        else { for (j = 0; j < n; j++) y[j] += c0 * x0[j]; }                             \
    }                                                                                    \
}


/* Transposes in registers: an L x L block (L lanes a vector) is L vectors, transposed by
   log2 L rounds of two-source shuffles with constant masks, round h swapping the
   off-diagonal h x h blocks of every 2h x 2h block: 64 shuffles for 16 x 16 floats.
   ~0.15 ns an element (AVX-512, in cache), 3-5x faster than element by element. */
#define FG_VT_PAIR(v, i, j, lo, hi) {                                                  \
    const __typeof__(v[0]) x_ = v[i], y_ = v[j];                                         \
    v[i] = __builtin_shuffle(x_, y_, lo);                                                \
    v[j] = __builtin_shuffle(x_, y_, hi);                                                \
}
#define FG_VT_2(VI, v) do {          \
    const VI lo1_ = {0, 2};          \
    const VI hi1_ = {1, 3};          \
    FG_VT_PAIR(v, 0, 1, lo1_, hi1_); \
} while (0)
#define FG_VT_4(VI, v) do {                                           \
    const VI lo2_ = {0, 1, 4, 5};                                     \
    const VI hi2_ = {2, 3, 6, 7};                                     \
    FG_VT_PAIR(v, 0, 2, lo2_, hi2_); FG_VT_PAIR(v, 1, 3, lo2_, hi2_); \
    const VI lo1_ = {0, 4, 2, 6};                                     \
    const VI hi1_ = {1, 5, 3, 7};                                     \
    FG_VT_PAIR(v, 0, 1, lo1_, hi1_); FG_VT_PAIR(v, 2, 3, lo1_, hi1_); \
} while (0)
#define FG_VT_8(VI, v) do {                                                                                                             \
    const VI lo4_ = {0, 1, 2, 3, 8, 9, 10, 11};                                                                                         \
    const VI hi4_ = {4, 5, 6, 7, 12, 13, 14, 15};                                                                                       \
    FG_VT_PAIR(v, 0, 4, lo4_, hi4_); FG_VT_PAIR(v, 1, 5, lo4_, hi4_); FG_VT_PAIR(v, 2, 6, lo4_, hi4_); FG_VT_PAIR(v, 3, 7, lo4_, hi4_); \
    const VI lo2_ = {0, 1, 8, 9, 4, 5, 12, 13};                                                                                         \
    const VI hi2_ = {2, 3, 10, 11, 6, 7, 14, 15};                                                                                       \
    FG_VT_PAIR(v, 0, 2, lo2_, hi2_); FG_VT_PAIR(v, 1, 3, lo2_, hi2_); FG_VT_PAIR(v, 4, 6, lo2_, hi2_); FG_VT_PAIR(v, 5, 7, lo2_, hi2_); \
    const VI lo1_ = {0, 8, 2, 10, 4, 12, 6, 14};                                                                                        \
    const VI hi1_ = {1, 9, 3, 11, 5, 13, 7, 15};                                                                                        \
    FG_VT_PAIR(v, 0, 1, lo1_, hi1_); FG_VT_PAIR(v, 2, 3, lo1_, hi1_); FG_VT_PAIR(v, 4, 5, lo1_, hi1_); FG_VT_PAIR(v, 6, 7, lo1_, hi1_); \
} while (0)
#define FG_VT_16(VI, v) do {                                                                                                                  \
    const VI lo8_ = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};                                                                 \
    const VI hi8_ = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};                                                           \
    FG_VT_PAIR(v, 0, 8, lo8_, hi8_); FG_VT_PAIR(v, 1, 9, lo8_, hi8_); FG_VT_PAIR(v, 2, 10, lo8_, hi8_); FG_VT_PAIR(v, 3, 11, lo8_, hi8_);     \
    FG_VT_PAIR(v, 4, 12, lo8_, hi8_); FG_VT_PAIR(v, 5, 13, lo8_, hi8_); FG_VT_PAIR(v, 6, 14, lo8_, hi8_); FG_VT_PAIR(v, 7, 15, lo8_, hi8_);   \
    const VI lo4_ = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};                                                               \
    const VI hi4_ = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};                                                             \
    FG_VT_PAIR(v, 0, 4, lo4_, hi4_); FG_VT_PAIR(v, 1, 5, lo4_, hi4_); FG_VT_PAIR(v, 2, 6, lo4_, hi4_); FG_VT_PAIR(v, 3, 7, lo4_, hi4_);       \
    FG_VT_PAIR(v, 8, 12, lo4_, hi4_); FG_VT_PAIR(v, 9, 13, lo4_, hi4_); FG_VT_PAIR(v, 10, 14, lo4_, hi4_); FG_VT_PAIR(v, 11, 15, lo4_, hi4_); \
    const VI lo2_ = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};                                                               \
    const VI hi2_ = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};                                                             \
    FG_VT_PAIR(v, 0, 2, lo2_, hi2_); FG_VT_PAIR(v, 1, 3, lo2_, hi2_); FG_VT_PAIR(v, 4, 6, lo2_, hi2_); FG_VT_PAIR(v, 5, 7, lo2_, hi2_);       \
    FG_VT_PAIR(v, 8, 10, lo2_, hi2_); FG_VT_PAIR(v, 9, 11, lo2_, hi2_); FG_VT_PAIR(v, 12, 14, lo2_, hi2_); FG_VT_PAIR(v, 13, 15, lo2_, hi2_); \
    const VI lo1_ = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};                                                              \
    const VI hi1_ = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};                                                              \
    FG_VT_PAIR(v, 0, 1, lo1_, hi1_); FG_VT_PAIR(v, 2, 3, lo1_, hi1_); FG_VT_PAIR(v, 4, 5, lo1_, hi1_); FG_VT_PAIR(v, 6, 7, lo1_, hi1_);       \
    FG_VT_PAIR(v, 8, 9, lo1_, hi1_); FG_VT_PAIR(v, 10, 11, lo1_, hi1_); FG_VT_PAIR(v, 12, 13, lo1_, hi1_); FG_VT_PAIR(v, 14, 15, lo1_, hi1_); \
} while (0)

#if FG_VECTORS && !defined(__clang__)     /* __builtin_shuffle is GCC's */
#define FG_TRANSPOSE(T, L, BYTES, ISA, TARGET)                                           \
/* One L x L block: t[j, i] = a[i, j] (+ b[i]), rows of a C apart, of t R; the block's  \
   vectors stay in registers (loops unrolled; sigma, if any, is the caller's next pass). */ \
TARGET static inline void fg_tblock_##T##_##ISA(T *restrict t, const T *restrict a,      \
                                                const T *restrict b, Py_ssize_t R,        \
                                                Py_ssize_t C) {                          \
    typedef fg_##T##_##ISA V;                                                            \
    typedef fg_i##T##_##ISA VI;                                                          \
    V v[L], c;                                                                           \
    _Pragma("GCC unroll 16")                                                             \
    for (int i = 0; i < L; i++) __builtin_memcpy(&v[i], a + i * C, BYTES);              \
    FG_VT_##L(VI, v);                                                                    \
    if (b != NULL) {                                                                     \
        __builtin_memcpy(&c, b, BYTES);                                                  \
        _Pragma("GCC unroll 16")                                                         \
        for (int i = 0; i < L; i++) v[i] += c;                                           \
    }                                                                                    \
    _Pragma("GCC unroll 16")                                                             \
    for (int i = 0; i < L; i++) __builtin_memcpy(t + i * R, &v[i], BYTES);              \
}                                                                                        \
/* t (C, R) = a (R, C) transposed, plus b[r] on t's column r if b, then sigma if sig;    \
   whole blocks in registers, the ragged edges element by element. No overlaps. */     \
TARGET static void fg_transpose_##T##_##ISA(T *restrict t, const T *restrict a,         \
                                            const T *restrict b, Py_ssize_t R,           \
                                            Py_ssize_t C, int sig) {                     \
    Py_ssize_t r0, c0, r, c;                                                             \
    for (r0 = 0; r0 < R; r0 += L) {                                                      \
        const Py_ssize_t rn = R - r0 < L ? R - r0 : L;                                   \
        for (c0 = 0; c0 < C; c0 += L) {                                                  \
            const Py_ssize_t cn = C - c0 < L ? C - c0 : L;                               \
            T *tb = t + c0 * R + r0;                                                     \
            const T *ab = a + r0 * C + c0;                                               \
            if (rn == L && cn == L) {                                                    \
                fg_tblock_##T##_##ISA(tb, ab, b != NULL ? b + r0 : NULL, R, C);           \
                if (sig) for (c = 0; c < L; c++) {       /* the block, still in L1 */    \
                    fg_##T##_##ISA v;                                                    \
                    __builtin_memcpy(&v, tb + c * R, BYTES);                             \
                    v = fg_vsigmoid_##T##_##ISA(v);                                      \
                    __builtin_memcpy(tb + c * R, &v, BYTES);                             \
                }                                                                        \
                continue;                                                                \
            }                                                                            \
            for (c = 0; c < cn; c++) {                                                   \
                T *tr = tb + c * R;                                                      \
                if (b != NULL) { for (r = 0; r < rn; r++) tr[r] = ab[r * C + c] + b[r0 + r]; } \
                else { for (r = 0; r < rn; r++) tr[r] = ab[r * C + c]; }                 \
                if (sig) fg_sigmoid_##T##_##ISA(tr, NULL, tr, rn);                       \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}
#else
#define FG_TRANSPOSE(T, L, BYTES, ISA, TARGET)                                           \
static void fg_transpose_##T##_##ISA(T *restrict t, const T *restrict a,                \
                                     const T *restrict b, Py_ssize_t R, Py_ssize_t C,    \
                                     int sig) {                                          \
    for (Py_ssize_t c = 0; c < C; c++) {                                                 \
        for (Py_ssize_t r = 0; r < R; r++)                                               \
            t[c * R + r] = b != NULL ? a[r * C + c] + b[r] : a[r * C + c];               \
        if (sig) fg_sigmoid_##T##_##ISA(t + c * R, NULL, t + c * R, R);                  \
    }                                                                                    \
}
#endif

/* Elementwise and reduction loops: plain C the compiler vectorises by itself; compiled
   per ISA they gain the wider vectors (SSE2 alone handles 4 floats per instruction). */
/* How many of n elements of size `size` come before p reaches a 64-byte boundary. Loops
   over long arrays do those first, so the vector part's accesses of the written array
   (and of arrays with the same offset: NumPy's data from malloc sits 16 bytes past a
   cache line) no longer straddle two cache lines: three in four AVX-512 accesses did,
   and the memory-bound loops ran ~1.4x slower for it. */
static inline Py_ssize_t fg_to_line(const void *p, size_t size, Py_ssize_t n) {
    const Py_ssize_t k = n < 64 ? 0 : (Py_ssize_t)((((size_t)0 - (size_t)p) & 63) / size);
    return k < n ? k : n;
}
#define FG_ELEMENTWISE(T, ISA, TARGET)                                                  \
/* v = mu v + dW + wd W;  W -= lr v   (v NULL: W -= lr (dW + wd W)); dW may be W. */   \
TARGET static inline void fg_sgdrun_##T##_##ISA(T *W, const T *dW, T *v, Py_ssize_t i,  \
                                                Py_ssize_t n, T lr, T mu, T wd) {       \
    if (v == NULL) {                                                                     \
        for (; i < n; i++) W[i] -= lr * (dW[i] + wd * W[i]);                             \
    } else {                                                                             \
        for (; i < n; i++) {                                                             \
            T g = mu * v[i] + dW[i] + wd * W[i];                                         \
            v[i] = g;                                                                    \
            W[i] -= lr * g;                                                              \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
TARGET static void fg_sgd_##T##_##ISA(T *W, const T *dW, T *v, Py_ssize_t n, T lr,      \
                                      T mu, T wd) {                                     \
    const Py_ssize_t start = fg_to_line(W, sizeof(T), n);                                \
    fg_sgdrun_##T##_##ISA(W, dW, v, 0, start, lr, mu, wd);                               \
    fg_sgdrun_##T##_##ISA(W, dW, v, start, n, lr, mu, wd);                               \
}                                                                                        \
/* The SGD step above on dW = c x (one row of a rank-1 weight gradient), in one pass:  \
   W and v do not overlap x. The vector loop starts on a cache line of W, as above. */  \
TARGET static inline void fg_rank1run_##T##_##ISA(T *restrict W, T c, const T *restrict x, \
                                                  T *restrict v, Py_ssize_t i,            \
                                                  Py_ssize_t n, T lr, T mu, T wd) {       \
    if (v == NULL) {                                                                     \
        for (; i < n; i++) W[i] -= lr * (c * x[i] + wd * W[i]);                          \
    } else {                                                                             \
        for (; i < n; i++) {                                                             \
            T g = mu * v[i] + c * x[i] + wd * W[i];                                      \
            v[i] = g;                                                                    \
            W[i] -= lr * g;                                                              \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
TARGET static void fg_sgdrank1_##T##_##ISA(T *restrict W, T c, const T *restrict x,    \
                                           T *restrict v, Py_ssize_t n, T lr, T mu,     \
                                           T wd) {                                      \
    const Py_ssize_t start = fg_to_line(W, sizeof(T), n);                                \
    fg_rank1run_##T##_##ISA(W, c, x, v, 0, start, lr, mu, wd);                           \
    fg_rank1run_##T##_##ISA(W, c, x, v, start, n, lr, mu, wd);                           \
}                                                                                        \
/* out[i] = sum_n dz[n, i] over the N rows of dz (N, M); out does not overlap dz. */    \
TARGET static void fg_colsum_##T##_##ISA(const T *restrict dz, T *restrict out,        \
                                         Py_ssize_t N, Py_ssize_t M) {                  \
    Py_ssize_t n, i;                                                                     \
    if (N == 0) { for (i = 0; i < M; i++) out[i] = 0; return; }                          \
    for (i = 0; i < M; i++) out[i] = dz[i];                                              \
    for (n = 1; n + 4 <= N; n += 4) {   /* four rows a pass over out: 0.7x the time */   \
        const T *r = dz + n * M;                                                         \
        for (i = 0; i < M; i++) out[i] += (r[i] + r[M + i]) + (r[2 * M + i] + r[3 * M + i]); \
    }                                                                                    \
    for (; n < N; n++) {                                                                 \
        const T *r = dz + n * M;                                                         \
        for (i = 0; i < M; i++) out[i] += r[i];                                          \
    }                                                                                    \
}                                                                                        \
/* dz = dh (h (1 - h)); dz may be h or dh. */                                           \
TARGET static void fg_sigback_##T##_##ISA(const T *h, const T *dh, T *dz,              \
                                          Py_ssize_t n) {                               \
    for (Py_ssize_t i = 0; i < n; i++) dz[i] = dh[i] * (h[i] * (1 - h[i]));              \
}                                                                                        \
/* z[n, i] += b[i] (sig: z[n, i] = sigma(z[n, i] + b[i])), z (N, M) not overlapping b;   \
   rows shorter than 64 elements get sigma in one pass over z (no padded tail a row). */ \
TARGET static void fg_addrows_##T##_##ISA(T *restrict z, const T *restrict b,          \
                                          Py_ssize_t N, Py_ssize_t M, int sig) {        \
    Py_ssize_t n, i;                                                                     \
    const int fused = sig && M >= 64;                                                    \
    for (n = 0; n < N; n++) {                                                            \
        T *r = z + n * M;                                                                \
        if (fused) fg_sigmoid_##T##_##ISA(r, b, r, M);                                   \
        else { for (i = 0; i < M; i++) r[i] += b[i]; }                                   \
    }                                                                                    \
    if (sig && !fused) fg_sigmoid_##T##_##ISA(z, NULL, z, N * M);                        \
}

#define FG_KERNELS(ISA, TARGET, BYTES, FLOATS, DOUBLES)                                 \
FG_ROWDOTS(double, BYTES, ISA, TARGET)                                                   \
FG_ROWDOTS(float, BYTES, ISA, TARGET)                                                    \
FG_LINCOMB(double, ISA, TARGET)                                                          \
FG_LINCOMB(float, ISA, TARGET)                                                           \
FG_TRANSPOSE(double, DOUBLES, BYTES, ISA, TARGET)                                        \
FG_TRANSPOSE(float, FLOATS, BYTES, ISA, TARGET)                                          \
FG_ELEMENTWISE(double, ISA, TARGET)                                                      \
FG_ELEMENTWISE(float, ISA, TARGET)

FG_KERNELS(base, , 16, 4, 2)
#if FG_VECTORS
FG_KERNELS(avx2, FG_TARGET("avx2,fma"), 32, 8, 4)
FG_KERNELS(avx512, FG_TARGET("avx512f,avx2,fma"), 64, 16, 8)
#endif

/* The variant in use of each loop, per dtype (d: double, f: float). */
#define FG_POINTERS(T, S)                                                               \
static void (*fg_rowdots_##S)(const T*, const T*, const T*, T*, Py_ssize_t,             \
                              Py_ssize_t) = fg_rowdots_##T##_base;                      \
static void (*fg_lincomb_##S)(T*, const T*, Py_ssize_t, const T*, Py_ssize_t,           \
                              Py_ssize_t) = fg_lincomb_##T##_base;                      \
static void (*fg_sgd_##S)(T*, const T*, T*, Py_ssize_t, T, T, T) = fg_sgd_##T##_base;   \
static void (*fg_sgdrank1_##S)(T*, T, const T*, T*, Py_ssize_t, T, T, T) =              \
    fg_sgdrank1_##T##_base;                                                             \
static void (*fg_colsum_##S)(const T*, T*, Py_ssize_t, Py_ssize_t) = fg_colsum_##T##_base; \
static void (*fg_sigback_##S)(const T*, const T*, T*, Py_ssize_t) = fg_sigback_##T##_base; \
static void (*fg_addrows_##S)(T*, const T*, Py_ssize_t, Py_ssize_t, int) =              \
    fg_addrows_##T##_base;                                                              \
static void (*fg_transpose_##S)(T*, const T*, const T*, Py_ssize_t, Py_ssize_t, int) =  \
    fg_transpose_##T##_base;
FG_POINTERS(double, d)
FG_POINTERS(float, f)

#define FG_USE(T, S, ISA)                                                               \
    fg_rowdots_##S = fg_rowdots_##T##_##ISA; fg_lincomb_##S = fg_lincomb_##T##_##ISA;   \
    fg_sgd_##S = fg_sgd_##T##_##ISA; fg_colsum_##S = fg_colsum_##T##_##ISA;             \
    fg_sigback_##S = fg_sigback_##T##_##ISA; fg_addrows_##S = fg_addrows_##T##_##ISA;  \
    fg_transpose_##S = fg_transpose_##T##_##ISA; fg_sgdrank1_##S = fg_sgdrank1_##T##_##ISA;

/* Use the widest ISA this CPU runs, at most `limit` (0 base, 1 avx2, 2 avx512), for
   these loops and for e^x and sigma; returns its name. */
static const char *fg_select_isa(int limit) {
    const int level = fg_isa_level(limit);
    fg_vexp_select(level);
#if FG_VECTORS
    if (level == 2) { FG_USE(double, d, avx512) FG_USE(float, f, avx512) }
    if (level == 1) { FG_USE(double, d, avx2) FG_USE(float, f, avx2) }
#endif
    if (level == 0) { FG_USE(double, d, base) FG_USE(float, f, base) }
    return fg_isa_name(level);
}

#endif
