"""autograd's ``core`` names, for code that imports them.

As in autograd, ``core.make_vjp(fun, x)`` and ``core.make_jvp(fun, x)`` are the unary
forms (the differentiation point is given directly), unlike the operators of the same
name in ``fastgrad``, which take ``argnum`` and return a function of the arguments.
``core.primitive`` is ``fastgrad.extend.primitive`` (its primitives also have autograd's
deprecated ``defvjp(maker, argnum)``, ``defgrad`` and ``defvjp_is_zero`` methods).
"""

from . import _functional
from ._vspace import (  # noqa: F401
    ArrayVSpace,
    ComplexArrayVSpace,
    ContainerVSpace,
    DictVSpace,
    ListVSpace,
    TupleVSpace,
)
from .extend import (  # noqa: F401
    Box,
    SparseObject,
    VSpace,
    def_linear,
    defjvp,
    defjvp_argnum,
    defjvp_argnums,
    defvjp,
    defvjp_argnum,
    defvjp_argnums,
    getval,
    isbox,
    notrace_primitive,
    primitive,
    primitive_jvps,
    primitive_vjps,
    register_notrace,
    vspace,
)
from .tracer import Node, trace  # noqa: F401
from .util import func, subval, subvals, toposort  # noqa: F401


def make_vjp(fun, x):
    """(vjp, fun(x)) for a function of one argument."""
    return _functional.make_vjp(fun)(x)


def make_jvp(fun, x):
    """jvp with jvp(v) = (fun(x), ∂fun(x) · v)."""
    return _functional.make_jvp(fun)(x)
