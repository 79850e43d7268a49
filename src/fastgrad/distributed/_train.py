"""One BLAS thread per rank: ranks × threads must not exceed the cores.

``fastgrad train --distributed`` (``fastgrad/cli/train.py``) runs the CLI's own training
loop with a ``DistributedLoader`` and a ``DistributedOptimizer``, and calls this first.
"""

from __future__ import annotations

__all__ = ["limit_blas_threads", "blas_limited_by_environment"]


def limit_blas_threads(n: int = 1):
    """Limit BLAS (OpenBLAS, MKL, BLIS) to ``n`` threads in this process, now; returns the
    threadpoolctl limiter, or None when threadpoolctl is absent (then set
    OPENBLAS_NUM_THREADS/OMP_NUM_THREADS in the environment before Python starts)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def blas_limited_by_environment() -> bool:
    import os

    return any(os.environ.get(v) == "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))
