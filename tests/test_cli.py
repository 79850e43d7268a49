"""The ``fastgrad`` command line: train end to end, bad options, bench delegation."""

import re
import subprocess
import sys
import types

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import cli

ACCURACY_LINE = re.compile(r"^test accuracy: (0\.\d{3}|1\.000)$", re.M)
BACKENDS = fg.available_backends()


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def accuracy(out):
    match = ACCURACY_LINE.search(out)
    assert match, out
    return float(match.group(1))


def test_default_train_reaches_95_percent(capsys):
    code, out, _ = run(capsys, "train", "--no-progress")
    assert code == 0
    assert accuracy(out) >= 0.95
    assert re.search(r"^final loss: \d+\.\d{4}$", out, re.M)
    assert "CC BY 4.0" in out  # the data set's attribution is shown


def test_short_train_with_progress_bar(capsys):
    pytest.importorskip("tqdm")
    code, out, err = run(capsys, "train", "--epochs", "2", "--hidden", "16,8")
    assert code == 0
    accuracy(out)
    assert "MLP 64-16-8-10" in out
    assert "epoch 2/2" in err and "loss=" in err  # tqdm writes to stderr


def test_plain_lines_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    code, out, _ = run(capsys, "train", "--epochs", "2")
    assert code == 0
    assert re.search(r"^epoch 1/2  loss \d+\.\d{4}$", out, re.M)
    accuracy(out)


def test_quiet_prints_only_the_results(capsys):
    code, out, err = run(capsys, "train", "--epochs", "1", "--quiet")
    assert code == 0
    assert out.splitlines()[0].startswith("final loss: ")
    assert len(out.splitlines()) == 2 and err == ""


def test_same_results_on_both_backends(capsys):
    if len(BACKENDS) < 2:
        pytest.skip("only one backend is built")
    parser = cli.build_parser()
    results = {}
    for backend in BACKENDS:
        args = parser.parse_args(
            ["train", "--epochs", "3", "--backend", backend, "--quiet", "--dtype", "float64"]
        )
        results[backend] = cli.train(args, out=open("/dev/null", "w"))
    a, b = results.values()
    np.testing.assert_allclose(a["batch_losses"], b["batch_losses"], rtol=1e-10)
    assert a["test_accuracy"] == b["test_accuracy"]
    for backend in BACKENDS:  # float32, the default, within float32 tolerance
        args = parser.parse_args(["train", "--epochs", "2", "--backend", backend, "--quiet"])
        results[backend] = cli.train(args, out=open("/dev/null", "w"))
    a, b = results.values()
    np.testing.assert_allclose(a["batch_losses"], b["batch_losses"], rtol=1e-4)


def test_seed_makes_runs_repeatable(capsys):
    outputs = [
        run(capsys, "train", "--epochs", "1", "--seed", str(s), "--quiet")[1] for s in (3, 3, 4)
    ]
    assert outputs[0] == outputs[1] != outputs[2]


def test_other_options(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "train",
        "--epochs",
        "2",
        "--loss",
        "squared",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--dtype",
        "float64",
        "--activation",
        "tanh",
        "--hidden",
        "none",
        "--no-progress",
        "--save",
        str(tmp_path / "m.npz"),
    )
    assert code == 0
    assert "MLP 64-10" in out and "squared loss" in out and "float64" in out
    accuracy(out)
    from fastgrad import nn

    model = nn.MLP([64, 10], dtype=np.float64)
    model.load(tmp_path / "m.npz")


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    code, out, _ = run(capsys, "train", "--epochs", "2", "--no-progress", "--plot", str(path))
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved loss curve to {path}" in out


def test_plot_without_matplotlib_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--plot", str(tmp_path / "loss.png")])
    assert exc.value.code == 2
    assert "needs matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--epochs", "0"], "--epochs: must be a positive integer, got 0"),
        (["--epochs", "ten"], "--epochs: expected a positive integer"),
        (["--batch-size", "-3"], "--batch-size: must be a positive integer"),
        (["--batch-size", "5000"], "--batch-size: 5000 is larger than the 1442 training"),
        (["--lr", "-0.1"], "--lr: must be a finite number >= 0"),
        (["--lr", "nan"], "--lr: must be a finite number >= 0"),
        (["--hidden", "100,0"], "--hidden: hidden layer sizes must be positive"),
        (["--hidden", "ten"], "--hidden: expected comma-separated positive integers"),
        (["--backend", "gpu"], "--backend: invalid choice: 'gpu'"),
        (["--dtype", "float16"], "--dtype: invalid choice: 'float16'"),
        (["--loss", "l1"], "--loss: invalid choice"),
        (["--plot", "/no/such/dir/loss.png"], "--plot: directory"),
    ],
)
def test_bad_options_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "usage: fastgrad train" in err


def test_no_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def test_divergence_is_reported(capsys):
    code, _, err = run(
        capsys,
        "train",
        "--epochs",
        "3",
        "--lr",
        "1e6",
        "--momentum",
        "0.9",
        "--no-progress",
        "--loss",
        "squared",
    )
    assert code == 1
    assert "try a smaller --lr" in err


def test_bench_is_delegated(monkeypatch):
    seen = []
    fake = types.ModuleType("fastgrad.bench.runner")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fastgrad.bench.runner", fake)
    assert cli.main(["bench", "--workload", "W1", "--quiet"]) == 0
    assert seen == [["--workload", "W1", "--quiet"]]


def test_bench_missing_is_a_clear_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastgrad.bench.runner", None)
    assert cli.main(["bench"]) == 1
    assert "benchmark runner is not available" in capsys.readouterr().err


def test_python_dash_m(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastgrad", "train", "--epochs", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    accuracy(proc.stdout)
    proc = subprocess.run(
        [sys.executable, "-m", "fastgrad", "train", "--lr", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "--lr" in proc.stderr


def test_learning_rate_default_follows_the_optimizer():
    parser = cli.build_parser()
    for optimizer, lr in (("sgd", 0.1), ("adam", 0.01)):
        args = parser.parse_args(["train", "--optimizer", optimizer, "--epochs", "1", "--quiet"])
        cli.train(args, out=open("/dev/null", "w"))
        assert args.lr == lr


@pytest.mark.parametrize("loss", ["cross-entropy", "squared"])
def test_compiled_training_matches_eager(capsys, loss):
    argv = ["train", "--epochs", "2", "--quiet", "--loss", loss, "--dtype", "float64"]
    (code_e, eager, _), (code_c, compiled, _) = run(capsys, *argv), run(capsys, *argv, "--compile")
    assert code_e == code_c == 0
    final = lambda out: float(re.search(r"final loss: ([\d.]+)", out).group(1))
    assert final(compiled) == pytest.approx(final(eager), rel=1e-3)
    assert accuracy(compiled) == pytest.approx(accuracy(eager), abs=0.005)
