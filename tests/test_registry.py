"""Every registered primitive, walked: nothing ships without rules checked, a lowering
checked (or refused by name), a formula, and kernels that exist.

The suite runs twice (``python -m pytest`` on the compiled kernels, and again with
FASTGRAD_BACKEND=reference), so each check below runs on both backends, and the compile
checks on both executors (the compiled one and the reference loop).
"""

import numpy as np
import pytest
from _numeric import numeric_grad

import fastgrad as fg
import fastgrad.extend  # noqa: F401
import fastgrad.numpy  # noqa: F401  (registers the NumPy face's primitives)
import fastgrad.scipy  # noqa: F401  (and fastgrad.scipy's: SciPy is imported only on request)
import fastgrad.misc.fixed_points  # noqa: F401  (autograd's fixed_point, a primitive of its own)
from fastgrad._compiler.lowering import Lowering
from fastgrad._registry import REGISTRY, Formula, NotCompiled, Sample, TraceBody
from fastgrad._tape import Primitive
from fastgrad.backends import KERNELS

PRIMS = list(REGISTRY)
IDS = [f"{p.name}@{i}" for i, p in enumerate(PRIMS)]


def _samples(prim):
    samples = prim.samples(np.random.default_rng(7))
    assert samples and all(isinstance(s, Sample) for s in samples), prim.name
    return samples


def _differentiable(prim, sample):
    return [i for i in sample.positions(prim)]


def _with(args, i, x):
    args = list(args)
    args[i] = x
    return args


def _cotangent(prim, sample):
    """A random ū in the output's space (complex for a complex output)."""
    out = prim.fun(*sample.args, **sample.kwargs)
    r = np.random.default_rng(11)
    u = r.normal(size=np.shape(out))
    return u + 1j * r.normal(size=np.shape(out)) if np.iscomplexobj(out) else u


def _point(sample, i):
    """The argument differentiated, as float64 (complex128 for a complex one)."""
    x = sample.args[i]
    return np.asarray(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64)


def _is_complex(prim, sample):
    return any(np.iscomplexobj(a) for a in sample.args) or np.iscomplexobj(
        prim.fun(*sample.args, **sample.kwargs))


# Complex values follow autograd's convention (fastgrad._functional): the loss is
# L = Re Σ ū ∘ f(…a…) (no conjugation), and its gradient with respect to a complex a is
# ∂L/∂Re a − i ∂L/∂Im a, which for a holomorphic f is ū f'(a). _numeric.numeric_grad
# gives the same from central differences.
def _loss(u, y):
    total = fg.numpy.sum(u * y)
    return fg.numpy.real(total) if np.iscomplexobj(fg.extend.getval(total)) else total


@pytest.mark.parametrize("prim", PRIMS, ids=IDS)
def test_entry_is_complete(prim):
    assert isinstance(prim, Primitive)
    assert isinstance(prim.formula, Formula), f"{prim.name}: no formula for explain()"
    assert prim.formula.forward and "{out}" in prim.formula.forward
    assert isinstance(prim.lowering, (Lowering, TraceBody, NotCompiled)), f"{prim.name}: no lowering or mark"
    if isinstance(prim.lowering, NotCompiled):
        assert prim.lowering.reason, f"{prim.name}: a refuse mark says why"
    assert prim.order in (1, 2)
    assert set(prim.kernels) <= set(KERNELS), f"{prim.name} names kernels no backend has"
    assert callable(prim.samples)
    for sample in _samples(prim):
        assert _differentiable(prim, sample), f"{prim.name}: {sample} checks no argument"


@pytest.mark.parametrize("prim", PRIMS, ids=IDS)
def test_rules_match_finite_differences(prim):
    """ā from the backward against central differences of ⟨u, f(…a…)⟩, every argument."""
    for sample in _samples(prim):
        u = _cotangent(prim, sample)
        for i in _differentiable(prim, sample):
            def loss(x, i=i, sample=sample):
                return _loss(u, prim(*_with(sample.args, i, x), **sample.kwargs))

            def loss_np(*args, sample=sample):
                return float(np.real(np.sum(u * prim.fun(*args, **sample.kwargs))))

            got = fg.grad(loss)(_point(sample, i))
            want = numeric_grad(loss_np, list(sample.args), i)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{prim.name} {sample} argument {i}")


