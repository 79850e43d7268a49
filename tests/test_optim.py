"""fastgrad.optim: SGD and Adam against hand-written NumPy of the standard formulas."""

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import optim

BACKENDS = fg.available_backends()
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-6)}


class Param:
    """A stand-in parameter: just .data and .grad, as the optimizers need."""

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = None


def _grads(rng, shape, steps, dtype):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


def _sgd_steps_match_formula(params, start, rng, dtype, momentum, weight_decay, steps):
    """Step an SGD(lr=0.1) over ``params`` with random gradients; after each step every
    parameter must equal the formula in float64: d = g + λw, v = μv + d, w −= 0.1 v."""
    opt = optim.SGD(params, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    expected = [w.astype(np.float64) for w in start]
    velocity = [np.zeros_like(e) for e in expected]
    for _step in range(steps):
        grads = [rng.standard_normal(e.shape).astype(dtype) for e in expected]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        for k, g in enumerate(grads):
            d = g + weight_decay * expected[k]
            if momentum:
                velocity[k] = momentum * velocity[k] + d
                d = velocity[k]
            expected[k] = expected[k] - 0.1 * d
        for p, e in zip(params, expected, strict=True):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, e, **TOL[dtype])


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01)])
def test_sgd_matches_formula(backend, dtype, momentum, weight_decay):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)]
    _sgd_steps_match_formula([Param(w) for w in start], start, rng, dtype, momentum, weight_decay, 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_matches_formula(backend, dtype, weight_decay):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3)).astype(dtype)
    p = Param(w)
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)
    e = w.astype(np.float64)
    m = np.zeros_like(e)
    v = np.zeros_like(e)
    for t, g in enumerate(_grads(rng, w.shape, 6, dtype), start=1):
        p.grad = g
        opt.step()
        g = g + weight_decay * e
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        e = e - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(p.data, e, **TOL[dtype])
    assert opt.state[0]["step"] == 6


def test_non_contiguous_parameter_uses_the_numpy_path(backend):
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    p = Param(base)
    p.data = base.T  # a strided view: no kernel needs to accept it
    expected = base.T.copy()
    p.grad = np.ones((4, 3))
    optim.SGD([p], lr=0.5, momentum=0.9).step()
    expected -= 0.5
    np.testing.assert_array_equal(base.T, expected)  # written through the view
    optim.Adam([p], lr=0.5).step()  # first Adam step: W − η g/(|g| + ε) = W − η
    np.testing.assert_allclose(base.T, expected - 0.5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.01)])
@pytest.mark.parametrize("strided", [False, True])
def test_sgd_on_tensors_matches_formula(backend, dtype, momentum, weight_decay, strided):
    # Tensors right after a backward take one kernel call for all (sgd_update_many); a
    # strided parameter among them sends every one to its own path. Same numbers either way.
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(s).astype(dtype) for s in [(4, 6), (4,), (3, 4), (3,)]]
    params = [fg.tensor(w, requires_grad=True) for w in start]
    if strided:
        params[2] = fg.from_numpy(np.ascontiguousarray(start[2].T).T)  # a transposed view
        params[2].requires_grad = True
    _sgd_steps_match_formula(params, start, rng, dtype, momentum, weight_decay, 3)


def test_parameters_without_grad_are_skipped():
    a, b = Param(np.ones(3)), Param(np.ones(2))
    a.grad = np.ones(3)
    optim.SGD([a, b], lr=1.0).step()
    np.testing.assert_array_equal(a.data, 0.0)
    np.testing.assert_array_equal(b.data, 1.0)


def test_update_is_in_place():
    p = Param(np.ones(3))
    view = p.data
    p.grad = np.ones(3)
    optim.SGD([p], lr=0.25).step()
    assert p.data is view
    np.testing.assert_array_equal(view, 0.75)


def test_zero_grad():
    a, b = Param(np.ones(3)), Param(np.ones(2))
    a.grad, b.grad = np.ones(3), np.ones(2)
    opt = optim.SGD([a, b], lr=1.0)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, 0.0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_lr_can_change_between_steps():
    p = Param(np.zeros(2))
    opt = optim.SGD([p], lr=1.0)
    p.grad = np.ones(2)
    opt.step()
    opt.lr = 0.5
    opt.step()
    np.testing.assert_array_equal(p.data, -1.5)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda ps: optim.SGD(ps, lr=-0.1), "lr must be a finite number >= 0"),
        (lambda ps: optim.SGD(ps, lr=float("nan")), "lr"),
        (lambda ps: optim.SGD(ps, lr=0.1, momentum=-1), "momentum"),
        (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay"),
        (lambda ps: optim.Adam(ps, lr=-1), "lr"),
        (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), r"betas\[1\] must be < 1"),
        (lambda ps: optim.Adam(ps, betas=(-0.1, 0.9)), r"betas\[0\]"),
        (lambda ps: optim.Adam(ps, betas=0.9), "pair"),
        (lambda ps: optim.Adam(ps, eps=-1e-8), "eps"),
        (lambda ps: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda ps: optim.SGD(ps + ps, lr=0.1), "appears more than once"),
    ],
)
def test_bad_hyperparameters_are_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make([Param(np.ones(2))])


