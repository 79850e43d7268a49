"""Run HIPS autograd's own ``examples/`` programs, unmodified, under autograd and under
fastgrad (through an import alias), and compare what they print and how long they take.

    python benchmarks/autograd_examples.py --examples /path/to/autograd/examples \\
        [--only neural_net,rnn] [--iters 100] [--mnist 2000,500] [--timeout 600] [--json out.json]

``--examples`` defaults to a copy exported from the bare mirror named by $AUTOGRAD_MIRROR
(``git archive HEAD examples``). Each example runs twice, interleaved, each time in a fresh
interpreter and a fresh copy of the directory (the programs write images next to them):

* ``autograd``: the installed autograd.
* ``fastgrad``: an import hook maps every ``autograd`` and ``autograd.X`` module to
  ``fastgrad`` and ``fastgrad.X``; nothing else changes.

What both runs share, so that the programs finish here and print comparable numbers (the
programs' own code is never edited):

* matplotlib draws off screen (Agg); ``plt.pause`` returns at once.
* ``data_mnist.mnist()`` returns synthetic images (seeded; ``--mnist TRAIN,TEST`` rows)
  instead of downloading MNIST.
* NumPy's global generator is seeded with 0, and ``RandomState()`` without a seed means
  ``RandomState(0)`` (convnet draws its weights from an unseeded one).
* the optimizers of ``autograd.misc.optimizers`` and ``scipy.optimize.minimize`` run at most
  ``--iters`` iterations (``num_iters`` / ``options['maxiter']`` capped).

Timing: ``total`` is the program's run (the imports of NumPy, SciPy, matplotlib and the
autograd modules the programs use done before the clock starts); ``loop`` is the time spent inside
the optimizer calls (adam/sgd/rmsprop/minimize) less the time in their callbacks (which
print and plot); convnet trains in its own loop, so its
``loop`` is the time inside the gradient function ``grad`` made. Ratios are fastgrad/autograd.
Numbers are compared by extracting every number each program prints, in order.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = {"__init__.py", "data.py", "data_mnist.py"}
AUTOGRAD_MODULES = """autograd autograd.builtins autograd.core autograd.differential_operators
autograd.extend autograd.misc autograd.misc.fixed_points autograd.misc.flatten
autograd.misc.optimizers autograd.misc.tracers autograd.numpy autograd.numpy.fft
autograd.numpy.linalg autograd.numpy.random autograd.scipy autograd.scipy.integrate
autograd.scipy.linalg autograd.scipy.signal autograd.scipy.special autograd.scipy.stats
autograd.scipy.stats.beta autograd.scipy.stats.chi2 autograd.scipy.stats.dirichlet
autograd.scipy.stats.gamma autograd.scipy.stats.multivariate_normal autograd.scipy.stats.norm
autograd.scipy.stats.poisson autograd.scipy.stats.t autograd.test_util autograd.tracer
autograd.util autograd.wrap_util""".split()  # autograd 1.9.1's modules
PREIMPORT = ["autograd.numpy", "autograd.scipy.special", "autograd.scipy.stats",
             "autograd.scipy.stats.multivariate_normal", "autograd.scipy.signal",
             "autograd.scipy.integrate", "autograd.misc.flatten", "autograd.test_util",
             "scipy.optimize", "matplotlib.pyplot", "matplotlib.image"]


# ----------------------------------------------------------------- the child side --

def _alias_autograd_to_fastgrad():
    import importlib
    import importlib.abc
    import importlib.util

    class Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name == "autograd" or name.startswith("autograd."):
                real = "fastgrad" + name[len("autograd"):]
                if importlib.util.find_spec(real) is None:
                    return None
                return importlib.util.spec_from_loader(name, self)
            return None

        def create_module(self, spec):
            return importlib.import_module("fastgrad" + spec.name[len("autograd"):])

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Alias())
    # autograd's own modules aliased up front: a submodule first imported through the hook
    # would be set as an attribute of its parent (fastgrad.misc.flatten the module hiding
    # fastgrad.misc.flatten the function), which autograd's eager imports never do
    for name in AUTOGRAD_MODULES:
        real = "fastgrad" + name[len("autograd"):]
        if importlib.util.find_spec(real) is not None:
            sys.modules[name] = importlib.import_module(real)


def _synthetic_mnist(n_train, n_test):
    import types

    import numpy

    def mnist():
        r = numpy.random.RandomState(1234)
        labels = r.randint(0, 10, size=n_train + n_test).astype(numpy.uint8)
        # each class a blurred blob at its own place, plus noise: learnable, not trivial
        yy, xx = numpy.mgrid[0:28, 0:28]
        centers = [(7 + 14 * (k % 2), 4 + 5 * (k // 2)) for k in range(10)]
        imgs = numpy.empty((len(labels), 28, 28))
        for i, k in enumerate(labels):
            cy, cx = centers[k]
            imgs[i] = numpy.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        imgs = numpy.clip(imgs * 255 + r.normal(0, 40, size=imgs.shape), 0, 255).astype(numpy.uint8)
        return imgs[:n_train], labels[:n_train], imgs[n_train:], labels[n_train:]

    mod = types.ModuleType("data_mnist")
    mod.mnist = mnist
    mod.download = lambda *a, **k: None
    sys.modules["data_mnist"] = mod


class _Clock:
    loop = 0.0
    callback = 0.0  # time in the programs' callbacks (printing, plotting), not the loop's
    depth = 0


def _timed_callback(cb):
    if cb is None:
        return None

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return cb(*args, **kwargs)
        finally:
            _Clock.callback += time.perf_counter() - t
    return wrapper


def _timed(fun):
    def wrapper(*args, **kwargs):
        if _Clock.depth:
            return fun(*args, **kwargs)
        _Clock.depth += 1
        t = time.perf_counter()
        try:
            return fun(*args, **kwargs)
        finally:
            _Clock.loop += time.perf_counter() - t
            _Clock.depth -= 1
    wrapper.__wrapped__ = fun
    return wrapper


def _cap_and_time(iters, time_grad):
    import numpy
    import scipy.optimize

    import autograd
    import autograd.misc.optimizers as opt
    import autograd.numpy.random as anr

    for name in ("adam", "sgd", "rmsprop"):
        f = getattr(opt, name, None)
        if f is None:
            continue

        def capped(*args, _f=f, **kwargs):
            if len(args) > 2:
                args = args[:2] + (_timed_callback(args[2]),) + args[3:]
            elif "callback" in kwargs:
                kwargs["callback"] = _timed_callback(kwargs["callback"])
            if "num_iters" in kwargs:
                kwargs["num_iters"] = min(kwargs["num_iters"], iters)
            elif len(args) > 3:
                args = args[:3] + (min(args[3], iters),) + args[4:]
            else:
                kwargs["num_iters"] = min(100, iters)  # autograd's default
            return _f(*args, **kwargs)
        setattr(opt, name, _timed(capped))

    minimize = scipy.optimize.minimize

    def capped_minimize(*args, **kwargs):
        options = dict(kwargs.get("options") or {})
        options["maxiter"] = min(options.get("maxiter", iters), iters)
        kwargs["options"] = options
        if "callback" in kwargs:
            kwargs["callback"] = _timed_callback(kwargs["callback"])
        return minimize(*args, **kwargs)
    scipy.optimize.minimize = _timed(capped_minimize)

    class SeededRandomState(numpy.random.RandomState):
        def __init__(self, seed=0):
            super().__init__(seed)
    for mod in (numpy.random, anr):
        mod.RandomState = SeededRandomState
    numpy.random.seed(0)

    if time_grad:
        grad = autograd.grad
        autograd.grad = lambda *a, **k: _timed(grad(*a, **k))


def child(mode, path, iters, mnist, time_grad):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.pause = lambda *a, **k: None
    plt.show = lambda *a, **k: None

    if mode == "fastgrad":
        _alias_autograd_to_fastgrad()
    _synthetic_mnist(*mnist)
    _cap_and_time(iters, time_grad)
    import importlib
    for name in PREIMPORT:  # what the programs import, loaded before the clock starts
        importlib.import_module(name)
    import runpy
    sys.path.insert(0, os.path.dirname(path))
    sys.argv = [path]
    t = time.perf_counter()
    status = "ok"
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit:
        pass
    except BaseException as e:  # noqa: BLE001 - the parent records what stopped it
        import traceback
        traceback.print_exc()
        status = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    total = time.perf_counter() - t
    sys.stdout.flush()
    print(json.dumps({"status": status, "total": total, "loop": _Clock.loop - _Clock.callback}), file=sys.__stderr__)


# ---------------------------------------------------------------- the parent side --

NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


IDS = re.compile(r"node_\d+")  # dot_graph.py names its nodes by id(): differs run to run


def _numbers(text):
    return [float(x) for x in NUM.findall(IDS.sub("node", text))]


def compare(a, b, rtol):
    """(same, max relative difference, how many numbers) of two programs' outputs."""
    na, nb = _numbers(a), _numbers(b)
    if len(na) != len(nb):
        return False, float("inf"), (len(na), len(nb))
    worst = 0.0
    for x, y in zip(na, nb):
        d = abs(x - y) / max(abs(x), abs(y), 1e-300) if x != y else 0.0
        worst = max(worst, d)
    return worst <= rtol, worst, len(na)


