"""Which kernel backend runs: a process default, overridable per thread.

``set_backend`` sets the process default; ``use_backend`` overrides it for the current
thread only; ``FASTGRAD_BACKEND`` is read once at import.
"""

import contextlib
import importlib
import os
import threading
import warnings

_MODULES = {"cython": "fastgrad.backends.cython", "reference": "fastgrad.backends.reference"}
_loaded = {}
_import_errors = {}


def _load(name):
    module = _loaded.get(name)
    if module is None:
        module = importlib.import_module(_MODULES[name])
        _loaded[name] = module
    return module


def available_backends():
    """Names of the backends that import on this machine, default first."""
    names = []
    for name in _MODULES:
        try:
            _load(name)
        except ImportError as exc:  # the extension was not built
            _import_errors[name] = exc
            continue
        names.append(name)
    return names


class _ThreadState(threading.local):
    module = None  # a per-thread override set by use_backend


_thread = _ThreadState()
_default = None
# How many use_backend blocks are open, in all threads. While none is, the kernels in
# force are _default, and the hot path skips the thread-local read.
_overrides = 0
_overrides_lock = threading.Lock()


def kernels():
    """The kernel module in force for this thread."""
    return (_thread.module or _default) if _overrides else _default


def get_backend() -> str:
    return kernels().NAME


def _resolve(name):
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    try:
        return _load(name)
    except ImportError as exc:
        raise ValueError(
            f"backend {name!r} is not available ({exc}); available: "
            f"{', '.join(available_backends())}"
        ) from exc


def set_backend(name: str) -> None:
    """Set the process-wide default backend ("cython" or "reference")."""
    global _default
    _default = _resolve(name)


@contextlib.contextmanager
def use_backend(name: str):
    """Run the block on backend ``name``, in this thread only."""
    global _overrides
    module = _resolve(name)
    previous = _thread.module
    _thread.module = module
    with _overrides_lock:
        _overrides += 1
    try:
        yield module
    finally:
        _thread.module = previous
        with _overrides_lock:
            _overrides -= 1


def _init():
    global _default
    names = available_backends()
    if "cython" not in names:
        warnings.warn(
            "fastgrad's compiled kernels could not be imported "
            f"({_import_errors.get('cython')}); running on the pure-Python reference backend. "
            "Reinstall with `pip install .` to build them.",
            RuntimeWarning,
            stacklevel=3,
        )
    _default = _load(names[0])
    wanted = os.environ.get("FASTGRAD_BACKEND")
    if wanted:
        if wanted in names:
            _default = _load(wanted)
        else:
            warnings.warn(
                f"FASTGRAD_BACKEND={wanted!r} is not a backend; choices: {', '.join(names)}; "
                f"using {names[0]!r}",
                RuntimeWarning,
                stacklevel=3,
            )


_init()
