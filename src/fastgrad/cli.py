"""The ``fastgrad`` command: ``fastgrad train`` and ``fastgrad bench``.

``fastgrad train`` trains the lecture's multilayer perceptron (sigmoid hidden layers,
linear output) on the 8×8 handwritten digits that ship inside the package, shows a
progress bar per epoch, and ends with the line ``test accuracy: 0.xxx``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

LOSSES = ("cross-entropy", "squared")
OPTIMIZERS = ("sgd", "adam")
BACKENDS = ("cython", "reference")
DTYPES = ("float32", "float64")

# Defaults picked to reach ≥ 0.95 test accuracy in about a second on either backend.
DEFAULTS = dict(
    hidden="100",
    epochs=20,
    batch_size=32,
    lr={"sgd": 0.1, "adam": 0.01},
    momentum=0.9,
    optimizer="sgd",
    loss="cross-entropy",
    dtype="float32",
    seed=0,
)


# --------------------------------------------------------------------- arguments --


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _hidden_sizes(text: str) -> list[int]:
    """'100' → [100];  '128,64' → [128, 64];  '' or 'none' → [] (no hidden layer)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive integers such as 100 or 128,64, got {text!r}"
            ) from None
        if size <= 0:
            raise argparse.ArgumentTypeError(
                f"hidden layer sizes must be positive, got {size} in {text!r}"
            )
        sizes.append(size)
    return sizes


