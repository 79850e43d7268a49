"""autograd's ``core`` names, for code that imports them.

As in autograd, ``core.make_vjp(fun, x)`` and ``core.make_jvp(fun, x)`` are the unary
forms (the differentiation point is given directly), unlike the operators of the same
name in ``fastgrad``, which take ``argnum`` and return a function of the arguments.
"""

from . import _functional
from .extend import (  # noqa: F401
    VSpace,
    defjvp,
    defvjp,
    defvjp_argnum,
    primitive,
    primitive_jvps,
    primitive_vjps,
    vspace,
)


def make_vjp(fun, x):
    """(vjp, fun(x)) for a function of one argument."""
    return _functional.make_vjp(fun)(x)


def make_jvp(fun, x):
    """jvp with jvp(v) = (fun(x), ∂fun(x) · v)."""
    return _functional.make_jvp(fun)(x)
