"""``fastgrad train --distributed``: the CLI's training loop, data-parallel.

The same model, optimizer, data and global batches as ``fastgrad train`` (so N ranks reach
one process's weights up to rounding); ``--batch-size`` is the global batch. Only rank 0
prints, plots and saves; every rank runs BLAS on one thread.
"""

from __future__ import annotations

import io
import sys
import time

import numpy as np

from . import DistributedLoader, DistributedOptimizer, broadcast_parameters, init

__all__ = ["train", "limit_blas_threads"]


def limit_blas_threads(n: int = 1):
    """Limit BLAS (OpenBLAS, MKL, BLIS) to ``n`` threads in this process, now; returns the
    threadpoolctl limiter, or None when threadpoolctl is absent (then set
    OPENBLAS_NUM_THREADS/OMP_NUM_THREADS in the environment before Python starts)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def _blas_limited_by_environment() -> bool:
    import os

    return any(os.environ.get(v) == "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))


def train(args, out=None) -> dict:
    """Train as ``fastgrad train --distributed`` does; returns the figures (on every rank)."""
    import fastgrad as fg
    from fastgrad import cli, nn, optim
    from fastgrad.datasets import DIGITS_ATTRIBUTION, load_digits

    comm = init()
    root = comm.rank == 0
    out = (sys.stdout if out is None else out) if root else io.StringIO()
    limiter = limit_blas_threads(1) if comm.size > 1 else None
    if comm.size > 1 and limiter is None and root and not _blas_limited_by_environment():
        print(
            "fastgrad train: warning: threadpoolctl is not installed, so each rank's BLAS may use "
            "every core (ranks × threads > cores slows everything down): pip install threadpoolctl, "
            "or set OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 for mpiexec",
            file=sys.stderr,
        )
    if getattr(args, "compile", False):
        raise ValueError("--compile does not work with --distributed yet")
    if args.lr is None:
        args.lr = cli.DEFAULTS["lr"][args.optimizer]
    dtype = np.dtype(args.dtype)
    X_train, y_train, X_test, y_test = load_digits(dtype=dtype)
    n_classes = 10
    sizes = [X_train.shape[1], *args.hidden, n_classes]
    model = nn.MLP(sizes, activation=args.activation, dtype=dtype, rng=np.random.default_rng(args.seed))
    broadcast_parameters(model, comm=comm)  # equal already (one seed); this makes it certain
    if args.optimizer == "sgd":
        inner = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    else:
        inner = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    opt = DistributedOptimizer(inner, comm=comm)
    one_hot = np.eye(n_classes, dtype=dtype)
    if args.loss == "squared":
        loss_fn = lambda y, labels: nn.squared_error(y, one_hot[labels])
    else:
        loss_fn = nn.cross_entropy
    # The CLI's DataLoader seed, so the global batches are the ones `fastgrad train` sees.
    loader = DistributedLoader(
        X_train,
        y_train,
        batch_size=args.batch_size,
        shuffle=True,
        seed=np.random.default_rng([args.seed, 1]),
        comm=comm,
    )
    quiet = args.quiet or not root

    def say(*lines):
        if not quiet:
            for line in lines:
                print(line, file=out)

    backend = args.backend or fg.get_backend()
    say(
        f"fastgrad train: MLP {'-'.join(map(str, sizes))} ({args.activation} hidden, linear "
        f"output), {args.loss} loss, {args.optimizer} lr={args.lr:g}"
        + (f" momentum={args.momentum:g}" if args.optimizer == "sgd" else "")
        + f", {args.dtype}, backend {backend}, seed {args.seed}",
        f"distributed: {comm.size} process{'es' if comm.size > 1 else ''}, global batch "
        f"{args.batch_size} (about {args.batch_size / comm.size:.4g} rows each), one BLAS thread each",
        f"data: {len(X_train)} train / {len(X_test)} test images; {DIGITS_ATTRIBUTION}",
    )
    batch_losses, epoch_losses = [], []
    start = time.perf_counter()
    try:
        with fg.use_backend(backend), np.errstate(over="ignore", invalid="ignore"):
            model.train()
            for epoch in range(1, args.epochs + 1):
                desc = f"epoch {epoch}/{args.epochs}"
                bar = cli._progress(loader, len(loader), desc, root and not (args.no_progress or args.quiet))
                total, count = 0.0, 0
                for xb, yb, n_total in bar if bar is not None else loader:
                    opt.zero_grad()
                    loss = None
                    if len(xb):
                        loss = loss_fn(model(xb), yb)
                        loss.backward()
                    value = opt.step(len(xb), n_total, loss)  # the global batch's loss, on every rank
                    if not np.isfinite(value):
                        if bar is not None:
                            bar.close()
                        raise FloatingPointError(
                            f"the loss became {value} in epoch {epoch}: the learning rate "
                            f"{args.lr:g} is too large for this model; try a smaller --lr"
                        )
                    batch_losses.append(value)
                    total += value * n_total
                    count += n_total
                    if bar is not None:
                        bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
                epoch_losses.append(total / count)
                if bar is not None:
                    bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}", refresh=False)
                    bar.close()
                else:
                    say(f"{desc}  loss {epoch_losses[-1]:.4f}")
            model.eval()
            seconds = time.perf_counter() - start
            scores = None
            if root:
                with fg.no_grad():
                    scores = model(X_test).data
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    figures = dict(
        final_loss=epoch_losses[-1],
        seconds=seconds,
        epoch_losses=epoch_losses,
        batch_losses=batch_losses,
        rank=comm.rank,
        size=comm.size,
    )
    if not root:
        return figures
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y_test))
    print(f"final loss: {epoch_losses[-1]:.4f}", file=out)
    print(f"test accuracy: {accuracy:.3f}", file=out)
    say(f"time: {seconds:.2f} s ({args.epochs} epochs, {len(batch_losses)} steps, {comm.size} processes)")
    if args.save is not None:
        model.save(args.save)
        say(f"saved parameters to {args.save}")
    if args.plot is not None:
        cli._plot(args.plot, batch_losses, epoch_losses, len(loader), args)
        say(f"saved loss curve to {args.plot}")
    figures["test_accuracy"] = accuracy
    return figures
