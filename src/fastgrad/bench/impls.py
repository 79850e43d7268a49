"""Implementations of the standard workloads, one class per library.

Every implementation offers the same three callables, timed separately:

- ``forward()``: the loss (recording the graph where the library records one);
- ``forward_backward()``: the loss and the gradient of every parameter;
- ``step()``: forward + backward + the SGD update W ← W − lr·W̄ (gradients reset first,
  as ``zero_grad()`` before ``backward()`` in a training loop).

``gradients()`` returns the gradients (as NumPy arrays, in the order W₁, b₁, W₂, b₂, …,
or [t̄] for a scalar workload) without changing the parameters, so that they can be
checked against NumPy by hand before anything is timed (:func:`check_gradients`).

The baseline, ``numpy``, is the lecture's vectorized backward pass written as well as
NumPy allows: every buffer preallocated, every ufunc and matmul writing in place. The
peers (PyTorch, HIPS autograd, JAX) are optional: :func:`available` says why one is
missing instead of failing.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import math
import time

import numpy as np

from .workloads import MLPData, ScalarData, Workload

__all__ = ["IMPLS", "BASELINE", "available", "create", "check_gradients", "GradientMismatch"]

BASELINE = "numpy"


class Impl(abc.ABC):
    """One library's version of one workload. Subclasses fill in the three callables."""

    name = ""
    label = ""  # a longer description for tables and docs

    def __init__(self, workload: Workload, data):
        self.workload = workload
        self.data = data
        self.compile_seconds = 0.0  # time spent tracing/compiling before the first call

    def context(self):
        """Entered around every batch of calls (e.g. selects fastgrad's backend)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def forward(self):
        """One forward pass (the loss)."""

    @abc.abstractmethod
    def forward_backward(self):
        """One forward and backward pass (gradients computed, parameters unchanged)."""

    @abc.abstractmethod
    def step(self):
        """One training step: forward, backward, SGD update."""

    @abc.abstractmethod
    def gradients(self) -> list:
        """The gradients of one forward+backward, as NumPy arrays in parameter order."""

    @abc.abstractmethod
    def parameters(self) -> list:
        """Current parameter values as NumPy arrays (W₁, b₁, …, or [t]), for tests."""

    def phases(self) -> dict:
        return {"forward": self.forward, "fwd+bwd": self.forward_backward, "step": self.step}


# ---------------------------------------------------------------------------------------
# NumPy by hand: the baseline


def _sigmoid_into(z, h):
    """h = σ(z) = 1 / (1 + e^(−z)) in four in-place ufunc calls; e^(−z) = inf gives 0."""
    np.negative(z, out=h)
    np.exp(h, out=h)
    h += 1.0
    np.reciprocal(h, out=h)


class NumpyMLP(Impl):
    name = "numpy"
    label = "NumPy by hand (preallocated, in place)"

    def __init__(self, workload, data: MLPData):
        super().__init__(workload, data)
        dtype = data.x.dtype
        B = data.x.shape[0]
        self.params = [(W, b) for W, b in data.params]
        self.grads = [(np.empty_like(W), np.empty_like(b)) for W, b in self.params]
        # Activations: h[0] = x, h[l] = σ(z[l]) for hidden layers, h[L] = y.
        self.h = [data.x] + [np.empty((B, W.shape[0]), dtype) for W, _ in self.params]
        self.dz = [np.empty((B, W.shape[0]), dtype) for W, _ in self.params]
        self.dh = [np.empty((B, W.shape[1]), dtype) for W, _ in self.params]
        self.tmp = [np.empty((B, W.shape[1]), dtype) for W, _ in self.params]
        self.diff = np.empty_like(data.t)
        self.scale = dtype.type(1.0 / B)
        self.lr = dtype.type(workload.lr)
        self.per_example = B == 1

    def forward(self):
        h, last = self.h, len(self.params) - 1
        for l, (W, b) in enumerate(self.params):
            z = h[l + 1]
            np.matmul(h[l], W.T, out=z)  # z = h Wᵀ + b
            z += b
            if l < last:
                _sigmoid_into(z, z)  # h = σ(z), in the same buffer
        np.subtract(h[-1], self.data.t, out=self.diff)
        return 0.5 * self.scale * float(np.vdot(self.diff, self.diff))

    def _backward(self):
        h, dz = self.h, self.dz
        L = len(self.params)
        np.multiply(self.diff, self.scale, out=dz[L - 1])  # ȳ = (y − t) / B
        for l in range(L - 1, -1, -1):
            W, _ = self.params[l]
            dW, db = self.grads[l]
            if self.per_example:
                # (M,1)·(1,D): einsum beats a K=1 matmul by 4–5× here.
                np.einsum("ni,nj->ij", dz[l], h[l], out=dW)  # W̄ = z̄ᵀ h
            else:
                np.matmul(dz[l].T, h[l], out=dW)
            np.sum(dz[l], axis=0, out=db)  # b̄ = Σₙ z̄ₙ
            if l > 0:
                np.matmul(dz[l], W, out=self.dh[l])  # h̄ = z̄ W
                tmp = self.tmp[l]
                np.subtract(1.0, h[l], out=tmp)  # σ'(z) = h (1 − h)
                tmp *= h[l]
                np.multiply(self.dh[l], tmp, out=dz[l - 1])  # z̄ = h̄ ∘ σ'(z)

    def forward_backward(self):
        loss = self.forward()
        self._backward()
        return loss

    def step(self):
        loss = self.forward()
        self._backward()
        lr = self.lr
        for (W, b), (dW, db) in zip(self.params, self.grads, strict=False):
            dW *= lr
            W -= dW
            db *= lr
            b -= db
        return loss

    def gradients(self):
        self.forward_backward()
        return [g.copy() for pair in self.grads for g in pair]

    def parameters(self):
        return [p.copy() for pair in self.params for p in pair]


class NumpyPlainMLP(Impl):
    """The lecture's equations written literally: `@`, temporaries, no buffers."""

    name = "numpy-plain"
    label = "NumPy by hand, written plainly (allocating)"

    def __init__(self, workload, data: MLPData):
        super().__init__(workload, data)
        self.params = [(W, b) for W, b in data.params]
        self.B = data.x.shape[0]

    def forward(self):
        hs = [self.data.x]
        for W, b in self.params[:-1]:
            hs.append(1.0 / (1.0 + np.exp(-(hs[-1] @ W.T + b))))
        W, b = self.params[-1]
        y = hs[-1] @ W.T + b
        return hs, y

    def forward_backward(self):
        hs, y = self.forward()
        dz = (y - self.data.t) / self.B
        grads = []
        for l in range(len(self.params) - 1, -1, -1):
            W, _ = self.params[l]
            grads.append((dz.T @ hs[l], dz.sum(axis=0)))
            if l > 0:
                dz = (dz @ W) * hs[l] * (1.0 - hs[l])
        return grads[::-1]

    def step(self):
        lr = self.workload.lr
        for (W, b), (dW, db) in zip(self.params, self.forward_backward(), strict=False):
            W -= lr * dW
            b -= lr * db

    def gradients(self):
        return [g for pair in self.forward_backward() for g in pair]

    def parameters(self):
        return [p.copy() for pair in self.params for p in pair]


