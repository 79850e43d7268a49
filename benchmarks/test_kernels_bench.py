"""Kernels at the standard workloads' layer shapes: cython vs reference vs NumPy by hand.

    pytest benchmarks/test_kernels_bench.py --benchmark-only                   # per call
    pytest benchmarks/test_kernels_bench.py --benchmark-only --bench-threads 1
    python benchmarks/test_kernels_bench.py [--threads 1] [--rounds 21]       # ratio table
    python benchmarks/test_kernels_bench.py --threads 1 --sigmoid             # σ by size
    python benchmarks/test_kernels_bench.py --threads 1 --baseline OLD.so     # before/after

pytest-benchmark groups the three implementations of one kernel at one shape side by
side. The ratio table (docs/kernels.md) follows MEASURING.md: every round visits the
implementations in a fresh random order, each timed by ``perf_counter`` over enough
calls; the ratio is per round (median time / NumPy's median time in that round), reported
as the median and range over rounds. Every implementation is first checked equal to
NumPy by hand. The GFLOP/s rows compare the matrix kernels at W3 shapes with NumPy's own
matmul of the same product, same threads. ``--baseline`` adds another build of
``_cykernels`` (e.g. an older commit's, built in a ``git worktree``) as a fourth
implementation, "baseline", and a cython/baseline column: before and after, side by side.
"""

import argparse
import contextlib
import importlib
import importlib.machinery
import importlib.util
import random
import time

import numpy as np
import pytest

from fastgrad.backends import reference
from fastgrad.bench import workloads

try:
    cython = importlib.import_module("fastgrad.backends._cykernels")
except ImportError:
    cython = None

WORKLOADS = ("W1-f64", "W1-f32", "W2", "W3", "W4")
SIGMOID_SIZES = (64, 2048, 16384, 262144)  # 2048: a 32 x 64 layer
baseline = None  # another build of _cykernels, set by --baseline
LR = 0.01


# --- NumPy by hand: what a user writes without fastgrad ----------------------------------


def _np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_softmax_ce_forward(z, t):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(t)), t]).mean()), p


def _np_softmax_ce_backward(p, t):
    g = p.copy()
    g[np.arange(len(t)), t] -= 1
    return g / len(t)


def _np_sgd(W, dW, lr):
    W -= lr * dW


NUMPY = {
    "affine_forward": lambda x, W, b: x @ W.T + b,
    "affine_sigmoid_forward": lambda x, W, b: _np_sigmoid(x @ W.T + b),
    "sigmoid_forward": _np_sigmoid,
    "sigmoid_backward": lambda h, dh: dh * h * (1 - h),
    "outer_grad": lambda dz, x: dz.T @ x,
    "transpose_matvec": lambda W, dz: dz @ W,
    "bias_grad": lambda dz: dz.sum(axis=0),
    "softmax_cross_entropy_forward": _np_softmax_ce_forward,
    "softmax_cross_entropy_backward": _np_softmax_ce_backward,
    "sgd_update": _np_sgd,
}


def implementations():
    impls = {"numpy": NUMPY, "reference": reference}
    if cython is not None:
        impls["cython"] = cython
    if baseline is not None:
        impls["baseline"] = baseline
    return impls


def load_baseline(path):
    """Import a _cykernels extension built elsewhere, beside this one (another module name)."""
    name = "fastgrad_baseline._cykernels"  # the last part names PyInit__cykernels
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# --- cases: every kernel at every layer of a workload ---------------------------------


