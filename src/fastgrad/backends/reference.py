"""The reference backend: the lecture's equations in plain NumPy.

This module is the specification the compiled backend is tested against. Rows are
examples: the lecture's z = W x + b for one column vector x is z = x Wᵀ + b here.
"""

import numpy as np

from . import KERNELS
from ._checks import (
    check_array,
    check_fits,
    check_labels,
    check_out,
    check_same_dtype,
    check_writeable,
)

NAME = "reference"

__all__ = list(KERNELS)


def affine_forward(x, W, b, out=None):
    """z = x Wᵀ + b.   x (N, D), W (M, D), b (M,) → z (N, M)."""
    check_array("x", x, 2, contiguous=False)
    check_array("W", W, 2, contiguous=False)
    check_array("b", b, 1, contiguous=False)
    check_same_dtype(x=x, W=W, b=b)
    if x.shape[1] != W.shape[1] or b.shape[0] != W.shape[0]:
        raise ValueError(
            f"affine_forward: x {x.shape}, W {W.shape}, b {b.shape} do not fit "
            "(need x (N, D), W (M, D), b (M,))"
        )
    out = check_out(out, (x.shape[0], W.shape[0]), x.dtype)
    np.matmul(x, W.T, out=out)
    out += b
    return out


def sigmoid_forward(z, out=None):
    """h = σ(z) = 1 / (1 + e^(−z)), computed without overflow for large |z|."""
    check_array("z", z, contiguous=False)
    out = check_out(out, z.shape, z.dtype)
    # σ(z) = e^(z) / (1 + e^(z)) for z < 0 keeps the exponent non-positive.
    negative = z < 0  # taken before out is written: out may be z itself
    e = np.exp(-np.abs(z))
    np.divide(1.0, 1.0 + e, out=out)
    np.copyto(out, e * out, where=negative)
    return out


def softplus_forward(z, out=None):
    """y = log(1 + e^z), computed as max(z, 0) + log1p(e^(−|z|)) (no overflow)."""
    check_array("z", z, contiguous=False)
    out = check_out(out, z.shape, z.dtype)
    np.logaddexp(z.dtype.type(0), z, out=out)
    return out


def sigmoid_backward(h, dh, out=None):
    """z̄ = h̄ ∘ h ∘ (1 − h): the error signal of z from that of h = σ(z)."""
    check_array("h", h, contiguous=False)
    check_array("dh", dh, contiguous=False)
    check_same_dtype(h=h, dh=dh)
    if h.shape != dh.shape:
        raise ValueError(f"sigmoid_backward: h {h.shape} and dh {dh.shape} must have one shape")
    out = check_out(out, h.shape, h.dtype)
    np.multiply(dh, h * (1.0 - h), out=out)
    return out


def outer_grad(dz, x, out=None):
    """W̄ = z̄ᵀ x: the sum over examples of outer products z̄ₙ xₙᵀ.  (N, M), (N, D) → (M, D)."""
    check_array("dz", dz, 2, contiguous=False)
    check_array("x", x, 2, contiguous=False)
    check_same_dtype(dz=dz, x=x)
    if dz.shape[0] != x.shape[0]:
        raise ValueError(f"outer_grad: dz {dz.shape} and x {x.shape} need the same number of rows")
    out = check_out(out, (dz.shape[1], x.shape[1]), dz.dtype)
    np.matmul(dz.T, x, out=out)
    return out


def transpose_matvec(W, dz, out=None):
    """x̄ = z̄ W: each row is Wᵀ z̄ₙ.   W (M, D), dz (N, M) → (N, D)."""
    check_array("W", W, 2, contiguous=False)
    check_array("dz", dz, 2, contiguous=False)
    check_same_dtype(W=W, dz=dz)
    if dz.shape[1] != W.shape[0]:
        raise ValueError(f"transpose_matvec: W {W.shape} and dz {dz.shape} do not fit (need dz (N, M))")
    out = check_out(out, (dz.shape[0], W.shape[1]), W.dtype)
    np.matmul(dz, W, out=out)
    return out


def bias_grad(dz, out=None):
    """b̄ = Σₙ z̄ₙ.   (N, M) → (M,)."""
    check_array("dz", dz, 2, contiguous=False)
    out = check_out(out, (dz.shape[1],), dz.dtype)
    np.sum(dz, axis=0, out=out)
    return out


def affine_sigmoid_forward(x, W, b, out=None):
    """h = σ(x Wᵀ + b).   x (N, D), W (M, D), b (M,) → h (N, M)."""
    z = affine_forward(x, W, b, out=out)
    return sigmoid_forward(z, out=z)


