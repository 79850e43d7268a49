"""Build the compiled core: Cython kernels, one source for float32 and float64.

FASTGRAD_DEBUG=1 turns bounds checking and wraparound back on for debugging.
"""

import glob
import hashlib
import os
import runpy

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTGRAD_DEBUG", "") not in ("", "0")

# The opcodes of fastgrad.compile's programs: one list in Python (_opcodes.py), written into
# the C header the executor is compiled with.
_opcodes = runpy.run_path("src/fastgrad/_opcodes.py")
_header = "src/fastgrad/csrc/fg_opcodes.h"
_text = _opcodes["c_header"]()
if not os.path.exists(_header) or open(_header, encoding="utf-8").read() != _text:
    with open(_header, "w", encoding="utf-8") as f:
        f.write(_text)
HEADERS = sorted(glob.glob("src/fastgrad/csrc/*.h"))

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
        include_dirs=[np.get_include(), "src/fastgrad/csrc"],
        depends=HEADERS,
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
        depends=HEADERS,
        define_macros=extensions[0].define_macros,
        extra_compile_args=extensions[0].extra_compile_args,
    )
)

# The tape and the derivative table: plain Python files (they run uncompiled too) that
# Cython compiles in pure-Python mode; the compiled module is imported instead of the .py.
# Python semantics throughout: bounds checks, wraparound and Python division stay on.
# The optimizers, the losses and the backend switch run on every training step too. Only
# _tape and _ops carry Cython type hints; in the others an annotation such as ``lr: float``
# is documentation, and must not become a C type that refuses bad input before the
# function's own check can name it.
TYPED_PYTHON = ("_tape", "_ops")
PLAIN_PYTHON = ("_backend", "optim", "nn.losses")
COMPILED_PYTHON = TYPED_PYTHON + PLAIN_PYTHON


def _python_extensions(names):
    return [
        Extension(f"fastgrad.{name}", [f"src/fastgrad/{name.replace('.', '/')}.py"],
                  extra_compile_args=extensions[0].extra_compile_args)
        for name in names
    ]


python_directives = {"language_level": 3, "binding": True}

# Record which sources were compiled, so `import fastgrad` can warn when a .py was edited
# after its build (the stale compiled module would otherwise win the import silently).
with open("src/fastgrad/_build_info.py", "w", encoding="utf-8") as info:
    info.write('"""Written by setup.py: SHA-256 of the Python sources compiled into extensions."""\n\n')
    info.write("SOURCES = {\n")
    for name in COMPILED_PYTHON:
        with open(f"src/fastgrad/{name.replace('.', '/')}.py", "rb") as source:
            info.write(f"    {name!r}: {hashlib.sha256(source.read()).hexdigest()!r},\n")
    info.write("}\n")

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives)
    + cythonize(_python_extensions(TYPED_PYTHON), compiler_directives=python_directives)
    + cythonize(_python_extensions(PLAIN_PYTHON),
                compiler_directives=dict(python_directives, annotation_typing=False))
)
