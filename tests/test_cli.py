"""The ``fastgrad`` command line: train / evaluate / predict end to end, and every error path.

Successful runs are checked in-process (fast); each error path runs the command in a
process of its own and checks its exit status and its one line on stderr (forked from one
interpreter that imported fastgrad once: see FORK_SERVER). `python -m fastgrad` itself is
run in fresh interpreters by a few tests.
"""

import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from _forked import run_forked

import fastgrad as fg
from fastgrad import cli, nn
from fastgrad.cli import modelfile
from fastgrad.cli import train as train_cmd
from fastgrad.datasets import load_digits

ACCURACY_LINE = re.compile(r"^test accuracy: (0\.\d{3}|1\.000)$", re.M)
BACKENDS = fg.available_backends()
SRC = os.path.dirname(os.path.dirname(os.path.abspath(fg.__file__)))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def accuracy(out):
    match = ACCURACY_LINE.search(out)
    assert match, out
    return float(match.group(1))


def has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def by_hand(path, X):
    """The saved MLP's class indices for X, in NumPy by hand (σ hidden layers, linear output)."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__fastgrad_model__"]))
        h = X.astype(np.float64)
        n_layers = len(meta["sizes"]) - 1
        for i in range(n_layers):
            W, b = f[f"{2 * i}.weight"], f[f"{2 * i}.bias"]
            h = h @ W.T + b
            if i < n_layers - 1:
                assert meta["activation"] == "sigmoid"
                h = 1 / (1 + np.exp(-h))
    return np.argmax(h, axis=1)


def blobs(n=200, seed=0):
    """Three separable Gaussian blobs in 2-D, labelled by name."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    X = np.array([[0, 0], [3, 0], [0, 3]])[labels] + 0.6 * rng.standard_normal((n, 2))
    return X, np.array(["cat", "dog", "emu"])[labels]


def write_csv(path, X, labels, header="x1,x2,animal"):
    with open(path, "w") as f:
        if header:
            f.write(header + "\n")
        for x, label in zip(X, labels):
            f.write(",".join(f"{v:.6f}" for v in x) + f",{label}\n")


# ------------------------------------------------------------------ train: digits --


def test_default_train_reaches_95_percent(capsys):
    code, out, _ = run(capsys, "train", "--no-progress")
    assert code == 0
    assert accuracy(out) >= 0.95
    assert re.search(r"^final loss: \d+\.\d{4}$", out, re.M)
    assert "CC BY 4.0" in out  # the data set's attribution is shown
    assert "time: " in out and "(20 epochs, 920 steps)" in out


def test_one_progress_bar_per_run(capsys):
    pytest.importorskip("tqdm")
    code, out, err = run(capsys, "train", "--epochs", "2", "--hidden", "16,8")
    assert code == 0
    accuracy(out)
    assert "MLP 64-16-8-10" in out
    assert "epoch 2/2" in err and "loss=" in err  # tqdm writes to stderr
    assert "/92" in err and "/46" not in err  # one bar over both epochs' 2 × 46 batches


def test_plain_lines_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    code, out, _ = run(capsys, "train", "--epochs", "2", "--val-split", "0.2")
    assert code == 0
    assert re.search(r"^epoch 1/2  loss \d+\.\d{4}  val acc \d\.\d{3}$", out, re.M)
    assert "1154 train / 288 validation / 355 test images" in out
    accuracy(out)


def test_one_epoch_is_singular(capsys):
    code, out, _ = run(capsys, "train", "--epochs", "1", "--no-progress")
    assert code == 0 and "(1 epoch, 46 steps)" in out


def test_quiet_prints_only_the_results(capsys):
    code, out, err = run(capsys, "train", "--epochs", "1", "--quiet")
    assert code == 0
    assert out.splitlines()[0].startswith("final loss: ")
    assert len(out.splitlines()) == 2 and err == ""


