"""The Tensor face and the tape: SPEC §3, behaviour by behaviour."""

import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.extend  # noqa: F401  (fg.extend)


def test_tensor_copies_and_from_numpy_shares():
    a = np.arange(3.0)
    t = fg.tensor(a)
    a[0] = 7.0
    assert t.data[0] == 0.0
    s = fg.from_numpy(a)
    a[1] = 9.0
    assert s.data[1] == 9.0 and s.data is a


@pytest.mark.parametrize("data,dtype", [([1, 2], np.float64), ([True, False], np.float64),
                                        (np.ones(2, np.float32), np.float32),
                                        (np.ones(2, np.int32), np.float64), (3.5, np.float64)])
def test_dtypes_kept_or_promoted(data, dtype):
    assert fg.tensor(data).dtype == dtype


def test_float16_and_complex_refused():
    with pytest.raises(TypeError, match="float16"):
        fg.tensor(np.ones(2, np.float16))
    with pytest.raises(TypeError, match="complex"):
        fg.tensor(np.ones(2, complex))
    with pytest.raises(TypeError, match="float32 or float64"):
        fg.tensor([1.0], dtype=np.int64)


def test_attributes():
    t = fg.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    assert (t.shape, t.ndim, t.size, t.dtype) == ((2, 3), 2, 6, np.float32)
    assert t.is_leaf and t.requires_grad and t.grad is None
    assert t.T.shape == (3, 2) and not t.T.is_leaf
    assert np.asarray(t).shape == (2, 3)
    assert fg.tensor(2.5).item() == 2.5
    assert "requires_grad=True" in repr(t)


def test_grad_shape_and_dtype_match_data_float32():
    W = fg.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    x = np.ones((4, 2))  # a float64 constant meets a float32 parameter
    (fg.tensor(x, dtype=np.float32) @ W.T).sum().backward()
    assert W.grad.shape == (3, 2) and W.grad.dtype == np.float32
    np.testing.assert_allclose(W.grad, 4.0)


def test_fan_out_sums():
    x = fg.tensor(3.0, requires_grad=True)
    y = x * x + x  # x feeds three uses
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_operators_with_scalars_and_arrays_on_either_side():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    a = np.array([3.0, 4.0])
    y = (2.0 * x + a) / x - 1.0 + a * x - x ** 2 + 2.0 ** x
    assert isinstance(a * x, fg.Tensor) and isinstance(a @ x, fg.Tensor)
    y.sum().backward()
    xs = np.array([1.0, 2.0])
    expected = -a / xs**2 + a - 2 * xs + np.log(2) * 2.0**xs
    np.testing.assert_allclose(x.grad, expected)


def test_comparisons_are_plain_boolean_arrays():
    x = fg.tensor([1.0, -2.0], requires_grad=True)
    m = x > 0
    assert type(m) is np.ndarray and m.dtype == bool
    assert bool(fg.tensor(2.0) > 1)
    y = fg.where(x > 0, x, 0.0 * x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0])


def test_leaf_gradients_accumulate_until_reset():
    w = fg.tensor(2.0, requires_grad=True)
    for _ in range(3):
        (w * 5.0).backward()
    assert w.grad == pytest.approx(15.0)
    w.grad = None
    (w * 5.0).backward()
    assert w.grad == pytest.approx(5.0)


def test_backward_needs_grad_for_non_scalar():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match=r"shape \(2,\)"):
        y.backward()
    with pytest.raises(RuntimeError, match="must match"):
        y.backward(np.ones(3))
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 30.0])
    one = (x * 2)[0:1]  # one element, shape (1,)
    one.backward()


def test_backward_on_untracked_tensor_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        fg.tensor(1.0).backward()


