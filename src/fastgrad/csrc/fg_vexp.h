/* e^x and sigma on whole vectors: the one implementation of both in fastgrad's C, used
   by the kernels (backends/_cykernels.pyx: sigmoid_forward, the fused affine + sigma
   passes, softmax) and by fastgrad.compile's executor (_replay.pyx: the EXP and SIGMOID
   opcodes, softmax rows). Compiled three times, for SSE2, AVX2+FMA and AVX-512 (function
   target attributes, no -march=native); fg_vexp_select() points fg_sigmoid_d/f,
   fg_expsum_d/f, fg_exp_d/f (arrays) and fg_exp1_d/f, fg_sigmoid1_d/f (one element) at
   the widest variant the running CPU supports. Other
   compilers get plain C loops through libm. docs/kernels.md has the measurements. */
#ifndef FG_VEXP_H
#define FG_VEXP_H

#include <Python.h>
#include <math.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define FG_VECTORS 1
#include <immintrin.h>
#define FG_TARGET(t) __attribute__((target(t)))
/* Keep element loops as loops: gcc turns a copy loop into a call to memcpy, ~20 ns,
   as long as a whole batch-1 sigma of 10 elements. */
#ifdef __clang__
#define FG_NO_LIBCALLS
#else
#define FG_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
#else
#define FG_VECTORS 0
#endif

/* The algorithm: x = k ln2 + r (Cody-Waite: ln2 in a hi part exact times k and a lo
   part), |r| <= ln2/2, e^r = 1 + r + r^2 q(r) with q minimax for the relative error
   (3e-18 double, 3e-9 float: below half an ulp), then 2^k from the exponent bits, applied
   as 2^(k + C) 2^-C for x <= 0 so results down in the subnormals round once (and as
   2^(k - C) 2^C for x > 0, so results overflow to inf in that one rounding). sigma and
   softmax need e^x only for x <= 0 and call e^(-|a|) (fg_vexpneg); the EXP opcode takes
   any x (fg_vexp), on the same reduction and polynomial. No ordered comparison ever sees a NaN
   (integer compares on the bits, or a NaN zeroed after the quiet a != a), so no FP
   exception flag is raised, on any ISA.
   Branch-free (selects are masks); the tail of an array goes through a zero-padded
   vector. GCC does not vectorise libm's exp without -ffast-math, which drops NaN/inf. */
#define FG_ABS_float 0x7fffffff
#define FG_LIM_float 104.0f                         /* e^-104 rounds to 0 */
#define FG_LIMBITS_float 0x42d00000
#define FG_INFBITS_float 0x7f800000
#define FG_SHIFT_float 12582912.0f                  /* 1.5 2^23: adding it rounds to an integer */
#define FG_LOG2E_float 1.44269504088896341f
#define FG_LN2HI_float 0.693359375f                 /* 9 bits: k ln2hi exact for |k| < 2^15 */
#define FG_LN2LO_float -2.12194440054690583e-4f
#define FG_BIAS_float (127 + 64)
#define FG_MANT_float 23
#define FG_UNSCALE_float 0x1p-64f
#define FG_BIASUP_float (127 - 64)                      /* x > 0: 2^(k - 64) 2^64 */
#define FG_RESCALE_float 0x1p64f
/* 1 + r + r^2 q(r), q by Estrin's scheme: a dependency chain of 4-5 steps instead of
   Horner's 6 (float) or 10 (double), so a vector's result comes sooner and more vectors
   are in flight. Against Horner: SSE2 1.4-2.5x faster (no FMA), AVX-512 double 5-12 %,
   AVX2 within +-5 %, float on AVX-512 equal. */
#define FG_ESTRIN_float(r, r2) (1.0f + ((r) + (r2) * ((0.499999934517084335897f              \
    + 0.166665206898330188061f * (r)) + (r2) * ((0.0416683873612611455482f                  \
    + 0.00836870982417119432296f * (r)) + (r2) * 0.00138146132607797708093f))))