def test_json_is_one_object_of_final_metrics(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--epochs", "2", "--json", "--no-progress", "--save", str(tmp_path / "m"))
    assert code == 0 and err == ""
    (line,) = out.splitlines()
    metrics = json.loads(line)
    assert metrics["epochs"] == 2 and metrics["steps"] == 92
    assert 0.5 < metrics["test_accuracy"] <= 1 and metrics["val_accuracy"] is None
    assert metrics["files"] == {"model": str(tmp_path / "m.npz")}
    assert metrics["model"] == "MLP 64-100-10 (sigmoid hidden, float32)"
    # The same figure the text output prints (same seed, same steps).
    _, text, _ = run(capsys, "train", "--epochs", "2", "--no-progress")
    assert accuracy(text) == pytest.approx(metrics["test_accuracy"], abs=5e-4)


def test_same_results_on_both_backends():
    if len(BACKENDS) < 2:
        pytest.skip("only one backend is built")
    parser = cli.build_parser()
    results = {}
    for dtype, epochs, rtol in (("float64", 3, 1e-10), ("float32", 2, 1e-4)):
        for backend in BACKENDS:
            args = parser.parse_args(
                ["train", "--epochs", str(epochs), "--backend", backend, "--quiet", "--dtype", dtype]
            )
            train_cmd.check_options(args)
            data = train_cmd.load_data(args)
            model, _ = train_cmd.build_model(args, data)
            results[backend] = train_cmd.fit(args, model, data)
        a, b = results.values()
        np.testing.assert_allclose(a.batch_losses, b.batch_losses, rtol=rtol)


def test_seed_makes_runs_repeatable(capsys):
    outputs = [run(capsys, "train", "--epochs", "1", "--seed", str(s), "--quiet")[1] for s in (3, 3, 4)]
    assert outputs[0] == outputs[1] != outputs[2]


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_other_options(capsys, tmp_path, optimizer):
    code, out, _ = run(
        capsys,
        "train",
        "--epochs",
        "2",
        "--loss",
        "squared",
        "--optimizer",
        optimizer,
        "--dtype",
        "float64",
        "--activation",
        "tanh",
        "--hidden",
        "none",
        "--no-progress",
        "--weight-decay",
        "0.001",
        "--save",
        str(tmp_path / "m.npz"),
    )
    assert code == 0
    assert "MLP 64-10" in out and "squared loss" in out and "float64" in out
    assert f"{optimizer} lr=0.01" in out and "momentum" not in out
    accuracy(out)
    model = nn.MLP([64, 10], dtype=np.float64)
    model.load(tmp_path / "m.npz")  # a CLI model file loads with Module.load too


def test_learning_rate_and_momentum_defaults_follow_the_optimizer():
    parser = cli.build_parser()
    for optimizer, lr, momentum in (("sgd", 0.1, 0.9), ("adam", 0.01, 0.0), ("adamw", 0.01, 0.0)):
        args = parser.parse_args(["train", "--optimizer", optimizer])
        train_cmd.check_options(args)
        assert (args.lr, args.momentum) == (lr, momentum)


@pytest.mark.parametrize("loss", ["cross-entropy", "squared"])
def test_compiled_training_matches_eager(capsys, loss):
    argv = ["train", "--epochs", "2", "--quiet", "--loss", loss, "--dtype", "float64"]
    (code_e, eager, _), (code_c, compiled, _) = run(capsys, *argv), run(capsys, *argv, "--compile")
    assert code_e == code_c == 0
    final = lambda out: float(re.search(r"final loss: ([\d.]+)", out).group(1))
    assert final(compiled) == pytest.approx(final(eager), rel=1e-3)
    assert accuracy(compiled) == pytest.approx(accuracy(eager), abs=0.005)


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, _ = run(
        capsys,
        "train",
        "--epochs",
        "2",
        "--no-progress",
        "--val-split",
        "0.1",
        "--plot",
        str(tmp_path / "loss"),
    )
    assert code == 0
    path = tmp_path / "loss.png"  # no extension: .png
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved loss curve to {path}" in out
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]  # no temporary file left


def test_plot_without_matplotlib_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "train", "--plot", str(tmp_path / "loss.png"))
    assert code == 2 and out == ""
    assert err == (
        "fastgrad train: error: argument --plot needs matplotlib, which is not installed; "
        "install it with: pip install 'fastgrad[train]'  (or pip install matplotlib)\n"
    )


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    options = re.split(r"\n  (?=-)", text.split("options:")[1])
    for option in options:
        assert option.count("default") <= 1, option
    for default in ("(default: 20)", "(default: 32)", "(default: 0.1 for sgd", "(default: 0.9;"):
        assert text.count(default) == 1, default
    assert "(default: False)" not in text and "(default: None)" not in text


