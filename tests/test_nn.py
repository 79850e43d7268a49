"""fastgrad.nn: modules against NumPy by hand, losses against closed forms."""

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn as nn
import fastgrad.nn.functional as F

BACKENDS = fg.available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() with respect to the array a, changed in place."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


# ----------------------------------------------------------------------- Linear --


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_forward_matches_numpy(backend, dtype):
    layer = nn.Linear(5, 3, dtype=dtype, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(dtype)
    z = layer(x)
    W, b = layer.weight.data, layer.bias.data
    assert z.shape == (4, 3) and z.dtype == dtype
    np.testing.assert_allclose(z.data, x @ W.T + b, rtol=1e-12 if dtype == np.float64 else 1e-5)


def test_linear_init_like_pytorch():
    layer = nn.Linear(16, 8, rng=0)
    assert layer.weight.shape == (8, 16) and layer.bias.shape == (8,)
    assert layer.weight.requires_grad and layer.bias.requires_grad
    bound = 1 / np.sqrt(16)
    for p in layer.parameters():
        assert np.all(np.abs(p.data) <= bound)
    big = nn.Linear(400, 300, rng=1).weight.data
    assert abs(big.std() - 2 * bound / np.sqrt(12) / np.sqrt(400 / 16)) < 1e-3  # uniform's std
    np.testing.assert_array_equal(nn.Linear(16, 8, rng=0).weight.data, layer.weight.data)
    assert not np.array_equal(nn.Linear(16, 8, rng=1).weight.data, layer.weight.data)
    nn.manual_seed(5)
    a = nn.Linear(3, 2).weight.data.copy()
    nn.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 2).weight.data, a)


def test_linear_dtype_and_no_bias():
    layer = nn.Linear(3, 2, bias=False, dtype=np.float32, rng=0)
    assert layer.bias is None
    assert [p.dtype for p in layer.parameters()] == [np.float32]
    x = np.ones((2, 3))  # float64 input is cast to the layer's dtype
    z = layer(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.data, x @ layer.weight.data.T, rtol=1e-6)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(3, 2, dtype=np.int32)
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        nn.Linear(0, 2)


def test_linear_one_example_and_leading_axes(backend):
    layer = nn.Linear(4, 2, rng=0)
    W, b = layer.weight.data, layer.bias.data
    x1 = np.arange(4.0)
    np.testing.assert_allclose(layer(x1).data, W @ x1 + b)
    x3 = np.arange(24.0).reshape(2, 3, 4)
    z = layer(x3)
    assert z.shape == (2, 3, 2)
    np.testing.assert_allclose(z.data, x3 @ W.T + b)


def test_linear_shape_error_names_shapes():
    layer = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"input of shape \(3, 5\).*weight \(2, 4\)"):
        layer(np.ones((3, 5)))


def test_linear_gradients_match_finite_differences(backend):
    rng = np.random.default_rng(2)
    layer = nn.Linear(3, 4, rng=rng)
    x = fg.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    t = rng.standard_normal((5, 4))
    loss = nn.squared_error(layer(x), t)
    loss.backward()
    W, b, xd = layer.weight.data, layer.bias.data, x.data

    def f():
        return 0.5 * ((xd @ W.T + b - t) ** 2).sum() / 5

    for tensor, array in ((layer.weight, W), (layer.bias, b), (x, xd)):
        np.testing.assert_allclose(tensor.grad, numeric_grad(f, array), rtol=1e-6, atol=1e-8)


# -------------------------------------------------------------------------- MLP --


