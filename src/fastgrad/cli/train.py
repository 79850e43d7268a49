"""``fastgrad train``: data → :func:`build_model` → :func:`fit` → :func:`report`.

Each stage is one function, so an option that changes one stage (a data source, a
model, a way to run the steps) touches that function alone. Options are checked first,
output paths next, then the data are read; only then does training start.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import (
    CLIError,
    atomic_write,
    check_backend,
    modelfile,
    non_negative_float,
    output_path,
    plot_path,
    positive_float,
    positive_int,
    seed,
    unit_interval,
)
from .data import describe_classes, encode, read_labelled

LOSSES = ("cross-entropy", "squared")
OPTIMIZERS = ("sgd", "adam", "adamw")
BACKENDS = ("cython", "reference")
DTYPES = ("float32", "float64")
ACTIVATIONS = ("sigmoid", "relu", "tanh")
# Defaults picked to reach ≥ 0.95 test accuracy on the digits in about a second.
DEFAULT_LR = {"sgd": 0.1, "adam": 0.01, "adamw": 0.01}
DEFAULT_MOMENTUM = 0.9
DEFAULT_VAL_SPLIT = 0.1  # with --data; the digits have a fixed test split instead
EVAL_CHUNK = 8192  # rows per forward pass when evaluating (bounds the memory)


def _hidden_sizes(text: str) -> list[int]:
    """'100' → [100];  '128,64' → [128, 64];  '' or 'none' → [] (no hidden layer)."""
    import argparse

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
            raise argparse.ArgumentTypeError(f"hidden layer sizes must be positive, got {size} in {text!r}")
        sizes.append(size)
    return sizes


def add_parser(sub, formatter):
    p = sub.add_parser(
        "train",
        help="train an MLP on the bundled 8x8 digits, or on your own data (--data)",
        description=(
            "Train the lecture's multilayer perceptron (sigmoid hidden layers, linear "
            "output) on the 8x8 handwritten digits shipped with fastgrad (UCI Optical "
            "Recognition of Handwritten Digits, CC BY 4.0) or on your own data (--data), "
            "and report the test (or validation) accuracy."
        ),
        formatter_class=formatter,
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="train on FILE instead of the digits: a CSV of numbers, one example per line, "
        "the LAST column the label (an integer class or a name; a header line is allowed), "
        "or an .npz with arrays X (features, one row per example) and y (labels)",
    )
    p.add_argument(
        "--val-split",
        type=unit_interval,
        metavar="F",
        help=f"fraction of the training rows held out to measure accuracy after each epoch "
        f"(default: {DEFAULT_VAL_SPLIT} with --data; 0 for the digits, which have a test split)",
    )
    p.add_argument(
        "--early-stop",
        type=positive_int,
        metavar="N",
        help="stop after N epochs without a better validation accuracy, and keep the best "
        "weights (needs a validation split)",
    )
    p.add_argument(
        "--hidden",
        type=_hidden_sizes,
        default="100",
        metavar="SIZES",
        help="hidden layer sizes, comma-separated (e.g. 128,64; none for no hidden layer)",
    )
    p.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid", help="hidden layers' activation")
    p.add_argument("--epochs", type=positive_int, default=20, metavar="N", help="passes over the training rows")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="examples per step")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd (with momentum), adam or adamw")
    p.add_argument(
        "--lr",
        type=positive_float,
        metavar="ETA",
        help="learning rate (default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")",
    )
    p.add_argument(
        "--momentum",
        type=unit_interval,
        metavar="MU",
        help=f"SGD momentum in [0, 1); 0 is the lecture's plain gradient descent "
        f"(default: {DEFAULT_MOMENTUM}; sgd only)",
    )
    p.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=0.0,
        metavar="LAMBDA",
        help="weight decay λ: L2 (adds λw to each w̄) for sgd and adam, decoupled for adamw",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default="cross-entropy",
        help="cross-entropy (softmax on the outputs) or the lecture's squared error against one-hot targets",
    )
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="floating-point type of the model and data")
    p.add_argument("--backend", choices=BACKENDS, help="kernel backend (default: fastgrad's, normally cython)")
    p.add_argument(
        "--seed", type=seed, default=0, help="seed (>= 0) for the initial weights, the split and the shuffling"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="trace the training step once with fastgrad.compile and replay it compiled",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training on MPI: run under mpiexec -n N (needs mpi4py); "
        "--batch-size is then the global batch, and only the first process prints and "
        "saves (docs/distributed.md)",
    )
    p.add_argument(
        "--save",
        metavar="PATH",
        help="save the model (weights, architecture, classes) to PATH (.npz added if absent), "
        "for fastgrad evaluate/predict",
    )
    p.add_argument(
        "--plot", metavar="PATH", help="save the loss curve as an image (needs matplotlib; .png if no extension)"
    )
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object, nothing else")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: one line per epoch")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final loss and accuracy")
    p.set_defaults(run=run)
    return p


# --------------------------------------------------------------------------- data --


@dataclass
class TrainData:
    """Training rows, optional validation and test rows, the class labels, a description."""

    X_train: np.ndarray
    y_train: np.ndarray
    classes: np.ndarray
    source: str  # "digits" or the data file's name
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    notes: list = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{len(self.X_train)} train"]
        if self.X_val is not None:
            parts.append(f"{len(self.X_val)} validation")
        if self.X_test is not None:
            parts.append(f"{len(self.X_test)} test")
        what = "images" if self.source == "digits" else "rows"
        text = f"data: {self.source}: {' / '.join(parts)} {what}"
        if self.source != "digits":
            text += (
                f", {self.X_train.shape[1]} features, {len(self.classes)} classes ({describe_classes(self.classes)})"
            )
        return "; ".join([text, *self.notes])


def _split(X, y, fraction, seed_value):
    """(X_train, y_train, X_val, y_val): a seeded random ``fraction`` held out (at least one row)."""
    if not fraction:
        return X, y, None, None
    n = len(X)
    n_val = max(1, round(fraction * n))
    if n - n_val < 1:
        raise CLIError(f"argument --val-split: {fraction:g} of {n} rows leaves none to train on", 2)
    order = np.random.default_rng([seed_value, 2]).permutation(n)
    train, val = order[n_val:], order[:n_val]
    return X[train], y[train], X[val], y[val]


def load_data(args) -> TrainData:
    dtype = np.dtype(args.dtype)
    if args.data is None:
        from fastgrad.datasets import DIGITS_ATTRIBUTION, load_digits

        X_train, y_train, X_test, y_test = load_digits(dtype=dtype)
        fraction = args.val_split or 0.0
        X_train, y_train, X_val, y_val = _split(X_train, y_train, fraction, args.seed)
        return TrainData(
            X_train,
            y_train,
            np.arange(10),
            "digits",
            X_val,
            y_val,
            X_test,
            y_test,
            notes=[DIGITS_ATTRIBUTION],
        )
    labelled = read_labelled(args.data)
    classes, y = encode(args.data, labelled.labels)
    fraction = DEFAULT_VAL_SPLIT if args.val_split is None else args.val_split
    X_train, y_train, X_val, y_val = _split(labelled.X.astype(dtype), y, fraction, args.seed)
    return TrainData(X_train, y_train, classes, os.path.basename(args.data), X_val, y_val)


# -------------------------------------------------------------------------- model --


def build_model(args, data: TrainData):
    """The MLP for this data, and what a model file records about it."""
    sizes = [data.X_train.shape[1], *args.hidden, len(data.classes)]
    info = modelfile.ModelInfo(
        sizes=sizes,
        activation=args.activation,
        dtype=args.dtype,
        classes=data.classes,
        loss=args.loss,
        data=data.source,
        x_range=(float(data.X_train.min()), float(data.X_train.max())),
    )
    return modelfile.build(info, rng=np.random.default_rng(args.seed)), info


def make_optimizer(args, model):
    from fastgrad import optim

    params = model.parameters()
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    if args.optimizer == "adam":
        return optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    return optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)


def _loss_function(args, n_classes, dtype):
    """ℒ(y, labels): cross-entropy, or the lecture's ½‖y − t‖² against one-hot targets t."""
    from fastgrad import nn

    if args.loss == "squared":
        one_hot = np.eye(n_classes, dtype=dtype)
        return (lambda y, labels: nn.squared_error(y, one_hot[labels])), one_hot
    return nn.cross_entropy, None


