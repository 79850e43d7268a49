"""fastgrad.compile: replayed results equal eager ones; what cannot be replayed is refused."""

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.numpy
from fastgrad import TracingError, compile, nn, optim
from fastgrad._opcodes import FUSED, GEMM, SCE, SGD

BACKENDS = [b for b in ("cython", "reference") if b in fg.available_backends()]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------- the functional face --


def s1(t):
    x = fg.cos(t)
    y = t * t
    return y + fg.exp(x * y)


def test_grad_of_scalar_function(backend):
    g = compile(fg.grad(s1))
    for t in (0.7, -0.3, 1.9, 0.7):
        np.testing.assert_allclose(g(t), fg.grad(s1)(np.float64(t)), rtol=1e-12)
    assert g.traces == 1


def test_chain_and_value_and_grad(backend):
    consts = np.random.default_rng(0).uniform(-0.5, 0.5, 40)

    def chain(t):
        v = t
        for a in consts:
            v = v + fg.exp(fg.sin(v * a))
        return v

    vg = compile(fg.value_and_grad(chain))
    for t in (0.3, 0.1, -0.2):
        v, g = vg(t)
        ev, eg = fg.value_and_grad(chain)(np.float64(t))
        np.testing.assert_allclose(v, ev, rtol=1e-12)
        np.testing.assert_allclose(g, eg, rtol=1e-12)


def test_grad_of_array_function_with_broadcasting(backend):
    rng = np.random.default_rng(1)
    b = rng.standard_normal(4)

    def f(x):
        y = fg.tanh(x * 2.0 - b) / (1.0 + x**2) + fg.sigmoid(x) * fg.relu(x - 0.1)
        z = fg.sqrt(fg.exp(y) + 1.0) - fg.log(1.5 + fg.sin(x) * fg.cos(x))
        return z.mean() + (z.sum(axis=0) ** 3).sum() + (z.sum(axis=-1) * 0.5).sum()

    g = compile(fg.grad(f))
    for _ in range(3):
        x = rng.standard_normal((3, 4))
        np.testing.assert_allclose(g(x), fg.grad(f)(x), rtol=1e-10, atol=1e-12)


def test_matmul_and_transpose(backend):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((5, 3))

    def f(x):
        h = fg.sigmoid(x @ W.T + 0.5)
        return (h @ h.T).sum() + (x.T @ x).sum()

    g = compile(fg.grad(f))
    for _ in range(2):
        x = rng.standard_normal((4, 3))
        np.testing.assert_allclose(g(x), fg.grad(f)(x), rtol=1e-10)


def test_new_shapes_retrace(backend):
    g = compile(fg.grad(lambda x: (x * x).sum()))
    np.testing.assert_allclose(g(np.ones(3)), 2 * np.ones(3))
    np.testing.assert_allclose(g(np.ones((2, 2))), 2 * np.ones((2, 2)))
    np.testing.assert_allclose(g(np.full(3, 2.0)), 4 * np.ones(3))
    assert g.traces == 2
    np.testing.assert_allclose(g(np.ones(3, np.float32)), 2 * np.ones(3))
    assert g.traces == 3


# ------------------------------------------------------------ nn/optim training --


def make_model(dtype, opt_kind, seed=0, **kw):
    model = nn.MLP([6, 5, 4, 3], dtype=dtype, rng=seed)
    if opt_kind == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.1, **kw)
    else:
        opt = optim.Adam(model.parameters(), lr=0.01, **kw)
    return model, opt


def step_fn(model, opt, loss="squared", clear=False):
    def step(x, t):
        opt.zero_grad()
        y = model(x)
        if loss == "squared":
            L = nn.squared_error(y, t)
        else:
            L = nn.cross_entropy(y, t)
        L.backward()
        opt.step()
        if clear:
            opt.zero_grad()
        return L

    return step


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opt_kind,kw", [("sgd", {}), ("sgd", {"momentum": 0.9, "weight_decay": 0.01}),
                                         ("adam", {}), ("adam", {"weight_decay": 0.1})])