def layer_cases(name):
    """(case id, kernel, make_args) for each kernel at each layer of workload ``name``."""
    w = workloads.get(name)
    dtype = np.dtype(w.dtype)
    rng = np.random.default_rng(0)
    B = w.batch
    cases = []
    for fan_in, fan_out in dict.fromkeys(zip(w.sizes[:-1], w.sizes[1:], strict=True)):
        shape = f"{B}x{fan_in}->{fan_out}"  # each layer shape once (W4 repeats 64->64)

        def arrays(D=fan_in, M=fan_out):
            x = rng.standard_normal((B, D)).astype(dtype)
            W = (rng.standard_normal((M, D)) / np.sqrt(D)).astype(dtype)
            b = rng.standard_normal(M).astype(dtype)
            dz = rng.standard_normal((B, M)).astype(dtype)
            h = _np_sigmoid(rng.standard_normal((B, M))).astype(dtype)
            return x, W, b, dz, h

        x, W, b, dz, h = arrays()
        cases += [
            (f"{name}-{shape}", "affine_forward", (x, W, b)),
            (f"{name}-{shape}", "affine_sigmoid_forward", (x, W, b)),
            (f"{name}-{shape}", "outer_grad", (dz, x)),
            (f"{name}-{shape}", "transpose_matvec", (W, dz)),
            (f"{name}-{shape}", "bias_grad", (dz,)),
            (f"{name}-{shape}", "sigmoid_forward", (dz,)),
            (f"{name}-{shape}", "sigmoid_backward", (h, dz)),
            (f"{name}-{shape}", "sgd_update", (W.copy(), W * 1e-3, LR)),
        ]
    K = w.sizes[-1]
    z = rng.standard_normal((B, K)).astype(dtype)
    t = rng.integers(0, K, size=B)
    p = _np_softmax_ce_forward(z, t)[1].astype(dtype)
    cases += [
        (f"{name}-{B}x{K}", "softmax_cross_entropy_forward", (z, t)),
        (f"{name}-{B}x{K}", "softmax_cross_entropy_backward", (p, t)),
    ]
    return cases


def all_cases():
    return [case for name in WORKLOADS for case in layer_cases(name)]


def sigmoid_cases():
    """(case id, z) for sigmoid_forward by size: the vector exp against NumPy's."""
    rng = np.random.default_rng(2)
    return [(f"sigmoid-{np.dtype(dtype).name}-{n}", (4 * rng.standard_normal(n)).astype(dtype))
            for dtype in (np.float32, np.float64) for n in SIGMOID_SIZES]


def check_equal(kernel, args):
    """Every implementation gives NumPy-by-hand's answer before it is timed."""
    rtol = 1e-9 if args[0].dtype == np.float64 else 2e-4
    if kernel == "sgd_update":
        expected = args[0] - LR * args[1]
        for impl in implementations().values():
            W = args[0].copy()
            call(impl, "sgd_update")(W, args[1], LR)
            np.testing.assert_allclose(W, expected, rtol=rtol, atol=rtol)
        return
    expected = NUMPY[kernel](*args)
    for impl in implementations().values():
        got = call(impl, kernel)(*args)
        pairs = zip(got, expected, strict=True) if isinstance(got, tuple) else [(got, expected)]
        for a, e in pairs:
            a, e = np.asarray(a), np.asarray(e)
            scale = max(1.0, float(np.max(np.abs(e))))
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale)


def call(impl, kernel):
    fn = impl[kernel] if isinstance(impl, dict) else getattr(impl, kernel)
    return fn


CASES = all_cases()


