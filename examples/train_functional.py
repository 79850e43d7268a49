"""The same digits MLP through the functional face: plain functions of arrays, and ``grad``.

Written as HIPS autograd code; only the imports say fastgrad. Run it on either:

    python examples/train_functional.py              # fastgrad
    python examples/train_functional.py --autograd   # HIPS autograd, same code (if installed)

Parameters are a list of (W, b) pairs; ``grad(loss)`` returns the same nested structure of
error signals (W̄, b̄), and plain gradient descent updates it: w ← w − η w̄.
"""

import sys
import time

import numpy as onp

from fastgrad.datasets import iterate_minibatches, load_digits

if "--autograd" in sys.argv:
    import autograd.numpy as np
    from autograd import grad

    FACE = "HIPS autograd"
else:
    import fastgrad.numpy as np
    from fastgrad import grad

    FACE = "fastgrad"


def init_params(sizes, rng):
    """Uniform in ±1/√fan_in, as fastgrad.nn.Linear."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = 1.0 / onp.sqrt(n_in)
        params.append(
            (rng.uniform(-bound, bound, (n_out, n_in)), rng.uniform(-bound, bound, n_out))
        )
    return params


def predict(params, x):
    """h = σ(x Wᵀ + b) for each hidden layer; the output layer is linear."""
    h = x
    for W, b in params[:-1]:
        h = 1.0 / (1.0 + np.exp(-(np.dot(h, W.T) + b)))
    W, b = params[-1]
    return np.dot(h, W.T) + b


def log_softmax(z):
    z = z - np.max(z, axis=1, keepdims=True)  # the shift cancels in the gradient; no overflow
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def loss(params, x, t):
    """Cross-entropy, averaged over the batch: −(1/N) Σₙ Σₖ tₙₖ log softmax(yₙ)ₖ."""
    return -np.sum(t * log_softmax(predict(params, x))) / x.shape[0]


def main(epochs=20, lr=0.5, batch_size=32):
    X_train, y_train, X_test, y_test = load_digits()
    one_hot = onp.eye(10)
    rng = onp.random.default_rng(0)
    params = init_params([64, 100, 10], rng)
    loss_grad = grad(loss)  # ∂ℒ/∂params, same structure as params
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for xb, yb in iterate_minibatches(X_train, y_train, batch_size, seed=rng):
            grads = loss_grad(params, xb, one_hot[yb])
            params = [
                (W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads, strict=True)
            ]
        if epoch % 5 == 0:
            print(f"epoch {epoch:3d}  train loss {loss(params, X_train, one_hot[y_train]):.4f}")
    seconds = time.perf_counter() - start
    scores = predict(params, X_test)
    print(f"{FACE}: {seconds:.2f} s for {epochs} epochs")
    print(f"test accuracy: {onp.mean(onp.argmax(scores, axis=1) == y_test):.3f}")


if __name__ == "__main__":
    main()
