"""Finite differences written with NumPy alone: the independent expectation for gradients."""

import numpy as np


def numeric_grad(f, arrays, index, eps=1e-6):
    """∂ f(*arrays) / ∂ arrays[index] by central differences (f returns a float)."""
    x = np.array(arrays[index], dtype=np.float64)
    out = np.zeros_like(x)
    for k in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[k] += eps
        minus[k] -= eps
        args_p = list(arrays)
        args_p[index] = plus
        args_m = list(arrays)
        args_m[index] = minus
        out[k] = (f(*args_p) - f(*args_m)) / (2 * eps)
    return out
