"""Layers with parameters, in the shape PyTorch users know.

>>> import fastgrad as fg, fastgrad.nn as nn
>>> model = nn.MLP([64, 100, 10], activation="sigmoid", rng=0)   # the lecture's network
>>> y = model(x)                       # z = x W⁽¹⁾ᵀ + b⁽¹⁾, h = σ(z), y = h W⁽²⁾ᵀ + b⁽²⁾
>>> [p.shape for p in model.parameters()]
[(100, 64), (100,), (10, 100), (10,)]
>>> model.save("digits.npz"); model.load("digits.npz")

A ``Module`` finds its parameters and submodules from its attributes: assigning a
tensor with ``requires_grad=True`` registers a parameter, assigning a ``Module``
registers a submodule, in assignment order (which is the order of ``parameters()``
and of ``state_dict()``'s keys, dotted like PyTorch's: ``"0.weight"``).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from .._creation import default_generator, manual_seed  # noqa: F401  (nn.manual_seed, as before)
from .._saved import frozen_by_graph, inplace_update
from .._tensor import Tensor, as_float_array
from . import functional as F
from .losses import binary_cross_entropy, cross_entropy, hinge, l2_penalty, squared_error

__all__ = [
    "Module",
    "Linear",
    "Sequential",
    "Sigmoid",
    "ReLU",
    "Tanh",
    "Dropout",
    "MLP",
    "save",
    "load",
    "manual_seed",
    "functional",
    "squared_error",
    "cross_entropy",
    "binary_cross_entropy",
    "hinge",
    "l2_penalty",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

def _generator(rng) -> np.random.Generator:
    """``rng`` (a seed or a Generator), or fastgrad's default generator (fg.manual_seed)."""
    if rng is None:
        return default_generator()
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _float_dtype(dtype, owner):
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dt}")
    return dt


class Module:
    """Base class: subclasses set parameters/submodules in ``__init__`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() runs: call super().__init__() "
                f"first in {type(self).__name__}.__init__"
            )
        params.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Tensor) and value.requires_grad:
            if not value.is_leaf:
                raise ValueError(
                    f"{type(self).__name__}.{name}: a parameter must be a leaf tensor "
                    "(created, not computed); use .detach().requires_grad_()"
                )
            params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # -- calling --

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- parameters and submodules --

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule, depth first, each once."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items()
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, tensor)`` for every parameter, submodules' included, each once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) in seen:  # shared (tied) weights are listed once
                    continue
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self) -> Iterator[Tensor]:
        for _, p in self.named_parameters():
            yield p

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None (the next backward starts afresh)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- state --

    def state_dict(self) -> OrderedDict:
        """Parameter name → a copy of its array."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Copy arrays into the parameters in place (cast to each parameter's dtype).

        With ``strict`` the keys must match ``state_dict()``'s exactly. Shapes must
        always match; nothing is written unless every entry fits.
        """
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"{type(self).__name__}.load_state_dict: {'; '.join(parts)}")
        updates = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = np.asarray(getattr(state_dict[name], "data", state_dict[name]))
            if value.shape != p.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {name!r} has shape {value.shape}, "
                    f"the parameter {p.shape}"
                )
            updates.append((p, value))
        for p, value in updates:
            if not p.data.flags.writeable and not frozen_by_graph(p):
                p.data = value.astype(p.dtype)  # a read-only array of the user's: replace it
                continue
            with inplace_update(p):  # a graph recorded before this load goes stale
                np.copyto(p.data, value, casting="unsafe")

    def save(self, path) -> None:
        """Write ``state_dict()`` to ``path`` as an uncompressed ``.npz``."""
        save(self, path)

    def load(self, path, strict: bool = True) -> None:
        """Read parameters written by ``save``."""
        load(self, path, strict=strict)

    # -- printing --

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if not self._modules:
            return lines[0] + ")"
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"


def save(module: Module, path) -> None:
    """Save a module's parameters to ``path`` (``np.savez``; the name gets ``.npz`` if absent)."""
    np.savez(os.fspath(path), **module.state_dict())


def load(module: Module, path, strict: bool = True) -> None:
    """Load parameters saved by ``save`` (or ``fastgrad train --save``) into ``module``, in place.

    Entries named ``__fastgrad…`` (the description ``fastgrad train --save`` adds) are not
    parameters and are skipped.
    """
    with np.load(os.fspath(path), allow_pickle=False) as archive:
        state = {name: archive[name] for name in archive.files if not name.startswith("__fastgrad")}
    module.load_state_dict(state, strict=strict)