class NumpyScalar(Impl):
    """Hand-derived backward in Python floats (the `math` module: NumPy scalars are slower)."""

    name = "numpy"
    label = "by hand, Python floats"

    def __init__(self, workload, data: ScalarData):
        super().__init__(workload, data)
        self.t = data.t
        self.consts = data.consts
        self.s1 = workload.family == "S1"

    def forward(self):
        t = self.t
        if self.s1:
            x, y = math.cos(t), t * t
            return y + math.exp(x * y)
        v = t
        for a in self.consts:
            v = v + math.exp(math.sin(v * a))
        return v

    def forward_backward(self):
        t = self.t
        if self.s1:
            # f̄ = 1; x̄ = y e^{xy}; ȳ = 1 + x e^{xy}; t̄ = x̄ (−sin t) + ȳ (2t)
            x, y = math.cos(t), t * t
            e = math.exp(x * y)
            return y + e, y * e * -math.sin(t) + (1.0 + x * e) * 2.0 * t
        # v_{k+1} = v_k + exp(sin(a v_k)): dv_{k+1}/dv_k = 1 + e·cos(a v_k)·a
        v = t
        factors = []
        for a in self.consts:
            m = v * a
            e = math.exp(math.sin(m))
            factors.append(1.0 + e * math.cos(m) * a)
            v = v + e
        vbar = 1.0
        for f in reversed(factors):
            vbar *= f
        return v, vbar

    def step(self):
        _, dt = self.forward_backward()
        self.t -= self.workload.lr * dt

    def gradients(self):
        return [np.asarray(self.forward_backward()[1])]

    def parameters(self):
        return [np.asarray(self.t)]


