/* The elementwise opcodes of fastgrad.compile's programs: what each computes, once.

   An elementwise instruction computes out (+)= al * f(x, y, z) over its elements, x, y, z
   taken from its operands a, b, c. FG_EW_TABLE(SFX, LOOP, VLOOP) is a `case` per opcode:
   LOOP(f) with f an expression in x, y, z (of type fgT) and the constants zero, one, two,
   half; SFX is libm's suffix for fgT (nothing for double, f for float). VLOOP(f) instead
   names a vector function (exp, expf, sigmoid, sigmoidf: fg_array_f over an array,
   fg_one_f for one element): e^x and sigma are the kernels' own (fg_vexp.h), so the
   compiled and the eager step compute the same values. The
   executor (fg_replay.h) expands the table three times: one element, contiguous
   operands, broadcast operands.

   Adding an elementwise opcode: append its name to fastgrad/_opcodes.py's ELEMENTWISE
   and write its line here; setup.py regenerates fg_opcodes.h (the FG_OP_ names) from
   that list, so nothing is renumbered and no other line of the executor changes. */
#ifndef FG_ELEMENTWISE_H
#define FG_ELEMENTWISE_H

#include <math.h>
#include "fg_opcodes.h"

/* NumPy's own definitions (npy_math) of the functions whose C library versions differ
   from them: logaddexp, logaddexp2, the remainder's sign convention, sinc at 0. One
   definition per type: NAME (double) and NAME##f (float), as libm names them. */
#define FG_DEFINE_NPY(T, SFX, LN2, LOG2E, PI)                                               \
static inline T fg_logaddexp##SFX(T x, T y) {                                               \
    T tmp;                                                                                  \
    if (x == y) return x + LN2; /* infinities of one sign */                                \
    tmp = x - y;                                                                            \
    if (tmp > 0) return x + log1p##SFX(exp##SFX(-tmp));                                     \
    if (tmp <= 0) return y + log1p##SFX(exp##SFX(tmp));                                     \
    return tmp; /* NaN */                                                                   \
}                                                                                           \
static inline T fg_logaddexp2##SFX(T x, T y) {                                              \
    T tmp;                                                                                  \
    if (x == y) return x + 1;                                                               \
    tmp = x - y;                                                                            \
    if (tmp > 0) return x + LOG2E * log1p##SFX(exp2##SFX(-tmp));                            \
    if (tmp <= 0) return y + LOG2E * log1p##SFX(exp2##SFX(tmp));                            \
    return tmp;                                                                             \
}                                                                                           \
static inline T fg_remainder##SFX(T a, T b) { /* the sign of b, as Python's % */            \
    T mod = fmod##SFX(a, b);                                                                \
    if (!b) return mod;                                                                     \
    if (mod) { if ((b < 0) != (mod < 0)) mod += b; }                                        \
    else mod = copysign##SFX(0, b);                                                         \
    return mod;                                                                             \
}                                                                                           \
static inline T fg_sinc##SFX(T x) {                                                         \
    const T y = PI * (x == 0 ? (T)1.0e-20 : x);                                             \
    return sin##SFX(y) / y;                                                                 \
}
FG_DEFINE_NPY(double, , 0.693147180559945309417232121458176568, 1.442695040888963407359924681001892137,
              3.141592653589793238462643383279502884)
FG_DEFINE_NPY(float, f, 0.693147180559945309417232121458176568f, 1.442695040888963407359924681001892137f,
              3.141592653589793238462643383279502884f)

