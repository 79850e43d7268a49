"""fastgrad.compile against NumPy by hand and eager fastgrad, on the standard workloads.

    python benchmarks/test_compile_bench.py            # the table (ratios per round, interleaved)
    python benchmarks/test_compile_bench.py --threads 1
    pytest benchmarks/test_compile_bench.py            # gradients checked, a short run

Targets (issue 8): W1 step ≤ 0.2 × NumPy by hand; W4 step ≤ 0.4 ×; S1 ≤ 2 µs per
gradient; S2 ≤ 50 ns per op; trace + plan of the W1 step ≤ 50 ms. Each round times every
implementation in a fresh random order; the ratios are per round (MEASURING.md).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np

from fastgrad.bench import impls, workloads


def _time(fn, k):
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k


def interleaved(fns, rounds=15, min_time=0.01, seed=0):
    """{name: [per-round median seconds]} with a fresh random order each round."""
    rng = random.Random(seed)
    ks = {}
    for name, fn in fns.items():
        fn()
        k = 1
        while _time(fn, k) * k < min_time / 5:
            k *= 2
        ks[name] = k
    times = {name: [] for name in fns}
    for _ in range(rounds):
        order = list(fns)
        rng.shuffle(order)
        for name in order:
            times[name].append(statistics.median(_time(fns[name], ks[name]) for _ in range(5)))
    return times


def ratio(times, a, b):
    r = sorted(x / y for x, y in zip(times[a], times[b]))
    return statistics.median(r), r[0], r[-1]


def check(workload, compiled):
    """Gradients of the replayed program against NumPy by hand."""
    data = workload.make_data()
    ref = impls.create(impls.BASELINE, workload, data.copy()) if hasattr(impls, "create") else None
    if ref is None:  # pragma: no cover
        return
    got = compiled.gradients()
    want = ref.gradients()
    rtol = 1e-9 if workload.dtype == "float64" and workload.kind == "mlp" or workload.kind == "scalar" else 2e-4
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * 1e-2)


def run(names=("W1-f64", "W1-f32", "W4", "S1", "S2"), rounds=15, out=print):
    rows = []
    for name in names:
        w = workloads.get(name)
        data = w.make_data()
        if w.kind == "mlp":
            comp = impls.FastgradCompiledMLP(w, data.copy())
            check(w, impls.FastgradCompiledMLP(w, data.copy()))
        else:
            comp = impls.FastgradCompiledScalar(w, data.copy())
            check(w, impls.FastgradCompiledScalar(w, data.copy()))
        base = impls.create(impls.BASELINE, w, data.copy())
        eager = impls.create("fastgrad-cython", w, data.copy())
        fns = {"numpy": base.step, "compiled": comp.step, "eager": eager.step}
        if w.kind == "scalar":
            fns = {"numpy": base.forward_backward, "compiled": comp.forward_backward,
                   "eager": eager.forward_backward}
        with eager.context():
            times = interleaved(fns, rounds=rounds)
        med = {k: statistics.median(v) for k, v in times.items()}
        r, lo, hi = ratio(times, "compiled", "numpy")
        re, _, _ = ratio(times, "eager", "numpy")
        extra = ""
        if w.kind == "scalar":
            extra = f"  {med['compiled'] * 1e6:.2f} µs/gradient, {med['compiled'] / w.n_ops * 1e9:.1f} ns/op"
        rows.append((name, med, r, lo, hi, re, comp.compile_seconds, extra))
        out(f"{name:7s} numpy {med['numpy'] * 1e6:8.2f} µs  compiled {med['compiled'] * 1e6:8.2f} µs  "
            f"eager {med['eager'] * 1e6:8.2f} µs  compiled/numpy {r:.3f} [{lo:.3f}–{hi:.3f}]  "
            f"eager/numpy {re:.2f}  trace+plan {comp.compile_seconds * 1e3:.1f} ms{extra}")
    return rows


def test_compile_bench_smoke():
    """A short run: gradients equal NumPy by hand, and every workload replays."""
    run(names=("W1-f64", "W4", "S1", "S2"), rounds=2)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="default", choices=("default", "1"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("workloads", nargs="*", default=["W1-f64", "W1-f32", "W4", "S1", "S2"])
    a = ap.parse_args()
    from fastgrad.bench import runner

    with runner.thread_mode(a.threads) as desc:
        print(f"threads: {desc}")
        run(a.workloads, rounds=a.rounds)
