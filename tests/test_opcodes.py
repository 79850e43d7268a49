"""The opcode list (``fastgrad._opcodes``) against the C executor built from it.

The C executor names opcodes only through the header setup.py generates from the list,
and each elementwise opcode's body is one line of csrc/fg_elementwise.h. Here: the built
module's numbering is the list's, every elementwise opcode has its C loop, and each one
computes what the Python executor (``fastgrad._compiler.executor.PyExecutor``) computes, under
every operand mode, accumulation and scale; e^x and σ are the kernels' own to the bit.
"""

import importlib

import numpy as np
import pytest

from fastgrad import _opcodes
from fastgrad._compiler.executor import PyExecutor
from fastgrad._compiler.ir import Ins, Slot
from fastgrad._opcodes import COL, DENSE, ELEMENTWISE, EW_END, EXP, FULL, NAMES, ROW, SCALAR, SIGMOID

try:
    _replay = importlib.import_module("fastgrad._replay")
    _cykernels = importlib.import_module("fastgrad.backends._cykernels")
except ImportError:
    _replay = _cykernels = None

compiled = pytest.mark.skipif(_replay is None, reason="the compiled executor is not built")
DTYPES = [np.float64, np.float32]


def test_each_constant_is_its_position_in_the_list():
    assert len(set(NAMES)) == len(NAMES)
    for number, name in enumerate(NAMES):
        assert getattr(_opcodes, name) == number
    assert all(getattr(_opcodes, name) < EW_END for name in ELEMENTWISE)
    assert all(getattr(_opcodes, name) > EW_END for name in DENSE)
    assert _opcodes.OPNAMES == {n: name for n, name in enumerate(NAMES) if name != "EW_END"}


@compiled
def test_the_compiled_executor_was_built_from_this_list():
    """A stale build (an opcode added or moved in _opcodes.py since) fails here."""
    assert _replay.opcodes() == {name: number for number, name in enumerate(NAMES)}


@compiled
def test_every_elementwise_opcode_has_a_c_loop():
    assert _replay.elementwise_opcodes() == list(range(EW_END))


# --- one instruction, run by both executors -------------------------------------------------


class OnePlan:
    """What the executors read of a Plan, for a single instruction over given slots."""

    def __init__(self, ins, slots):
        self.instrs = [ins]
        self.used = slots
        self.number = {id(s): i for i, s in enumerate(slots)}
        self.registers = {}

    def initial_array(self, slot):
        return None


def mode_shape(mode, R, C):
    return {FULL: (R, C), SCALAR: (1, 1), ROW: (1, C), COL: (R, 1)}[mode]


POSITIVE = {"LOG", "SQRT", "POW", "POW_BWD", "POW_BWD_B", "SQRT_BWD", "DIV", "DIV_BWD_B"}


def operand(name, shape, dtype, rng):
    if name in POSITIVE:
        return rng.uniform(0.5, 2.0, shape).astype(dtype)
    a = rng.standard_normal(shape) * (20.0 if name in ("EXP", "SIGMOID") else 1.0)
    a[rng.random(shape) < 0.2] = 0.0  # WHERE's condition, MAX's ties with 0-filled operands
    return a.astype(dtype)


def run_both(op, dtype, R, C, modes, omode, acc, alpha, rng):
    """out (+)= alpha op(a, b, c) by the C and the Python executor; (C result, Python result)."""
    name = NAMES[op]
    slots = [Slot(i, mode_shape(m, R, C), dtype, "input") for i, m in enumerate(modes)]
    out = Slot(3, mode_shape(omode, R, C), dtype, "input")
    ins = Ins(op, out, slots, modes=modes, omode=omode, acc=acc, R=R, C=C, f=[alpha])
    plan = OnePlan(ins, slots + [out])
    arrays = [operand(name, s.shape, dtype, rng) for s in slots]
    if name in ("MAX", "MIN", "MAX_BWD", "MIN_BWD"):
        arrays[1 if name in ("MAX", "MIN") else 2].flat[::3] = arrays[0 if name in ("MAX", "MIN") else 1].flat[0]
    start = rng.standard_normal(out.shape).astype(dtype)
    results = []
    for executor in (_replay.Program(plan), PyExecutor(plan)):
        for i, a in enumerate(arrays):
            executor.bind(i, a.copy())
        o = start.copy()
        executor.bind(3, o)
        with np.errstate(all="ignore"):
            executor.run()
        results.append(o)
    return results


LAYOUTS = [
    # R, C, operand modes, output mode: one element; contiguous (several tiles of 256);
    # a row broadcast down; columns and scalars (the strided loop); sums into a row, a
    # scalar, a column (the adjoints of broadcasting)
    (1, 1, (FULL, FULL, FULL), FULL),
    (3, 700, (FULL, FULL, FULL), FULL),
    (5, 300, (ROW, FULL, ROW), FULL),
    (6, 40, (COL, SCALAR, FULL), FULL),
    (4, 300, (FULL, FULL, FULL), ROW),
    (7, 9, (FULL, ROW, COL), SCALAR),
    (7, 9, (FULL, FULL, SCALAR), COL),
]


