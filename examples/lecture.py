"""The lecture's worked examples, written with fastgrad, each beside its closed form.

Run:  python examples/lecture.py
The lecture writes column vectors (z = W x + b); fastgrad's rows-are-examples kernels
compute the same thing as z = x Wᵀ + b.
"""

import numpy as np

import fastgrad as fg
import fastgrad.nn.functional as F


def sigma(z):
    return 1.0 / (1.0 + np.exp(-z))


def logistic_least_squares(w=0.5, b=-0.2, x=1.3, t=1.0, lam=0.0):
    """z = wx + b, y = σ(z), L = ½(y − t)² (+ λ·½w² when lam > 0): returns (w̄, b̄)."""
    w = fg.tensor(w, requires_grad=True)
    b = fg.tensor(b, requires_grad=True)
    z = w * x + b
    y = F.sigmoid(z)
    L = 0.5 * (y - t) ** 2
    L_reg = L + lam * 0.5 * w**2  # R = ½w², L_reg = L + λR
    L_reg.backward()
    return w.grad, b.grad


def logistic_least_squares_closed_form(w=0.5, b=-0.2, x=1.3, t=1.0, lam=0.0):
    """ȳ = y − t, z̄ = ȳ σ'(z), w̄ = z̄ x + λ w, b̄ = z̄ (the lecture's backward pass)."""
    z = w * x + b
    y = sigma(z)
    y_bar = y - t
    z_bar = y_bar * y * (1 - y)
    return z_bar * x + lam * w, z_bar


def chain_rule(t=0.7):
    """f(x, y) = y + e^{xy}, x = cos t, y = t²: returns df/dt."""
    t = fg.tensor(t, requires_grad=True)
    x = fg.cos(t)
    y = t**2
    f = y + fg.exp(x * y)
    f.backward()
    return t.grad


def chain_rule_closed_form(t=0.7):
    """df/dt = (y e^{xy})(−sin t) + (1 + x e^{xy}) 2t."""
    x, y = np.cos(t), t**2
    return (y * np.exp(x * y)) * (-np.sin(t)) + (1 + x * np.exp(x * y)) * 2 * t


def mlp_scalar(x, W1, b1, W2, b2, t):
    """The multilayer perceptron written unit by unit, as the lecture's scalar form."""
    W1 = [[fg.tensor(v, requires_grad=True) for v in row] for row in W1]
    b1 = [fg.tensor(v, requires_grad=True) for v in b1]
    W2 = [[fg.tensor(v, requires_grad=True) for v in row] for row in W2]
    b2 = [fg.tensor(v, requires_grad=True) for v in b2]
    h = []
    for i in range(len(b1)):  # z_i = Σ_j w_ij x_j + b_i,  h_i = σ(z_i)
        z_i = b1[i]
        for j in range(len(x)):
            z_i = z_i + W1[i][j] * x[j]
        h.append(F.sigmoid(z_i))
    L = 0.0
    for k in range(len(b2)):  # y_k = Σ_i w_ki h_i + b_k,  L = ½ Σ_k (y_k − t_k)²
        y_k = b2[k]
        for i in range(len(h)):
            y_k = y_k + W2[k][i] * h[i]
        L = L + 0.5 * (y_k - t[k]) ** 2
    L.backward()
    grad = lambda rows: np.array([[v.grad for v in row] for row in rows])
    return grad(W1), np.array([v.grad for v in b1]), grad(W2), np.array([v.grad for v in b2])


def mlp_vectorized(x, W1, b1, W2, b2, t):
    """z = W⁽¹⁾x + b⁽¹⁾, h = σ(z), y = W⁽²⁾h + b⁽²⁾, L = ½‖t − y‖²."""
    W1, b1, W2, b2 = (fg.tensor(a, requires_grad=True) for a in (W1, b1, W2, b2))
    z = F.linear(fg.tensor(x), W1, b1)
    h = F.sigmoid(z)
    y = F.linear(h, W2, b2)
    L = 0.5 * ((t - y) ** 2).sum()
    L.backward()
    return W1.grad, b1.grad, W2.grad, b2.grad


def mlp_closed_form(x, W1, b1, W2, b2, t):
    """ȳ = y − t, W̄⁽²⁾ = ȳ hᵀ, b̄⁽²⁾ = ȳ, h̄ = W⁽²⁾ᵀ ȳ, z̄ = h̄ ∘ σ'(z), W̄⁽¹⁾ = z̄ xᵀ, b̄⁽¹⁾ = z̄."""
    z = W1 @ x + b1
    h = sigma(z)
    y = W2 @ h + b2
    y_bar = y - t
    h_bar = W2.T @ y_bar
    z_bar = h_bar * h * (1 - h)
    return np.outer(z_bar, x), z_bar, np.outer(y_bar, h), y_bar


def multiclass_logistic(x, W, b, label):
    """z = W x + b, y = softmax(z), L = −Σ_k t_k log y_k (t one-hot)."""
    W, b = fg.tensor(W, requires_grad=True), fg.tensor(b, requires_grad=True)
    z = F.linear(fg.tensor(x), W, b)
    t = np.eye(z.shape[-1])[label]
    L = -(t * F.log_softmax(z)).sum()
    L.backward()
    return W.grad, b.grad


def multiclass_logistic_closed_form(x, W, b, label):
    """z̄ = y − t, W̄ = z̄ xᵀ, b̄ = z̄."""
    z = W @ x + b
    y = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    z_bar = y - np.eye(len(z))[label]
    return np.outer(z_bar, x), z_bar


def _demo():
    rng = np.random.default_rng(0)
    print("logistic least squares  w̄, b̄:", logistic_least_squares())
    print("   closed form          w̄, b̄:", logistic_least_squares_closed_form())
    print("L2-regularised (λ=0.1)  w̄, b̄:", logistic_least_squares(lam=0.1))
    print("   closed form          w̄, b̄:", logistic_least_squares_closed_form(lam=0.1))
    print("chain rule df/dt:", chain_rule(), "closed form:", chain_rule_closed_form())
    x, t = rng.standard_normal(3), rng.standard_normal(2)
    params = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((2, 4)), rng.standard_normal(2)
    for name, fn in [("scalar", mlp_scalar), ("vectorized", mlp_vectorized), ("closed form", mlp_closed_form)]:
        print(f"MLP {name:12s} W̄⁽¹⁾[0] =", np.round(fn(x, *params, t)[0][0], 6))
    W, b = rng.standard_normal((3, 4)), rng.standard_normal(3)
    x = rng.standard_normal(4)
    print("softmax regression b̄:", multiclass_logistic(x, W, b, 1)[1])
    print("   closed form      b̄:", multiclass_logistic_closed_form(x, W, b, 1)[1])


if __name__ == "__main__":
    _demo()