#define FG_EW_TABLE(SFX, LOOP, VLOOP)                                                      \
    case FG_OP_COPY: LOOP(x); break;                                                      \
    case FG_OP_ADD: LOOP(x + y); break;                                                   \
    case FG_OP_SUB: LOOP(x - y); break;                                                   \
    case FG_OP_MUL: LOOP(x * y); break;                                                   \
    case FG_OP_DIV: LOOP(x / y); break;                                                   \
    case FG_OP_NEG: LOOP(-x); break;                                                      \
    case FG_OP_EXP: VLOOP(exp##SFX); break;                                               \
    case FG_OP_LOG: LOOP(log##SFX(x)); break;                                             \
    case FG_OP_SIN: LOOP(sin##SFX(x)); break;                                             \
    case FG_OP_COS: LOOP(cos##SFX(x)); break;                                             \
    case FG_OP_TANH: LOOP(tanh##SFX(x)); break;                                           \
    case FG_OP_SOFTPLUS: LOOP((x > 0 ? x : 0) + log1p##SFX(exp##SFX(-fabs##SFX(x)))); break;      \
    case FG_OP_SIGMOID: VLOOP(sigmoid##SFX); break;                                       \
    case FG_OP_RELU: LOOP(x > zero ? x : zero); break;                                    \
    case FG_OP_SQRT: LOOP(sqrt##SFX(x)); break;                                           \
    case FG_OP_POW: LOOP(y == two ? x * x : pow##SFX(x, y)); break;                       \
    case FG_OP_RELU_BWD: LOOP(y > zero ? x : zero); break;                                \
    case FG_OP_SIGMOID_BWD: LOOP(x * (y * (one - y))); break;                             \
    case FG_OP_TANH_BWD: LOOP(x * (one - y * y)); break;                                  \
    case FG_OP_POW_BWD:                                                                   \
        LOOP(z == two ? x * two * y : (z != zero ? x * z * pow##SFX(y, z - one) : x * z * y)); \
        break;                                                                            \
    case FG_OP_POW_BWD_B: LOOP(x * log##SFX(y == zero ? one : y) * z); break;             \
    case FG_OP_SIN_BWD: LOOP(x * cos##SFX(y)); break;                                     \
    case FG_OP_COS_BWD: LOOP(-x * sin##SFX(y)); break;                                    \
    case FG_OP_DIV_BWD_B: LOOP(-x * y / (z * z)); break;                                  \
    case FG_OP_SQRT_BWD: LOOP(x / (two * y)); break;                                      \
    case FG_OP_MAX: LOOP((x != x || x > y) ? x : y); break;                               \
    case FG_OP_MIN: LOOP((x != x || x < y) ? x : y); break;                               \
    /* x̄ = ḡ [x = max(x, y)] / (1 + [x = y]): ties share the signal, as eager */          \
    case FG_OP_MAX_BWD: LOOP(y == ((y != y || y > z) ? y : z) ? (y == z ? x * half : x) : zero); \
        break;                                                                            \
    case FG_OP_MIN_BWD: LOOP(y == ((y != y || y < z) ? y : z) ? (y == z ? x * half : x) : zero); \
        break;                                                                            \
    case FG_OP_WHERE: LOOP(x != zero ? y : z); break;                                    \
    case FG_OP_GT: LOOP(x > y ? one : zero); break;                                       \
    case FG_OP_GE: LOOP(x >= y ? one : zero); break;                                      \
    case FG_OP_LT: LOOP(x < y ? one : zero); break;                                       \
    case FG_OP_LE: LOOP(x <= y ? one : zero); break;                                      \
    case FG_OP_EQ: LOOP(x == y ? one : zero); break;                                      \
    case FG_OP_NE: LOOP(x != y ? one : zero); break;                                      \
    case FG_OP_AND: LOOP(x != zero && y != zero ? one : zero); break;                     \
    case FG_OP_OR: LOOP(x != zero || y != zero ? one : zero); break;                      \
    case FG_OP_XOR: LOOP((x != zero) != (y != zero) ? one : zero); break;                 \
    case FG_OP_NOT: LOOP(x == zero ? one : zero); break;                                  \
    case FG_OP_ABS: LOOP(fabs##SFX(x)); break;                                            \
    case FG_OP_SIGN: LOOP(x > zero ? one : (x < zero ? -one : (x == zero ? zero : x))); break; \
    case FG_OP_FLOOR: LOOP(floor##SFX(x)); break;                                         \
    case FG_OP_TAN: LOOP(tan##SFX(x)); break;                                             \
    case FG_OP_ASIN: LOOP(asin##SFX(x)); break;                                           \
    case FG_OP_ACOS: LOOP(acos##SFX(x)); break;                                           \
    case FG_OP_ATAN: LOOP(atan##SFX(x)); break;                                           \
    case FG_OP_SINH: LOOP(sinh##SFX(x)); break;                                           \
    case FG_OP_COSH: LOOP(cosh##SFX(x)); break;                                           \
    case FG_OP_ASINH: LOOP(asinh##SFX(x)); break;                                         \
    case FG_OP_ACOSH: LOOP(acosh##SFX(x)); break;                                         \
    case FG_OP_ATANH: LOOP(atanh##SFX(x)); break;                                         \
    case FG_OP_LOG2: LOOP(log2##SFX(x)); break;                                           \
    case FG_OP_LOG10: LOOP(log10##SFX(x)); break;                                         \
    case FG_OP_LOG1P: LOOP(log1p##SFX(x)); break;                                         \
    case FG_OP_EXPM1: LOOP(expm1##SFX(x)); break;                                         \
    case FG_OP_EXP2: LOOP(exp2##SFX(x)); break;                                           \
    case FG_OP_SINC: LOOP(fg_sinc##SFX(x)); break;                                        \
    case FG_OP_ANGLE: LOOP(atan2##SFX(zero, x)); break;                                   \
    case FG_OP_ATAN2: LOOP(atan2##SFX(x, y)); break;                                      \
    case FG_OP_HYPOT: LOOP(hypot##SFX(x, y)); break;                                      \
    case FG_OP_LOGADDEXP: LOOP(fg_logaddexp##SFX(x, y)); break;                           \
    case FG_OP_LOGADDEXP2: LOOP(fg_logaddexp2##SFX(x, y)); break;                         \
    case FG_OP_REMAINDER: LOOP(fg_remainder##SFX(x, y)); break;                           \
    /* NumPy's fmax/fmin: a NaN loses */                                                  \
    case FG_OP_FMAX: LOOP(x >= y || y != y ? x : y); break;                               \
    case FG_OP_FMIN: LOOP(x <= y || y != y ? x : y); break;                               \
    /* max/min's share of the signal: [x = ans] / (1 + [x = other]) */                    \
    case FG_OP_BALANCED: LOOP((x == y ? one : zero) / (one + (x == z ? one : zero))); break;

#endif
