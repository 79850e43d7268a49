"""The compiled backend: Cython typed loops (and BLAS from Cython where a product dominates).

Same functions and signatures as ``fastgrad.backends.reference``.
"""

from ._cykernels import *  # noqa: F401,F403
from ._cykernels import __all__  # noqa: F401

NAME = "cython"
