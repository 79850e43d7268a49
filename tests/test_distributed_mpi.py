"""fastgrad.distributed on real MPI: ``mpiexec -n 2`` and ``-n 3`` subprocesses.

Skipped only when mpi4py is not installed (``pip install mpi4py mpich`` gives MPI and an
``mpiexec``). Every subprocess runs in its own session under a timeout, and the whole
session is killed when it expires: a hanging job fails the test instead of hanging it.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")

TIMEOUT = 120  # s for a whole job; a hang is caught here
FAIL_WITHIN = 15  # s from a rank's failure to the end of the job (measured: about 1-2 s)


def _mpiexec():
    """The mpiexec of the MPI that mpi4py was built against: beside this Python first
    (pip's mpich puts it there), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.path.exists(here) else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpi4py is installed but no mpiexec was found (pip install mpich)")
    return found


def _run(argv, timeout=TIMEOUT, cwd=None):
    """(exit code, stdout, stderr, seconds); kills the job's whole session on timeout."""
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    import fastgrad

    if os.path.dirname(os.path.dirname(fastgrad.__file__)) == src:  # an in-place build
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(argv)} did not end within {timeout} s (a hang)\n{out}\n{err}")
    return proc.returncode, out, err, time.perf_counter() - start


def _mpi(n, *args, **kwargs):
    return _run([_mpiexec(), "-n", str(n), sys.executable, *args], **kwargs)


@pytest.mark.parametrize(
    "n, batch, compiled",  # 3 × 4: uneven, last slice empty; compiled: the Allreduce in the plan
    [(2, 50, False), (3, 50, False), (3, 4, False), (2, 50, True), (3, 4, True)],
)
def test_cli_n_ranks_match_one_process(tmp_path, n, batch, compiled):
    common = [
        "-m",
        "fastgrad",
        "train",
        "--dtype",
        "float64",
        "--epochs",
        "2" if batch > 8 else "1",  # (a batch of 4 is 360 steps an epoch)
        "--batch-size",
        str(batch),
        "--no-progress",
    ]
    code, out, err, _ = _run([sys.executable, *common, "--save", str(tmp_path / "one.npz")])
    assert code == 0, err
    many = ["--distributed", "--compile"] if compiled else ["--distributed"]
    code, out, err, _ = _mpi(n, *common, *many, "--save", str(tmp_path / "many.npz"))
    assert code == 0, err
    assert out.count("test accuracy:") == 1  # only rank 0 prints
    assert f"distributed: {n} processes" in out
    one, many = np.load(tmp_path / "one.npz"), np.load(tmp_path / "many.npz")
    assert sorted(one) == sorted(many)
    for key in one:
        if one[key].dtype.kind in "fc":
            np.testing.assert_allclose(many[key], one[key], rtol=1e-9, atol=1e-12, err_msg=key)
        else:  # the model's description (architecture, classes)
            np.testing.assert_array_equal(many[key], one[key], err_msg=key)


def test_cli_warns_under_mpiexec_without_distributed():
    code, out, err, _ = _mpi(2, "-m", "fastgrad", "train", "--epochs", "1", "--quiet")
    assert code == 0, err
    assert err.count("one of 2 MPI processes without --distributed") == 1
    assert out.count("test accuracy:") == 2  # two independent copies, as warned


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from fastgrad import distributed as dist, nn, optim
    from fastgrad.datasets import load_digits

    mode, failing, when = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    comm = dist.init()
    X, y, _, _ = load_digits()
    model = nn.MLP([64, 32, 10], rng=0)
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
    for step, (xb, yb, n) in enumerate(dist.DistributedLoader(X, y, batch_size=64, seed=0)):
        if comm.rank == failing and step == when:
            if mode == "raise":
                raise ValueError(f"rank {comm.rank} broke on purpose")
            if mode == "exit":
                sys.exit(0)
        opt.zero_grad()
        loss = nn.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step(len(xb), n, loss)
    if mode == "slow-root" and comm.rank == 0:
        time.sleep(3)  # e.g. evaluating and saving while the others have finished
    # One write per line (print writes the text and the newline apart, unbuffered under
    # PYTHONUNBUFFERED): the launcher interleaves the ranks' writes, not their lines.
    sys.stdout.write(f"finished {comm.rank}\\n")
    sys.stdout.flush()
    """
)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(_SCRIPT)
    return str(path)


@pytest.mark.parametrize("n, failing", [(2, 1), (3, 0), (3, 2)])
def test_an_exception_in_one_rank_ends_the_job(script, n, failing):
    code, out, err, seconds = _mpi(n, script, "raise", str(failing), "3")
    assert code != 0
    assert f"ValueError: rank {failing} broke on purpose" in err
    assert f"rank {failing} of {n} failed with ValueError; aborting the job" in err
    assert "finished" not in out
    assert seconds < FAIL_WITHIN


@pytest.mark.parametrize("n", [2, 3])
def test_a_rank_that_exits_early_ends_the_job(script, n):
    code, out, err, seconds = _mpi(n, script, "exit", "1", "3")
    assert code != 0
    assert "rank 1 ended while rank" in err and "waited for it in Allreduce" in err
    assert "finished" not in out
    assert seconds < FAIL_WITHIN


def test_ranks_that_finish_at_different_times_end_normally(script):
    code, out, err, seconds = _mpi(3, script, "slow-root", "-1", "-1")
    assert code == 0, err
    assert sorted(out.split("\n")[:-1]) == ["finished 0", "finished 1", "finished 2"]
    assert "aborting" not in err
    assert seconds >= 3
