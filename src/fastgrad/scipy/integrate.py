"""``fastgrad.scipy.integrate``: ``odeint`` with derivatives by the adjoint method.

``odeint(func, y0, t, args=(), **options)`` is ``scipy.integrate.odeint`` (LSODA) and is
differentiable with respect to the initial state ``y0``, the time points ``t`` and every
float array or number inside ``args`` (nested tuples, lists and dicts as well). ``func``
must receive what it depends on through ``args``: a ``func`` that closes over a traced
value is refused (its gradient could not reach that value).

The backward solves the adjoint system backwards in time, one interval [tᵢ₋₁, tᵢ] at a
time, as autograd does (Froehlich et al. 2017, §2.4.2; Chen et al. 2018): with a(t) =
∂L/∂y(t), the augmented state [y, a, a_t, a_θ] follows

    dy/dt = f(y, t, θ),   da/dt = −aᵀ ∂f/∂y,   da_t/dt = −aᵀ ∂f/∂t,   da_θ/dt = −aᵀ ∂f/∂θ,

integrated by ``odeint`` itself (so the backward is differentiable again: grad of grad).
At each tᵢ the output's error signal ȳᵢ joins a, and t̄ᵢ = ȳᵢ · f(y(tᵢ), tᵢ). The solver's
``options`` (rtol, atol, mxstep, …) apply to the backward solves too.
"""

import threading
import weakref

import numpy as onp
import scipy.integrate as _si

from .. import numpy as fnp
from .._functional import make_vjp
from .._ops import EveryArgument
from .._tape import TensorBase, _mode
from ._common import Formula, Sample, entry, refuse, reshape, shape_of, traced, value

__all__ = ["odeint"]


class _Leaf:
    """Where a differentiable leaf of ``args`` sits (its position among the leaves)."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


class _Args:
    """``args`` with its float leaves taken out (they are the primitive's last positional
    arguments, so each can be differentiated), and the solver's options."""

    __slots__ = ("template", "options", "tfirst")

    def __init__(self, template, options, tfirst=False):
        self.template = template
        self.options = options
        self.tfirst = tfirst

    def rebuild(self, leaves):
        return _fill(self.template, leaves)

    def __repr__(self):
        return f"odeint args {self.template!r} options {self.options!r}"


def _is_leaf(v):
    if isinstance(v, TensorBase):
        return True
    if isinstance(v, onp.ndarray):
        return v.dtype.kind == "f"
    return isinstance(v, float)


