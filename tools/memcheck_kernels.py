"""Run every compiled kernel once on each code path, for valgrind or AddressSanitizer.

Not a test (it is slow under valgrind): the command is in docs/guarantees.md::

    PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=99 \\
        --suppressions=tools/valgrind-python.supp python tools/memcheck_kernels.py

Each kernel runs in float32 and float64, on batch 1 (the typed loops, every ISA variant
the CPU has) and batch > 1 (BLAS), on empty arrays, with ``out=`` (fresh, aliased and
overlapping), and on the error paths. The results are checked against the reference
backend, so a read past a buffer that happens not to fault still fails here.
"""

import sys

import numpy as np

from fastgrad.backends import _cykernels as C
from fastgrad.backends import reference as R


def close(a, b, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def run_once(dtype, rng):
    # ... and (32, 64, 64), (17, 50, 70): the 'N','N' layout on a transposed x, ragged blocks.
    for N, D, M in [(1, 7, 5), (1, 33, 17), (3, 7, 5), (0, 4, 3), (2, 0, 3), (2, 4, 0),
                    (32, 64, 64), (17, 50, 70)]:
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
        for momentum, velocity in ((0.0, None), (0.9, np.zeros((M, D), dtype))):
            Wc, Wr = W.copy(), W.copy()
            vr = None if velocity is None else velocity.copy()
            C.sgd_outer_update(Wc, dz, x, 0.1, momentum, velocity, 0.01)
            R.sgd_outer_update(Wr, dz, x, 0.1, momentum, vr, 0.01)
            close(Wc, Wr, dtype)
        if N == M and D == M:  # out aliasing an input
            close(C.affine_forward(x, W, b, out=x.copy()), R.affine_forward(x, W, b), dtype)
    long = (rng.standard_normal(1003) * 30).astype(dtype)  # full vectors and a ragged tail
    close(C.sigmoid_forward(long), R.sigmoid_forward(long), dtype)
    z = (rng.standard_normal((4, 5)) * 30).astype(dtype)
    z[0, :3] = [1000, -1000, 0]
    h = C.sigmoid_forward(z)
    close(h, R.sigmoid_forward(z), dtype)
    dh = rng.standard_normal(z.shape).astype(dtype)
    close(C.sigmoid_backward(h, dh), R.sigmoid_backward(h, dh), dtype)
    zc = z.copy()
    C.sigmoid_forward(zc, out=zc)  # in place
    close(zc, h, dtype)
    labels = np.array([0, 4, 2, 1])
    loss_c, p_c = C.softmax_cross_entropy_forward(z, labels)
    loss_r, p_r = R.softmax_cross_entropy_forward(z, labels)
    close(loss_c, loss_r, dtype)
    close(p_c, p_r, dtype)
    close(
        C.softmax_cross_entropy_backward(p_c, labels),
        R.softmax_cross_entropy_backward(p_r, labels),
        dtype,
    )
    Wc, Wr = z.copy(), z.copy()
    vc, vr = np.zeros_like(z), np.zeros_like(z)
    C.sgd_update(Wc, dh, 0.1, momentum=0.9, velocity=vc, weight_decay=0.01)
    R.sgd_update(Wr, dh, 0.1, momentum=0.9, velocity=vr, weight_decay=0.01)
    close(Wc, Wr, dtype)
    mc, mr, vc, vr = (np.zeros_like(z) for _ in range(4))
    C.adam_update(Wc, dh, mc, vc, 1e-3, 0.9, 0.999, 1e-8, 1)
    R.adam_update(Wr, dh, mr, vr, 1e-3, 0.9, 0.999, 1e-8, 1)
    close(Wc, Wr, dtype)
    # Error paths: each must raise before touching memory.
    bad = [
        lambda: C.affine_forward(x, W[:, :-1] if D else W, b),
        lambda: C.affine_forward(np.ones((2, 3), np.int64), np.ones((4, 3)), np.ones(4)),
        lambda: C.affine_forward(np.ones((3, 2)).T, np.ones((4, 3)), np.ones(4)),
        lambda: C.sigmoid_backward(h, dh[:, :-1].copy()),
        lambda: C.outer_grad(np.ones((2, 3), dtype), np.ones((3, 3), dtype)),
        lambda: C.bias_grad(np.ones((2, 3), dtype), out=np.empty(4, dtype)),
        lambda: C.softmax_cross_entropy_forward(z, np.array([0, 9, 2, 1])),
        lambda: C.sgd_outer_update(np.ones((3, 4), dtype), np.ones((2, 3), dtype), np.ones((2, 5), dtype), 0.1),
    ]
    for call in bad:
        try:
            call()
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError("a bad call did not raise")


def main():
    rng = np.random.default_rng(0)
    isas = ["base", "avx2", "avx512"]
    for isa in isas:
        got = C._select_isa(isa)
        for dtype in (np.float32, np.float64):
            run_once(dtype, rng)
        print(f"kernels ran clean on ISA {got}", flush=True)
        if got != isa:
            break
    C._select_isa()
    print("memcheck_kernels: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
