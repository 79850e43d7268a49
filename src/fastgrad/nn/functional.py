"""Activations, softmax and losses on tensors (SPEC §5).

sigmoid, relu, tanh, softmax, log_softmax and linear are primitives of the tape; sigmoid
and linear run on the selected backend's compiled kernels.
"""

from .._ops import linear, log_softmax, relu, sigmoid, softmax, softplus, tanh

__all__ = ["sigmoid", "relu", "tanh", "softplus", "softmax", "log_softmax", "linear"]

try:  # the losses live in nn/losses.py
    from .losses import *  # noqa: F401,F403
    from .losses import __all__ as _losses_all

    __all__ += list(_losses_all)
except ImportError:  # pragma: no cover - while nn/losses.py is being written
    pass