class Linear(Module):
    """z = x Wᵀ + b.   x (N, in_features) → z (N, out_features); W (out, in), b (out,).

    Weights start uniform in ±1/√in_features, as PyTorch's ``nn.Linear``; pass ``rng`` (an
    int seed or a ``numpy.random.Generator``) for repeatable weights.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype=np.float64, rng=None
    ):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.dtype = _float_dtype(dtype, "Linear")
        gen = _generator(rng)
        bound = 1.0 / math.sqrt(in_features)
        W = gen.uniform(-bound, bound, size=(out_features, in_features))
        self.weight = Tensor(W, requires_grad=True, dtype=self.dtype)
        if bias:
            b = gen.uniform(-bound, bound, size=(out_features,))
            self.bias = Tensor(b, requires_grad=True, dtype=self.dtype)
        else:
            self.bias = None

    def forward(self, x):
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): input of shape {shape} does "
                f"not fit weight {self.weight.shape} (need x (N, {self.in_features}))"
            )
        if not isinstance(x, Tensor):
            # Refuses complex and object data with a TypeError (never drops an imaginary part).
            x = as_float_array(x, copy=False, name="x").astype(self.dtype, copy=False)
        if len(shape) == 2:
            return F.linear(x, self.weight, self.bias)
        # One example (D,) or extra leading axes (..., D): through (N, D) and back.
        z = F.linear(x.reshape(-1, self.in_features), self.weight, self.bias)
        return z.reshape(*shape[:-1], self.out_features)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, dtype={self.dtype}"
        )


class Sigmoid(Module):
    """h = σ(z)."""

    def forward(self, z):
        return F.sigmoid(z)


class ReLU(Module):
    """h = max(0, z)."""

    def forward(self, z):
        return F.relu(z)


class Tanh(Module):
    """h = tanh(z)."""

    def forward(self, z):
        return F.tanh(z)


class Dropout(Module):
    """Inverted dropout: in training h = x ∘ m / (1 − p), m ~ Bernoulli(1 − p); in eval h = x.

    A fresh mask m per call while ``training`` (``model.train()``, the default); the
    identity after ``model.eval()``. The mask enters the tape as a constant factor, so
    x̄ = h̄ ∘ m / (1 − p). ``rng`` (an int seed or a ``numpy.random.Generator``) makes the
    masks repeatable; without it they come from the generator ``fg.manual_seed`` resets.
    ``fastgrad.compile`` refuses a Dropout in training mode (a mask drawn while tracing
    would be replayed on every step).
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"Dropout: p must be a number, got {type(p).__name__}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = None if rng is None else _generator(rng)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        from .. import _tape

        if _tape._tracer is not None:
            from .._compiler.ir import TracingError

            raise TracingError(
                "fastgrad.compile: Dropout in training mode draws a new mask every call, which "
                "a compiled plan would freeze; call model.eval() or train this model eagerly"
            )
        if not isinstance(x, Tensor):
            x = Tensor(as_float_array(x, copy=False, name="x"))
        gen = self.rng if self.rng is not None else default_generator()
        keep = gen.random(x.shape) >= self.p
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype=x.dtype)  # everything dropped (PyTorch: zeros)
        else:
            mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * mask

    def extra_repr(self):
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order; ``seq[i]`` is the i-th, names "0", "1", …"""

    def __init__(self, *layers: Module):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module) -> Sequential:
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: layers must be Modules, got {type(layer).__name__}")
        setattr(self, str(len(self._modules)), layer)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


_ACTIVATIONS = {"sigmoid": Sigmoid, "relu": ReLU, "tanh": Tanh}


class MLP(Sequential):
    """The lecture's multilayer perceptron: Linear layers, ``activation`` after each hidden one.

    ``sizes`` = [inputs, hidden…, outputs]; the output layer is linear (no activation),
    so pair it with ``squared_error`` or ``cross_entropy`` (which applies the softmax).
    ``MLP([64, 100, 10])`` is  h = σ(x W⁽¹⁾ᵀ + b⁽¹⁾),  y = h W⁽²⁾ᵀ + b⁽²⁾.
    """

    def __init__(self, sizes, activation="sigmoid", dtype=np.float64, bias: bool = True, rng=None):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least [inputs, outputs], got {sizes}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0:
                raise ValueError(f"MLP: every size must be a positive int, got {sizes}")
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(
                    f"MLP: unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}"
                )
            make_activation = _ACTIVATIONS[activation]
        elif isinstance(activation, type) and issubclass(activation, Module):
            make_activation = activation
        else:
            raise TypeError(
                f"MLP: activation must be a name {sorted(_ACTIVATIONS)} or a Module class, "
                f"got {activation!r}"
            )
        gen = _generator(rng)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(Linear(n_in, n_out, bias=bias, dtype=dtype, rng=gen))
            if i < len(sizes) - 2:
                layers.append(make_activation())
        super().__init__(*layers)
        object.__setattr__(self, "sizes", [int(s) for s in sizes])
