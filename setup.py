"""Build fastgrad's compiled core (README "Install", docs/kernels.md).

- Two Cython extensions: the kernels (backends/_cykernels.pyx) and fastgrad.compile's
  executor (_replay.pyx). Their C lives in src/fastgrad/csrc/; one header,
  fg_opcodes.h, is generated here from _opcodes.py before anything compiles.
- Python modules compiled in Cython's pure-Python mode (PURE_MODE below): their .py is
  the source, and runs as it is wherever it is not compiled.

The extensions are cythonized and compiled in parallel (one job per CPU), without debug
information; generated C goes to build/, never into the source tree or the wheel.

Environment variables:
    FASTGRAD_PURE_PYTHON=1   install without compiling anything: the pure-Python
                             reference backend runs (and `import fastgrad` says so)
    FASTGRAD_DEBUG=1         Cython bounds checks and wraparound on, -O0 -g
"""

import hashlib
import os
import runpy
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

PURE_PYTHON = os.environ.get("FASTGRAD_PURE_PYTHON", "") not in ("", "0")
DEBUG = os.environ.get("FASTGRAD_DEBUG", "") not in ("", "0")
SRC = os.path.join("src", "fastgrad")

# The modules compiled in Cython's pure-Python mode, the one list of them: module name →
# whether Cython reads its type hints (True for modules written with Cython's hints; False
# keeps annotations as documentation, so that ``lr: float`` never becomes a C type that
# refuses bad input before the function's own check can name it). Python semantics
# throughout: bounds checks, wraparound and Python division stay on. An editable install
# (pip install -e .) leaves them uncompiled, so an edited .py takes effect at once.
# _backend, optim and nn.losses are compiled too (annotation_typing off): interpreted, a
# W1-f32 eager step took 319k instructions against 308k compiled and 296k before the
# registry work (callgrind; 2.2 % at W1-f64, 0.8 % at W4), for ~15 % more build time.
# The tape's own modules are on every step's path: _saved and _factored interpreted cost a
# per-example step ~4 % more instructions (callgrind), so they are compiled with it.
PURE_MODE = {"_tape": True, "_ops": True, "_tensor": True, "_saved": True, "_factored": True, "optim": False, "nn.losses": False, "_backend": False}

KERNEL_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}
PYTHON_DIRECTIVES = {"language_level": 3, "binding": True}

NO_COMPILER = (
    "fastgrad: no working C compiler with the Python headers ({reason}). Install one "
    "(Debian/Ubuntu: apt install gcc python3-dev; Fedora: dnf install gcc python3-devel; "
    "macOS: xcode-select --install; Windows: Microsoft C++ Build Tools), or set "
    "FASTGRAD_PURE_PYTHON=1 to install without compiling (the pure-Python reference "
    "backend, several times slower)."
)


def _kernel_extension(name, source):
    csrc = os.path.join(SRC, "csrc")
    headers = {os.path.join(csrc, h) for h in os.listdir(csrc) if h.endswith(".h")}
    headers.add(os.path.join(csrc, "fg_opcodes.h"))  # generated at build time
    return Extension(name, [source], define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                     include_dirs=[csrc], depends=sorted(headers) + [os.path.join(SRC, "_opcodes.py")])


def _python_extension(name):
    ext = Extension(f"fastgrad.{name}", [os.path.join(SRC, *name.split(".")) + ".py"])
    ext.cython_directives = dict(PYTHON_DIRECTIVES, annotation_typing=PURE_MODE[name])
    return ext


def extensions():
    if PURE_PYTHON:
        return []
    kernels = [
        _kernel_extension("fastgrad.backends._cykernels", os.path.join(SRC, "backends", "_cykernels.pyx")),
        _kernel_extension("fastgrad._replay", os.path.join(SRC, "_replay.pyx")),
    ]
    for ext in kernels:
        ext.cython_directives = KERNEL_DIRECTIVES
    return kernels + [_python_extension(name) for name in PURE_MODE]


