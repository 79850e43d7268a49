"""Numerical trouble (issue 7, part 5): ``fg.detect_anomaly()`` stops at the first NaN or
inf of the forward or backward pass, naming the primitive and the user's file and line;
sigmoid, softmax, log_softmax and cross-entropy stay finite for inputs of ±1000.
"""

import os
import sys
import warnings

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.numpy as fnp
from fastgrad import nn

F = nn.functional
THIS_FILE = os.path.basename(__file__)
BACKEND_NAMES = fg.available_backends()


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    with fg.use_backend(request.param), np.errstate(all="ignore"):
        yield request.param


def _line_of(marker):
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise AssertionError(marker)


# ------------------------------------------------------------------ the forward --


def test_forward_nan_names_the_primitive_and_the_line(backend):
    x = fg.tensor(np.array([1.0, -1.0]), requires_grad=True)
    with pytest.raises(fg.AnomalyError) as info, fg.detect_anomaly():
        y = x * 2.0
        fg.sqrt(y)  # MARK-forward-sqrt
    message = str(info.value)
    assert "'sqrt'" in message and "nan" in message and "forward" in message
    assert f"{THIS_FILE}:{_line_of('MARK-forward-sqrt')}" in message
    assert "fg.sqrt(y)" in message  # the source line is quoted
    assert "from finite inputs" in message


def test_anomaly_error_is_a_floating_point_and_a_runtime_error():
    assert issubclass(fg.AnomalyError, FloatingPointError)
    assert issubclass(fg.AnomalyError, RuntimeError)


@pytest.mark.parametrize(
    "make, name, kind",
    [
        (lambda x: fg.log(x - 1.0), "log", "-inf"),
        (lambda x: x / (x - 1.0), "true_divide", "inf"),
        (lambda x: fg.exp(x * 1000.0), "exp", "inf"),
        (lambda x: (x - 2.0) ** 0.5, "power", "nan"),
        (lambda x: fg.log(-x), "log", "nan"),
    ],
)
def test_forward_catches_each_kind(backend, make, name, kind):
    x = fg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(fg.AnomalyError, match=f"'{name}' produced {kind}"), fg.detect_anomaly():
        make(x)


def test_non_finite_input_is_reported_as_such(backend):
    x = fg.tensor(np.array([np.nan, 1.0]), requires_grad=True)
    with pytest.raises(fg.AnomalyError, match="non-finite input"), fg.detect_anomaly():
        x * 2.0


def test_outside_the_block_nothing_is_checked(backend):
    x = fg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with fg.detect_anomaly():
        pass
    y = fg.log(x)  # -inf, silently as NumPy
    assert np.isneginf(y.data[0])
    assert not fg.is_anomaly_enabled()


def test_nesting_and_decorator(backend):
    x = fg.tensor(np.array([0.0]), requires_grad=True)

    @fg.detect_anomaly()
    def f(v):
        return fg.log(v)

    with fg.detect_anomaly():
        with fg.detect_anomaly():
            assert fg.is_anomaly_enabled()
        assert fg.is_anomaly_enabled()  # still on after the inner block
        with pytest.raises(fg.AnomalyError):
            fg.log(x)
    assert not fg.is_anomaly_enabled()
    with pytest.raises(fg.AnomalyError):
        f(x)
    assert not fg.is_anomaly_enabled()


def test_state_is_restored_after_an_exception(backend):
    x = fg.tensor(np.array([0.0]), requires_grad=True)
    with pytest.raises(fg.AnomalyError):
        with fg.detect_anomaly():
            fg.log(x)
    assert not fg.is_anomaly_enabled()
    from fastgrad import _tape

    assert _tape._anomaly is None  # the hot path is back to one global read


# ----------------------------------------------------------------- the backward --


def test_backward_nan_names_the_primitive_and_where_it_was_recorded(backend):
    x = fg.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with pytest.raises(fg.AnomalyError) as info, fg.detect_anomaly():
        y = fg.sqrt(x)  # MARK-backward-sqrt: finite forward, inf derivative at 0
        loss = y.sum()
        loss.backward()
    message = str(info.value)
    assert "backward of 'sqrt'" in message and "inf" in message
    assert f"{THIS_FILE}:{_line_of('MARK-backward-sqrt')}" in message


def test_backward_nan_from_zero_times_inf(backend):
    # |x| at 0 with an infinite upstream signal: 0 · inf = nan in the backward only.
    x = fg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(fg.AnomalyError, match="backward of"), fg.detect_anomaly():
        y = fg.sqrt(x - 1.0)  # MARK-backward-2
        (y * 3.0).sum().backward()