def scores(model, X) -> np.ndarray:
    """The model's outputs for X, in chunks, recording nothing."""
    import fastgrad as fg

    was_training = model.training
    model.eval()
    try:
        with fg.no_grad():
            return np.concatenate([model(X[i : i + EVAL_CHUNK]).data for i in range(0, len(X), EVAL_CHUNK)])
    finally:
        model.train(was_training)


def accuracy(model, X, y) -> float:
    return float(np.mean(np.argmax(scores(model, X), axis=1) == y))


def _mean_loss(model, loss_fn, X, y) -> float:
    import fastgrad as fg

    total = 0.0
    with fg.no_grad():
        for i in range(0, len(X), EVAL_CHUNK):
            total += loss_fn(model(X[i : i + EVAL_CHUNK]), y[i : i + EVAL_CHUNK]).item() * len(X[i : i + EVAL_CHUNK])
    return total / len(X)


# ------------------------------------------------------------------------- train --


@dataclass
class Result:
    batch_losses: list = field(default_factory=list)
    epoch_losses: list = field(default_factory=list)
    val_accuracies: list = field(default_factory=list)
    initial_loss: float = float("nan")  # on all training rows, before the first step
    final_loss: float = float("nan")  # on all training rows, with the weights kept
    best_epoch: int | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    steps_per_epoch: int = 0

    @property
    def epochs(self) -> int:
        return len(self.epoch_losses)