# ---------------------------------------------------------------------------------------
# fastgrad: the Tensor face on a chosen backend


def _fastgrad_sgd(fg, params, lr):
    """fastgrad.optim.SGD if it exists, else the update written out (same arithmetic)."""
    try:
        optim = importlib.import_module("fastgrad.optim")
    except Exception:  # not written yet, or broken: fall back
        optim = None
    SGD = getattr(optim, "SGD", None)
    if SGD is not None:
        try:
            opt = SGD(params, lr=lr)
        except Exception:  # an optimizer still being written: fall back
            opt = None
        if opt is not None:
            return opt.step

    def update():
        for p in params:
            p.data -= lr * p.grad

    return update


class FastgradBase(Impl):
    backend = "cython"

    def __init__(self, workload, data):
        super().__init__(workload, data)
        import fastgrad as fg

        self.fg = fg

    def context(self):
        return self.fg.use_backend(self.backend)


class FastgradMLP(FastgradBase):
    def __init__(self, workload, data: MLPData):
        super().__init__(workload, data)
        fg = self.fg
        F = fg.nn.functional
        self.linear, self.sigmoid, self.squared_error = F.linear, F.sigmoid, F.squared_error
        self.params = [
            (fg.tensor(W, requires_grad=True), fg.tensor(b, requires_grad=True))
            for W, b in data.params
        ]
        self.flat = [p for pair in self.params for p in pair]
        self.x = fg.tensor(data.x)
        self.t = fg.tensor(data.t)
        self.scale = 0.5 / data.x.shape[0]
        self.update = _fastgrad_sgd(fg, self.flat, workload.lr)

    def _loss(self):
        h = self.x
        linear, sigmoid = self.linear, self.sigmoid
        for W, b in self.params[:-1]:
            h = sigmoid(linear(h, W, b))
        W, b = self.params[-1]
        y = linear(h, W, b)
        return self.squared_error(y, self.t)  # (1/N) Σ ½ (y − t)², as a user writes it

    def forward(self):
        return self._loss()

    def forward_backward(self):
        for p in self.flat:
            p.grad = None
        loss = self._loss()
        loss.backward()
        return loss

    def step(self):
        for p in self.flat:
            p.grad = None
        self._loss().backward()
        self.update()

    def gradients(self):
        with self.context():
            self.forward_backward()
            return [np.array(p.grad, copy=True) for p in self.flat]

    def parameters(self):
        return [np.array(p.data, copy=True) for p in self.flat]


def fastgrad_scalar_function(fg, family, consts):
    """S1 or S2 written with fastgrad's functions, shared by every fastgrad implementation."""
    if family == "S1":

        def f(t):  # f(x, y) = y + e^{xy}, x = cos t, y = t²
            x = fg.cos(t)
            y = t * t
            return y + fg.exp(x * y)

        return f

    def f(t):  # the 1,000-op chain: v ← v + exp(sin(aₖ v))
        exp, sin = fg.exp, fg.sin
        v = t
        for a in consts:
            v = v + exp(sin(v * a))
        return v

    return f


class FastgradScalar(FastgradBase):
    def __init__(self, workload, data: ScalarData):
        super().__init__(workload, data)
        fg = self.fg
        self.t = fg.tensor(np.float64(data.t), requires_grad=True)
        self.f = fastgrad_scalar_function(fg, workload.family, data.consts)
        self.update = _fastgrad_sgd(fg, [self.t], workload.lr)

    def _f(self):
        return self.f(self.t)

    def forward(self):
        return self._f()

    def forward_backward(self):
        self.t.grad = None
        f = self._f()
        f.backward()
        return f

    def step(self):
        self.t.grad = None
        self._f().backward()
        self.update()

    def gradients(self):
        with self.context():
            self.forward_backward()
            return [np.array(self.t.grad, dtype=np.float64, copy=True).reshape(())]

    def parameters(self):
        return [np.array(self.t.data, dtype=np.float64).reshape(())]


def _fastgrad_impl(kind, backend):
    base = FastgradMLP if kind == "mlp" else FastgradScalar
    return type(
        f"{base.__name__}_{backend}",
        (base,),
        {
            "name": f"fastgrad-{backend}",
            "backend": backend,
            "label": f"fastgrad, {backend} backend",
        },
    )


