"""Benchmarks of fastgrad beside NumPy by hand and its peers (``fastgrad bench``).

- :mod:`fastgrad.bench.workloads`: the standard workloads of SPEC §7, defined once.
- :mod:`fastgrad.bench.impls`: each workload in NumPy by hand and fastgrad (per backend,
  and under ``fastgrad.compile``), with a gradient check against NumPy by hand; the
  peers (PyTorch, HIPS autograd, JAX) are loaded from a source checkout's
  ``benchmarks/peers/``.
- :mod:`fastgrad.bench.runner`: the interleaved-rounds timer and the command line.

The peers are optional; nothing here imports them until asked.
"""

from .workloads import STANDARD, WORKLOADS, Workload

__all__ = ["STANDARD", "WORKLOADS", "Workload", "main"]


def main(argv=None) -> int:
    """Entry point of ``fastgrad bench``."""
    from .runner import main as run_main

    return run_main(argv)
