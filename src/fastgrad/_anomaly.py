"""Anomaly mode: stop at the first NaN or inf, and say which primitive made it and where.

    with fg.detect_anomaly():
        loss = model(x).log().sum()     # AnomalyError: 'log' produced -inf ... at train.py:12
        loss.backward()                 # or: the backward of 'sqrt' produced nan ...

Inside the block every primitive recorded on tensors checks its output, and the backward
pass checks every error signal it computes (v̄ᵢ contributions), in this thread only. The
error names the primitive and the file and line of the user's code that recorded it (the
innermost frame outside fastgrad). Outside the block the tape pays one global read per
primitive (``_tape._anomaly is None``).

Checking costs an ``isfinite`` pass over every result and a stack walk per recorded node:
a debugging tool, like PyTorch's ``torch.autograd.detect_anomaly``.
"""

import linecache
import os
import sys
import threading

import numpy as np

from . import _tape
from ._tape import TensorBase

__all__ = ["detect_anomaly", "AnomalyError", "is_anomaly_enabled"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AnomalyError(FloatingPointError, RuntimeError):
    """A NaN or inf appeared under ``detect_anomaly()``: a FloatingPointError and a RuntimeError."""


class _State(threading.local):
    depth = 0  # nested detect_anomaly() blocks in this thread


_state = _State()
_lock = threading.Lock()
_threads_on = 0  # threads inside detect_anomaly(); while 0, _tape._anomaly is None


def is_anomaly_enabled() -> bool:
    return _state.depth > 0


def _user_site():
    """(file, line, function) of the innermost frame outside fastgrad's own files."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return None


def _describe_site(site):
    if site is None:
        return "recorded at an unknown place (outside detect_anomaly())"
    filename, line, function = site
    code = linecache.getline(filename, line).strip()
    where = f"recorded at {filename}:{line}, in {function}"
    return f"{where}: {code}" if code else where


def _bad_values(x):
    """A short description of x's non-finite values, or None if x is finite (or not float)."""
    if isinstance(x, TensorBase):
        x = x._data
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.dtype.kind not in "fc":
        return None
    finite = np.isfinite(a)
    if finite.all():
        return None
    kinds = []
    if np.isnan(a).any():
        kinds.append("nan")
    if np.isposinf(a.real).any():
        kinds.append("inf")
    if np.isneginf(a.real).any():
        kinds.append("-inf")
    count = a.size - int(np.count_nonzero(finite))
    return f"{'/'.join(kinds)} ({count} of {a.size} elements, shape {a.shape})"


class _Checker:
    """What the tape calls while some thread has anomaly mode on (``_tape._anomaly``)."""

    __slots__ = ()

    @staticmethod
    def forward(prim, args, ans):
        if not _state.depth:
            return
        bad = _bad_values(ans)
        if bad is None:
            return
        inputs = [
            i
            for i, a in enumerate(args)
            if isinstance(a, (TensorBase, np.ndarray, float)) and _bad_values(a) is not None
        ]
        origin = (
            f"from non-finite input(s) at argument position(s) {inputs}"
            if inputs
            else "from finite inputs"
        )
        raise AnomalyError(
            f"detect_anomaly: the forward of '{prim.name}' produced {bad} {origin}; "
            f"{_describe_site(_user_site())}"
        )

    @staticmethod
    def recorded(node):
        if _state.depth:
            node.site = _user_site()

    @staticmethod
    def backward(node, argnum, error_signal):
        if not _state.depth:
            return
        bad = _bad_values(error_signal)
        if bad is None:
            return
        raise AnomalyError(
            f"detect_anomaly: the backward of '{node.prim.name}' produced {bad} in the error "
            f"signal of its argument {argnum}; that '{node.prim.name}' was "
            f"{_describe_site(getattr(node, 'site', None))}"
        )


_checker = _Checker()


class detect_anomaly:
    """Context manager (and decorator): a NaN or inf made in the forward or backward raises.

    Raises ``AnomalyError`` (a ``FloatingPointError`` and a ``RuntimeError``) at the first
    primitive whose output, or whose error signal in the backward pass, is not finite,
    naming the primitive and the file and line that recorded it. Per thread; nests.
    """

    __slots__ = ()

    def __enter__(self):
        global _threads_on
        if _state.depth == 0:
            with _lock:
                _threads_on += 1
                _tape._anomaly = _checker
        _state.depth += 1
        return self

    def __exit__(self, *exc):
        global _threads_on
        _state.depth -= 1
        if _state.depth == 0:
            with _lock:
                _threads_on -= 1
                if _threads_on == 0:
                    _tape._anomaly = None
        return False

    def __call__(self, fun):
        import functools

        @functools.wraps(fun)
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return fun(*args, **kwargs)

        return wrapper