def test_training_equals_eager(backend, dtype, opt_kind, kw):
    rng = np.random.default_rng(3)
    m1, o1 = make_model(dtype, opt_kind, **kw)
    m2, o2 = make_model(dtype, opt_kind, **kw)
    compiled, eager = compile(step_fn(m1, o1)), step_fn(m2, o2)
    for _ in range(5):
        x = rng.standard_normal((4, 6)).astype(dtype)
        t = rng.standard_normal((4, 3)).astype(dtype)
        a, b = compiled(x, t), eager(x, t)
        np.testing.assert_allclose(a.data, b.data, **tol(dtype))
    assert compiled.traces == 1
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, **tol(dtype))
        np.testing.assert_allclose(p.grad, q.grad, **tol(dtype))
        assert p.data.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_fused_into_weight_gradient(backend, dtype):
    rng = np.random.default_rng(4)
    m1, o1 = make_model(dtype, "sgd")
    m2, o2 = make_model(dtype, "sgd")
    compiled = compile(step_fn(m1, o1, clear=True))
    eager = step_fn(m2, o2, clear=True)
    for i in range(4):
        x = rng.standard_normal((1 + i % 2, 6)).astype(dtype)
        t = rng.standard_normal((1 + i % 2, 3)).astype(dtype)
        np.testing.assert_allclose(compiled(x, t).data, eager(x, t).data, **tol(dtype))
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, **tol(dtype))
        assert p.grad is None
    plan = compiled.plan_for(x, t)
    # Every weight update is fused into its gradient's GEMM; a bias gradient is a sum over
    # the batch, which is summed first and then applied (as eager, as accurately).
    assert [len(ins.out.shape) for ins in plan.instrs if ins.op == SGD] == [1, 1, 1]


def test_keep_grads_false_and_lr_change(backend):
    rng = np.random.default_rng(5)
    m1, o1 = make_model(np.float64, "sgd")
    m2, o2 = make_model(np.float64, "sgd")
    compiled = compile(step_fn(m1, o1), keep_grads=False)
    eager = step_fn(m2, o2)
    for i in range(4):
        if i == 2:
            o1.lr = o2.lr = 0.05  # read at every call, not frozen
        x, t = rng.standard_normal((3, 6)), rng.standard_normal((3, 3))
        compiled(x, t)
        eager(x, t)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10)
        assert p.grad is None


def test_cross_entropy_one_hot(backend):
    rng = np.random.default_rng(6)
    m1, o1 = make_model(np.float32, "sgd")
    m2, o2 = make_model(np.float32, "sgd")
    compiled, eager = compile(step_fn(m1, o1, "ce")), step_fn(m2, o2, "ce")
    for _ in range(3):
        x = rng.standard_normal((5, 6)).astype(np.float32)
        t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
        np.testing.assert_allclose(compiled(x, t).data, eager(x, t).data, rtol=1e-4)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-4, atol=1e-6)


def test_grads_accumulate_without_zero_grad(backend):
    rng = np.random.default_rng(7)
    W1 = fg.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    W2 = fg.tensor(W1.data, requires_grad=True)

    def loss_of(W):
        def f(x):
            loss = (fg.tanh(x @ W) ** 2).sum()
            loss.backward()
            return loss

        return f

    compiled, eager = compile(loss_of(W1)), loss_of(W2)
    x = rng.standard_normal((4, 3))
    for _ in range(3):
        compiled(x)
        eager(x)
        np.testing.assert_allclose(W1.grad, W2.grad, rtol=1e-10)
    W1.grad = None
    W2.grad = None
    compiled(x)
    eager(x)
    np.testing.assert_allclose(W1.grad, W2.grad, rtol=1e-10)


def test_backends_run_one_plan_equally():
    if len(BACKENDS) < 2:
        pytest.skip("needs the compiled backend")
    rng = np.random.default_rng(8)
    m, o = make_model(np.float64, "sgd")
    x, t = rng.standard_normal((2, 6)), rng.standard_normal((2, 3))

    def f(x, t):
        L = nn.squared_error(m(x), t)
        L.backward()
        return L

    step = compile(f)
    step(x, t)
    entry = next(iter(step.cache.values()))
    results = []
    for name in ("cython", "reference"):
        for p in m.parameters():
            p.grad = None
        ex = entry.executor(name == "cython")
        results.append([entry.run([x, t], name == "cython").data] + [p.grad.copy() for p in m.parameters()])
        assert ex is entry.executors[name]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_trace_returns_fresh_arrays():
    g = compile(fg.grad(lambda x: (x * 3.0).sum()))
    a = g(np.ones(2))
    b = g(np.ones(2))
    a[...] = 0
    np.testing.assert_allclose(b, [3.0, 3.0])


