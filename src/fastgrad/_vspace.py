"""Vector spaces of values, autograd's ``VSpace`` API (``fastgrad.extend.vspace``).

``vspace(x)`` is the space x lives in: arrays and floats (real or complex), tuples, lists,
dicts and NumPy's named results of them, and any type a user registers with
``MyVSpace.register(MyType)``. A space offers ``zeros``, ``ones``, ``randn``,
``standard_basis``, ``size``, ``iscomplex``, and the operations ``add``,
``scalar_mul``, ``inner_prod``, ``covector`` (the conjugate, for complex values) and
``mut_add``. The four operations are primitives (registry entries): called on traced
values they record one node, whose rules are the same operations, so a user type whose
``_add``/``_scalar_mul``/``_inner_prod`` act on its plain values is differentiated
through them, and grad of grad works.

fastgrad's own sweep adds error signals with ``+``; a registered type must support it
(a value's ``__add__`` can call ``self.vs.add``, as autograd's examples do).
"""

from typing import ClassVar

import numpy as np

from ._registry import Formula, NotCompiled, Sample, define
from ._tape import TensorBase

__all__ = ["VSpace", "ArrayVSpace", "ComplexArrayVSpace", "ContainerVSpace", "SequenceVSpace",
           "ListVSpace", "TupleVSpace", "DictVSpace", "NamedTupleVSpace", "vspace"]


def _value(x):
    while isinstance(x, TensorBase):
        x = x._data
    return x


class VSpace:
    """The vector space of a value. Subclass it, define ``zeros``, ``randn`` and the
    underscored operations on plain values, and ``register`` the value type."""

    mappings: ClassVar[dict] = {}
    iscomplex = False

    def __init__(self, value):
        pass

    def zeros(self):
        raise NotImplementedError(f"{type(self).__name__}.zeros")

    def ones(self):
        raise NotImplementedError(f"{type(self).__name__}.ones")

    def standard_basis(self):
        raise NotImplementedError(f"{type(self).__name__}.standard_basis")

    def randn(self):
        raise NotImplementedError(f"{type(self).__name__}.randn")

    def add(self, x, y):
        return vspace_add(self, x, y)

    def mut_add(self, x_prev, x_new):
        """x_prev + x_new (x_prev None: zeros); may reuse x_prev's storage."""
        if x_prev is None:
            x_prev = self.zeros()
        if isinstance(x_prev, TensorBase) or isinstance(x_new, TensorBase):
            return vspace_add(self, x_prev, x_new)
        return self._mut_add(x_prev, x_new)

    def scalar_mul(self, x, a):
        return vspace_scalar_mul(self, x, a)

    def inner_prod(self, x, y):
        return vspace_inner_prod(self, x, y)

    def covector(self, x):
        return vspace_covector(self, x)

    def _add(self, x, y):
        return x + y

    def _mut_add(self, x, y):
        x += y
        return x

    def _scalar_mul(self, x, a):
        return x * a

    def _inner_prod(self, x, y):
        raise NotImplementedError(f"{type(self).__name__}._inner_prod")

    def _covector(self, x):
        return x

    def __eq__(self, other):
        return type(self) is type(other) and _state(self) == _state(other)

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return f"{type(self).__name__}_{_state(self)}"

    @classmethod
    def register(cls, value_type, vspace_maker=None):
        """Values of ``value_type`` live in ``vspace_maker(value)`` (default: ``cls``)."""
        VSpace.mappings[value_type] = vspace_maker or cls


def _state(vs):
    return dict(getattr(vs, "__dict__", {}))


def vspace(value):
    """The vector space ``value`` lives in; a TypeError for a value outside every space."""
    maker = VSpace.mappings.get(type(value))
    if maker is not None:
        return maker(value)
    if isinstance(value, TensorBase):
        return vspace(value._data)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return NamedTupleVSpace(value)
    raise TypeError(
        f"Can't find vector space for value {value!r} of type {type(value)}. Valid types are "
        f"{list(VSpace.mappings)}")


# ------------------------------------------------------------------------- arrays --


