"""The functional peers, HIPS autograd and JAX: the loss written once per NumPy-like namespace."""

from __future__ import annotations

import time

import numpy as np

from fastgrad.bench.impls import Impl


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
