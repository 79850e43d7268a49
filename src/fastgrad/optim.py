"""Optimizers: gradient descent moves each weight opposite its error signal, in place.

``step()`` reads each parameter's ``.grad`` (w̄ = ∂E/∂w from a backward pass) and
overwrites ``.data`` in place with the backend's update kernels
(``sgd_update``/``adam_update``), falling back to NumPy in-place arithmetic when the
backend lacks them or an array is not contiguous. The formulas are PyTorch's
(``torch.optim.SGD`` with dampening 0 and ``torch.optim.Adam``), so results match it.

As in PyTorch, a step may run while a recorded graph still holds a parameter (a kept
validation loss, ``retain_graph=True``): the write goes through the tape's
``inplace_update``, and that older graph then refuses to run ``backward()`` rather than
differentiate with the new weights.

>>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> for xb, yb in batches:
...     opt.zero_grad()
...     loss = cross_entropy(model(xb), yb)
...     loss.backward()
...     opt.step()
"""

from __future__ import annotations

import abc
import math
import sys
from collections.abc import Iterable

import numpy as np

from . import _saved, _tape
from ._backend import kernels
from ._factored import OuterGrad, leaf_grad
from ._saved import frozen_by_graph, inplace_update
from ._tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _check_number(owner, name, value, low=0.0, high=None, high_open=False):
    """A finite real in [low, high] (or [low, high)), else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{owner}: {name} must be a finite number >= {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value}")
    return value


class Optimizer(abc.ABC):
    """Holds the parameters and per-parameter state; subclasses define ``_hyper`` and
    ``_update``."""

    def __init__(self, params: Iterable, **hyper):
        if hasattr(params, "data") and hasattr(params, "grad"):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of tensors "
                "(e.g. model.parameters()), got a single tensor; wrap it in a list"
            )
        try:
            params = list(params)
        except TypeError:
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of tensors, "
                f"got {type(params).__name__}"
            ) from None
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        seen = set()
        for i, p in enumerate(params):
            data = getattr(p, "data", None)
            if not isinstance(data, np.ndarray) or not hasattr(p, "grad"):
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} must be a tensor with .data and "
                    f".grad, got {type(p).__name__}"
                )
            if data.dtype not in _FLOATS:
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} (shape {data.shape}) must be float32 "
                    f"or float64, got {data.dtype}"
                )
            if getattr(p, "is_leaf", True) is False:
                raise ValueError(
                    f"{type(self).__name__}: parameter {i} (shape {data.shape}) is not a leaf "
                    "tensor: optimize the tensors you created, not results computed from them"
                )
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} appears more than once")
            seen.add(id(p))
        self.params = params
        self.state: list[dict] = [{} for _ in params]
        for name, value in hyper.items():
            setattr(self, name, value)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient (to None, or to zeros in place)."""
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        todo = []
        frozen = bool(_saved.frozen)  # some plain array is frozen by a live graph
        for i, p in enumerate(self.params):
            if type(p) is Tensor:  # the tensor's own fields: no property calls on the hot path
                dW = _tape.stored_grad(p)
                if dW is None:
                    continue
                W = p._data
                guarded = p._saves or frozen
            else:
                dW = p.grad
                if dW is None:
                    continue
                W = p.data
                guarded = True
            if type(dW) is OuterGrad and (not self._applies_outer(W, dW) or _tape._tracer is not None):
                dW = leaf_grad(p._node)  # the factored gradient as an array, computed once
            if type(dW) is OuterGrad:
                pass  # applied in one pass by _update
            elif type(dW) is not np.ndarray or dW.dtype != W.dtype or dW.shape != W.shape:
                dW = self._as_gradient(i, W, dW)
            if guarded and not W.flags.writeable and not frozen_by_graph(_owner(p)):
                raise RuntimeError(
                    f"{type(self).__name__}.step(): parameter {i} (shape {W.shape}) is a "
                    "read-only array and cannot be updated in place"
                )
            todo.append((i, p, W, dW, guarded))
        # Every parameter was checked first, so a bad one does not leave a half-taken step.
        self._apply_updates(kernels(), todo, self._hyper())

    def _apply_updates(self, backend, todo, hyper):
        """Update each (index, parameter, array, gradient, guarded) of ``todo``."""
        state = self.state
        tracer = _tape._tracer  # fastgrad.compile records each update (None: not tracing)
        for i, p, W, dW, guarded in todo:
            if not guarded:
                # No live graph saved p (the usual case right after backward): write directly.
                self._update(backend, state[i], W, dW, hyper)
            else:
                # A graph recorded before this step may hold p; inplace_update lets the step
                # write and marks that graph stale, so its backward() refuses to run.
                with inplace_update(_owner(p)):
                    W = p.data
                    self._update(backend, state[i], W, dW, hyper)
            if tracer is not None:
                tracer.optimizer_step(self, state[i], W, dW)

    def _as_gradient(self, i, W, dW):
        """``dW`` as an array of W's shape and dtype, or an error naming the parameter."""
        dW = np.asarray(dW)
        if dW.shape != W.shape:
            raise ValueError(
                f"{type(self).__name__}: parameter {i} has shape {W.shape} but its "
                f"gradient has shape {dW.shape}"
            )
        return dW.astype(W.dtype) if dW.dtype != W.dtype else dW

    def _applies_outer(self, W, dW):
        """Can _update apply this factored gradient (an OuterGrad) without its array?"""
        return False

    @abc.abstractmethod
    def _hyper(self):
        """The hyper-parameters of this step, checked once (they may have been reassigned)."""

    @abc.abstractmethod
    def _update(self, backend, state, W, dW, hyper):
        """Update W in place from its gradient dW (an array, or an OuterGrad where
        ``_applies_outer`` says so) and its ``state`` dict."""

    def state_dict(self) -> dict:
        """Hyper-parameters and per-parameter buffers (copies), for checkpoints."""
        hyper = {k: v for k, v in vars(self).items() if k not in ("params", "state") and k[0] != "_"}
        state = [
            {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for s in self.state
        ]
        return {"hyper": hyper, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        state = state_dict["state"]
        if len(state) != len(self.params):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state for {len(state)} parameters, "
                f"this optimizer has {len(self.params)}"
            )
        for i, (s, p) in enumerate(zip(state, self.params, strict=True)):
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.data.shape:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: buffer {k!r} of parameter {i} "
                        f"has shape {v.shape}, the parameter {p.data.shape}"
                    )
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.state = [
            {
                k: (np.array(v, dtype=p.data.dtype) if isinstance(v, np.ndarray) else v)
                for k, v in s.items()
            }
            for s, p in zip(state, self.params, strict=True)
        ]

    def __repr__(self):
        hyper = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if k not in ("params", "state")
        )
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