@compiled
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_c_and_python_executors_agree_on_every_elementwise_opcode(name, dtype):
    rng = np.random.default_rng(NAMES.index(name))
    eps = np.finfo(dtype).eps
    for R, C, modes, omode in LAYOUTS:
        for acc, alpha in ((False, 1.0), (True, 1.0), (False, -0.5), (True, 2.5)):
            got, want = run_both(NAMES.index(name), dtype, R, C, modes, omode, acc, alpha, rng)
            # sums over up to R·C terms round differently in the two executors
            terms = 1 if omode == FULL else R * C
            scale = np.nan_to_num(np.abs(want), posinf=0).max(initial=1.0)
            np.testing.assert_allclose(
                got, want, rtol=64 * eps, atol=16 * eps * terms * scale,
                err_msg=f"{name} {np.dtype(dtype)} R={R} C={C} modes={modes} omode={omode} acc={acc} α={alpha}")


# --- e^x and σ are the kernels' -------------------------------------------------------------


@pytest.fixture(params=["base", "avx2", "avx512"])
def isa(request):
    """Both compiled modules on one instruction-set variant (narrower where the CPU lacks it)."""
    if _replay is None:
        pytest.skip("the compiled executor is not built")
    used = _replay.ISA, _cykernels.ISA
    try:
        assert _replay._select_isa(request.param) == _cykernels._select_isa(request.param)
        yield request.param
    finally:
        _replay._select_isa(used[0])
        _cykernels._select_isa(used[1])


def edge_values(dtype):
    info = np.finfo(dtype)
    values = [0.0, 1e-30, 0.5, 1.0, 16.6, 36.8, 88.0, 88.7, 89.0, 103.0, 104.0, 105.0, 709.0, 709.7,
              709.8, 745.0, 746.0, 1e5, float(info.max), float(info.tiny), float(info.smallest_subnormal)]
    values = [v for v in values if v <= info.max]
    return np.array(values + [-v for v in values] + [np.inf, -np.inf, np.nan], dtype)


def run_unary(op, x):
    """op over x (1-D) by the C executor, through its contiguous loop."""
    a = Slot(0, (1, x.size), x.dtype, "input")
    out = Slot(1, (1, x.size), x.dtype, "input")
    program = _replay.Program(OnePlan(Ins(op, out, [a], R=1, C=x.size), [a, out]))
    result = np.empty_like(x)
    program.bind(0, x.reshape(1, -1))
    program.bind(1, result.reshape(1, -1))
    with np.errstate(all="ignore"):
        program.run()
    return result


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_sigmoid_is_the_kernels_bit_for_bit(isa, dtype):
    rng = np.random.default_rng(1)
    limit = 110.0 if dtype == np.float32 else 760.0
    z = np.concatenate([rng.uniform(-limit, limit, 20_000), 4 * rng.standard_normal(20_000)]).astype(dtype)
    for offset in range(17):  # every vector lane and tail length
        x = np.concatenate([z[offset:offset + 1000], edge_values(dtype)])
        np.testing.assert_array_equal(run_unary(SIGMOID, x), _cykernels.sigmoid_forward(x))
    for v in np.concatenate([z[:50], edge_values(dtype)]):  # one element: the scalar path
        x = np.array([v], dtype)
        np.testing.assert_array_equal(run_unary(SIGMOID, x), _cykernels.sigmoid_forward(x))


def ulps(got, want, dtype):
    spacing = np.spacing(np.abs(np.asarray(want).astype(dtype))).astype(np.longdouble)
    spacing = np.maximum(spacing, np.finfo(dtype).smallest_subnormal)
    return np.abs(np.asarray(got, np.longdouble) - np.asarray(want, np.longdouble)) / spacing


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_exp_within_ulps_of_exact_math(isa, dtype):
    """e^x over its whole range, down into the subnormals and up to the overflow to inf;
    NaN stays NaN, e^±inf is inf and 0, e^±0 is 1. (Measured: ≤ 1.1 ulp.)"""
    rng = np.random.default_rng(2)
    low, high = (-104.0, 89.0) if dtype == np.float32 else (-746.0, 710.0)
    x = np.concatenate([rng.uniform(low, high, 100_000), rng.standard_normal(10_000), edge_values(dtype)])
    x = x.astype(dtype)
    got = run_unary(EXP, x)
    with np.errstate(over="ignore"):
        exact = np.exp(x.astype(np.longdouble))
        rounded = exact.astype(dtype)
    finite = np.isfinite(rounded)
    assert ulps(got[finite], exact[finite], dtype).max() <= 2.0
    overflow = ~finite & ~np.isnan(x)
    np.testing.assert_array_equal(got[overflow], rounded[overflow])
    assert np.isnan(got[np.isnan(x)]).all()
    np.testing.assert_array_equal(run_unary(EXP, np.array([0.0, -0.0, np.inf, -np.inf], dtype)), [1, 1, np.inf, 0])
    for i in range(-60, 0):  # one element (the scalar path) is the array's element
        np.testing.assert_array_equal(run_unary(EXP, x[i:][:1]), got[i:][:1])
