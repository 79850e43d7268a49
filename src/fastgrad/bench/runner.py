"""The interleaved-rounds timer behind ``fastgrad bench`` (see MEASURING in docs/performance.md).

Absolute times drift by ±10 % on a shared machine, so every implementation is timed in
the same process, in rounds, each round visiting the (implementation, phase) pairs in a
fresh random order; ratios to NumPy by hand are taken within a round and summarised by
their median and range over the rounds.

    fastgrad bench                         # every workload, one thread (the default)
    fastgrad bench --workload W2,S1 --repeat 9 --json out.json
    fastgrad bench --threads default       # each library's own thread pools
"""

from __future__ import annotations

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

            import scipy.linalg.cython_blas  # noqa: F401  (loaded lazily by fastgrad: limit it too)

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
                row["ratio"][phase] = _summary([a / b for a, b in zip(values, base[phase], strict=False)])
        if "forward" in by_phase and "fwd+bwd" in by_phase:
            # The backward's cost in forward passes, per round: (t_fb − t_f) / t_f.
            row["bwd_over_fwd"] = _summary(
                [(fb - f) / f for f, fb in zip(by_phase["forward"], by_phase["fwd+bwd"], strict=False)]
            )
        if flops["step"] and "step" in by_phase:
            row["step_gflops"] = flops["step"] / row["median_s"]["step"] / 1e9
        rows[name] = row
    return rows


def run(workloads=None, impls=None, rounds=5, min_time=0.01, threads=1, seed=None, log=None):
    """Check gradients, then time; returns a JSON-able dict (see ``--json``).

    An implementation that cannot run here at all (a peer not installed, or not loaded)
    is listed once under ``"unavailable"``; one that cannot run a particular workload
    (no scalar version, a failed gradient check) under that workload's ``"skipped"``.
    """
    chosen = _workloads.select(workloads)
    names = list(impls or DEFAULT_IMPLS)
    if _impls.BASELINE not in names:
        names.insert(0, _impls.BASELINE)
    log = log or (lambda msg: None)
    unavailable = {name: _impls.available(name) for name in names}
    unavailable = {name: reason for name, reason in unavailable.items() if reason}
    for name, reason in unavailable.items():
        log(f"not running {name}: {reason}")
    names = [name for name in names if name not in unavailable]
    report = {
        "machine": {},
        "settings": {
            "rounds": rounds,
            "min_time_s": min_time,
            "threads": "default" if threads in (None, "default") else int(threads),
            "baseline": _impls.BASELINE,
        },
        "unavailable": unavailable,
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
            entry["noisy"] = noise(entry["results"])
            report["workloads"].append(entry)
        report["machine"] = machine_info()  # inside: thread pools and peers as timed
    return report


NOISY_RANGE = 2.0  # a ratio whose rounds span more than this factor is not a figure


def noise(rows) -> list:
    """Why a workload's figures cannot be trusted, one dict per finding: a ratio whose
    per-round range exceeds NOISY_RANGE, or a forward timed slower than forward + backward
    in some round (which would make the backward's cost negative)."""
    found = []
    for name, row in rows.items():
        for phase, r in row["ratio"].items():
            if r and r["min"] > 0 and r["max"] / r["min"] > NOISY_RANGE:
                found.append({"impl": name, "phase": phase, "ratio_min": r["min"], "ratio_max": r["max"]})
        b = row.get("bwd_over_fwd")
        if b and b["min"] < 0:
            found.append({"impl": name, "phase": "bwd/fwd", "forward_slower_than_fwd_bwd": True})
    return found


def _noise_summary(found) -> str:
    ranges = [f for f in found if "ratio_min" in f]
    negative = [f["impl"] for f in found if "ratio_min" not in f]
    parts = []
    if ranges:
        parts.append(
            f"{len(ranges)} ratio{'s' if len(ranges) > 1 else ''} spanned more than {NOISY_RANGE:g}x over the rounds"
        )
    if negative:
        parts.append(f"a forward timed slower than forward + backward ({', '.join(negative)})")
    return (
        "  too noisy to trust (marked !): " + "; ".join(parts) + ". Rerun with more --repeat, or on a quieter machine."
    )


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
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")} for p in threadpool_info()
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
                f"{fmt_time(med.get('step')):>11}  {_fmt_noisy(ratio.get('step')):<20}"
                f"{_fmt_noisy(ratio.get('fwd+bwd')):<20}{_fmt_noisy(ratio.get('forward')):<20}"
                f"{_fmt_bwd(row.get('bwd_over_fwd')):<8}{extra}"
            )
        for name, secs in entry["compile_s"].items():
            if secs:
                lines.append(f"  ({name}: compiled in {secs:.2f} s before timing)")
        for name, reason in entry["skipped"].items():
            lines.append(f"  skipped {name}: {reason}")
        if entry.get("noisy"):
            lines.append(_noise_summary(entry["noisy"]))
    unavailable = report.get("unavailable") or {}
    if unavailable:
        lines.append("")
        howto = [n for n, r in unavailable.items() if r == _impls.PEERS_HOWTO]
        if howto:
            lines.append(f"not run: {', '.join(howto)}: {_impls.PEERS_HOWTO}")
        for name, reason in unavailable.items():
            if name not in howto:
                lines.append(f"not run: {name}: {reason}")
    return "\n".join(lines)


