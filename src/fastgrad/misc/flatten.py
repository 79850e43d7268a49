"""Flatten nested tuples/lists/dicts of arrays into one vector, differentiably."""

import numpy as onp

from .. import numpy as np
from .._functional import make_vjp


def _flatten(value):
    """(flat vector, unflatten) built from differentiable ravel/concatenate."""
    if isinstance(value, dict):
        keys = sorted(value)
        parts = [_flatten(value[k]) for k in keys]
        flat = np.concatenate([p[0] for p in parts]) if parts else onp.zeros(0)

        def unflatten(vec):
            out, i = {}, 0
            for k, (f, un) in zip(keys, parts):
                n = onp.size(f) if not hasattr(f, "shape") else int(onp.prod(f.shape))
                out[k] = un(vec[i : i + n])
                i += n
            return out

        return flat, unflatten
    if isinstance(value, (tuple, list)):
        parts = [_flatten(v) for v in value]
        flat = np.concatenate([p[0] for p in parts]) if parts else onp.zeros(0)
        kind = type(value)

        def unflatten(vec):
            out, i = [], 0
            for f, un in parts:
                n = int(onp.prod(f.shape))
                out.append(un(vec[i : i + n]))
                i += n
            return out if kind is list else tuple(out)

        return flat, unflatten
    shape = onp.shape(value)
    flat = np.ravel(value)
    return flat, (lambda vec: np.reshape(vec, shape))


def flatten(value):
    """Flattens any nesting of tuples, lists, or dicts, with arrays or scalars inside.

    Returns 1D numpy array and an unflatten function. Doesn't preserve mixed numeric
    types (e.g. floats and ints)."""
    flat, unflatten = _flatten(value)
    return flat, unflatten


def flatten_func(func, example):
    _ex, unflatten = flatten(example)
    _func = lambda _x, *args: flatten(func(unflatten(_x), *args))[0]  # noqa: E731
    return _func, unflatten, _ex


__all__ = ["flatten", "flatten_func", "make_vjp"]
