"""fastgrad.distributed without MPI: N ranks as threads of one process (ThreadGroup).

The expectations are independent of the code under test: plain single-process training
on the same global batches (fastgrad.datasets.DataLoader, the wrapped optimizer alone),
and the softmax-regression gradient written by hand in NumPy.
"""

import threading

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import cli, nn, optim
from fastgrad import distributed as dist
from fastgrad.datasets import DataLoader, load_digits


@pytest.fixture(autouse=True)
def _fresh_communicator():
    dist._reset_for_tests()
    yield
    dist._reset_for_tests()


@pytest.fixture(scope="module")
def digits():
    X, y, _, _ = load_digits(dtype=np.float64)
    return X[:300], y[:300]


def _make_optimizer(kind, params):
    if kind == "sgd":
        return optim.SGD(params, lr=0.2, momentum=0.9, weight_decay=1e-3)
    return optim.Adam(params, lr=0.01, weight_decay=1e-3)


def _train_plain(X, y, batch_size, kind, epochs=2, dtype=np.float64):
    model = nn.MLP([64, 24, 10], rng=0, dtype=dtype)
    opt = _make_optimizer(kind, model.parameters())
    losses = []
    loader = DataLoader(X, y, batch_size=batch_size, seed=np.random.default_rng(7))
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.cross_entropy(model(xb), yb) + 1e-3 * nn.l2_penalty(model.parameters())
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return [p.data.copy() for p in model.parameters()], losses


def _train_distributed(comm, X, y, batch_size, kind, epochs=2, dtype=np.float64):
    # Each rank starts from different weights: broadcast_parameters must make them rank 0's,
    # and rank 0's seed is the plain run's.
    model = nn.MLP([64, 24, 10], rng=comm.rank, dtype=dtype)
    dist.broadcast_parameters(model, comm=comm)
    opt = dist.DistributedOptimizer(_make_optimizer(kind, model.parameters()), comm=comm)
    loader = dist.DistributedLoader(X, y, batch_size=batch_size, seed=np.random.default_rng(7), comm=comm)
    losses = []
    for _ in range(epochs):
        for xb, yb, total in loader:
            opt.zero_grad()
            loss = None
            if len(xb):
                loss = nn.cross_entropy(model(xb), yb) + 1e-3 * nn.l2_penalty(model.parameters())
                loss.backward()
            losses.append(opt.step(len(xb), total, loss))
    return [p.data.copy() for p in model.parameters()], losses


# ------------------------------------------------------------ N ranks = one process --


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize(
    "size, batch_size",
    [(2, 32), (3, 32), (4, 50), (3, 7), (5, 4)],  # even, uneven, and empty slices (300 % 7, 4 < 5)
)
def test_n_ranks_match_one_process(digits, kind, size, batch_size):
    X, y = digits
    expected, expected_losses = _train_plain(X, y, batch_size, kind)
    results = dist.ThreadGroup(size).run(_train_distributed, X, y, batch_size, kind)
    for rank, (weights, losses) in enumerate(results):
        for got, want in zip(weights, expected):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"rank {rank}")
        np.testing.assert_allclose(losses, expected_losses, rtol=1e-9)
    # Every rank holds the same bits (same sums, same steps).
    for weights, _ in results[1:]:
        for a, b in zip(weights, results[0][0]):
            assert np.array_equal(a, b)


def test_float32_ranks_match_one_process_within_float_tolerance(digits):
    X, y = digits
    X = X.astype(np.float32)
    expected, _ = _train_plain(X, y, 32, "sgd", epochs=1, dtype=np.float32)
    results = dist.ThreadGroup(3).run(_train_distributed, X, y, 32, "sgd", 1, np.float32)
    for got, want in zip(results[0][0], expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------- weighting, exactly --


def _softmax_regression_grad(W, b, X, y):
    """∂/∂(W, b) of the mean cross-entropy of softmax(X Wᵀ + b), by hand."""
    z = X @ W.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p.T @ X / len(y), p.sum(axis=0) / len(y)


@pytest.mark.parametrize("size, n", [(3, 5), (3, 2), (4, 1), (2, 9)])
def test_weighting_gives_the_global_batch_gradient(size, n):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, 6))
    y = rng.integers(0, 4, n)
    W0 = rng.standard_normal((4, 6))
    b0 = rng.standard_normal(4)
    want_W, want_b = _softmax_regression_grad(W0, b0, X, y)

    def one_step(comm):
        W = fg.tensor(W0, requires_grad=True)
        b = fg.tensor(b0, requires_grad=True)
        opt = dist.DistributedOptimizer(optim.SGD([W, b], lr=0.0), comm=comm)
        lo, hi = dist.shard_bounds(n, comm.rank, comm.size)
        opt.zero_grad()
        if hi > lo:  # an empty slice takes no backward: it adds zero
            nn.cross_entropy(fg.tensor(X[lo:hi]) @ W.T + b, y[lo:hi]).backward()
        opt.step(hi - lo, n)
        return W.grad.copy(), b.grad.copy()

    for gW, gb in dist.ThreadGroup(size).run(one_step):
        np.testing.assert_allclose(gW, want_W, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gb, want_b, rtol=1e-13, atol=1e-15)