# ---------------------------------------------------------------------------------------
# fastgrad.compile: the same Tensor-face code, traced once and replayed compiled


class FastgradCompiledBase(FastgradBase):
    """``fastgrad.compile`` on the cython backend (as ``fastgrad train --compile``).

    Each phase is its own compiled function, traced on the first call (that call runs
    eagerly; its time is ``compile_seconds``, reported apart from the timings). The
    parameters are put back after tracing, so gradients are checked at the workload's
    data like every other implementation's.
    """

    backend = "cython"

    def _trace(self, fns, args, state):
        saved = [np.array(p.data, copy=True) for p in state]
        start = time.perf_counter()
        with self.context():
            for fn in fns:
                fn(*args)
                fn(*args)  # the first call traces; the second replays the plan once
        self.compile_seconds = time.perf_counter() - start
        for p, v in zip(state, saved, strict=True):
            # p.data is a read-only view while the trace's eager graph is alive.
            np.copyto(p._data, v)
        for p in state:
            p.grad = None


class FastgradCompiledMLP(FastgradCompiledBase):
    def __init__(self, workload, data: MLPData):
        super().__init__(workload, data)
        fg = self.fg
        F = fg.nn.functional
        params = [
            (fg.tensor(W, requires_grad=True), fg.tensor(b, requires_grad=True))
            for W, b in data.params
        ]
        self.flat = flat = [p for pair in params for p in pair]
        opt = fg.optim.SGD(flat, lr=workload.lr)
        self.x, self.t = data.x, data.t

        def loss(x, t):
            h = x
            for W, b in params[:-1]:
                h = F.sigmoid(F.linear(h, W, b))
            W, b = params[-1]
            return F.squared_error(F.linear(h, W, b), t)

        def fwd_bwd(x, t):
            opt.zero_grad()
            L = loss(x, t)
            L.backward()
            return L

        def step(x, t):
            opt.zero_grad()
            L = loss(x, t)
            L.backward()
            opt.step()
            return L

        self._forward = fg.compile(loss)
        self._fwd_bwd = fg.compile(fwd_bwd)  # keeps .grad: the gradients are the output
        self._step = fg.compile(step, keep_grads=False)  # SGD fused into W̄
        self._trace([self._forward, self._fwd_bwd, self._step], (self.x, self.t), flat)

    def forward(self):
        return self._forward(self.x, self.t)

    def forward_backward(self):
        return self._fwd_bwd(self.x, self.t)

    def step(self):
        return self._step(self.x, self.t)

    def gradients(self):
        with self.context():
            self._fwd_bwd(self.x, self.t)  # the replayed plan, not the trace
            return [np.array(p.grad, copy=True) for p in self.flat]

    def parameters(self):
        return [np.array(p.data, copy=True) for p in self.flat]


class FastgradCompiledScalar(FastgradCompiledBase):
    """S1/S2: ``compile(grad(f))`` for the gradient, a compiled backward + SGD for the step."""

    def __init__(self, workload, data: ScalarData):
        super().__init__(workload, data)
        fg = self.fg
        f = fastgrad_scalar_function(fg, workload.family, data.consts)

        self.tt = tt = fg.tensor(np.float64(data.t), requires_grad=True)
        opt = fg.optim.SGD([tt], lr=workload.lr)

        def step():
            opt.zero_grad()
            f(tt).backward()
            opt.step()

        self.t = np.float64(data.t)
        self._forward = fg.compile(f)
        self._grad = fg.compile(fg.grad(f))
        self._step = fg.compile(step, keep_grads=False)
        self._trace([self._forward, self._grad], (self.t,), [tt])
        compile_seconds = self.compile_seconds
        self._trace([self._step], (), [tt])
        self.compile_seconds += compile_seconds

    def forward(self):
        return self._forward(self.t)

    def forward_backward(self):
        return self._grad(self.t)

    def step(self):
        return self._step()

    def gradients(self):
        with self.context():
            return [np.array(self._grad(self.t), dtype=np.float64, copy=True).reshape(())]

    def parameters(self):
        return [np.array(self.tt.data, dtype=np.float64).reshape(())]


# ---------------------------------------------------------------------------------------
# PyTorch (eager)


