"""Bad input everywhere a user can reach (issue 7, part 1).

Every kernel of both backends, and the Tensor, functional and nn faces, are given wrong
shapes, wrong ndim, wrong dtypes (int, bool, float16, complex, object), non-contiguous
and negative-stride views, zero-size arrays, NaN and inf, Python scalars and lists,
wrong ``out=`` arrays and wrong argument counts. Each call must either raise a
``TypeError``/``ValueError`` whose message names the argument (and shows its shape), or
return the answer the reference backend gives on clean copies of the same values.

The kernel cases run in a child process, one per backend, so a segfault or a hang fails
these tests (naming the case that was running) instead of killing the suite.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.optim
from fastgrad import nn

HERE = os.path.abspath(__file__)
BACKEND_NAMES = fg.available_backends()

# ------------------------------------------------------------------ kernel cases --
#
# A case is (name, kernel, make, expect, compare):
#   make()   -> (args, kwargs), fresh arrays each call;
#   expect   "value"      the call must succeed and match the reference on clean copies,
#            "error:NAME" it must raise TypeError/ValueError mentioning NAME,
#            "either:NAME" either of the two (non-contiguous views: the compiled
#                         kernels may refuse them, the reference accepts them);
#   compare  positions of arguments written in place whose final values are checked
#            (None: the return value is).

_SPECS = {
    # kernel: (argument names, shapes for N=3, D=4, M=2, positions written in place)
    "affine_forward": (("x", "W", "b"), ((3, 4), (2, 4), (2,)), None),
    "affine_sigmoid_forward": (("x", "W", "b"), ((3, 4), (2, 4), (2,)), None),
    "sigmoid_forward": (("z",), ((3, 4),), None),
    "softplus_forward": (("z",), ((3, 4),), None),
    "sigmoid_backward": (("h", "dh"), ((3, 4), (3, 4)), None),
    "outer_grad": (("dz", "x"), ((3, 2), (3, 4)), None),
    "transpose_matvec": (("W", "dz"), ((2, 4), (3, 2)), None),
    "bias_grad": (("dz",), ((3, 2),), None),
    "softmax_cross_entropy_forward": (("z",), ((3, 4),), None),
    "softmax_cross_entropy_backward": (("probs",), ((3, 4),), None),
    "sgd_update": (("W", "dW"), ((3, 4), (3, 4)), (0,)),
    "sgd_outer_update": (("W", "dz", "x"), ((2, 4), (3, 2), (3, 4)), (0,)),
    "adam_update": (("W", "dW", "m", "v"), ((3, 4), (3, 4), (3, 4), (3, 4)), (0, 2, 3)),
    "squared_error_forward": (("y", "t"), ((3, 4), (3, 4)), None),
    "squared_error_backward": (("y", "t"), ((3, 4), (3, 4)), None),
}
_OUT_SHAPE = {
    "affine_forward": (3, 2),
    "affine_sigmoid_forward": (3, 2),
    "sigmoid_forward": (3, 4),
    "softplus_forward": (3, 4),
    "sigmoid_backward": (3, 4),
    "outer_grad": (2, 4),
    "transpose_matvec": (3, 4),
    "bias_grad": (2,),
    "softmax_cross_entropy_backward": (3, 4),
    "squared_error_backward": (3, 4),
}
_ANY_SHAPE = {"sigmoid_forward", "softplus_forward", "sigmoid_backward", "sgd_update", "adam_update",
              "squared_error_forward", "squared_error_backward"}


def _values(shape, seed, kind):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if kind == "probs":
        a = np.exp(a)
        a /= a.sum(axis=-1, keepdims=True)
    elif kind == "h":
        a = 1 / (1 + np.exp(-a))
    elif kind == "v":
        a = np.abs(a)
    return a


def _extras(kernel):
    """Arguments after the arrays (labels, hyper-parameters)."""
    if kernel.startswith("softmax_cross_entropy"):
        return [np.array([0, 3, 1])], {}
    if kernel in ("sgd_update", "sgd_outer_update"):
        return [0.1], {"momentum": 0.0, "weight_decay": 0.01}
    if kernel == "adam_update":
        return [1e-3, 0.9, 0.999, 1e-8, 2], {}
    if kernel == "squared_error_backward":
        return [0.25], {}
    return [], {}


def _clean_arrays(kernel, dtype=np.float64):
    names, shapes, _ = _SPECS[kernel]
    return [
        _values(s, i, n).astype(dtype) for i, (n, s) in enumerate(zip(names, shapes, strict=True))
    ]


def _maker(kernel, mutate=None, dtype=np.float64, out=None, extra=None):
    def make():
        arrays = _clean_arrays(kernel, dtype)
        if mutate is not None:
            arrays = mutate(arrays)
        tail, kwargs = _extras(kernel)
        kwargs = dict(kwargs)
        if out is not None:
            kwargs["out"] = out(arrays)
        args = list(arrays) + tail
        if extra is not None:
            args, kwargs = extra(args, kwargs)
        return args, kwargs

    return make


def _set(i, value_of):
    def mutate(arrays):
        arrays = list(arrays)
        arrays[i] = value_of(arrays[i])
        return arrays

    return mutate


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def kernel_cases():
    cases = []
    for kernel, (names, shapes, written) in _SPECS.items():
        add = lambda name, make, expect, kernel=kernel, written=written: cases.append(
            (f"{kernel}/{name}", kernel, make, expect, written)
        )
        add("clean float64", _maker(kernel), "value")
        add("clean float32", _maker(kernel, dtype=np.float32), "value")
        for i, (arg, shape) in enumerate(zip(names, shapes, strict=True)):
            for bad in ("int64", "bool", "float16", "complex128", "object"):
                add(
                    f"{arg} {bad}",
                    _maker(kernel, _set(i, lambda a, d=bad: a.astype(d))),
                    f"error:{arg}",
                )
            add(
                f"{arg} big-endian",
                _maker(kernel, _set(i, lambda a: a.astype(">f8"))),
                f"error:{arg}",
            )
            if len(names) > 1:
                add(
                    f"{arg} float32 among float64",
                    _maker(kernel, _set(i, lambda a: a.astype(np.float32))),
                    "error:dtype",
                )
            add(f"{arg} as list", _maker(kernel, _set(i, lambda a: a.tolist())), f"error:{arg}")
            add(f"{arg} as scalar", _maker(kernel, _set(i, lambda a: 1.0)), f"error:{arg}")
            add(f"{arg} as None", _maker(kernel, _set(i, lambda a: None)), f"error:{arg}")
            if kernel not in _ANY_SHAPE:
                add(f"{arg} extra axis", _maker(kernel, _set(i, lambda a: a[None])), f"error:{arg}")
                add(f"{arg} 0-d", _maker(kernel, _set(i, lambda a: np.array(1.0))), f"error:{arg}")
            if len(names) > 1 or kernel.startswith("softmax"):
                # every size one larger: must not fit the others
                add(
                    f"{arg} wrong shape",
                    _maker(kernel, _set(i, lambda a: np.ones(tuple(n + 1 for n in a.shape)))),
                    f"error:{arg}"
                    if kernel not in ("sgd_update", "adam_update")
                    else "error:shape",
                )
            if len(shape) == 2:
                add(
                    f"{arg} Fortran order",
                    _maker(kernel, _set(i, lambda a: np.asfortranarray(a))),
                    f"either:{arg}",
                )
                add(
                    f"{arg} transposed view",
                    _maker(kernel, _set(i, lambda a: np.ascontiguousarray(a.T).T)),
                    f"either:{arg}",
                )
            add(
                f"{arg} negative strides",
                _maker(kernel, _set(i, lambda a: a[::-1].copy()[::-1])),
                f"either:{arg}",
            )
            add(
                f"{arg} strided view",
                _maker(kernel, _set(i, lambda a: np.repeat(a, 2, axis=-1)[..., ::2])),
                f"either:{arg}",
            )
            if kernel != "softmax_cross_entropy_backward":  # probs are probabilities
                add(f"{arg} NaN and inf", _maker(kernel, _set(i, _with_nonfinite)), "value")
                add(f"{arg} ±1000", _maker(kernel, _set(i, lambda a: a * 1000)), "value")
        # out=
        if kernel in _OUT_SHAPE:
            oshape = _OUT_SHAPE[kernel]
            add = lambda name, make, expect, add=add: add(name, make, expect)
            add(
                "out fresh",
                _maker(kernel, out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape)),
                "value",
            )
            add(
                "out wrong shape",
                _maker(
                    kernel, out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape + (1,))
                ),
                "error:out",
            )
            add(
                "out transposed shape",
                _maker(
                    kernel,
                    out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape[::-1] + (2,)),
                ),
                "error:out",
            )
            add(
                "out float32",
                _maker(
                    kernel,
                    out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape, np.float32),
                ),
                "error:out",
            )
            add(
                "out int",
                _maker(
                    kernel,
                    out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape, np.int64),
                ),
                "error:out",
            )
            add(
                "out read-only",
                _maker(
                    kernel,
                    out=lambda arrays, oshape=oshape, shapes=shapes: _readonly(np.empty(oshape)),
                ),
                "error:out",
            )
            add(
                "out list",
                _maker(
                    kernel,
                    out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape).tolist(),
                ),
                "error:out",
            )
            if len(oshape) == 2:
                add(
                    "out non-contiguous",
                    _maker(
                        kernel,
                        out=lambda arrays, oshape=oshape, shapes=shapes: np.empty(oshape[::-1]).T,
                    ),
                    "either:out",
                )
            add(
                "out is first input" if oshape == shapes[0] else "out aliases nothing",
                _maker(
                    kernel,
                    out=lambda arrays, oshape=oshape, shapes=shapes: (
                        arrays[0] if oshape == shapes[0] else np.empty(oshape)
                    ),
                ),
                "value",
            )
        # wrong argument counts
        add("too few arguments", _maker(kernel, extra=lambda a, k: (a[:-1], k)), "error:")
        add(
            "too many arguments",
            _maker(kernel, extra=lambda a, k: (a + [None, None, 1.0], k)),
            "error:",
        )
        add(
            "unknown keyword",
            _maker(kernel, extra=lambda a, k: (a, {**k, "outt": None})),
            "error:outt",
        )
    # zero-size batches and features: a correct (empty or zero) answer
    for kernel, shapes in [
        ("affine_forward", ((0, 4), (2, 4), (2,))),
        ("affine_forward", ((3, 0), (2, 0), (2,))),
        ("affine_forward", ((3, 4), (0, 4), (0,))),
        ("affine_sigmoid_forward", ((0, 4), (2, 4), (2,))),
        ("sigmoid_forward", ((0, 5),)),
        ("sigmoid_backward", ((0,), (0,))),
        ("outer_grad", ((0, 2), (0, 4))),
        ("outer_grad", ((3, 0), (3, 4))),
        ("transpose_matvec", ((0, 4), (3, 0))),
        ("transpose_matvec", ((2, 4), (0, 2))),
        ("bias_grad", ((0, 2),)),
        ("bias_grad", ((3, 0),)),
        ("sgd_update", ((0,), (0,))),
        ("adam_update", ((0, 3),) * 4),
    ]:

        def make(kernel=kernel, shapes=shapes):
            tail, kwargs = _extras(kernel)
            return [np.ones(s) for s in shapes] + tail, dict(kwargs)

        cases.append((f"{kernel}/zero-size {shapes}", kernel, make, "value", _SPECS[kernel][2]))
    for kernel in ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"):
        cases.append(
            (
                f"{kernel}/empty batch",
                kernel,
                lambda: ([np.ones((0, 4)), np.zeros(0, np.int64)], {}),
                "error:",
                None,
            )
        )
        for label, labels in [
            ("label too large", [0, 4, 1]),
            ("label negative", [0, -1, 1]),
            ("labels float", [0.0, 1.0, 2.0]),
            ("labels bool", [True, False, True]),
            ("labels wrong length", [0, 1]),
            ("labels 2-D", [[0, 1, 2]]),
            ("labels huge uint64", np.array([0, 2**63 + 1, 1], np.uint64)),
            ("labels list", None),
        ]:

            def make(labels=labels):
                probs = _values((3, 4), 0, "probs")
                lab = [0, 3, 1] if labels is None else np.asarray(labels)
                return [probs, lab], {}

            cases.append((f"{kernel}/{label}", kernel, make, "error:labels", None))
        cases.append(
            (
                f"{kernel}/labels int8 strided",
                kernel,
                lambda: (
                    [_values((3, 4), 0, "probs"), np.array([0, 9, 3, 9, 1], np.int8)[::2]],
                    {},
                ),
                "value",
                None,
            )
        )
    # outputs overlapping an input by one element: the answer must still be right
    overlap = [
        ("sigmoid_forward", "out overlaps z (shifted)", 0, "out"),
        ("sigmoid_backward", "out overlaps h (shifted)", 0, "out"),
        ("sigmoid_backward", "out overlaps dh (shifted)", 1, "out"),
        ("sgd_update", "W overlaps dW (shifted)", 1, 0),
        ("adam_update", "W overlaps dW (shifted)", 1, 0),
    ]
    for kernel, label, src, dst in overlap:

        def make(kernel=kernel, src=src, dst=dst):
            arrays = _clean_arrays(kernel)
            tail, kwargs = _extras(kernel)
            a = arrays[src]
            buf = np.empty(a.size + 1)
            if dst == "out":
                buf[: a.size] = a.ravel()
                arrays[src] = buf[: a.size].reshape(a.shape)
                kwargs = {**kwargs, "out": buf[1:].reshape(a.shape)}
            else:  # dst (written in place) is one element after src
                buf[1:] = arrays[dst].ravel()
                buf[0] = a.ravel()[0]
                arrays[dst] = buf[1:].reshape(a.shape)
                arrays[src] = buf[: a.size].reshape(a.shape)
            return arrays + tail, kwargs

        cases.append((f"{kernel}/{label}", kernel, make, "value", None if dst == "out" else (0,)))

    def velocity_overlap():
        W, dW = _clean_arrays("sgd_update")
        buf = np.empty(W.size + 1)
        buf[:-1] = dW.ravel()
        buf[-1] = 0.0
        dW = buf[:-1].reshape(W.shape)
        velocity = buf[1:].reshape(W.shape)
        return [W, dW, 0.1], {"momentum": 0.9, "velocity": velocity}

    cases.append(
        ("sgd_update/velocity overlaps dW (shifted)", "sgd_update", velocity_overlap, "value", (0,))
    )
    # sgd_update_many takes lists: each bad entry is named by its position
    W, dW = _clean_arrays("sgd_update")
    for label, make, expect in [
        ("lists of two lengths", lambda: ([[W.copy(), W.copy()], [dW], 0.1], {}), "error:length"),
        ("a gradient of another shape", lambda: ([[W.copy()], [dW[:, :2]], 0.1], {}), "error:parameter 0"),
        ("an int parameter", lambda: ([[W.astype(np.int64)], [dW], 0.1], {}), "error:parameter 0"),
        ("a float32 gradient", lambda: ([[W.copy()], [dW.astype(np.float32)], 0.1], {}), "error:parameter 0"),
        ("a read-only parameter", lambda: ([[_readonly(W)], [dW], 0.1], {}), "error:parameter 0"),
        ("momentum without velocities", lambda: ([[W.copy()], [dW], 0.1], {"momentum": 0.9}),
         "error:velocit"),
        ("a bad (dz, x) pair", lambda: ([[W.copy()], [(dW, dW)], 0.1], {}), "error:parameter 0"),
    ]:
        cases.append((f"sgd_update_many/{label}", "sgd_update_many", make, expect, None))
    return cases


def test_the_table_covers_every_kernel():
    """Every kernel both backends export is given bad input here (backends.KERNELS)."""
    from fastgrad.backends import KERNELS

    assert {kernel for _, kernel, *_ in kernel_cases()} == set(KERNELS)


def _with_nonfinite(a):
    a = np.array(a, dtype=np.float64 if a.dtype != np.float32 else np.float32)
    flat = a.reshape(-1)
    flat[: min(3, flat.size)] = [np.nan, np.inf, -np.inf][: min(3, flat.size)]
    return a


# ------------------------------------------------------- the child process side --


def _clean_copy(x):
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True, order="C")
    return x


def _compare(got, want, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            return False
        return all(_compare(g, w, dtype) for g, w in zip(got, want, strict=True))
    if want is None:
        return got is None
    got = np.asarray(got)
    want = np.asarray(want)
    return got.shape == want.shape and bool(
        np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True)
    )


def _run_case(module, reference, case):
    name, kernel, make, expect, written = case
    args, kwargs = make()
    clean_args = [_clean_copy(a) for a in args]
    clean_kwargs = {k: _clean_copy(v) for k, v in kwargs.items() if k != "out"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = getattr(module, kernel)(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if expect == "value":
            return "fail", f"raised {type(exc).__name__}: {message}"
        word = expect.split(":", 1)[1]
        if word and word not in message:
            return "fail", f"{type(exc).__name__} does not name {word!r}: {message}"
        return "ok", f"{type(exc).__name__}: {message}"
    except Exception as exc:  # noqa: BLE001 - any other exception type is a failure
        return "fail", f"raised {type(exc).__name__} (not TypeError/ValueError): {exc}"
    if expect.startswith("error"):
        return "fail", f"returned {type(result).__name__} instead of raising"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(reference, kernel)(*clean_args, **clean_kwargs)
    arrays = [a for a in clean_args if isinstance(a, np.ndarray)]
    dtype = arrays[0].dtype if arrays else np.float64
    if written is None:
        ok = _compare(result, want, dtype)
        detail = f"got {result!r}, want {want!r}"
    else:
        ok = all(_compare(args[i], clean_args[i], dtype) for i in written)
        if "velocity" in kwargs:
            ok = ok and _compare(kwargs["velocity"], clean_kwargs["velocity"], dtype)
        detail = (
            f"in-place results differ from the reference's on clean copies: {args[written[0]]!r}"
        )
    return ("ok", "") if ok else ("fail", "wrong answer: " + detail[:400])


def _child_main(backend):
    import importlib

    module = importlib.import_module(
        "fastgrad.backends.reference" if backend == "reference" else "fastgrad.backends._cykernels"
    )
    from fastgrad.backends import reference

    for case in kernel_cases():
        print(json.dumps({"start": case[0]}), flush=True)
        status, detail = _run_case(module, reference, case)
        print(json.dumps({"case": case[0], "status": status, "detail": detail}), flush=True)
    print(json.dumps({"done": True}), flush=True)


# ------------------------------------------------------------ the pytest side --

CASE_NAMES = [c[0] for c in kernel_cases()]
_results = {}


def _results_for(backend):
    if backend not in _results:
        try:
            proc = subprocess.run(
                [sys.executable, HERE, "--child", backend],
                capture_output=True,
                text=True,
                timeout=300,
            )
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err, rc = "timed out (a hang)", "timeout"
        results, last, done = {}, None, False
        for line in out.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "start" in record:
                last = record["start"]
            elif "case" in record:
                results[record["case"]] = (record["status"], record["detail"])
                last = None
            elif record.get("done"):
                done = True
        _results[backend] = (results, last, done, rc, err[-3000:])
    return _results[backend]


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_kernel_child_process_survives(backend):
    """The child ran every case and exited 0: no segfault, abort or hang."""
    results, last, done, rc, err = _results_for(backend)
    assert done and rc == 0, f"the kernel child crashed (exit {rc}) during case {last!r}:\n{err}"


def _case_params():
    params = []
    for backend in BACKEND_NAMES:
        for name in CASE_NAMES:
            params.append(pytest.param(backend, name, id=f"{backend}:{name}"))
    return params


@pytest.mark.parametrize("backend, name", _case_params())
def test_kernel_bad_input(backend, name):
    results, last, done, rc, err = _results_for(backend)
    if name not in results:
        pytest.fail(f"case not reached: the child died during {last!r} (exit {rc})\n{err}")
    status, detail = results[name]
    assert status == "ok", detail


# ------------------------------------------------------------ the Tensor face --


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    with fg.use_backend(request.param):
        yield request.param


def _leaf(shape, seed=0, dtype=np.float64):
    return fg.tensor(
        np.random.default_rng(seed).standard_normal(shape), requires_grad=True, dtype=dtype
    )


@pytest.mark.parametrize("dtype", [np.float16, np.complex128, object, "U3"])
def test_tensor_refuses_unsupported_dtypes(dtype):
    with pytest.raises(TypeError, match="float16|complex|object|<U3"):
        fg.tensor(np.ones(3, dtype=dtype))
    with pytest.raises(TypeError):
        fg.from_numpy(np.ones(3, dtype=dtype))


@pytest.mark.parametrize("data", [[[1.0, 2.0], [3.0]], "abc", None, {"a": 1}])
def test_tensor_refuses_data_that_is_not_numbers(data):
    with pytest.raises(TypeError):
        fg.tensor(data)


@pytest.mark.parametrize(
    "data, dtype",
    [
        (3, np.float64),
        ([1, 2], np.float64),
        (np.array([True, False]), np.float64),
        (np.float32(1.5), np.float32),
    ],
)
def test_tensor_accepts_scalars_lists_ints_bools(data, dtype):
    t = fg.tensor(data)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=dtype))


def test_binary_ops_name_both_shapes(backend):
    x = _leaf((2, 3))
    for op in (
        lambda: x + np.ones(4),
        lambda: x * _leaf((3, 2)),
        lambda: x @ _leaf((2, 3)),
        lambda: x - np.ones((3, 3)),
        lambda: x / np.ones((4, 1, 2)),
    ):
        with pytest.raises(ValueError, match=r"\(2, 3\)"):
            op()


def test_operands_that_are_not_numbers_raise_type_error(backend):
    x = _leaf((2, 3))
    for other in ("a", None, object(), {"k": 1}):
        with pytest.raises(TypeError):
            x + other
        with pytest.raises(TypeError):
            other * x


def test_complex_constants_give_the_real_gradient(backend):
    # |c x| with c = 1 + 1j has derivative |c| = √2 for a real x: a complex value in the
    # graph follows autograd's convention (the real leaf takes the real part of its
    # signal), never a silently dropped or doubled term. The Tensor face holds real data,
    # so a complex seed is still refused.
    x = fg.tensor(1.0, requires_grad=True)
    abs(x * (1 + 1j)).backward()
    np.testing.assert_allclose(x.grad, np.sqrt(2.0), rtol=1e-12)
    import fastgrad.numpy as fnp

    np.testing.assert_allclose(fg.grad(lambda v: fnp.abs(v * (1 + 1j)))(1.0), np.sqrt(2.0), rtol=1e-12)
    with pytest.raises(TypeError, match="complex"):
        (x * 2.0).backward(grad=np.complex128(1.0))


def test_plain_kernel_ops_refuse_complex_and_object_arrays(backend):
    for bad in (np.ones(3, complex), np.ones(3, object)):
        with pytest.raises(TypeError):
            fg.sigmoid(bad)
        with pytest.raises(TypeError):
            nn.functional.linear(fg.tensor(np.ones((2, 3))), bad.reshape(1, 3))


@pytest.mark.parametrize(
    "make",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a[::-1, ::-1],
        lambda a: np.repeat(a, 2, 1)[:, ::2],
        lambda a: a.astype(np.int64),
        lambda a: a.astype(bool),
        lambda a: a.tolist(),
        lambda a: a.astype(np.float32),
    ],
    ids=["fortran", "negative-strides", "strided", "int", "bool", "list", "float32"],
)
def test_linear_and_sigmoid_accept_any_layout_and_real_dtype(backend, make):
    rng = np.random.default_rng(1)
    x_np = np.round(rng.standard_normal((5, 4)) * 3)
    W = _leaf((3, 4), 2)
    b = _leaf((3,), 3)
    x_in = make(x_np)
    x_ref = np.asarray(x_in, dtype=np.float64)
    y = nn.functional.sigmoid(nn.functional.linear(x_in, W, b))
    y.sum().backward()
    z = x_ref @ W.data.T + b.data
    h = 1 / (1 + np.exp(-z))
    tol = 1e-5 if np.asarray(x_in).dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y.data, h, rtol=tol, atol=tol)
    np.testing.assert_allclose(W.grad, (h * (1 - h)).T @ x_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(b.grad, (h * (1 - h)).sum(0), rtol=tol, atol=tol)


def test_views_of_tensors_differentiate_correctly(backend):
    base = np.arange(24.0).reshape(4, 6) / 10
    for view in (base[::-1], base[:, ::2], base.T, base[1:3, 1:5]):
        x = fg.from_numpy(view.copy(), requires_grad=True)
        y = fg.from_numpy(view)  # a strided constant
        loss = (fg.sigmoid(x) * y).sum()
        loss.backward()
        s = 1 / (1 + np.exp(-view))
        np.testing.assert_allclose(x.grad, s * (1 - s) * view, rtol=1e-12)


def test_zero_size_tensors_go_forward_and_backward(backend):
    x = fg.tensor(np.ones((0, 3)), requires_grad=True)
    W = _leaf((4, 3))
    b = _leaf((4,))
    loss = nn.functional.sigmoid(nn.functional.linear(x, W, b)).sum()
    loss.backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(W.grad, np.zeros((4, 3)))
    np.testing.assert_array_equal(b.grad, np.zeros(4))
    e = fg.tensor(np.ones(0), requires_grad=True)
    (e * 2).sum().backward()
    assert e.grad.shape == (0,)


def test_nan_and_inf_propagate_like_numpy(backend):
    x = fg.tensor(np.array([np.nan, np.inf, -np.inf, 0.0]), requires_grad=True)
    with np.errstate(all="ignore"):
        h = fg.sigmoid(x)
        np.testing.assert_array_equal(h.data, [np.nan, 1.0, 0.0, 0.5])
        h.sum().backward()
    np.testing.assert_array_equal(x.grad, [np.nan, 0.0, 0.0, 0.25])


def test_backward_argument_errors(backend):
    x = _leaf((2, 3))
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2, 3\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        fg.tensor([1.0]).backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        x.grad = np.ones(3)


def test_reductions_and_shapes_name_the_problem(backend):
    x = _leaf((2, 3))
    with pytest.raises(ValueError, match="axis 5"):
        x.sum(axis=5)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        x.reshape(4, 4)
    with pytest.raises(IndexError):
        x[5]
    with pytest.raises(IndexError):
        x[1.5]


@pytest.mark.parametrize(
    "args, match",
    [
        (((2, 3), (4, 2)), r"\(2, 3\).*\(4, 2\)"),
        (((2, 3), (3,)), r"2-D"),
        (((2, 3), (4, 3), (5,)), r"\(5,\)"),
    ],
)
def test_linear_names_shapes(backend, args, match):
    tensors = [fg.tensor(np.ones(s)) for s in args]
    with pytest.raises(ValueError, match=match):
        nn.functional.linear(*tensors)


def test_nn_layers_refuse_bad_configuration_and_input(backend):
    for bad in (0, -1, 2.5, True, "3", None):
        with pytest.raises((TypeError, ValueError), match="in_features"):
            nn.Linear(bad, 3)
    with pytest.raises(TypeError, match="float16"):
        nn.Linear(2, 3, dtype=np.float16)
    layer = nn.Linear(3, 2, rng=0)
    for x in (np.ones((4, 5)), 1.0, np.ones((2, 3, 4))):
        with pytest.raises(ValueError, match=r"Linear\(3, 2\)"):
            layer(x)
    with pytest.raises(TypeError, match=r"x has dtype <U1"):
        layer(np.array([["a", "b", "c"]]))
    with pytest.raises(TypeError, match="complex"):
        layer(np.ones((1, 3), complex))  # never silently drops the imaginary part
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 3], activation="nope")
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP([])


def test_linear_layer_refuses_complex_input(backend):
    # Reported: nn.Linear.forward casts with np.asarray(x, dtype), which drops the
    # imaginary part with only a ComplexWarning.
    layer = nn.Linear(3, 2, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises((TypeError, ValueError, Warning)):
            layer(np.ones((1, 3), complex))


def test_optimizers_refuse_bad_hyperparameters():
    params = list(nn.Linear(3, 2, rng=0).parameters())
    for kwargs in ({"lr": -1}, {"lr": float("nan")}, {"lr": "0.1"}, {"lr": 0.1, "momentum": -1}):
        with pytest.raises((TypeError, ValueError), match="lr|momentum"):
            fg.optim.SGD(params, **kwargs)
    with pytest.raises(ValueError, match="betas"):
        fg.optim.Adam(params, betas=(1.0, 0.9))
    with pytest.raises(TypeError, match="single tensor"):
        fg.optim.SGD(params[0], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        fg.optim.SGD([], lr=0.1)


LOSS_CASES = [
    ("cross_entropy", (np.zeros((2, 3)), np.array([0, 3])), ValueError, "3"),
    ("cross_entropy", (np.zeros((2, 3)), np.array([0, -1])), ValueError, "-1"),
    ("cross_entropy", (np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, r"\(3,\)"),
    ("cross_entropy", (np.zeros((2, 3)), np.zeros((2, 3), bool)), TypeError, "bool"),
    ("cross_entropy", (np.zeros((2, 3, 1)), np.array([0, 1])), ValueError, r"\(2, 3, 1\)"),
    ("squared_error", (np.zeros((2, 3)), np.zeros((3, 2))), ValueError, r"\(3, 2\)"),
    ("binary_cross_entropy", (np.full(3, 2.0), np.zeros(3)), ValueError, r"\[0, 1\]"),
    ("hinge", (np.zeros(3), np.zeros(3)), ValueError, "-1 or \\+1"),
]


@pytest.mark.parametrize(
    "name, args, exc, match", LOSS_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LOSS_CASES)]
)
def test_losses_refuse_bad_targets(backend, name, args, exc, match):
    y, t = args
    with pytest.raises(exc, match=match):
        getattr(nn.functional, name)(fg.tensor(y, requires_grad=True), t)


def test_cross_entropy_of_an_empty_batch_is_a_clear_error(backend):
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        nn.functional.cross_entropy(
            fg.tensor(np.zeros((0, 3)), requires_grad=True), np.zeros(0, np.int64)
        )


def test_functional_face_argument_errors():
    f = lambda x: (x * x).sum()
    with pytest.raises(TypeError, match="argnum=3"):
        fg.grad(f, argnum=3)(1.0)
    with pytest.raises(TypeError, match="argnum=0"):
        fg.grad(lambda: 1.0)()
    with pytest.raises(TypeError):
        fg.grad(f)(1.0, 2.0)
    with pytest.raises(TypeError, match="scalar"):
        fg.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="complex"):
        fg.grad(f)(1j)
    with pytest.raises(TypeError, match="None"):
        fg.grad(lambda x: None)(1.0)
    with pytest.raises(TypeError):
        fg.grad(lambda x: 1)(1.0)
    with pytest.raises((TypeError, ValueError)):
        fg.grad(f)("a")


def test_functional_face_accepts_scalars_ints_lists():
    assert fg.grad(lambda x: x * x)(3) == 6.0
    np.testing.assert_allclose(fg.grad(lambda x: (x * x).sum())(np.array([1, 2])), [2.0, 4.0])


def test_backend_selection_errors():
    with pytest.raises(ValueError, match="reference"):
        fg.set_backend("nope")
    with pytest.raises(ValueError, match="reference"):
        with fg.use_backend(None):
            pass


def test_unknown_backend_env_var_warns_and_falls_back():
    code = "import warnings, fastgrad as fg; print(fg.get_backend())"
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        env={**os.environ, "FASTGRAD_BACKEND": "fortran"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fortran" in proc.stderr and "reference" in proc.stderr
    assert proc.stdout.strip() in BACKEND_NAMES


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    _child_main(sys.argv[2])
