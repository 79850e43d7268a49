"""The lecture's worked examples (examples/lecture.py) against their closed forms."""

import importlib.util
import pathlib

import numpy as np
import pytest

import fastgrad as fg

_path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lecture.py"
_spec = importlib.util.spec_from_file_location("lecture", _path)
lecture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lecture)


@pytest.fixture(params=fg.available_backends())
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("lam", [0.0, 0.1])
@pytest.mark.parametrize("w,b,x,t", [(0.5, -0.2, 1.3, 1.0), (-2.0, 0.3, 0.4, 0.0)])
def test_logistic_least_squares(backend, w, b, x, t, lam):
    got = lecture.logistic_least_squares(w, b, x, t, lam)
    want = lecture.logistic_least_squares_closed_form(w, b, x, t, lam)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("t", [0.7, -1.3, 2.0])
def test_multivariate_chain_rule(t):
    assert lecture.chain_rule(t) == pytest.approx(lecture.chain_rule_closed_form(t), rel=1e-12)


def _mlp_case(seed):
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal(3), rng.standard_normal(2)
    return x, rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((2, 4)), \
        rng.standard_normal(2), t


@pytest.mark.parametrize("seed", [0, 1])
def test_mlp_scalar_and_vectorized_forms(backend, seed):
    case = _mlp_case(seed)
    want = lecture.mlp_closed_form(*case)
    for got in (lecture.mlp_scalar(*case), lecture.mlp_vectorized(*case)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("label", [0, 2])
def test_multiclass_logistic_regression(backend, label):
    rng = np.random.default_rng(label)
    W, b, x = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal(4)
    got = lecture.multiclass_logistic(x, W, b, label)
    want = lecture.multiclass_logistic_closed_form(x, W, b, label)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-14)


def test_issue_example_runs():
    w = fg.tensor(0.5, requires_grad=True)
    b = fg.tensor(-0.2, requires_grad=True)
    x, t = 1.3, 1.0
    z = w * x + b
    y = fg.nn.functional.sigmoid(z)
    L = 0.5 * (y - t) ** 2 + 0.1 * 0.5 * w**2
    L.backward()
    np.testing.assert_allclose((w.grad, b.grad), lecture.logistic_least_squares_closed_form(lam=0.1))