#define FG_ABS_double 0x7fffffffffffffffLL
#define FG_LIM_double 746.0                         /* e^-746 rounds to 0 */
#define FG_LIMBITS_double 0x4087500000000000LL
#define FG_INFBITS_double 0x7ff0000000000000LL
#define FG_SHIFT_double 6755399441055744.0          /* 1.5 2^52 */
#define FG_LOG2E_double 1.44269504088896338700
#define FG_LN2HI_double 6.93147180369123816490e-01  /* 32 bits: k ln2hi exact */
#define FG_LN2LO_double 1.90821492927058770002e-10
#define FG_BIAS_double (1023LL + 512)
#define FG_MANT_double 52
#define FG_UNSCALE_double 0x1p-512
#define FG_BIASUP_double (1023LL - 512)
#define FG_RESCALE_double 0x1p512
#define FG_ESTRIN_double(r, r2) (1.0 + ((r) + (r2) * (((0.500000000000001061675            \
    + 0.166666666666664127759 * (r)) + (r2) * (0.0416666666665302659992                      \
    + 8.3333333334943329904e-3 * (r))) + ((r2) * (r2)) * (((1.38888889435976896333e-3       \
    + 1.98412695067796630235e-4 * (r)) + (r2) * (2.48014931361972530688e-5                  \
    + 2.75575862664084875914e-6 * (r))) + ((r2) * (r2)) * (2.76302339149586352775e-7        \
    + 2.50000722921512436658e-8 * (r))))))

