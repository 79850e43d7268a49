"""The factored weight gradient: W̄ = z̄ᵀ x kept as its two factors until someone reads it.

With a small batch, z̄ (N, M) and x (N, D) are far smaller than W̄ (M, D): a per-example
step would spend most of its backward writing W̄ and most of its update reading it back.
So a first-order backward that accumulates into a leaf may leave an ``OuterGrad`` in the
leaf's gradient slot (linear's joint rule decides, with ``factor``); ``SGD.step`` applies
it in one pass over W (``sgd_outer_update``), and anything else that reads ``.grad`` gets
the array, computed once (``leaf_grad``). See docs/tape.md.
"""

from ._backend import kernels

try:
    import cython
except ImportError:  # (setup.py compiles this module; uncompiled, the hints are no-ops)
    class cython:  # noqa: N801
        @staticmethod
        def cclass(cls):
            return cls

        final = cclass

        @staticmethod
        def declare(type=None, value=None, **kwds):  # noqa: A002
            return value

__all__ = ["OuterGrad", "factor", "leaf_grad", "add_signals"]


@cython.final
@cython.cclass
class OuterGrad:
    """W̄ = z̄ᵀ x as its factors ``dz`` (N, M) and ``x`` (N, D): private copies, so later
    writes to x cannot change the gradient. (Compiled, an extension type: made and read
    once per weight per per-example step.)"""

    dz = cython.declare(object, visibility="public")
    x = cython.declare(object, visibility="public")

    def __init__(self, dz, x):
        self.dz = dz
        self.x = x

    @property
    def shape(self):
        return (self.dz.shape[1], self.x.shape[1])

    @property
    def dtype(self):
        return self.dz.dtype

    def array(self):
        return kernels().outer_grad(self.dz, self.x)


def factor(dz, x):
    """W̄ = z̄ᵀ x (2-D arrays) left factored when z̄ and x hold under a quarter of W̄'s
    numbers and the batch is at most 16 rows (per-example SGD, small batches); None:
    compute it. Applying a factored W̄ forms each row of it in a loop over the batch: from
    64 rows on, BLAS's product and then the update is faster (1024×1024 float32: 1.4× at
    64 rows, 1.8× at 128; 0.3–0.8× up to 16; docs/tape.md)."""
    N, M = dz.shape
    D = x.shape[1]
    if N <= 16 and 4 * N * (M + D) <= M * D and dz.dtype == x.dtype:
        return OuterGrad(dz.copy(), x.copy())
    return None


def leaf_grad(node):
    """A leaf node's accumulated gradient as an array (or None), computing a factored one."""
    g = node.grad
    if type(g) is OuterGrad:
        g = node.grad = g.array()
    return g


def add_signals(old, new):
    """Fan-out: v̄ = Σ of the contributions (factored ones computed first)."""
    if type(old) is OuterGrad:
        old = old.array()
    if type(new) is OuterGrad:
        new = new.array()
    return old + new
