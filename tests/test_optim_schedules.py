"""optim.AdamW and optim.lr_scheduler against PyTorch's formulas by hand (and torch if installed)."""

import math

import numpy as np
import pytest
from fastgrad.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

import fastgrad as fg
from fastgrad import nn, optim

BACKENDS = fg.available_backends()
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-6)}


class Param:
    """A stand-in parameter: just .data and .grad, as the optimizers need."""

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = None


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


# -- AdamW ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_matches_pytorch_formula(backend, dtype, weight_decay):
    # torch.optim.AdamW's documented algorithm: θ ← θ − γλθ; then Adam on g alone.
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 3)).astype(dtype)
    p = Param(w)
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    opt = optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)
    e = w.astype(np.float64)
    m = np.zeros_like(e)
    v = np.zeros_like(e)
    for t in range(1, 7):
        g = rng.standard_normal(w.shape).astype(dtype)
        p.grad = g
        opt.step()
        e = e - lr * weight_decay * e
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g.astype(np.float64) ** 2
        e = e - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, e, **TOL[dtype])


def test_adamw_differs_from_adam_with_l2():
    # The point of AdamW: decay is not divided by √v̂. With a large gradient scale the two
    # differ; with no decay they are the same optimizer.
    g = np.full(3, 100.0)
    a, b, c, d = (Param(np.ones(3)) for _ in range(4))
    adamw = optim.AdamW([a], lr=0.1, weight_decay=0.5)
    adam = optim.Adam([b], lr=0.1, weight_decay=0.5)
    plain_w = optim.AdamW([c], lr=0.1, weight_decay=0.0)
    plain = optim.Adam([d], lr=0.1)
    for p in (a, b, c, d):
        p.grad = g
    for opt in (adamw, adam, plain_w, plain):
        opt.step()
    np.testing.assert_allclose(a.data, 1 - 0.1 * 0.5 - 0.1, rtol=1e-7)  # decay, then −η
    assert not np.allclose(a.data, b.data)
    np.testing.assert_array_equal(c.data, d.data)


def test_adamw_default_weight_decay_is_pytorchs():
    opt = optim.AdamW([Param(np.ones(2))])
    assert (opt.lr, opt.betas, opt.eps, opt.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 1e-2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-1.0), "AdamW: lr must be a finite number >= 0"),
        (dict(weight_decay=-0.1), "AdamW: weight_decay"),
        (dict(betas=(1.0, 0.9)), r"AdamW: betas\[0\] must be < 1.0"),
    ],
)
def test_adamw_bad_hyperparameters_name_adamw(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.AdamW([Param(np.ones(2))], **kwargs)


def test_adamw_trains_a_tensor_model(backend):
    model = nn.MLP([4, 8, 3], dtype=np.float64, rng=0)
    opt = optim.AdamW(model.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4))
    y = np.argmax(x[:, :3], axis=1)  # learnable labels
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_adamw_refuses_to_be_compiled_with_decay():
    w = fg.tensor(np.ones(3), requires_grad=True)
    opt = optim.AdamW([w], lr=0.1, weight_decay=0.1)

    @fg.compile
    def step(x):
        opt.zero_grad()
        loss = (w * x).sum()
        loss.backward()
        opt.step()
        return loss

    with pytest.raises(fg.TracingError, match="AdamW's decoupled weight decay"):
        step(np.ones(3))


def test_adamw_without_decay_compiles_as_adam():
    x = np.arange(3.0)
    results = []
    for compiled in (False, True):
        w = fg.tensor(np.ones(3), requires_grad=True)
        opt = optim.AdamW([w], lr=0.1, weight_decay=0.0)

        def step(x, w=w, opt=opt):
            opt.zero_grad()
            loss = ((w * x) ** 2).sum()
            loss.backward()
            opt.step()
            return loss

        run = fg.compile(step) if compiled else step
        for _ in range(4):
            run(x)
        results.append(w.data.copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_adamw_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((4, 3))
    p, t = Param(w0), torch.tensor(w0, requires_grad=True)
    opt = optim.AdamW([p], lr=0.01, betas=(0.8, 0.9), weight_decay=0.05)
    topt = torch.optim.AdamW([t], lr=0.01, betas=(0.8, 0.9), weight_decay=0.05)
    for _ in range(5):
        g = rng.standard_normal(w0.shape)
        p.grad, t.grad = g, torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)


# -- learning-rate schedulers -----------------------------------------------------------


def _rates(scheduler, epochs):
    rates = [scheduler.optimizer.lr]
    for _ in range(epochs):
        scheduler.step()
        rates.append(scheduler.optimizer.lr)
    return rates


