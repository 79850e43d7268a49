"""The functional face: autograd's differential operators on fastgrad's tape.

``grad(f)(x)`` wraps ``x`` in a fresh node, runs ``f`` (recording), and sweeps the tape
back to that node only. Inside another transform (``grad(grad(f))``) the inner sweep
runs its rules on tensors and records them, so the outer one can differentiate the
inner's result::

    def tanh(x): return (1.0 - np.exp(-2 * x)) / (1.0 + np.exp(-2 * x))
    grad(grad(tanh))(1.0)       # second derivative

Each call gets a fresh node even when ``x`` is already being traced, so
``grad(lambda x: x * grad(lambda y: x * y)(x))`` differentiates the inner ``y`` apart
from the outer ``x`` (no perturbation confusion).
"""

import functools
import warnings

import numpy as np

from . import _ops, _tape
from ._registry import TraceBody
from ._tape import Primitive, TensorBase, _mode, _SetGrad, leaf_node, run_backward
from ._tensor import Tensor

__all__ = [
    "grad", "value_and_grad", "elementwise_grad", "jacobian", "hessian", "make_vjp",
    "make_jvp", "make_hvp", "deriv", "grad_and_aux", "hessian_tensor_product",
    "hessian_vector_product", "tensor_jacobian_product", "vector_jacobian_product",
    "checkpoint", "make_ggnvp", "holomorphic_grad",
]


# ------------------------------------------------------------- nested containers --


def _map(fn, x):
    """Apply ``fn`` to every leaf of nested tuples, lists and dicts."""
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_map(fn, v) for v in x)
    if isinstance(x, list):
        return [_map(fn, v) for v in x]
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return fn(x)


def _leaves(x):
    out = []
    _map(out.append, x)
    return out


def _map2(fn, x, y):
    """Like ``_map`` over two structures of the same shape."""
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        return type(x)(_map2(fn, a, b) for a, b in zip(x, y))
    if isinstance(x, dict):
        return {k: _map2(fn, x[k], y[k]) for k in x}
    return fn(x, y)


# ------------------------------------------------------------------- the trace --


class _Start:
    """The fresh node a transform differentiates with respect to, for one input leaf."""

    __slots__ = ("tensor", "scalar", "dtype", "shape", "user")

    def __init__(self, x):
        if _tape._tracer is not None:
            x = _tape._tracer.start(x)  # fastgrad.compile: an integer argument's float twin
        self.scalar = not isinstance(x, (np.ndarray, Tensor))
        data = x._data if isinstance(x, TensorBase) else x
        box = _tape.box_type_mappings.get(type(data)) if _tape.box_type_mappings else None
        self.user = box is not None  # a user's own value type (Box.register, VSpace.register)
        if isinstance(x, TensorBase) and x._node is not None and _mode.enabled:
            t = _ops.identity(x)  # traced by an outer transform: a new node on top of it
            if self.user:
                t = _tape.wrap(box, t._data, t._node)
        elif self.user:
            t = _tape.wrap(box, data, leaf_node(()))
            self.tensor, self.dtype, self.shape = t, None, ()
            return
        else:
            data = x._data if isinstance(x, Tensor) else x
            array = np.asarray(data)
            if array.dtype.kind not in "fc":  # (complex inputs: autograd's convention, below)
                array = array.astype(np.float64)
            t = Tensor._wrap(array, leaf_node(array.shape))
        self.tensor = t
        self.dtype = np.result_type(t._data)
        self.shape = np.shape(t._data)

    def finish(self, g):
        """The error signal reaching the start, shaped and typed like the input.

        Complex numbers follow autograd's convention: the rules pass v̄ through the
        holomorphic derivative (v̄ f'(z)) or their stated formula, and a real input takes
        the real part of the signal that reaches it (the only part a real perturbation
        moves), so a real computation with complex intermediates (an FFT convolution)
        gets its real gradient; a complex input gets a complex gradient.
        """
        if self.user:  # a user's type: its space's zeros, else the signal as it came
            if g is None:
                from ._vspace import vspace

                return vspace(self.tensor._data).zeros()
            return g._data if isinstance(g, TensorBase) and g._node is None else g
        if g is None:
            g = np.zeros(self.shape, self.dtype)
        if isinstance(g, Tensor):
            if g._node is None:
                g = g._data
            else:
                return self._finish_traced(g)
        g = np.asarray(g)
        if g.dtype.kind == "c" and self.dtype.kind != "c":
            g = g.real
        if g.dtype != self.dtype:
            g = g.astype(self.dtype)
        if g.shape != self.shape:
            g = np.broadcast_to(g, self.shape).copy()
        return g[()] if self.scalar else g

    def _finish_traced(self, g):
        """``finish`` for a signal that is itself recorded (grad of grad)."""
        from .numpy import _building, _elementwise  # (fastgrad.numpy imports this layer)

        kind = np.result_type(g._data).kind
        if kind == "c" and self.dtype.kind != "c":
            g = _elementwise.real(g)
        elif kind != "c" and self.dtype.kind == "c":
            g = _building.astype(g, self.dtype)
        if np.shape(g._data) != self.shape:
            g = _ops.broadcast_to(g, self.shape)
        return g


