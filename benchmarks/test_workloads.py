"""The standard workloads (SPEC §7) for every implementation: forward, fwd+bwd, step.

One group per workload and phase, so pytest-benchmark's table compares the
implementations side by side:

    pytest benchmarks/test_workloads.py --benchmark-only
    pytest benchmarks/test_workloads.py --benchmark-only -k "W2 and step"

pytest-benchmark times one test after another; for ratios measured in interleaved
rounds (steadier on a shared machine) use ``fastgrad bench``.
"""

import pytest

from fastgrad.bench import impls, runner, workloads

IMPLS = list(impls.IMPLS)  # numpy, numpy-plain, fastgrad-*, torch, autograd, jax, jax-jit


@pytest.mark.parametrize("name", IMPLS)
@pytest.mark.parametrize("phase", runner.PHASES)
@pytest.mark.parametrize("workload", workloads.STANDARD, ids=lambda w: w.name)
def test_workload(benchmark, make_impl, bench_run, bench_threads, workload, phase, name):
    impl = make_impl(name, workload)
    benchmark.group = f"{workload.name} {phase}: {workload.describe()}"
    flops = workload.flops()
    bench_run(
        benchmark,
        impl,
        impl.phases()[phase],
        suite="workloads",
        workload=workload.name,
        family=workload.family,
        impl=name,
        phase=phase,
        dtype=workload.dtype,
        flops={"forward": flops["forward"], "fwd+bwd": flops["step"], "step": flops["step"]}[phase],
        n_ops=workload.n_ops if workload.kind == "scalar" else None,
        grad_error=impl.grad_error,
        compile_s=impl.compile_seconds,
        threads=bench_threads,
    )
