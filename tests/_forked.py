"""Run many `fastgrad` command lines, each in a process of its own, without fifty
interpreter starts (the CLI's error-path tests)."""

import json
import os
import subprocess
import sys

import pytest

import fastgrad

SRC = os.path.dirname(os.path.dirname(os.path.abspath(fastgrad.__file__)))


# One interpreter imports fastgrad once and forks a child process per case: each case is
# its own process (own stdout/stderr files, own exit status, a 60 s alarm), running what
# the `fastgrad` console script runs, sys.exit(fastgrad.cli.main(argv)), without paying
# an interpreter start and `import fastgrad` (and matplotlib) fifty times. BLAS is held to one thread so
# that the server holds no threads when it forks.
FORK_SERVER = r"""
import json, os, signal, sys, traceback
from fastgrad import cli
try:  # imported once here rather than in every child that checks a --plot path
    import matplotlib.backend_bases
except ImportError:
    pass

cases, directory = json.load(sys.stdin)
os.chdir(directory)
results = {}
for name, argv in cases:
    out, err = (os.path.join(directory, f".{name}.{s}") for s in ("out", "err"))
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            signal.alarm(60)
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    texts = []
    for path in (out, err):
        with open(path) as f:
            texts.append(f.read())
        os.unlink(path)
    results[name] = [os.waitstatus_to_exitcode(status), *texts]
json.dump(results, sys.__stdout__)
"""


def run_forked(cases, directory):
    """{name: CompletedProcess} for [name, argv] cases, each run in its own forked process."""
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("COLUMNS", None)
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SERVER],
        input=json.dumps([cases, str(directory)]),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return {
        name: subprocess.CompletedProcess(argv, code, out, err)
        for (name, argv), (code, out, err) in zip(cases, json.loads(proc.stdout).values())
    }
