"""Synchronous data-parallel training on MPI (through mpi4py), or in one process.

Every rank holds the whole model. Each global batch is cut into one slice per rank; every
rank runs forward and backward on its slice, the gradients of all ranks are summed in one
Allreduce, and every rank takes the same optimizer step — so N ranks reach the weights one
process would reach on the same global batches (up to float rounding)::

    import fastgrad as fg
    from fastgrad import distributed as dist, nn, optim

    dist.init()                                    # MPI under mpiexec/srun, else size 1
    model = nn.MLP([64, 100, 10], rng=0)
    dist.broadcast_parameters(model)               # rank 0's initial weights everywhere
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
    loader = dist.DistributedLoader(X, y, batch_size=256, seed=0)   # 256 = the global batch
    for epoch in range(10):
        for xb, yb, total in loader:               # this rank's rows of the batch, and all ranks'
            opt.zero_grad()
            loss = nn.cross_entropy(model(xb), yb) if len(xb) else None
            if loss is not None:
                loss.backward()
            global_loss = opt.step(len(xb), total, loss)   # one Allreduce, then SGD

Run it with ``mpiexec -n 4 python train.py`` (``pip install 'fastgrad[mpi]'``; see
docs/distributed.md). Without a launcher, or without mpi4py, the size is 1 and
``DistributedOptimizer.step`` is exactly the wrapped optimizer's ``step``.

The weighting: each rank's loss is the mean over its nᵣ rows, so its gradient is
ḡᵣ = (1/nᵣ) Σ gᵢ over its rows; the global batch's gradient is (1/B) Σᵢ gᵢ = Σᵣ (nᵣ/B) ḡᵣ.
So each rank scales its gradient by nᵣ/B (0 for an empty slice) and the Allreduce sums:
exact for uneven and empty slices, and a term that does not depend on the batch (an L2
penalty) comes out once, since Σᵣ nᵣ/B = 1.
"""

from __future__ import annotations

import sys

import numpy as np

from ._comm import (
    DistributedError,
    MPICommunicator,
    SingleProcess,
    ThreadGroup,
    launcher_rank,
    launcher_size,
    mpi_available,
)
from ._optim import DistributedOptimizer, flatten_parameters

__all__ = [
    "DistributedError",
    "limit_blas_threads",
    "blas_limited_by_environment",
    "init",
    "rank",
    "size",
    "communicator",
    "broadcast_parameters",
    "DistributedLoader",
    "DistributedOptimizer",
    "shard_bounds",
    "SingleProcess",
    "ThreadGroup",
    "MPICommunicator",
    "launcher_size",
    "launcher_rank",
    "mpi_available",
    "flatten_parameters",
]

_current = None  # the communicator init() chose


def init(comm=None):
    """Choose this process's communicator and return it (later calls return the same one).

    ``comm`` may be any communicator (``ThreadGroup(n)[r]``, an ``MPICommunicator``, your
    own object with ``rank``, ``size``, ``allreduce`` and ``broadcast``). Without it: MPI's
    ``COMM_WORLD`` when a launcher (mpiexec, srun) started this process as one of several,
    else ``SingleProcess()`` — MPI is not even initialised then. Under MPI, an uncaught
    exception in any rank aborts the whole job, and so does a rank that exits while
    another waits for it (never a hang).
    """
    global _current
    if comm is not None:
        for name in ("rank", "size", "allreduce", "broadcast"):
            if not hasattr(comm, name):
                raise TypeError(f"init: comm has no {name!r} attribute ({type(comm).__name__})")
        _current = comm
        return comm
    if _current is not None:
        return _current
    expected = launcher_size()
    if expected == 1:
        _current = SingleProcess()
        return _current
    if not mpi_available():
        raise DistributedError(
            f"fastgrad.distributed.init: this process is one of {expected} started by an MPI "
            "launcher, but mpi4py is not installed, so they cannot work together. Install it: "
            "pip install 'fastgrad[mpi]' (and an MPI, e.g. pip install mpich, or your cluster's)"
        )
    comm = MPICommunicator()
    if comm.size != expected:
        raise DistributedError(
            f"fastgrad.distributed.init: the launcher started {expected} processes but MPI sees a "
            f"job of {comm.size}: mpi4py is linked to a different MPI than the mpiexec/srun that "
            "started it (often a pip-installed mpich shadowing the cluster's MPI, or the other "
            "way round; see docs/distributed.md)"
        )
    comm.install_failure_handlers()
    _current = comm
    return comm


def communicator():
    """The communicator in use (``init()`` first if nobody called it)."""
    return init()