def run_one(mode, src_dir, name, args):
    work = tempfile.mkdtemp(prefix=f"agex-{mode}-")
    shutil.copytree(src_dir, os.path.join(work, "examples"))
    path = os.path.join(work, "examples", name)
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    cmd = [args.python, os.path.abspath(__file__), "--child", mode, path,
           "--iters", str(args.iters), "--mnist", args.mnist]
    if os.path.basename(name) == "convnet.py":
        cmd.append("--time-grad")
    try:
        p = subprocess.run(cmd, env=env, cwd=os.path.dirname(path), capture_output=True,
                           text=True, timeout=args.timeout)
        lines = p.stderr.strip().splitlines()
        try:
            info = json.loads(lines[-1])
        except (IndexError, ValueError):
            info = {"status": f"crashed (exit {p.returncode})", "total": None, "loop": None}
        info["stdout"], info["stderr"] = p.stdout, "\n".join(lines[:-1])[-3000:]
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        info = {"status": f"timeout {args.timeout}s", "total": None, "loop": None,
                "stdout": out, "stderr": ""}
    shutil.rmtree(work, ignore_errors=True)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples")
    ap.add_argument("--only")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--mnist", default="2000,500")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs per mode (best kept)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--json")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"))
    ap.add_argument("--time-grad", action="store_true")
    args = ap.parse_args()
    mnist = tuple(int(x) for x in args.mnist.split(","))
    if args.child:
        return child(args.child[0], args.child[1], args.iters, mnist, args.time_grad)

    src = args.examples
    if src is None:
        mirror = os.environ.get("AUTOGRAD_MIRROR")
        if not mirror:
            ap.error("--examples DIR or AUTOGRAD_MIRROR=<bare git dir of HIPS/autograd>")
        tmp = tempfile.mkdtemp(prefix="agex-src-")
        subprocess.run(f"git --git-dir={mirror} archive HEAD examples | tar -x -C {tmp}",
                       shell=True, check=True)
        src = os.path.join(tmp, "examples")
    names = sorted(f for f in os.listdir(src) if f.endswith(".py") and f not in SKIP)
    names += ["fluidsim/fluidsim.py", "fluidsim/wing.py"]
    if args.only:
        want = args.only.split(",")
        names = [n for n in names if os.path.splitext(os.path.basename(n))[0] in want]

    results = {}
    for name in names:
        runs = {"autograd": [], "fastgrad": []}
        for _ in range(args.repeat):
            for mode in ("autograd", "fastgrad"):
                runs[mode].append(run_one(mode, src, name, args))
        best = {}
        for mode, rs in runs.items():
            ok = [r for r in rs if r["status"] == "ok"]
            best[mode] = min(ok, key=lambda r: r["total"]) if ok else rs[0]
        a, f = best["autograd"], best["fastgrad"]
        row = {"autograd": a, "fastgrad": f}
        if a["status"] == "ok" and f["status"] == "ok":
            same, worst, count = compare(a["stdout"], f["stdout"], args.rtol)
            row.update(same=same, worst=worst, numbers=count,
                       total_ratio=f["total"] / a["total"] if a["total"] else None,
                       loop_ratio=f["loop"] / a["loop"] if a["loop"] else None)
        elif a["status"].startswith("timeout") and f["status"].startswith("timeout"):
            # both stopped by the clock (a loop to convergence): compare what both printed
            na, nf = _numbers(a["stdout"]), _numbers(f["stdout"])
            k = min(len(na), len(nf))
            same, worst, _ = compare(" ".join(map(repr, na[:k])), " ".join(map(repr, nf[:k])),
                                     args.rtol)
            row.update(prefix_same=same, prefix_worst=worst, printed=(len(na), len(nf)))
        results[name] = row
        _print_row(name, row)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


def _print_row(name, row):
    a, f = row["autograd"], row["fastgrad"]
    if "prefix_same" in row:
        print(f"{name:40} both stopped at the timeout; the {min(row['printed'])} numbers both "
              f"printed {'agree' if row['prefix_same'] else 'DIFFER'} (max rel "
              f"{row['prefix_worst']:.1e}); printed autograd {row['printed'][0]}, "
              f"fastgrad {row['printed'][1]}")
        return
    if "same" not in row:
        print(f"{name:40} autograd: {a['status'][:60]} | fastgrad: {f['status'][:90]}")
        return
    loop = (f"loop {f['loop']:.2f}s/{a['loop']:.2f}s = {row['loop_ratio']:.2f}"
            if row["loop_ratio"] else "")
    print(f"{name:40} {'same' if row['same'] else 'DIFFERENT'} ({row['numbers']} numbers, "
          f"max rel {row['worst']:.1e})  total {f['total']:.2f}s/{a['total']:.2f}s = "
          f"{row['total_ratio']:.2f}  {loop}")


if __name__ == "__main__":
    sys.exit(main())
