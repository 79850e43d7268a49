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
NumPy allows: every buffer preallocated, every ufunc and matmul writing in place.
Here are NumPy by hand and fastgrad (eager on each backend, and compiled). The peers'
implementations (PyTorch, HIPS autograd, JAX) are in the source checkout's
``benchmarks/peers/``, registered by :func:`load_peers`; :func:`available` says why an
implementation cannot run (not installed, not loaded) instead of failing.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .workloads import MLPData, ScalarData, Workload

__all__ = [
    "IMPLS",
    "BASELINE",
    "Entry",
    "Impl",
    "available",
    "create",
    "check_gradients",
    "GradientMismatch",
    "load_peers",
    "PEER_NAMES",
]

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
# Registry


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


class Entry:
    """One implementation: its classes for MLP and scalar workloads (None: no such version),
    ``reason()`` (None if it can run here, else why not) and a label for tables."""

    def __init__(self, name, mlp, scalar, reason, label):
        self.name, self.mlp, self.scalar, self.reason, self.label = name, mlp, scalar, reason, label


IMPLS = {
    e.name: e
    for e in (
        Entry("numpy", NumpyMLP, NumpyScalar, lambda: None, NumpyMLP.label),
        Entry("numpy-plain", NumpyPlainMLP, None, lambda: None, NumpyPlainMLP.label),
        Entry(
            "fastgrad-cython",
            _fastgrad_impl("mlp", "cython"),
            _fastgrad_impl("scalar", "cython"),
            _fastgrad_reason("cython"),
            "fastgrad, cython backend",
        ),
        Entry(
            "fastgrad-reference",
            _fastgrad_impl("mlp", "reference"),
            _fastgrad_impl("scalar", "reference"),
            _fastgrad_reason("reference"),
            "fastgrad, reference backend",
        ),
        Entry(
            "fastgrad-compiled",
            FastgradCompiledMLP,
            FastgradCompiledScalar,
            _compiled_reason,
            "fastgrad.compile, cython backend",
        ),
    )
}

# ---------------------------------------------------------------------------------------
# The peers (PyTorch, HIPS autograd, JAX): benchmark code kept out of the installed
# package, in the source checkout's benchmarks/peers/. Until load_peers finds it, each
# peer is a placeholder whose reason says how to get it.

PEER_NAMES = ("torch", "autograd", "jax", "jax-jit")
PEERS_HOWTO = (
    "the peers' benchmark code is not part of the installed package: run fastgrad bench "
    "from a fastgrad source checkout (it reads benchmarks/peers/ there), or give --peers DIR"
)
for _name in PEER_NAMES:
    IMPLS[_name] = Entry(_name, None, None, lambda: PEERS_HOWTO, _name)

_peers = {"directory": None}


def _is_fastgrad_checkout(root: Path) -> bool:
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "fastgrad"' in text


def find_peers(directory=None) -> Path | None:
    """The peers' directory: ``directory``, else ``$FASTGRAD_BENCH_PEERS``, else
    ``benchmarks/peers`` of the checkout this fastgrad is imported from (``src/`` layout),
    else of the current directory if it is a fastgrad checkout. None if there is none."""
    if directory is None:
        directory = os.environ.get("FASTGRAD_BENCH_PEERS") or None
    if directory is not None:
        return Path(directory)
    here = Path(__file__).resolve().parents[3]  # <checkout>/src/fastgrad/bench/impls.py
    for root in (here, Path.cwd()):
        peers = root / "benchmarks" / "peers"
        if (peers / "__init__.py").is_file() and _is_fastgrad_checkout(root):
            return peers
    return None


def load_peers(directory=None) -> str | None:
    """Register the peers found by :func:`find_peers`; None on success, else why not.

    Idempotent. The directory is imported as the package ``fastgrad_bench_peers``, whose
    ``PEERS`` list of :class:`Entry` replaces the placeholders.
    """
    path = find_peers(directory)
    if path is None:
        return PEERS_HOWTO
    path = path.resolve()
    if _peers["directory"] == path:
        return None
    init = path / "__init__.py"
    if not init.is_file():
        return f"no peers package in {str(path)!r} (expected {init.name} there)"
    spec = importlib.util.spec_from_file_location(
        "fastgrad_bench_peers", init, submodule_search_locations=[str(path)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        return f"the peers in {str(path)!r} failed to load ({type(exc).__name__}: {exc})"
    for entry in module.PEERS:
        IMPLS[entry.name] = entry
        _reasons.pop(entry.name, None)
    _peers["directory"] = path
    return None


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
