# cython: language_level=3
"""The compiled executor of ``fastgrad.compile``: one call runs a whole plan.

A plan (``fastgrad._compile.Plan``) is a flat array of instructions over numbered
buffers. ``Program`` copies it into C structs and a table of buffer pointers; ``run()``
executes every instruction in one loop with the GIL released. Elementwise instructions
compute out (+)= α f(a, b, c) over an R × C iteration space, each operand broadcast as a
full array, a scalar, a row or a column (and the output summed the same ways: the
adjoint of broadcasting). Dense instructions call BLAS through scipy.linalg.cython_blas
(gemm; gemv when one side is a vector; ger, or a typed loop, for outer products).
The opcodes are defined once, in ``fastgrad._opcodes`` (the build generates the C
names from it); what each elementwise one computes is one line of
``csrc/fg_elementwise.h``. The Python reference executor in ``fastgrad._compile`` runs the
same plans with NumPy.
"""

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from libc.stdlib cimport free, malloc

import os

import numpy as np

from ._opcodes import AFFINE, AFFINE_T, BGEMM, BLK, CAST, EW_END, FUSED, GEMM, HOST, NREG, OPNAMES

cnp.import_array()

# The executor is C (csrc/fg_replay.h); the opcodes are the names setup.py generates from
# fastgrad._opcodes (csrc/fg_opcodes.h), e^x and σ the kernels' (csrc/fg_vexp.h).
cdef extern from "fg_replay.h":
    const char* fg_op_names[]
    int FG_OP_COUNT
    int FG_OP_EW_END
    const char* fg_vexp_select(int limit) noexcept nogil
    int fg_ew_has(int op) noexcept nogil
    ctypedef struct fg_ins:
        int op, dt, out, a, b, c, omode, amode, bmode, cmode, acc, flags
        Py_ssize_t R, C, K
        double f[8]
    void fg_set_blas(void*, void*, void*, void*, void*, void*) noexcept nogil
    int fg_vec_blas
    Py_ssize_t fg_run(const fg_ins* ins, Py_ssize_t n, void** P, const fg_ins* subs,
                      void* scratch) noexcept nogil

cdef bint _blas_loaded = False


cdef int _load_blas() except -1:
    """Point the executor at scipy's BLAS (scipy.linalg.cython_blas), once: importing
    scipy.linalg takes ~0.3 s, so it waits for the first program that multiplies."""
    global _blas_loaded
    if _blas_loaded:
        return 0
    from scipy.linalg import cython_blas

    cdef list p = []
    for name in ("dgemm", "sgemm", "dgemv", "sgemv", "dger", "sger"):
        capsule = cython_blas.__pyx_capi__[name]
        p.append(<size_t>PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule)))
    fg_set_blas(<void*><size_t>p[0], <void*><size_t>p[1], <void*><size_t>p[2],
                <void*><size_t>p[3], <void*><size_t>p[4], <void*><size_t>p[5])
    _blas_loaded = True
    return 0


def opcodes():
    """{name: number} of every opcode this build's C executor knows (fg_opcodes.h, as
    generated from ``fastgrad._opcodes`` when it was compiled)."""
    return {fg_op_names[i].decode(): i for i in range(FG_OP_COUNT)}


def elementwise_opcodes():
    """The opcodes below EW_END the C executor has a loop body for (fg_elementwise.h)."""
    return [i for i in range(FG_OP_EW_END) if fg_ew_has(i)]


def _select_isa(str limit="avx512"):
    """Run e^x and σ on the widest of base (SSE2), avx2, avx512 this CPU runs, up to
    ``limit`` (as ``_cykernels._select_isa``); returns its name."""
    levels = {"base": 0, "avx2": 1, "avx512": 2}
    if limit not in levels:
        raise ValueError(f"limit must be one of {', '.join(levels)}, got {limit!r}")
    return fg_vexp_select(levels[limit]).decode()


ISA = _select_isa(os.environ.get("FASTGRAD_ISA", "avx512"))


_CAST_CODE = {np.dtype(np.float64).str: 0, np.dtype(np.float32).str: 1, np.dtype(np.int64).str: 2}


cdef inline void _fill(fg_ins* I, object x, dict num):
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
    if on:
        _load_blas()
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
    cdef list hosts  # (k, fn, buffer numbers) of each HOST instruction, in order
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
        if any(x.op in (GEMM, BGEMM) or (x.op == AFFINE and x.R > 1) for x in instrs):
            _load_blas()
        self.n = len(instrs)
        self.ins = <fg_ins*>malloc(max(self.n, 1) * sizeof(fg_ins))
        num = plan.number
        subs = []
        self.hosts = []
        for k, x in enumerate(instrs):
            if x.op == HOST:  # a call into Python between two runs of the C loop
                self.hosts.append((k, x.fn, [num[id(a)] for a in x.args]))
            for op in [x.op] if x.subs is None else [sub.op for sub in x.subs]:
                if op < EW_END and not fg_ew_has(op):
                    raise NotImplementedError(
                        f"fastgrad.compile: the C executor has no loop for opcode "
                        f"{OPNAMES.get(op, op)} (csrc/fg_elementwise.h)")
            _fill(&self.ins[k], x, num)
            if x.op == FUSED:
                self.ins[k].a = len(subs)
                self.ins[k].K = len(x.subs)
                subs.extend(x.subs)
            if x.op == CAST:  # source code | target code << 2: float64 0, float32 1, int64 2
                self.ins[k].flags = _CAST_CODE[x.args[0].dtype.str] | _CAST_CODE[x.out.dtype.str] << 2
        self.nsubs = len(subs)
        self.subs = <fg_ins*>malloc(max(self.nsubs, 1) * sizeof(fg_ins))
        regnum = dict(num)
        for s, r in plan.registers.items():
            regnum[id(s)] = -2 - r
        for k, x in enumerate(subs):
            _fill(&self.subs[k], x, regnum)
        cdef Py_ssize_t need = (NREG + 4) * BLK if self.nsubs else 0
        for x in instrs:
            if x.op == AFFINE and x.R > 1 and x.C * x.K <= AFFINE_T:
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
        cdef Py_ssize_t start = 0
        if self.hosts:  # the C loop up to each HOST instruction, its call, and on
            for k, fn, nums in self.hosts:
                self._segment(start, k)
                fn([self.array(i) for i in nums])
                start = k + 1
        self._segment(start, self.n)
        return 0

    cdef int _segment(self, Py_ssize_t start, Py_ssize_t stop) except -1:
        cdef Py_ssize_t bad
        if stop <= start:
            return 0
        with nogil:
            bad = fg_run(self.ins + start, stop - start, self.ptrs, self.subs, self.scratch)
        if bad:
            raise ValueError(
                "fastgrad.compile: a label passed to the compiled function is out of range "
                "for the number of classes (instruction %d)" % (start + bad - 1))
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
            if self.ins[k].op == HOST:
                out.append(0.0)  # a call into Python, not timed here
                continue
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
