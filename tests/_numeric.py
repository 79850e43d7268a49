"""Finite differences written with NumPy alone: the independent expectation for gradients."""

import numpy as np


def numeric_grad(f, arrays, index, eps=1e-6):
    """∂ f(*arrays) / ∂ arrays[index] by central differences (f returns a float).

    For a complex argument z = a + ib, autograd's convention: ∂f/∂a − i ∂f/∂b."""
    if np.iscomplexobj(arrays[index]):
        along_real = _central(f, arrays, index, np.array(arrays[index], dtype=complex), eps, 1.0)
        along_imag = _central(f, arrays, index, np.array(arrays[index], dtype=complex), eps, 1j)
        return along_real - 1j * along_imag
    return _central(f, arrays, index, np.array(arrays[index], dtype=np.float64), eps, 1.0)


def _central(f, arrays, index, x, eps, direction):
    out = np.zeros(x.shape)
    for k in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[k] += eps * direction
        minus[k] -= eps * direction
        args_p = list(arrays)
        args_p[index] = plus
        args_m = list(arrays)
        args_m[index] = minus
        out[k] = (f(*args_p) - f(*args_m)) / (2 * eps)
    return out
