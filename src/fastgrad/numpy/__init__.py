"""``fastgrad.numpy``: the differentiable NumPy namespace (``import fastgrad.numpy as np``).

Every name in ``numpy`` is here, built from one map (``fastgrad.numpy._map``):

- a function with a derivative is its fastgrad twin: on plain arrays it is a plain NumPy
  call returning a plain array; on a traced value (inside ``grad``) or an ``fg.Tensor``
  it is recorded on the one tape;
- a function with no derivative (comparisons, ``floor``, ``argmax``, ``allclose``, ...)
  acts on the values inside tensors and returns constants;
- any other NumPy function is recorded without a rule: a backward through it raises
  NotImplementedError naming it, so nothing is silently differentiated as zero.
"""

import numpy as _onp

from ._building import c_, r_
from ._contractions import make_diagonal
from ._map import NOT_DIFFERENTIABLE, TWINS
from ._util import NoRule as _NoRule
from ._util import nograd as _nograd

__version__ = _onp.__version__


def _build():
    ns = {}
    wrapped = {}
    loaded = vars(_onp)
    for name in dir(_onp):
        if name.startswith("_") or name in ("linalg", "random", "fft"):
            continue
        if name not in loaded:  # a submodule NumPy loads on first use: so do we (__getattr__)
            continue
        obj = loaded[name]
        if name in TWINS:
            ns[name] = TWINS[name]
        elif isinstance(obj, type(_onp)):  # other submodules: as NumPy has them
            ns[name] = obj
        elif isinstance(obj, type) or not callable(obj):
            ns[name] = obj  # types, dtypes, constants
        elif obj in NOT_DIFFERENTIABLE:
            ns[name] = _nograd(obj)
        elif id(obj) in wrapped:
            ns[name] = wrapped[id(obj)]  # aliases share one wrapper (conj, conjugate)
        else:
            ns[name] = wrapped[id(obj)] = _NoRule(obj, name)
    for name, twin in TWINS.items():
        ns[name] = twin  # twins NumPy 2 no longer has under that name (row_stack, ...)
    ns.update(make_diagonal=make_diagonal, c_=c_, r_=r_)
    return ns


globals().update(_build())

from . import fft, linalg  # noqa: E402,F401


def __getattr__(name):
    """NumPy's lazily loaded submodules (``testing``, ``ma``, ``f2py``, …) and fastgrad's
    ``random``: imported on first use, as NumPy does, so ``import fastgrad`` stays quick."""
    if name == "random":
        import importlib

        return importlib.import_module(".random", __name__)
    if name in dir(_onp) and not name.startswith("_"):
        return getattr(_onp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