def test_bad_parameters_are_type_errors():
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.SGD(Param(np.ones(2)), lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 must be a tensor"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        optim.SGD([Param(np.ones(2, dtype=np.int64))], lr=0.1)
    with pytest.raises(TypeError, match="lr must be a number"):
        optim.SGD([Param(np.ones(2))], lr="0.1")


def test_gradient_of_the_wrong_shape():
    p = Param(np.ones((2, 3)))
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) but its gradient has shape \(3,\)"):
        optim.SGD([p], lr=0.1).step()


def test_non_leaf_tensor_refused():
    w = fg.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="not a leaf"):
        optim.SGD([w * 2.0], lr=0.1)


# ------------------------------------------------------------ with real tensors --


def test_sgd_minimizes_a_quadratic(backend):
    target = np.array([1.0, -2.0, 3.0])
    w = fg.tensor(np.zeros(3), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(400):
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.data, target, atol=1e-6)


def test_adam_minimizes_a_quadratic(backend):
    target = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    w = fg.tensor(np.zeros((2, 2)), requires_grad=True, dtype=np.float32)
    opt = optim.Adam([w], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        opt.step()
    assert w.data.dtype == np.float32
    np.testing.assert_allclose(w.data, target, atol=1e-3)


def test_step_after_backward_updates_the_tensor():
    w = fg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (w * w).sum().backward()  # w̄ = 2w
    optim.SGD([w], lr=0.25).step()
    np.testing.assert_allclose(w.data, [0.5, 1.0])


def test_a_graph_recorded_before_a_step_refuses_to_backward():
    # As in PyTorch: the step writes, the stale graph then reports the in-place change.
    w = fg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (w * w).sum().backward()
    stale = (w * w * w).sum()  # saves w; not yet backwarded
    optim.SGD([w], lr=0.25).step()
    np.testing.assert_allclose(w.data, [0.5, 1.0])
    with pytest.raises(RuntimeError, match="modified in place"):
        stale.backward()


def test_read_only_array_not_owned_by_a_graph():
    a = np.ones(2)
    a.flags.writeable = False
    p = Param(a)
    p.data = a
    p.grad = np.ones(2)
    with pytest.raises(RuntimeError, match="read-only"):
        optim.SGD([p], lr=0.1).step()


def test_optimizer_state_dict_round_trip():
    rng = np.random.default_rng(3)
    grads = _grads(rng, (4,), 6, np.float64)
    a, b = Param(np.ones(4)), Param(np.ones(4))
    opt_a = optim.Adam([a], lr=0.1)
    for g in grads[:3]:
        a.grad = g
        opt_a.step()
    b.data[...] = a.data
    opt_b = optim.Adam([b], lr=0.5)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.lr == 0.1
    for g in grads[3:]:
        a.grad = g
        b.grad = g
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a.data, b.data)


def test_backends_agree(backend):
    rng = np.random.default_rng(5)
    grads = _grads(rng, (3, 3), 5, np.float64)

    def run(name):
        p, q = Param(np.ones((3, 3))), Param(np.ones((3, 3)))
        sgd = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
        adam = optim.Adam([q], lr=0.1, weight_decay=0.01)
        with fg.use_backend(name):
            for g in grads:
                p.grad, q.grad = g, g
                sgd.step()
                adam.step()
        return p.data, q.data

    for x, y in zip(run(backend), run("reference"), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-10)


# ------------------------------------------------------------------ vs PyTorch --


def test_against_torch_optim():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((4, 3))
    grads = _grads(rng, w0.shape, 5, np.float64)
    cases = [
        (
            lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
            lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        ),
        (
            lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), weight_decay=0.01),
            lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), weight_decay=0.01),
        ),
    ]
    for ours, theirs in cases:
        p = Param(w0)
        t = torch.tensor(w0, requires_grad=True)
        opt, topt = ours([p]), theirs([t])
        for g in grads:
            p.grad = g
            t.grad = torch.tensor(g)
            opt.step()
            topt.step()
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)