def _select(args, argnum):
    try:
        if isinstance(argnum, (tuple, list)):
            return tuple(args[i] for i in argnum)
        return args[argnum]
    except (IndexError, TypeError):
        raise TypeError(
            f"argnum={argnum!r} does not name a positional argument of this call, which "
            f"has {len(args)}"
        ) from None


def _replace(args, argnum, new):
    args = list(args)
    if isinstance(argnum, (tuple, list)):
        for i, v in zip(argnum, new):
            args[i] = v
    else:
        args[argnum] = new
    return args


class _Trace:
    """One forward pass of ``fun`` recorded from fresh nodes at ``args[argnum]``."""

    def __init__(self, fun, args, kwargs, argnum):
        x = _select(args, argnum)
        self.starts = _map(_Start, x)
        self.start_list = _leaves(self.starts)
        boxed = _map(lambda s: s.tensor, self.starts)
        self.nested = _mode.depth > 0
        _mode.depth += 1
        try:
            with _ops_enable_grad():
                self.ans = fun(*_replace(args, argnum, boxed), **kwargs)
        finally:
            _mode.depth -= 1

    def value(self):
        """The function's value: plain data at the top level, a tensor when nested."""
        return _unbox(self.ans) if not self.nested else self.ans

    def vjp(self, g, retain_graph=True):
        ans = self.ans
        targets = [s.tensor._node for s in self.start_list]
        roots, seeds = [], []

        def collect(out, seed):
            if isinstance(out, Tensor) and out._node is not None:
                roots.append(out._node)
                if not (isinstance(seed, Tensor) and seed._node is not None):
                    seed = np.asarray(value_of(seed))
                    dtype = np.result_type(out._data)
                    if seed.dtype.kind == "c" and dtype.kind != "c":
                        seed = seed.real  # a real output: only the real part of a covector acts
                    seed = seed.astype(dtype, copy=False)
                    if seed.shape != np.shape(out._data):
                        seed = np.broadcast_to(seed, np.shape(out._data))
                seeds.append(seed)

        _map2(collect, ans, g) if isinstance(ans, (tuple, list, dict)) else collect(ans, g)
        create_graph = self.nested or any(isinstance(s, Tensor) and s._node is not None for s in seeds)
        if roots:
            depth = _mode.depth
            _mode.depth = depth + 1 if create_graph else depth
            try:
                with _ops_enable_grad():
                    grads = run_backward(roots, seeds, retain_graph=retain_graph,
                                         create_graph=create_graph, targets=targets)
            finally:
                _mode.depth = depth
        else:
            # as autograd: a zero gradient, said aloud (np.asarray of a traced value, or a
            # DataArray's .values, detaches it; fastgrad.numpy's functions keep the trace)
            warnings.warn("Output seems independent of input.")
            grads = [None] * len(targets)
        it = iter(grads)
        return _map(lambda s: s.finish(next(it)), self.starts)