def test_maximum_minimum_where(backend):
    rng = np.random.default_rng(9)
    mask = rng.random((3, 4)) > 0.5
    b = np.array([0.1, 0.5, 0.5, -0.2])

    def f(x):
        m = fg.maximum(x, 0.5) + fg.minimum(x * 2.0, b) + fg.maximum(x, x)  # ties share ḡ
        return (fg.where(mask, m * m, fg.exp(x)) + fg.where(mask[0], 1.0, x)).sum()

    g = compile(fg.grad(f))
    for _ in range(3):
        x = rng.standard_normal((3, 4))
        x[0, 1] = 0.5  # a tie with the constant
        np.testing.assert_allclose(g(x), fg.grad(f)(x), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_integer_labels(backend, dtype):
    rng = np.random.default_rng(10)
    m1, o1 = make_model(dtype, "sgd")
    m2, o2 = make_model(dtype, "sgd")
    compiled, eager = compile(step_fn(m1, o1, "ce")), step_fn(m2, o2, "ce")
    for _ in range(4):
        x = rng.standard_normal((5, 6)).astype(dtype)
        t = rng.integers(0, 3, 5)
        np.testing.assert_allclose(compiled(x, t).data, eager(x, t).data, **tol(dtype))
    assert compiled.traces == 1
    assert any(ins.op == SCE for ins in compiled.plan_for(x, t).instrs)  # one instruction
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, **tol(dtype))
    with pytest.raises(ValueError, match="out of range"):
        compiled(x, np.array([0, 1, 2, 3, 0]))


def test_integer_argument_is_read_as_float(backend):
    f = lambda x: (x * x + x).sum()  # noqa: E731
    g = compile(fg.grad(f))
    for x in (np.arange(4), np.arange(4) - 2, np.arange(4)):
        np.testing.assert_allclose(g(x), fg.grad(f)(x.astype(float)))


def test_elementwise_chains_fused_and_executors_agree():
    """Long chains become FUSED instructions (tiles of 256, register temporaries); the
    compiled and the reference executors agree with eager on arrays of several tiles."""
    rng = np.random.default_rng(11)
    b = rng.standard_normal(700)

    def f(x):
        y = fg.sin(x * 1.5 + b) * fg.exp(-x * x) - fg.tanh(x) / (2.0 + fg.cos(x))
        return (y * y).sum() + (y * x).mean(axis=0).sum() + (fg.sigmoid(y) ** 3).sum()

    x = rng.standard_normal((3, 700))
    want = fg.grad(f)(x)
    got = {}
    for name in BACKENDS:
        with fg.use_backend(name):
            g = compile(fg.grad(f))
            g(x)
            got[name] = g(x)
            plan = g.plan_for(x)
    assert any(ins.op == FUSED for ins in plan.instrs) and plan.registers
    for v in got.values():
        np.testing.assert_allclose(v, want, rtol=1e-11, atol=1e-13)


def test_scalar_chain_is_one_fused_instruction():
    g = compile(fg.grad(s1))
    g(0.3)
    plan = g.plan_for(0.3)
    assert [ins.op for ins in plan.instrs] == [FUSED]  # seeds folded, copies propagated
    np.testing.assert_allclose(g(0.3), fg.grad(s1)(np.float64(0.3)), rtol=1e-12)


def test_fast_path_rebinds_parameters_and_retraces(backend):
    rng = np.random.default_rng(12)
    m1, o1 = make_model(np.float64, "sgd")
    m2, o2 = make_model(np.float64, "sgd")
    compiled, eager = compile(step_fn(m1, o1, clear=True)), step_fn(m2, o2, clear=True)
    x, t = rng.standard_normal((2, 6)), rng.standard_normal((2, 3))
    for i in range(6):
        if i == 3:  # new arrays of the same shape: bound, not retraced
            for p, q in zip(m1.parameters(), m2.parameters()):
                p.data = q.data.copy() * 0.5
                q.data = q.data * 0.5
        np.testing.assert_allclose(compiled(x, t).data, eager(x, t).data, rtol=1e-12)
    assert compiled.traces == 1
    np.testing.assert_allclose(compiled(x.astype(np.float32), t).data, eager(x, t).data,
                               rtol=1e-5)  # a new signature: a second trace
    assert compiled.traces == 2
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5)