class TorchBase(Impl):
    name = "torch"
    label = "PyTorch eager"

    def __init__(self, workload, data):
        super().__init__(workload, data)
        import torch

        self.torch = torch


class TorchMLP(TorchBase):
    def __init__(self, workload, data: MLPData):
        super().__init__(workload, data)
        torch = self.torch
        self.params = [
            (
                torch.tensor(W, requires_grad=True),
                torch.tensor(b, requires_grad=True),
            )
            for W, b in data.params
        ]
        self.flat = [p for pair in self.params for p in pair]
        self.x = torch.from_numpy(data.x)
        self.t = torch.from_numpy(data.t)
        self.scale = 0.5 / data.x.shape[0]
        self.lr = workload.lr
        self.linear = torch.nn.functional.linear

    def forward(self):
        h = self.x
        linear, sigmoid = self.linear, self.torch.sigmoid
        for W, b in self.params[:-1]:
            h = sigmoid(linear(h, W, b))
        W, b = self.params[-1]
        return ((linear(h, W, b) - self.t) ** 2).sum() * self.scale

    def forward_backward(self):
        for p in self.flat:
            p.grad = None
        loss = self.forward()
        loss.backward()
        return loss

    def step(self):
        for p in self.flat:
            p.grad = None
        self.forward().backward()
        with self.torch.no_grad():
            for p in self.flat:
                p.sub_(p.grad, alpha=self.lr)

    def gradients(self):
        self.forward_backward()
        return [p.grad.numpy().copy() for p in self.flat]

    def parameters(self):
        return [p.detach().numpy().copy() for p in self.flat]


class TorchScalar(TorchBase):
    def __init__(self, workload, data: ScalarData):
        super().__init__(workload, data)
        torch = self.torch
        self.t = torch.tensor(data.t, dtype=torch.float64, requires_grad=True)
        self.consts = data.consts
        self.s1 = workload.family == "S1"
        self.lr = workload.lr

    def forward(self):
        torch, t = self.torch, self.t
        if self.s1:
            x = torch.cos(t)
            y = t * t
            return y + torch.exp(x * y)
        exp, sin = torch.exp, torch.sin
        v = t
        for a in self.consts:
            v = v + exp(sin(v * a))
        return v

    def forward_backward(self):
        self.t.grad = None
        f = self.forward()
        f.backward()
        return f

    def step(self):
        self.t.grad = None
        self.forward().backward()
        with self.torch.no_grad():
            self.t.sub_(self.t.grad, alpha=self.lr)

    def gradients(self):
        self.forward_backward()
        return [self.t.grad.numpy().copy()]

    def parameters(self):
        return [self.t.detach().numpy().copy()]


# ---------------------------------------------------------------------------------------
# Functional peers: HIPS autograd and JAX share the loss functions, written once per
# NumPy-like namespace.


def _mlp_loss(xnp, scale):
    def loss(params, x, t):
        h = x
        for W, b in params[:-1]:
            h = 1.0 / (1.0 + xnp.exp(-(xnp.dot(h, W.T) + b)))
        W, b = params[-1]
        d = xnp.dot(h, W.T) + b - t
        return xnp.sum(d * d) * scale

    return loss


def _scalar_fn(xnp, workload, consts):
    if workload.family == "S1":

        def f(t):
            x = xnp.cos(t)
            y = t * t
            return y + xnp.exp(x * y)

        return f

    def f(t):
        v = t
        for a in consts:
            v = v + xnp.exp(xnp.sin(v * a))
        return v

    return f


class FunctionalImpl(Impl):
    """A functional peer: parameters are (W, b) pairs (or the scalar t), forward_backward
    returns (loss, gradients of the same structure)."""

    def gradients(self):
        _, g = self.forward_backward()
        if self.workload.kind == "mlp":
            return [np.asarray(a) for pair in g for a in pair]
        return [np.asarray(g, dtype=np.float64)]

    def parameters(self):
        if self.workload.kind == "mlp":
            return [np.array(a) for pair in self.params for a in pair]
        return [np.array(self.params, dtype=np.float64)]


