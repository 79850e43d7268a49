"""``fastgrad.numpy.fft``: NumPy's FFT functions, recorded without derivatives yet.

Inside a transform a backward through them raises NotImplementedError (complex numbers
are out of scope for now).
"""

import numpy.fft as _fft

from ._util import NoRule

__all__ = []
for _name in dir(_fft):
    _obj = getattr(_fft, _name)
    if callable(_obj) and not _name.startswith("_"):
        globals()[_name] = NoRule(_obj, _name)
        __all__.append(_name)