# -------------------------------------------------------------------- refusals --


@pytest.mark.parametrize("body,match", [
    (lambda x: x * 2 if (x.sum() > 0) else x, r"bool\(\) of a traced value \(an `if` on a mask"),
    (lambda x: x * float(x.sum()), r"float\(\)"),
    (lambda x: x * x.sum().item(), r"\.item\(\)"),
    (lambda x: x * 2 if x.sum() else x, r"bool\(\)"),
    (lambda x: fg.Tensor(np.asarray(x)) * 2, "NumPy function"),
    (lambda x: fg.exp(x.data * 2), "needs its value while tracing"),
    (lambda x: x[int(np.argmax(x.data))], r"np\.argmax on a traced value"),
    (lambda x: x[x > 0], "indexing by a boolean mask computed from traced values .*\\(in 'getitem'\\)"),
    (lambda x: fastgrad.numpy.linalg.inv(x.reshape(1, 3) * x.reshape(3, 1) + np.eye(3)),
     "primitive 'inv', which the compiled executor cannot"),
])
def test_refused_with_clear_error(body, match):
    f = compile(fg.grad(lambda x: body(x).sum()))
    with pytest.raises(TracingError, match=match):
        f(np.ones(3))


def test_higher_order_refused():
    with pytest.raises(TracingError, match="higher-order"):
        compile(fg.grad(fg.grad(lambda x: (x * x * x).sum())))(2.0)


def test_tensor_arguments_refused():
    with pytest.raises(TypeError, match="arrays"):
        compile(lambda x: x)(fg.tensor([1.0]))


def test_eager_behaviour_restored_after_trace():
    compile(fg.grad(lambda x: (x * x).sum()))(np.ones(2))
    t = fg.tensor([1.0, 2.0])
    assert float(t.sum()) == 3.0 and bool((t > 0).all())
    assert fg._tape._tracer is None


def test_tracing_does_not_keep_the_traced_graph_alive():
    """A traced forward-only call must not leave the parameters guarded read-only."""
    model = fg.nn.MLP([4, 3, 2], rng=0)
    params = list(model.parameters())
    forward = fg.compile(lambda x: model(x))
    forward(np.ones((2, 4)))
    forward(np.ones((2, 4)))
    assert [p._saves for p in params] == [0] * len(params)
    params[0].data[0, 0] = 1.0  # writable again, as after an eager forward is dropped
    assert params[0].data[0, 0] == 1.0


# -------------------------------------------- primitives are found by the object --


def test_user_primitive_named_like_a_builtin_is_refused_not_replayed_as_it(backend):
    """A user primitive called 'exp' (2x) was once replayed as eˣ: 28.0 eagerly, 77.75 later."""
    from fastgrad.extend import defvjp, primitive

    @primitive
    def exp(x):
        return 2.0 * x

    defvjp(exp, lambda ans, x: lambda g: 2.0 * g)

    def f(x):
        return fg.numpy.sum(exp(x) * x)

    x = np.array([1.0, 2.0, 3.0])
    assert f(x) == 28.0 and fg.grad(f)(x).tolist() == [4.0, 8.0, 12.0]
    cf = compile(f)
    with pytest.raises(TracingError, match="'exp'.*no compile lowering"):
        cf(x)
    with pytest.raises(TracingError, match="'exp'"):
        compile(fg.grad(f))(x)


def test_checkpointed_block_named_like_a_builtin_replays_its_body(backend):
    """A block in fg.checkpoint named 'linear' was once replayed as fastgrad's linear."""
    w = np.array([0.3, -0.2, 0.5])

    def linear(x):
        return fg.tanh(x * w) + x

    block = fg.checkpoint(linear)

    def f(x):
        return fg.numpy.sum(block(x) * block(x))

    x = np.array([0.9, 1.1, -0.4])
    for fun in (f, fg.grad(f)):
        cf = compile(fun)
        eager = fun(x)
        cf(x)
        np.testing.assert_allclose(cf(x), eager, rtol=1e-12)
        assert cf.traces == 1


# --------------------------------------- compiled updates are as accurate as eager --