@pytest.mark.parametrize("prim", [p for p in PRIMS if p.order == 2],
                         ids=[i for i, p in zip(IDS, PRIMS) if p.order == 2])
def test_rules_are_differentiable(prim):
    """grad of grad: ⟨w, ā(a)⟩ differentiated again, against central differences."""
    for sample in _samples(prim):
        u = _cotangent(prim, sample)
        for i in _differentiable(prim, sample):
            x0 = _point(sample, i)
            r = np.random.default_rng(5)
            w = r.normal(size=np.shape(x0))
            if np.iscomplexobj(x0):
                w = w + 1j * r.normal(size=np.shape(x0))

            def loss(x, i=i, sample=sample):
                return _loss(u, prim(*_with(sample.args, i, x), **sample.kwargs))

            def h(x):
                return _loss(w, fg.grad(loss)(x))

            got = fg.grad(h)(x0)
            want = numeric_grad(lambda x: float(h(x)), [x0], 0)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6,
                                       err_msg=f"{prim.name} {sample} argument {i}, second order")


@pytest.mark.parametrize("prim", PRIMS, ids=IDS)
def test_lowering_matches_eager_or_is_refused_by_name(prim):
    """Every sample of a primitive with a lowering (or a body traced through) compiles —
    no TracingError at all — and its value and gradient equal eager's (float64, rtol
    1e-9), the replay as well as the trace, on this backend's executor (the suite runs on
    both) — except an input its lowering declares refused by design (``refuses``: no
    replay of it could be exact), refused in those words. A primitive carrying the
    explicit NotCompiled mark is refused, the message naming it and its reason; complex
    values are refused with an error that says so."""
    for sample in _samples(prim):
        positions = _differentiable(prim, sample)
        u = _cotangent(prim, sample)

        def f(*xs, sample=sample, positions=positions):
            args = list(sample.args)
            for i, x in zip(positions, xs):
                args[i] = x
            return _loss(u, prim(*args, **sample.kwargs))

        xs = [_point(sample, i) for i in positions]
        argnum = tuple(range(len(xs)))
        eager_value, eager_grads = fg.value_and_grad(f, argnum)(*xs)
        compiled = fg.compile(fg.value_and_grad(f, argnum))
        if _is_complex(prim, sample):
            with pytest.raises((TypeError, fg.TracingError), match=f"complex|'{prim.name}'"):
                compiled(*xs)
            continue
        if isinstance(prim.lowering, NotCompiled):
            with pytest.raises(fg.TracingError, match=f"'{prim.name}'") as info:
                compiled(*xs)
            assert prim.lowering.reason in str(info.value)
            continue
        try:
            compiled(*xs)  # the trace
        except fg.TracingError as exc:
            # only an input the lowering declares it refuses by design (a dtype the replay
            # does not hold, a data-dependent shape), in those words, naming the primitive
            refuses = getattr(prim.lowering, "refuses", ())
            assert any(r in str(exc) for r in refuses) and f"'{prim.name}'" in str(exc), str(exc)
            continue
        value, grads = compiled(*xs)  # the replay
        assert compiled.traces == 1
        np.testing.assert_allclose(value, eager_value, rtol=1e-9, atol=1e-12, err_msg=prim.name)
        for g, e in zip(grads, eager_grads):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12, err_msg=f"{prim.name} {sample}")


def _all_primitives():
    """Every Primitive object reachable from fastgrad's modules."""
    import sys

    found = {}
    for name, module in list(sys.modules.items()):
        if name == "fastgrad" or name.startswith("fastgrad."):
            for value in vars(module).values():
                if isinstance(value, Primitive):
                    found[id(value)] = (name, value)
    return found.values()


def test_every_primitive_with_a_rule_is_registered():
    registered = {id(p) for p in REGISTRY}
    missing = [f"{module}.{p.name}" for module, p in _all_primitives()
               if id(p) not in registered and _has_rules(p)]
    assert not missing, f"primitives with rules but no registry entry: {missing}"


def _has_rules(prim):
    """False only for a primitive recorded without a rule (its backward raises
    NotImplementedError naming it) — a rule table of its own class (variadic, by
    argument) counts as rules."""
    from fastgrad.numpy._util import UndefinedVjps

    if type(prim.vjps) is UndefinedVjps:
        return dict.__len__(prim.vjps) > 0
    return type(prim.vjps) is not dict or len(prim.vjps) > 0
