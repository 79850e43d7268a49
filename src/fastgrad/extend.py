"""``fastgrad.extend``: define your own primitives, with autograd's signatures.

    from fastgrad.extend import primitive, defvjp

    @primitive
    def logsumexp(x):
        m = np.max(x)
        return m + np.log(np.sum(np.exp(x - m)))

    defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))

A vjp maker is ``maker(ans, *args, **kwargs) -> (g -> error signal of that argument)``;
write the returned function with ``fastgrad.numpy`` so it can be differentiated again.
Complex values follow autograd's convention (``fastgrad._functional``).

Forward mode: fastgrad derives it from the reverse pass (``make_jvp``), so a primitive
needs a vjp to be differentiated either way. ``defjvp`` rules are stored
(``primitive_jvps``) but not used; ``def_linear(f)`` stores f's jvp as autograd does and,
for every argument without a vjp, gives one: f is linear there, so its transpose is
exact from f's values on a basis (one call of f per real coordinate of the argument).

Your own value types: ``MyBox.register(MyType)`` (``MyBox`` a subclass of ``Box``) and
``MyVSpace.register(MyType)`` (``fastgrad._vspace``); a primitive returning a MyType
value on traced input returns a MyBox, and ``grad`` with respect to a MyType argument
returns a MyType gradient.
"""

import functools
import types
import warnings

import numpy as np

from ._functional import make_vjp  # noqa: F401
from ._tape import Primitive, TensorBase, _mode, box_type_mappings, wrap
from ._vspace import VSpace, vspace
from .numpy._util import UndefinedVjps

__all__ = [
    "primitive",
    "defvjp",
    "defvjp_argnum",
    "defvjp_argnums",
    "defjvp",
    "defjvp_argnum",
    "defjvp_argnums",
    "def_linear",
    "notrace_primitive",
    "register_notrace",
    "vspace",
    "VSpace",
    "Box",
    "SparseObject",
    "getval",
    "isbox",
    "primitive_vjps",
    "primitive_jvps",
    "make_vjp",
]

# autograd's Box: the traced value (fastgrad.Tensor is one). Subclass it for a type of
# your own and register the type: ``class MyBox(Box, MyType): ...; MyBox.register(MyType)``.
Box = TensorBase


def isbox(x) -> bool:
    return isinstance(x, TensorBase)


def getval(x):
    """The value inside a (possibly nested) traced value."""
    while isinstance(x, TensorBase):
        x = x._data
    return x


_DEPRECATED = (
    "The {} method is deprecated (as in autograd): use fastgrad.extend.defvjp; see "
    "docs/functional.md")


class _UserPrimitive(Primitive):
    """A primitive made by ``primitive``: a method when it is a class attribute (as a
    function is), its traced results boxed in a registered Box subclass, and autograd's
    old per-primitive methods (``defvjp(maker, argnum)``, ``defgrad``, ``defvjp_is_zero``)."""

    def __get__(self, obj, objtype=None):
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, *args, **kwargs):
        if any(type(a) in _CONTAINERS and _holds_traced(a) for a in args):
            out = _lifted(self)(_Spread(args), *_spread(args), **kwargs)
        else:
            out = Primitive.__call__(self, *args, **kwargs)
        if box_type_mappings and isinstance(out, TensorBase):
            box = box_type_mappings.get(type(out._data))
            if box is not None and type(out) is not box:
                out = wrap(box, out._data, out._node)
        return out

    def defvjp(self, vjpmaker, argnum=0):
        """Deprecated: ``vjpmaker(g, ans, vs, gvs, *args, **kwargs)`` for argument ``argnum``."""
        warnings.warn(_DEPRECATED.format("defvjp"))

        def maker(ans, *args, **kwargs):
            def vjp(g):
                return vjpmaker(g, ans, vspace(args[argnum]), vspace(g), *args, **kwargs)

            return vjp

        defvjp(self, maker, argnums=(argnum,))

    def defgrad(self, gradmaker, argnum=0):
        """Deprecated: ``gradmaker(ans, *args)`` returns ``g -> error signal``."""
        warnings.warn(_DEPRECATED.format("defgrad"))
        defvjp(self, gradmaker, argnums=(argnum,))

    def defvjp_is_zero(self, argnums=(0,)):
        """Deprecated: the arguments ``argnums`` have zero derivative."""
        warnings.warn(_DEPRECATED.format("defvjp_is_zero"))
        defvjp(self, *([None] * len(argnums)), argnums=tuple(argnums))


# ---------------------------------------------- traced values inside containers --
# fastgrad traces arrays, not the tuples, lists and dicts holding them. A user primitive
# given a container holding traced values (autograd's builtins.tuple((a, b))) is recorded
# with every element of every argument as an argument of its own (spread); the rule of
# one element is the user's rule for its container, that element taken (the container's
# signal is computed once per node and error signal, and shared by its elements).

_CONTAINERS = (tuple, list, dict)


def _holds_traced(x):
    if isinstance(x, TensorBase):
        return x._node is not None
    if type(x) in _CONTAINERS or (isinstance(x, tuple) and hasattr(x, "_fields")):
        return any(_holds_traced(v) for v in (x.values() if isinstance(x, dict) else x))
    return False