class AutogradImpl(FunctionalImpl):
    name = "autograd"
    label = "HIPS autograd"

    def __init__(self, workload, data):
        super().__init__(workload, data)
        import autograd
        import autograd.numpy as anp

        self.lr = workload.lr
        if workload.kind == "mlp":
            self.params = [(W, b) for W, b in data.params]
            self.args = (data.x, data.t)
            self.fun = _mlp_loss(anp, 0.5 / data.x.shape[0])
        else:
            self.params = np.float64(data.t)
            self.args = ()
            self.fun = _scalar_fn(anp, workload, data.consts)
        self.vg = autograd.value_and_grad(self.fun)

    def forward(self):
        return self.fun(self.params, *self.args)

    def forward_backward(self):
        return self.vg(self.params, *self.args)

    def step(self):
        _, g = self.vg(self.params, *self.args)
        lr = self.lr
        if self.workload.kind == "mlp":
            for (W, b), (dW, db) in zip(self.params, g, strict=False):
                W -= lr * dW
                b -= lr * db
        else:
            self.params = self.params - lr * g



class JaxImpl(FunctionalImpl):
    name = "jax"
    label = "JAX, op by op (no jit)"
    jit = False

    def __init__(self, workload, data):
        super().__init__(workload, data)
        import jax

        jax.config.update("jax_enable_x64", True)  # W1-f64 and the scalars are float64
        import jax.numpy as jnp

        self.jax = jax
        lr = workload.lr
        if workload.kind == "mlp":
            self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in data.params]
            self.args = (jnp.asarray(data.x), jnp.asarray(data.t))
            fun = _mlp_loss(jnp, 0.5 / data.x.shape[0])
        elif self.jit and workload.family == "S2":
            # Unrolled, XLA compiles the 1000-op chain in ~10 s; a JAX user writes a scan.
            self.params = jnp.asarray(np.float64(data.t))
            self.args = (jnp.asarray(np.array(data.consts, dtype=np.float64)),)

            def fun(t, consts):
                def block(v, a):
                    return v + jnp.exp(jnp.sin(v * a)), None

                return jax.lax.scan(block, t, consts)[0]

        else:
            self.params = jnp.asarray(np.float64(data.t))
            self.args = ()
            fun = _scalar_fn(jnp, workload, data.consts)
        vg = jax.value_and_grad(fun)

        def step(params, *args):
            loss, g = vg(params, *args)
            return loss, jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g)

        if self.jit:
            fun, vg, step = jax.jit(fun), jax.jit(vg), jax.jit(step)
        self.fun, self.vg, self.step_fn = fun, vg, step
        if self.jit:  # compile now, and say how long it took
            start = time.perf_counter()
            jax.block_until_ready(self.fun(self.params, *self.args))
            jax.block_until_ready(self.vg(self.params, *self.args))
            jax.block_until_ready(self.step_fn(self.params, *self.args))
            self.compile_seconds = time.perf_counter() - start

    def forward(self):
        return self.fun(self.params, *self.args).block_until_ready()

    def forward_backward(self):
        return self.jax.block_until_ready(self.vg(self.params, *self.args))

    def step(self):
        loss, self.params = self.jax.block_until_ready(self.step_fn(self.params, *self.args))



class JaxJitImpl(JaxImpl):
    name = "jax-jit"
    label = "JAX, jit-compiled (S2 as a lax.scan)"
    jit = True


# ---------------------------------------------------------------------------------------
# Registry


def _module_reason(module, extra=""):
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install
        return f"{module} not importable ({type(exc).__name__}: {exc}){extra}"
    return None


def _torch_reason():
    reason = _module_reason("torch", "; install with: pip install torch==2.13.0")
    if reason:
        return reason
    import torch

    if not torch.__version__.startswith("2.13.0"):
        return f"torch {torch.__version__} is installed; the benchmarks pin torch==2.13.0"
    return None


def _fastgrad_reason(backend):
    def reason():
        try:
            import fastgrad as fg

            fg.tensor(1.0, requires_grad=True)
            names = fg._backend.available_backends() if hasattr(fg, "_backend") else None
        except Exception as exc:
            return f"fastgrad's core is not importable ({type(exc).__name__}: {exc})"
        if names is not None and backend not in names:
            return f"fastgrad backend {backend!r} is not available (have: {', '.join(names)})"
        return None

    return reason


def _compiled_reason():
    reason = _fastgrad_reason("cython")()
    if reason:
        return reason
    import fastgrad as fg

    if not hasattr(fg, "compile"):
        return "this fastgrad has no fastgrad.compile"
    return None


class _Entry:
    def __init__(self, name, mlp, scalar, reason, label):
        self.name, self.mlp, self.scalar, self.reason, self.label = (
            name,
            mlp,
            scalar,
            reason,
            label,
        )


