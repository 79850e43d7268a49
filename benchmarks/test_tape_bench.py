"""The tape's own cost: per recorded primitive, forward and backward, beside PyTorch.

    pytest benchmarks/test_tape_bench.py --benchmark-only --benchmark-group-by=group

Each timed call records a chain of ``N_OPS`` primitives on a 0-d (or 4-element) tensor
and, for the backward groups, sweeps it; divide the time by ``N_OPS`` for the cost of
one primitive. The lecture's f(x, y) = y + e^{xy}, x = cos t, y = t² is timed whole.
"""

import math

import numpy as np
import pytest

import fastgrad as fg

N_OPS = 100  # primitives per timed chain

SHAPES = {"0d": (), "tiny": (4,)}


def _fastgrad_chain(shape, backward):
    start = np.full(shape, 0.5)

    def run():
        x = fg.tensor(start, requires_grad=True)
        v = x
        for _ in range(N_OPS // 2):
            v = fg.sin(v * 0.9)  # two primitives per step
        if backward:
            v.sum().backward() if shape else v.backward()
        return v

    return run


def _torch_chain(shape, backward):
    torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")
    torch.set_num_threads(1)
    start = torch.full(shape, 0.5, dtype=torch.float64)

    def run():
        x = start.clone().requires_grad_(True)
        v = x
        for _ in range(N_OPS // 2):
            v = torch.sin(v * 0.9)
        if backward:
            v.sum().backward()
        return v

    return run


IMPLS = {"fastgrad": _fastgrad_chain, "torch": _torch_chain}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("phase", ["forward", "forward+backward"])
def test_per_primitive_cost(benchmark, impl, shape, phase):
    run = IMPLS[impl](SHAPES[shape], backward=phase != "forward")
    benchmark.group = f"tape {phase} {N_OPS} ops, {shape}"
    benchmark.extra_info["ops"] = N_OPS
    result = benchmark(run)
    expected = 0.5
    for _ in range(N_OPS // 2):
        expected = math.sin(expected * 0.9)
    np.testing.assert_allclose(np.asarray(result.detach() if impl == "torch" else result.data,
                                          dtype=float), expected, rtol=1e-12)


def _lecture_fastgrad():
    def run():
        t = fg.tensor(0.7, requires_grad=True)
        x, y = fg.cos(t), t * t
        f = y + fg.exp(x * y)
        f.backward()
        return t.grad

    return run


def _lecture_fastgrad_grad():
    df = fg.grad(lambda t: (lambda x, y: y + fg.exp(x * y))(fg.cos(t), t * t))
    return lambda: df(0.7)


def _lecture_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")
    torch.set_num_threads(1)

    def run():
        t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        x, y = torch.cos(t), t * t
        f = y + torch.exp(x * y)
        f.backward()
        return t.grad.item()

    return run


def _lecture_autograd():
    ag = pytest.importorskip("autograd", reason="HIPS autograd not installed")
    anp = pytest.importorskip("autograd.numpy")
    df = ag.grad(lambda t: (lambda x, y: y + anp.exp(x * y))(anp.cos(t), t * t))
    return lambda: df(0.7)


LECTURE = {"fastgrad": _lecture_fastgrad, "fastgrad-grad": _lecture_fastgrad_grad,
           "torch": _lecture_torch, "autograd": _lecture_autograd}


@pytest.mark.parametrize("impl", list(LECTURE))
def test_lecture_chain_rule_example(benchmark, impl):
    run = LECTURE[impl]()
    benchmark.group = "lecture f(x,y) = y + exp(xy), df/dt"
    got = float(benchmark(run))
    x, y = math.cos(0.7), 0.49
    want = y * math.exp(x * y) * (-math.sin(0.7)) + (1 + x * math.exp(x * y)) * 1.4
    assert got == pytest.approx(want, rel=1e-12)
