"""Two builds of fastgrad side by side: `fastgrad bench` run alternately from each.

    python tools/compare_builds.py OLD_SRC NEW_SRC -w W1-f64,W1-f32,W2,W3,W4,S1,S2 --pairs 5

OLD_SRC and NEW_SRC are `src` directories of two in-place builds (`python setup.py
build_ext --inplace`). Each pair of runs is old then new (the order alternating pair by
pair), one thread, pinned to one CPU; every run reports each implementation's step ÷
NumPy by hand's, measured in its own process, so slow drift of the machine cancels.
Prints, per workload and implementation, the median over the pairs of new ÷ old of that
ratio (1.00: the same speed; below 1: the new build is faster), and its range.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(src, workloads, impls, rounds, cpu):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    # One BLAS thread in both builds from the start (a build whose harness limits only the
    # BLAS libraries loaded when it starts would leave scipy's, loaded later, at two).
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    cmd = ["python", "-m", "fastgrad", "bench", "-w", workloads, "-i", impls, "-r", str(rounds),
           "--threads", "1", "--json", path, "-q"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        data = json.load(f)
    os.unlink(path)
    out = {}
    for w in data["workloads"]:
        for impl, r in w["results"].items():
            if impl != "numpy":
                out[(w["name"], impl)] = (r["ratio"]["step"]["median"], r["median_s"]["step"])
    return data["machine"]["cpu"], out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("-w", "--workloads", default="W1-f64,W1-f32,W2,W3,W4,S1,S2")
    ap.add_argument("-i", "--impls", default="numpy,fastgrad-cython,fastgrad-compiled")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=1, help="CPU to pin to (-1: none)")
    args = ap.parse_args()
    cpu = None if args.cpu < 0 else args.cpu
    ratios, old_r, new_r = {}, {}, {}
    for k in range(args.pairs):
        order = [("old", args.old), ("new", args.new)]
        if k % 2:
            order.reverse()
        got = {}
        for name, src in order:
            cpu_name, got[name] = run(src, args.workloads, args.impls, args.rounds, cpu)
        for key in got["new"]:
            if key in got["old"]:
                ratios.setdefault(key, []).append(got["new"][key][0] / got["old"][key][0])
                old_r.setdefault(key, []).append(got["old"][key][0])
                new_r.setdefault(key, []).append(got["new"][key][0])
        print(f"pair {k + 1}/{args.pairs} done", file=sys.stderr)
    print(f"CPU: {cpu_name}; {args.pairs} pairs of runs, {args.rounds} rounds each, one thread")
    print(f"{'workload':<8} {'implementation':<20} {'old step/numpy':>15} {'new step/numpy':>15}"
          f" {'new/old':>8}  range")
    for (w, impl), rs in sorted(ratios.items()):
        print(f"{w:<8} {impl:<20} {statistics.median(old_r[(w, impl)]):>15.3f} "
              f"{statistics.median(new_r[(w, impl)]):>15.3f} {statistics.median(rs):>8.3f}  "
              f"{min(rs):.3f}–{max(rs):.3f}")


if __name__ == "__main__":
    main()