def test_mlp_structure():
    model = nn.MLP([64, 100, 50, 10], rng=0)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]  # linear output
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert model.num_parameters() == 64 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10
    assert [type(m).__name__ for m in nn.MLP([2, 3, 1], activation="relu")] == [
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert type(nn.MLP([2, 3, 1], activation=nn.Tanh)[1]) is nn.Tanh
    assert len(nn.MLP([2, 1])) == 1
    assert "Linear(in_features=64, out_features=100" in repr(model)


@pytest.mark.parametrize(
    "sizes,match", [([3], "at least"), ([3, 0, 2], "positive"), ([3, 2.5, 2], "positive")]
)
def test_mlp_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        nn.MLP(sizes)


def test_mlp_bad_activation():
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        nn.MLP([2, 2, 2], activation="softplus")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_backward_is_the_lectures(backend, dtype):
    """The hand-derived backward pass of the lecture's MLP with squared error."""
    rng = np.random.default_rng(3)
    model = nn.MLP([6, 5, 3], dtype=dtype, rng=rng)
    x = rng.standard_normal((4, 6)).astype(dtype)
    t = rng.standard_normal((4, 3)).astype(dtype)
    loss = nn.squared_error(model(x), t)
    loss.backward()
    W1, b1, W2, b2 = (p.data.astype(np.float64) for p in model.parameters())
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    z = x64 @ W1.T + b1  # z = W⁽¹⁾x + b⁽¹⁾
    h = sigmoid(z)  # h = σ(z)
    y = h @ W2.T + b2  # y = W⁽²⁾h + b⁽²⁾
    L = 0.5 * ((y - t64) ** 2).sum() / 4
    y_bar = (y - t64) / 4  # ȳ = y − t  (1/N for the batch mean)
    W2_bar = y_bar.T @ h  # W̄⁽²⁾ = ȳ hᵀ
    b2_bar = y_bar.sum(0)  # b̄⁽²⁾ = ȳ
    h_bar = y_bar @ W2  # h̄ = W⁽²⁾ᵀ ȳ
    z_bar = h_bar * h * (1 - h)  # z̄ = h̄ ∘ σ'(z)
    W1_bar = z_bar.T @ x64  # W̄⁽¹⁾ = z̄ xᵀ
    b1_bar = z_bar.sum(0)  # b̄⁽¹⁾ = z̄
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loss.item(), L, **tol)
    grads = [p.grad for p in model.parameters()]
    for got, want in zip(grads, (W1_bar, b1_bar, W2_bar, b2_bar), strict=True):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_activations_match_numpy(backend):
    z = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(nn.Sigmoid()(z).data, sigmoid(z), rtol=1e-12)
    np.testing.assert_allclose(nn.ReLU()(z).data, np.maximum(z, 0))
    np.testing.assert_allclose(nn.Tanh()(z).data, np.tanh(z), rtol=1e-12)