def _elements(x):
    if type(x) in _CONTAINERS:
        return [e for v in (x.values() if isinstance(x, dict) else x) for e in _elements(v)]
    return [x]


def _rebuild(template, values):
    """``template``'s containers filled with ``values`` (an iterator), in _elements' order."""
    if type(template) is dict:
        return {k: _rebuild(v, values) for k, v in template.items()}
    if type(template) in (tuple, list):
        return type(template)(_rebuild(v, values) for v in template)
    return next(values)


class _Spread:
    """How the original arguments were spread: their templates and each element's owner."""

    __slots__ = ("templates", "owners", "cache")

    def __init__(self, args):
        self.templates = args
        self.owners = []  # element k belongs to argument owners[k]
        for argnum, a in enumerate(args):
            self.owners += [argnum] * len(_elements(a))
        self.cache = {}

    def args(self, elements):
        values = iter(elements)
        return tuple(_rebuild(t, values) for t in self.templates)

    def index_in_argument(self, k):
        argnum = self.owners[k]
        return argnum, k - self.owners.index(argnum)


def _spread(args):
    return [e for a in args for e in _elements(a)]


def _lifted(prim):
    """The primitive recording ``prim`` on spread arguments (made once per primitive)."""
    lifted = prim.__dict__.get("_spread_primitive")
    if lifted is None:
        lifted = Primitive(lambda spread, *elements, **kwargs: prim.fun(*spread.args(elements), **kwargs),
                           prim.name)
        lifted.vjps = _SpreadVjps(prim)
        lifted.saves_args = lifted.saves_ans = True
        prim.__dict__["_spread_primitive"] = lifted
    return lifted


class _SpreadVjps(dict):
    """Position k + 1 is element k; its rule takes it from its argument's signal."""

    def __init__(self, prim):
        super().__init__()
        self.prim = prim

    def __contains__(self, i):
        return i > 0

    def __missing__(self, i):
        prim = self.prim

        def rule(g, ans, spread, *elements, **kwargs):
            argnum, j = spread.index_in_argument(i - 1)
            if argnum not in prim.vjps:
                raise NotImplementedError(f"VJP of {prim.name} wrt argnum {argnum} not defined")
            key = (argnum, id(g))
            hit = spread.cache.get(argnum)
            if hit is None or hit[0] != key:
                signal = prim.vjps[argnum](g, ans, *spread.args(elements), **kwargs)
                hit = spread.cache[argnum] = (key, g, signal)
            signal = hit[2]
            return _elements(signal)[j] if type(spread.templates[argnum]) in _CONTAINERS else signal

        self[i] = rule
        return rule


def _on_values(f_raw):
    """``f_raw`` run as at the top level: it gets plain values, so a transform it calls
    (make_vjp inside a fixed-point solver) returns plain values too, even while an outer
    transform records."""

    @functools.wraps(f_raw)
    def run(*args, **kwargs):
        depth = _mode.depth
        if not depth:
            return f_raw(*args, **kwargs)
        _mode.depth = 0
        try:
            return f_raw(*args, **kwargs)
        finally:
            _mode.depth = depth

    return run


def primitive(f_raw):
    """Wrap ``f_raw`` so that calls on traced values are recorded (no rules yet)."""
    p = _UserPrimitive(_on_values(f_raw), getattr(f_raw, "__name__", "primitive"))
    p.__wrapped__ = f_raw
    p.vjps = _UserVjps(p.name)
    try:
        p.__qualname__ = f_raw.__qualname__
        p.__module__ = f_raw.__module__
    except AttributeError:
        pass
    return p


class _UserVjps(UndefinedVjps):
    """A user primitive's rules: a missing one raises NotImplementedError naming it; an
    argument in ``zero`` (a None maker) has zero derivative and is never traced."""


class _PrimitiveVjps(dict):
    """``primitive_vjps[prim]``: the rules table of a primitive, as autograd exposes it."""

    def __getitem__(self, prim):
        return prim.vjps

    def __contains__(self, prim):
        return isinstance(getattr(prim, "vjps", None), dict) and len(prim.vjps) > 0

    def pop(self, prim, default=None):
        if not isinstance(prim, Primitive):
            return default
        old = prim.vjps
        prim.vjps = UndefinedVjps(prim.name)
        return old

    def __setitem__(self, prim, vjps):
        prim.vjps = vjps


primitive_vjps = _PrimitiveVjps()
primitive_jvps = {}


def _translate(maker):
    def rule(g, ans, *args, **kwargs):
        return maker(ans, *args, **kwargs)(g)

    return rule


def _ensure_table(prim):
    if not isinstance(prim.vjps, _UserVjps):
        old = prim.vjps
        prim.vjps = _UserVjps(prim.name)
        prim.vjps.update(old)
        prim.vjps.zero |= getattr(old, "zero", set())
    return prim.vjps