class ArrayVSpace(VSpace):
    """Real arrays and floats of one shape and dtype."""


    def __init__(self, value):
        value = np.asarray(value)
        self.shape = value.shape
        self.dtype = value.dtype

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def ndim(self):
        return len(self.shape)

    def zeros(self):
        return np.zeros(self.shape, dtype=self.dtype)

    def ones(self):
        return np.ones(self.shape, dtype=self.dtype)

    def standard_basis(self):
        for index in np.ndindex(*self.shape):
            e = np.zeros(self.shape, dtype=self.dtype)
            e[index] = 1
            yield e

    def randn(self):
        return np.array(np.random.randn(*self.shape)).astype(self.dtype)

    def _inner_prod(self, x, y):
        from . import numpy as fnp

        return fnp.dot(fnp.ravel(x), fnp.ravel(y))


class ComplexArrayVSpace(ArrayVSpace):
    """Complex arrays: twice the real dimension; ⟨x, y⟩ = Re Σ conj(x) y."""

    iscomplex = True

    @property
    def size(self):
        return int(np.prod(self.shape)) * 2

    def ones(self):
        ones = np.ones(self.shape, dtype=self.dtype)
        return ones + 1j * ones

    def standard_basis(self):
        for index in np.ndindex(*self.shape):
            for unit in (1.0, 1.0j):
                e = np.zeros(self.shape, dtype=self.dtype)
                e[index] = unit
                yield e

    def randn(self):
        re = np.array(np.random.randn(*self.shape)).astype(self.dtype)
        im = np.array(np.random.randn(*self.shape)).astype(self.dtype)
        return re + 1j * im

    def _inner_prod(self, x, y):
        from . import numpy as fnp

        return fnp.real(fnp.dot(fnp.conj(fnp.ravel(x)), fnp.ravel(y)))

    def _covector(self, x):
        from . import numpy as fnp

        return fnp.conj(x)


def _array_space(value):
    return ComplexArrayVSpace(value) if np.iscomplexobj(value) else ArrayVSpace(value)


VSpace.register(np.ndarray, _array_space)
for _t in (float, np.longdouble, np.float64, np.float32, np.float16):
    ArrayVSpace.register(_t)
for _t in (complex, np.clongdouble, np.complex64, np.complex128):
    ComplexArrayVSpace.register(_t)

# --------------------------------------------------------------------- containers --


class ContainerVSpace(VSpace):
    """Tuples, lists and dicts: the product of their elements' spaces."""


    def __init__(self, value):
        self.shape = value
        self.shape = self._map(vspace)

    @property
    def size(self):
        return sum(self._values(self._map(lambda vs: vs.size)))

    @property
    def iscomplex(self):
        return any(vs.iscomplex for vs in self._values(self.shape))

    def zeros(self):
        return self._map(lambda vs: vs.zeros())

    def ones(self):
        return self._map(lambda vs: vs.ones())

    def randn(self):
        return self._map(lambda vs: vs.randn())

    def standard_basis(self):
        zero = self.zeros()
        for key, vs in self._kv_pairs(self.shape):
            for x in vs.standard_basis():
                yield self._subval(zero, key, x)

    def _add(self, xs, ys):
        return self._map(lambda vs, x, y: vs.add(x, y), xs, ys)

    def _mut_add(self, xs, ys):
        return self._map(lambda vs, x, y: vs.mut_add(x, y), xs, ys)

    def _scalar_mul(self, xs, a):
        return self._map(lambda vs, x: vs.scalar_mul(x, a), xs)

    def _inner_prod(self, xs, ys):
        total = 0.0
        for term in self._values(self._map(lambda vs, x, y: vs.inner_prod(x, y), xs, ys)):
            total = total + term
        return total

    def _covector(self, xs):
        return self._map(lambda vs, x: vs.covector(x), xs)


class SequenceVSpace(ContainerVSpace):
    seq_type = tuple

    def _values(self, x):
        return x

    def _kv_pairs(self, x):
        return enumerate(x)

    def _map(self, f, *args):
        return self.seq_type(map(f, self.shape, *args))

    def _subval(self, xs, index, x):
        xs = list(xs)
        xs[index] = x
        return self.seq_type(xs)


class ListVSpace(SequenceVSpace):
    seq_type = list


class TupleVSpace(SequenceVSpace):
    seq_type = tuple