def test_backends_agree_on_a_training_step():
    from fastgrad import optim

    def run(name):
        rng = np.random.default_rng(4)
        model = nn.MLP([8, 16, 4], rng=rng)
        x, labels = rng.standard_normal((10, 8)), rng.integers(0, 4, 10)
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        with fg.use_backend(name):
            for _ in range(3):
                opt.zero_grad()
                nn.cross_entropy(model(x), labels).backward()
                opt.step()
        return [p.data for p in model.parameters()]

    for name in BACKENDS:
        for a, b in zip(run(name), run("reference"), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------- Module --


class Affine2(nn.Module):
    """A module with its own parameter, a submodule and a shared (tied) one."""

    def __init__(self):
        super().__init__()
        self.scale = fg.tensor(np.ones(3), requires_grad=True)
        self.inner = nn.Linear(3, 3, rng=0)
        self.again = self.inner  # the same submodule twice: its parameters count once
        self.constant = fg.tensor(np.ones(3))  # no requires_grad: not a parameter

    def forward(self, x):
        return self.inner(x) * self.scale


def test_module_registration_and_parameters():
    m = Affine2()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias"]
    assert len(list(m.parameters())) == 3
    assert [n for n, _ in m.named_modules()] == ["", "inner"]
    m.zero_grad()
    m(np.ones((2, 3))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_module_needs_super_init():
    class Broken(nn.Module):
        def __init__(self):
            self.w = fg.tensor(1.0, requires_grad=True)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_train_eval_flags():
    model = nn.MLP([2, 3, 1])
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_state_dict_round_trip(backend):
    a, b = nn.MLP([4, 6, 2], rng=0), nn.MLP([4, 6, 2], rng=1)
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert not np.allclose(a(x).data, b(x).data)
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    state["0.bias"][:] = 123.0  # a copy: changing it leaves the model alone
    assert not np.any(a[0].bias.data == 123.0)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert b[0].weight.data is not a[0].weight.data


def test_load_state_dict_errors():
    model = nn.MLP([4, 6, 2])
    state = model.state_dict()
    del state["2.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\].*unexpected keys \['extra'\]"):
        model.load_state_dict(state)
    model.load_state_dict(state, strict=False)
    bad = model.state_dict()
    bad["0.weight"] = np.zeros((6, 5))
    before = model[2].bias.data.copy()
    bad["2.bias"] = before + 1
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(6, 5\), the parameter \(6, 4\)"):
        model.load_state_dict(bad)
    np.testing.assert_array_equal(model[2].bias.data, before)  # nothing written


def test_save_and_load_npz(tmp_path):
    a, b = nn.MLP([4, 6, 2], dtype=np.float32, rng=0), nn.MLP([4, 6, 2], dtype=np.float32, rng=1)
    path = tmp_path / "model.npz"
    a.save(path)
    with np.load(path) as archive:
        assert sorted(archive.files) == sorted(a.state_dict())
    b.load(path)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
        assert q.dtype == np.float32
    nn.save(a, tmp_path / "again")  # np.savez adds the suffix
    nn.load(b, tmp_path / "again.npz")


def test_sequential():
    seq = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Tanh(), nn.Linear(3, 1, rng=1))
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    x = np.ones((4, 2))
    manual = seq[2](seq[1](seq[0](x)))
    np.testing.assert_array_equal(seq(x).data, manual.data)
    assert len(nn.Sequential([nn.ReLU(), nn.ReLU()])) == 2
    with pytest.raises(TypeError, match="must be Modules"):
        nn.Sequential(lambda x: x)


# ----------------------------------------------------------------------- losses --


def test_functional_reexports_the_losses():
    for name in ("squared_error", "cross_entropy", "binary_cross_entropy", "hinge", "l2_penalty"):
        assert getattr(F, name) is getattr(nn.losses, name) is getattr(nn, name)


def test_squared_error(backend):
    rng = np.random.default_rng(0)
    y = fg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    t = rng.standard_normal((4, 3))
    loss = nn.squared_error(y, t)
    np.testing.assert_allclose(loss.item(), 0.5 * ((y.data - t) ** 2).sum() / 4, rtol=1e-14)
    loss.backward()
    np.testing.assert_allclose(y.grad, (y.data - t) / 4, rtol=1e-14)  # ȳ = y − t
    labels = np.array([0, 2, 1, 2])
    np.testing.assert_allclose(
        nn.squared_error(y, labels).item(), nn.squared_error(y, np.eye(3)[labels]).item()
    )
    with pytest.raises(ValueError, match=r"y \(4, 3\) and t \(4, 1\)"):
        nn.squared_error(y, np.zeros((4, 1)))
    one = nn.squared_error(fg.tensor([1.0, 2.0]), np.array([0.0, 0.0]))  # N = 2 scalars
    assert one.item() == pytest.approx(0.5 * 5 / 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_integer_labels(backend, dtype):
    rng = np.random.default_rng(1)
    z = fg.tensor(rng.standard_normal((5, 4)), requires_grad=True, dtype=dtype)
    labels = np.array([0, 3, 1, 1, 2])
    loss = nn.cross_entropy(z, labels)
    z64 = z.data.astype(np.float64)
    expected = -log_softmax(z64)[np.arange(5), labels].mean()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(loss.item(), expected, rtol=tol)
    loss.backward()
    probs = np.exp(log_softmax(z64))
    np.testing.assert_allclose(z.grad, (probs - np.eye(4)[labels]) / 5, rtol=tol, atol=tol)
    assert z.grad.dtype == dtype


def test_cross_entropy_one_hot_and_soft_targets(backend):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 4))
    labels = np.array([1, 0, 3])
    np.testing.assert_allclose(
        nn.cross_entropy(z, np.eye(4)[labels]).item(), nn.cross_entropy(z, labels).item()
    )
    soft = rng.dirichlet(np.ones(4), size=3)
    np.testing.assert_allclose(
        nn.cross_entropy(z, soft).item(), -(soft * log_softmax(z)).sum() / 3, rtol=1e-12
    )
    single = nn.cross_entropy(z[0], np.int64(labels[0]))
    np.testing.assert_allclose(single.item(), -log_softmax(z[:1])[0, labels[0]], rtol=1e-12)


def test_cross_entropy_is_stable(backend):
    z = fg.tensor(np.array([[1000.0, 0.0, -1000.0], [-800.0, 800.0, 0.0]]), requires_grad=True)
    loss = nn.cross_entropy(z, np.array([0, 0]))
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), (0.0 + 1600.0) / 2)
    loss.backward()
    assert np.all(np.isfinite(z.grad))


def test_cross_entropy_errors():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"logits \(4, 3\) and integer labels \(5,\)"):
        nn.cross_entropy(z, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"labels\[3\] = 3 is not a class index in \[0, 3\)"):
        nn.cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"logits \(4, 3\) and labels \(4, 2\)"):
        nn.cross_entropy(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"logits must be \(N, K\)"):
        nn.cross_entropy(np.zeros((2, 3, 4)), np.zeros(2, dtype=int))