def test_backward_through_the_compiled_kernels(backend):
    W = fg.tensor(np.ones((2, 3)), requires_grad=True)
    b = fg.tensor(np.zeros(2), requires_grad=True)
    x = fg.tensor(np.array([[1.0, np.inf, 0.0]]))
    with pytest.raises(fg.AnomalyError, match="linear"), fg.detect_anomaly():
        F.linear(x, W, b)


def test_graph_recorded_outside_is_checked_at_backward_without_a_site(backend):
    x = fg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    loss = fg.sqrt(x).sum()
    with pytest.raises(fg.AnomalyError, match="unknown place"), fg.detect_anomaly():
        loss.backward()


def test_functional_face_under_anomaly_mode(backend):
    with pytest.raises(fg.AnomalyError, match="backward of 'sqrt'"), fg.detect_anomaly():
        fg.grad(lambda v: fnp.sum(fnp.sqrt(v)))(np.array([0.0, 1.0]))
    with pytest.raises(fg.AnomalyError), fg.detect_anomaly():
        fg.grad(fg.grad(lambda v: fnp.sqrt(v)))(0.0)


def test_clean_training_runs_unchanged_under_anomaly_mode(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5))
    labels = rng.integers(0, 3, 8)

    def run():
        model = nn.MLP([5, 7, 3], rng=0)
        opt = fg.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()
        return [p.data.copy() for p in model.parameters()]

    import fastgrad.optim  # noqa: F401

    plain = run()
    with fg.detect_anomaly():
        checked = run()
    for a, b in zip(plain, checked, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------- stability for inputs of ±1000 --

BIG = np.array([[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1000.0, -999.0, -1000.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_stable_at_1000(backend, dtype):
    z = fg.tensor(BIG, requires_grad=True, dtype=dtype)
    with fg.detect_anomaly(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        h = F.sigmoid(z)
        h.sum().backward()
    expected = np.where(BIG > 0, 1.0, 0.0)
    expected[BIG == 0] = 0.5
    np.testing.assert_allclose(h.data, expected, atol=1e-30)
    assert np.all(np.isfinite(z.grad)) and np.all(z.grad >= 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_and_log_softmax_are_stable_at_1000(backend, dtype):
    z = fg.tensor(BIG, requires_grad=True, dtype=dtype)
    with fg.detect_anomaly(), warnings.catch_warnings():
        warnings.simplefilter("error")
        p = F.softmax(z)
        lp = F.log_softmax(z)
        (p * np.arange(4.0)).sum().backward()
        g1 = z.grad.copy()
        z.grad = None
        (lp * np.arange(4.0)).sum().backward()
    shifted = BIG - BIG.max(axis=1, keepdims=True)
    ref_p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p.data, ref_p, rtol=tol, atol=tol)
    np.testing.assert_allclose(
        lp.data, shifted - np.log(np.exp(shifted).sum(1, keepdims=True)), rtol=tol, atol=tol * 1000
    )
    assert np.isfinite(g1).all() and np.isfinite(z.grad).all()
    np.testing.assert_allclose(p.data.sum(axis=1), 1.0, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("labels", [np.array([1, 0]), np.array([0, 2])], ids=["wrong", "right"])
def test_cross_entropy_is_stable_at_1000(backend, dtype, labels):
    z = fg.tensor(BIG, requires_grad=True, dtype=dtype)
    with fg.detect_anomaly(), warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(z, labels)
        loss.backward()
    shifted = BIG - BIG.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = -logp[np.arange(2), labels].mean()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    p = np.exp(logp)
    p[np.arange(2), labels] -= 1
    np.testing.assert_allclose(z.grad, p / 2, atol=1e-6)
    # one-hot targets take the same path
    z.grad = None
    loss2 = F.cross_entropy(z, np.eye(4)[labels])
    np.testing.assert_allclose(float(loss2), expected, rtol=1e-5)


@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
def test_fused_softmax_cross_entropy_kernel_is_stable_at_1000(backend_name):
    import importlib

    module = importlib.import_module(
        "fastgrad.backends.reference"
        if backend_name == "reference"
        else "fastgrad.backends._cykernels"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, probs = module.softmax_cross_entropy_forward(BIG.copy(), np.array([1, 0]))
        dz = module.softmax_cross_entropy_backward(probs, np.array([1, 0]))
    assert np.isfinite(loss) and np.isfinite(probs).all() and np.isfinite(dz).all()
    shifted = BIG - BIG.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -logp[[0, 1], [1, 0]].mean(), rtol=1e-12)


def test_binary_cross_entropy_of_saturated_sigmoid_is_finite(backend):
    z = fg.tensor(np.array([1000.0, -1000.0]), requires_grad=True)
    with fg.detect_anomaly():
        loss = F.binary_cross_entropy(F.sigmoid(z), np.array([0.0, 1.0]))
        loss.backward()
    assert np.isfinite(float(loss)) and np.isfinite(z.grad).all()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