def test_global_loss_is_the_batch_mean():
    X = np.arange(12.0).reshape(6, 2)
    t = np.zeros((6, 1))
    W0 = np.array([[0.5, -0.25]])

    def one_step(comm):
        W = fg.tensor(W0, requires_grad=True)
        opt = dist.DistributedOptimizer(optim.SGD([W], lr=0.0), comm=comm)
        lo, hi = dist.shard_bounds(len(X), comm.rank, comm.size)
        loss = nn.squared_error(fg.tensor(X[lo:hi]) @ W.T, t[lo:hi])
        loss.backward()
        return opt.step(hi - lo, len(X), loss)

    want = 0.5 * np.mean((X @ W0.T) ** 2)
    assert dist.ThreadGroup(4).run(one_step) == pytest.approx([want] * 4, rel=1e-14)


def test_factored_weight_gradient_goes_into_the_buffer_weighted():
    """Batch-1 slices leave W̄ factored (z̄ᵀ x); the weight must still apply."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 8))
    y = rng.integers(0, 3, 3)
    W0 = rng.standard_normal((3, 8))
    b0 = np.zeros(3)
    want_W, _ = _softmax_regression_grad(W0, b0, X, y)

    def one_step(comm):
        lin = nn.Linear(8, 3)
        lin.weight.data[...] = W0
        lin.bias.data[...] = b0
        opt = dist.DistributedOptimizer(optim.SGD(lin.parameters(), lr=0.0), comm=comm)
        r = comm.rank
        nn.cross_entropy(lin(X[r : r + 1]), y[r : r + 1]).backward()
        opt.step(1, 3)
        return lin.weight.grad.copy()

    for gW in dist.ThreadGroup(3).run(one_step):
        np.testing.assert_allclose(gW, want_W, rtol=1e-13)


def test_step_in_three_parts_is_the_step():
    """pack → comm.allreduce(buffer) → unpack_and_step, the parts a compiled plan calls."""
    X, y, _, _ = load_digits(dtype=np.float64)
    X, y = X[:40], y[:40]

    def run(comm, parts):
        model = nn.MLP([64, 16, 10], rng=0)
        opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1, momentum=0.9), comm=comm)
        lo, hi = dist.shard_bounds(len(X), comm.rank, comm.size)
        for _ in range(3):
            opt.zero_grad()
            loss = nn.cross_entropy(model(X[lo:hi]), y[lo:hi])
            loss.backward()
            if parts:
                opt.pack(hi - lo, len(X), loss)
                comm.allreduce(opt.buffer)
                opt.unpack_and_step(len(X))
            else:
                opt.step(hi - lo, len(X), loss)
        return [p.data.copy() for p in model.parameters()]

    whole = dist.ThreadGroup(2).run(run, False)
    parts = dist.ThreadGroup(2).run(run, True)
    for a, b in zip(whole[0], parts[0]):
        assert np.array_equal(a, b)


# -------------------------------------------------------- size 1: the plain step --


@pytest.mark.parametrize("batch_size", [1, 32])  # 1: factored W̄ and the fused SGD update
def test_size_one_is_bit_identical_to_plain_training(digits, batch_size):
    X, y = digits
    X = X[:64].astype(np.float32)

    def run(distributed):
        model = nn.MLP([64, 16, 10], rng=0, dtype=np.float32)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if distributed:
            opt = dist.DistributedOptimizer(opt)  # no launcher: SingleProcess
        loader = DataLoader(X, y[:64], batch_size=batch_size, seed=1)
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step(len(xb), len(xb)) if distributed else opt.step()
        return [p.data for p in model.parameters()]

    assert dist.size() == 1 and dist.rank() == 0
    assert isinstance(dist.communicator(), dist.SingleProcess)
    for a, b in zip(run(True), run(False)):
        assert np.array_equal(a, b)


def test_cli_distributed_in_one_process_is_bit_identical(tmp_path):
    common = ["train", "--epochs", "2", "--quiet", "--no-progress"]
    plain, dist_ = tmp_path / "plain.npz", tmp_path / "dist.npz"
    assert cli.main([*common, "--save", str(plain)]) == 0
    assert cli.main([*common, "--distributed", "--save", str(dist_)]) == 0
    a, b = np.load(plain), np.load(dist_)
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_cli_refuses_compile_with_distributed(capsys):
    assert cli.main(["train", "--distributed", "--compile"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--compile: not with --distributed" in err


def test_cli_warns_when_launched_without_distributed(monkeypatch, capsys):
    monkeypatch.setenv("PMI_SIZE", "3")
    monkeypatch.setenv("PMI_RANK", "0")
    assert cli.main(["train", "--epochs", "1", "--quiet", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "one of 3 MPI processes without --distributed" in err


def test_cli_refuses_distributed_under_a_launcher_without_mpi(monkeypatch, capsys):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(dist, "mpi_available", lambda: False)
    assert cli.main(["train", "--distributed", "--epochs", "1", "--quiet"]) == 1
    assert "mpi4py is not installed" in capsys.readouterr().err


# ---------------------------------------------------------------------- the loader --


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_slices_make_up_dataloaders_batches(size, drop_last):
    X = np.arange(46.0).reshape(23, 2)
    y = np.arange(23)
    plain = DataLoader(X, y, batch_size=5, seed=4, drop_last=drop_last)
    group = dist.ThreadGroup(size)
    loaders = [dist.DistributedLoader(X, y, batch_size=5, seed=4, drop_last=drop_last, comm=c) for c in group]
    assert all(len(ld) == len(plain) for ld in loaders)
    for _epoch in range(2):  # a new permutation each pass, the same on every rank
        for batch, *slices in zip(plain, *loaders):
            xb, yb = batch
            assert [len(s[1]) for s in slices] == [
                hi - lo for lo, hi in (dist.shard_bounds(len(yb), r, size) for r in range(size))
            ]
            assert all(s[2] == len(yb) for s in slices)
            np.testing.assert_array_equal(np.concatenate([s[0] for s in slices]), xb)
            np.testing.assert_array_equal(np.concatenate([s[1] for s in slices]), yb)


def test_shard_bounds():
    assert [dist.shard_bounds(10, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    assert [dist.shard_bounds(2, r, 3) for r in range(3)] == [(0, 0), (0, 1), (1, 2)]
    with pytest.raises(ValueError, match="rank 3 is not a rank of a job of size 3"):
        dist.shard_bounds(10, 3, 3)


# ------------------------------------------------------------- refusing, not hanging --


def test_ranks_that_disagree_about_the_batch_are_refused_on_every_rank():
    def run(comm):
        W = fg.tensor(np.ones((2, 3)), requires_grad=True)
        opt = dist.DistributedOptimizer(optim.SGD([W], lr=0.1), comm=comm)
        n_local = 2 if comm.rank == 0 else 3  # 5 rows, but each rank claims a batch of 4
        (fg.tensor(np.ones((n_local, 3))) @ W.T).sum().backward()
        try:
            opt.step(n_local, 4)
        except dist.DistributedError as exc:
            return str(exc), W.data.copy()
        return None, W.data.copy()

    for message, W in dist.ThreadGroup(2).run(run):
        assert "hold 5 rows together, but n_total is 4" in message
        assert np.array_equal(W, np.ones((2, 3)))  # no step taken


def test_a_failing_rank_does_not_hang_the_others():
    def run(comm):
        buffer = np.ones(4)
        comm.allreduce(buffer)
        if comm.rank == 1:
            raise KeyError("rank one failed")
        comm.allreduce(buffer)  # the others would wait for rank 1 here forever
        return buffer

    with pytest.raises(KeyError, match="rank one failed"):
        dist.ThreadGroup(3, timeout=30).run(run)


def test_step_arguments_are_checked():
    W = fg.tensor(np.ones(3), requires_grad=True)
    opt = dist.DistributedOptimizer(optim.SGD([W], lr=0.1))
    for args, match in [
        ((3, 2), "n_local <= n_total"),
        ((0, 0), "n_total > 0"),
        ((-1, 2), "n_local must be"),
        ((1.0, 2), "n_local must be"),
        ((1, 2), "size 1 .* n_local=1 != n_total=2"),
    ]:
        with pytest.raises(ValueError, match=match):
            opt.step(*args)


def test_parameters_of_two_dtypes_cannot_share_one_buffer():
    a = fg.tensor(np.ones(3, np.float32), requires_grad=True)
    b = fg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match=r"one float dtype .*float32.*float64"):
        dist.DistributedOptimizer(optim.SGD([a, b], lr=0.1))


def test_wrapper_passes_hyperparameters_through():
    W = fg.tensor(np.ones(3), requires_grad=True)
    opt = dist.DistributedOptimizer(optim.SGD([W], lr=0.1))
    opt.lr = 0.5
    assert opt.optimizer.lr == 0.5 and opt.lr == 0.5
    with pytest.raises(TypeError, match="already distributed"):
        dist.DistributedOptimizer(opt)


def test_init_accepts_a_communicator_and_refuses_a_non_communicator():
    group = dist.ThreadGroup(2)
    assert dist.init(group[1]) is group[1] and dist.rank() == 1 and dist.size() == 2
    with pytest.raises(TypeError, match="no 'rank' attribute"):
        dist.init(object())


def test_collectives_check_their_buffer():
    comm = dist.SingleProcess()
    with pytest.raises(TypeError, match="float32 or float64"):
        comm.allreduce(np.ones(3, np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        comm.allreduce(np.ones((3, 3))[:, 0])
    with pytest.raises(ValueError, match="root must be 0"):
        comm.broadcast(np.ones(3), root=1)


def test_broadcast_parameters_gives_every_rank_root_weights():
    def run(comm):
        model = nn.MLP([5, 4, 2], rng=10 + comm.rank)
        dist.broadcast_parameters(model, root=1, comm=comm)
        return [p.data.copy() for p in model.parameters()]

    want = [p.data for p in nn.MLP([5, 4, 2], rng=11).parameters()]
    for weights in dist.ThreadGroup(3).run(run):
        for a, b in zip(weights, want):
            assert np.array_equal(a, b)


def test_a_parameter_no_rank_differentiated_is_skipped_as_in_one_process():
    """Adam with weight decay moves a parameter whose .grad is a zero array, not one whose
    .grad is None: the ranks must agree it had no gradient."""

    def run(comm):
        used = fg.tensor(np.ones(3), requires_grad=True)
        unused = fg.tensor(np.ones(2), requires_grad=True)
        opt = dist.DistributedOptimizer(optim.Adam([used, unused], lr=0.1, weight_decay=0.5), comm=comm)
        lo, hi = dist.shard_bounds(3, comm.rank, comm.size)
        if hi > lo:
            (used * fg.tensor(np.arange(3.0))).sum().backward()
        opt.step(hi - lo, 3)
        return used.data.copy(), unused.data.copy(), unused.grad

    for used, unused, grad in dist.ThreadGroup(4).run(run):
        assert np.array_equal(unused, np.ones(2)) and grad is None
        assert not np.array_equal(used, np.ones(3))


def test_step_inside_fastgrad_compile_is_refused():
    model = nn.MLP([4, 3, 2], rng=0)
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1), comm=dist.ThreadGroup(2)[0])

    def step(x, y):
        opt.zero_grad()
        nn.cross_entropy(model(x), y).backward()
        opt.step(len(x), 2 * len(x))

    with pytest.raises(fg.TracingError, match="DistributedOptimizer.step inside fastgrad.compile"):
        fg.compile(step)(np.ones((3, 4)), np.array([0, 1, 0]))


def test_compiled_forward_backward_with_the_step_outside():
    X, y, _, _ = load_digits(dtype=np.float64)
    X, y = X[:90], y[:90]

    def run(comm, compiled):
        model = nn.MLP([64, 16, 10], rng=0)
        opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1, momentum=0.9), comm=comm)

        def forward_backward(x, t):
            opt.zero_grad()
            loss = nn.cross_entropy(model(x), t)
            loss.backward()
            return loss

        f = fg.compile(forward_backward) if compiled else forward_backward
        losses = []
        for xb, yb, total in dist.DistributedLoader(X, y, batch_size=30, seed=0, comm=comm):
            with tracing:  # fastgrad.compile traces one function at a time per process
                loss = f(xb, yb)
            losses.append(opt.step(len(xb), total, loss))
        return [p.data.copy() for p in model.parameters()], losses

    tracing = threading.Lock()
    eager = dist.ThreadGroup(3).run(run, False)
    compiled = dist.ThreadGroup(3).run(run, True)
    for (we, le), (wc, lc) in zip(eager, compiled):
        np.testing.assert_allclose(lc, le, rtol=1e-12)
        for a, b in zip(wc, we):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_loader_without_targets_yields_rows_and_the_global_count():
    X = np.arange(14.0).reshape(7, 2)
    group = dist.ThreadGroup(2)
    a, b = (list(dist.DistributedLoader(X, batch_size=4, shuffle=False, comm=c)) for c in group)
    assert [len(x) for x, _ in a] == [2, 1] and [len(x) for x, _ in b] == [2, 2]
    assert [n for _, n in a] == [4, 3] == [n for _, n in b]
    np.testing.assert_array_equal(np.concatenate([a[0][0], b[0][0], a[1][0], b[1][0]]), X)
