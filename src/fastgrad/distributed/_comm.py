"""Communicators: one process, N threads in one process (for tests), or MPI through mpi4py.

A communicator is any object with ``rank``, ``size``, ``allreduce(buffer)`` (sum a
contiguous float array over all ranks, in place) and ``broadcast(buffer, root=0)``
(overwrite ``buffer`` with ``root``'s, in place). That is all ``DistributedOptimizer``
and ``broadcast_parameters`` call, so the three kinds here are interchangeable, and a
compiled plan can call ``allreduce`` as one instruction.

MPI jobs must never hang when one rank fails. ``MPICommunicator.install_failure_handlers``
makes an uncaught exception in any rank abort the whole job (``MPI_Abort``) after printing
its traceback; and a rank that ends normally (``sys.exit``, end of script) tells the others
it is leaving, so a rank still waiting for it in an Allreduce aborts the job instead of
waiting forever (see ``_wait``).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time

import numpy as np

__all__ = [
    "DistributedError",
    "SingleProcess",
    "ThreadGroup",
    "MPICommunicator",
    "launcher_size",
    "launcher_rank",
    "mpi_available",
]

# Environment variables through which launchers tell a process its place in a job:
# MPICH/Hydra and Intel MPI (PMI_*), Open MPI, PMIx, MVAPICH, Slurm's srun (per step).
_SIZE_VARIABLES = (
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "SLURM_STEP_NUM_TASKS",
)
_RANK_VARIABLES = (
    "PMI_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMIX_RANK",
    "MV2_COMM_WORLD_RANK",
    "SLURM_PROCID",
)


class DistributedError(RuntimeError):
    """The ranks cannot work together (no MPI, mismatched MPI, disagreeing batches)."""


def _first_int(names) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return None


def launcher_size() -> int:
    """How many processes the launcher (mpiexec, srun) started, from its environment
    variables; 1 when started without one. Needs no MPI library."""
    size = _first_int(_SIZE_VARIABLES)
    return size if size is not None and size > 0 else 1


def launcher_rank() -> int:
    """This process's rank according to the launcher's environment variables (0 without one)."""
    rank = _first_int(_RANK_VARIABLES)
    return rank if rank is not None and rank >= 0 else 0


def mpi_available() -> bool:
    """Whether mpi4py can be imported (does not initialise MPI)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def _check_buffer(owner, buffer):
    if not isinstance(buffer, np.ndarray):
        raise TypeError(f"{owner}: buffer must be a numpy.ndarray, got {type(buffer).__name__}")
    if not buffer.flags.c_contiguous or not buffer.flags.writeable:
        raise ValueError(f"{owner}: buffer (shape {buffer.shape}) must be a C-contiguous, writeable array")
    if buffer.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{owner}: buffer must be float32 or float64, got {buffer.dtype}")


class SingleProcess:
    """Size 1: ``allreduce`` and ``broadcast`` leave the buffer as it is."""

    rank = 0
    size = 1

    def allreduce(self, buffer: np.ndarray) -> None:
        _check_buffer("SingleProcess.allreduce", buffer)

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        _check_buffer("SingleProcess.broadcast", buffer)
        if root != 0:
            raise ValueError(f"SingleProcess.broadcast: root must be 0 in a job of size 1, got {root}")

    def __repr__(self):
        return "SingleProcess()"


