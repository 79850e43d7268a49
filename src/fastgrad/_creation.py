"""Making tensors, with PyTorch's names: ``fg.zeros``, ``fg.ones``, ``fg.randn``,
``fg.rand``, ``fg.arange``, ``fg.manual_seed``.

One generator serves every random draw fastgrad makes without an explicit ``rng``
(``fg.randn``, a layer's initial weights, ``nn.Dropout``'s masks), so
``fg.manual_seed(0)`` makes a whole run repeatable, as ``torch.manual_seed`` does.
"""

from __future__ import annotations

import numpy as np

from ._tensor import Tensor

__all__ = ["zeros", "ones", "randn", "rand", "arange", "manual_seed", "default_generator"]

_generator = None  # made on first use (numpy.random is imported only then)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator behind every draw made without an explicit ``rng``."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The generator ``manual_seed`` reseeds."""
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def _shape(shape, name):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"{name}: sizes must be non-negative integers, got {shape}")
    return tuple(int(n) for n in shape)


def zeros(*shape, dtype=np.float64, requires_grad=False) -> Tensor:
    """A tensor of zeros: ``fg.zeros(3, 4)`` or ``fg.zeros((3, 4))``."""
    return Tensor(np.zeros(_shape(shape, "zeros")), requires_grad=requires_grad, dtype=dtype)


def ones(*shape, dtype=np.float64, requires_grad=False) -> Tensor:
    """A tensor of ones: ``fg.ones(3, 4)`` or ``fg.ones((3, 4))``."""
    return Tensor(np.ones(_shape(shape, "ones")), requires_grad=requires_grad, dtype=dtype)


def randn(*shape, dtype=np.float64, requires_grad=False) -> Tensor:
    """Standard normal draws from the default generator (``fg.manual_seed``)."""
    values = default_generator().standard_normal(_shape(shape, "randn"))
    return Tensor(values, requires_grad=requires_grad, dtype=dtype)


def rand(*shape, dtype=np.float64, requires_grad=False) -> Tensor:
    """Uniform draws in [0, 1) from the default generator (``fg.manual_seed``)."""
    values = default_generator().random(_shape(shape, "rand"))
    return Tensor(values, requires_grad=requires_grad, dtype=dtype)


def arange(start, stop=None, step=1, dtype=np.float64, requires_grad=False) -> Tensor:
    """``start, start + step, …`` below ``stop`` (``fg.arange(5)``: 0 … 4), as floats."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    return Tensor(values, requires_grad=requires_grad, dtype=dtype)