def test_binary_cross_entropy(backend):
    rng = np.random.default_rng(3)
    p = fg.tensor(rng.uniform(0.05, 0.95, size=(6,)), requires_grad=True)
    t = rng.integers(0, 2, 6).astype(float)
    loss = nn.binary_cross_entropy(p, t)
    pd = p.data
    np.testing.assert_allclose(
        loss.item(), -(t * np.log(pd) + (1 - t) * np.log(1 - pd)).mean(), rtol=1e-12
    )
    loss.backward()
    np.testing.assert_allclose(p.grad, (pd - t) / (pd * (1 - pd)) / 6, rtol=1e-10)
    edge = nn.binary_cross_entropy(fg.tensor([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(edge.item(), 100.0 / 3, rtol=1e-6)  # log floored at −100
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        nn.binary_cross_entropy(np.array([1.5, 0.5]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"p \(2,\) and t \(3,\)"):
        nn.binary_cross_entropy(np.array([0.5, 0.5]), np.zeros(3))


def test_binary_cross_entropy_of_sigmoid_matches_finite_differences(backend):
    rng = np.random.default_rng(4)
    z = fg.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    t = rng.integers(0, 2, (4, 2)).astype(float)
    nn.binary_cross_entropy(F.sigmoid(z), t).backward()
    zd = z.data

    def f():
        p = sigmoid(zd)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum() / 4

    np.testing.assert_allclose(z.grad, numeric_grad(f, zd), rtol=1e-6, atol=1e-9)


def test_hinge(backend):
    y = fg.tensor(np.array([2.0, 0.5, -0.3, -2.0]), requires_grad=True)
    t = np.array([1.0, 1.0, 1.0, -1.0])
    loss = nn.hinge(y, t)
    np.testing.assert_allclose(loss.item(), (0 + 0.5 + 1.3 + 0) / 4)
    loss.backward()
    np.testing.assert_allclose(y.grad, np.array([0.0, -1.0, -1.0, 0.0]) / 4)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        nn.hinge(y, np.array([1.0, 0.0, 1.0, 1.0]))


def test_l2_penalty(backend):
    w = fg.tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    b = fg.tensor(np.array([4.0]), requires_grad=True)
    r = nn.l2_penalty(w)
    assert r.item() == pytest.approx(0.5 * (1 + 4 + 9 + 0.25))
    both = nn.l2_penalty([w, b])
    assert both.item() == pytest.approx(r.item() + 8.0)
    both.backward()
    np.testing.assert_allclose(w.grad, w.data)  # dR/dw = w
    np.testing.assert_allclose(b.grad, b.data)
    model = nn.MLP([3, 2, 1], rng=0)
    expected = sum(0.5 * (p.data**2).sum() for p in model.parameters())
    assert nn.l2_penalty(model.parameters()).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="empty"):
        nn.l2_penalty([])


def test_regularized_loss_as_in_the_lecture(backend):
    """ℒ_reg = ℒ + λR:  w̄ = z̄ x + λ w  for the univariate logistic least squares model."""
    w = fg.tensor(np.array([[0.7]]), requires_grad=True)
    b = fg.tensor(np.array([-0.2]), requires_grad=True)
    x, t, lam = np.array([[1.5]]), np.array([[1.0]]), 0.1
    y = F.sigmoid(F.linear(x, w, b))
    (nn.squared_error(y, t) + lam * nn.l2_penalty(w)).backward()
    z = 0.7 * 1.5 - 0.2
    yv = sigmoid(z)
    z_bar = (yv - t[0, 0]) * yv * (1 - yv)
    np.testing.assert_allclose(w.grad[0, 0], z_bar * 1.5 + lam * 0.7, rtol=1e-12)
    np.testing.assert_allclose(b.grad[0], z_bar, rtol=1e-12)


def test_load_state_dict_while_a_graph_holds_the_parameters():
    model = nn.MLP([3, 2], rng=0)
    x = np.ones((1, 3))
    before = model(x).data.copy()
    stale = model(x).sum()  # saved the weights; not backwarded
    model.load_state_dict({k: v + 1 for k, v in model.state_dict().items()})
    np.testing.assert_allclose(model(x).data, before + 4)  # three weights + bias, each +1
    with pytest.raises(RuntimeError, match="modified in place"):
        stale.backward()
