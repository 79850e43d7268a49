"""Central finite differences against the backward pass."""

import numpy as np

from ._tape import no_grad
from ._tensor import Tensor


class GradcheckError(AssertionError):
    """A backward gradient disagrees with finite differences."""


def gradcheck(fun, inputs, eps=1e-6, atol=1e-5, rtol=1e-3) -> bool:
    """Check ``fun``'s backward against central differences ∂L/∂x ≈ (L(x+ε) − L(x−ε)) / 2ε.

    ``inputs`` is a tuple of float64 tensors; the output of ``fun`` is reduced with a
    fixed random projection so any output shape works. Returns True or raises
    ``GradcheckError`` naming the input, the worst element and both values.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradcheck: input {i} must be a fastgrad Tensor, got {type(x).__name__}")
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 (finite differences need it), got {x.dtype}")

    leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]
    out = fun(*leaves)
    projection = np.random.default_rng(0).standard_normal(np.shape(out.data))

    def scalar(*xs):
        with no_grad():
            return float(np.sum(np.asarray(fun(*xs).data) * projection))

    (out * projection).sum().backward()
    for i, leaf in enumerate(leaves):
        if not leaf.requires_grad:
            continue
        analytic = leaf.grad if leaf.grad is not None else np.zeros(leaf.shape)
        numeric = np.zeros(leaf.shape)
        base = leaf.data.copy()
        for index in np.ndindex(*leaf.shape):
            plus, minus = base.copy(), base.copy()
            plus[index] += eps
            minus[index] -= eps
            args_p = [Tensor(plus) if j == i else Tensor(l.data) for j, l in enumerate(leaves)]
            args_m = [Tensor(minus) if j == i else Tensor(l.data) for j, l in enumerate(leaves)]
            numeric[index] = (scalar(*args_p) - scalar(*args_m)) / (2 * eps)
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if np.any(error > 0) or not np.all(np.isfinite(analytic)):
            worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(error), error, np.inf)), leaf.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {leaf.shape}) at index {tuple(int(k) for k in worst)}: "
                f"backward gives {analytic[worst]!r}, finite differences give {numeric[worst]!r} "
                f"(atol={atol}, rtol={rtol})"
            )
    return True
