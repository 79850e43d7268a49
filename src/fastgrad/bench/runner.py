"""The interleaved-rounds timer behind ``fastgrad bench`` (see MEASURING in docs/performance.md).

Absolute times drift by ±10 % on a shared machine, so every implementation is timed in
the same process, in rounds, each round visiting the (implementation, phase) pairs in a
fresh random order; ratios to NumPy by hand are taken within a round and summarised by
their median and range over the rounds.

    fastgrad bench                         # every workload, every installed peer
    fastgrad bench --workload W2,S1 --repeat 9 --json out.json
    fastgrad bench --threads 1             # single-thread figures (BLAS, torch, pinned CPU)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time

from . import impls as _impls
from . import workloads as _workloads

PHASES = ("forward", "fwd+bwd", "step")
DEFAULT_IMPLS = (
    "numpy",
    "fastgrad-cython",
    "fastgrad-reference",
    "fastgrad-compiled",
    "torch",
    "autograd",
    "jax-jit",
)  # "jax" op by op takes about a second per S2 call: ask for it with --impl jax


# ---------------------------------------------------------------------------------------
# threads


@contextlib.contextmanager
def thread_mode(threads):
    """threads=None: each library's default; threads=1: one BLAS/torch thread, one CPU.

    One CPU (sched_setaffinity, like `taskset -c 0`) is what keeps XLA on one core.
    """
    if threads in (None, "default"):
        yield "default"
        return
    n = int(threads)
    stack = contextlib.ExitStack()
    with stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
        except ImportError:
            pass
        torch = sys.modules.get("torch")
        if torch is None and _impls.available("torch") is None:
            import torch
        if torch is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
        if hasattr(os, "sched_getaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) > n:
                os.sched_setaffinity(0, cpus[:n])
                stack.callback(os.sched_setaffinity, 0, cpus)
        yield f"{n} thread{'s' if n > 1 else ''}"


# ---------------------------------------------------------------------------------------
# timing


def _time_calls(fn, k):
    perf_counter = time.perf_counter
    start = perf_counter()
    for _ in range(k):
        fn()
    return (perf_counter() - start) / k


def _calibrate(impl, fn, min_time):
    """Calls per sample and samples per round so that a round spends about min_time."""
    with impl.context():
        fn()  # warm
        t1 = _time_calls(fn, 1)
        if t1 < 1e-4:
            t1 = _time_calls(fn, max(1, int(1e-3 / max(t1, 1e-7))))
    if t1 * 3 > min_time:  # heavy call: one sample of a few calls per round
        return max(1, round(min_time / t1)), 1
    return max(1, round(min_time / 3 / t1)), 3


def measure(impls, rounds=5, min_time=0.01, phases=PHASES, seed=None):
    """Interleaved rounds over {name: Impl}; returns {name: {phase: [per-round seconds]}}.

    Each round visits every (implementation, phase) pair in a fresh random order and
    records the median of its samples, in seconds per call.
    """
    rng = random.Random(seed)
    plan = {}
    for name, impl in impls.items():
        fns = impl.phases()
        for phase in phases:
            plan[(name, phase)] = (impl, fns[phase], *_calibrate(impl, fns[phase], min_time))
    times = {name: {phase: [] for phase in phases} for name in impls}
    order = list(plan)
    for _ in range(rounds):
        rng.shuffle(order)
        for name, phase in order:
            impl, fn, k, samples = plan[(name, phase)]
            with impl.context():
                values = [_time_calls(fn, k) for _ in range(samples)]
            times[name][phase].append(statistics.median(values))
    return times


def _summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(workload, times, baseline=_impls.BASELINE):
    """Medians, per-round ratios to the baseline, backward/forward and GFLOP/s."""
    flops = workload.flops()
    base = times.get(baseline)
    rows = {}
    for name, by_phase in times.items():
        row = {"median_s": {}, "ratio": {}, "rounds_s": by_phase}
        for phase, values in by_phase.items():
            row["median_s"][phase] = statistics.median(values)
            if base is not None:
                row["ratio"][phase] = _summary(
                    [a / b for a, b in zip(values, base[phase], strict=False)]
                )
        if "forward" in by_phase and "fwd+bwd" in by_phase:
            # The backward's cost in forward passes, per round: (t_fb − t_f) / t_f.
            row["bwd_over_fwd"] = _summary(
                [
                    (fb - f) / f
                    for f, fb in zip(by_phase["forward"], by_phase["fwd+bwd"], strict=False)
                ]
            )
        if flops["step"] and "step" in by_phase:
            row["step_gflops"] = flops["step"] / row["median_s"]["step"] / 1e9
        rows[name] = row
    return rows


def run(workloads=None, impls=None, rounds=5, min_time=0.01, threads=None, seed=None, log=None):
    """Check gradients, then time; returns a JSON-able dict (see ``--json``)."""
    chosen = _workloads.select(workloads)
    names = list(impls or DEFAULT_IMPLS)
    if _impls.BASELINE not in names:
        names.insert(0, _impls.BASELINE)
    log = log or (lambda msg: None)
    report = {
        "machine": {},
        "settings": {
            "rounds": rounds,
            "min_time_s": min_time,
            "threads": "default" if threads in (None, "default") else int(threads),
            "baseline": _impls.BASELINE,
        },
        "workloads": [],
    }
    with thread_mode(threads) as mode:
        report["settings"]["thread_mode"] = mode
        for w in chosen:
            entry = {
                "name": w.name,
                "family": w.family,
                "description": w.describe(),
                "flops": w.flops(),
                "n_ops": w.n_ops if w.kind == "scalar" else None,
                "skipped": {},
                "compile_s": {},
                "grad_error": {},
                "results": {},
            }
            data = w.make_data()
            reference = _impls.create(_impls.BASELINE, w, data).gradients()
            ready = {}
            for name in names:
                reason = _impls.available(name, w)
                if reason is None:
                    try:
                        impl = _impls.create(name, w, data)
                        entry["grad_error"][name] = _impls.check_gradients(impl, reference)
                        entry["compile_s"][name] = impl.compile_seconds
                        ready[name] = impl
                    except _impls.GradientMismatch as exc:
                        reason = f"gradient check failed: {exc}"
                    except Exception as exc:  # a peer that breaks must not stop the rest
                        reason = f"failed to run: {type(exc).__name__}: {exc}"
                if reason is not None:
                    entry["skipped"][name] = reason
                    log(f"  {w.name}: skipping {name}: {reason}")
            log(f"{w.name}: timing {', '.join(ready)} ({rounds} rounds)")
            times = measure(ready, rounds=rounds, min_time=min_time, seed=seed)
            entry["results"] = summarise(w, times)
            report["workloads"].append(entry)
        report["machine"] = machine_info()  # inside: thread pools and peers as timed
    return report


# ---------------------------------------------------------------------------------------
# the machine


def machine_info():
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
    }
    versions = {}
    for module in ("numpy", "fastgrad", "torch", "jax", "autograd"):
        mod = sys.modules.get(module)
        if mod is not None:
            try:
                versions[module] = importlib.metadata.version(module)
            except importlib.metadata.PackageNotFoundError:
                versions[module] = getattr(mod, "__version__", "?")
    info["versions"] = versions
    try:
        import fastgrad

        info["fastgrad_backend"] = fastgrad.get_backend()
    except Exception:
        pass
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:
        pass
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------
# the table


def fmt_time(s, missing="-"):
    """Seconds as µs, ms or s (``missing`` for None)."""
    if s is None:
        return missing
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(r, spread=True, missing="-"):
    """A ratio: a number, or a {"median", "min", "max"} summary shown as "m (min–max)"."""
    if r is None or (isinstance(r, dict) and not r):
        return missing
    if isinstance(r, dict):
        m, lo, hi = r["median"], r["min"], r["max"]
    else:
        m, lo, hi, spread = r, None, None, False
    digits = 2 if m < 10 else 1 if m < 100 else 0
    text = f"{m:.{digits}f}"
    if spread:
        text += f" ({lo:.{digits}f}–{hi:.{digits}f})"
    return text


def format_table(report) -> str:
    """The report as text: per workload, medians and ratios to NumPy by hand."""
    settings = report["settings"]
    lines = [
        f"fastgrad bench — {report['machine']['cpu']}, {report['machine']['cpus']} CPUs, "
        f"threads: {settings['thread_mode']}; {settings['rounds']} interleaved rounds; "
        f"ratios are per-round medians vs {settings['baseline']} (range in brackets)",
    ]
    header = (
        f"{'implementation':<20}{'forward':>11}{'fwd+bwd':>11}{'step':>11}"
        f"  {'step / numpy':<20}{'fwd+bwd / numpy':<20}{'fwd / numpy':<20}{'bwd/fwd':<8}"
    )
    for entry in report["workloads"]:
        lines.append("")
        title = entry["description"]
        flops = entry["flops"]
        if flops["step"]:
            title += (
                f" — matmul MFLOP fwd {flops['forward'] / 1e6:.3g}, "
                f"bwd {flops['backward'] / 1e6:.3g} "
                f"(bwd/fwd {flops['backward'] / flops['forward']:.2f})"
            )
        lines.append(f"[{entry['name']}] {title}")
        extra_col = "GFLOP/s" if flops["step"] else "µs/op"
        lines.append(header + f"{extra_col:>9}")
        for name, row in entry["results"].items():
            med, ratio = row["median_s"], row["ratio"]
            if flops["step"]:
                extra = f"{row.get('step_gflops', 0):9.1f}"
            else:
                extra = f"{med['fwd+bwd'] / entry['n_ops'] * 1e6:9.3f}"
            lines.append(
                f"{name:<20}{fmt_time(med.get('forward')):>11}{fmt_time(med.get('fwd+bwd')):>11}"
                f"{fmt_time(med.get('step')):>11}  {fmt_ratio(ratio.get('step')):<20}"
                f"{fmt_ratio(ratio.get('fwd+bwd')):<20}{fmt_ratio(ratio.get('forward')):<20}"
                f"{fmt_ratio(row.get('bwd_over_fwd'), spread=False):<8}{extra}"
            )
        for name, secs in entry["compile_s"].items():
            if secs:
                lines.append(f"  ({name}: compiled in {secs:.2f} s before timing)")
        for name, reason in entry["skipped"].items():
            lines.append(f"  skipped {name}: {reason}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# command line


def _split(values):
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastgrad bench",
        description="Time fastgrad's backends beside NumPy by hand, PyTorch, HIPS autograd "
        "and JAX (where installed) on the standard workloads (SPEC §7); every "
        "implementation's gradients are checked against NumPy by hand first.",
    )
    parser.add_argument(
        "--workload",
        "-w",
        action="append",
        metavar="NAME",
        help="workload(s) to run, repeatable or comma-separated: "
        + ", ".join(
            dict.fromkeys([w.family for w in _workloads.STANDARD] + list(_workloads.WORKLOADS))
        )
        + " (default: all)",
    )
    parser.add_argument(
        "--impl",
        "-i",
        action="append",
        metavar="NAME",
        help="implementation(s), repeatable or comma-separated: "
        + ", ".join(_impls.IMPLS)
        + f" (default: {', '.join(DEFAULT_IMPLS)}; numpy is always included; 'all' for every one)",
    )
    parser.add_argument(
        "--repeat", "-r", type=int, default=5, help="interleaved rounds (default 5)"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.01,
        help="seconds spent per implementation and phase in each round (default 0.01)",
    )
    parser.add_argument(
        "--threads",
        choices=("default", "1", "both"),
        default="default",
        help="library defaults, one thread (BLAS, torch, and the process pinned to one "
        "CPU), or both one after the other (default: default)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the full results as JSON")
    parser.add_argument("--seed", type=int, default=None, help="seed for the round order")
    parser.add_argument("--list", action="store_true", help="list workloads and implementations")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for w in _workloads.STANDARD:
            print(f"{w.name:<8} {w.describe()}")
        for name in _impls.IMPLS:
            reason = _impls.available(name)
            print(f"{name:<20} {'available' if reason is None else 'unavailable: ' + reason}")
        return 0
    if args.repeat < 1:
        print("fastgrad bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    try:
        _workloads.select(_split(args.workload))
    except ValueError as exc:
        print(f"fastgrad bench: {exc}", file=sys.stderr)
        return 2
    impl_names = _split(args.impl) or None
    if impl_names == ["all"]:
        impl_names = list(_impls.IMPLS)
    for name in impl_names or []:
        if name not in _impls.IMPLS:
            print(
                f"fastgrad bench: unknown implementation {name!r}; "
                f"known: {', '.join(_impls.IMPLS)}",
                file=sys.stderr,
            )
            return 2
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    modes = ["default", "1"] if args.threads == "both" else [args.threads]
    reports = []
    for mode in modes:
        report = run(
            _split(args.workload),
            impl_names,
            rounds=args.repeat,
            min_time=args.min_time,
            threads=mode,
            seed=args.seed,
            log=log,
        )
        reports.append(report)
        print(format_table(report))
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports[0] if len(reports) == 1 else {"runs": reports}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
