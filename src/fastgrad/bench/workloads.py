"""The standard workloads of SPEC §7, defined once for ``benchmarks/`` and ``fastgrad bench``.

The lecture's network: sigmoid hidden layers, a linear output layer, squared error,
plain SGD. Rows are examples (z = x Wᵀ + b), and the loss averages the lecture's
per-example L = ½‖y − t‖² over the batch:

    L = 1/(2B) Σₙ ‖yₙ − tₙ‖²

One "step" is forward + backward + SGD update. The scalar workloads differentiate a
function of one scalar t:

- S1: the lecture's multivariate chain rule example, f = y + exp(x y), x = cos t, y = t².
- S2: a chain of 250 blocks v ← v + exp(sin(aₖ v)) (mul, sin, exp, add: 1000 scalar ops).

Data are generated from a seed, so every implementation sees the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "Workload",
    "MLPData",
    "ScalarData",
    "WORKLOADS",
    "STANDARD",
    "get",
    "select",
    "mlp",
    "depth_sweep",
    "width_sweep",
]


@dataclass
class MLPData:
    """Parameters [(W, b), ...] (W is (out, in)), inputs x (B, D) and targets t (B, K)."""

    params: list
    x: np.ndarray
    t: np.ndarray

    def copy(self) -> MLPData:
        return MLPData([(W.copy(), b.copy()) for W, b in self.params], self.x.copy(), self.t.copy())


@dataclass
class ScalarData:
    """The input t and, for S2, the chain's constants aₖ (Python floats)."""

    t: float
    consts: tuple = ()

    def copy(self) -> ScalarData:
        return ScalarData(self.t, self.consts)


@dataclass(frozen=True)
class Workload:
    """One standard workload: its shape, dtype, learning rate and seed."""

    name: str  # unique key, e.g. "W1-f64"
    family: str  # SPEC §7 name, e.g. "W1"
    title: str
    kind: str  # "mlp" or "scalar"
    sizes: tuple = ()  # mlp: layer widths, input first
    batch: int = 1
    dtype: str = "float64"
    blocks: int = 0  # scalar: S2's number of 4-op blocks
    lr: float = 0.01
    seed: int = 0

    # -- data -----------------------------------------------------------------------

    def make_data(self):
        """Fresh, seeded data: the same arrays on every call."""
        rng = np.random.default_rng(self.seed)
        if self.kind == "scalar":
            if self.family == "S1":
                return ScalarData(t=0.7)
            consts = tuple(float(a) for a in rng.uniform(-0.05, 0.05, size=self.blocks))
            return ScalarData(t=0.3, consts=consts)
        dtype = np.dtype(self.dtype)
        params = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=False):
            W = (rng.standard_normal((fan_out, fan_in)) / math.sqrt(fan_in)).astype(dtype)
            b = (0.1 * rng.standard_normal(fan_out)).astype(dtype)
            params.append((W, b))
        x = rng.standard_normal((self.batch, self.sizes[0])).astype(dtype)
        t = rng.standard_normal((self.batch, self.sizes[-1])).astype(dtype)
        return MLPData(params, x, t)

    # -- what the lecture counts ----------------------------------------------------

    @property
    def n_params(self) -> int:
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=False))

    @property
    def n_ops(self) -> int:
        """Scalar workloads: recorded primitives (S1: cos, mul, mul, exp, add)."""
        if self.family == "S1":
            return 5
        return 4 * self.blocks

    def flops(self) -> dict:
        """Matmul FLOPs per call: forward 2·B·Σ aᵢaᵢ₊₁; backward the weight gradient of
        every layer plus the input gradient of every layer but the first."""
        if self.kind != "mlp":
            return {"forward": 0, "backward": 0, "step": 0}
        layers = [a * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=False)]
        forward = 2 * self.batch * sum(layers)
        backward = 2 * self.batch * (sum(layers) + sum(layers[1:]))
        return {"forward": forward, "backward": backward, "step": forward + backward}

    def tiny(self) -> Workload:
        """The same structure at toy size, for fast correctness tests."""
        if self.kind == "scalar":
            return replace(self, name=self.name + "-tiny", blocks=min(self.blocks, 20))
        sizes = tuple(min(s, 5 + i % 3) for i, s in enumerate(self.sizes))
        return replace(self, name=self.name + "-tiny", sizes=sizes, batch=min(self.batch, 3))

    def describe(self) -> str:
        if self.kind == "scalar":
            return f"{self.title}: {self.n_ops} scalar ops, float64"
        return f"{self.title}: {'-'.join(map(str, self.sizes))}, batch {self.batch}, {self.dtype}"


def mlp(name, sizes, batch, dtype="float32", family=None, title=None, lr=0.01, seed=0):
    return Workload(
        name=name,
        family=family or name,
        title=title or name,
        kind="mlp",
        sizes=tuple(sizes),
        batch=batch,
        dtype=dtype,
        lr=lr,
        seed=seed,
    )


STANDARD = (
    mlp("W1-f64", (784, 100, 10), 1, "float64", family="W1", title="W1 per-example"),
    mlp("W1-f32", (784, 100, 10), 1, "float32", family="W1", title="W1 per-example"),
    mlp("W2", (784, 256, 10), 64, "float32", title="W2 minibatch"),
    mlp("W3", (784, 1024, 1024, 10), 256, "float32", title="W3 wide"),
    mlp("W4", (64,) + (64,) * 10 + (10,), 32, "float32", title="W4 deep-narrow"),
    Workload("S1", "S1", "S1 scalar", "scalar", lr=0.001),
    Workload("S2", "S2", "S2 scalar chain", "scalar", blocks=250, lr=0.001),
)
WORKLOADS = {w.name: w for w in STANDARD}


def get(name: str) -> Workload:
    return WORKLOADS[name]


def select(names=None) -> list:
    """Workloads by name or family ("W1" is both dtypes); comma lists allowed."""
    if not names:
        return list(STANDARD)
    if isinstance(names, str):
        names = [names]
    wanted = [n.strip() for item in names for n in item.split(",") if n.strip()]
    chosen = []
    for n in wanted:
        matches = [w for w in STANDARD if w.name.lower() == n.lower()] or [
            w for w in STANDARD if w.family.lower() == n.lower()
        ]
        if not matches:
            known = ", ".join(dict.fromkeys([w.family for w in STANDARD] + list(WORKLOADS)))
            raise ValueError(f"unknown workload {n!r}; known: {known}")
        chosen += [w for w in matches if w not in chosen]
    return chosen


# -- the lecture's cost claims: sweeps -----------------------------------------------


def depth_sweep(depths=(1, 2, 4, 8, 16), width=256, batch=64, dtype="float32"):
    """Cost against depth (linear?): 784, `depth` hidden layers of `width`, 10."""
    return [
        mlp(f"depth{d}", (784,) + (width,) * d + (10,), batch, dtype, family="depth")
        for d in depths
    ]


def width_sweep(widths=(64, 128, 256, 512, 1024), depth=2, batch=64, dtype="float32"):
    """Cost against width (quadratic?): `depth` hidden layers of width w, in and out w too.

    Input and output widths equal the hidden one so every matmul is w × w and the
    FLOPs are exactly quadratic in w.
    """
    return [mlp(f"width{w}", (w,) * (depth + 2), batch, dtype, family="width") for w in widths]