def value_of(x):
    return x._data if isinstance(x, Tensor) else x


def _unbox(x):
    return _map(lambda v: v._data if isinstance(v, Tensor) else v, x)


def _ops_enable_grad():
    return _SetGrad(True)


def _ones_like(x):
    return _map(lambda v: np.ones(np.shape(value_of(v)), dtype=np.result_type(value_of(v))), x)


def _check_scalar(ans, name):
    a = value_of(ans)
    if a is None or isinstance(a, (bool, np.bool_)) or np.result_type(a).kind not in "fc":
        raise TypeError(
            f"{name} needs a function with a real scalar output, but it returned {a!r} of type "
            f"{type(a).__name__}: there is no gradient of a non-float value"
        )
    if np.size(a) != 1 or isinstance(ans, (tuple, list, dict)):
        raise TypeError(
            f"{name} requires a function with a scalar output, but it returned shape {np.shape(a)}; "
            "use elementwise_grad, jacobian or make_vjp for other outputs"
        )
    if np.result_type(a).kind == "c":  # two real outputs: as autograd, no gradient
        raise TypeError(
            f"{name} only applies to real scalar-output functions, but this one returned a "
            f"complex value {a!r}; use holomorphic_grad, or the gradient of its real part"
        )


# ---------------------------------------------------------------- the operators --


def make_vjp(fun, argnum=0):
    """``make_vjp(f, argnum)(*args)`` → ``(vjp, f(*args))`` with ``vjp(g)`` = gᵀ ∂f/∂x."""

    def maker(*args, **kwargs):
        trace = _Trace(fun, args, kwargs, argnum)
        return trace.vjp, trace.value()

    return maker


def _named(op, fun, argnum):
    """Name the function an operator returns as autograd does: ``grad_of_f_wrt_argnum_0``."""
    fun_name = getattr(fun, "__name__", "[unknown name]")

    def decorate(wrapper):
        try:
            functools.update_wrapper(wrapper, fun)
        except AttributeError:
            pass
        wrapper.__name__ = f"{op}_of_{fun_name}_wrt_argnum_{argnum}"
        wrapper.__doc__ = (
            f"    {op} of function {fun_name} with respect to argument number {argnum}. Takes the\n"
            f"    same arguments as {fun_name} but returns the {op}.\n"
        )
        return wrapper

    return decorate


def grad(fun, argnum=0):
    """
    Returns a function which computes the gradient of ``fun`` with respect to
    positional argument number ``argnum`` (an int, or a tuple for several). The
    returned function takes the same arguments as ``fun`` and returns the gradient,
    shaped like the argument. ``fun`` must return a real scalar.
    """

    @_named("grad", fun, argnum)
    def gradfun(*args, **kwargs):
        trace = _Trace(fun, args, kwargs, argnum)
        _check_scalar(trace.ans, "grad")
        return trace.vjp(_ones_like(trace.ans), retain_graph=trace.nested)

    return gradfun


def holomorphic_grad(fun, argnum=0):
    """f'(z) of a holomorphic ``fun``: the gradient of its real part, as autograd's (for
    f = u + iv, ∂u/∂x − i ∂u/∂y, which is f' when the Cauchy–Riemann equations hold)."""

    def real_part(*args, **kwargs):
        from .numpy import real  # (fastgrad.numpy imports this module's layer)

        return real(fun(*args, **kwargs))

    real_part.__name__ = getattr(fun, "__name__", "fun")
    g = grad(real_part, argnum)

    @_named("holomorphic_grad", fun, argnum)
    def gradfun(*args, **kwargs):
        if not any(np.iscomplexobj(value_of(x)) for x in _leaves(_select(args, argnum))):
            warnings.warn("Input to holomorphic_grad is not complex")
        return g(*args, **kwargs)

    return gradfun


