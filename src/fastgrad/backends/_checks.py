"""Argument checks shared by both backends: every kernel checks before it loops.

Each error names the argument and the shapes, so a user sees what went wrong.
"""

import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(name, a, ndim=None, contiguous=True):
    """Return ``a`` if it is a float32/float64 ndarray of the right ndim, else raise."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype} (shape {a.shape})")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if contiguous and not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (shape {a.shape}, strides {a.strides})")
    return a


def check_same_dtype(**arrays):
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        raise TypeError(f"arguments must share one dtype, got {listed}")


def check_out(out, shape, dtype):
    """Validate an ``out=`` array: right shape, dtype, contiguous and writeable."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    check_array("out", out)
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"out (shape {out.shape}) is read-only")
    return out


def check_labels(labels, n, k, zname, zshape):
    """Integer class labels of shape (n,), each in [0, k); returned as an intp array."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy.ndarray of integers, got {type(labels).__name__}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype} (shape {labels.shape})")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels {labels.shape} must have shape ({n},) to match {zname} {zshape}")
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"labels[{i}] = {labels[i]} is not a class index in [0, {k}) for {zname} {zshape}"
        )
    return labels.astype(np.intp, copy=False)


def check_fits(name, a, ref_name, ref):
    """``a`` must have the shape of ``ref``."""
    if a.shape != ref.shape:
        raise ValueError(f"{name} {a.shape} must have the shape of {ref_name} {ref.shape}")


def check_writeable(name, a):
    """Update kernels write in place: refuse an array the tape marked read-only."""
    if not a.flags.writeable:
        raise ValueError(
            f"{name} (shape {a.shape}) is read-only; the tape marks a parameter read-only "
            "while a graph that saved it is alive: run backward() (or drop the graph) "
            "before updating it"
        )
