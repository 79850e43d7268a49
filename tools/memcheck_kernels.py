"""Run every compiled kernel once on each code path, for valgrind or AddressSanitizer.

Not a test (it is slow under valgrind): the command is in docs/guarantees.md::

    PYTHONPATH=src PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 valgrind --tool=memcheck \\
        --error-exitcode=99 --suppressions=tools/valgrind-python.supp \\
        /root/.pyenv/versions/3.11.7/bin/python3.11 tools/memcheck_kernels.py

(the real interpreter, not a pyenv shim). Each kernel runs in float32 and float64, on every
ISA variant the CPU has (valgrind does not emulate AVX-512: under it, base and AVX2), with
the GIL kept (``_tuning(nogil_min=huge)``) and released (``nogil_min=0``), on batch 1 (the
typed loops) and batch > 1 (scipy's BLAS, the 'N','N' layout, NumPy's matmul), on empty
and 0-d arrays, with ``out=`` fresh, aliased and overlapping, and on the error paths.

Results are checked against the reference backend, and arrays cut from a larger buffer
have their neighbours checked untouched, so a read or write past a buffer that happens
not to fault still fails here. One function per kernel family; each takes the dtype and
a random generator.
"""

import sys

import numpy as np

from fastgrad.backends import _cykernels as C
from fastgrad.backends import reference as R

SGD_SIZES = (63, 64, 65, 100, 1000)  # around the 64-element start of the aligned loop
RAGGED = (1, 3, 7, 17, 33, 70)


