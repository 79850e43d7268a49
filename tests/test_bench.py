"""The benchmark definitions and runner, checked without timing anything that matters.

Every available implementation must compute NumPy-by-hand's gradients and SGD step on a
tiny version of each standard workload; peers that are not installed are skipped.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _forked import SRC, run_forked

import fastgrad
from fastgrad.bench import impls, runner, workloads

TINY = [w.tiny() for w in workloads.STANDARD]
CHECKOUT = Path(__file__).resolve().parents[1]
PEERS_DIR = CHECKOUT / "benchmarks" / "peers"
# The peers live in the checkout, not the package; an unpacked sdist without them tests
# what the installed package has.
PEERS = impls.load_peers(PEERS_DIR) if PEERS_DIR.is_dir() else impls.PEERS_HOWTO


def _ids(ws):
    return [w.name for w in ws]


# -- workload definitions ------------------------------------------------------------


def test_standard_workloads_match_spec():
    by_name = workloads.WORKLOADS
    assert [w.family for w in workloads.STANDARD] == ["W1", "W1", "W2", "W3", "W4", "S1", "S2"]
    assert by_name["W1-f64"].sizes == (784, 100, 10) and by_name["W1-f64"].batch == 1
    assert {by_name["W1-f64"].dtype, by_name["W1-f32"].dtype} == {"float64", "float32"}
    assert by_name["W2"].sizes == (784, 256, 10) and by_name["W2"].batch == 64
    assert by_name["W3"].sizes == (784, 1024, 1024, 10) and by_name["W3"].batch == 256
    assert by_name["W4"].sizes == (64,) + (64,) * 10 + (10,) and by_name["W4"].batch == 32
    assert by_name["S2"].n_ops == 1000 and by_name["S1"].n_ops == 5
    for name in ("W2", "W3", "W4"):
        assert by_name[name].dtype == "float32"


@pytest.mark.parametrize("name, ratio", [("W1-f64", 1.0), ("W2", 1.0), ("W3", 1.57), ("W4", 1.9)])
def test_flop_counts_give_the_lectures_backward_forward_ratio(name, ratio):
    f = workloads.get(name).flops()
    assert f["step"] == f["forward"] + f["backward"]
    assert f["backward"] / f["forward"] == pytest.approx(ratio, abs=0.015)


def test_forward_flops_are_two_per_weight_per_example():
    w = workloads.get("W2")
    assert w.flops()["forward"] == 2 * 64 * (784 * 256 + 256 * 10)


@pytest.mark.parametrize("workload", workloads.STANDARD, ids=_ids(workloads.STANDARD))
def test_data_is_seeded_and_typed(workload):
    a, b = workload.make_data(), workload.make_data()
    if workload.kind == "scalar":
        assert a.t == b.t and a.consts == b.consts
        assert len(a.consts) == workload.blocks
        return
    assert a.x.dtype == np.dtype(workload.dtype)
    np.testing.assert_array_equal(a.x, b.x)
    for (W, bias), (fan_in, fan_out) in zip(
        a.params, zip(workload.sizes, workload.sizes[1:], strict=False), strict=False
    ):
        assert W.shape == (fan_out, fan_in) and bias.shape == (fan_out,)
        assert W.dtype == np.dtype(workload.dtype)


def test_select_by_family_and_comma_list():
    assert [w.name for w in workloads.select("W1")] == ["W1-f64", "W1-f32"]
    assert [w.name for w in workloads.select(["S1,W2", "s2"])] == ["S1", "W2", "S2"]
    assert len(workloads.select(None)) == len(workloads.STANDARD)
    with pytest.raises(ValueError, match="unknown workload 'W9'.*W1"):
        workloads.select("W9")


def test_sweeps_scale_as_the_lecture_says():
    depth = workloads.depth_sweep(depths=(1, 2, 4))
    hidden = [w.flops()["forward"] - depth[0].flops()["forward"] for w in depth]
    assert hidden[1] * 3 == hidden[2]  # each extra hidden layer adds the same FLOPs
    width = workloads.width_sweep(widths=(64, 128))
    assert width[1].flops()["step"] == 4 * width[0].flops()["step"]


# -- every implementation against NumPy by hand -----------------------------------------


def _impl_or_skip(name, workload):
    reason = impls.available(name, workload)
    if reason:
        pytest.skip(reason)
    return impls.create(name, workload)


# JAX compiles per shape (about 0.5 s each): a representative subset keeps this file fast.
_JAX_SUBSET = {"W1-f64-tiny", "S2-tiny"}
CASES = [
    pytest.param(name, w, id=f"{w.name}-{name}")
    for w in TINY
    for name in impls.IMPLS
    if name != impls.BASELINE and (not name.startswith("jax") or w.name in _JAX_SUBSET)
]


@pytest.mark.parametrize("name, workload", CASES)
def test_gradients_and_step_equal_numpy_by_hand(name, workload):
    impl = _impl_or_skip(name, workload)
    assert impls.check_gradients(impl) <= impls.tolerance(workload)
    ref = impls.create(impls.BASELINE, workload)
    for _ in range(2):
        ref.step()
        with impl.context():
            impl.step()
    for got, want in zip(impl.parameters(), ref.parameters(), strict=False):
        assert impls.relative_error(got, want) <= impls.tolerance(workload)
    start = workload.make_data()
    moved = start.params[0][0] if workload.kind == "mlp" else start.t
    assert not np.array_equal(ref.parameters()[0], moved)  # the step really moved them


@pytest.mark.parametrize("name, workload", CASES)
def test_phases_run_and_forward_leaves_parameters_alone(name, workload):
    impl = _impl_or_skip(name, workload)
    before = impl.parameters()
    with impl.context():
        impl.forward()
        impl.forward_backward()
        impl.forward_backward()  # twice: gradients must not accumulate across calls
    for got, want in zip(impl.parameters(), before, strict=False):
        np.testing.assert_array_equal(got, want)
    assert impls.check_gradients(impl) <= impls.tolerance(workload)


@pytest.mark.parametrize(
    "workload", [workloads.get("W4").tiny(), workloads.get("S2").tiny()], ids=["W4-tiny", "S2-tiny"]
)
def test_compiled_impl_replays_one_trace_per_phase(workload):
    impl = _impl_or_skip("fastgrad-compiled", workload)
    with impl.context():
        for _ in range(3):
            impl.forward()
            impl.forward_backward()
            impl.step()
    middle = impl._fwd_bwd if workload.kind == "mlp" else impl._grad
    assert [f.traces for f in (impl._forward, middle, impl._step)] == [1, 1, 1]
    assert impl.compile_seconds > 0


def test_numpy_by_hand_matches_finite_differences():
    """The baseline itself is checked against central differences in float64."""
    w = workloads.mlp("fd", (6, 5, 4, 3), 3, "float64")
    data = w.make_data()
    grads = impls.create("numpy", w, data).gradients()
    eps = 1e-6
    for layer in range(3):
        for which in (0, 1):  # W, then b
            array = data.params[layer][which]
            grad = grads[2 * layer + which]
            for index in [(0,) * array.ndim, tuple(s - 1 for s in array.shape)]:
                values = []
                for sign in (1, -1):
                    d = data.copy()
                    d.params[layer][which][index] += sign * eps
                    values.append(impls.create("numpy", w, d).forward())
                fd = (values[0] - values[1]) / (2 * eps)
                assert abs(fd - grad[index]) <= 1e-7 * max(1.0, np.abs(grad).max())


@pytest.mark.parametrize("name", ["S1", "S2"])
def test_scalar_baseline_matches_finite_differences(name):
    w = workloads.get(name)
    data = w.make_data()
    _, dt = impls.create("numpy", w, data).forward_backward()
    eps = 1e-6
    up = impls.create("numpy", w, workloads.ScalarData(data.t + eps, data.consts)).forward()
    down = impls.create("numpy", w, workloads.ScalarData(data.t - eps, data.consts)).forward()
    assert (up - down) / (2 * eps) == pytest.approx(dt, rel=1e-6)


def test_wrong_gradients_are_caught():
    w = workloads.get("W2").tiny()

    class Broken(impls.NumpyMLP):
        def gradients(self):
            g = super().gradients()
            g[1] = g[1] * 1.01
            return g

    with pytest.raises(impls.GradientMismatch, match="gradient of b1"):
        impls.check_gradients(Broken(w, w.make_data()))


def test_unknown_and_missing_implementations_give_reasons():
    assert "unknown implementation" in impls.available("nope")
    assert "no scalar version" in impls.available("numpy-plain", workloads.get("S1"))


# -- the runner and `fastgrad bench` ----------------------------------------------------


def test_summarise_takes_per_round_ratios():
    w = workloads.get("W2")
    times = {
        "numpy": {"forward": [1.0, 2.0, 1.0], "fwd+bwd": [3.0, 6.0, 3.0], "step": [4.0, 8.0, 4.0]},
        "other": {"forward": [2.0, 4.0, 3.0], "fwd+bwd": [6.0, 12.0, 6.0], "step": [8.0, 8.0, 8.0]},
    }
    rows = runner.summarise(w, times)
    # Ratios are taken within a round, so the slow second round cancels out.
    assert rows["other"]["ratio"]["forward"] == {"median": 2.0, "min": 2.0, "max": 3.0}
    assert rows["other"]["ratio"]["step"]["min"] == 1.0
    assert rows["numpy"]["bwd_over_fwd"]["median"] == 2.0
    assert rows["numpy"]["step_gflops"] == pytest.approx(w.flops()["step"] / 4.0 / 1e9)


def test_measure_visits_every_pair_each_round():
    w = workloads.get("S1")
    chosen = {"numpy": impls.create("numpy", w)}
    times = runner.measure(chosen, rounds=2, min_time=1e-5, seed=1)
    assert set(times["numpy"]) == set(runner.PHASES)
    assert all(len(v) == 2 and all(t > 0 for t in v) for v in times["numpy"].values())


def test_noise_is_named_instead_of_printing_negative_ratios():
    w = workloads.get("S1")
    times = {
        "numpy": {"forward": [1.0, 1.0, 1.0], "fwd+bwd": [3.0, 3.0, 3.0], "step": [4.0, 4.0, 4.0]},
        # round 2: forward 5× slower than usual (a hiccup), slower than its fwd+bwd
        "other": {"forward": [1.0, 5.0, 1.0], "fwd+bwd": [3.0, 3.0, 3.0], "step": [4.0, 4.0, 4.0]},
    }
    rows = runner.summarise(w, times)
    reasons = runner.noise(rows)
    assert reasons == [
        {"impl": "other", "phase": "forward", "ratio_min": 1.0, "ratio_max": 5.0},
        {"impl": "other", "phase": "bwd/fwd", "forward_slower_than_fwd_bwd": True},
    ]
    entry = {
        "name": "S1",
        "description": "S1",
        "flops": w.flops(),
        "n_ops": w.n_ops,
        "results": rows,
        "compile_s": {},
        "skipped": {},
        "noisy": reasons,
    }
    report = {
        "machine": {"cpu": "x", "cpus": 1},
        "unavailable": {},
        "workloads": [entry],
        "settings": {"thread_mode": "1 thread", "rounds": 3, "baseline": "numpy"},
    }
    table = runner.format_table(report)
    (other,) = [line for line in table.splitlines() if line.startswith("other")]
    assert "noisy !" in other and "1.00 (1.00–5.00) !" in other and "-" not in other.split()[-2]
    assert (
        "too noisy to trust (marked !): 1 ratio spanned more than 2x over the rounds; a forward "
        "timed slower than forward + backward (other)" in table
    )
    (numpy_row,) = [line for line in table.splitlines() if line.startswith("numpy")]
    assert "!" not in numpy_row and "2.00" in numpy_row  # bwd/fwd = (3 − 1) / 1


def test_bench_defaults_to_one_thread():
    parser = runner.build_parser()
    args = parser.parse_args([])
    assert args.threads == "1"
    help_text = " ".join(parser.format_help().split())
    assert help_text.count("(default: 1)") == 1 and "(default: None)" not in help_text
    with runner.thread_mode(args.threads) as mode:
        assert mode == "1 thread"
        if hasattr(os, "sched_getaffinity"):
            assert len(os.sched_getaffinity(0)) == 1


def test_missing_peers_are_reported_once(capsys, monkeypatch):
    # Outside a checkout (no peers loaded) every peer is a placeholder that says how to
    # get the peers; the table says it once, whatever the number of workloads. Outside a
    # checkout: no peers directory to load (else the run loads the real peers, unless an
    # earlier test happened to load them first).
    monkeypatch.setattr(impls, "find_peers", lambda directory=None: None)
    for name in impls.PEER_NAMES:
        monkeypatch.setitem(impls.IMPLS, name, impls.Entry(name, None, None, lambda: impls.PEERS_HOWTO, name))
        monkeypatch.delitem(impls._reasons, name, raising=False)
    argv = ["--workload", "S1,S2", "--repeat", "1", "--min-time", "0.0002", "--impl", "numpy,torch,autograd,jax-jit"]
    assert runner.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.count("benchmarks/peers/") == 1
    assert "not run: torch, autograd, jax-jit: the peers' benchmark code is not part of the installed package" in out
    assert err.count("not running torch") == 1 and "skipping torch" not in err
    for name in impls.PEER_NAMES:
        monkeypatch.delitem(impls._reasons, name, raising=False)


def test_peers_live_outside_the_package():
    package = Path(impls.__file__).parent
    source = "".join(p.read_text() for p in package.glob("*.py"))
    for peer in ("class Torch", "class Jax", "class Autograd", "import jax", "import autograd"):
        assert peer not in source, peer
    if not PEERS_DIR.is_dir():
        pytest.skip("no benchmarks/peers/ beside the tests (an unpacked sdist)")
    assert PEERS is None  # found and loaded from the checkout
    assert impls.IMPLS["torch"].mlp.__module__.startswith("fastgrad_bench_peers")


def test_peers_are_found_from_a_checkout(tmp_path, monkeypatch):
    if not PEERS_DIR.is_dir():
        pytest.skip("no benchmarks/peers/ beside the tests (an unpacked sdist)")
    monkeypatch.delenv("FASTGRAD_BENCH_PEERS", raising=False)
    src = Path(fastgrad.__file__).resolve().parents[1]
    if (src.parent / "benchmarks" / "peers").is_dir():  # running from the checkout's src/
        assert impls.find_peers() == src.parent / "benchmarks" / "peers"
    monkeypatch.chdir(tmp_path)
    assert impls.find_peers("elsewhere") == Path("elsewhere")
    monkeypatch.setenv("FASTGRAD_BENCH_PEERS", str(PEERS_DIR))
    assert impls.find_peers() == PEERS_DIR
    assert "no peers package" in impls.load_peers(tmp_path)


BENCH_ERRORS = [
    (["--json", "no/such/dir/b.json"], "argument --json: directory"),
    (["--repeat", "0"], "argument --repeat/-r: must be a positive integer, got 0"),
    (["--workload", "W9"], "argument --workload: unknown workload 'W9'"),
    (["--impl", "nope"], "argument --impl: unknown implementation 'nope'"),
    (["--peers", "."], "argument --peers: no peers package"),
]


def test_bench_errors_are_one_line_before_any_timing(tmp_path):
    runs = run_forked([[str(i), ["bench", *argv]] for i, (argv, _) in enumerate(BENCH_ERRORS)], tmp_path)
    for i, (argv, message) in enumerate(BENCH_ERRORS):
        proc = runs[str(i)]
        assert proc.returncode == 2, (argv, proc.stderr)
        assert proc.stderr.startswith("fastgrad bench: error: ") and len(proc.stderr.splitlines()) == 1
        assert message in proc.stderr and proc.stdout == ""
    # And once through a fresh interpreter: an unwritable --json stops it before any timing.
    proc = subprocess.run(
        [sys.executable, "-m", "fastgrad", "bench", "--json", "/proc/bench.json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])),
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr
        == "fastgrad bench: error: argument --json: cannot write in directory '/proc' "
        + (proc.stderr.split("'/proc' ", 1)[1])
    )
    assert len(proc.stderr.splitlines()) == 1


def test_bench_main_prints_a_table(capsys, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--workload", "S1", "--repeat", "2", "--min-time", "0.0005", "-q"]
    argv += ["--impl", "numpy,fastgrad-cython,fastgrad-reference", "--json", str(out)]
    assert runner.main(argv) == 0
    text = capsys.readouterr().out
    assert "[S1]" in text and "numpy" in text and "step / numpy" in text
    report = json.loads(out.read_text())
    (entry,) = report["workloads"]
    assert entry["name"] == "S1"
    assert entry["results"]["numpy"]["ratio"]["step"]["median"] == 1.0
    for name in ("fastgrad-cython", "fastgrad-reference"):
        assert name in entry["results"] or name in entry["skipped"] or name in report["unavailable"]


def test_bench_main_default_impls_and_skips(capsys):
    # All default peers: the missing ones are listed with a reason, never an error.
    argv = ["--workload", "S1", "--repeat", "1", "--min-time", "0.0002", "-q"]
    assert runner.main(argv) == 0
    text = capsys.readouterr().out
    for name in runner.DEFAULT_IMPLS:
        assert name in text


def test_bench_main_rejects_bad_arguments(capsys):
    assert runner.main(["--workload", "W9"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    assert runner.main(["--impl", "nope", "--workload", "S1"]) == 2
    assert "unknown implementation" in capsys.readouterr().err
    tmp = Path("/proc/fastgrad-bench.json")
    assert runner.main(["--workload", "S1", "--json", str(tmp)]) == 2  # before any timing
    assert "argument --json" in capsys.readouterr().err


def test_bench_list(capsys):
    assert runner.main(["--list"]) == 0
    text = capsys.readouterr().out
    assert "W3" in text and "numpy" in text and "jax-jit" in text
