"""Build the compiled core: Cython kernels, one source for float32 and float64.

FASTGRAD_DEBUG=1 turns bounds checking and wraparound back on for debugging.
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTGRAD_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(
        "fastgrad.backends._cykernels",
        ["src/fastgrad/backends/_cykernels.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # Portable flags only: no -march=native (a wheel must run on other CPUs). The
        # batch-1 loops get AVX2/AVX-512 through per-function target attributes, chosen
        # at import by the running CPU (_cykernels.pyx); -ffast-math would drop NaN/inf.
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    )
]
# fastgrad.compile's executor: same directives and flags as the kernels.
extensions.append(
    Extension(
        "fastgrad._replay",
        ["src/fastgrad/_replay.pyx"],
        include_dirs=extensions[0].include_dirs,
        define_macros=extensions[0].define_macros,
        extra_compile_args=extensions[0].extra_compile_args,
    )
)

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