def test_second_backward_needs_retain_graph():
    x = fg.tensor(2.0, requires_grad=True)
    y = fg.exp(x) * x
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * (np.exp(2) * 3))
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_intermediates_are_freed_after_backward_while_loss_is_kept():
    x = fg.tensor(np.ones(1000), requires_grad=True)
    h = fg.exp(x)
    probe = weakref.ref(h)
    loss = (h * 2.0).sum()
    del h
    assert probe() is not None  # the graph holds the intermediate
    loss.backward()
    assert probe() is None  # freed by the backward, without gc
    assert loss.item() == pytest.approx(2000 * np.e)


def test_graph_freed_without_gc_when_dropped():
    gc.disable()
    try:
        x = fg.tensor(np.ones(10), requires_grad=True)
        h = fg.sin(x)
        probe = weakref.ref(h)
        loss = (h * h).sum()
        del h, loss
        assert probe() is None  # no reference cycles
    finally:
        gc.enable()


def test_no_grad_records_nothing():
    x = fg.tensor(1.0, requires_grad=True)
    with fg.no_grad():
        y = x * 2
    assert not y.requires_grad
    assert fg.is_grad_enabled()

    @fg.no_grad()
    def f(v):
        return v * 3

    assert not f(x).requires_grad


def test_no_grad_is_per_thread():
    x = fg.tensor(1.0, requires_grad=True)
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait()
        seen["other"] = (x * 2).requires_grad
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with fg.no_grad():
        inside.set()
        done.wait()
        seen["main"] = (x * 2).requires_grad
    t.join()
    assert seen == {"other": True, "main": False}


def test_detach_cuts_the_graph():
    x = fg.tensor(2.0, requires_grad=True)
    y = (x * x).detach() * x
    y.backward()
    assert x.grad == pytest.approx(4.0)


def test_only_inputs_that_need_grad_get_one():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    c = fg.tensor([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None and x.grad is not None


def test_deep_graph_does_not_recurse():
    x = fg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() * 3):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001 ** (sys.getrecursionlimit() * 3))


def test_write_into_saved_data_is_detected():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    x = fg.tensor([3.0, 4.0])
    loss = (w * x).sum()
    with pytest.raises(ValueError, match="read-only"):
        w.data[0] = 10.0
    with pytest.raises(ValueError, match="read-only"):
        x.data[...] = 0.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, [3.0, 4.0])
    w.data[0] = 10.0  # after the backward: just works
    assert w.data[0] == 10.0


def test_write_through_a_view_base_is_detected():
    W = fg.tensor(np.ones((2, 2)), requires_grad=True)
    loss = (fg.tensor(np.ones((3, 2))) @ W.T).sum()
    with pytest.raises(ValueError, match="read-only"):
        W.data[0, 0] = 5.0
    loss.backward()


def test_plain_array_constants_are_protected():
    a = np.array([1.0, 2.0])
    w = fg.tensor([1.0, 1.0], requires_grad=True)
    loss = (w * a).sum()
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 5.0
    loss.backward()
    a[0] = 5.0
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])


def test_inplace_step_then_stale_backward_is_refused():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with fg.no_grad():
        w -= 0.5  # an optimizer-style in-place step
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_inplace_operator_on_leaf_while_recording_is_refused():
    w = fg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1.0
    with fg.no_grad():
        w += 1.0
    assert w.data[0] == 2.0 and w.is_leaf


def test_inplace_operator_on_intermediate_rebinds():
    x = fg.tensor(2.0, requires_grad=True)
    y = x * 3
    y += x  # recorded out of place, like autograd
    y.backward()
    assert x.grad == pytest.approx(4.0)


def test_item_assignment_inside_a_graph_is_refused():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        x[0] = 3.0
    c = fg.tensor([1.0, 2.0])
    c[0] = 3.0
    assert c.data[0] == 3.0


def test_dropped_graph_unprotects_data():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    del loss
    w.data[0] = 3.0  # no live graph saved it any more
    assert w.data[0] == 3.0


def test_numpy_ufuncs_on_tensors_record():
    x = fg.tensor([0.5, 1.0], requires_grad=True)
    y = np.exp(x) + np.sin(x)
    assert isinstance(y, fg.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.5, 1.0]) + np.cos([0.5, 1.0]))