def rank() -> int:
    """This process's rank, 0 … size() − 1."""
    return communicator().rank


def size() -> int:
    """How many processes train together (1 without MPI)."""
    return communicator().size


def _reset_for_tests():
    global _current
    _current = None


def broadcast_parameters(model_or_params, root: int = 0, comm=None) -> None:
    """Overwrite every parameter with ``root``'s, in place, in one broadcast.

    ``model_or_params``: a ``Module`` (its ``parameters()``), an optimizer (its ``params``)
    or an iterable of tensors. Call it after building the model, so every rank starts from
    the same weights whatever its seed.
    """
    comm = communicator() if comm is None else comm
    params = _parameters_of(model_or_params, "broadcast_parameters")
    buffer, views = flatten_parameters(params, "broadcast_parameters", extra=0)
    if comm.size == 1:
        return
    for p, view in zip(params, views):
        view[...] = p.data
    comm.broadcast(buffer, root)
    from .._saved import inplace_update
    from ..optim import _owner

    for p, view in zip(params, views):
        with inplace_update(_owner(p)):
            p.data[...] = view


def _parameters_of(thing, owner):
    if hasattr(thing, "parameters") and callable(thing.parameters):
        params = list(thing.parameters())
    elif hasattr(thing, "params") and hasattr(thing, "step"):
        params = list(thing.params)
    else:
        if hasattr(thing, "data") and hasattr(thing, "grad"):
            raise TypeError(f"{owner}: expected a model or an iterable of tensors, got one tensor; wrap it in a list")
        try:
            params = list(thing)
        except TypeError:
            raise TypeError(
                f"{owner}: expected a model, an optimizer or an iterable of tensors, got {type(thing).__name__}"
            ) from None
    if not params:
        raise ValueError(f"{owner}: no parameters")
    return params


# ------------------------------------------------------------------------ sharding --


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of a batch of ``n`` rows that ``rank`` of ``size`` takes: contiguous
    slices in rank order, sizes differing by at most one, empty when n < size."""
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"shard_bounds: rank {rank} is not a rank of a job of size {size}")
    if n < 0:
        raise ValueError(f"shard_bounds: n must be >= 0, got {n}")
    return n * rank // size, n * (rank + 1) // size


class DistributedLoader:
    """This rank's slice of every global batch that ``fastgrad.datasets.DataLoader`` would give.

    Every rank draws the same permutation from the same ``seed`` (a new one each pass, as
    ``DataLoader``), cuts it into global batches of ``batch_size`` rows, and takes its slice
    of each (``shard_bounds``). So the ranks together see exactly one process's batches.
    Yields ``(x, y, total)`` — or ``(x, total)`` when ``y`` is None — where ``total`` is the
    global batch's row count, which ``DistributedOptimizer.step`` needs. A slice may be
    empty (a last batch smaller than the number of ranks): the rank still takes the step.
    """

    def __init__(
        self, X, y=None, batch_size: int = 32, shuffle: bool = True, seed=None, drop_last: bool = False, comm=None
    ):
        from ..datasets import _check_batching, _generator

        self._n = _check_batching(X, y, batch_size)
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = _generator(seed)
        self.comm = communicator() if comm is None else comm

    def __len__(self) -> int:
        if self.drop_last:
            return self._n // self.batch_size
        return -(-self._n // self.batch_size)

    def __iter__(self):
        # The same calls as datasets.iterate_minibatches, so the same batches for one seed.
        order = self._rng.permutation(self._n) if self.shuffle else np.arange(self._n)
        stop = self._n - self._n % self.batch_size if self.drop_last else self._n
        rank, size = self.comm.rank, self.comm.size
        for start in range(0, stop, self.batch_size):
            index = order[start : start + self.batch_size]
            lo, hi = shard_bounds(len(index), rank, size)
            mine = index[lo:hi]
            if self.y is None:
                yield self.X[mine], len(index)
            else:
                yield self.X[mine], self.y[mine], len(index)


def _warn_independent_copies(command: str) -> bool:
    """Warn (once, from the first process) when a launcher started several copies of a
    command that was not asked to work together; True if it warned."""
    n = launcher_size()
    if n > 1 and launcher_rank() == 0:
        print(
            f"{command}: warning: started as one of {n} MPI processes without --distributed: "
            f"{n} independent copies train the same model separately. Add --distributed for "
            "data-parallel training.",
            file=sys.stderr,
        )
        return True
    return False


from ._train import blas_limited_by_environment, limit_blas_threads  # noqa: E402