@pytest.mark.parametrize("impl_name", ["cython", "reference", "numpy"])
@pytest.mark.parametrize(
    "case_id,kernel,args", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_kernel(benchmark, impl_name, case_id, kernel, args):
    impls = implementations()
    if impl_name not in impls:
        pytest.skip("compiled kernels not built")
    check_equal(kernel, args)
    benchmark.group = f"{case_id} {kernel}"
    fn = call(impls[impl_name], kernel)
    number = max(1, int(2e-3 / max(_time_once(fn, args), 1e-7)))
    benchmark.pedantic(fn, args=args, rounds=max(5, min(50, int(0.25 / (number * 1e-3) + 1))),
                       iterations=number, warmup_rounds=1)


SIGMOID_CASES = sigmoid_cases()


@pytest.mark.parametrize("impl_name", ["cython", "numpy", "np.exp"])
@pytest.mark.parametrize("case_id,z", SIGMOID_CASES, ids=[c[0] for c in SIGMOID_CASES])
def test_sigmoid_by_size(benchmark, impl_name, case_id, z):
    """σ(z) by array size: the compiled kernel, NumPy's four-ufunc σ, and np.exp alone."""
    if impl_name == "cython" and cython is None:
        pytest.skip("compiled kernels not built")
    fn = {"cython": getattr(cython, "sigmoid_forward", None), "numpy": _np_sigmoid,
          "np.exp": np.exp}[impl_name]
    benchmark.group = case_id
    number = max(1, int(2e-3 / max(_time_once(fn, (z,)), 1e-7)))
    benchmark.pedantic(fn, args=(z,), rounds=20, iterations=number, warmup_rounds=1)


def _time_once(fn, args):
    fn(*args)
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


# --- interleaved ratios (the docs' table) -------------------------------------------------


def interleaved(fns, args, rounds=21, round_time=0.02):
    """{name: (median seconds, median ratio to 'numpy', min ratio, max ratio)}."""
    samples = interleaved_samples(fns, args, rounds, round_time)
    return {name: summary(samples, name) for name in samples}


def summary(samples, name, base="numpy"):
    """(median seconds, then the median, min and max of the per-round ratios to ``base``)."""
    ratios = np.array(samples[name]) / np.array(samples[base])
    return (float(np.median(samples[name])), float(np.median(ratios)), float(ratios.min()),
            float(ratios.max()))


def interleaved_samples(fns, args, rounds=21, round_time=0.02):
    """{name: per-round seconds a call}: each round visits every function in a fresh random
    order and takes the median of 5 timings of enough calls."""
    per_call = {name: max(_time_once(fn, args), 1e-7) for name, fn in fns.items()}
    number = {name: max(1, int(round_time / 5 / t)) for name, t in per_call.items()}
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        order = list(fns)
        random.shuffle(order)
        for name in order:
            fn, n = fns[name], number[name]
            times = []
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(n):
                    fn(*args)
                times.append((time.perf_counter() - t) / n)
            samples[name].append(float(np.median(times)))
    return samples


def gflops_cases():
    """The matrix kernels at W3 shapes, each with NumPy's matmul of the same product."""
    w = workloads.get("W3")
    dtype = np.dtype(w.dtype)
    rng = np.random.default_rng(1)
    B = w.batch
    cases = []
    for D, M in [(784, 1024), (1024, 1024)]:
        x = rng.standard_normal((B, D)).astype(dtype)
        W = rng.standard_normal((M, D)).astype(dtype)
        b = rng.standard_normal(M).astype(dtype)
        dz = rng.standard_normal((B, M)).astype(dtype)
        flops = 2 * B * D * M
        shape = f"W3 {B}x{D}->{M}"
        cases += [
            (shape, "affine_forward", (x, W, b), lambda x, W, b: x @ W.T, flops),
            (shape, "outer_grad", (dz, x), lambda dz, x: dz.T @ x, flops),
            (shape, "transpose_matvec", (W, dz), lambda W, dz: dz @ W, flops),
        ]
    return cases


def test_gflops_at_w3(benchmark):
    """cython's matrix kernels reach ≥ 0.9 of NumPy matmul's GFLOP/s (reported, not gated)."""
    if cython is None:
        pytest.skip("compiled kernels not built")
    if benchmark.disabled:
        pytest.skip("timing only with --benchmark-only / --benchmark-enable")
    rows = []
    for shape, kernel, args, matmul, flops in gflops_cases():
        r = interleaved({"numpy": matmul, "cython": getattr(cython, kernel)}, args, rounds=7)
        rows.append((shape, kernel, flops / r["numpy"][0] / 1e9, flops / r["cython"][0] / 1e9,
                     r["cython"][1]))
    benchmark.extra_info["gflops"] = rows
    benchmark.pedantic(lambda: None, rounds=1)
    for row in rows:
        print("{:<22} {:<18} numpy {:7.1f} GFLOP/s  cython {:7.1f} GFLOP/s  time ratio {:.2f}"
              .format(*row))


# --- python benchmarks/test_kernels_bench.py ----------------------------------------------


@contextlib.contextmanager
def _threads(mode):
    if mode != "1":
        yield "default threads"
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield "one thread (threadpoolctl)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", choices=("default", "1"), default="default")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--kernels", default="")
    parser.add_argument("--sigmoid", action="store_true",
                        help="only sigmoid_forward by size, against NumPy's σ and np.exp")
    parser.add_argument("--baseline", metavar="SO",
                        help="another build of _cykernels to time beside this one")
    opts = parser.parse_args(argv)
    global baseline
    if opts.baseline:
        baseline = load_baseline(opts.baseline)
    wanted = set(filter(None, opts.kernels.split(",")))
    with _threads(opts.threads) as threads:
        print(f"# {threads}; ratios are time / NumPy by hand, median [min–max] over "
              f"{opts.rounds} interleaved rounds")
        if opts.sigmoid:
            return sigmoid_table(opts.rounds)
        print(f"{'shape':<24} {'kernel':<31} {'numpy µs':>9} {'cython µs':>10} "
              f"{'cython/np':>16} {'reference/np':>16}"
              + (f" {'baseline µs':>11} {'cython/baseline':>18}" if baseline else ""))
        for name in opts.workloads.split(","):
            for case_id, kernel, args in layer_cases(name):
                if wanted and kernel not in wanted:
                    continue
                check_equal(kernel, args)
                impls = implementations()
                fns = {n: call(impl, kernel) for n, impl in impls.items()}
                samples = interleaved_samples(fns, args, rounds=opts.rounds)
                r = {n: summary(samples, n) for n in samples}
                cy = r.get("cython", (np.nan,) * 4)
                ref = r["reference"]
                line = (f"{case_id:<24} {kernel:<31} {r['numpy'][0] * 1e6:9.2f} "
                        f"{cy[0] * 1e6:10.2f} {cy[1]:5.2f} [{cy[2]:.2f}–{cy[3]:.2f}] "
                        f"{ref[1]:5.2f} [{ref[2]:.2f}–{ref[3]:.2f}]")
                if baseline is not None:
                    _, ratio, low, high = summary(samples, "cython", base="baseline")
                    line += (f" {r['baseline'][0] * 1e6:11.2f} {ratio:7.2f} "
                             f"[{low:.2f}–{high:.2f}]")
                print(line, flush=True)
        if cython is not None and (not wanted or wanted & {"affine_forward", "outer_grad",
                                                           "transpose_matvec"}):
            print()
            for shape, kernel, args, matmul, flops in gflops_cases():
                r = interleaved({"numpy": matmul, "cython": getattr(cython, kernel)}, args,
                                rounds=opts.rounds)
                print(f"{shape:<24} {kernel:<31} numpy matmul {flops / r['numpy'][0] / 1e9:6.1f} "
                      f"GFLOP/s, cython {flops / r['cython'][0] / 1e9:6.1f} GFLOP/s, "
                      f"GFLOP/s ratio {1 / r['cython'][1]:.2f} "
                      f"[{1 / r['cython'][3]:.2f}–{1 / r['cython'][2]:.2f}]", flush=True)


def sigmoid_table(rounds):
    """sigmoid_forward by size: µs a call, and cython's time over NumPy's four-ufunc σ, over
    np.exp alone, and over the baseline build's (per-round ratios, median [min–max])."""
    fns = {"numpy": _np_sigmoid, "np.exp": np.exp}
    for name, impl in (("cython", cython), ("baseline", baseline)):
        if impl is not None:
            fns[name] = impl.sigmoid_forward
    print(f"{'case':<24} " + " ".join(f"{n + ' µs':>11}" for n in fns)
          + "".join(f" {'cython/' + b:>19}" for b in fns if b != "cython"))
    for case_id, z in SIGMOID_CASES:
        check_equal("sigmoid_forward", (z,))
        samples = interleaved_samples(fns, (z,), rounds=rounds)
        line = f"{case_id:<24} " + " ".join(f"{np.median(samples[n]) * 1e6:11.2f}" for n in fns)
        for base in fns:
            if base != "cython" and "cython" in fns:
                _, ratio, low, high = summary(samples, "cython", base=base)
                line += f" {ratio:6.2f} [{low:.2f}–{high:.2f}]"
        print(line, flush=True)


if __name__ == "__main__":
    main()