def test_backend_switch(monkeypatch):
    assert fg.get_backend() in fg.available_backends()
    with fg.use_backend("reference"):
        assert fg.get_backend() == "reference"
    with pytest.raises(ValueError, match="reference"):
        fg.set_backend("nope")
    with pytest.raises(ValueError, match="available"):
        with fg.use_backend("gpu"):
            pass


def test_use_backend_is_per_thread():
    seen = {}
    start = threading.Event()
    stop = threading.Event()

    def other():
        start.wait()
        seen["other"] = fg.get_backend()
        stop.set()

    default = fg.get_backend()
    t = threading.Thread(target=other)
    t.start()
    with fg.use_backend("reference"):
        start.set()
        stop.wait()
        seen["main"] = fg.get_backend()
    t.join()
    assert seen == {"other": default, "main": "reference"}


def test_unknown_env_backend_warns_and_falls_back():
    import subprocess

    code = "import fastgrad as fg; print(fg.get_backend())"
    env = {"FASTGRAD_BACKEND": "bogus", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0
    assert "bogus" in out.stderr and "reference" in out.stderr
    assert out.stdout.strip() in fg.available_backends()
    env["FASTGRAD_BACKEND"] = "reference"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "reference"


def test_backends_agree_through_the_tape():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    W0, b0 = rng.standard_normal((3, 4)), rng.standard_normal(3)
    grads = {}
    for name in fg.available_backends():
        with fg.use_backend(name):
            W = fg.tensor(W0, requires_grad=True)
            b = fg.tensor(b0, requires_grad=True)
            y = fg.nn.functional.sigmoid(fg.nn.functional.linear(fg.tensor(x), W, b))
            (0.5 * ((y - 1.0) ** 2).sum()).backward()
            grads[name] = (W.grad, b.grad)
    ref = grads["reference"]
    for W_g, b_g in grads.values():
        np.testing.assert_allclose(W_g, ref[0], rtol=1e-10)
        np.testing.assert_allclose(b_g, ref[1], rtol=1e-10)


def test_gradcheck_passes_and_reports_failures():
    x = fg.tensor(np.array([0.3, -0.7]), requires_grad=True)
    assert fg.gradcheck(lambda a: fg.tanh(a) * a, (x,))

    bad = fg.extend.primitive(np.sin)
    fg.extend.defvjp(bad, lambda ans, a: lambda g: g * 2.0)  # wrong on purpose
    with pytest.raises(fg.GradcheckError, match=r"input 0.*backward gives.*finite differences"):
        fg.gradcheck(lambda a: bad(a), (x,))
    with pytest.raises(AssertionError):
        fg.gradcheck(lambda a: bad(a), (x,))
    with pytest.raises(TypeError, match="float64"):
        fg.gradcheck(lambda a: a, (fg.tensor(np.ones(2, np.float32), requires_grad=True),))


def test_a_parameter_starts_on_a_cache_line():
    # Tensors that require grad keep their values in 64-byte aligned storage (the batch-1
    # kernels stream them with aligned loads); small ones and plain tensors as NumPy gave.
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        W = rng.standard_normal((100, 784)).astype(dtype)
        for offset in range(1, 4):  # sources at several alignments, one of them misaligned
            source = np.empty(W.size + offset, dtype)[offset:].reshape(W.shape)
            source[...] = W
            p = fg.tensor(source, requires_grad=True)
            assert p.data.ctypes.data % 64 == 0
            assert p.data.flags.c_contiguous and p.dtype == dtype
            np.testing.assert_array_equal(p.data, W)
            assert not np.shares_memory(p.data, source)  # still a copy
        p.grad = None
        (p * p).sum().backward()
        np.testing.assert_allclose(p.grad, 2 * W, rtol=1e-6)
    small = fg.tensor(np.ones(3), requires_grad=True)
    np.testing.assert_array_equal(small.data, np.ones(3))