def value_and_grad(fun, argnum=0):
    """``(f(*args), grad(f)(*args))`` from one forward pass."""

    @functools.wraps(fun)
    def both(*args, **kwargs):
        trace = _Trace(fun, args, kwargs, argnum)
        _check_scalar(trace.ans, "value_and_grad")
        value = trace.value()
        return value, trace.vjp(_ones_like(trace.ans), retain_graph=trace.nested)

    return both


def grad_and_aux(fun, argnum=0):
    """For ``f`` returning ``(value, aux)``: ``(grad of value, aux)``."""

    @functools.wraps(fun)
    def both(*args, **kwargs):
        aux_box = []

        def value_only(*a, **k):
            v, aux = fun(*a, **k)
            aux_box.append(aux)
            return v

        g = grad(value_only, argnum)(*args, **kwargs)
        return g, _unbox(aux_box[0]) if _mode.depth == 0 else aux_box[0]

    return both


def elementwise_grad(fun, argnum=0):
    """The vjp with a vector of ones: the derivative of each output by its own input."""

    @functools.wraps(fun)
    def gradfun(*args, **kwargs):
        trace = _Trace(fun, args, kwargs, argnum)
        if any(np.iscomplexobj(value_of(a)) for a in _leaves(trace.ans)):
            raise TypeError("elementwise_grad only applies to real-output functions; this one "
                            "returned a complex value")
        return trace.vjp(_ones_like(trace.ans), retain_graph=trace.nested)

    return gradfun


def jacobian(fun, argnum=0):
    """∂f/∂x as an array of shape ``f(x).shape + x.shape``, one vjp per output element."""

    @functools.wraps(fun)
    def jacfun(*args, **kwargs):
        trace = _Trace(fun, args, kwargs, argnum)
        ans = trace.ans
        out_shape = np.shape(value_of(ans))
        x = _select(args, argnum)
        in_shape = np.shape(value_of(x))
        dtype = np.result_type(value_of(ans))
        rows = []
        n = int(np.prod(out_shape))
        for k in range(n):
            basis = np.zeros(n, dtype=dtype)
            basis[k] = 1.0
            rows.append(trace.vjp(basis.reshape(out_shape), retain_graph=True))
        if any(isinstance(r, Tensor) for r in rows):
            stacked = _ops.stack(rows) if rows else np.zeros((0,) + in_shape)
            return _ops.reshape(stacked, out_shape + in_shape)
        stacked = np.stack([np.asarray(r) for r in rows]) if rows else np.zeros((0,) + in_shape)
        return np.reshape(stacked, out_shape + in_shape)

    return jacfun


def hessian(fun, argnum=0):
    return jacobian(jacobian(fun, argnum), argnum)


def _vdot(a, b):
    return _ops.sum(_ops.multiply(a, b))


def make_jvp(fun, argnum=0):
    """``make_jvp(f, argnum)(*args)`` → ``jvp(v)`` returning ``(f(*args), ∂f/∂x · v)``.

    Forward mode by differentiating the reverse pass (autograd's ``make_jvp_reversemode``):
    the vjp u ↦ vjp(u) is linear in u, so the gradient of u ↦ Re⟨vjp(u), v⟩ is J v. The
    real part is what makes complex values right: under autograd's convention vjp(u) is
    conj(J_Rᵀ conj(u)) (J_R the Jacobian of the real and imaginary parts), and the
    gradient of Re Σ vjp(u) v in that convention is J_R v, autograd's forward mode —
    for a holomorphic f simply f'(z) v, for conj(z) it is conj(v).
    """

    def maker(*args, **kwargs):
        def jvp(v):
            vjp, ans = make_vjp(fun, argnum)(*args, **kwargs)
            u0 = _map(_zeros_like, ans)

            def pairing(u):
                return _real_vdot_tree(vjp(u), v)

            return ans, grad(pairing)(u0)

        return jvp

    return maker


