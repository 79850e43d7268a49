"""The lecture's cost claims, measured rather than assumed.

- "the backward pass is about as expensive as two forward passes": backward/forward
  time per workload and implementation, forward and fwd+bwd timed in interleaved rounds
  (``bwd_over_fwd`` in extra_info), beside the FLOP ratio the lecture's count predicts
  (1.0 for W1/W2, 1.57 for W3, 1.9 for W4: MEASURING.md).
- "the cost is linear in the number of layers": a depth sweep at width 256.
- "quadratic in the number of units per layer": a width sweep with square layers.
  Each sweep's points are timed in interleaved rounds within one test per
  implementation (``points`` in extra_info), so load drifts do not bend the curve.
- GFLOP/s against the machine's matmul ceiling (NumPy's sgemm), and the compiled kernels
  at W3's shapes beside the same matmul.

Nothing here asserts a speed; ``scripts/bench_report.py`` fits the sweeps and writes the
tables.
"""

import contextlib

import numpy as np
import pytest

from fastgrad.bench import impls, runner, workloads

COST_IMPLS = [
    "numpy",
    "fastgrad-cython",
    "fastgrad-reference",
    "fastgrad-compiled",
    "torch",
    "jax-jit",
]
SWEEP_IMPLS = ["numpy", "fastgrad-cython", "fastgrad-reference", "fastgrad-compiled", "torch"]
MLP = [w for w in workloads.STANDARD if w.kind == "mlp"]


@pytest.mark.parametrize("name", COST_IMPLS)
@pytest.mark.parametrize("workload", MLP, ids=lambda w: w.name)
def test_backward_over_forward(benchmark, make_impl, bench_run, bench_threads, workload, name):
    impl = make_impl(name, workload)
    times = runner.measure({name: impl}, rounds=7, min_time=0.01, phases=("forward", "fwd+bwd"))
    row = runner.summarise(workload, times)[name]
    flops = workload.flops()
    benchmark.group = "backward / forward (fwd+bwd timed; ratio in extra_info)"
    bench_run(
        benchmark,
        impl,
        impl.forward_backward,
        suite="bwd_over_fwd",
        workload=workload.name,
        impl=name,
        phase="fwd+bwd",
        forward_s=row["median_s"]["forward"],
        fwd_bwd_s=row["median_s"]["fwd+bwd"],
        bwd_over_fwd=row["bwd_over_fwd"],
        flop_bwd_over_fwd=flops["backward"] / flops["forward"],
        threads=bench_threads,
    )


def _sweep(benchmark, make_impl, bench_run, threads, name, suite, points):
    """Time the step at every sweep point in interleaved rounds (one test per impl)."""
    chosen = {x: make_impl(name, w) for x, w in points}
    times = runner.measure(chosen, rounds=9, min_time=0.02, phases=("step",))
    medians = {x: sorted(t["step"])[len(t["step"]) // 2] for x, t in times.items()}
    x_mid, w_mid = points[len(points) // 2]
    benchmark.group = f"{suite} sweep (step at {suite} {x_mid} timed; sweep in extra_info)"
    bench_run(
        benchmark,
        chosen[x_mid],
        chosen[x_mid].step,
        suite=suite,
        impl=name,
        phase="step",
        points={str(x): {"step_s": medians[x], "flops": w.flops()["step"]} for x, w in points},
        threads=threads,
    )


@pytest.mark.parametrize("name", SWEEP_IMPLS)
def test_depth_sweep(benchmark, make_impl, bench_run, bench_threads, name):
    points = [(len(w.sizes) - 2, w) for w in workloads.depth_sweep()]
    _sweep(benchmark, make_impl, bench_run, bench_threads, name, "depth", points)


@pytest.mark.parametrize("name", SWEEP_IMPLS)
def test_width_sweep(benchmark, make_impl, bench_run, bench_threads, name):
    points = [(w.sizes[1], w) for w in workloads.width_sweep()]
    _sweep(benchmark, make_impl, bench_run, bench_threads, name, "width", points)


# -- the matmul ceiling, and the kernels at W3's shapes -----------------------------------


class _Call:
    """Stands in for an Impl where bench_run times a bare callable: it needs only a
    context to enter around each batch of calls (nothing to select here)."""

    compile_seconds = 0.0

    def context(self):
        return contextlib.nullcontext()


@pytest.mark.parametrize("n", [256, 512, 1024])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_ceiling(benchmark, bench_run, bench_threads, dtype, n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    benchmark.group = "matmul ceiling: NumPy (OpenBLAS) n×n·n×n"
    bench_run(
        benchmark,
        _Call(),
        lambda: np.matmul(a, b, out=out),
        suite="ceiling",
        impl="numpy.matmul",
        dtype=dtype,
        n=n,
        flops=2 * n**3,
        threads=bench_threads,
    )


def _kernel_cases():
    """W3's second layer: x (256, 1024), W (1024, 1024), float32."""
    B, D, M = 256, 1024, 1024
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, D)).astype(np.float32)
    W = rng.standard_normal((M, D)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    dz = rng.standard_normal((B, M)).astype(np.float32)
    flops = 2 * B * D * M
    return {
        "affine_forward": (
            (x, W, b),
            (B, M),
            flops,
            lambda o: (np.matmul(x, W.T, out=o), o.__iadd__(b)),
        ),
        "outer_grad": ((dz, x), (M, D), flops, lambda o: np.matmul(dz.T, x, out=o)),
        "transpose_matvec": ((W, dz), (B, D), flops, lambda o: np.matmul(dz, W, out=o)),
    }


@pytest.mark.parametrize("backend", ["numpy", "cython", "reference"])
@pytest.mark.parametrize("kernel", ["affine_forward", "outer_grad", "transpose_matvec"])
def test_kernels_at_w3_shapes(benchmark, bench_run, bench_threads, kernel, backend):
    args, shape, flops, numpy_fn = _kernel_cases()[kernel]
    out = np.empty(shape, np.float32)
    if backend == "numpy":
        fn = lambda: numpy_fn(out)
    else:
        reason = impls.available(f"fastgrad-{backend}")
        if reason:
            pytest.skip(reason)
        import importlib

        module = importlib.import_module(f"fastgrad.backends.{backend}")
        if not hasattr(module, kernel):
            pytest.skip(f"fastgrad.backends.{backend} has no {kernel}")
        kernel_fn = getattr(module, kernel)
        fn = lambda: kernel_fn(*args, out=out)
    benchmark.group = "kernels at W3 shapes (256×1024 · 1024×1024, float32)"
    bench_run(
        benchmark,
        _Call(),
        fn,
        suite="kernels",
        kernel=kernel,
        impl=backend,
        flops=flops,
        threads=bench_threads,
    )