#if FG_VECTORS
/* e^r for x = k ln2 + r, t = x log2 e + shift (k = t - shift, in t's low bits). */
#define FG_EXPR(T, V, x, t) ({                                                           \
    const V k_ = (t) - FG_SHIFT_##T;                      /* round(x log2 e) */          \
    const V r_ = ((x) - k_ * FG_LN2HI_##T) - k_ * FG_LN2LO_##T;                          \
    FG_ESTRIN_##T(r_, r_ * r_); })

/* The generic e^x and sigma (SSE2, AVX2): GCC vector extensions, selects as bit masks. */
#define FG_VCORE(T, BYTES, ISA, TARGET)                                                  \
/* e^(-|a|) lane by lane; NaN stays NaN. */                                              \
TARGET static inline fg_##T##_##ISA fg_vexpneg_##T##_##ISA(fg_##T##_##ISA a) {           \
    typedef fg_##T##_##ISA V;                                                            \
    typedef fg_i##T##_##ISA VI;                                                          \
    VI nan, big;                                                                         \
    V m;                                                                                 \
    if (BYTES == 16) { /* SSE2 has no 64-bit integer compare: floats, NaN zeroed */ \
        nan = a != a;                                     /* quiet: no flag for NaN */   \
        m = (V)((VI)a & FG_ABS_##T & ~nan);                                              \
        big = m > FG_LIM_##T;                                                            \
    } else {           /* the bits of |a| order like |a| (NaN above inf) */             \
        const VI ai = (VI)a & FG_ABS_##T;                                                \
        nan = ai > FG_INFBITS_##T;                                                       \
        big = ai > FG_LIMBITS_##T;                                                       \
        m = (V)ai;                                                                       \
    }                                                                                    \
    const V x = -(V)(((VI)m & ~big) | (FG_LIMBITS_##T & big));     /* -min(|a|, LIM) */ \
    const V t = x * FG_LOG2E_##T + FG_SHIFT_##T;                                         \
    const V e = FG_EXPR(T, V, x, t) * (V)(((VI)t + FG_BIAS_##T) << FG_MANT_##T)          \
                * FG_UNSCALE_##T;                                                        \
    return (V)(((VI)e & ~nan) | ((VI)a & nan));                                          \
}                                                                                        \
/* e^a lane by lane, any a: |a| clamped to LIM with a's sign kept (e^-LIM rounds to 0,   \
   e^LIM overflows); for a <= 0 bit for bit fg_vexpneg. NaN stays NaN. */               \
TARGET static inline fg_##T##_##ISA fg_vexp_##T##_##ISA(fg_##T##_##ISA a) {              \
    typedef fg_##T##_##ISA V;                                                            \
    typedef fg_i##T##_##ISA VI;                                                          \
    VI nan, big, neg;                                                                    \
    V m;                                                                                 \
    if (BYTES == 16) {                                                                   \
        nan = a != a;                                                                    \
        m = (V)((VI)a & FG_ABS_##T & ~nan);                                              \
        big = m > FG_LIM_##T;                                                            \
        neg = (V)((VI)a & ~nan) < 0;                                                     \
    } else {                                                                             \
        const VI ai = (VI)a & FG_ABS_##T;                                                \
        nan = ai > FG_INFBITS_##T;                                                       \
        big = ai > FG_LIMBITS_##T;                                                       \
        neg = (VI)a < 0;                                                                 \
        m = (V)ai;                                                                       \
    }                                                                                    \
    const V x = (V)(((VI)m & ~big) | (FG_LIMBITS_##T & big) | (neg & ~FG_ABS_##T));      \
    const V t = x * FG_LOG2E_##T + FG_SHIFT_##T;                                         \
    const VI bias = (neg & FG_BIAS_##T) | (~neg & FG_BIASUP_##T);                        \
    const V scale = (V)((neg & (VI)((V){0} + FG_UNSCALE_##T))                           \
                        | (~neg & (VI)((V){0} + FG_RESCALE_##T)));                       \
    const V e = FG_EXPR(T, V, x, t) * (V)(((VI)t + bias) << FG_MANT_##T) * scale;        \
    return (V)(((VI)e & ~nan) | ((VI)a & nan));                                          \
}                                                                                        \
/* sigma(z) = 1 / (1 + e^-z) from e = e^-|z| <= 1: 1/(1 + e) for z >= 0, e/(1 + e) below. */ \
TARGET static inline fg_##T##_##ISA fg_vsigmoid_##T##_##ISA(fg_##T##_##ISA z) {          \
    typedef fg_##T##_##ISA V;                                                            \
    typedef fg_i##T##_##ISA VI;                                                          \
    const V e = fg_vexpneg_##T##_##ISA(z);                                               \
    const V s = (T)1 / ((T)1 + e);                                                       \
    const VI neg = BYTES == 16 ? (V)((VI)z & ~(z != z)) < 0 : (VI)z < 0;  /* sign bit */ \
    return (V)(((VI)(e * s) & neg) | ((VI)s & ~neg));                                    \
}                                                                                        \
/* The last rest < L elements of z (+ b) as a zero-padded vector, and back. */          \
TARGET static inline fg_##T##_##ISA fg_vtail_##T##_##ISA(const T *z, const T *b,         \
                                                         Py_ssize_t rest) {              \
    fg_##T##_##ISA v = {0};                                                              \
    for (Py_ssize_t l = 0; l < rest; l++) v[l] = b != NULL ? z[l] + b[l] : z[l];         \
    return v;                                                                            \
}                                                                                        \
TARGET static inline void fg_vtailstore_##T##_##ISA(T *h, fg_##T##_##ISA v,              \
                                                    Py_ssize_t rest) {                   \
    for (Py_ssize_t l = 0; l < rest; l++) h[l] = v[l];                                   \
}

/* AVX-512: the same e^x and sigma with the instructions GCC does not pick from vector
   code: |a| clamped by an integer min (NaN's bits clamp too; the NaN is put back by a
   masked move at the end, so no arithmetic sees it), 2^k applied by vscalef (one
   rounding, subnormals included: the results are bit for bit those of 2^(k + C) 2^-C),
   the sign select and NaN as masked operations. 21 instructions a vector instead of 29:
   sigma 32x64 takes 0.75-0.83x the time in float, 0.80-0.90x in double, and is now as
   bound by the division's throughput as by the rest (a reciprocal by rcp14 and
   Newton steps was 1.04x/1.13x slower: docs/kernels.md). AVX512F only. */
#define FG_VCORE512(T, S, E, K, VF, TARGET)                                              \
/* e^(-m) for m = min(|a|, LIM) >= 0, never NaN. */                                     \
TARGET static inline VF fg_expneg512_##T(VF m) {                                         \
    const VF t = _mm512_fnmadd_##S(m, _mm512_set1_##S(FG_LOG2E_##T),                      \
                                   _mm512_set1_##S(FG_SHIFT_##T));                       \
    const VF k = _mm512_sub_##S(t, _mm512_set1_##S(FG_SHIFT_##T)); /* round(-m log2 e) */ \
    VF r = _mm512_fnmsub_##S(k, _mm512_set1_##S(FG_LN2HI_##T), m);   /* -m - k ln2hi */   \
    r = _mm512_fnmadd_##S(k, _mm512_set1_##S(FG_LN2LO_##T), r);                          \
    const VF r2 = _mm512_mul_##S(r, r);                                                  \
    return _mm512_scalef_##S(FG_ESTRIN_##T(r, r2), k);                                   \
}                                                                                        \
TARGET static inline fg_##T##_avx512 fg_vexpneg_##T##_avx512(fg_##T##_avx512 a) {        \
    const __m512i ai = _mm512_and_si512(_mm512_cast##S##_si512((VF)a),                  \
                                        _mm512_set1_##E(FG_ABS_##T));                    \
    const K nan = _mm512_cmpgt_##E##_mask(ai, _mm512_set1_##E(FG_INFBITS_##T));          \
    const VF e = fg_expneg512_##T(                                                       \
        _mm512_castsi512_##S(_mm512_min_##E(ai, _mm512_set1_##E(FG_LIMBITS_##T))));      \
    return (fg_##T##_avx512)_mm512_mask_mov_##S(e, nan, (VF)a);                          \
}                                                                                        \
/* e^a, any a: the clamp of |a| keeps a's sign; vscalef overflows to inf by itself. */ \
TARGET static inline fg_##T##_avx512 fg_vexp_##T##_avx512(fg_##T##_avx512 a) {           \
    const __m512i bits = _mm512_cast##S##_si512((VF)a);                                  \
    const __m512i ai = _mm512_and_si512(bits, _mm512_set1_##E(FG_ABS_##T));             \
    const K nan = _mm512_cmpgt_##E##_mask(ai, _mm512_set1_##E(FG_INFBITS_##T));          \
    const __m512i m = _mm512_min_##E(ai, _mm512_set1_##E(FG_LIMBITS_##T));              \
    const VF x = _mm512_castsi512_##S(_mm512_or_si512(m, _mm512_andnot_si512(            \
        _mm512_set1_##E(FG_ABS_##T), bits)));                                            \
    const VF t = _mm512_fmadd_##S(x, _mm512_set1_##S(FG_LOG2E_##T),                       \
                                  _mm512_set1_##S(FG_SHIFT_##T));                        \
    const VF k = _mm512_sub_##S(t, _mm512_set1_##S(FG_SHIFT_##T));   /* round(x log2 e) */ \
    VF r = _mm512_fnmadd_##S(k, _mm512_set1_##S(FG_LN2HI_##T), x);   /* x - k ln2hi */   \
    r = _mm512_fnmadd_##S(k, _mm512_set1_##S(FG_LN2LO_##T), r);                          \
    const VF r2 = _mm512_mul_##S(r, r);                                                  \
    const VF e = _mm512_scalef_##S(FG_ESTRIN_##T(r, r2), k);                             \
    return (fg_##T##_avx512)_mm512_mask_mov_##S(e, nan, (VF)a);                          \
}                                                                                        \
TARGET static inline fg_##T##_avx512 fg_vsigmoid_##T##_avx512(fg_##T##_avx512 z) {       \
    const __m512i zi = _mm512_cast##S##_si512((VF)z);                                    \
    const __m512i ai = _mm512_and_si512(zi, _mm512_set1_##E(FG_ABS_##T));               \
    const K nan = _mm512_cmpgt_##E##_mask(ai, _mm512_set1_##E(FG_INFBITS_##T));          \
    const K neg = _mm512_cmplt_##E##_mask(zi, _mm512_setzero_si512());    /* sign bit */ \
    const VF e = fg_expneg512_##T(                                                       \
        _mm512_castsi512_##S(_mm512_min_##E(ai, _mm512_set1_##E(FG_LIMBITS_##T))));      \
    const VF one = _mm512_set1_##S(1);                                                   \
    const VF s = _mm512_div_##S(one, _mm512_add_##S(one, e));                            \
    return (fg_##T##_avx512)_mm512_mask_mov_##S(_mm512_mask_mul_##S(s, neg, e, s), nan, (VF)z); \
}                                                                                        \
/* Tails by masked loads and stores (masked-off lanes are not read: no fault, no flag). */ \
TARGET static inline fg_##T##_avx512 fg_vtail_##T##_avx512(const T *z, const T *b,       \
                                                           Py_ssize_t rest) {            \
    const K k = (K)((1u << rest) - 1);                                                   \
    VF v = _mm512_maskz_loadu_##S(k, z);                                                 \
    if (b != NULL) v = _mm512_maskz_add_##S(k, v, _mm512_maskz_loadu_##S(k, b));         \
    return (fg_##T##_avx512)v;                                                           \
}                                                                                        \
TARGET static inline void fg_vtailstore_##T##_avx512(T *h, fg_##T##_avx512 v,            \
                                                     Py_ssize_t rest) {                  \
    _mm512_mask_storeu_##S(h, (K)((1u << rest) - 1), (VF)v);                             \
}
#define FG_VCORE512_float(TARGET) FG_VCORE512(float, ps, epi32, __mmask16, __m512, TARGET)
#define FG_VCORE512_double(TARGET) FG_VCORE512(double, pd, epi64, __mmask8, __m512d, TARGET)
#define FG_VCORE_base(T, BYTES, TARGET) FG_VCORE(T, BYTES, base, TARGET)
#define FG_VCORE_avx2(T, BYTES, TARGET) FG_VCORE(T, BYTES, avx2, TARGET)
#define FG_VCORE_avx512(T, BYTES, TARGET) FG_VCORE512_##T(TARGET)

#define FG_VMATH(T, I, BYTES, ISA, TARGET)                                               \
typedef T fg_##T##_##ISA __attribute__((vector_size(BYTES)));                            \
typedef I fg_i##T##_##ISA __attribute__((vector_size(BYTES)));                           \
FG_VCORE_##ISA(T, BYTES, TARGET)                                                         \
/* h = sigma(z + b) over n elements (b NULL: sigma(z)); h may be z. Two vectors a step
   (5-12 % faster than one: more independent work in flight). */                       \
TARGET FG_NO_LIBCALLS static void fg_sigmoid_##T##_##ISA(const T *z, const T *b, T *h,  \
                                                         Py_ssize_t n) {                 \
    typedef fg_##T##_##ISA V;                                                            \
    const Py_ssize_t L = BYTES / sizeof(T);                                              \
    Py_ssize_t i = 0;                                                                    \
    V v, w, c, d;                                                                        \
    if (b == NULL) {                                                                     \
        for (; i + 2 * L <= n; i += 2 * L) {                                             \
            __builtin_memcpy(&v, z + i, BYTES);                                          \
            __builtin_memcpy(&w, z + i + L, BYTES);                                      \
            v = fg_vsigmoid_##T##_##ISA(v);                                              \
            w = fg_vsigmoid_##T##_##ISA(w);                                              \
            __builtin_memcpy(h + i, &v, BYTES);                                          \
            __builtin_memcpy(h + i + L, &w, BYTES);                                      \
        }                                                                                \
        for (; i + L <= n; i += L) {                                                     \
            __builtin_memcpy(&v, z + i, BYTES);                                          \
            v = fg_vsigmoid_##T##_##ISA(v);                                              \
            __builtin_memcpy(h + i, &v, BYTES);                                          \
        }                                                                                \
    } else {                                                                             \
        for (; i + 2 * L <= n; i += 2 * L) {                                             \
            __builtin_memcpy(&v, z + i, BYTES);                                          \
            __builtin_memcpy(&w, z + i + L, BYTES);                                      \
            __builtin_memcpy(&c, b + i, BYTES);                                          \
            __builtin_memcpy(&d, b + i + L, BYTES);                                      \
            v = fg_vsigmoid_##T##_##ISA(v + c);                                          \
            w = fg_vsigmoid_##T##_##ISA(w + d);                                          \
            __builtin_memcpy(h + i, &v, BYTES);                                          \
            __builtin_memcpy(h + i + L, &w, BYTES);                                      \
        }                                                                                \
        for (; i + L <= n; i += L) {                                                     \
            __builtin_memcpy(&v, z + i, BYTES);                                          \
            __builtin_memcpy(&c, b + i, BYTES);                                          \
            v = fg_vsigmoid_##T##_##ISA(v + c);                                          \
            __builtin_memcpy(h + i, &v, BYTES);                                          \
        }                                                                                \
    }                                                                                    \
    if (i < n) {                     /* the last n - i < L, through a zero-padded vector */ \
        v = fg_vsigmoid_##T##_##ISA(fg_vtail_##T##_##ISA(z + i, b != NULL ? b + i : NULL, n - i)); \
        fg_vtailstore_##T##_##ISA(h + i, v, n - i);                                      \
    }                                                                                    \
}                                                                                        \
/* p[k] = e^(z[k] - m) for k < K, m >= every z[k] (a row's maximum); returns sum_k p[k]. */ \
TARGET FG_NO_LIBCALLS static T fg_expsum_##T##_##ISA(const T *z, T m, T *p,             \
                                                     Py_ssize_t K) {                     \
    typedef fg_##T##_##ISA V;                                                            \
    const Py_ssize_t L = BYTES / sizeof(T);                                              \
    Py_ssize_t k = 0, l;                                                                 \
    V v, s = {0};                                                                        \
    T total = 0;                                                                         \
    for (; k + L <= K; k += L) {                                                         \
        __builtin_memcpy(&v, z + k, BYTES);                                              \
        v = fg_vexpneg_##T##_##ISA(m - v);                                               \
        __builtin_memcpy(p + k, &v, BYTES);                                              \
        s += v;                                                                          \
    }                                                                                    \
    for (l = 0; l < L; l++) total += s[l];                                               \
    if (k < K) {                     /* the last K - k < L, through a zero-padded vector */ \
        v = fg_vexpneg_##T##_##ISA(m - fg_vtail_##T##_##ISA(z + k, NULL, K - k));        \
        fg_vtailstore_##T##_##ISA(p + k, v, K - k);                                      \
        for (l = 0; l < K - k; l++) total += v[l];                                       \
    }                                                                                    \
    return total;                                                                        \
}                                                                                        \
/* y = e^x over n elements; y may be x. */                                              \
TARGET FG_NO_LIBCALLS static void fg_exp_##T##_##ISA(const T *x, T *y, Py_ssize_t n) {  \
    typedef fg_##T##_##ISA V;                                                            \
    const Py_ssize_t L = BYTES / sizeof(T);                                              \
    Py_ssize_t i = 0;                                                                    \
    V v, w;                                                                              \
    for (; i + 2 * L <= n; i += 2 * L) {                                                 \
        __builtin_memcpy(&v, x + i, BYTES);                                              \
        __builtin_memcpy(&w, x + i + L, BYTES);                                          \
        v = fg_vexp_##T##_##ISA(v);                                                      \
        w = fg_vexp_##T##_##ISA(w);                                                      \
        __builtin_memcpy(y + i, &v, BYTES);                                              \
        __builtin_memcpy(y + i + L, &w, BYTES);                                          \
    }                                                                                    \
    for (; i + L <= n; i += L) {                                                         \
        __builtin_memcpy(&v, x + i, BYTES);                                              \
        v = fg_vexp_##T##_##ISA(v);                                                      \
        __builtin_memcpy(y + i, &v, BYTES);                                              \
    }                                                                                    \
    if (i < n) {                                                                         \
        v = fg_vexp_##T##_##ISA(fg_vtail_##T##_##ISA(x + i, NULL, n - i));               \
        fg_vtailstore_##T##_##ISA(y + i, v, n - i);                                      \
    }                                                                                    \
}                                                                                        \
/* One element through the same vector code, in a register (fastgrad.compile's scalars): \
   bit for bit what the array functions give that element. */                          \
TARGET static T fg_exp1_##T##_##ISA(T x) {                                               \
    const fg_##T##_##ISA v = {x};                                                        \
    return fg_vexp_##T##_##ISA(v)[0];                                                    \
}                                                                                        \
TARGET static T fg_sigmoid1_##T##_##ISA(T x) {                                           \
    const fg_##T##_##ISA v = {x};                                                        \
    return fg_vsigmoid_##T##_##ISA(v)[0];                                                \
}
#else
#define FG_VMATH(T, I, BYTES, ISA, TARGET)                                               \
static T fg_expneg1_##T(T a) { return sizeof(T) == 4 ? expf(-fabsf(a)) : exp(-fabs(a)); } \
static void fg_sigmoid_##T##_##ISA(const T *z, const T *b, T *h, Py_ssize_t n) {        \
    for (Py_ssize_t i = 0; i < n; i++) {                                                 \
        const T v = b != NULL ? z[i] + b[i] : z[i], e = fg_expneg1_##T(v);               \
        const T s = 1 / (1 + e);                                                         \
        h[i] = v < 0 ? e * s : s;                                                        \
    }                                                                                    \
}                                                                                        \
static T fg_expsum_##T##_##ISA(const T *z, T m, T *p, Py_ssize_t K) {                    \
    T total = 0;                                                                         \
    for (Py_ssize_t k = 0; k < K; k++) { p[k] = fg_expneg1_##T(m - z[k]); total += p[k]; } \
    return total;                                                                        \
}                                                                                        \
static void fg_exp_##T##_##ISA(const T *x, T *y, Py_ssize_t n) {                         \
    for (Py_ssize_t i = 0; i < n; i++) y[i] = sizeof(T) == 4 ? expf(x[i]) : exp(x[i]);   \
}                                                                                        \
static T fg_exp1_##T##_##ISA(T x) { T y; fg_exp_##T##_##ISA(&x, &y, 1); return y; }     \
static T fg_sigmoid1_##T##_##ISA(T x) { T y; fg_sigmoid_##T##_##ISA(&x, NULL, &y, 1); return y; }
#endif

/* Every variant: SSE2 (the x86-64 baseline, or plain C elsewhere), AVX2+FMA, AVX-512. */
FG_VMATH(double, long long, 16, base, )
FG_VMATH(float, int, 16, base, )
#if FG_VECTORS
FG_VMATH(double, long long, 32, avx2, FG_TARGET("avx2,fma"))
FG_VMATH(float, int, 32, avx2, FG_TARGET("avx2,fma"))
FG_VMATH(double, long long, 64, avx512, FG_TARGET("avx512f,avx2,fma"))
FG_VMATH(float, int, 64, avx512, FG_TARGET("avx512f,avx2,fma"))
#endif

/* The variant in use, per dtype (d: double, f: float); fg_vexp_select sets them. */
#define FG_VEXP_POINTERS(T, S)                                                          \
static void (*fg_sigmoid_##S)(const T*, const T*, T*, Py_ssize_t) = fg_sigmoid_##T##_base; \
static T (*fg_expsum_##S)(const T*, T, T*, Py_ssize_t) = fg_expsum_##T##_base;          \
static void (*fg_exp_##S)(const T*, T*, Py_ssize_t) = fg_exp_##T##_base;              \
static T (*fg_exp1_##S)(T) = fg_exp1_##T##_base;                                        \
static T (*fg_sigmoid1_##S)(T) = fg_sigmoid1_##T##_base;
FG_VEXP_POINTERS(double, d)
FG_VEXP_POINTERS(float, f)

#define FG_VEXP_USE(T, S, ISA)                                                          \
    fg_sigmoid_##S = fg_sigmoid_##T##_##ISA; fg_expsum_##S = fg_expsum_##T##_##ISA;      \
    fg_exp_##S = fg_exp_##T##_##ISA; fg_exp1_##S = fg_exp1_##T##_##ISA;                   \
    fg_sigmoid1_##S = fg_sigmoid1_##T##_##ISA;

/* The widest variant this CPU runs, at most `limit`: 0 base, 1 avx2, 2 avx512. */
static int fg_isa_level(int limit) {
#if FG_VECTORS
    __builtin_cpu_init();
    if (limit >= 2 && __builtin_cpu_supports("avx512f")) return 2;
    if (limit >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    (void)limit;
    return 0;
}

static const char *fg_isa_name(int level) {
    return level == 2 ? "avx512" : (level == 1 ? "avx2" : "base");
}

/* Use the variant of fg_isa_level(limit); returns its name. */
static const char *fg_vexp_select(int limit) {
    const int level = fg_isa_level(limit);
#if FG_VECTORS
    if (level == 2) { FG_VEXP_USE(double, d, avx512) FG_VEXP_USE(float, f, avx512) }
    if (level == 1) { FG_VEXP_USE(double, d, avx2) FG_VEXP_USE(float, f, avx2) }
#endif
    if (level == 0) { FG_VEXP_USE(double, d, base) FG_VEXP_USE(float, f, base) }
    return fg_isa_name(level);
}

#endif
