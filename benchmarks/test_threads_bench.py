"""Two threads training two models at once, on two cores: the speedup, honestly measured.

    pytest benchmarks/test_threads_bench.py -s            # prints the table

The same total work (two models × ``STEPS`` SGD steps) runs twice: one thread training
the models one after the other, then two threads training one model each. BLAS is
limited to one thread (threadpoolctl) so the two Python threads are the only source of
parallelism. The compiled kernels release the GIL, the tape (Python) does not: the
speedup is bounded by the share of a step spent inside kernels, so it is near 1 for
small per-example steps and approaches 2 for wide minibatches. No assertion beyond "it
ran and gave the same weights": on a shared machine the figure is whatever it is, and
it is printed with the step times, not hidden.
"""

import os
import threading
import time

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.optim as optim
from fastgrad import nn

STEPS = int(os.environ.get("FASTGRAD_THREAD_BENCH_STEPS", "30"))
WORKLOADS = {
    # name: (layer sizes, batch, dtype) — the shapes of SPEC §7's W1, W2 and W3
    "W1 per-example 784-100-10 b1 f64": ([784, 100, 10], 1, np.float64),
    "W2 minibatch 784-256-10 b64 f32": ([784, 256, 10], 64, np.float32),
    "W3 wide 784-1024-1024-10 b256 f32": ([784, 1024, 1024, 10], 256, np.float32),
}


def _job(sizes, batch, dtype, seed, steps):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    t = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]
    model = nn.MLP(sizes, rng=seed, dtype=dtype)
    opt = optim.SGD(model.parameters(), lr=0.01)

    def run():
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.squared_error(model(x), t)
            loss.backward()
            opt.step()
        return [p.data.copy() for p in model.parameters()]

    return run


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    import scipy.linalg.cython_blas  # noqa: F401  (fastgrad loads it lazily: limit it too)

    return threadpool_limits(limits=1, user_api="blas")


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_two_threads_two_models_speedup(name, record_property):
    sizes, batch, dtype = WORKLOADS[name]
    steps = STEPS if batch > 1 else STEPS * 10
    if os.cpu_count() is not None and os.cpu_count() < 2:
        pytest.skip("needs two cores")
    with _one_blas_thread():
        _job(sizes, batch, dtype, 0, 2)()  # warm-up
        jobs = [_job(sizes, batch, dtype, seed, steps) for seed in (1, 2)]
        start = time.perf_counter()
        serial = [job() for job in jobs]
        t_serial = time.perf_counter() - start

        jobs = [_job(sizes, batch, dtype, seed, steps) for seed in (1, 2)]
        results = [None, None]
        threads = [
            threading.Thread(target=lambda i=i: results.__setitem__(i, jobs[i]())) for i in range(2)
        ]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t_threads = time.perf_counter() - start
    for a, b in zip(serial, results, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)  # same weights as alone
    speedup = t_serial / t_threads
    record_property("speedup", speedup)
    print(
        f"\n{name} [{fg.get_backend()}]: 2 x {steps} steps — one thread {t_serial * 1e3:.0f} ms, "
        f"two threads {t_threads * 1e3:.0f} ms, speedup {speedup:.2f}x "
        f"({t_serial / (2 * steps) * 1e6:.0f} µs/step alone)"
    )


def test_machine_baseline_numpy_matmul_in_two_threads(record_property):
    """What two threads can gain on this machine right now: NumPy's GIL-free matmul.

    Read the fastgrad figures against this one: on a loaded machine (load average above
    the core count) neither gets near 2x.
    """
    a = np.random.default_rng(0).random((512, 512)).astype(np.float32)

    def job():
        for _ in range(40):
            a @ a

    with _one_blas_thread():
        job()
        start = time.perf_counter()
        job()
        job()
        t_serial = time.perf_counter() - start
        threads = [threading.Thread(target=job) for _ in range(2)]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t_threads = time.perf_counter() - start
    speedup = t_serial / t_threads
    record_property("speedup", speedup)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nbaseline NumPy matmul: speedup {speedup:.2f}x with 2 threads "
        f"(load average {load:.1f} on {os.cpu_count()} cores)"
    )
