"""The losses of the lecture's "design choices" slide, plus the L2 penalty R.

Every loss averages over the batch (the first axis) and sums over the rest: one example
contributes ℒ(y, t), the batch contributes (1/N) Σₙ ℒ(yₙ, tₙ). They are written in
Tensor operations, so they differentiate (to any order) like the rest of the graph, and
they take tensors or plain arrays. Re-exported by ``fastgrad.nn.functional``.

==========================  ==========================================  ===============
loss                        one example                                 error signal ȳ
==========================  ==========================================  ===============
``squared_error(y, t)``     ½ Σₖ (yₖ − tₖ)²                             y − t
``cross_entropy(z, t)``     −Σₖ tₖ log softmax(z)ₖ                      softmax(z) − t
``binary_cross_entropy``    −Σ [t log p + (1 − t) log(1 − p)]           (p − t)/(p(1−p))
``hinge(y, t)``             Σ max(0, 1 − t y),  t = ±1                  −t [t y < 1]
``l2_penalty(w)``           R = ½ Σ w²                                  w
==========================  ==========================================  ===============
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["squared_error", "cross_entropy", "binary_cross_entropy", "hinge", "l2_penalty"]


def _array(x):
    """The values of ``x`` (a Tensor, array or number) as an ndarray, for checks only."""
    data = getattr(x, "data", x)
    return data if isinstance(data, np.ndarray) else np.asarray(data)


def _batch_size(y) -> int:
    shape = np.shape(_array(y))
    return shape[0] if shape else 1


def _is_integer(t) -> bool:
    a = _array(t)
    return a.dtype.kind in "iu"


def _one_hot(labels: np.ndarray, num_classes: int, dtype, where: str) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{where}: label {bad} is out of range for {num_classes} classes")
    onehot = np.zeros((labels.shape[0], num_classes), dtype=dtype)
    onehot[np.arange(labels.shape[0]), labels] = 1
    return onehot


def _refuse_traced_labels(t, call):
    """Integer labels made one-hot while fastgrad.compile traces: refused, naming the call
    (the one-hot rows would be frozen at trace time)."""
    from .. import _tape

    if _tape._tracer is not None and isinstance(t, Tensor) and _tape._tracer.traced(t):
        from .._compiler.ir import TracingError

        raise TracingError(
            f"fastgrad.compile: {call} with integer labels is not compiled (their one-hot rows "
            "would be frozen at trace time); pass one-hot float targets, or use "
            "nn.cross_entropy(logits, labels), which compiles with integer labels"
        )


def _same_shape(where, y_name, y, t_name, t):
    ys, ts = np.shape(_array(y)), np.shape(_array(t))
    if ys != ts:
        raise ValueError(f"{where}: {y_name} {ys} and {t_name} {ts} must have the same shape")


def _total_over_batch(per_element, y):
    """(1/N) Σ over every element: the sum over each example, averaged over the batch."""
    return per_element.sum() / _batch_size(y)


def squared_error(y, t):
    """½ Σ (y − t)² per example, averaged over the batch:  ℒ = (1/N) Σₙ ½ ‖yₙ − tₙ‖².

    ``t`` has the shape of ``y``; or, for outputs y (N, K), integer class labels t (N,),
    which stand for their one-hot rows (the lecture's squared error on classes).
    """
    if type(y) is Tensor and type(t) is Tensor and y._data.shape == t._data.shape:
        return _squared_error(y, t)  # the common case: nothing to check or convert
    ys = np.shape(_array(y))
    if len(ys) == 2 and np.ndim(_array(t)) == 1 and _is_integer(t):
        _refuse_traced_labels(t, "squared_error(y, labels)")
        labels = _array(t)
        if labels.shape[0] != ys[0]:
            raise ValueError(
                f"squared_error: y {ys} and labels {labels.shape} need the same number of rows"
            )
        t = _one_hot(labels, ys[1], _array(y).dtype, "squared_error")
    _same_shape("squared_error", "y", y, "t", t)
    if not isinstance(t, Tensor):  # plain targets take the outputs' dtype (float32 stays)
        t = np.asarray(t, dtype=_array(y).dtype)
    return _squared_error(y, t)


def cross_entropy(logits, labels):
    """Softmax cross-entropy, averaged over the batch:  ℒ = −(1/N) Σₙ Σₖ tₙₖ log softmax(zₙ)ₖ.

    ``logits`` z are (N, K) scores (not probabilities). ``labels`` are integer classes
    (N,) in 0..K−1, or one-hot / probability rows (N, K). Computed through
    ``log_softmax`` (log-sum-exp with the max subtracted), so large logits do not
    overflow. A single example may be given as z (K,) with an integer label.
    """
    zs = np.shape(_array(logits))
    t = _array(labels)
    if len(zs) == 1:  # one example
        if t.ndim == 0 and _is_integer(labels):
            return cross_entropy(logits.reshape(1, zs[0]), t.reshape(1))
        if t.shape == zs:
            rows = labels if hasattr(labels, "reshape") else t
            return cross_entropy(logits.reshape(1, zs[0]), rows.reshape(1, zs[0]))
    if len(zs) != 2:
        raise ValueError(f"cross_entropy: logits must be (N, K) (or (K,)), got shape {zs}")
    n, k = zs
    if _is_integer(labels):
        if t.shape != (n,):
            raise ValueError(
                f"cross_entropy: logits {zs} and integer labels {t.shape} do not fit "
                f"(need labels of shape ({n},))"
            )
        if n == 0:
            raise ValueError(f"cross_entropy: logits {zs} is an empty batch")
        # One recorded op on the fused softmax–cross-entropy kernels.
        return softmax_cross_entropy(logits, t)
    if t.dtype.kind == "b":
        raise TypeError("cross_entropy: labels must be integers or float rows, got bool")
    if t.shape != zs:
        raise ValueError(
            f"cross_entropy: logits {zs} and labels {t.shape} do not fit (integer labels "
            f"need shape ({n},), one-hot or probability rows shape {zs})"
        )
    return -(F.log_softmax(logits, axis=-1) * labels).sum() / n


def _log_floor(dtype) -> float:
    # log is floored at −100 (as PyTorch's BCELoss) so p = 0 or 1 gives a finite loss.
    return max(math.exp(-100.0), float(np.finfo(dtype).tiny))


def binary_cross_entropy(p, t):
    """−Σ [t log p + (1 − t) log(1 − p)] per example, averaged over the batch.

    ``p`` are probabilities in [0, 1] (e.g. a sigmoid's output), ``t`` targets in [0, 1]
    of the same shape. Each log is floored near −100, so p = 0 or 1 stays finite.
    """
    _same_shape("binary_cross_entropy", "p", p, "t", t)
    pa = _array(p)
    if pa.size and (np.nanmin(pa) < 0 or np.nanmax(pa) > 1):
        raise ValueError(
            "binary_cross_entropy: p must be probabilities in [0, 1] (got values in "
            f"[{np.nanmin(pa):g}, {np.nanmax(pa):g}]); apply sigmoid to scores first"
        )
    floor = _log_floor(pa.dtype if pa.dtype.kind == "f" else np.float64)
    log_p = fg.log(fg.maximum(p, floor))
    log_1mp = fg.log(fg.maximum(1.0 - p, floor))
    return _total_over_batch(-(t * log_p + (1.0 - t) * log_1mp), p)


def hinge(y, t):
    """Σ max(0, 1 − t·y) per example, averaged over the batch; targets t are ±1."""
    _same_shape("hinge", "y", y, "t", t)
    ta = _array(t)
    if ta.size and not np.all((ta == 1) | (ta == -1)):
        raise ValueError("hinge: targets t must be -1 or +1")
    return _total_over_batch(F.relu(1.0 - t * y), y)


def l2_penalty(w):
    """R = ½ Σ w² over one tensor, or summed over an iterable of them (``model.parameters()``)."""
    if hasattr(w, "shape"):  # one tensor or array (not an iterable of its rows)
        return 0.5 * (w * w).sum()
    total = None
    for i, wi in enumerate(w):
        if not hasattr(wi, "shape"):
            raise TypeError(f"l2_penalty: item {i} is a {type(wi).__name__}, not a tensor")
        term = 0.5 * (wi * wi).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("l2_penalty: got an empty iterable of tensors")
    return total


# At the bottom: nn.functional re-exports this module, and it is complete by now.
import fastgrad as fg  # noqa: E402

from .._ops import softmax_cross_entropy  # noqa: E402
from .._ops import squared_error as _squared_error  # noqa: E402
from .._tensor import Tensor  # noqa: E402
from . import functional as F  # noqa: E402
