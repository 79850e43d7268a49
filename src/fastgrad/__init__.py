"""fastgrad: reverse-mode automatic differentiation (backpropagation) for NumPy.

    import numpy as np, fastgrad as fg
    W = fg.tensor(np.random.randn(10, 784), requires_grad=True)
    y = fg.nn.functional.sigmoid(x @ W.T + b)
    loss = 0.5 * ((y - 1.0) ** 2).sum()
    loss.backward()        # W.grad is a numpy array shaped like W

The compiled kernels run by default; ``fg.set_backend("reference")`` swaps in the
pure-Python reference of the same kernels.
"""

from . import _backend  # noqa: F401  (fastgrad._backend.kernels(), for the kernels' callers)
from ._anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled  # noqa: E402
from ._backend import available_backends, get_backend, set_backend, use_backend
from ._compiler.api import compile  # noqa: A004  (fastgrad.compile, as jax.jit)
from ._compiler.ir import TracingError
from ._creation import arange, manual_seed, ones, rand, randn, zeros  # noqa: E402  (after Tensor)
from ._functional import (
    checkpoint,
    deriv,
    elementwise_grad,
    grad,
    grad_and_aux,
    hessian,
    hessian_tensor_product,
    hessian_vector_product,
    holomorphic_grad,
    jacobian,
    make_ggnvp,
    make_hvp,
    make_jvp,
    make_vjp,
    tensor_jacobian_product,
    value_and_grad,
    vector_jacobian_product,
)
from ._gradcheck import GradcheckError, gradcheck
from ._ops import (
    absolute,
    concatenate,
    cos,
    exp,
    log,
    matmul,
    maximum,
    minimum,
    relu,
    sigmoid,
    sin,
    sqrt,
    stack,
    tanh,
    where,
)
from ._tape import enable_grad, is_grad_enabled, no_grad
from ._tensor import Tensor

__version__ = "0.1.0"


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (like ``torch.tensor``)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def from_numpy(array, requires_grad=False) -> Tensor:
    """A tensor sharing ``array``'s memory (float32/float64 arrays are not copied)."""
    from ._tensor import as_float_array

    t = Tensor._wrap(as_float_array(array, copy=False, name="array"))
    if requires_grad:
        t.requires_grad = True
    return t


def _warn_if_stale_build():
    """Warn when a Python source compiled by setup.py changed after it was compiled."""
    import hashlib
    import importlib
    import os
    import warnings

    try:
        from ._build_info import SOURCES
    except ImportError:  # never built: the .py files run as they are
        return
    for name, compiled_digest in SOURCES.items():
        module = importlib.import_module(f"{__name__}.{name}")
        if module.__file__.endswith(".py"):
            continue
        source = os.path.join(os.path.dirname(__file__), *name.split(".")) + ".py"
        try:
            with open(source, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            continue
        if digest != compiled_digest:
            warnings.warn(
                f"{source} changed after it was compiled; the old compiled module still runs. "
                "Rebuild: python setup.py build_ext --inplace (or pip install -e ., which "
                "leaves it uncompiled)",
                RuntimeWarning,
                stacklevel=3,
            )


_warn_if_stale_build()

from . import nn, numpy, optim, viz  # noqa: E402,F401
from .builtins import dict, isinstance, list, tuple  # noqa: E402,F401,A004  (autograd's names, not in __all__)
from .viz import explain  # noqa: E402

__all__ = [
    "Tensor", "tensor", "from_numpy", "no_grad", "enable_grad", "is_grad_enabled",
    "get_backend", "set_backend", "use_backend", "available_backends", "gradcheck",
    "GradcheckError", "nn", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu",
    "absolute", "maximum", "minimum", "matmul", "concatenate", "stack", "where",
    "grad", "value_and_grad", "elementwise_grad", "jacobian", "hessian", "make_vjp",
    "make_jvp", "make_hvp", "deriv", "grad_and_aux", "hessian_tensor_product",
    "hessian_vector_product", "tensor_jacobian_product", "vector_jacobian_product",
    "checkpoint", "make_ggnvp", "holomorphic_grad", "viz", "explain", "compile", "TracingError",
    "detect_anomaly", "AnomalyError", "is_anomaly_enabled",
    "zeros", "ones", "randn", "rand", "arange", "manual_seed",
]
