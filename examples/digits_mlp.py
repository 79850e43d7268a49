"""The lecture's multilayer perceptron on the bundled 8×8 digits, with fastgrad.nn.

    python examples/digits_mlp.py                       # cross-entropy, SGD with momentum
    python examples/digits_mlp.py --loss squared        # the lecture's squared error
    python examples/digits_mlp.py --backend reference   # the pure-NumPy kernels

Forward:  z = x W⁽¹⁾ᵀ + b⁽¹⁾,  h = σ(z),  y = h W⁽²⁾ᵀ + b⁽²⁾,  ℒ = loss(y, t)
Backward: loss.backward() fills every W̄ and b̄; the optimizer steps w ← w − η w̄.
This is what ``fastgrad train`` runs, written out.
"""

import argparse
import time

import numpy as np

import fastgrad as fg
from fastgrad import nn, optim
from fastgrad.datasets import DataLoader, load_digits


def accuracy(model, X, y):
    with fg.no_grad():  # evaluation records nothing
        return float(np.mean(np.argmax(model(X).data, axis=1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--loss", choices=("cross-entropy", "squared"), default="cross-entropy")
    parser.add_argument("--backend", default=fg.get_backend())
    parser.add_argument("--save", default=None, help="write the parameters to this .npz")
    args = parser.parse_args()
    fg.set_backend(args.backend)

    X_train, y_train, X_test, y_test = load_digits(dtype=np.float32)
    model = nn.MLP([64, args.hidden, 10], activation="sigmoid", dtype=np.float32, rng=0)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    one_hot = np.eye(10, dtype=np.float32)
    loader = DataLoader(X_train, y_train, batch_size=32, seed=0)
    print(model)

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for xb, yb in loader:
            y = model(xb)
            if args.loss == "squared":
                loss = nn.squared_error(y, one_hot[yb])  # ℒ = ½‖y − t‖²
            else:
                loss = nn.cross_entropy(y, yb)  # ℒ = −Σ t log softmax(y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
        if epoch % 5 == 0 or epoch == 1:
            print(
                f"epoch {epoch:3d}  loss {total / len(y_train):.4f}  "
                f"test accuracy {accuracy(model, X_test, y_test):.3f}"
            )
    print(f"{time.perf_counter() - start:.2f} s on the {fg.get_backend()} backend")
    print(f"test accuracy: {accuracy(model, X_test, y_test):.3f}")
    if args.save:
        model.save(args.save)


if __name__ == "__main__":
    main()
