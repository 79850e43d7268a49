"""``fastgrad.numpy.fft``: NumPy's FFT functions, recorded without derivatives yet.

Inside a transform a backward through them raises NotImplementedError (complex numbers
are out of scope for now).
"""

import numpy.fft as _fft

from ._vjps import UndefinedVjps, primitive

__all__ = []
for _name in dir(_fft):
    _obj = getattr(_fft, _name)
    if callable(_obj) and not _name.startswith("_"):
        _p = primitive(_obj, _name)
        _p.vjps = UndefinedVjps(_name)
        globals()[_name] = _p
        __all__.append(_name)