def build_parser() -> argparse.ArgumentParser:
    import fastgrad

    parser = argparse.ArgumentParser(
        prog="fastgrad",
        description="fastgrad: reverse-mode automatic differentiation for NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"fastgrad {fastgrad.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = DEFAULTS
    train = parser.train_parser = sub.add_parser(
        "train",
        help="train the lecture's MLP on the bundled 8x8 digits",
        description=(
            "Train the lecture's multilayer perceptron (sigmoid hidden layers, linear "
            "output) on the 8x8 handwritten digits shipped with fastgrad (UCI Optical "
            "Recognition of Handwritten Digits, CC BY 4.0), and report the test accuracy."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument(
        "--hidden",
        type=_hidden_sizes,
        default=d["hidden"],
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (e.g. 128,64)",
    )
    train.add_argument("--epochs", type=_positive_int, default=d["epochs"])
    train.add_argument("--batch-size", type=_positive_int, default=d["batch_size"])
    train.add_argument(
        "--lr",
        type=_non_negative_float,
        default=None,
        help="learning rate (default: 0.1 for sgd, 0.01 for adam)",
    )
    train.add_argument(
        "--momentum",
        type=_non_negative_float,
        default=d["momentum"],
        help="SGD momentum (0 for the lecture's plain gradient descent)",
    )
    train.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        default=0.0,
        help="L2 weight decay λ (adds λ w to each w̄)",
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"])
    train.add_argument(
        "--loss",
        choices=LOSSES,
        default=d["loss"],
        help="cross-entropy (softmax on the outputs) or the lecture's squared "
        "error against one-hot targets",
    )
    train.add_argument("--activation", choices=("sigmoid", "relu", "tanh"), default="sigmoid")
    train.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="kernel backend (default: fastgrad's default, normally cython)",
    )
    train.add_argument("--dtype", choices=DTYPES, default=d["dtype"])
    train.add_argument(
        "--seed", type=int, default=d["seed"], help="seed for the initial weights and the shuffling"
    )
    train.add_argument(
        "--plot",
        metavar="PATH",
        default=None,
        help="save the loss curve as an image (needs matplotlib)",
    )
    train.add_argument(
        "--save", metavar="PATH", default=None, help="save the trained parameters to an .npz file"
    )
    train.add_argument(
        "--compile",
        action="store_true",
        help="trace the training step once with fastgrad.compile and replay it compiled",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training on MPI: run under mpiexec -n N (needs mpi4py); "
        "--batch-size is then the global batch (docs/distributed.md)",
    )
    train.add_argument(
        "--no-progress", action="store_true", help="no progress bar: one line per epoch"
    )
    train.add_argument(
        "--quiet", "-q", action="store_true", help="print only the final loss and test accuracy"
    )

    sub.add_parser(
        "bench",
        help="time the backends (and NumPy, PyTorch, autograd, JAX where installed)",
        add_help=False,
        description="All arguments after 'bench' go to the benchmark runner; see "
        "'fastgrad bench --help'.",
    )
    return parser


# ------------------------------------------------------------------------- train --


def _check_train_args(parser, args, n_train):
    """Checks that need more than one option or the data; parser.error exits with 2."""
    if args.batch_size > n_train:
        parser.error(
            f"argument --batch-size: {args.batch_size} is larger than the {n_train} training images"
        )
    if args.backend is not None:
        import fastgrad

        available = fastgrad.available_backends()
        if args.backend not in available:
            parser.error(
                f"argument --backend: {args.backend!r} is not available on this install "
                f"(available: {', '.join(available)})"
            )
    if args.plot is not None:
        directory = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(directory):
            parser.error(f"argument --plot: directory {directory!r} does not exist")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(
                "argument --plot needs matplotlib, which is not installed; "
                "install it with: pip install 'fastgrad[train]'  (or pip install matplotlib)"
            )
    if args.save is not None:
        directory = os.path.dirname(os.path.abspath(args.save))
        if not os.path.isdir(directory):
            parser.error(f"argument --save: directory {directory!r} does not exist")


def _progress(iterable, total, desc, enabled):
    """tqdm if installed and wanted, else the plain iterable (and a line per epoch)."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(
            iterable,
            total=total,
            desc=desc,
            leave=True,
            unit="batch",
            dynamic_ncols=True,
            file=sys.stderr,
        )
    return None


def train(args, out=None) -> dict:
    """Train as ``fastgrad train`` does; returns the measured figures."""
    out = sys.stdout if out is None else out
    import fastgrad as fg
    from fastgrad import nn, optim
    from fastgrad.datasets import DIGITS_ATTRIBUTION, DataLoader, load_digits

    if args.lr is None:
        args.lr = DEFAULTS["lr"][args.optimizer]
    dtype = np.dtype(args.dtype)
    X_train, y_train, X_test, y_test = load_digits(dtype=dtype)
    n_classes = 10
    sizes = [X_train.shape[1], *args.hidden, n_classes]
    model = nn.MLP(
        sizes, activation=args.activation, dtype=dtype, rng=np.random.default_rng(args.seed)
    )
    if args.optimizer == "sgd":
        opt = optim.SGD(
            model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
    else:
        opt = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    one_hot = np.eye(n_classes, dtype=dtype)
    if args.loss == "squared":
        # The lecture's ℒ = ½‖y − t‖² against one-hot targets t.
        loss_fn = lambda y, labels: nn.squared_error(y, one_hot[labels])
    else:
        loss_fn = nn.cross_entropy
    step = None
    if getattr(args, "compile", False):
        # The compiled plan takes arrays: integer labels for cross-entropy, one-hot target
        # rows (made outside the step) for the squared error.
        squared = args.loss == "squared"
        rows_loss = nn.squared_error if squared else nn.cross_entropy

        def step_fn(x, t):
            opt.zero_grad()
            loss = rows_loss(model(x), t)
            loss.backward()
            opt.step()
            return loss

        compiled = fg.compile(step_fn, keep_grads=False)
        step = lambda xb, yb: float(np.asarray(compiled(xb, one_hot[yb] if squared else yb)))
    loader = DataLoader(
        X_train,
        y_train,
        batch_size=args.batch_size,
        shuffle=True,
        seed=np.random.default_rng([args.seed, 1]),
    )

    def say(*lines):
        if not args.quiet:
            for line in lines:
                print(line, file=out)

    backend = args.backend or fg.get_backend()
    say(
        f"fastgrad train: MLP {'-'.join(map(str, sizes))} ({args.activation} hidden, linear "
        f"output), {args.loss} loss, {args.optimizer} lr={args.lr:g}"
        + (" compiled" if getattr(args, "compile", False) else "")
        + (f" momentum={args.momentum:g}" if args.optimizer == "sgd" else "")
        + f", {args.dtype}, backend {backend}, seed {args.seed}",
        f"data: {len(X_train)} train / {len(X_test)} test images; {DIGITS_ATTRIBUTION}",
    )

    batch_losses, epoch_losses = [], []
    start = time.perf_counter()
    # Overflow is caught below as a non-finite loss, with advice instead of a warning.
    with fg.use_backend(backend), np.errstate(over="ignore", invalid="ignore"):
        model.train()
        for epoch in range(1, args.epochs + 1):
            desc = f"epoch {epoch}/{args.epochs}"
            bar = _progress(loader, len(loader), desc, not (args.no_progress or args.quiet))
            total, count = 0.0, 0
            for xb, yb in bar if bar is not None else loader:
                if step is not None:
                    value = step(xb, yb)
                else:
                    opt.zero_grad()
                    loss = loss_fn(model(xb), yb)
                    loss.backward()
                    opt.step()
                    value = loss.item()
                if not np.isfinite(value):
                    if bar is not None:
                        bar.close()
                    raise FloatingPointError(
                        f"the loss became {value} in epoch {epoch}: the learning rate "
                        f"{args.lr:g} is too large for this model; try a smaller --lr"
                    )
                batch_losses.append(value)
                total += value * len(yb)
                count += len(yb)
                if bar is not None:
                    bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
            epoch_losses.append(total / count)
            if bar is not None:  # the finished bar stays on screen with the epoch's loss
                bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}", refresh=False)
                bar.close()
            else:
                say(f"{desc}  loss {epoch_losses[-1]:.4f}")
        model.eval()
        with fg.no_grad():
            scores = model(X_test).data
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y_test))

    print(f"final loss: {epoch_losses[-1]:.4f}", file=out)
    print(f"test accuracy: {accuracy:.3f}", file=out)
    say(f"time: {seconds:.2f} s ({args.epochs} epochs, {len(batch_losses)} steps)")
    if args.save is not None:
        model.save(args.save)
        say(f"saved parameters to {args.save}")
    if args.plot is not None:
        _plot(args.plot, batch_losses, epoch_losses, len(loader), args)
        say(f"saved loss curve to {args.plot}")
    return dict(
        final_loss=epoch_losses[-1],
        test_accuracy=accuracy,
        seconds=seconds,
        epoch_losses=epoch_losses,
        batch_losses=batch_losses,
    )


def _plot(path, batch_losses, epoch_losses, steps_per_epoch, args):
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works without a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    steps = np.arange(1, len(batch_losses) + 1) / steps_per_epoch
    ax.plot(steps, batch_losses, lw=0.6, alpha=0.4, label="mini-batch")
    # An epoch's mean loss is plotted at the middle of that epoch.
    ax.plot(np.arange(len(epoch_losses)) + 0.5, epoch_losses, "o-", ms=3, label="epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{args.loss} loss")
    ax.set_yscale("log")
    hidden = ",".join(map(str, args.hidden)) or "none"
    ax.set_title(f"fastgrad train: digits, hidden {hidden}, {args.dtype}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -------------------------------------------------------------------------- main --


def _bench(argv) -> int:
    try:
        from fastgrad.bench.runner import main as bench_main
    except ImportError as exc:
        print(f"fastgrad bench: the benchmark runner is not available ({exc})", file=sys.stderr)
        return 1
    result = bench_main(list(argv))
    return 0 if result is None else int(result)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "bench":  # everything after it belongs to the runner
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from fastgrad.datasets import load_digits

        n_train = len(load_digits()[1])
        _check_train_args(parser.train_parser, args, n_train)
        from fastgrad import distributed

        if args.distributed and args.compile:
            parser.train_parser.error("--compile does not work with --distributed yet")
        if not args.distributed:
            distributed._warn_independent_copies("fastgrad train")
        try:
            (distributed.train if args.distributed else train)(args)
        except (FloatingPointError, distributed.DistributedError) as exc:
            print(f"fastgrad train: error: {exc}", file=sys.stderr)
            return 1
        return 0
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2
