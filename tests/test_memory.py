"""Memory (issue 7, part 3): long runs keep resident memory flat, graphs die by reference
counting alone (no cycles, so ``gc.collect()`` is never needed), and the intermediates
of a graph die after its backward even when the user keeps the loss.
"""

import gc
import os
import weakref

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.optim as optim
from fastgrad import _saved, nn
from fastgrad._tape import Node

PAGE = os.sysconf("SC_PAGE_SIZE")
BACKEND_NAMES = fg.available_backends()


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


class gc_disabled:
    """Inside: the cycle collector is off, so only reference counting frees objects."""

    def __enter__(self):
        self.was = gc.isenabled()
        gc.collect()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


def _train(model, opt, x, t, steps, loss_name="squared_error"):
    loss_fn = getattr(nn.functional, loss_name)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()
    return loss


@pytest.mark.parametrize("steps", [10_000])
def test_rss_stays_flat_over_ten_thousand_training_steps(backend, steps):
    # The figure: 10,000 steps on the default backend; the reference backend
    # (slower per step) runs a quarter as many, still 20x the warm-up.
    if backend != BACKEND_NAMES[0]:
        steps //= 4
    rng = np.random.default_rng(0)
    model = nn.MLP([8, 16, 3], rng=0)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = rng.standard_normal((4, 8))
    labels = rng.integers(0, 3, 4)
    t = np.eye(3)[labels]
    with gc_disabled():  # garbage that needs the collector would show up as growth
        _train(model, opt, x, t, 500)
        _train(model, opt, x, labels, 100, "cross_entropy")
        before = rss_bytes()
        half = steps // 2
        _train(model, opt, x, t, half)
        _train(model, opt, x, labels, steps - half, "cross_entropy")
        after = rss_bytes()
    growth = after - before
    assert growth < 2 * 2**20, f"RSS grew {growth / 2**20:.2f} MB over {steps} steps"


def _intermediates_and_loss(make_leaves, keep):
    """Build a small graph; return weakrefs to its intermediates (and the loss if kept)."""
    W, b, x = make_leaves()
    z = nn.functional.linear(x, W, b)
    h = nn.functional.sigmoid(z)
    y = h * h + fg.exp(-h) / (1.0 + h)
    loss = (y.sum(axis=1) ** 2).mean()
    refs = [weakref.ref(t) for t in (z, h, y)] + [weakref.ref(t._data) for t in (z, h, y)]
    return refs, (loss if keep else None)


def _leaves():
    rng = np.random.default_rng(0)
    W = fg.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    b = fg.tensor(rng.standard_normal(5), requires_grad=True)
    x = fg.tensor(rng.standard_normal((3, 4)))
    return W, b, x


def _live_nodes():
    return sum(1 for o in gc.get_objects() if type(o) is Node and o.prim is not None)


def test_dropped_graph_dies_without_the_cycle_collector(backend):
    with gc_disabled():
        nodes = _live_nodes()
        refs, _ = _intermediates_and_loss(_leaves, keep=False)
        assert all(r() is None for r in refs), "a graph survived: a reference cycle keeps it"
        assert _live_nodes() == nodes


def test_intermediates_die_after_backward_while_the_loss_is_kept(backend):
    with gc_disabled():
        nodes = _live_nodes()
        refs, loss = _intermediates_and_loss(_leaves, keep=True)
        assert all(r() is not None for r in refs[3:]), "the graph should hold what it saved"
        loss.backward()
        alive = [i for i, r in enumerate(refs) if r() is not None]
        assert not alive, f"intermediates {alive} outlived the backward"
        # The graph's structure stays while the loss lives (explain() works after backward,
        # as PyTorch's grad_fn chain does), its nodes holding no buffers.
        kept = [o for o in gc.get_objects() if type(o) is Node and o.prim is not None]
        assert len(kept) - nodes == len(fg.viz.graph_nodes(loss)) - 2  # W and b are leaves
        assert all(o.freed and o.args is None and o.raw is None and o.ans is None for o in kept
                   if o in {n for n, _ in fg.viz.graph_nodes(loss)})
        assert float(loss) > 0


def test_retained_graph_lives_until_the_loss_goes(backend):
    with gc_disabled():
        refs, loss = _intermediates_and_loss(_leaves, keep=True)
        loss.backward(retain_graph=True)
        assert any(r() is not None for r in refs[3:])
        loss.backward()  # the second backward frees it
        del loss
        assert all(r() is None for r in refs)


def test_functional_transforms_leave_nothing_behind(backend):
    import fastgrad.numpy as fnp

    def f(w):
        return fnp.sum(fnp.tanh(w) ** 2)

    w = np.linspace(-1, 1, 7)
    with gc_disabled():
        fg.grad(f)(w)  # warm caches
        nodes = _live_nodes()
        for _ in range(50):
            fg.grad(f)(w)
            fg.grad(fg.grad(lambda v: fnp.sum(fnp.sin(v) * v)))(0.3)
            fg.value_and_grad(f)(w)
        assert _live_nodes() == nodes


def test_large_intermediates_are_freed_after_backward(backend):
    # 4 MB intermediates: if the kept loss kept them, RSS would grow by ~40 MB.
    rng = np.random.default_rng(1)
    W = fg.tensor(rng.standard_normal((512, 64)) * 0.1, requires_grad=True)
    x = fg.tensor(rng.standard_normal((1024, 64)))
    losses = []
    with gc_disabled():
        for _ in range(3):  # warm up the allocator
            (fg.sigmoid(x @ W.T) ** 2).sum().backward()
        before = rss_bytes()
        for _ in range(10):
            loss = (fg.sigmoid(x @ W.T) ** 2).sum()
            loss.backward()
            losses.append(loss)  # kept, as a user logging losses would
        growth = rss_bytes() - before
    assert growth < 8 * 2**20, f"kept losses held {growth / 2**20:.1f} MB of intermediates"


def test_protection_of_saved_data_is_released(backend):
    # The tape freezes constants and saved tensors while a graph lives; a dropped or swept
    # graph must leave nothing frozen (a leak here would also make optimizer steps fail).

    with gc_disabled():
        frozen = len(_saved.frozen)
        W, b, x = _leaves()
        const = np.ones((3, 5))
        loss = ((nn.functional.linear(x, W, b) * const) ** 2).sum()
        assert not const.flags.writeable
        del loss
        assert const.flags.writeable and len(_saved.frozen) == frozen
        loss = ((nn.functional.linear(x, W, b) * const) ** 2).sum()
        loss.backward()
        assert const.flags.writeable and len(_saved.frozen) == frozen
        W.data[0, 0] = 1.0  # writable again after the backward
