"""Communication share per step for W1–W3, and a model of scaling to N machines.

    python benchmarks/distributed_scaling.py [--plot scaling.png]

1. Measures, in one ``mpiexec -n 2`` job (one BLAS thread per rank, each rank on its own
   core, the workload's batch on each rank), the parts of a distributed step with
   ``fastgrad.distributed``: forward + backward, packing the gradients into the flat
   buffer, the Allreduce, the optimizer step from the buffer; and the plain step of one
   process in the same job. For W3 it also measures the compute of one rank at the
   per-rank batches 256/N (global batch 256 over N machines).
2. Models N machines from those figures: a ring Allreduce takes
   2(N−1)/N · bytes / bandwidth + 2(N−1) · α (α the per-message latency, 10 µs, typical of
   TCP over Ethernet), on 10, 25 and 100 Gb/s. Weak scaling: each machine keeps the
   workload's batch (the global batch grows with N), throughput N·t₁ / (t_compute + t_ring).
   Strong scaling (W3): global batch 256, each machine 256/N rows,
   t₁ / (t_compute(256/N) + t_ring). No overlap of communication and computation assumed.

Prints Markdown tables (docs/distributed.md holds a measured copy) and, with --plot, draws
the speedups (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
WORKLOADS = ("W1-f64", "W1-f32", "W2", "W3")
BANDWIDTHS = (10, 25, 100)  # Gb/s
MACHINES = (1, 2, 4, 8, 16, 32, 64)
ALPHA = 10e-6  # s per message of the ring (TCP/Ethernet; RDMA is nearer 2 µs)


def _median_ms(samples):
    return 1e3 * float(np.median(samples))


def measure(args):
    """Inside the mpiexec job: time every part of the step on every rank, in lock step."""
    from threadpoolctl import threadpool_limits

    import fastgrad as fg
    from fastgrad import distributed as dist
    from fastgrad import optim
    from fastgrad.bench.workloads import get
    from fastgrad.nn import functional as F

    threadpool_limits(1, user_api="blas")
    comm = dist.init()
    result = {"ranks": comm.size, "workloads": {}}

    def sync():
        comm.barrier()

    def build(workload, batch):
        data = workload.make_data()
        params = [(fg.tensor(W, requires_grad=True), fg.tensor(b, requires_grad=True)) for W, b in data.params]
        flat = [p for pair in params for p in pair]
        rng = np.random.default_rng(comm.rank)
        x = rng.standard_normal((batch, workload.sizes[0])).astype(workload.dtype)
        t = rng.standard_normal((batch, workload.sizes[-1])).astype(workload.dtype)

        def loss():
            h = x
            for W, b in params[:-1]:
                h = F.sigmoid(F.linear(h, W, b))
            W, b = params[-1]
            return F.squared_error(F.linear(h, W, b), t)

        return flat, loss

    def time_parts(workload, batch, repeats):
        flat, loss_fn = build(workload, batch)
        opt = dist.DistributedOptimizer(optim.SGD(flat, lr=workload.lr), comm=comm)
        plain = optim.SGD(flat, lr=workload.lr)
        parts = {k: [] for k in ("plain_step", "compute", "pack", "allreduce", "update")}
        for i in range(repeats + repeats // 5):
            sync()
            t0 = time.perf_counter()
            plain.zero_grad()
            loss_fn().backward()
            plain.step()
            t1 = time.perf_counter()
            sync()
            t2 = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            t3 = time.perf_counter()
            opt.pack(batch, batch * comm.size, loss)
            t4 = time.perf_counter()
            sync()
            t5 = time.perf_counter()
            comm.allreduce(opt.buffer)
            t6 = time.perf_counter()
            opt.unpack_and_step(batch * comm.size)
            t7 = time.perf_counter()
            if i >= repeats // 5:  # the first fifth warms up
                for k, v in zip(parts, (t1 - t0, t3 - t2, t4 - t3, t6 - t5, t7 - t6)):
                    parts[k].append(v)
        return {k: _median_ms(v) for k, v in parts.items()} | {"bytes": opt.buffer.nbytes}

    for name in WORKLOADS:
        w = get(name)
        repeats = 400 if w.batch == 1 else 40
        result["workloads"][name] = time_parts(w, w.batch, repeats)
    w = get("W3")
    strong = {}
    for n in MACHINES:
        if 256 % n == 0:
            strong[n] = time_parts(w, 256 // n, 30)
    result["strong_W3"] = strong
    if comm.rank == 0:
        print(json.dumps(result))


def run_job():
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    command = [
        mpiexec if os.path.exists(mpiexec) else "mpiexec",
        "-n",
        "2",
        sys.executable,
        os.path.abspath(__file__),
        "--measure",
    ]
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ring_seconds(n, nbytes, gbit):
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / (gbit * 1e9 / 8) + 2 * (n - 1) * ALPHA


def model(measured):
    """Tables (Markdown lines) and the curves for the plot."""
    lines = [
        "| workload | gradient | plain step | compute + pack + update | Allreduce, 2 ranks here | share |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    curves = {}
    for name, m in measured["workloads"].items():
        busy = m["compute"] + m["pack"] + m["update"]
        lines.append(
            f"| {name} | {m['bytes'] / 1e6:.3g} MB | {m['plain_step']:.3g} ms | {busy:.3g} ms | "
            f"{m['allreduce']:.3g} ms | {m['allreduce'] / (busy + m['allreduce']):.0%} |"
        )
    lines += [
        "",
        "Weak scaling (each machine the workload's batch): throughput speedup over one machine",
        "",
        "| workload | Gb/s | " + " | ".join(f"N={n}" for n in MACHINES[1:]) + " |",
        "| --- | --- | " + " | ".join("---" for _ in MACHINES[1:]) + " |",
    ]
    for name, m in measured["workloads"].items():
        busy = (m["compute"] + m["pack"] + m["update"]) / 1e3
        for gbit in BANDWIDTHS:
            plain = m["plain_step"] / 1e3  # one machine takes the plain step
            speedups = [1.0] + [n * plain / (busy + ring_seconds(n, m["bytes"], gbit)) for n in MACHINES[1:]]
            curves[(name, gbit)] = speedups
            lines.append(f"| {name} | {gbit} | " + " | ".join(f"{s:.3g}" for s in speedups[1:]) + " |")
    strong = {int(k): v for k, v in measured["strong_W3"].items()}
    t1 = strong[1]["plain_step"] / 1e3
    lines += [
        "",
        "Strong scaling (W3, global batch 256, 256/N rows per machine): speedup over one machine",
        "",
        "| Gb/s | " + " | ".join(f"N={n}" for n in sorted(strong)[1:]) + " |",
        "| --- | " + " | ".join("---" for _ in sorted(strong)[1:]) + " |",
    ]
    for gbit in BANDWIDTHS:
        speedups = [1.0]
        for n in sorted(strong)[1:]:
            s = strong[n]
            busy = (s["compute"] + s["pack"] + s["update"]) / 1e3
            speedups.append(t1 / (busy + ring_seconds(n, s["bytes"], gbit)))
        curves[("W3 strong", gbit)] = speedups
        lines.append(f"| {gbit} | " + " | ".join(f"{s:.3g}" for s in speedups[1:]) + " |")
    return lines, curves, sorted(strong)


def plot(path, curves, strong_ns):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BANDWIDTHS), figsize=(12, 4), sharey=True)
    for ax, gbit in zip(axes, BANDWIDTHS):
        for (name, g), speedups in curves.items():
            if g == gbit:
                ns = strong_ns if name == "W3 strong" else MACHINES
                ax.plot(ns, speedups, "o-", ms=3, label=name)
        ax.plot(MACHINES, MACHINES, "k:", lw=0.8, label="ideal")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(f"{gbit} Gb/s, ring Allreduce")
        ax.set_xlabel("machines N")
    axes[0].set_ylabel("speedup over one machine (model)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help="(inside the mpiexec job)")
    parser.add_argument("--plot", metavar="PATH")
    parser.add_argument("--json", metavar="PATH", help="reuse (or save) the measured figures")
    args = parser.parse_args()
    if args.measure:
        return measure(args)
    if args.json and os.path.exists(args.json):
        with open(args.json) as f:
            measured = json.load(f)
    else:
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        measured = run_job()
        measured["load"] = load
        if args.json:
            with open(args.json, "w") as f:
                json.dump(measured, f, indent=1)
    lines, curves, strong_ns = model(measured)
    print(f"load average before: {measured.get('load')}")
    print("\n".join(lines))
    if args.plot:
        plot(args.plot, curves, strong_ns)
        print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