def test_step_lr_formula():
    opt = optim.SGD([Param(np.ones(2))], lr=0.1)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.1]
    want = [0.1 * 0.5 ** (e // 3) for e in range(10)]
    np.testing.assert_allclose(_rates(sched, 9), want, rtol=1e-15)
    assert sched.get_last_lr() == [opt.lr]


def test_cosine_formula():
    opt = optim.Adam([Param(np.ones(2))], lr=0.2)
    sched = CosineAnnealingLR(opt, T_max=5, eta_min=0.01)
    rates = _rates(sched, 12)
    want = [0.01 + (0.2 - 0.01) * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(13)]
    np.testing.assert_allclose(rates, want, rtol=1e-14)
    assert rates[0] == 0.2 and rates[5] == pytest.approx(0.01)


def test_schedulers_against_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in (
        (lambda o: StepLR(o, 2, gamma=0.3), lambda o: torch.optim.lr_scheduler.StepLR(o, 2, gamma=0.3)),
        (
            lambda o: CosineAnnealingLR(o, T_max=4, eta_min=0.001),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.001),
        ),
    ):
        opt = optim.SGD([Param(np.ones(2))], lr=0.1, momentum=0.9)
        topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
        sched, tsched = ours(opt), theirs(topt)
        for _ in range(11):
            assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
            topt.step()  # torch warns when the scheduler steps before the optimizer
            sched.step()
            tsched.step()


def test_scheduled_rate_reaches_the_update():
    p = Param(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = np.ones(1)
        opt.step()
        sched.step()
    np.testing.assert_allclose(p.data, [-(1.0 + 0.5 + 0.25)])


def test_scheduler_state_round_trip():
    opt = optim.SGD([Param(np.ones(2))], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    opt2 = optim.SGD([Param(np.ones(2))], lr=0.1)
    sched2 = CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(state)
    sched.step()
    sched2.step()
    assert opt2.lr == opt.lr and sched2.last_epoch == 5


def test_scheduler_bad_arguments():
    opt = optim.SGD([Param(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="StepLR: step_size must be an int >= 1, got 0"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be an int >= 1"):
        CosineAnnealingLR(opt, T_max=2.5)
    with pytest.raises(TypeError, match="StepLR: optimizer must be a fastgrad.optim optimizer"):
        StepLR(object(), step_size=2)
    with pytest.raises(KeyError, match="no initial_lr"):
        StepLR(optim.SGD([Param(np.ones(2))], lr=0.1), step_size=2, last_epoch=3)
    with pytest.raises(NotImplementedError, match="lr_at"):
        LRScheduler(opt)


def test_lr_scheduler_is_importable_as_in_pytorch():
    import importlib

    module = importlib.import_module("fastgrad.optim.lr_scheduler")
    assert module.StepLR is StepLR and optim.lr_scheduler is module


# -- Dropout ---------------------------------------------------------------------------


def test_dropout_is_inverted_and_the_identity_in_eval():
    x = np.ones((200, 50))
    layer = nn.Dropout(0.25, rng=0)
    h = layer(fg.tensor(x)).data
    kept = h != 0
    np.testing.assert_allclose(h[kept], 1 / 0.75)  # survivors scaled by 1/(1 − p)
    assert abs(kept.mean() - 0.75) < 0.01  # about 1 − p survive
    model = nn.Sequential(layer)
    assert model.eval() is model and not layer.training
    t = fg.tensor(x)
    assert model(t) is t  # eval: identity, nothing recorded
    model.train()
    assert layer.training and not np.array_equal(model(t).data, x)


def test_dropout_masks_are_fresh_each_call_and_repeatable_from_a_seed():
    x = fg.tensor(np.ones((4, 6)))
    layer = nn.Dropout(0.5, rng=1)
    a, b = layer(x).data, layer(x).data
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(nn.Dropout(0.5, rng=1)(x).data, a)


def test_dropout_gradient_by_finite_differences():
    # The mask is a constant of the recorded multiply: x̄ = h̄ ∘ m / (1 − p). A fresh layer
    # with the same seed per call gives the same mask, so central differences apply.
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    w = rng.standard_normal((3, 5))

    def f(x):
        return (nn.Dropout(0.4, rng=11)(x) * w).sum()

    assert fg.gradcheck(lambda x: f(x).reshape(1), (x,))
    f(x).backward()
    mask = nn.Dropout(0.4, rng=11)(fg.tensor(np.ones((3, 5)))).data
    np.testing.assert_allclose(x.grad, w * mask, rtol=1e-12)


def test_dropout_extremes_and_dtype():
    x = fg.tensor(np.full((2, 3), 2.0, dtype=np.float32))
    assert nn.Dropout(0.0)(x) is x
    zero = nn.Dropout(1.0, rng=0)(x)
    assert zero.dtype == np.float32 and not zero.data.any()
    half = nn.Dropout(0.5, rng=0)(x)
    assert half.dtype == np.float32 and set(np.unique(half.data)) <= {0.0, 4.0}
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match="Dropout: p must be a number"):
        nn.Dropout("0.5")


def test_dropout_in_an_mlp_trains_and_compile_refuses_training_mode():
    model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.Sigmoid(), nn.Dropout(0.2, rng=0), nn.Linear(8, 2, rng=1))
    x = np.random.default_rng(0).standard_normal((10, 4))
    loss = nn.cross_entropy(model(x), np.arange(10) % 2)
    loss.backward()
    assert model[0].weight.grad is not None

    @fg.compile
    def forward(x):
        return model(x).sum()

    with pytest.raises(fg.TracingError, match="Dropout in training mode"):
        forward(x)
    model.eval()
    want = model(x).sum().item()
    assert float(np.asarray(forward(x))) == pytest.approx(want, rel=1e-12)