def defvjp(fun, *vjpmakers, **kwargs):
    """``defvjp(prim, maker0, maker1, ..., argnums=...)``; ``None`` means no derivative."""
    argnums = kwargs.get("argnums", range(len(vjpmakers)))
    table = _ensure_table(fun)
    for argnum, maker in zip(argnums, vjpmakers):
        if maker is None:
            table.zero.add(argnum)
            table.pop(argnum, None)
        else:
            table.zero.discard(argnum)
            table[argnum] = _translate(maker)
    fun.saves_args = True
    fun.saves_ans = True
    return fun


def defvjp_argnum(fun, vjpmaker):
    """``vjpmaker(argnum, ans, args, kwargs) -> (g -> error signal)``, for any argument."""
    name = fun.name

    class _ByArgnum(UndefinedVjps):
        def __missing__(self, i):
            def rule(g, ans, *args, **kwargs):
                return vjpmaker(i, ans, args, kwargs)(g)

            self[i] = rule
            return rule

    fun.vjps = _ByArgnum(name)
    fun.saves_args = True
    fun.saves_ans = True
    return fun


def defvjp_argnums(fun, vjpmaker):
    """``vjpmaker(argnums, ans, args, kwargs) -> (g -> tuple of error signals)``."""

    def one(argnum, ans, args, kwargs):
        return lambda g: tuple(vjpmaker((argnum,), ans, args, kwargs)(g))[0]

    return defvjp_argnum(fun, one)


def defjvp(fun, *jvpfuns, **kwargs):
    """Stored in ``primitive_jvps``; forward mode is derived from the vjps."""
    primitive_jvps[fun] = (jvpfuns, kwargs)
    return fun


def defjvp_argnum(fun, jvpmaker):
    primitive_jvps[fun] = (jvpmaker,)
    return fun


def defjvp_argnums(fun, jvpmaker):
    primitive_jvps[fun] = (jvpmaker,)
    return fun


def def_linear(fun):
    """Declare ``fun`` linear in each of its arguments (autograd's ``def_linear``).

    As autograd, its jvp is ``fun`` itself with the tangent in the argument's place
    (stored in ``primitive_jvps``). fastgrad's forward and reverse modes both run on vjps,
    so every argument without one gets the transpose of that linear map, computed from
    ``fun``'s values on a basis of the argument's space: exact for a linear ``fun``, one
    call per real coordinate of the argument (2 per element of a complex one).
    """

    def jvp(argnum, g, ans, args, kwargs):
        args = list(args)
        args[argnum] = g
        return fun(*args, **kwargs)

    primitive_jvps[fun] = (jvp,)
    table = _ensure_table(fun)

    class _Linear(type(table)):
        def __missing__(self, i):
            if i in self.zero:
                return super().__missing__(i)
            rule = self[i] = _transpose_rule(fun, i)
            return rule

    linear = _Linear(table.name)
    linear.update(table)
    linear.zero |= table.zero
    fun.vjps = linear
    fun.saves_args = True
    return fun


def _transpose_rule(fun, argnum):
    """x̄ for an argument ``fun`` is linear in: with L = Re Σ ḡ ∘ fun(…x…), x̄ = ∂L/∂Re x −
    i ∂L/∂Im x (autograd's convention), and ∂L/∂x_j = Re Σ ḡ ∘ fun(…e_j…) by linearity."""

    def rule(g, ans, *args, **kwargs):
        from . import numpy as fnp

        x = getval(args[argnum])
        shape, dtype = np.shape(x), np.result_type(x)
        units = (1.0, 1j) if dtype.kind == "c" else (1.0,)
        coords = {u: [] for u in units}
        for index in np.ndindex(*shape):
            for u in units:
                e = np.zeros(shape, dtype=dtype)
                e[index] = u
                e = e if isinstance(x, np.ndarray) else e[()]
                column = fun(*args[:argnum], e, *args[argnum + 1:], **kwargs)
                coords[u].append(fnp.real(fnp.sum(g * column)))
        parts = [fnp.reshape(fnp.stack(coords[u]) if coords[u] else np.zeros(0), shape) for u in units]
        return parts[0] - 1j * parts[1] if dtype.kind == "c" else parts[0]

    return rule


def notrace_primitive(f_raw):
    """``f_raw`` on the values inside traced arguments; its result is a constant."""

    @functools.wraps(f_raw)
    def f_wrapped(*args, **kwargs):
        return f_raw(*[getval(a) for a in args], **{k: getval(v) for k, v in kwargs.items()})

    f_wrapped.fun = f_raw
    f_wrapped._is_primitive = True
    return f_wrapped


def register_notrace(trace_type, primitive_fun):
    """autograd's: make ``primitive_fun`` act on values (no node) for ``trace_type``.
    fastgrad has one kind of trace, so the function stops recording altogether."""
    if isinstance(primitive_fun, Primitive):
        primitive_fun.vjps = _NotTraced(primitive_fun.name)


class _NotTraced(UndefinedVjps):
    def __contains__(self, i):
        return False


class SparseObject:
    """autograd's sparse error signal: a space and a function adding it into an array."""

    __slots__ = ["mut_add", "vs"]

    def __init__(self, vs, mut_add):
        self.vs = vs
        self.mut_add = mut_add


VSpace.register(SparseObject, lambda x: x.vs)
