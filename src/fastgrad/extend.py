"""``fastgrad.extend``: define your own primitives, with autograd's signatures.

    from fastgrad.extend import primitive, defvjp

    @primitive
    def logsumexp(x):
        m = np.max(x)
        return m + np.log(np.sum(np.exp(x - m)))

    defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))

A vjp maker is ``maker(ans, *args, **kwargs) -> (g -> error signal of that argument)``;
write the returned function with ``fastgrad.numpy`` so it can be differentiated again.
Forward-mode rules (``defjvp``) are accepted and stored, but fastgrad derives forward mode
from the reverse pass, so a primitive needs a vjp to be differentiated either way.
"""

import numpy as np

from ._functional import make_vjp  # noqa: F401
from ._tape import Primitive
from ._tensor import Tensor
from .numpy._util import UndefinedVjps

__all__ = [
    "primitive",
    "defvjp",
    "defvjp_argnum",
    "defvjp_argnums",
    "defjvp",
    "defjvp_argnum",
    "notrace_primitive",
    "vspace",
    "VSpace",
    "Box",
    "getval",
    "isbox",
    "primitive_vjps",
    "primitive_jvps",
    "make_vjp",
]

Box = Tensor


def isbox(x) -> bool:
    return isinstance(x, Tensor)


def getval(x):
    """The value inside a (possibly nested) traced value."""
    while isinstance(x, Tensor):
        x = x._data
    return x


def primitive(f_raw):
    """Wrap ``f_raw`` so that calls on traced values are recorded (no rules yet)."""
    p = Primitive(f_raw, getattr(f_raw, "__name__", "primitive"))
    p.vjps = UndefinedVjps(p.name)
    try:
        p.__qualname__ = f_raw.__qualname__
        p.__module__ = f_raw.__module__
    except AttributeError:
        pass
    return p


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
    if not isinstance(prim.vjps, UndefinedVjps):
        old = prim.vjps
        prim.vjps = UndefinedVjps(prim.name)
        prim.vjps.update(old)
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
        return lambda g: vjpmaker((argnum,), ans, args, kwargs)(g)[0]

    return defvjp_argnum(fun, one)


def defjvp(fun, *jvpfuns, **kwargs):
    """Accepted and stored; forward mode is derived from the vjps."""
    primitive_jvps[fun] = (jvpfuns, kwargs)
    return fun


def defjvp_argnum(fun, jvpmaker):
    primitive_jvps[fun] = (jvpmaker,)
    return fun


def def_linear(fun):
    """Declare ``fun`` linear in each argument: its vjp is ``fun`` applied to... (unsupported)."""
    raise NotImplementedError("def_linear: give fastgrad a vjp with defvjp")


def notrace_primitive(f_raw):
    """``f_raw`` on the values inside traced arguments; its result is a constant."""

    def f_wrapped(*args, **kwargs):
        return f_raw(*[getval(a) for a in args], **{k: getval(v) for k, v in kwargs.items()})

    f_wrapped.__name__ = getattr(f_raw, "__name__", "notrace_primitive")
    f_wrapped.fun = f_raw
    return f_wrapped


class VSpace:
    """The vector space of a value: shape, dtype, zeros/ones/randn, inner products."""

    __slots__ = ("shape", "dtype")

    def __init__(self, value):
        value = getval(value)
        arr = np.asarray(value)
        if arr.dtype.kind not in "fc":
            raise TypeError(f"Can't find vector space for value {value!r} of type {type(value)}")
        self.shape = arr.shape
        self.dtype = arr.dtype

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def ndim(self):
        return len(self.shape)

    def zeros(self):
        return np.zeros(self.shape, self.dtype)

    def ones(self):
        return np.ones(self.shape, self.dtype)

    def randn(self):
        return np.random.randn(*self.shape).astype(self.dtype)

    def standard_basis(self):
        for i in range(self.size):
            e = np.zeros(self.size, self.dtype)
            e[i] = 1.0
            yield e.reshape(self.shape)

    def flatten(self, value):
        return np.ravel(getval(value))

    def unflatten(self, value):
        return np.reshape(value, self.shape)

    def inner_prod(self, x, y):
        return float(np.sum(np.asarray(getval(x)) * np.asarray(getval(y))))

    def covector(self, x):
        return np.conj(x)

    def __eq__(self, other):
        return type(self) is type(other) and self.shape == other.shape and self.dtype == other.dtype

    def __repr__(self):
        return f"VSpace(shape={self.shape}, dtype={self.dtype})"


class _ContainerVSpace:
    def __init__(self, value):
        self.kind = type(value)
        if isinstance(value, dict):
            self.spaces = {k: vspace(v) for k, v in value.items()}
        else:
            self.spaces = [vspace(v) for v in value]

    def _items(self):
        return self.spaces.items() if isinstance(self.spaces, dict) else enumerate(self.spaces)

    @property
    def size(self):
        return sum(s.size for _, s in self._items())

    def _build(self, make):
        if isinstance(self.spaces, dict):
            return {k: make(s) for k, s in self.spaces.items()}
        out = [make(s) for s in self.spaces]
        return out if self.kind is list else tuple(out)

    def zeros(self):
        return self._build(lambda s: s.zeros())

    def ones(self):
        return self._build(lambda s: s.ones())

    def randn(self):
        return self._build(lambda s: s.randn())

    def inner_prod(self, x, y):
        return sum(s.inner_prod(x[k], y[k]) for k, s in self._items())

    def __eq__(self, other):
        return (
            isinstance(other, _ContainerVSpace)
            and self.kind is other.kind
            and self.spaces == other.spaces
        )


def vspace(value):
    """The vector space ``value`` lives in (arrays, floats, and tuples/lists/dicts of them)."""
    if isinstance(value, (tuple, list, dict)):
        return _ContainerVSpace(value)
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))):
        raise TypeError(f"Can't find vector space for value {value!r} of type {type(value)}")
    return VSpace(value)