def test_help_imports_nothing_heavy():
    # `fastgrad --help` must stay instant: no matplotlib, tqdm, scipy or benchmark peers
    # beyond what `import fastgrad` itself needs.
    code = (
        "import sys; import fastgrad; before = set(sys.modules)\n"
        "from fastgrad import cli\n"
        "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help'], ['predict', '--help']):\n"
        "    try: cli.main(argv)\n"
        "    except SystemExit: pass\n"
        "heavy = ('matplotlib', 'tqdm', 'scipy', 'torch', 'jax', 'autograd', 'fastgrad.bench')\n"
        "new = sorted(m for m in set(sys.modules) - before if m.startswith(heavy))\n"
        "print('NEW', new, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "NEW []"


def test_python_dash_m(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastgrad", "train", "--epochs", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    accuracy(proc.stdout)


# ---------------------------------------------------------- save / evaluate / predict --


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small digits model saved by `fastgrad train --save m3` (which writes m3.npz)."""
    path = tmp_path_factory.mktemp("model") / "m3"
    assert cli.main(["train", "--epochs", "3", "--hidden", "32", "-q", "--save", str(path)]) == 0
    return str(path) + ".npz"


def test_save_names_the_file_written_and_records_the_architecture(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "train",
        "--epochs",
        "1",
        "--hidden",
        "8,4",
        "--activation",
        "relu",
        "--dtype",
        "float64",
        "--no-progress",
        "--save",
        str(tmp_path / "m3"),
    )
    assert code == 0
    assert f"saved model to {tmp_path / 'm3.npz'}\n" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m3.npz"]
    model, info = modelfile.load(str(tmp_path / "m3.npz"))
    assert (info.sizes, info.activation, info.dtype) == ([64, 8, 4, 10], "relu", "float64")
    assert list(info.classes) == list(range(10)) and info.data == "digits"
    assert model[0].weight.dtype == np.float64 and isinstance(model[1], nn.ReLU)
    with np.load(tmp_path / "m3.npz", allow_pickle=False) as f:  # plain arrays only
        assert all(f[k].dtype != object for k in f.files)
    with pytest.raises(ValueError, match="has shape"):  # a different architecture
        nn.MLP([64, 9, 4, 10], dtype=np.float64).load(tmp_path / "m3.npz")


def test_evaluate_matches_numpy_by_hand(capsys, digits_model):
    code, out, _ = run(capsys, "evaluate", digits_model)
    assert code == 0
    _, _, X_test, y_test = load_digits(dtype=np.float32)
    predicted = by_hand(digits_model, X_test)
    want = np.zeros((10, 10), dtype=int)
    for t, p in zip(y_test, predicted):
        want[t, p] += 1
    assert accuracy(out) == pytest.approx(np.mean(predicted == y_test), abs=5e-4)
    lines = out.splitlines()
    start = lines.index("confusion matrix (rows: true class, columns: predicted class):")
    assert lines[start + 1].split() == [str(k) for k in range(10)]
    got = np.array([[int(v) for v in line.split()[1:]] for line in lines[start + 2 : start + 12]])
    np.testing.assert_array_equal(got, want)


def test_evaluate_json_and_plot(capsys, digits_model, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, _ = run(capsys, "evaluate", digits_model, "--json", "--plot", str(tmp_path / "cm.png"))
    assert code == 0
    result = json.loads(out)
    counts = np.array(result["confusion_matrix"])
    assert counts.sum() == result["examples"] == 355
    assert result["accuracy"] == pytest.approx(np.trace(counts) / 355)
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_prints_one_class_per_row(capsys, digits_model, tmp_path):
    _, _, X_test, _ = load_digits(dtype=np.float32)
    X = X_test[:7]
    want = by_hand(digits_model, X)
    np.save(tmp_path / "rows.npy", X)
    np.save(tmp_path / "images.npy", X.reshape(7, 8, 8))
    np.savetxt(tmp_path / "rows.csv", X, delimiter=",")
    for name in ("rows.npy", "images.npy", "rows.csv"):
        code, out, err = run(capsys, "predict", digits_model, str(tmp_path / name))
        assert code == 0 and err == ""
        assert out.splitlines() == [str(v) for v in want], name
    code, out, _ = run(capsys, "predict", digits_model, str(tmp_path / "rows.csv"), "--out", str(tmp_path / "p.txt"))
    assert code == 0 and out == f"wrote 7 predictions to {tmp_path / 'p.txt'}\n"
    assert (tmp_path / "p.txt").read_text().split() == [str(v) for v in want]
    assert run(capsys, "predict", digits_model, str(tmp_path / "rows.npy"), "--out", str(tmp_path / "p.npy"))[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy", allow_pickle=False), want)


def test_predict_warns_about_a_different_scale(capsys, digits_model, tmp_path):
    _, _, X_test, _ = load_digits()
    np.save(tmp_path / "raw.npy", X_test[:3] * 16)  # pixel counts 0..16, not [0, 1]
    code, out, err = run(capsys, "predict", digits_model, str(tmp_path / "raw.npy"))
    assert code == 0 and len(out.splitlines()) == 3
    assert "warning: " in err and "values span [0, 16], the model was trained on [0, 1]" in err


# ------------------------------------------------------------------ your own data --


def test_train_on_a_csv_with_names_and_a_header(capsys, tmp_path):
    X, labels = blobs()
    write_csv(tmp_path / "blobs.csv", X, labels)
    model = tmp_path / "blobs.npz"
    code, out, _ = run(
        capsys,
        "train",
        "--data",
        str(tmp_path / "blobs.csv"),
        "--epochs",
        "15",
        "--hidden",
        "8",
        "--no-progress",
        "--save",
        str(model),
    )
    assert code == 0
    assert "blobs.csv: 180 train / 20 validation rows, 2 features, 3 classes (cat, dog, emu)" in out
    assert re.search(r"^epoch 15/15  loss \d\.\d{4}  val acc \d\.\d{3}$", out, re.M)
    val = float(re.search(r"^validation accuracy: (\d\.\d{3})$", out, re.M).group(1))
    assert val >= 0.9 and "test accuracy" not in out
    code, out, _ = run(capsys, "evaluate", str(model), "--data", str(tmp_path / "blobs.csv"))
    assert code == 0 and accuracy(out) >= 0.9
    np.savetxt(tmp_path / "x.csv", X[:5], delimiter=",")
    code, out, _ = run(capsys, "predict", str(model), str(tmp_path / "x.csv"))
    names = np.array(["cat", "dog", "emu"])
    assert out.split() == list(names[by_hand(str(model), X[:5])])


def test_npz_data_trains_like_the_same_csv(capsys, tmp_path):
    X, labels = blobs(60)
    y = np.searchsorted(["cat", "dog", "emu"], labels)
    write_csv(tmp_path / "d.csv", X, y, header=None)
    np.savez(tmp_path / "d.npz", X=np.round(X, 6), y=y)
    outs = [
        json.loads(
            run(
                capsys,
                "train",
                "--data",
                str(tmp_path / n),
                "--epochs",
                "3",
                "--json",
                "--no-progress",
                "--dtype",
                "float64",
            )[1]
        )
        for n in ("d.csv", "d.npz")
    ]
    assert outs[0]["final_loss"] == pytest.approx(outs[1]["final_loss"], rel=1e-12)
    assert outs[0]["val_accuracy"] == outs[1]["val_accuracy"]


def test_early_stop_keeps_the_best_weights(tmp_path):
    X, labels = blobs(300, seed=1)
    write_csv(tmp_path / "b.csv", X, labels)
    args = cli.build_parser().parse_args(
        [
            "train",
            "--data",
            str(tmp_path / "b.csv"),
            "--epochs",
            "60",
            "--early-stop",
            "2",
            "--val-split",
            "0.3",
            "--hidden",
            "4",
            "--lr",
            "0.5",
            "-q",
            "--no-progress",
        ]
    )
    train_cmd.check_options(args)
    data = train_cmd.load_data(args)
    model, _ = train_cmd.build_model(args, data)
    result = train_cmd.fit(args, model, data)
    assert result.stopped_early and result.epochs < 60
    best = int(np.argmax(result.val_accuracies))  # the first epoch with the best accuracy
    assert result.best_epoch == best + 1 and result.epochs == result.best_epoch + 2
    assert train_cmd.accuracy(model, data.X_val, data.y_val) == result.val_accuracies[best]


# --------------------------------------------------------------------- bench --


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


# ------------------------------------------------------------ every error path --


def _model_files(d, digits_model):
    """Broken model files: not a model, truncated, tampered, malformed, pickled."""
    nn.MLP([64, 5, 10], rng=0).save(d / "weights_only.npz")
    data = open(digits_model, "rb").read()
    (d / "truncated.npz").write_bytes(data[: len(data) // 2])
    with np.load(digits_model, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["__fastgrad_model__"]))
    np.savez(
        d / "tampered.npz", **{**arrays, "__fastgrad_model__": np.array(json.dumps({**meta, "sizes": [64, 50, 10]}))}
    )
    np.savez(d / "malformed.npz", **{**arrays, "__fastgrad_model__": np.array("{sizes: 64")})
    np.savez(
        d / "unknown_activation.npz",
        **{**arrays, "__fastgrad_model__": np.array(json.dumps({**meta, "activation": "gelu"}))},
    )
    nan = dict(arrays)
    nan["0.weight"] = np.full_like(arrays["0.weight"], np.nan)
    np.savez(d / "nan.npz", **nan)
    np.savez(d / "pickled.npz", **{**arrays, "0.bias": np.array([{"a": 1}], dtype=object)})
    np.save(d / "one_array.npy", np.zeros(3))


def _data_files(d):
    X, labels = blobs(40)
    write_csv(d / "good.csv", X, labels)
    (d / "ragged.csv").write_text("1,2,a\n3,4,b\n5,b\n")
    (d / "text.csv").write_text("1,2,a\nabc,4,b\n")
    (d / "float_labels.csv").write_text("1,2,0.5\n3,4,1.5\n")
    (d / "one_class.csv").write_text("1,2,a\n3,4,a\n")
    (d / "nan.csv").write_text("1,2,a\nnan,4,b\n")
    (d / "empty.csv").write_text("\n\n")
    (d / "one_column.csv").write_text("a\nb\n")
    np.savez(d / "wrong_names.npz", a=np.zeros((3, 2)), b=np.zeros(3))
    np.savez(d / "pickled_data.npz", X=np.zeros((3, 2)), y=np.array([None, 1, 2], dtype=object))
    np.savez(d / "y_shape.npz", X=np.zeros((4, 2)), y=np.zeros(3, dtype=int))
    (d / "truncated_data.npz").write_bytes(b"PK\x03\x04broken")
    np.save(d / "data.npy", np.zeros((3, 3)))
    _, _, X_test, _ = load_digits()
    np.savetxt(d / "with_labels.csv", np.hstack([X_test[:3], np.zeros((3, 1))]), delimiter=",")
    np.save(d / "wrong_shape.npy", np.zeros((3, 7, 7)))
    np.savez(d / "blobs_model_data.npz", X=np.zeros((3, 5)), y=np.zeros(3, dtype=int))
    (d / "unknown_label.csv").write_text("0,0,cat\n1,1,yak\n")


# (id, argv, exit status, text the one stderr line contains)
ERRORS = [
    ("seed-negative", ["train", "--seed", "-1"], 2, "argument --seed: must be an integer >= 0, got -1"),
    ("momentum-1.5", ["train", "--momentum", "1.5"], 2, "argument --momentum: must be in [0, 1), got 1.5"),
    (
        "momentum-with-adam",
        ["train", "--optimizer", "adam", "--momentum", "0.5"],
        2,
        "--momentum: only for --optimizer sgd, not adam",
    ),
    (
        "compile-adamw-decay",
        ["train", "--compile", "--optimizer", "adamw", "--weight-decay", "0.01"],
        2,
        "argument --compile: AdamW's decoupled weight decay cannot be compiled",
    ),
    ("lr-zero", ["train", "--lr", "0"], 2, "argument --lr: must be a finite number > 0, got 0"),
    ("backend-unknown", ["train", "--backend", "gpu"], 2, "argument --backend: invalid choice: 'gpu'"),
    ("no-command", [], 2, "the following arguments are required: COMMAND"),
    (
        "diverged-cross-entropy",
        ["train", "--lr", "1e6", "--epochs", "2", "-q"],
        1,
        "training diverged: the loss on the training rows rose from",
    ),
    ("overflow-squared", ["train", "--lr", "1e6", "--loss", "squared", "--epochs", "2", "-q"], 1, "try a smaller --lr"),
    ("save-missing-dir", ["train", "--save", "no/such/m.npz"], 2, "argument --save: directory"),
    (
        "save-unwritable-dir",
        ["train", "--save", "/proc/m.npz"],
        2,
        "argument --save: cannot write in directory '/proc'",
    ),
    ("save-is-dir", ["train", "--save", "adir"], 2, "argument --save: 'adir' is a directory, not a file"),
    ("plot-missing-dir", ["train", "--plot", "no/such/loss.png"], 2, "argument --plot: directory"),
    ("plot-extension", ["train", "--plot", "loss.xyz"], 2, "argument --plot: matplotlib cannot write .xyz files"),
    (
        "early-stop-no-split",
        ["train", "--early-stop", "2"],
        2,
        "argument --early-stop: the digits have no validation split",
    ),
    (
        "early-stop-zero-split",
        ["train", "--data", "good.csv", "--val-split", "0", "--early-stop", "2"],
        2,
        "--early-stop: needs a validation split",
    ),
    (
        "batch-larger-than-data",
        ["train", "--data", "good.csv", "--batch-size", "100"],
        2,
        "--batch-size: 100 is larger than the 36 training rows",
    ),
    ("data-missing", ["train", "--data", "nope.csv"], 1, "data file 'nope.csv' does not exist"),
    ("data-ragged", ["train", "--data", "ragged.csv"], 1, "ragged.csv, line 3: 2 columns, but the first line has 3"),
    ("data-text", ["train", "--data", "text.csv"], 1, "text.csv, line 2, column 1: 'abc' is not a number"),
    (
        "data-float-labels",
        ["train", "--data", "float_labels.csv"],
        1,
        "float_labels.csv: the label column (the last) holds '0.5'",
    ),
    (
        "data-one-class",
        ["train", "--data", "one_class.csv"],
        1,
        "every row has the label 'a'; a classifier needs at least two classes",
    ),
    ("data-nan", ["train", "--data", "nan.csv"], 1, "nan.csv, line 2: feature 1 is nan"),
    ("data-empty", ["train", "--data", "empty.csv"], 1, "empty.csv: the file holds no rows"),
    ("data-one-column", ["train", "--data", "one_column.csv"], 1, "one_column.csv: one column"),
    ("data-npz-names", ["train", "--data", "wrong_names.npz"], 1, "holds arrays ['a', 'b']; labelled data needs X"),
    (
        "data-npz-pickled",
        ["train", "--data", "pickled_data.npz"],
        1,
        "pickled_data.npz: holds Python objects, which fastgrad never unpickles",
    ),
    (
        "data-npz-y-shape",
        ["train", "--data", "y_shape.npz"],
        1,
        "y has shape (3,); it needs one label per row of X (4, 2)",
    ),
    (
        "data-npz-truncated",
        ["train", "--data", "truncated_data.npz"],
        1,
        "truncated_data.npz: not a readable .npz file",
    ),
    ("data-npy", ["train", "--data", "data.npy"], 1, "data.npy: an .npy file holds one array"),
    ("evaluate-missing", ["evaluate", "nope.npz"], 1, "model file 'nope.npz' does not exist"),
    ("evaluate-weights-only", ["evaluate", "weights_only.npz"], 1, "no model description (__fastgrad_model__)"),
    ("evaluate-truncated", ["evaluate", "truncated.npz"], 1, "truncated.npz: not a readable model file"),
    ("evaluate-tampered", ["evaluate", "tampered.npz"], 1, "the weights do not fit the recorded MLP 64-50-10"),
    ("evaluate-malformed", ["evaluate", "malformed.npz"], 1, "malformed.npz: malformed model description (not JSON"),
    ("evaluate-activation", ["evaluate", "unknown_activation.npz"], 1, "activation 'gelu' is not one of"),
    ("evaluate-nan-weights", ["evaluate", "nan.npz"], 1, "parameter '0.weight' holds non-finite values"),
    (
        "evaluate-pickled",
        ["evaluate", "pickled.npz"],
        1,
        "pickled.npz: holds Python objects, which fastgrad never unpickles",
    ),
    ("evaluate-npy", ["evaluate", "one_array.npy"], 1, "one_array.npy: one array (.npy), not a model file"),
    (
        "evaluate-features",
        ["evaluate", "MODEL", "--data", "blobs_model_data.npz"],
        1,
        "5 features per row, the model takes 64",
    ),
    (
        "evaluate-unknown-label",
        ["evaluate", "BLOBS", "--data", "unknown_label.csv"],
        1,
        "label 'yak' is not one of the model's classes (cat, dog, emu)",
    ),
    (
        "evaluate-needs-data",
        ["evaluate", "BLOBS"],
        1,
        "was trained on 'good.csv', not the bundled digits; give labelled data",
    ),
    ("evaluate-plot-dir", ["evaluate", "MODEL", "--plot", "no/such/cm.png"], 2, "argument --plot: directory"),
    ("predict-missing-input", ["predict", "MODEL", "nope.csv"], 1, "input file 'nope.csv' does not exist"),
    (
        "predict-label-column",
        ["predict", "MODEL", "with_labels.csv"],
        1,
        "65 features per row, the model takes 64 (is the last column a label? drop it)",
    ),
    (
        "predict-shape",
        ["predict", "MODEL", "wrong_shape.npy"],
        1,
        "an array of shape (3, 7, 7) does not fit the model's 64 inputs",
    ),
    ("predict-text", ["predict", "MODEL", "good.csv"], 1, "good.csv, line 2, column 3: "),
    (
        "predict-out-dir",
        ["predict", "MODEL", "with_labels.csv", "--out", "no/such/p.txt"],
        2,
        "argument --out: directory",
    ),
]


# Argument types share the parser's error path, which ERRORS runs in subprocesses; their
# messages are checked here in-process, where a case costs no interpreter start.
ARG_ERRORS = [
    ("lr-nan", ["train", "--lr", "nan"], 2, "argument --lr: must be a finite number, got nan"),
    ("epochs-zero", ["train", "--epochs", "0"], 2, "argument --epochs: must be a positive integer, got 0"),
    ("epochs-text", ["train", "--epochs", "ten"], 2, "argument --epochs: expected an integer, got 'ten'"),
    ("hidden-zero", ["train", "--hidden", "100,0"], 2, "argument --hidden: hidden layer sizes must be positive"),
    ("dtype-float16", ["train", "--dtype", "float16"], 2, "argument --dtype: invalid choice: 'float16'"),
    ("val-split-1", ["train", "--val-split", "1"], 2, "argument --val-split: must be in [0, 1), got 1"),
]


@pytest.mark.parametrize("name, argv, status, message", ARG_ERRORS, ids=[c[0] for c in ARG_ERRORS])
def test_argument_type_errors(capsys, name, argv, status, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == status
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("fastgrad train: error: ") and message in err


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory, digits_model):
    """Every ERRORS case run as the `fastgrad` command, each in its own process."""
    d = tmp_path_factory.mktemp("errors")
    (d / "adir").mkdir()
    _model_files(d, digits_model)
    _data_files(d)
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(d / "good.csv"),
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--val-split",
                "0.5",
                "-q",
                "--save",
                str(d / "blobs.npz"),
            ]
        )
        == 0
    )
    cases = []
    for name, argv, _, _ in ERRORS:
        if name == "plot-extension" and not has("matplotlib"):
            continue
        cases.append([name, [{"MODEL": digits_model, "BLOBS": str(d / "blobs.npz")}.get(a, a) for a in argv]])
    return run_forked(cases, d)


@pytest.mark.parametrize("name, argv, status, message", ERRORS, ids=[c[0] for c in ERRORS])
def test_error_is_one_line_and_a_nonzero_exit(error_runs, name, argv, status, message):
    proc = error_runs.get(name)
    if proc is None:
        pytest.skip("matplotlib is not installed")
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    command = argv[0] if argv else ""
    assert lines[0].startswith(f"fastgrad{' ' + command if command else ''}: error: "), lines[0]
    assert message in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_failed_run_overwrites_nothing(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"an earlier model")
    (tmp_path / "loss.png").write_bytes(b"an earlier plot")
    argv = ["train", "--lr", "1e6", "--epochs", "2", "-q", "--save", "m.npz"]
    if has("matplotlib"):
        argv += ["--plot", "loss.png"]
    proc = subprocess.run(
        [sys.executable, "-m", "fastgrad", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])),
    )
    assert proc.returncode == 1 and "training diverged" in proc.stderr
    assert (tmp_path / "m.npz").read_bytes() == b"an earlier model"
    assert (tmp_path / "loss.png").read_bytes() == b"an earlier plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "m.npz"]  # no temporaries