def softmax_cross_entropy_forward(z, labels):
    """(L, p): p = softmax(z) row-wise, L = −(1/N) Σₙ log pₙ,tₙ.   z (N, K), labels (N,) ints."""
    check_array("z", z, 2, contiguous=False)
    n, k = z.shape
    if n == 0 or k == 0:
        raise ValueError(
            f"softmax_cross_entropy_forward: z {z.shape} needs N ≥ 1 rows and K ≥ 1 classes"
        )
    labels = check_labels(labels, n, k, "z", z.shape)
    # Shift by the row maximum m: e^(z − m) ≤ 1 never overflows; log Σ e^(z − m) ≥ 0.
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    probs = e / s
    rows = np.arange(n)
    losses = np.log(s[:, 0]) - (z[rows, labels] - m[:, 0])
    return float(np.sum(losses, dtype=np.float64)) / n, probs


def softmax_cross_entropy_backward(probs, labels, out=None):
    """z̄ = (p − onehot(t)) / N: the error signal of the logits of the mean loss."""
    check_array("probs", probs, 2, contiguous=False)
    n, k = probs.shape
    if n == 0 or k == 0:
        raise ValueError(
            f"softmax_cross_entropy_backward: probs {probs.shape} needs N ≥ 1 rows and K ≥ 1 classes"
        )
    labels = check_labels(labels, n, k, "probs", probs.shape)
    out = check_out(out, probs.shape, probs.dtype)
    rows = np.arange(n)
    picked = probs[rows, labels] - 1  # a copy, taken before out (maybe probs itself) is written
    np.divide(probs, probs.dtype.type(n), out=out)
    out[rows, labels] = picked / probs.dtype.type(n)
    return out


def _squared_error_arguments(y, t, name):
    check_array("y", y, contiguous=False)
    check_array("t", t, contiguous=False)
    check_same_dtype(y=y, t=t)
    if y.shape != t.shape:
        raise ValueError(f"{name}: y {y.shape} and t {t.shape} must have one shape")


def squared_error_forward(y, t):
    """L = (1/N) Σₙ ½ ‖yₙ − tₙ‖², N the rows of y (1 for a 0-d y), as a Python float
    (summed in float64)."""
    _squared_error_arguments(y, t, "squared_error_forward")
    d = np.subtract(y, t, dtype=np.float64)
    n = y.shape[0] if y.ndim else 1
    return 0.5 * float(np.vdot(d, d)) / n if n else float("nan")  # (the mean over no rows)


def squared_error_backward(y, t, scale, out=None):
    """ȳ = scale · (y − t): the error signal of y (scale = L̄ / N for the mean loss above)."""
    _squared_error_arguments(y, t, "squared_error_backward")
    out = check_out(out, y.shape, y.dtype)
    np.subtract(y, t, out=out)
    out *= y.dtype.type(scale)
    return out


def _sgd_arguments(W, dW, momentum, velocity, name):
    """sgd_update's checks; dW, copied if it shares memory with what the update writes."""
    check_array("W", W, contiguous=False)
    check_array("dW", dW, contiguous=False)
    check_same_dtype(W=W, dW=dW)
    check_fits("dW", dW, "W", W)
    _sgd_target(W, momentum, velocity, name)
    if np.may_share_memory(dW, W) or (velocity is not None and np.may_share_memory(dW, velocity)):
        dW = dW.copy()  # read it whole before velocity and W are written
    return dW


def _sgd_target(W, momentum, velocity, name):
    """The checks of what an SGD update writes: W, and the velocity momentum needs."""
    check_writeable("W", W)
    if velocity is None:
        if momentum != 0:
            raise ValueError(
                f"{name}: momentum={momentum!r} needs a velocity array of W's shape {W.shape}"
            )
        return
    check_array("velocity", velocity, contiguous=False)
    check_same_dtype(W=W, velocity=velocity)
    check_fits("velocity", velocity, "W", W)
    check_writeable("velocity", velocity)
    if np.may_share_memory(velocity, W):
        raise ValueError(f"velocity {velocity.shape} and W {W.shape} must not share memory "
                         "(both are updated in place)")


def _sgd_step(W, dW, lr, momentum, velocity, weight_decay):
    if velocity is None:
        W -= lr * (dW + weight_decay * W)
        return
    velocity *= momentum
    velocity += dW
    velocity += weight_decay * W
    W -= lr * velocity


def sgd_update(W, dW, lr, momentum=0.0, velocity=None, weight_decay=0.0):
    """In place: v = μ v + W̄ + λ W, W −= η v; without ``velocity``: W −= η (W̄ + λ W)."""
    dW = _sgd_arguments(W, dW, momentum, velocity, "sgd_update")
    _sgd_step(W, dW, lr, momentum, velocity, weight_decay)


