"""What the modules of ``fastgrad.scipy`` share: how an entry is declared, how an argument
without a derivative refuses, and the small shape helpers the rules use.

An entry here is a registry primitive like any other (``fastgrad._registry``): its forward
is SciPy's function (or a NumPy expression of the same value, where SciPy's own wrapper
costs more than the arithmetic), its rules are written with fastgrad's differentiable
functions so ``grad(grad(f))`` works, and ``fastgrad.compile`` refuses it by name
(nothing of SciPy is lowered yet).
"""

import numpy as onp

from .._ops import reshape, shape_of, unbroadcast, value
from .._registry import Formula, NotCompiled, Sample, define
from .._tape import TensorBase

__all__ = ["entry", "refuse", "traced", "value", "shape_of", "unbroadcast", "reshape",
           "Formula", "Sample", "keepdims_shape", "as_axis", "sign_of"]


def entry(fun, name, *, vjps, formula, samples, order=2, saves_ans=False, saves_args=True,
          joint_vjp=None):
    """A registered primitive of ``fastgrad.scipy``: not lowered by ``fastgrad.compile``."""
    return define(fun, name, vjps=vjps, formula=formula, samples=samples, order=order,
                  saves_ans=saves_ans, saves_args=saves_args, joint_vjp=joint_vjp,
                  lowering=NotCompiled(f"{name} (fastgrad.scipy) is not lowered yet"))


def refuse(name, argument, why):
    """The rule of an argument that has no derivative fastgrad can give: it raises,
    naming the function and the argument (never a silent zero)."""

    def rule(g, ans, *args, **kwargs):
        raise NotImplementedError(f"{name}: no derivative with respect to {argument} ({why})")

    rule.refuses = True
    return rule


def traced(*args):
    """True if any argument is a tensor (recorded, or inside a transform)."""
    for a in args:
        if isinstance(a, TensorBase):
            return True
    return False


def keepdims_shape(shape, axis):
    """``shape`` with the reduced ``axis`` (None, an int or a tuple) kept as length 1."""
    if axis is None:
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, (int, onp.integer)) else tuple(axis)
    axes = {int(a) % len(shape) for a in axes}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def as_axis(axis):
    """NumPy's axis argument as a hashable value (a list becomes a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def sign_of(x):
    """sign(x) as a constant (a mask: its derivative is zero almost everywhere)."""
    return onp.sign(value(x))
