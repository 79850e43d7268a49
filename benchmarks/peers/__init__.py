"""The peers' implementations of the standard workloads: PyTorch, HIPS autograd, JAX.

They live beside the benchmarks, not in the installed package: ``fastgrad bench`` loads
this directory (``fastgrad.bench.impls.load_peers``) when it runs from a source
checkout, and ``benchmarks/conftest.py`` does the same for the pytest-benchmark suites.
The workloads themselves stay in ``fastgrad.bench.workloads``, defined once.

``PEERS`` lists one :class:`fastgrad.bench.impls.Entry` per implementation; a peer whose
library is missing is listed all the same, with the reason it cannot run.
"""

from __future__ import annotations

import importlib

from fastgrad.bench.impls import Entry

from .functional import AutogradImpl, JaxImpl, JaxJitImpl
from .torch_impl import TorchBase, TorchMLP, TorchScalar

TORCH_VERSION = "2.13.0"


def _module_reason(module, extra=""):
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install
        return f"{module} not importable ({type(exc).__name__}: {exc}){extra}"
    return None


def _torch_reason():
    reason = _module_reason("torch", f"; install with: pip install torch=={TORCH_VERSION}")
    if reason:
        return reason
    import torch

    if not torch.__version__.startswith(TORCH_VERSION):
        return f"torch {torch.__version__} is installed; the benchmarks pin torch=={TORCH_VERSION}"
    return None


def _jax_reason():
    return _module_reason("jax", "; install with: pip install jax jaxlib")


PEERS = [
    Entry("torch", TorchMLP, TorchScalar, _torch_reason, TorchBase.label),
    Entry(
        "autograd",
        AutogradImpl,
        AutogradImpl,
        lambda: _module_reason("autograd", "; install with: pip install autograd"),
        AutogradImpl.label,
    ),
    Entry("jax", JaxImpl, JaxImpl, _jax_reason, JaxImpl.label),
    Entry("jax-jit", JaxJitImpl, JaxJitImpl, _jax_reason, JaxJitImpl.label),
]