def _zeros_like(a):
    """Zeros in ``a``'s vector space: a scalar for a scalar, an array for an array."""
    a = value_of(a)
    zeros = np.zeros(np.shape(a), np.result_type(a))
    return zeros if isinstance(a, np.ndarray) else zeros[()]


def _real_vdot_tree(a, b):
    """Re Σ a b over the leaves of two structures of the same shape (no conjugation)."""
    total = 0.0
    for x, y in zip(_leaves(a), _leaves(b)):
        term = _vdot(x, y)
        if np.iscomplexobj(value_of(term)):
            from .numpy import real  # (fastgrad.numpy imports this module's layer)

            term = real(term)
        total = total + term
    return total


def _vspace_ones(x):
    """autograd's ``vspace(x).ones()``: 1 in every real coordinate (1 + 1j for complex)."""

    def one(v):
        v = value_of(v)
        dtype = np.result_type(v)
        ones = np.ones(np.shape(v), dtype=dtype)
        return ones + 1j * ones if dtype.kind == "c" else ones

    return _map(one, x)


def deriv(fun, argnum=0):
    """The jvp with a vector of ones (forward-mode derivative of an elementwise function)."""

    @functools.wraps(fun)
    def derivfun(*args, **kwargs):
        x = _select(args, argnum)
        return make_jvp(fun, argnum)(*args, **kwargs)(_vspace_ones(x))[1]

    return derivfun


def make_hvp(fun, argnum=0):
    """``make_hvp(f)(x)`` → ``(hvp, grad f(x))`` with ``hvp(v)`` = ∇²f(x) v."""

    def maker(*args, **kwargs):
        return make_vjp(grad(fun, argnum), argnum)(*args, **kwargs)

    return maker


def hessian_tensor_product(fun, argnum=0):
    """``f(*args, v)`` ↦ ∇²f · v (contracting all of v's axes)."""
    fun_grad = grad(fun, argnum)

    def vector_dot_grad(*args, **kwargs):
        args, vector = args[:-1], args[-1]
        return _vdot(fun_grad(*args, **kwargs), vector)

    return grad(vector_dot_grad, argnum)


hessian_vector_product = hessian_tensor_product


def tensor_jacobian_product(fun, argnum=0):
    """``f(*args, v)`` ↦ vᵀ ∂f/∂x."""

    def vector_dot_fun(*args, **kwargs):
        from .numpy import tensordot  # (fastgrad.numpy imports this module's layer)

        args, vector = args[:-1], args[-1]
        return tensordot(vector, fun(*args, **kwargs), np.ndim(value_of(vector)))

    return jacobian(vector_dot_fun, argnum)


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f, g=lambda x: 1.0 / 2 * _vdot(x, x), f_argnum=0):
    """Generalized Gauss-Newton vector products, as autograd's ``make_ggnvp``."""

    def maker(*args, **kwargs):
        f_vjp, f_x = make_vjp(f, f_argnum)(*args, **kwargs)
        f_jvp = make_jvp(f, f_argnum)(*args, **kwargs)
        g_hvp, _ = make_hvp(g)(f_x)

        def ggnvp(v):
            return f_vjp(g_hvp(f_jvp(v)[1]))

        return ggnvp

    return maker


def checkpoint(fun):
    """Save memory: keep only ``fun``'s inputs and recompute its inside during the backward."""

    def forward(*args, **kwargs):
        return value_of(fun(*args, **kwargs))

    prim = Primitive(forward, getattr(fun, "__name__", "checkpoint"))

    class _AnyArg(dict):
        def __contains__(self, i):
            return True

        def __missing__(self, i):
            def rule(g, ans, *args, **kwargs):
                return make_vjp(fun, i)(*args, **kwargs)[0](g)

            self[i] = rule
            return rule

    prim.vjps = _AnyArg()
    prim.lowering = TraceBody(fun)  # fastgrad.compile records the body instead
    return prim
