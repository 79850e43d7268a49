#!/usr/bin/env python
"""Saved benchmark JSON → markdown tables (and, with matplotlib, plots).

    pytest benchmarks/ --benchmark-only --benchmark-json bench-default.json
    pytest benchmarks/ --benchmark-only --bench-threads 1 --benchmark-json bench-1t.json
    fastgrad bench --threads both --json fastgrad-bench.json
    python scripts/bench_report.py bench-default.json bench-1t.json \\
        --runner fastgrad-bench.json --plots docs/img > report.md

pytest-benchmark's JSON gives the standard-workload tables (medians, ratios of medians
to NumPy by hand, GFLOP/s or µs per scalar op), the backward/forward ratios, the depth
and width sweeps with their fits, and GFLOP/s against the matmul ceiling. The runner's
JSON (``fastgrad bench --json``) gives ratios measured in interleaved rounds, with their
range; prefer those for ratios.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections import defaultdict

from fastgrad.bench import runner

IMPL_ORDER = [
    "numpy",
    "numpy-plain",
    "fastgrad-cython",
    "fastgrad-reference",
    "fastgrad-compiled",
    "torch",
    "autograd",
    "jax",
    "jax-jit",
]
PHASES = ("forward", "fwd+bwd", "step")


def _order(names):
    return sorted(names, key=lambda n: (IMPL_ORDER.index(n) if n in IMPL_ORDER else 99, n))


# The runner's formatting (fastgrad bench prints the same numbers), with an en dash for
# a missing value in Markdown tables.
fmt_time = functools.partial(runner.fmt_time, missing="–")
fmt_ratio = functools.partial(runner.fmt_ratio, missing="–")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- pytest-benchmark JSON -----------------------------------------------------------------


def load_pytest(path):
    with open(path) as f:
        data = json.load(f)
    benches = [b for b in data.get("benchmarks", []) if b.get("extra_info", {}).get("suite")]
    threads = {b["extra_info"].get("threads", "default") for b in benches} or {"default"}
    return data, benches, ", ".join(sorted(threads))


def machine_section(data):
    m = data.get("machine_info", {})
    cpu = m.get("cpu", {})
    flags = set(cpu.get("flags", []))
    vec = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return (
        f"- CPU: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} logical CPUs, {vec}\n"
        f"- Python {m.get('python_version', '?')} ({m.get('python_implementation', '')}), "
        f"{m.get('system', '')} {m.get('release', '')}\n"
        f"- run at {data.get('datetime', '?')}"
    )


def workloads_section(benches, threads):
    out = []
    by_wl = defaultdict(lambda: defaultdict(dict))
    info = {}
    for b in benches:
        e = b["extra_info"]
        if e["suite"] != "workloads":
            continue
        by_wl[e["workload"]][e["impl"]][e["phase"]] = b["stats"]["median"]
        info[e["workload"]] = (b["group"].split(": ", 1)[-1], e)
        by_wl[e["workload"]][e["impl"]]["_flops"] = e.get("flops")
        by_wl[e["workload"]][e["impl"]]["_n_ops"] = e.get("n_ops")
    for wl, impls in by_wl.items():
        desc, _ = info[wl]
        base = impls.get("numpy", {})
        scalar = any(v.get("_n_ops") for v in impls.values())
        rows = []
        for name in _order(impls):
            row = impls[name]
            ratios = [
                fmt_ratio(row[p] / base[p]) if p in row and base.get(p) else "–" for p in PHASES
            ]
            fb = row.get("fwd+bwd")
            if scalar:
                extra = f"{fb / row['_n_ops'] * 1e6:.2f}" if fb and row.get("_n_ops") else "–"
            else:
                extra = f"{row['_flops'] / row['step'] / 1e9:.1f}" if row.get("step") else "–"
            rows.append([f"`{name}`"] + [fmt_time(row.get(p)) for p in PHASES] + ratios + [extra])
        header = ["impl", "forward", "fwd+bwd", "step", "fwd ×np", "fwd+bwd ×np", "step ×np"]
        header += ["µs/op (fwd+bwd)" if scalar else "GFLOP/s (step)"]
        out.append(f"**{wl}** — {desc} (threads: {threads})\n\n" + table(header, rows))
    note = (
        "Ratios here are of medians from tests run one after another (×np = time / NumPy "
        "by hand's); the interleaved ratios of `fastgrad bench` are steadier."
    )
    return note + "\n\n" + "\n\n".join(out) if out else ""


def bwd_fwd_section(benches):
    rows = defaultdict(dict)
    flop = {}
    for b in benches:
        e = b["extra_info"]
        if e["suite"] == "bwd_over_fwd":
            rows[e["workload"]][e["impl"]] = e["bwd_over_fwd"]
            flop[e["workload"]] = e["flop_bwd_over_fwd"]
    if not rows:
        return ""
    names = _order({n for r in rows.values() for n in r})
    body = [
        [wl, f"{flop[wl]:.2f}"] + [fmt_ratio(r.get(n)) for n in names] for wl, r in rows.items()
    ]
    return table(["workload", "FLOP ratio"] + [f"`{n}`" for n in names], body)


def _linfit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=False))
    return slope, intercept, 1 - ss_res / ss_tot if ss_tot else 1.0


def sweep_data(benches, suite):
    """{impl: {x: median step seconds}}, {x: FLOPs} from the interleaved sweep tests."""
    data = defaultdict(dict)
    flops = {}
    for b in benches:
        e = b["extra_info"]
        if e["suite"] == suite and "points" in e:
            for x, point in e["points"].items():
                data[e["impl"]][int(x)] = point["step_s"]
                flops[int(x)] = point["flops"]
    return data, flops


def sweep_section(benches, suite):
    data, flops = sweep_data(benches, suite)
    if not data:
        return ""
    xs = sorted(flops)
    names = _order(data)
    rows = [[x, f"{flops[x] / 1e6:.1f}"] + [fmt_time(data[n].get(x)) for n in names] for x in xs]
    text = table([suite, "MFLOP/step"] + [f"`{n}`" for n in names], rows)
    fits = []
    for n in names:
        pts = sorted(data[n].items())
        if len(pts) < 3:
            continue
        px, py = [p[0] for p in pts], [p[1] for p in pts]
        if suite == "depth":
            slope, icept, r2 = _linfit(px, py)
            ratio = py[-1] / py[0]
            fits.append(
                f"- `{n}`: t ≈ {fmt_time(icept)} + {fmt_time(slope)} × depth "
                f"(R² = {r2:.3f}); t({px[-1]})/t({px[0]}) = {ratio:.1f} "
                f"against {flops[px[-1]] / flops[px[0]]:.1f} in FLOPs"
            )
        else:
            lx, ly = [math.log(x) for x in px], [math.log(y) for y in py]
            slope, _, r2 = _linfit(lx, ly)
            big = [(x, y) for x, y in pts if x >= 256]
            tail = ""
            if len(big) >= 2:
                s2, _, _ = _linfit([math.log(x) for x, _ in big], [math.log(y) for _, y in big])
                tail = f"; from width 256 up: {s2:.2f}"
            fits.append(f"- `{n}`: log-log slope {slope:.2f} over all widths (R² = {r2:.3f}){tail}")
    claim = (
        "Linear in depth means a straight line: R² near 1."
        if suite == "depth"
        else "Quadratic in width means a log-log slope of 2 (FLOPs are exactly ∝ w²)."
    )
    return text + "\n\n" + claim + "\n\n" + "\n".join(fits)


def ceiling_section(benches):
    ceil = {}
    for b in benches:
        e = b["extra_info"]
        if e["suite"] == "ceiling":
            ceil[(e["dtype"], e["n"])] = e["flops"] / b["stats"]["median"] / 1e9
    rows = [[d, n, f"{g:.0f}"] for (d, n), g in sorted(ceil.items())]
    text = table(["dtype", "n", "GFLOP/s"], rows) if rows else ""
    top = max((g for (d, _), g in ceil.items() if d == "float32"), default=None)
    kern = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        if e["suite"] == "kernels":
            kern[e["kernel"]][e["impl"]] = e["flops"] / b["stats"]["median"] / 1e9
    if kern:
        names = [n for n in ("numpy", "cython", "reference") if any(n in k for k in kern.values())]
        rows = []
        for k, by in kern.items():
            row = [f"`{k}`"] + [f"{by[n]:.0f}" if n in by else "–" for n in names]
            base = by.get("numpy")
            row.append(f"{by['cython'] / base:.2f}" if base and "cython" in by else "–")
            rows.append(row)
        text += "\n\nKernels at W3's shapes (GFLOP/s; last column: cython / NumPy matmul):\n\n"
        text += table(["kernel"] + [f"`{n}`" for n in names] + ["cython / numpy"], rows)
    wl = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        if e["suite"] == "workloads" and e["phase"] == "step" and e.get("flops") and top:
            wl[e["workload"]][e["impl"]] = e["flops"] / b["stats"]["median"] / 1e9
    if wl:
        names = _order({n for r in wl.values() for n in r})
        rows = [
            [w] + [f"{r[n]:.1f} ({100 * r[n] / top:.0f} %)" if n in r else "–" for n in names]
            for w, r in wl.items()
        ]
        text += (
            "\n\nFull step, matmul GFLOP/s and share of the float32 ceiling "
            f"({top:.0f} GFLOP/s):\n\n"
        )
        text += table(["workload"] + [f"`{n}`" for n in names], rows)
    return text


# -- fastgrad bench JSON (interleaved rounds) -------------------------------------------


def _bwd(b):
    """bwd/fwd; "noisy" where a round timed the forward slower than forward + backward."""
    return "noisy" if b and b["min"] < 0 else fmt_ratio(b, spread=False)


def runner_section(path):
    with open(path) as f:
        data = json.load(f)
    runs = data["runs"] if "runs" in data else [data]
    out = []
    for run in runs:
        s = run["settings"]
        out.append(
            f"Threads: **{s['thread_mode']}**, {s['rounds']} interleaved rounds; ratios are "
            "medians of per-round ratios to `numpy` (range in brackets)."
        )
        rows = []
        for entry in run["workloads"]:
            for name in _order(entry["results"]):
                r = entry["results"][name]
                med = r["median_s"]
                rows.append(
                    [entry["name"], f"`{name}`", fmt_time(med.get("step"))]
                    + [fmt_ratio(r["ratio"].get(p)) for p in ("step", "fwd+bwd", "forward")]
                    + [_bwd(r.get("bwd_over_fwd"))]
                )
            for name, reason in entry.get("skipped", {}).items():
                rows.append([entry["name"], f"`{name}`", "skipped: " + reason, "", "", "", ""])
        out.append(
            table(
                ["workload", "impl", "step", "step ×np", "fwd+bwd ×np", "fwd ×np", "bwd/fwd"],
                rows,
            )
        )
        noisy = [e["name"] for e in run["workloads"] if e.get("noisy")]
        if noisy:
            out.append(f"Too noisy to trust (a ratio spread over 2× across rounds): {', '.join(noisy)}.")
        for name, reason in run.get("unavailable", {}).items():
            out.append(f"Not run: `{name}`: {reason}")
    return "\n\n".join(out), runs


# -- plots ---------------------------------------------------------------------------------


def plots(benches_by_label, runs, outdir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots", file=sys.stderr)
        return []
    import os

    os.makedirs(outdir, exist_ok=True)
    written = []
    for suite, xlabel, loglog in (("depth", "hidden layers", False), ("width", "width", True)):
        fig, ax = plt.subplots(figsize=(6, 4))
        any_data = False
        for label, benches in benches_by_label.items():
            data, _ = sweep_data(benches, suite)
            for name in _order(data):
                pts = sorted(data[name].items())
                if pts:
                    any_data = True
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] * 1e3 for p in pts],
                        marker="o",
                        label=f"{name} ({label})",
                    )
        if not any_data:
            plt.close(fig)
            continue
        if loglog:
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("step time (ms)")
        ax.set_title(f"cost against {suite}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        path = os.path.join(outdir, f"{suite}_sweep.png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for _i, run in enumerate(runs):
        wls = [e for e in run["workloads"]]
        names = _order({n for e in wls for n in e["results"]})
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / max(1, len(names))
        for j, name in enumerate(names):
            xs, ys = [], []
            for k, e in enumerate(wls):
                r = e["results"].get(name)
                if r and r["ratio"].get("step"):
                    xs.append(k + j * width)
                    ys.append(r["ratio"]["step"]["median"])
            ax.bar(xs, ys, width=width, label=name)
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(wls))], [e["name"] for e in wls])
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_ylabel("step time / NumPy by hand")
        ax.set_title(f"full step, ratio to NumPy by hand ({run['settings']['thread_mode']})")
        ax.legend(fontsize=7, ncol=2)
        path = os.path.join(
            outdir, f"step_ratios_{run['settings']['thread_mode'].replace(' ', '')}.png"
        )
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="*", help="pytest-benchmark JSON files (--benchmark-json)")
    parser.add_argument(
        "--runner", action="append", default=[], help="fastgrad bench --json output"
    )
    parser.add_argument("--plots", metavar="DIR", help="write PNG plots here (needs matplotlib)")
    parser.add_argument("--out", metavar="PATH", help="write markdown here instead of stdout")
    args = parser.parse_args(argv)
    parts = []
    benches_by_label = {}
    runs = []
    for path in args.runner:
        text, rs = runner_section(path)
        runs += rs
        label = path.rsplit("/", 1)[-1]
        parts.append(f"## Interleaved ratios (`fastgrad bench`, {label})\n\n{text}")
    for i, path in enumerate(args.json):
        data, benches, threads = load_pytest(path)
        benches_by_label[f"threads {threads}"] = benches
        if i == 0:
            parts.insert(0, "## Machine\n\n" + machine_section(data))
        section = workloads_section(benches, threads)
        if section:
            parts.append(
                f"## Standard workloads (pytest-benchmark, threads: {threads})\n\n{section}"
            )
        for title, section in (
            (
                "Backward / forward time (interleaved, median and range over 7 rounds)",
                bwd_fwd_section(benches),
            ),
            (
                "Cost against depth (784, d × 256, 10; batch 64; float32)",
                sweep_section(benches, "depth"),
            ),
            ("Cost against width (w, w, w, w; batch 64; float32)", sweep_section(benches, "width")),
            ("GFLOP/s against the matmul ceiling", ceiling_section(benches)),
        ):
            if section:
                parts.append(f"### {title} — threads: {threads}\n\n{section}")
    if args.plots:
        import os

        base = os.path.dirname(os.path.abspath(args.out)) if args.out else os.getcwd()
        for path in plots(benches_by_label, runs, args.plots):
            rel = os.path.relpath(os.path.abspath(path), base)
            parts.append(f"![{os.path.basename(path)}]({rel})")
    text = "\n\n".join(parts) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