def _split(args):
    leaves = []

    def walk(v):
        if _is_leaf(v):
            leaves.append(v)
            return _Leaf(len(leaves) - 1)
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            return tuple(walk(x) for x in v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(args), leaves


def _fill(template, leaves):
    if isinstance(template, _Leaf):
        return leaves[template.index]
    if isinstance(template, tuple):
        return tuple(_fill(x, leaves) for x in template)
    if isinstance(template, list):
        return [_fill(x, leaves) for x in template]
    if isinstance(template, dict):
        return {k: _fill(x, leaves) for k, x in template.items()}
    return template


class _TopLevel:
    """Run the solver's calls of ``func`` as at the top level: transforms used inside
    ``func`` (a grad of an energy, the adjoint's own vjps) give plain arrays."""

    def __enter__(self):
        self.depth = _mode.depth
        _mode.depth = 0

    def __exit__(self, *exc):
        _mode.depth = self.depth


def _plain(out, where):
    if isinstance(out, TensorBase):
        if out._node is not None:
            raise TypeError(
                f"odeint: {where} returned a value that depends on a traced variable it closes "
                "over; pass that variable through args=(...) so odeint can differentiate with "
                "respect to it")
        return out._data
    return out


def _oriented(func, tfirst):
    return (lambda y, tt, *a: func(tt, y, *a)) if tfirst else func


def _forward(func, y0, t, spec, *leaves):
    args = spec.rebuild(leaves)
    f = _oriented(func, spec.tfirst)
    options = dict(spec.options)
    jac = options.pop("Dfun", None)
    if jac is not None:
        options["Dfun"] = lambda y, tt: _plain(_oriented(jac, spec.tfirst)(y, tt, *args), "Dfun")
    with _TopLevel():
        return _si.odeint(lambda y, tt: _plain(f(y, tt, *args), "func"), y0, t, **options)


# ------------------------------------------------------------------ the adjoint --

_last = threading.local()  # the last joint backward: one solve serves every argument's rule


def _joint(g, ans, func, y0, t, spec, *leaves):
    last = getattr(_last, "result", None)
    if last is not None and last[0]() is g and last[1]() is ans:
        return last[2]
    result = _adjoint(g, ans, func, t, spec, leaves)
    try:
        _last.result = (weakref.ref(g), weakref.ref(ans), result)
    except TypeError:  # (a value without weak references: no reuse)
        _last.result = None
    return result


def _flatten(leaves):
    if not leaves:
        return onp.zeros(0), lambda flat: []
    shapes = [onp.shape(value(x)) for x in leaves]
    sizes = [int(onp.prod(s)) if s else 1 for s in shapes]
    flat = fnp.concatenate([fnp.reshape(x, (n,)) for x, n in zip(leaves, sizes)])

    def unflatten(flat):
        out, start = [], 0
        for shape, n in zip(shapes, sizes):
            out.append(reshape(flat[start:start + n], shape))
            start += n
        return out

    return flat, unflatten


def _column(x):
    return fnp.reshape(x, (1,))


def _adjoint(g, yt, func, t, spec, leaves):
    """(ȳ₀, t̄, [θ̄ for each leaf]) from the output's error signal ``g`` (T, D)."""
    T, D = shape_of(yt)
    f = _oriented(func, spec.tfirst)
    args = spec.rebuild(leaves)
    flat, unflatten = _flatten(leaves)

    def flat_f(y, tt, fl):
        return f(y, tt, *spec.rebuild(unflatten(fl)))

    def augmented(state, tt, fl):
        y, a = state[:D], state[D:2 * D]
        vjp, dy = make_vjp(flat_f, (0, 1, 2))(y, tt, fl)
        a_y, a_t, a_fl = vjp(-a)
        return fnp.concatenate([fnp.reshape(dy, (D,)), a_y, _column(a_t), a_fl])

    options = {k: v for k, v in spec.options.items() if k != "Dfun"}
    back = _Args((_Leaf(0),), options)
    a_y, a_t, a_fl = g[T - 1], 0.0, onp.zeros(shape_of(flat))
    t_bars = []
    for i in range(T - 1, 0, -1):
        t_bar = fnp.sum(fnp.reshape(f(yt[i], t[i], *args), (D,)) * g[i])  # moving tᵢ moves y(tᵢ)
        t_bars.append(t_bar)
        a_t = a_t - t_bar
        state = fnp.concatenate([yt[i], a_y, _column(a_t), a_fl])
        span = fnp.concatenate([_column(t[i]), _column(t[i - 1])])
        end = _odeint(augmented, state, span, back, flat)[1]  # back to tᵢ₋₁
        a_y = end[D:2 * D] + g[i - 1]
        a_t = end[2 * D]
        a_fl = end[2 * D + 1:]
    t_bars.append(a_t)
    t_bar = fnp.concatenate([_column(x) for x in t_bars[::-1]])
    return a_y, t_bar, unflatten(a_fl)


def _rule(i):
    if i == 1:
        return lambda g, ans, func, y0, t, spec, *leaves: reshape(
            _joint(g, ans, func, y0, t, spec, *leaves)[0], shape_of(y0))
    if i == 2:
        return lambda g, ans, func, y0, t, spec, *leaves: reshape(
            _joint(g, ans, func, y0, t, spec, *leaves)[1], shape_of(t))
    if i == 3:
        return refuse("odeint", "its packed arguments (argument 3)", "not a value")
    return lambda g, ans, func, y0, t, spec, *leaves: _joint(g, ans, func, y0, t, spec, *leaves)[2][i - 4]


def _decay(y, t, a, b):
    """The registry's sample dynamics: dy/dt = −a y + b sin(t) y₀ (depends on y, t and both
    arguments, nonlinearly in y)."""
    return -a * y + b * fnp.sin(t) * y[0] - 0.1 * y * y


def _samples(r):
    tight = {"rtol": 1e-11, "atol": 1e-11}
    return [Sample(_decay, r.uniform(0.5, 1.0, size=(2,)), onp.array([0.1, 0.4, 0.7]),
                   _Args((_Leaf(0), _Leaf(1)), tight), r.uniform(0.5, 1.5, size=(2,)), 0.7)]


_odeint = entry(
    _forward, "odeint", vjps=EveryArgument(_rule), saves_ans=True,
    formula=Formula("{out} = odeint({0}, {1}, {2})",
                    {1: "{1}̄ = a(t₀), the adjoint state integrated back from the last time",
                     2: "{2}̄ᵢ = {out}̄ᵢ · f(y(tᵢ), tᵢ) (and t₀ from the adjoint's a_t)",
                     4: "θ̄ = a_θ(t₀) = ∫ aᵀ ∂f/∂θ dt"},
                    macs=lambda out, args: (0, {})),
    samples=_samples,
)


def odeint(func, y0, t, args=(), **options):
    """``scipy.integrate.odeint(func, y0, t, args, **options)``, differentiable with respect
    to ``y0``, ``t`` and the float leaves of ``args`` (adjoint method). ``full_output`` works
    on plain arrays only (the solver's report has no derivative)."""
    if not isinstance(args, tuple):
        raise TypeError(f"odeint: args must be a tuple, as scipy.integrate.odeint's (got {type(args).__name__})")
    tfirst = bool(options.pop("tfirst", False))
    template, leaves = _split(args)
    spec = _Args(template, options, tfirst)
    if options.get("full_output"):
        if traced(y0, t, *leaves):
            raise NotImplementedError("odeint: full_output=True has no derivative (the solver's "
                                      "report is not a function of the inputs); call it on plain arrays")
        return _forward(func, y0, t, spec, *leaves)
    return _odeint(func, y0, t, spec, *leaves)
