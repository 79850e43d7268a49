"""Installing without a compiler (issue 14): one clear line, or FASTGRAD_PURE_PYTHON=1.

Each test builds a wheel with pip from a copy of the source tree (no compiling: seconds
with the running environment's setuptools and Cython, half a minute when pip has to fetch
them into an isolated build environment). They do not depend on the kernel backend, so
the suite's reference-backend run skips them. The compiled build itself, the wheel's
contents and the sdist are checked by .ci/run; the import time is measured here only as
a sanity bound (the figure is in the README).
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree (setup.py)"),
    pytest.mark.skipif(os.environ.get("FASTGRAD_BACKEND") == "reference",
                       reason="packaging does not depend on the backend: the default run checks it"),
]


def source_copy(tmp_path):
    """The files a build reads, without build products (compiled or generated)."""
    dest = tmp_path / "src-tree"
    dest.mkdir()
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", "__pycache__", "_build_info.py", "fg_opcodes.h", "*.egg-info"))
    return dest


def build_isolation_args():
    """--no-build-isolation when this environment can build (fast), else pip's default."""
    try:
        import setuptools

        ok = int(setuptools.__version__.split(".")[0]) >= 77 and importlib.util.find_spec("Cython")
    except ImportError:
        ok = False
    return ["--no-build-isolation"] if ok else []


def pip_wheel(tmp_path, **env):
    source = source_copy(tmp_path)
    out = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *build_isolation_args(), "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )
    return proc, sorted(out.glob("*.whl")) if out.exists() else []


def test_without_a_compiler_the_build_fails_with_one_line_saying_what_to_install(tmp_path):
    proc, wheels = pip_wheel(tmp_path, CC="/bin/false", FASTGRAD_PURE_PYTHON="0")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not wheels, output[-2000:]
    line = next((x for x in output.splitlines() if "fastgrad: no working C compiler" in x), None)
    assert line is not None, output[-2000:]
    assert "apt install gcc python3-dev" in line and "FASTGRAD_PURE_PYTHON=1" in line


def test_pure_python_install_runs_on_the_reference_backend(tmp_path):
    proc, wheels = pip_wheel(tmp_path, CC="/bin/false", FASTGRAD_PURE_PYTHON="1")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    assert len(wheels) == 1 and wheels[0].name.endswith("-py3-none-any.whl"), wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "fastgrad/_tape.py" in names and "fastgrad/datasets/data/digits.csv.gz" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c", ".h", ".pyx"))]

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheels[0])],
                   check=True, capture_output=True, timeout=300)
    code = ("import fastgrad as fg; w = fg.tensor([1.0, 2.0], requires_grad=True); "
            "(w * w).sum().backward(); print(fg.get_backend(), w.grad.tolist())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target), "FASTGRAD_BACKEND": ""})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["reference", "[2.0,", "4.0]"]
    assert "RuntimeWarning" in run.stderr and "reference backend" in run.stderr


def test_import_does_not_load_scipy_and_is_quick():
    """scipy.linalg (~0.3 s) loads when a product first needs BLAS, not at import. The
    bound is generous: the figure itself (≈0.2 s beyond NumPy here) is in the README."""
    code = ("import time, sys; import numpy; t = time.perf_counter(); import fastgrad; "
            "print(time.perf_counter() - t, 'scipy.linalg' in sys.modules)")
    times = []
    for _ in range(3):  # the quickest of three: a loaded machine slows any one of them
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        seconds, scipy_loaded = run.stdout.split()
        assert scipy_loaded == "False"
        times.append(float(seconds))
    assert min(times) < 1.0, times