class ThreadGroup:
    """``size`` communicators for ``size`` threads of one process: MPI's semantics, no MPI.

    >>> group = ThreadGroup(3)
    >>> results = group.run(lambda comm: train(comm))   # one thread per rank, in rank order

    ``allreduce`` sums in rank order (the same bits on every rank, repeatable). Every
    collective waits at most ``timeout`` seconds for the other ranks; when a rank's
    function raises, ``run`` breaks the group so the others stop waiting, and re-raises.
    """

    def __init__(self, size: int, timeout: float = 60.0):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"ThreadGroup: size must be a positive integer, got {size!r}")
        self.size = int(size)
        self.timeout = float(timeout)
        self._barrier = threading.Barrier(self.size)
        self._slots: list = [None] * self.size
        self._result = None
        self.communicators = [_ThreadCommunicator(self, r) for r in range(self.size)]

    def __getitem__(self, rank):
        return self.communicators[rank]

    def __len__(self):
        return self.size

    def abort(self) -> None:
        """Make every waiting and future collective of the group raise."""
        self._barrier.abort()

    def _wait(self, rank, what):
        try:
            self._barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise RuntimeError(
                f"ThreadGroup: rank {rank} of {self.size} gave up waiting in {what}: another rank "
                f"failed or did not arrive within {self.timeout:g} s"
            ) from None

    def _collective(self, rank, buffer, what, combine):
        self._slots[rank] = buffer
        self._wait(rank, what)  # every buffer deposited
        if rank == 0:
            self._result = combine(self._slots)
        self._wait(rank, what)  # result ready; nobody deposits again before all copied it
        np.copyto(buffer, self._result)

    def run(self, function, *args):
        """``function(comm, *args)`` in one thread per rank; the results in rank order."""
        results: list = [None] * self.size
        errors: list = [None] * self.size

        def body(rank):
            try:
                results[rank] = function(self.communicators[rank], *args)
            except BaseException as exc:  # noqa: BLE001  (re-raised below, in the caller's thread)
                errors[rank] = exc
                self.abort()

        threads = [threading.Thread(target=body, args=(r,), name=f"rank-{r}") for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            # The first rank that failed for a reason of its own, not because the group broke.
            own = [(r, e) for r, e in failed if "ThreadGroup: rank" not in str(e)] or failed
            rank, exc = own[0]
            raise exc
        return results


class _ThreadCommunicator:
    def __init__(self, group, rank):
        self._group = group
        self.rank = rank
        self.size = group.size

    def allreduce(self, buffer: np.ndarray) -> None:
        _check_buffer("ThreadGroup.allreduce", buffer)

        def total(slots):
            shapes = {(s.shape, s.dtype.str) for s in slots}
            if len(shapes) != 1:
                raise ValueError(f"ThreadGroup.allreduce: the ranks' buffers differ: {sorted(shapes)}")
            result = slots[0].copy()
            for other in slots[1:]:
                result += other
            return result

        self._group._collective(self.rank, buffer, "allreduce", total)

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        _check_buffer("ThreadGroup.broadcast", buffer)
        if not 0 <= root < self.size:
            raise ValueError(f"ThreadGroup.broadcast: root {root} is not a rank of a group of {self.size}")
        self._group._collective(self.rank, buffer, "broadcast", lambda slots: slots[root].copy())

    def __repr__(self):
        return f"ThreadGroup communicator (rank {self.rank} of {self.size})"


# ---------------------------------------------------------------------------- MPI --

_LEAVING = 7107  # tag of the message a rank sends to every other rank when it exits
_LEAVING_GRACE = 1.0  # s a collective may still take to complete after a peer left
_ABORT_DRAIN = 0.2  # s the launcher gets to forward output before MPI_Abort


class MPICommunicator:
    """mpi4py's ``COMM_WORLD`` (or a given communicator), with waits that cannot hang.

    Collectives are non-blocking ones (``Iallreduce``, ``Ibcast``) completed by polling,
    so a rank waiting for a peer that has left notices it and aborts the job.
    """

    def __init__(self, comm=None):
        from mpi4py import MPI

        self._MPI = MPI
        self._comm = MPI.COMM_WORLD if comm is None else comm
        # A private duplicate for the leaving messages: never confused with the user's.
        self._exit_comm = self._comm.Dup()
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()
        self._status = MPI.Status()
        self._hooked = False
        self._pid = os.getpid()
        self.collectives = 0  # counts allreduce/broadcast calls, for error messages

    @property
    def mpi_comm(self):
        """The mpi4py communicator underneath."""
        return self._comm

    def allreduce(self, buffer: np.ndarray) -> None:
        _check_buffer("MPICommunicator.allreduce", buffer)
        self._wait(self._comm.Iallreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM), "Allreduce")

    def broadcast(self, buffer: np.ndarray, root: int = 0) -> None:
        _check_buffer("MPICommunicator.broadcast", buffer)
        if not 0 <= root < self.size:
            raise ValueError(f"MPICommunicator.broadcast: root {root} is not a rank of a job of {self.size}")
        self._wait(self._comm.Ibcast(buffer, root=root), "Bcast")

    def barrier(self) -> None:
        self._wait(self._comm.Ibarrier(), "Barrier")

    def _wait(self, request, what):
        """Complete ``request``; abort the job if a peer left while we wait for it."""
        self.collectives += 1
        if request.Test():
            return
        check_every = 0.005  # s between looks for leaving messages (a probe is ~1 µs)
        next_check = time.perf_counter() + check_every
        give_up = None
        while not request.Test():
            now = time.perf_counter()
            if now < next_check:
                continue
            next_check = now + check_every
            if give_up is None:
                if self._exit_comm.Iprobe(source=self._MPI.ANY_SOURCE, tag=_LEAVING, status=self._status):
                    # A peer that finished this collective may leave before our side of it
                    # has completed: give the transfer a moment before calling it a hang.
                    left = self._status.Get_source()
                    give_up = now + _LEAVING_GRACE
            elif now > give_up:
                self._abort(
                    f"rank {left} ended while rank {self.rank} waited for it in {what} "
                    f"(collective {self.collectives}); aborting the job of {self.size} processes",
                    code=1,
                )

    def _abort(self, message, code=1):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001  (a closed stream must not stop the abort)
                pass
        try:
            sys.stderr.write(f"fastgrad.distributed: {message}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        # The launcher forwards each rank's output through a pipe and stops reading when
        # the abort reaches it: give it a moment to pass the traceback and this message on
        # (without it a 3-rank job lost the traceback's last line about one run in fifty).
        time.sleep(_ABORT_DRAIN)
        self._comm.Abort(code)

    # -- failure handling -------------------------------------------------------------

    def install_failure_handlers(self) -> None:
        """Uncaught exception → traceback, then ``MPI_Abort`` of the whole job; normal exit →
        tell the other ranks, then wait for all of them at exit (see the module docstring)."""
        if self._hooked or self.size == 1:
            return
        self._hooked = True
        previous = sys.excepthook

        def excepthook(kind, value, tb):
            previous(kind, value, tb)
            if os.getpid() != self._pid:  # a forked child: its parent's job is not its own
                return
            self._abort(
                f"rank {self.rank} of {self.size} failed with {kind.__name__}; aborting the job",
                code=1,
            )

        sys.excepthook = excepthook
        # Registered after mpi4py's own atexit (MPI_Finalize), so it runs before it.
        atexit.register(self._leave)

    def _leave(self):
        """At exit: tell every other rank we are leaving, then wait until all have arrived
        here too (a rank still waiting for us in a collective aborts the job instead)."""
        if os.getpid() != self._pid or self._MPI.Is_finalized():
            return
        empty = np.empty(0, dtype=np.uint8)
        peers = [r for r in range(self.size) if r != self.rank]
        sends = [self._exit_comm.Isend(empty, dest=r, tag=_LEAVING) for r in peers]
        arrived = self._exit_comm.Ibarrier()
        while not arrived.Test():
            time.sleep(0.001)
        for r in peers:  # everybody's leaving message to us, so none is left unreceived
            self._exit_comm.Recv(empty, source=r, tag=_LEAVING)
        self._MPI.Request.Waitall(sends)

    def __repr__(self):
        return f"MPICommunicator(rank {self.rank} of {self.size})"