class build_ext(_build_ext):
    """Cythonize, then compile every extension, one job per CPU."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        self.force = self.force or DEBUG  # other directives and flags: regenerate everything

    def run(self):
        super().run()
        if self.inplace or self.editable_mode:
            self._remove_strays()
        if self.inplace and not self.editable_mode:
            self._write_build_info()

    def _remove_strays(self):
        """In place: a compiled module in src/ that this build no longer makes (a module
        taken off PURE_MODE) would shadow its .py at import. Remove it."""
        built = {ext.name for ext in self.extensions}
        suffix = self.get_ext_filename("x")[1:]
        for folder, _, files in os.walk(SRC):
            for file in files:
                if file.endswith(suffix):
                    module = os.path.relpath(os.path.join(folder, file[: -len(suffix)]), "src")
                    if module.replace(os.sep, ".") not in built:
                        print(f"removing {os.path.join(folder, file)}: not built any more, its .py runs")
                        os.remove(os.path.join(folder, file))

    def build_extensions(self):
        self._check_compiler()
        if self.editable_mode:
            self._leave_python_uncompiled()
        self._write_opcodes_header()
        self._cythonize()
        args, link_args = self._flags()
        for ext in self.extensions:
            ext.extra_compile_args = list(args)
            ext.extra_link_args = list(link_args)
            if ext.name in ("fastgrad.backends._cykernels", "fastgrad._replay"):
                import numpy

                ext.include_dirs.append(numpy.get_include())
        super().build_extensions()

    def _check_compiler(self):
        """Compile a file that includes Python.h: fail with one line saying what to
        install, instead of a compiler error per extension."""
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "fastgrad_check.c")
            with open(source, "w", encoding="utf-8") as f:
                f.write("#include <Python.h>\nint fastgrad_check(void) { return 0; }\n")
            try:
                self.compiler.compile([source], output_dir=tmp, include_dirs=self.include_dirs)
            except Exception:  # CompileError, or the compiler's executable is missing
                compiler = (getattr(self.compiler, "compiler_so", None) or ["the C compiler"])[0]
                reason = f"{compiler} could not compile a file that includes Python.h"
                raise SystemExit(NO_COMPILER.format(reason=reason)) from None

    def _leave_python_uncompiled(self):
        """Editable install: the pure-Python-mode modules stay .py (an edited file takes
        effect at the next import), and compiled copies an earlier in-place build left
        beside them go, so they cannot shadow it."""
        python_mode = {f"fastgrad.{name}" for name in PURE_MODE}
        self.extensions = [ext for ext in self.extensions if ext.name not in python_mode]
        suffix = self.get_ext_filename("x")[1:]
        for name in PURE_MODE:
            stale = os.path.join(SRC, *name.split(".")) + suffix
            if os.path.exists(stale):
                os.remove(stale)
        info = os.path.join(SRC, "_build_info.py")
        if os.path.exists(info):
            os.remove(info)

    @staticmethod
    def _write_opcodes_header():
        """csrc/fg_opcodes.h from _opcodes.py (rewritten only when it changes)."""
        text = runpy.run_path(os.path.join(SRC, "_opcodes.py"))["c_header"]()
        path = os.path.join(SRC, "csrc", "fg_opcodes.h")
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)

    def _cythonize(self):
        """Generate the C of every extension into build/ (processes in parallel). A .c
        newer than the extension's own sources and headers is reused: pip builds in the
        source tree, so a second `pip install .` compiles nothing that did not change
        (cythonize alone would redo the kernels: NumPy's .pxd files in pip's fresh build
        environment are always newer)."""
        from Cython.Build import cythonize

        by_directives = {}
        for ext in self.extensions:
            generated = os.path.join(self.build_temp, os.path.splitext(ext.sources[0])[0] + ".c")
            if not self.force and os.path.exists(generated) and all(
                    os.path.getmtime(f) < os.path.getmtime(generated) for f in ext.sources + ext.depends
                    if os.path.exists(f)):
                ext.sources = [generated]
                continue
            by_directives.setdefault(repr(sorted(ext.cython_directives.items())), []).append(ext)
        for group in by_directives.values():
            done = cythonize(group, compiler_directives=group[0].cython_directives, build_dir=self.build_temp,
                             nthreads=self.parallel if len(group) > 1 else 0, quiet=True, force=self.force)
            for ext, generated in zip(group, done):
                ext.sources = generated.sources

    def _flags(self):
        """Portable optimisation flags, no debug information (FASTGRAD_DEBUG: -O0 -g)."""
        if self.compiler.compiler_type == "msvc":
            return (["/Od", "/Zi"] if DEBUG else ["/O2"]), []
        if DEBUG:
            return ["-O0", "-g"], []
        # No -march=native (a wheel must run on other CPUs): the kernels pick AVX2/AVX-512
        # variants at import. No -ffast-math: it would drop NaN/inf.
        # Linked stripped (-s): the symbol tables were 13 % of the extensions' bytes; the
        # dynamic symbols Python imports by (PyInit_*) stay.
        link = ["-Wl,-s"] if sys.platform.startswith("linux") else []
        return ["-O3", "-g0"], link

    def _write_build_info(self):
        """For an in-place build (python setup.py build_ext --inplace): the SHA-256 of each
        compiled .py, so that `import fastgrad` warns when one is edited after it."""
        with open(os.path.join(SRC, "_build_info.py"), "w", encoding="utf-8") as info:
            info.write('"""Written by setup.py: SHA-256 of the Python sources compiled in place."""\n\n')
            info.write("SOURCES = {\n")
            for name in PURE_MODE:
                with open(os.path.join(SRC, *name.split(".")) + ".py", "rb") as source:
                    info.write(f"    {name!r}: {hashlib.sha256(source.read()).hexdigest()!r},\n")
            info.write("}\n")


setup(ext_modules=extensions(), cmdclass={"build_ext": build_ext})