def _progress_bar(total, enabled):
    """One tqdm bar for the whole run (stderr), or None: no tqdm, or not wanted."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="batch", dynamic_ncols=True, file=sys.stderr, leave=True)


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def fit(args, model, data: TrainData, say=lambda line: None) -> Result:
    """Train ``model`` in place; returns the losses. Raises CLIError when training diverges.

    With ``--early-stop`` the weights of the best validation epoch are put back at the end.
    """
    import fastgrad as fg
    from fastgrad.datasets import DataLoader

    dtype = np.dtype(args.dtype)
    opt = make_optimizer(args, model)
    comm = getattr(args, "comm", None)  # --distributed: this process's communicator
    loss_fn, one_hot = _loss_function(args, len(data.classes), dtype)
    step = None
    if args.compile:
        # The compiled plan takes arrays: integer labels for cross-entropy, one-hot target
        # rows (made outside the step) for the squared error.
        from fastgrad import nn

        rows_loss = nn.squared_error if one_hot is not None else nn.cross_entropy

        def step_fn(x, t):
            opt.zero_grad()
            loss = rows_loss(model(x), t)
            loss.backward()
            opt.step()
            return loss

        compiled = fg.compile(step_fn, keep_grads=False)
        step = lambda xb, yb: float(np.asarray(compiled(xb, yb if one_hot is None else one_hot[yb])))
    # One seed for the shuffling, so every process (with --distributed) and a single one
    # see the same global batches; a DistributedLoader hands each process its slice.
    shuffle_seed = np.random.default_rng([args.seed, 1])
    if comm is not None:
        from fastgrad import distributed

        opt = distributed.DistributedOptimizer(opt, comm=comm)
        loader = distributed.DistributedLoader(data.X_train, data.y_train, batch_size=args.batch_size,
                                               shuffle=True, seed=shuffle_seed, comm=comm)
    else:
        loader = DataLoader(data.X_train, data.y_train, batch_size=args.batch_size, shuffle=True,
                            seed=shuffle_seed)
    result = Result(steps_per_epoch=len(loader))
    validate = data.X_val is not None
    best_accuracy, best_state = -1.0, None
    bar = _progress_bar(args.epochs * len(loader), not (args.no_progress or args.quiet))
    start = time.perf_counter()
    # Overflow is caught below as a non-finite loss, with advice instead of a warning.
    with fg.use_backend(args.backend or fg.get_backend()), np.errstate(over="ignore", invalid="ignore"):
        result.initial_loss = _mean_loss(model, loss_fn, data.X_train, data.y_train)
        model.train()
        try:
            for epoch in range(1, args.epochs + 1):
                desc = f"epoch {epoch}/{args.epochs}"
                if bar is not None:
                    bar.set_description(desc, refresh=False)
                total, count = 0.0, 0
                for batch in loader:
                    xb, yb = batch[0], batch[1]
                    n = len(yb)
                    if comm is not None:  # this slice, then one Allreduce: the global batch's loss
                        opt.zero_grad()
                        loss = loss_fn(model(xb), yb) if n else None
                        if loss is not None:
                            loss.backward()
                        n = batch[2]
                        value = opt.step(len(yb), n, loss)
                    elif step is not None:
                        value = step(xb, yb)
                    else:
                        opt.zero_grad()
                        loss = loss_fn(model(xb), yb)
                        loss.backward()
                        opt.step()
                        value = loss.item()
                    if not np.isfinite(value):
                        raise CLIError(
                            f"the loss became {value} in epoch {epoch}: the learning rate "
                            f"{args.lr:g} is too large for this model; try a smaller --lr"
                        )
                    result.batch_losses.append(value)
                    total += value * n
                    count += n
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
                result.epoch_losses.append(total / count)
                line = {"loss": f"{total / count:.4f}"}
                if validate:
                    acc = accuracy(model, data.X_val, data.y_val)
                    result.val_accuracies.append(acc)
                    line["val_acc"] = f"{acc:.3f}"
                    if acc > best_accuracy:
                        best_accuracy, result.best_epoch = acc, epoch
                        if args.early_stop:
                            best_state = model.state_dict()
                if bar is not None:
                    bar.set_postfix(line, refresh=True)
                else:
                    say(f"{desc}  " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in line.items()))
                if args.early_stop and epoch - result.best_epoch >= args.early_stop:
                    result.stopped_early = True
                    break
        finally:
            if bar is not None:
                bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        result.seconds = time.perf_counter() - start
        # Diverged: the trained model fits its training rows worse than the untrained one.
        result.final_loss = _mean_loss(model, loss_fn, data.X_train, data.y_train)
    if not result.final_loss <= result.initial_loss * (1 + 1e-3):
        raise CLIError(
            f"training diverged: the loss on the training rows rose from "
            f"{result.initial_loss:.4g} to {result.final_loss:.4g} in {_plural(result.epochs, 'epoch')}; "
            f"the learning rate {args.lr:g} is too large for this model; try a smaller --lr"
        )
    return result


# ------------------------------------------------------------------------ report --


def report(args, model, info, data: TrainData, result: Result, outputs: dict, out=None) -> dict:
    """Print the results (and write --save/--plot); returns the metrics as a dict."""
    out = sys.stdout if out is None else out
    verbose = not (args.quiet or args.json)
    metrics = {
        "final_loss": result.epoch_losses[-1],
        "test_accuracy": None,
        "val_accuracy": None,
        "best_epoch": result.best_epoch if args.early_stop else None,
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "steps": len(result.batch_losses),
        "seconds": result.seconds,
        "data": data.source,
        "model": info.architecture(),
        "files": {},
    }
    if data.X_val is not None:
        metrics["val_accuracy"] = accuracy(model, data.X_val, data.y_val)
    if data.X_test is not None:
        metrics["test_accuracy"] = accuracy(model, data.X_test, data.y_test)
    if outputs.get("save"):
        modelfile.save(outputs["save"], model, info)
        metrics["files"]["model"] = outputs["save"]
    if outputs.get("plot"):
        _plot(outputs["plot"], args, result, info)
        metrics["files"]["plot"] = outputs["plot"]
    if args.json:
        print(json.dumps(metrics), file=out)
        return metrics
    print(f"final loss: {metrics['final_loss']:.4f}", file=out)
    if metrics["val_accuracy"] is not None:
        best = f" (best: epoch {result.best_epoch})" if args.early_stop and verbose else ""
        print(f"validation accuracy: {metrics['val_accuracy']:.3f}{best}", file=out)
    if metrics["test_accuracy"] is not None:
        print(f"test accuracy: {metrics['test_accuracy']:.3f}", file=out)
    if verbose:
        stopped = (
            f"; stopped early: no better validation accuracy for {_plural(args.early_stop, 'epoch')}"
            if result.stopped_early
            else ""
        )
        print(
            f"time: {result.seconds:.2f} s ({_plural(result.epochs, 'epoch')}, "
            f"{_plural(len(result.batch_losses), 'step')}){stopped}",
            file=out,
        )
        if outputs.get("save"):
            print(f"saved model to {outputs['save']}", file=out)
        if outputs.get("plot"):
            print(f"saved loss curve to {outputs['plot']}", file=out)
    return metrics


def _plot(path, args, result: Result, info):
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works without a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    steps = np.arange(1, len(result.batch_losses) + 1) / result.steps_per_epoch
    ax.plot(steps, result.batch_losses, lw=0.6, alpha=0.4, label="mini-batch")
    # An epoch's mean loss is plotted at the middle of that epoch.
    epochs = np.arange(result.epochs) + 0.5
    ax.plot(epochs, result.epoch_losses, "o-", ms=3, label="epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{args.loss} loss")
    ax.set_yscale("log")
    ax.set_title(f"fastgrad train: {info.data}, {info.architecture()}")
    handles, labels = ax.get_legend_handles_labels()
    if result.val_accuracies:
        acc = ax.twinx()
        acc.plot(
            np.arange(1, result.epochs + 1), result.val_accuracies, "s-", ms=3, color="C2", label="validation accuracy"
        )
        acc.set_ylabel("validation accuracy")
        more = acc.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- run --


def check_options(args) -> None:
    """What one option or a pair of them rules out, before anything is read."""
    if args.momentum is not None and args.optimizer != "sgd":
        raise CLIError(f"argument --momentum: only for --optimizer sgd, not {args.optimizer}", 2)
    if args.momentum is None:
        args.momentum = DEFAULT_MOMENTUM if args.optimizer == "sgd" else 0.0
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if args.compile and args.optimizer == "adamw" and args.weight_decay:
        raise CLIError(
            "argument --compile: AdamW's decoupled weight decay cannot be compiled; "
            "drop --compile, or use --optimizer adam (L2 weight decay)",
            2,
        )
    if args.distributed and args.compile:
        raise CLIError("argument --compile: not with --distributed (a replay would skip the Allreduce)", 2)
    if args.early_stop and args.val_split == 0:
        raise CLIError("argument --early-stop: needs a validation split (--val-split > 0)", 2)
    if args.early_stop and args.data is None and args.val_split is None:
        raise CLIError(
            "argument --early-stop: the digits have no validation split by default; give --val-split (e.g. 0.1)",
            2,
        )
    check_backend(args.backend)


def check_outputs(args) -> dict:
    # --save always ends in .npz and --plot in an image extension: they cannot collide.
    return {
        "save": output_path("--save", args.save, suffix=".npz") if args.save is not None else None,
        "plot": plot_path("--plot", args.plot) if args.plot is not None else None,
    }


def run(args) -> int:
    check_options(args)
    root, limiter = True, None
    if args.distributed:
        from fastgrad import distributed

        args.comm = distributed.init()
        root = args.comm.rank == 0
        limiter = distributed.limit_blas_threads(1) if args.comm.size > 1 else None
        if args.comm.size > 1 and limiter is None and root and not distributed.blas_limited_by_environment():
            print("fastgrad train: warning: threadpoolctl is not installed, so each process's BLAS "
                  "may use every core (processes × threads > cores slows everything down): pip "
                  "install threadpoolctl, or set OPENBLAS_NUM_THREADS=1 for mpiexec", file=sys.stderr)
        if not root:  # only the first process prints and writes
            args.quiet, args.json, args.no_progress = True, False, True
    else:
        from fastgrad.distributed import _warn_independent_copies

        _warn_independent_copies("fastgrad train")
    try:
        return _run(args, root)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _run(args, root) -> int:
    outputs = check_outputs(args) if root else {}
    data = load_data(args)
    if args.batch_size > len(data.X_train):
        raise CLIError(
            f"argument --batch-size: {args.batch_size} is larger than the {len(data.X_train)} "
            f"training rows; use --batch-size {len(data.X_train)} or less",
            2,
        )
    model, info = build_model(args, data)
    if args.distributed:
        from fastgrad import distributed

        distributed.broadcast_parameters(model, comm=args.comm)  # equal already (one seed): certain
    verbose = not (args.quiet or args.json)
    say = (lambda line: print(line)) if verbose else (lambda line: None)
    say(
        f"fastgrad train: {info.architecture()}, {args.loss} loss, {args.optimizer} lr={args.lr:g}"
        + (f" momentum={args.momentum:g}" if args.optimizer == "sgd" else "")
        + (f" weight_decay={args.weight_decay:g}" if args.weight_decay else "")
        + (", compiled" if args.compile else "")
        + f", backend {args.backend or _default_backend()}, seed {args.seed}"
    )
    if args.distributed:
        n = args.comm.size
        say(f"distributed: {_plural(n, 'process').replace('processs', 'processes')}, global batch "
            f"{args.batch_size} (about {args.batch_size / n:.4g} rows each), one BLAS thread each")
    say(data.describe())
    result = fit(args, model, data, say)
    if root:
        report(args, model, info, data, result, outputs)
    return 0


def _default_backend():
    import fastgrad

    return fastgrad.get_backend()