def _owner(p):
    """What the tape's write guard takes: the tensor itself, or a stand-in's array."""
    return p if isinstance(p, Tensor) else p.data


def _contiguous(*arrays):
    return all(a.flags.c_contiguous for a in arrays if a is not None)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum and L2 weight decay.

    g = w̄ + λ w;   with momentum μ:  v ← μ v + g,  w ← w − η v;   else  w ← w − η g.
    (PyTorch's SGD with dampening 0; v starts at zero, so the first step is w − η g.)
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        lr = _check_number("SGD", "lr", lr)
        momentum = _check_number("SGD", "momentum", momentum)
        weight_decay = _check_number("SGD", "weight_decay", weight_decay)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    _checked_lr = None  # the last lr value _hyper checked

    def _applies_outer(self, W, dW):
        return W.ndim == 2 and dW.dtype == W.dtype and dW.shape == W.shape

    def _hyper(self):
        lr = self.lr
        if lr is not self._checked_lr:  # checked once per value (a scheduler sets a new one)
            _check_number("SGD", "lr", lr)
            self._checked_lr = lr
        return (float(lr), self.momentum, self.weight_decay)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        # The usual case: every parameter a tensor that no live graph holds, its gradient
        # from a backward pass. Then the whole step is one kernel call (sgd_update_many
        # checks every parameter before writing; a factored W̄ goes in as its (z̄, x)
        # pair). Anything else — and fastgrad.compile's tracer, which records each
        # parameter's _update — takes Optimizer.step's general path.
        if _tape._tracer is None and not _saved.frozen:
            many = getattr(kernels(), "sgd_update_many", None)
            if many is not None and self._step_all(many, self._hyper()):
                return
        super().step()

    def _step_all(self, many, hyper):
        """The step as one sgd_update_many call; False (nothing written) if it does not apply."""
        prepared = _tape.update_arguments(self.params)
        if prepared is None:
            return False
        index, params, grads = prepared
        lr, momentum, weight_decay = hyper
        velocities = None
        if momentum:
            state = self.state
            velocities = [self._velocity(state[i], W) for i, W in zip(index, params, strict=True)]
        try:
            many(params, grads, lr, momentum, velocities, weight_decay)
        except (TypeError, ValueError):
            return False  # the general path converts the gradient or names the bad parameter
        return True

    @staticmethod
    def _velocity(state, W):
        velocity = state.get("velocity")
        if velocity is None:
            velocity = state["velocity"] = np.zeros_like(W)
        return velocity

    def _update(self, backend, state, W, dW, hyper):
        lr, momentum, weight_decay = hyper
        velocity = self._velocity(state, W) if momentum else None
        if type(dW) is OuterGrad:  # W̄ = z̄ᵀ x never stored: one pass over W
            try:
                backend.sgd_outer_update(W, dW.dz, dW.x, lr, momentum, velocity, weight_decay)
                return
            except (TypeError, ValueError, AttributeError):
                dW = dW.array()
        try:  # the kernel checks its arguments before it writes anything
            backend.sgd_update(W, dW, lr, momentum, velocity, weight_decay)
            return
        except (TypeError, ValueError, AttributeError):
            pass  # a layout the kernel cannot loop over (or a backend without it): NumPy
        g = dW + weight_decay * W if weight_decay else dW
        if velocity is not None:
            velocity *= momentum
            velocity += g
            g = velocity
        W -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), bias-corrected, with optional L2 weight decay.

    g = w̄ + λ w;  m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;
    w ← w − η m̂ / (√v̂ + ε)  with  m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        name = type(self).__name__  # AdamW too
        lr = _check_number(name, "lr", lr)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}") from None
        beta1 = _check_number(name, "betas[0]", beta1, 0.0, 1.0, high_open=True)
        beta2 = _check_number(name, "betas[1]", beta2, 0.0, 1.0, high_open=True)
        eps = _check_number(name, "eps", eps)
        weight_decay = _check_number(name, "weight_decay", weight_decay)
        super().__init__(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    def _hyper(self):
        beta1, beta2 = self.betas
        return (
            _check_number(type(self).__name__, "lr", self.lr),
            beta1,
            beta2,
            self.eps,
            self.weight_decay,
        )

    def _update(self, backend, state, W, dW, hyper):
        lr, beta1, beta2, eps, weight_decay = hyper
        if not state:
            state["step"] = 0
            state["m"] = np.zeros_like(W)
            state["v"] = np.zeros_like(W)
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        g = dW + weight_decay * W if weight_decay else dW
        kernel = getattr(backend, "adam_update", None)
        if kernel is not None and _contiguous(W, g, m, v):
            kernel(W, np.ascontiguousarray(g), m, v, lr, beta1, beta2, eps, t)
            return
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        m_hat = m / (1.0 - beta1**t)
        v_hat = v / (1.0 - beta2**t)
        W -= lr * m_hat / (np.sqrt(v_hat) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    w ← w − η λ w  first, then Adam's update on w̄ alone (no λ w in g), so the decay is
    not rescaled by √v̂. Note the default λ = 0.01, PyTorch's.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, backend, state, W, dW, hyper):
        lr, beta1, beta2, eps, weight_decay = hyper
        if weight_decay:
            if _tape._tracer is not None:
                # The compiled plan's Adam instruction knows only the L2 (coupled) form.
                from ._compiler.ir import TracingError

                raise TracingError(
                    "fastgrad.compile: AdamW's decoupled weight decay cannot be recorded; "
                    "compile with AdamW(weight_decay=0) or Adam(weight_decay=...), or run eagerly"
                )
            W *= 1.0 - lr * weight_decay
        super()._update(backend, state, W, dW, (lr, beta1, beta2, eps, 0.0))


# torch.optim.lr_scheduler's place: ``from fastgrad.optim.lr_scheduler import StepLR``
# works as it does for os.path (a module registered under this module's name).
from . import _lr_scheduler as lr_scheduler  # noqa: E402

sys.modules[__name__ + ".lr_scheduler"] = lr_scheduler