def sgd_update_many(params, grads, lr, momentum=0.0, velocities=None, weight_decay=0.0):
    """``sgd_update(params[i], grads[i], lr, momentum, velocities[i], weight_decay)`` for
    every i, in one call. Every argument is checked before anything is written."""
    n = len(params)
    if len(grads) != n or (velocities is not None and len(velocities) != n):
        counts = f"{n} params, {len(grads)} grads"
        if velocities is not None:
            counts += f", {len(velocities)} velocities"
        raise ValueError(f"sgd_update_many: {counts}: the lists must have one length")
    velocities = [None] * n if velocities is None else list(velocities)
    checked = []
    for i, (W, dW, v) in enumerate(zip(params, grads, velocities, strict=True)):
        try:
            if type(dW) is tuple and len(dW) == 2:  # (dz, x): W̄ = dzᵀ x, formed when applied
                _check_outer(W, dW[0], dW[1], "sgd_update_many")
                _sgd_target(W, momentum, v, "sgd_update_many")
            else:
                dW = _sgd_arguments(W, dW, momentum, v, "sgd_update_many")
            checked.append((W, dW, v))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"sgd_update_many: parameter {i}: {exc}") from None
    # In order, each gradient read when its parameter is updated (as the compiled loop does:
    # a gradient that is an earlier parameter's array sees that parameter's update).
    for W, dW, v in checked:
        if type(dW) is tuple:
            dW = dW[0].T @ dW[1]
        _sgd_step(W, dW, lr, momentum, v, weight_decay)


def _check_outer(W, dz, x, name):
    """W (M, D), dz (N, M) and x (N, D) of one dtype, so that dzᵀ x is W's gradient."""
    check_array("W", W, ndim=2, contiguous=False)
    check_array("dz", dz, ndim=2, contiguous=False)
    check_array("x", x, ndim=2, contiguous=False)
    check_same_dtype(W=W, dz=dz, x=x)
    (M, D), N = W.shape, dz.shape[0]
    if dz.shape[1] != M or x.shape != (N, D):
        raise ValueError(
            f"{name}: W {W.shape}, dz {dz.shape}, x {x.shape} do not fit "
            "(need W (M, D), dz (N, M), x (N, D))"
        )


def sgd_outer_update(W, dz, x, lr, momentum=0.0, velocity=None, weight_decay=0.0):
    """``sgd_update(W, dz.T @ x, ...)``: the weight gradient of a linear layer, W̄ = z̄ᵀ x,
    applied without being kept. W (M, D), dz (N, M), x (N, D)."""
    _check_outer(W, dz, x, "sgd_outer_update")
    sgd_update(W, dz.T @ x, lr, momentum, velocity, weight_decay)


def adam_update(W, dW, m, v, lr, beta1, beta2, eps, step):
    """In place, bias-corrected Adam: m = β₁m + (1−β₁)W̄, v = β₂v + (1−β₂)W̄²,
    W −= η m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), t = ``step`` ≥ 1."""
    for name, a in (("W", W), ("dW", dW), ("m", m), ("v", v)):
        check_array(name, a, contiguous=False)
    check_same_dtype(W=W, dW=dW, m=m)
    check_same_dtype(W=W, v=v)
    for name, a in (("dW", dW), ("m", m), ("v", v)):
        check_fits(name, a, "W", W)
    for name, a in (("W", W), ("m", m), ("v", v)):
        check_writeable(name, a)
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise ValueError(f"adam_update: step must be an integer ≥ 1, got {step!r}")
    if not (0 <= beta1 < 1) or not (0 <= beta2 < 1):
        raise ValueError(f"adam_update: beta1 and beta2 must be in [0, 1), got {beta1!r}, {beta2!r}")
    for (na, a), (nb, b) in (((("m", m), ("W", W))), (("v", v), ("W", W)), (("m", m), ("v", v))):
        if np.may_share_memory(a, b):
            raise ValueError(f"{na} {a.shape} and {nb} {b.shape} must not share memory "
                             "(both are updated in place)")
    if any(np.may_share_memory(dW, a) for a in (W, m, v)):
        dW = dW.copy()  # read it whole before m, v and W are written
    m *= beta1
    m += (1 - beta1) * dW
    v *= beta2
    v += (1 - beta2) * (dW * dW)
    c1 = 1.0 / (1.0 - beta1**step)
    c2 = 1.0 / (1.0 - beta2**step)
    W -= lr * (m * c1) / (np.sqrt(v * c2) + eps)