def _update_errors(dtype_net, sizes, batch, lr, steps, seed):
    """Per parameter, the largest relative error of each step's update (W_after −
    W_before) against the same step recomputed in float64: (eager's, compiled's)."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((batch, sizes[0])).astype(dtype_net) for _ in range(steps)]
    ts = [rng.standard_normal((batch, sizes[-1])).astype(dtype_net) for _ in range(steps)]

    def make(dtype):
        fg_rng = np.random.default_rng(seed + 1)
        model = nn.MLP(sizes, dtype=dtype)
        for p in model.parameters():
            p.data[...] = fg_rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)
        return model, optim.SGD(model.parameters(), lr=lr)

    def step_fn(model, opt):
        def step(x, t):
            opt.zero_grad()
            loss = nn.squared_error(model(x), t)
            loss.backward()
            opt.step()
            return loss
        return step

    eager_m, eager_o = make(dtype_net)
    comp_m, comp_o = make(dtype_net)
    ref_m, ref_o = make(np.float64)
    compiled = compile(step_fn(comp_m, comp_o), keep_grads=False)
    eager, ref = step_fn(eager_m, eager_o), step_fn(ref_m, ref_o)
    worst = {}
    for x, t in zip(xs, ts):
        # each model starts the step from the reference weights (rounded to its dtype), so
        # the errors measured are of this one step's update, not accumulated drift
        for m in (eager_m, comp_m):
            for p, q in zip(m.parameters(), ref_m.parameters()):
                p.data[...] = q.data
        before = [q.data.astype(np.float64) for q in ref_m.parameters()]
        starts = [p.data.astype(np.float64) for p in eager_m.parameters()]
        ref(x.astype(np.float64), t.astype(np.float64))
        eager(x, t)
        compiled(x, t)
        for k, (q, e, c) in enumerate(zip(ref_m.parameters(), eager_m.parameters(), comp_m.parameters())):
            # the float64 update from the start each model had (its dtype's rounding of it)
            true = q.data - before[k]
            size = np.abs(true).max()
            err_e = np.abs((e.data - starts[k]) - true).max() / size
            err_c = np.abs((c.data - starts[k]) - true).max() / size
            w = worst.setdefault(k, [0.0, 0.0])
            w[0], w[1] = max(w[0], err_e), max(w[1], err_c)
    return worst


@pytest.mark.parametrize("sizes,batch", [((784, 1024, 1024, 10), 256), ((64, 32, 10), 256)])
def test_fused_update_is_as_accurate_as_eager(backend, sizes, batch):
    """keep_grads=False folds W −= η W̄ into W̄'s product; no parameter's update may lose
    accuracy against a float64 recomputation (a bias once lost 3.7e-2 of its update)."""
    worst = _update_errors(np.float32, sizes, batch, lr=0.05, steps=2, seed=3)
    for k, (err_e, err_c) in worst.items():
        assert err_c <= 4 * err_e + 1e-5, f"parameter {k}: compiled {err_c:.2e}, eager {err_e:.2e}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [1, 4])
def test_kept_gradient_applied_by_the_gemm_that_writes_it(backend, dtype, batch):
    """.grad kept (keep_grads=True) and plain SGD: the GEMM that writes W̄ also applies
    W −= η W̄, a panel of rows at a time while it is in cache (flags bit 2), instead of a
    separate SGD reading W̄ back; .grad and the weights as eager's, lr read at every call."""
    rng = np.random.default_rng(8)
    m1, o1 = make_model(dtype, "sgd")
    m2, o2 = make_model(dtype, "sgd")
    compiled, eager = compile(step_fn(m1, o1)), step_fn(m2, o2)
    for i in range(4):
        if i == 2:
            o1.lr = o2.lr = 0.05
        x = rng.standard_normal((batch, 6)).astype(dtype)
        t = rng.standard_normal((batch, 3)).astype(dtype)
        compiled(x, t)
        eager(x, t)
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p.data, q.data, **tol(dtype))
        np.testing.assert_allclose(p.grad, q.grad, **tol(dtype))
    plan = compiled.plan_for(x, t)
    assert sum(1 for ins in plan.instrs if ins.op == GEMM and ins.flags & 4) == 3
    assert [len(ins.out.shape) for ins in plan.instrs if ins.op == SGD] == [1, 1, 1]  # biases
