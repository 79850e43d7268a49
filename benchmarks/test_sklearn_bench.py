"""fastgrad beside scikit-learn's MLPClassifier: wall time to reach the same test accuracy.

Issue 6's measurement. scikit-learn's ``MLPClassifier`` is backpropagation written by
hand in NumPy, the library people already use for this. Both train the same network on
the same data, from the same initial weights, with the same optimizer, epoch by epoch,
until the test accuracy reaches ``TARGET``; the clock runs from an untrained model to the
epoch that reaches it (model construction, fastgrad.compile's trace, the per-epoch
test-set evaluation and sklearn's per-call input checks included).

    python benchmarks/test_sklearn_bench.py                      # default threads
    python benchmarks/test_sklearn_bench.py --threads both --rounds 7 --json out.json
    pytest benchmarks/test_sklearn_bench.py --benchmark-only

What is the same for every implementation:

- data: ``fastgrad.datasets.load_digits(dtype=float32)``, its fixed 1442/355 split
  (sklearn keeps float32 input in float32);
- network: 64-100-10, logistic (sigmoid) hidden layer, softmax output, mean
  cross-entropy over the batch, no L2 term (sklearn ``alpha=0``);
- initial weights: sklearn's own Glorot-uniform draw (±√(2/(fan_in+fan_out)) from
  ``RandomState(seed)``), reproduced here and loaded into fastgrad's model
  (``test_same_initial_weights`` checks the reproduction);
- optimizer: SGD, constant learning rate ``LR``, momentum 0.9 (heavy ball:
  sklearn ``nesterovs_momentum=False``, equal to fastgrad's/PyTorch's form), batch 32,
  a fresh shuffle every epoch (each library draws its own order from the seed);
- sklearn trains one epoch per ``partial_fit`` call, which keeps the optimizer's
  velocities across epochs (``warm_start`` + ``fit`` would reset them every epoch). Its
  ``random_state`` is a ``RandomState`` instance: with an int, every ``partial_fit``
  would reseed and repeat the same shuffle.

Timing follows MEASURING.md: rounds, each visiting the implementations in a fresh random
order; round r uses seed r for every implementation (so the same initial weights within
a round), and ratios are taken within a round.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import nn
from fastgrad.datasets import DataLoader, load_digits

TARGET = 0.95  # test accuracy every implementation reaches within a few epochs
SIZES = (64, 100, 10)
LR = 0.1
MOMENTUM = 0.9
BATCH = 32
MAX_EPOCHS = 100
DTYPE = np.float32
IMPLS = ("fastgrad-cython", "fastgrad-reference", "fastgrad-compiled", "sklearn")


def _sklearn():
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    return MLPClassifier


def sklearn_reason():
    return None if _sklearn() else "scikit-learn is not installed (pip install scikit-learn)"


def glorot_init(seed):
    """sklearn's MLP initial weights for a logistic network: [(W (in, out), b), ...]."""
    rs = np.random.RandomState(seed)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=False):
        bound = np.sqrt(2.0 / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(DTYPE)
        b = rs.uniform(-bound, bound, fan_out).astype(DTYPE)
        params.append((W, b))
    return params


_DATA = None


def data():
    global _DATA
    if _DATA is None:
        _DATA = load_digits(dtype=DTYPE)
    return _DATA


# -- one run: an untrained model → the first epoch with test accuracy ≥ TARGET ------------


def train_fastgrad(seed, backend="cython", compiled=False, target=TARGET):
    X, y, Xt, yt = data()
    start = time.perf_counter()
    with fg.use_backend(backend):
        model = nn.MLP(list(SIZES), activation="sigmoid", dtype=DTYPE, rng=seed)
        names = [name for name, _ in model.named_parameters()]
        state = {}
        for (W, b), wname, bname in zip(glorot_init(seed), names[0::2], names[1::2], strict=False):
            state[wname], state[bname] = W.T, b  # fastgrad's W is (out, in)
        model.load_state_dict(state)
        opt = fg.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loader = DataLoader(X, y, batch_size=BATCH, shuffle=True, seed=np.random.default_rng(seed))
        if compiled:  # as `fastgrad train --compile`: one-hot rows, made outside the step
            one_hot = np.eye(SIZES[-1], dtype=DTYPE)

            def step_fn(x, t):
                opt.zero_grad()
                loss = nn.cross_entropy(model(x), t)
                loss.backward()
                opt.step()
                return loss

            compiled_step = fg.compile(step_fn, keep_grads=False)
            step = lambda xb, yb: compiled_step(xb, one_hot[yb])
        else:

            def step(xb, yb):
                opt.zero_grad()
                loss = nn.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()

        acc, epochs = 0.0, 0
        while acc < target and epochs < MAX_EPOCHS:
            for xb, yb in loader:
                step(xb, yb)
            epochs += 1
            with fg.no_grad():
                acc = float(np.mean(np.argmax(model(Xt).data, axis=1) == yt))
    return epochs, time.perf_counter() - start, acc


def train_sklearn(seed, target=TARGET):
    import warnings

    MLPClassifier = _sklearn()
    X, y, Xt, yt = data()
    classes = np.arange(SIZES[-1])
    start = time.perf_counter()
    clf = MLPClassifier(
        hidden_layer_sizes=SIZES[1:-1],
        activation="logistic",
        solver="sgd",
        alpha=0.0,
        batch_size=BATCH,
        learning_rate="constant",
        learning_rate_init=LR,
        momentum=MOMENTUM,
        nesterovs_momentum=False,
        shuffle=True,
        random_state=np.random.RandomState(seed),  # an int would reseed every call
        early_stopping=False,
    )
    acc, epochs = 0.0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while acc < target and epochs < MAX_EPOCHS:
            clf.partial_fit(X, y, classes=classes)  # one epoch, velocities kept
            epochs += 1
            acc = float(np.mean(clf.predict(Xt) == yt))
    return epochs, time.perf_counter() - start, acc


RUNNERS = {
    "fastgrad-cython": lambda seed: train_fastgrad(seed, "cython"),
    "fastgrad-reference": lambda seed: train_fastgrad(seed, "reference"),
    "fastgrad-compiled": lambda seed: train_fastgrad(seed, "cython", compiled=True),
    "sklearn": train_sklearn,
}


def available(name):
    if name == "sklearn":
        return sklearn_reason()
    if name == "fastgrad-reference" and "reference" not in fg.available_backends():
        return "fastgrad's reference backend is not available"
    if name != "fastgrad-reference" and "cython" not in fg.available_backends():
        return "fastgrad's cython backend is not available"
    if name == "fastgrad-compiled" and not hasattr(fg, "compile"):
        return "this fastgrad has no fastgrad.compile"
    return None


def measure(names=IMPLS, rounds=5, seed0=0, order_seed=0):
    """Interleaved rounds; round r trains every implementation from seed seed0 + r.

    Returns {name: [(epochs, seconds, accuracy) per round]}.
    """
    names = [n for n in names if available(n) is None]
    for name in names:  # warm: imports, the compiled extension, sklearn's first call
        RUNNERS[name](seed0)
    rng = random.Random(order_seed)
    runs = {n: [] for n in names}
    for r in range(rounds):
        order = list(names)
        rng.shuffle(order)
        for name in order:
            runs[name].append(RUNNERS[name](seed0 + r))
    return runs


def summarise(runs, baseline="sklearn"):
    """Medians, and per-round ratios of seconds (and seconds per epoch) to the baseline."""
    out = {}
    base = runs.get(baseline)
    for name, rs in runs.items():
        epochs = [e for e, _, _ in rs]
        secs = [s for _, s, _ in rs]
        row = {
            "epochs": epochs,
            "seconds": secs,
            "accuracy": [a for _, _, a in rs],
            "reached": all(a >= TARGET for _, _, a in rs),
            "median_epochs": statistics.median(epochs),
            "median_s": statistics.median(secs),
            "median_s_per_epoch": statistics.median(s / e for e, s, _ in rs),
        }
        if base:
            ratios = sorted(s / b[1] for (_, s, _), b in zip(rs, base, strict=False))
            per_epoch = sorted((s / e) / (b[1] / b[0]) for (e, s, _), b in zip(rs, base, strict=False))
            row["ratio"] = [statistics.median(ratios), ratios[0], ratios[-1]]
            row["ratio_per_epoch"] = [statistics.median(per_epoch), per_epoch[0], per_epoch[-1]]
        out[name] = row
    return out


def format_table(summary, title):
    lines = [
        title,
        f"{'implementation':<20}{'epochs':>14}{'seconds':>10}{'s/epoch':>10}"
        f"  {'time ÷ sklearn':<22}{'per epoch ÷ sklearn':<22}",
    ]
    for name, row in summary.items():
        e = row["epochs"]
        epochs = f"{row['median_epochs']:g} ({min(e)}–{max(e)})"
        ratio = lambda r: f"{r[0]:.3f} ({r[1]:.3f}–{r[2]:.3f})" if r else "-"
        lines.append(
            f"{name:<20}{epochs:>14}{row['median_s']:>10.3f}{row['median_s_per_epoch'] * 1e3:>8.1f}ms"
            f"  {ratio(row.get('ratio')):<22}{ratio(row.get('ratio_per_epoch')):<22}"
            + ("" if row["reached"] else "  (did not reach the target in every round)")
        )
    return "\n".join(lines)


# -- pytest ---------------------------------------------------------------------------------


def _skip_if_missing(name):
    reason = available(name)
    if reason:
        pytest.skip(reason)


def test_same_initial_weights():
    """sklearn's first weights are glorot_init's: train with a vanishing learning rate."""
    _skip_if_missing("sklearn")
    import warnings

    X, y, _, _ = data()
    clf = _sklearn()(
        hidden_layer_sizes=SIZES[1:-1],
        activation="logistic",
        solver="sgd",
        alpha=0.0,
        batch_size=BATCH,
        learning_rate_init=1e-300,
        momentum=0.0,
        random_state=np.random.RandomState(3),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X[:64], y[:64], classes=np.arange(10))
    for (W, b), W_sk, b_sk in zip(glorot_init(3), clf.coefs_, clf.intercepts_, strict=False):
        assert W_sk.dtype == DTYPE
        np.testing.assert_array_equal(W, W_sk)
        np.testing.assert_array_equal(b, b_sk)


@pytest.mark.parametrize("name", IMPLS)
def test_time_to_target(benchmark, bench_threads, name):
    """One implementation alone: pytest-benchmark's rounds, seed 0 each time."""
    _skip_if_missing(name)
    RUNNERS[name](0)  # warm
    result = benchmark.pedantic(RUNNERS[name], args=(0,), rounds=3, iterations=1)
    epochs, _, acc = result
    benchmark.group = f"digits 64-100-10 to test accuracy {TARGET}"
    benchmark.extra_info.update(
        suite="sklearn", impl=name, epochs=epochs, accuracy=acc, target=TARGET, threads=bench_threads
    )
    assert acc >= TARGET, f"{name} did not reach {TARGET} in {MAX_EPOCHS} epochs (got {acc:.3f})"


def test_side_by_side(benchmark, bench_threads):
    """Every implementation in interleaved rounds; ratios to sklearn in extra_info."""
    _skip_if_missing("sklearn")
    runs = measure(rounds=3)
    summary = summarise(runs)
    benchmark.group = f"digits 64-100-10 to test accuracy {TARGET}: side by side"
    benchmark.extra_info.update(suite="sklearn-interleaved", target=TARGET, threads=bench_threads, summary=summary)
    benchmark.pedantic(RUNNERS["fastgrad-cython"], args=(0,), rounds=1, iterations=1)
    print("\n" + format_table(summary, f"threads: {bench_threads}"))
    for name, row in summary.items():
        assert row["reached"], f"{name} did not reach {TARGET}: {row['accuracy']}"


# -- command line ----------------------------------------------------------------------------


def main(argv=None):
    from fastgrad.bench import runner

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="default", choices=("default", "1", "both"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if sklearn_reason():
        print(sklearn_reason(), file=sys.stderr)
        return 1
    modes = ["1", "default"] if args.threads == "both" else [args.threads]
    report = {"target": TARGET, "lr": LR, "momentum": MOMENTUM, "batch": BATCH, "runs": {}}
    for mode in modes:
        with runner.thread_mode(mode) as desc:
            summary = summarise(measure(rounds=args.rounds))
        report["runs"][desc] = summary
        print(
            format_table(
                summary,
                f"digits 64-100-10 to test accuracy ≥ {TARGET} — threads: {desc}, "
                f"{args.rounds} interleaved rounds (seeds 0–{args.rounds - 1}); "
                "ratios per round, median (range)",
            )
        )
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