def close(a, b, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def raises(call, *args, what):
    try:
        call(*args)
    except (TypeError, ValueError):
        return
    raise AssertionError(f"a bad call did not raise: {what}")


class Buffer:
    """A larger array with sentinel values around views cut from it at chosen byte offsets
    from a cache line, so writes past a view (and reads of the sentinels) show up."""

    SENTINEL = 12345.0

    def __init__(self, size, dtype):
        self.item = np.dtype(dtype).itemsize
        self.raw = np.full(size + 64 // self.item * 3, self.SENTINEL, dtype)
        self.base = (-self.raw.ctypes.data % 64) // self.item  # first element on a line
        self.used = []

    def view(self, shape, offset_elements, values):
        start = self.base + offset_elements
        n = int(np.prod(shape))
        assert start + n <= self.raw.size
        v = self.raw[start:start + n].reshape(shape)
        v[...] = values
        assert n == 0 or (v.ctypes.data - offset_elements * self.item) % 64 == 0
        self.used.append((start, n))
        return v

    def check_untouched(self):
        mask = np.ones(self.raw.size, bool)
        for start, n in self.used:
            mask[start:start + n] = False
        assert (self.raw[mask] == self.SENTINEL).all(), "a kernel wrote outside its array"


def offsets(dtype):
    """Every element offset within a 64-byte cache line: 16 for float32, 8 for float64."""
    return range(64 // np.dtype(dtype).itemsize)


# ---------------------------------------------------------------------------------------
# Products: affine_forward, affine_sigmoid_forward, outer_grad, transpose_matvec, bias_grad
# ---------------------------------------------------------------------------------------

def check_products(dtype, rng):
    # (32, 64, 64), (17, 50, 70): the 'N','N' layout on a transposed x, ragged blocks;
    # (64, 64, 64), (16, 128, 128): NumPy's matmul (≥ 262144 multiply-adds), then b (and σ)
    # added by rows (fused σ, M ≥ 64) or through the transposing pass (N < M).
    for N, D, M in [(1, 7, 5), (1, 33, 17), (3, 7, 5), (0, 4, 3), (2, 0, 3), (2, 4, 0),
                    (32, 64, 64), (17, 50, 70), (64, 64, 64), (16, 128, 128)]:
        x = rng.standard_normal((N, D)).astype(dtype)
        W = rng.standard_normal((M, D)).astype(dtype)
        b = rng.standard_normal(M).astype(dtype)
        dz = rng.standard_normal((N, M)).astype(dtype)
        close(C.affine_forward(x, W, b), R.affine_forward(x, W, b), dtype)
        close(C.affine_sigmoid_forward(x, W, b), R.affine_sigmoid_forward(x, W, b), dtype)
        close(C.outer_grad(dz, x), R.outer_grad(dz, x), dtype)
        close(C.transpose_matvec(W, dz), R.transpose_matvec(W, dz), dtype)
        close(C.bias_grad(dz), R.bias_grad(dz), dtype)
        out = np.empty((N, M), dtype)
        assert C.affine_forward(x, W, b, out=out) is out
        close(out, R.affine_forward(x, W, b), dtype)
        for momentum, velocity in ((0.0, None), (0.9, np.zeros((M, D), dtype))):
            Wc, Wr = W.copy(), W.copy()
            vr = None if velocity is None else velocity.copy()
            C.sgd_outer_update(Wc, dz, x, 0.1, momentum, velocity, 0.01)
            R.sgd_outer_update(Wr, dz, x, 0.1, momentum, vr, 0.01)
            close(Wc, Wr, dtype)
        if N == M and D == M:  # out aliasing an input
            close(C.affine_forward(x, W, b, out=x.copy()), R.affine_forward(x, W, b), dtype)
            xc = x.copy()
            close(C.affine_forward(xc, W, b, out=xc), R.affine_forward(x, W, b), dtype)


def check_bias_grad(dtype, rng):
    # Four rows a pass, then the rest one by one: N = 1..9 covers every remainder twice.
    for N in range(0, 10):
        for M in RAGGED:
            dz = rng.standard_normal((N, M)).astype(dtype)
            close(C.bias_grad(dz), R.bias_grad(dz), dtype)
            buf = Buffer(M, dtype)
            out = buf.view((M,), 1, 0)
            assert C.bias_grad(dz, out=out) is out
            close(out, R.bias_grad(dz), dtype)
            buf.check_untouched()
    dz = rng.standard_normal((5, 4)).astype(dtype)
    flat = np.concatenate([dz.ravel(), np.zeros(4, dtype)])
    out = flat[2:6]  # out overlapping dz: goes through a copy
    expected = R.bias_grad(dz)
    close(C.bias_grad(flat[:20].reshape(5, 4), out=out), expected, dtype)


# ---------------------------------------------------------------------------------------
# σ and softmax: every tail length 1..33 on the vector loops
# ---------------------------------------------------------------------------------------

def check_sigmoid(dtype, rng):
    long = (rng.standard_normal(1003) * 30).astype(dtype)  # full vectors and a ragged tail
    close(C.sigmoid_forward(long), R.sigmoid_forward(long), dtype)
    for n in range(1, 34):  # every tail of 16 floats / 8 doubles, two vectors a step
        z = (rng.standard_normal(n) * 30).astype(dtype)
        z[0] = -1000 if n % 2 else 1000
        buf = Buffer(n, dtype)
        h = buf.view((n,), n % 5, 0)
        assert C.sigmoid_forward(z, out=h) is h
        close(h, R.sigmoid_forward(z), dtype)
        buf.check_untouched()
        zc = z.copy()
        C.sigmoid_forward(zc, out=zc)
        close(zc, h, dtype)
        dh = rng.standard_normal(n).astype(dtype)
        close(C.sigmoid_backward(h, dh), R.sigmoid_backward(h, dh), dtype)
    z = (rng.standard_normal((4, 5)) * 30).astype(dtype)
    z[0, :3] = [1000, -1000, 0]
    h = C.sigmoid_forward(z)
    close(h, R.sigmoid_forward(z), dtype)
    dh = rng.standard_normal(z.shape).astype(dtype)
    close(C.sigmoid_backward(h, dh), R.sigmoid_backward(h, dh), dtype)
    hc = h.copy()
    close(C.sigmoid_backward(hc, dh, out=hc), R.sigmoid_backward(h, dh), dtype)
    for shape in [(), (0,), (3, 0)]:
        e = rng.standard_normal(shape).astype(dtype)
        close(C.sigmoid_forward(e), R.sigmoid_forward(e), dtype)
        close(C.sigmoid_backward(e, e), R.sigmoid_backward(e, e), dtype)


def check_affine_sigmoid_tails(dtype, rng):
    """affine_sigmoid_forward with M = 1..33 outputs on each layout: the batch-1 loop,
    scipy's gemm then σ over N·M, the 'N','N' layout (σ on the transposed blocks and their
    ragged edges), NumPy's matmul with b added by rows, and through the transposing pass."""
    default = C._tuning()
    layouts = [
        ((1, 2), {}),
        ((17,), {"affine_nn": 0}),
        ((2, 40), {"numpy_matmul": 0, "affine_transposed": True}),
        ((2, 40), {"numpy_matmul": 0, "affine_transposed": False}),
    ]
    try:
        for batches, tuning in layouts:
            C._tuning(**tuning)
            for M in range(1, 34):
                for N in batches:
                    D = 3 + M % 4
                    x = rng.standard_normal((N, D)).astype(dtype)
                    W = (rng.standard_normal((M, D)) * 10).astype(dtype)
                    b = rng.standard_normal(M).astype(dtype)
                    close(C.affine_sigmoid_forward(x, W, b),
                          R.affine_sigmoid_forward(x, W, b), dtype)
            C._tuning(**default)
    finally:
        C._tuning(**default)


def check_softmax(dtype, rng):
    for K in range(1, 34):  # e^x's tail: every length
        for N in (1, 3):
            z = (rng.standard_normal((N, K)) * 10).astype(dtype)
            z[0, 0] = 1000
            labels = rng.integers(0, K, N)
            loss_c, p_c = C.softmax_cross_entropy_forward(z, labels)
            loss_r, p_r = R.softmax_cross_entropy_forward(z, labels)
            close(loss_c, loss_r, dtype)
            close(p_c, p_r, dtype)
            close(C.softmax_cross_entropy_backward(p_c, labels),
                  R.softmax_cross_entropy_backward(p_r, labels), dtype)
    z = (rng.standard_normal((4, 5)) * 30).astype(dtype)
    z[0, :3] = [1000, -1000, 0]
    labels = np.array([0, 4, 2, 1], np.int32)  # converted to int64
    loss_c, p_c = C.softmax_cross_entropy_forward(z, labels)
    loss_r, p_r = R.softmax_cross_entropy_forward(z, labels)
    close(loss_c, loss_r, dtype)
    expected = R.softmax_cross_entropy_backward(p_r, labels)
    pc = p_c.copy()
    close(C.softmax_cross_entropy_backward(pc, labels, out=pc), expected, dtype)  # aliased
    flat = np.concatenate([p_c.ravel(), np.zeros(1, dtype)])
    shifted = flat[1:].reshape(4, 5)
    flat[:20] = p_c.ravel()
    close(C.softmax_cross_entropy_backward(flat[:20].reshape(4, 5), labels, out=shifted),
          expected, dtype)


# ---------------------------------------------------------------------------------------
# Squared error
# ---------------------------------------------------------------------------------------

def check_squared_error(dtype, rng):
    for shape in [(), (0,), (0, 3), (3, 0), (1,), (5,), (4, 7), (2, 3, 4), (1000,), (17, 65)]:
        y = rng.standard_normal(shape).astype(dtype)
        t = rng.standard_normal(shape).astype(dtype)
        np.testing.assert_allclose(C.squared_error_forward(y, t), R.squared_error_forward(y, t),
                                   rtol=1e-6 if dtype == np.float32 else 1e-12)
        assert isinstance(C.squared_error_forward(y, t), float)
        expected = R.squared_error_backward(y, t, 0.25)
        close(C.squared_error_backward(y, t, 0.25), expected, dtype)
        size = y.size
        buf = Buffer(size, dtype)
        out = buf.view(shape, 3, 0)
        assert C.squared_error_backward(y, t, 0.25, out=out) is out
        close(out, expected, dtype)
        buf.check_untouched()
        yc, tc = y.copy(), t.copy()
        close(C.squared_error_backward(yc, t, 0.25, out=yc), expected, dtype)  # out is y
        close(C.squared_error_backward(y, tc, 0.25, out=tc), expected, dtype)  # out is t
        if size and shape:
            for sy, so in ((1, 0), (0, 1)):  # out one element before / after y
                flat = np.zeros(size + 1, dtype)
                ys = flat[sy:sy + size].reshape(shape)
                ys[...] = y
                os_ = flat[so:so + size].reshape(shape)
                close(C.squared_error_backward(ys, t, 0.25, out=os_), expected, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    y = np.ones((2, 3), dtype)
    for call, what in [
        (lambda: C.squared_error_forward(y, np.ones((3, 2), dtype)), "forward shape"),
        (lambda: C.squared_error_forward(y, np.ones((2, 3), other)), "forward dtype"),
        (lambda: C.squared_error_forward(y, [[1.0] * 3] * 2), "forward non-array t"),
        (lambda: C.squared_error_forward(1.0, y), "forward non-array y"),
        (lambda: C.squared_error_backward(y, np.ones(6, dtype), 1.0), "backward shape"),
        (lambda: C.squared_error_backward(y, np.ones((2, 3), other), 1.0), "backward dtype"),
        (lambda: C.squared_error_backward(y, None, 1.0), "backward non-array"),
        (lambda: C.squared_error_backward(y, y, 1.0, out=np.empty((3, 2), dtype)), "out shape"),
        (lambda: C.squared_error_backward(y, y, 1.0, out=np.empty((2, 3), other)), "out dtype"),
        (lambda: C.squared_error_backward(y, y, 1.0, out=np.empty((2, 6), dtype)[:, ::2]),
         "out non-contiguous"),
        (lambda: C.squared_error_forward(np.ones((3, 2), dtype).T, y), "y non-contiguous"),
        (lambda: C.squared_error_forward(np.ones((2, 3), np.int64), np.ones((2, 3), np.int64)),
         "integer dtype"),
    ]:
        raises(call, what=what)


# ---------------------------------------------------------------------------------------
# SGD and Adam: the aligned vector loop from every offset within a cache line
# ---------------------------------------------------------------------------------------

def _sgd_case(dtype, rng, shape, offset, momentum):
    """W cut at ``offset`` elements past a cache line (velocity and dW at other offsets),
    with reference copies of W and the velocity."""
    n = int(np.prod(shape))
    lines = len(offsets(dtype))
    buf = Buffer(3 * n + 3 * lines, dtype)
    W = buf.view(shape, offset, rng.standard_normal(shape))
    dW = buf.view(shape, n + lines + (offset * 3) % lines, rng.standard_normal(shape))
    v = None
    if momentum:
        v = buf.view(shape, 2 * n + 2 * lines + (offset * 5 + 1) % lines,
                     rng.standard_normal(shape))
    return buf, W, dW, v, W.copy(), None if v is None else v.copy()


def check_sgd_aligned(dtype, rng):
    for n in SGD_SIZES:
        for offset in offsets(dtype):
            for momentum, wd in ((0.0, 0.0), (0.9, 0.01)):
                buf, W, dW, v, Wr, vr = _sgd_case(dtype, rng, (n,), offset, momentum)
                C.sgd_update(W, dW, 0.1, momentum, v, wd)
                R.sgd_update(Wr, dW, 0.1, momentum, vr, wd)
                close(W, Wr, dtype)
                if v is not None:
                    close(v, vr, dtype)
                buf.check_untouched()
                # sgd_outer_update: every row of W (2 or 3 rows of n) at this offset; N = 1
                # is the rank-1 loop, N = 3 builds each row then takes the aligned SGD loop.
                for N in (1, 3):
                    M = 2 + N % 2
                    buf, W, _, v, Wr, vr = _sgd_case(dtype, rng, (M, n), offset, momentum)
                    dz = rng.standard_normal((N, M)).astype(dtype)
                    x = rng.standard_normal((N, n)).astype(dtype)
                    C.sgd_outer_update(W, dz, x, 0.1, momentum, v, wd)
                    R.sgd_outer_update(Wr, dz, x, 0.1, momentum, vr, wd)
                    close(W, Wr, dtype)
                    if v is not None:
                        close(v, vr, dtype)
                    buf.check_untouched()
    # sgd_update_many over W's at every offset, gradients as arrays and (dz, x) pairs.
    for n in SGD_SIZES:
        for momentum, wd in ((0.0, 0.0), (0.9, 0.01)):
            cases, grads = [], []
            for offset in offsets(dtype):
                if offset % 2:
                    buf, W, dW, v, Wr, vr = _sgd_case(dtype, rng, (n,), offset, momentum)
                    grads.append(dW)
                else:
                    buf, W, _, v, Wr, vr = _sgd_case(dtype, rng, (2, n), offset, momentum)
                    N = 1 + offset % 4
                    grads.append((rng.standard_normal((N, 2)).astype(dtype),
                                  rng.standard_normal((N, n)).astype(dtype)))
                cases.append((buf, W, v, Wr, vr))
            C.sgd_update_many([c[1] for c in cases], grads, 0.1, momentum,
                              None if not momentum else [c[2] for c in cases], wd)
            R.sgd_update_many([c[3] for c in cases], grads, 0.1, momentum,
                              None if not momentum else [c[4] for c in cases], wd)
            for buf, W, v, Wr, vr in cases:
                close(W, Wr, dtype)
                if v is not None:
                    close(v, vr, dtype)
                buf.check_untouched()


def check_sgd(dtype, rng):
    z = rng.standard_normal((4, 5)).astype(dtype)
    dh = rng.standard_normal(z.shape).astype(dtype)
    Wc, Wr = z.copy(), z.copy()
    vc, vr = np.zeros_like(z), np.zeros_like(z)
    C.sgd_update(Wc, dh, 0.1, momentum=0.9, velocity=vc, weight_decay=0.01)
    R.sgd_update(Wr, dh, 0.1, momentum=0.9, velocity=vr, weight_decay=0.01)
    close(Wc, Wr, dtype)
    Wc, Wr = z.copy(), z.copy()
    C.sgd_update(Wc, Wc, 0.1, weight_decay=0.01)  # dW is W
    R.sgd_update(Wr, Wr, 0.1, weight_decay=0.01)
    close(Wc, Wr, dtype)
    for shape in [(), (0,), (3, 0)]:
        W = rng.standard_normal(shape).astype(dtype)
        Wc, Wr = W.copy(), W.copy()
        C.sgd_update(Wc, W, 0.1, 0.9, np.zeros_like(W), 0.01)
        R.sgd_update(Wr, W, 0.1, 0.9, np.zeros_like(W), 0.01)
        close(Wc, Wr, dtype)
    Wc = np.empty((0, 3), dtype)
    C.sgd_outer_update(Wc, np.empty((2, 0), dtype), np.ones((2, 3), dtype), 0.1)
    C.sgd_outer_update(np.ones((2, 3), dtype), np.empty((0, 2), dtype), np.empty((0, 3), dtype),
                       0.1)


def check_sgd_many(dtype, rng):
    """sgd_update_many: mixed lists of arrays and (dz, x) pairs, N = 1 and N > 1, with and
    without momentum and weight decay, aliasing, and the error paths (nothing written)."""
    def fresh():
        W1 = rng.standard_normal((5, 7)).astype(dtype)
        W2 = rng.standard_normal((3, 4)).astype(dtype)
        b = rng.standard_normal(5).astype(dtype)
        W3 = rng.standard_normal((4, 4)).astype(dtype)
        return [W1, W2, b, W3]

    for momentum, wd in ((0.0, 0.0), (0.0, 0.01), (0.9, 0.0), (0.9, 0.01)):
        for N in (1, 4):
            params = fresh()
            W1, W2, b, W3 = params
            grads = [
                (rng.standard_normal((N, 5)).astype(dtype), rng.standard_normal((N, 7)).astype(dtype)),
                rng.standard_normal((3, 4)).astype(dtype),
                rng.standard_normal(5).astype(dtype),
                (rng.standard_normal((4, 4)).astype(dtype), W3),  # x is W itself: copied first
            ]
            vels = [rng.standard_normal(p.shape).astype(dtype) for p in params] if momentum else None
            pc, pr = [p.copy() for p in params], [p.copy() for p in params]
            grads_r = list(grads)
            grads_r[3] = (grads[3][0], pr[3])
            grads_c = list(grads)
            grads_c[3] = (grads[3][0], pc[3])
            vc = None if vels is None else [v.copy() for v in vels]
            vr = None if vels is None else [v.copy() for v in vels]
            C.sgd_update_many(pc, grads_c, 0.1, momentum, vc, wd)
            R.sgd_update_many(pr, grads_r, 0.1, momentum, vr, wd)
            for a, r in zip(pc, pr):
                close(a, r, dtype)
            if vels is not None:
                for a, r in zip(vc, vr):
                    close(a, r, dtype)
            # One parameter, given as a pair and as an array.
            for grad in (grads[0], grads[0][0].T @ grads[0][1]):
                Wc, Wr = W1.copy(), W1.copy()
                v1c = None if not momentum else [np.zeros_like(W1)]
                v1r = None if not momentum else [np.zeros_like(W1)]
                C.sgd_update_many([Wc], [grad], 0.1, momentum, v1c, wd)
                R.sgd_update_many([Wr], [grad], 0.1, momentum, v1r, wd)
                close(Wc, Wr, dtype)
    C.sgd_update_many([], [], 0.1)
    # Error paths: each raises before anything is written, a bad entry after good ones too.
    other = np.float64 if dtype == np.float32 else np.float32
    good_pair = (np.ones((2, 5), dtype), np.ones((2, 7), dtype))
    bad_entries = [
        ("pair shape", (np.ones((2, 5), dtype), np.ones((2, 6), dtype))),
        ("pair rows", (np.ones((2, 5), dtype), np.ones((3, 7), dtype))),
        ("pair dtype", (np.ones((2, 5), dtype), np.ones((2, 7), other))),
        ("pair non-array", (np.ones((2, 5), dtype), [[1.0] * 7] * 2)),
        ("pair 1-D dz", (np.ones(5, dtype), np.ones((1, 7), dtype))),
        ("pair None", (None, np.ones((2, 7), dtype))),
        ("three-tuple", (np.ones((2, 5), dtype), np.ones((2, 7), dtype), 1)),
        ("list not tuple", [np.ones((2, 5), dtype), np.ones((2, 7), dtype)]),
        ("array shape", np.ones((7, 5), dtype)),
        ("array dtype", np.ones((5, 7), other)),
    ]
    for momentum in (0.0, 0.9):
        for what, bad in bad_entries:
            params = fresh()
            W1, W2, b, W3 = params
            bad_params = [W2, b, W1]
            before = [p.copy() for p in bad_params]
            grads = [np.ones((3, 4), dtype), np.ones(5, dtype), bad]  # bad for W1
            vels = [np.ones_like(p) for p in bad_params] if momentum else None
            raises(C.sgd_update_many, bad_params, grads, 0.1, momentum, vels, 0.01,
                   what=f"sgd_update_many {what}")
            for p, q in zip(bad_params, before):
                assert (p == q).all(), f"sgd_update_many wrote before raising ({what})"
            if vels is not None:
                assert all((v == 1).all() for v in vels), f"velocity written ({what})"
            # The bad entry after a good pair.
            params2 = [W1.copy(), W1]
            before = [p.copy() for p in params2]
            vels2 = [np.ones_like(W1), np.ones_like(W1)] if momentum else None
            raises(C.sgd_update_many, params2, [good_pair, bad], 0.1, momentum, vels2,
                   what=f"sgd_update_many good pair then {what}")
            for p, q in zip(params2, before):
                assert (p == q).all(), f"sgd_update_many wrote before raising ({what})"
            if vels2 is not None:
                assert all((v == 1).all() for v in vels2), f"velocity written ({what})"
    W1 = np.ones((5, 7), dtype)
    read_only = np.ones((5, 7), dtype)
    read_only.flags.writeable = False
    for call, what in [
        (lambda: C.sgd_update_many([W1], [good_pair, good_pair], 0.1), "length"),
        (lambda: C.sgd_update_many([W1], [good_pair], 0.1, 0.9, None), "momentum without v"),
        (lambda: C.sgd_update_many([W1], [good_pair], 0.1, 0.9, [W1]), "velocity is W"),
        (lambda: C.sgd_update_many([W1], [good_pair], 0.1, 0.9, []), "velocities length"),
        (lambda: C.sgd_update_many([read_only], [good_pair], 0.1), "read-only W"),
        (lambda: C.sgd_update_many([W1.ravel()], [good_pair], 0.1), "pair for a 1-D W"),
        (lambda: C.sgd_update_many([np.ones((7, 5), dtype).T], [good_pair], 0.1), "W transposed"),
    ]:
        raises(call, what=f"sgd_update_many {what}")
    assert (W1 == 1).all()


def check_adam(dtype, rng):
    for shape in [(4, 5), (1003,), (0,)]:
        W = rng.standard_normal(shape).astype(dtype)
        dW = rng.standard_normal(shape).astype(dtype)
        Wc, Wr = W.copy(), W.copy()
        mc, mr, vc, vr = (np.zeros_like(W) for _ in range(4))
        C.adam_update(Wc, dW, mc, vc, 1e-3, 0.9, 0.999, 1e-8, 1)
        R.adam_update(Wr, dW, mr, vr, 1e-3, 0.9, 0.999, 1e-8, 1)
        close(Wc, Wr, dtype)
        close(mc, mr, dtype)
        close(vc, vr, dtype)


def check_errors(dtype, rng):
    """The older kernels' error paths: each must raise before touching memory."""
    x = np.ones((3, 4), dtype)
    W = np.ones((5, 4), dtype)
    b = np.ones(5, dtype)
    z = np.ones((4, 5), dtype)
    h = np.full((4, 5), 0.5, dtype)
    bad = [
        lambda: C.affine_forward(x, W[:, :-1], b),
        lambda: C.affine_forward(np.ones((2, 3), np.int64), np.ones((4, 3)), np.ones(4)),
        lambda: C.affine_forward(np.ones((3, 2)).T, np.ones((4, 3)), np.ones(4)),
        lambda: C.affine_forward(x, W, b, out=np.empty((3, 4), dtype)),
        lambda: C.sigmoid_backward(h, h[:, :-1].copy()),
        lambda: C.outer_grad(np.ones((2, 3), dtype), np.ones((3, 3), dtype)),
        lambda: C.bias_grad(np.ones((2, 3), dtype), out=np.empty(4, dtype)),
        lambda: C.softmax_cross_entropy_forward(z, np.array([0, 9, 2, 1])),
        lambda: C.softmax_cross_entropy_forward(z, np.array([0, -1, 2, 1])),
        lambda: C.softmax_cross_entropy_forward(np.empty((0, 5), dtype), np.array([], np.int64)),
        lambda: C.softmax_cross_entropy_backward(h, np.array([0.0, 1, 2, 3])),
        lambda: C.sgd_outer_update(np.ones((3, 4), dtype), np.ones((2, 3), dtype),
                                   np.ones((2, 5), dtype), 0.1),
        lambda: C.sgd_update(np.ones(4, dtype), np.ones(5, dtype), 0.1),
        lambda: C.sgd_update(np.ones(4, dtype), np.ones(4, dtype), 0.1, 0.9, None),
        lambda: C.adam_update(np.ones(4, dtype), np.ones(4, dtype), np.ones(4, dtype),
                              np.ones(4, dtype), 1e-3, 0.9, 0.999, 1e-8, 0),
    ]
    for i, call in enumerate(bad):
        raises(call, what=f"check_errors case {i}")


FAMILIES = (check_products, check_bias_grad, check_sigmoid, check_affine_sigmoid_tails,
            check_softmax, check_squared_error, check_sgd, check_sgd_aligned, check_sgd_many,
            check_adam, check_errors)


def run_once(dtype, rng):
    for family in FAMILIES:
        family(dtype, rng)


def main():
    rng = np.random.default_rng(0)
    default = C._tuning()
    try:
        # Small calls keep the GIL, large ones release it: every call one way, then the other.
        for nogil_min, gil in ((0, "released"), (2**62, "kept")):
            C._tuning(nogil_min=nogil_min)
            seen = set()
            for isa in ("base", "avx2", "avx512"):
                got = C._select_isa(isa)
                if got in seen:  # the CPU (or valgrind) has no wider ISA
                    break
                seen.add(got)
                for dtype in (np.float32, np.float64):
                    run_once(dtype, rng)
                print(f"kernels ran clean on ISA {got}, GIL {gil}", flush=True)
    finally:
        C._select_isa()
        C._tuning(**default)
    print("memcheck_kernels: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
