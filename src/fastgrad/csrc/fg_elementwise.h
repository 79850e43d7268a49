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

#include "fg_opcodes.h"

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
    case FG_OP_WHERE: LOOP(x != zero ? y : z); break;

#endif
