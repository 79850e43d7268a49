"""``fixed_point(f, a, x0, distance, tol)``: x* = f(a)(x*) by iteration, differentiable in a.

Forward: x ← f(a)(x) from x0 until ``distance(x, x_previous) <= tol``. Backward (the
implicit function theorem): ā = (∂f/∂a)ᵀ w where w = (∂f/∂x)ᵀ w + x̄*, itself a fixed
point found by iteration from 0 with the same ``distance`` and ``tol`` (as autograd's,
so grad of grad gives its numbers); both vjps are taken at x* with fastgrad's
transforms. ``a`` may be a tuple, list or dict of arrays.
"""

import numpy as onp

from .._functional import make_vjp
from .._ops import no_macs
from .._registry import Formula, NotCompiled, Sample, register
from .._vspace import vspace
from ..extend import defvjp, primitive

__all__ = ["fixed_point"]


@primitive
def fixed_point(f, a, x0, distance, tol):
    step = f(a)
    x, x_prev = step(x0), x0
    while distance(x, x_prev) > tol:
        x, x_prev = step(x), x
    return x


def _fixed_point_vjp(ans, f, a, x0, distance, tol):
    # ā = (∂f/∂a)ᵀ w at x*, where w is the fixed point of w ↦ (∂f/∂x)ᵀ w + x̄* (from 0):
    # itself a fixed_point, of the parameters (a, x*, x̄*), so that grad of grad
    # differentiates it by this same rule
    def adjoint_step(params):
        a, x_star, x_star_bar = params
        vjp_x, _ = make_vjp(f(a))(x_star)
        vs = vspace(x_star)
        return lambda w: vs.add(vjp_x(w), x_star_bar)

    vjp_a, _ = make_vjp(lambda a: f(a)(ans))(a)
    zeros = vspace(x0).zeros()
    return lambda g: vjp_a(fixed_point(adjoint_step, (a, ans, g), zeros, distance, tol))
defvjp(fixed_point, None, _fixed_point_vjp, None)


def _contraction(a):  # x = a ∘ cos(x) / 2: a contraction for |a| < 2, elementwise
    from .. import numpy as np
    return lambda x: a * np.cos(x) / 2


def _distance(x, y):
    from .. import numpy as np
    return np.max(np.abs(x - y))


def _samples(r):
    return [Sample(_contraction, 0.8, 0.0, _distance, 1e-13, wrt=(1,)),
            Sample(_contraction, r.uniform(0.2, 1.5, size=3), onp.zeros(3), _distance, 1e-13,
                   wrt=(1,))]


register(fixed_point,
         formula=Formula("{out} = fixed point of f({1}) from {2}",
                         {1: "{1}̄ = (∂f/∂a)ᵀ w, w = (∂f/∂x)ᵀ w + {out}̄ (iterated)"}, no_macs),
         samples=_samples, lowering=NotCompiled("fixed_point iterates in Python"))