def _fmt_noisy(r):
    """A ratio as fmt_ratio shows it, with a "!" when its rounds span more than NOISY_RANGE."""
    text = fmt_ratio(r)
    if isinstance(r, dict) and r and r["min"] > 0 and r["max"] / r["min"] > NOISY_RANGE:
        text += " !"
    return text


def _fmt_bwd(b):
    """The backward's cost in forwards; "noisy" where a round timed it negative."""
    if b and b["min"] < 0:
        return "noisy !"
    return fmt_ratio(b, spread=False)


# ---------------------------------------------------------------------------------------
# command line


def _split(values):
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def build_parser():
    from fastgrad.cli import HelpFormatter, Parser

    parser = Parser(
        prog="fastgrad bench",
        description="Time fastgrad's backends beside NumPy by hand on the standard workloads "
        "(SPEC §7), and beside PyTorch, HIPS autograd and JAX where installed (their benchmark "
        "code is in the source checkout's benchmarks/peers/). Every implementation's gradients "
        "are checked against NumPy by hand first.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--workload",
        "-w",
        action="append",
        metavar="NAME",
        help="workload(s) to run, repeatable or comma-separated: "
        + ", ".join(dict.fromkeys([w.family for w in _workloads.STANDARD] + list(_workloads.WORKLOADS)))
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
    parser.add_argument("--repeat", "-r", type=_positive_int, default=5, metavar="N", help="interleaved rounds")
    parser.add_argument(
        "--min-time",
        type=_positive_float,
        default=0.01,
        metavar="SECONDS",
        help="time spent per implementation and phase in each round",
    )
    parser.add_argument(
        "--threads",
        choices=("1", "default", "both"),
        default="1",
        help="1: one BLAS/torch thread and the process pinned to one CPU, the figures to "
        "compare; default: each library's own thread pools; both: one after the other "
        "(default: 1)",
    )
    parser.add_argument(
        "--peers",
        metavar="DIR",
        help="directory of the peers' implementations (default: benchmarks/peers of the "
        "fastgrad checkout this runs from, or $FASTGRAD_BENCH_PEERS)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the full results as JSON")
    parser.add_argument("--seed", type=int, help="seed for the round order (default: a fresh one)")
    parser.add_argument("--list", action="store_true", help="list workloads and implementations")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    return parser


def _positive_int(text):
    from fastgrad.cli import positive_int

    return positive_int(text)


def _positive_float(text):
    from fastgrad.cli import positive_float

    return positive_float(text)


def main(argv=None) -> int:
    from fastgrad.cli import CLIError

    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except CLIError as exc:
        print(f"fastgrad bench: error: {exc}", file=sys.stderr)
        return exc.code


def _main(args) -> int:
    from fastgrad.cli import CLIError, atomic_write, output_path

    peers = _impls.load_peers(args.peers)
    if peers is not None and args.peers is not None:
        raise CLIError(f"argument --peers: {peers}", 2)
    if args.list:
        for w in _workloads.STANDARD:
            print(f"{w.name:<8} {w.describe()}")
        for name in _impls.IMPLS:
            reason = _impls.available(name)
            print(f"{name:<20} {'available' if reason is None else 'unavailable: ' + reason}")
        return 0
    json_path = output_path("--json", args.json) if args.json is not None else None
    try:
        _workloads.select(_split(args.workload))
    except ValueError as exc:
        raise CLIError(f"argument --workload: {exc}", 2) from None
    impl_names = _split(args.impl) or None
    if impl_names == ["all"]:
        impl_names = list(_impls.IMPLS)
    for name in impl_names or []:
        if name not in _impls.IMPLS:
            raise CLIError(f"argument --impl: unknown implementation {name!r}; known: {', '.join(_impls.IMPLS)}", 2)
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    modes = ["1", "default"] if args.threads == "both" else [args.threads]
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
    if json_path is not None:
        with atomic_write(json_path) as tmp, open(tmp, "w") as f:
            json.dump(reports[0] if len(reports) == 1 else {"runs": reports}, f, indent=1)
        print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