IMPLS = {
    e.name: e
    for e in (
        _Entry("numpy", NumpyMLP, NumpyScalar, lambda: None, NumpyMLP.label),
        _Entry("numpy-plain", NumpyPlainMLP, None, lambda: None, NumpyPlainMLP.label),
        _Entry(
            "fastgrad-cython",
            _fastgrad_impl("mlp", "cython"),
            _fastgrad_impl("scalar", "cython"),
            _fastgrad_reason("cython"),
            "fastgrad, cython backend",
        ),
        _Entry(
            "fastgrad-reference",
            _fastgrad_impl("mlp", "reference"),
            _fastgrad_impl("scalar", "reference"),
            _fastgrad_reason("reference"),
            "fastgrad, reference backend",
        ),
        _Entry(
            "fastgrad-compiled",
            FastgradCompiledMLP,
            FastgradCompiledScalar,
            _compiled_reason,
            "fastgrad.compile, cython backend",
        ),
        _Entry("torch", TorchMLP, TorchScalar, _torch_reason, TorchBase.label),
        _Entry(
            "autograd",
            AutogradImpl,
            AutogradImpl,
            lambda: _module_reason("autograd", "; install with: pip install autograd"),
            AutogradImpl.label,
        ),
        _Entry(
            "jax",
            JaxImpl,
            JaxImpl,
            lambda: _module_reason("jax", "; install with: pip install jax jaxlib"),
            JaxImpl.label,
        ),
        _Entry(
            "jax-jit",
            JaxJitImpl,
            JaxJitImpl,
            lambda: _module_reason("jax", "; install with: pip install jax jaxlib"),
            JaxJitImpl.label,
        ),
    )
}

_reasons: dict = {}


def available(name: str, workload: Workload | None = None):
    """None if implementation `name` can run (on `workload`), else the reason it cannot."""
    entry = IMPLS.get(name)
    if entry is None:
        return f"unknown implementation {name!r}; known: {', '.join(IMPLS)}"
    if name not in _reasons:
        _reasons[name] = entry.reason()
    if _reasons[name]:
        return _reasons[name]
    if workload is not None:
        cls = entry.mlp if workload.kind == "mlp" else entry.scalar
        if cls is None:
            return f"{name} has no {workload.kind} version"
    return None


def create(name: str, workload: Workload, data=None) -> Impl:
    """Implementation `name` of `workload` on a private copy of its data."""
    reason = available(name, workload)
    if reason:
        raise RuntimeError(reason)
    entry = IMPLS[name]
    cls = entry.mlp if workload.kind == "mlp" else entry.scalar
    data = (data if data is not None else workload.make_data()).copy()
    return cls(workload, data)


class GradientMismatch(AssertionError):
    pass


def tolerance(workload: Workload) -> float:
    """float64 ≤ 1e-9 relative, float32 ≤ 2e-4 (MEASURING.md)."""
    return 1e-9 if workload.dtype == "float64" else 2e-4


def relative_error(got, want) -> float:
    """max |got − want| / max |want|, over one array."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return math.inf
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    return err / scale if scale > 0 else err


def check_gradients(impl: Impl, reference: list | None = None) -> float:
    """Compare impl's gradients with NumPy by hand; return the worst relative error.

    Raises GradientMismatch naming the array if the error exceeds the tolerance.
    """
    w = impl.workload
    if reference is None:
        reference = create(BASELINE, w, impl.data).gradients()
    with impl.context():
        got = impl.gradients()
    if len(got) != len(reference):
        raise GradientMismatch(
            f"{impl.name} on {w.name}: {len(got)} gradients, want {len(reference)}"
        )
    worst = 0.0
    names = _grad_names(w, len(reference))
    for name, g, r in zip(names, got, reference, strict=False):
        err = relative_error(g, r)
        if not err <= tolerance(w):
            raise GradientMismatch(
                f"{impl.name} on {w.name}: gradient of {name} differs from NumPy by hand "
                f"(relative error {err:.3g} > {tolerance(w):g})"
            )
        worst = max(worst, err)
    return worst


def _grad_names(w, n):
    if w.kind != "mlp":
        return ["t"]
    return [f"{p}{i // 2 + 1}" for i, p in zip(range(n), ["W", "b"] * n, strict=False)]
