"""Shared fixtures for the pytest-benchmark suites.

    pytest benchmarks/ --benchmark-only                       # library defaults
    pytest benchmarks/ --benchmark-only --bench-threads 1     # single-thread figures
    pytest benchmarks/ --benchmark-only --benchmark-json out.json
    python scripts/bench_report.py out.json > docs/figures.md

Workloads come from ``fastgrad.bench.workloads`` (the same definitions as
``fastgrad bench``); every implementation's gradients are checked against NumPy by hand
once, before its first timing. Peers that are not installed are skipped with the reason.
"""

import time
from pathlib import Path

import pytest

from fastgrad.bench import impls, runner

# The peers' implementations (PyTorch, autograd, JAX) live in benchmarks/peers/.
_PEERS = impls.load_peers(Path(__file__).parent / "peers")
if _PEERS is not None:
    raise RuntimeError(f"benchmarks/peers: {_PEERS}")

# Each timed test spends about this long (seconds): small calls get many iterations.
ROUND_TARGET = 0.002  # one round (iterations × call)
TEST_BUDGET = 0.2  # all rounds of one test
MIN_ROUNDS, MAX_ROUNDS = 5, 50

PEER_MODULES = {"torch": "torch", "autograd": "autograd", "jax": "jax", "jax-jit": "jax"}


def pytest_addoption(parser):
    parser.addoption(
        "--bench-threads",
        default="default",
        choices=("default", "1"),
        help="fastgrad benchmarks: library default threads, or one thread "
        "(threadpoolctl, torch.set_num_threads(1), the process pinned to one CPU)",
    )


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    mode = request.config.getoption("--bench-threads")
    with runner.thread_mode(mode) as description:
        yield description


_cache = {}


@pytest.fixture(scope="session")
def make_impl():
    """make_impl(name, workload): a gradient-checked implementation, or a skip with reason."""

    def make(name, workload):
        key = (name, workload.name)
        if key not in _cache:
            module = PEER_MODULES.get(name)
            if module:
                pytest.importorskip(module, reason=f"{name} is not installed (optional peer)")
            reason = impls.available(name, workload)
            if reason:
                _cache[key] = reason
            else:
                impl = impls.create(name, workload)
                try:
                    impl.grad_error = impls.check_gradients(impl)
                except impls.GradientMismatch as exc:
                    pytest.fail(str(exc))
                _cache[key] = impl
        value = _cache[key]
        if isinstance(value, str):
            pytest.skip(value)
        return value

    return make


def plan(fn, context):
    """(rounds, iterations) so that a round takes ~ROUND_TARGET and a test ~TEST_BUDGET."""
    with context:
        fn()
        start = time.perf_counter()
        fn()
        t1 = max(time.perf_counter() - start, 1e-7)
    iterations = max(1, round(ROUND_TARGET / t1))
    rounds = int(TEST_BUDGET / (iterations * t1))
    return max(MIN_ROUNDS, min(MAX_ROUNDS, rounds)), iterations


def run_benchmark(benchmark, implementation, fn, /, **extra):
    """Time fn with pedantic rounds inside the implementation's context."""
    rounds, iterations = plan(fn, implementation.context())
    benchmark.extra_info.update(extra)
    with implementation.context():
        return benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=1)


@pytest.fixture
def bench_run():
    """bench_run(benchmark, impl, fn, **extra_info): pedantic timing sized to the call."""
    return run_benchmark


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pyproject's addopts carry --benchmark-disable so the normal test run times nothing;
    # running this directory means timing, so `pytest benchmarks/ --benchmark-only` works.
    config.option.benchmark_enable = True