class DictVSpace(ContainerVSpace):

    def _values(self, x):
        return x.values()

    def _kv_pairs(self, x):
        return x.items()

    def _map(self, f, *args):
        return {k: f(vs, *[x[k] for x in args]) for k, vs in self.shape.items()}

    def _subval(self, xs, key, x):
        d = dict(xs.items())
        d[key] = x
        return d


class NamedTupleVSpace(SequenceVSpace):
    """A named tuple (NumPy's EigResult, SVDResult, ...): its type is kept."""


    def __init__(self, value):
        self.seq_type = type(value)
        super().__init__(value)

    def _map(self, f, *args):
        return self.seq_type(*map(f, self.shape, *args))

    def _subval(self, xs, index, x):
        xs = list(xs)
        xs[index] = x
        return self.seq_type(*xs)


ListVSpace.register(list)
TupleVSpace.register(tuple)
DictVSpace.register(dict)

# ----------------------------------------------- the operations, as primitives --
# Rules (autograd's convention for complex values, fastgrad._functional):
#   z = x + y:            x̄ = z̄,  ȳ = z̄
#   z = a x:              x̄ = cov(a cov(z̄)),  ā = ⟨z̄, cov(x)⟩
#   s = ⟨x, y⟩:           x̄ = cov(s̄ y),  ȳ = cov(s̄ x)
#   y = cov(x):           x̄ = cov(ȳ)


def _vs_samples(r):
    x, y = r.normal(size=(2, 3)), r.normal(size=(2, 3))
    z = r.normal(size=(3,)) + 1j * r.normal(size=(3,))
    return [Sample(ArrayVSpace(x), x, y), Sample(ComplexArrayVSpace(z), z, z[::-1].copy())]


def _scalar_mul_samples(r):
    x = r.normal(size=(2, 3))
    z = r.normal(size=(3,)) + 1j * r.normal(size=(3,))
    return [Sample(ArrayVSpace(x), x, 1.7), Sample(ComplexArrayVSpace(z), z, -0.6)]


def _covector_samples(r):
    z = r.normal(size=(3,)) + 1j * r.normal(size=(3,))
    return [Sample(ComplexArrayVSpace(z), z), Sample(ArrayVSpace(z.real), z.real.copy())]


vspace_add = define(
    lambda vs, x, y: vs._add(x, y), "vspace_add",
    vjps=[None, lambda g, ans, vs, x, y: g, lambda g, ans, vs, x, y: g], saves_args=False,
    formula=Formula("{out} = {1} + {2}", {1: "{1}̄ = {out}̄", 2: "{2}̄ = {out}̄"}),
    lowering=NotCompiled("a VSpace's operations are not lowered"), samples=_vs_samples,
)
vspace_scalar_mul = define(
    lambda vs, x, a: vs._scalar_mul(x, a), "vspace_scalar_mul",
    vjps=[None, lambda g, ans, vs, x, a: vs.covector(vs.scalar_mul(vs.covector(g), a)),
          lambda g, ans, vs, x, a: vs.inner_prod(g, vs.covector(x))],
    formula=Formula("{out} = {2} {1}", {1: "{1}̄ = cov({2} cov({out}̄))", 2: "{2}̄ = ⟨{out}̄, cov({1})⟩"}),
    lowering=NotCompiled("a VSpace's operations are not lowered"), samples=_scalar_mul_samples,
)
vspace_inner_prod = define(
    lambda vs, x, y: vs._inner_prod(x, y), "vspace_inner_prod",
    vjps=[None, lambda g, ans, vs, x, y: vs.covector(vs.scalar_mul(y, g)),
          lambda g, ans, vs, x, y: vs.covector(vs.scalar_mul(x, g))],
    formula=Formula("{out} = ⟨{1}, {2}⟩", {1: "{1}̄ = cov({out}̄ {2})", 2: "{2}̄ = cov({out}̄ {1})"}),
    lowering=NotCompiled("a VSpace's operations are not lowered"), samples=_vs_samples,
)
vspace_covector = define(
    lambda vs, x: vs._covector(x), "vspace_covector",
    vjps=[None, lambda g, ans, vs, x: vs.covector(g)], saves_args=False,
    formula=Formula("{out} = cov({1})", {1: "{1}̄ = cov({out}̄)"}),
    lowering=NotCompiled("a VSpace's operations are not lowered"), samples=_covector_samples,
)
