"""``fastgrad evaluate MODEL`` and ``fastgrad predict MODEL INPUT``: use a saved model.

MODEL is a file of ``fastgrad train --save``; the network is rebuilt from the
architecture it records, so nothing about it is given again on the command line.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from . import CLIError, atomic_write, modelfile, output_path, plot_path
from .data import describe_classes, encode, read_features, read_labelled
from .train import scores


def add_parsers(sub, formatter):
    e = sub.add_parser(
        "evaluate",
        help="test accuracy and confusion matrix of a model saved by 'fastgrad train --save'",
        description="Evaluate a model saved by 'fastgrad train --save': accuracy and the "
        "confusion matrix (rows: true class, columns: predicted), on the digits' test split "
        "for a digits model, or on labelled data given with --data.",
        formatter_class=formatter,
    )
    e.add_argument("model", metavar="MODEL", help="a model file (.npz) written by fastgrad train --save")
    e.add_argument(
        "--data",
        metavar="FILE",
        help="labelled data to evaluate on, as for 'fastgrad train --data' (a CSV with the "
        "label last, or an .npz with X and y); default: the digits' test split",
    )
    e.add_argument("--plot", metavar="PATH", help="also save the confusion matrix as an image (needs matplotlib)")
    e.add_argument("--json", action="store_true", help="print the results as one JSON object, nothing else")
    e.set_defaults(run=run_evaluate)

    p = sub.add_parser(
        "predict",
        help="classify the rows of a CSV or .npy with a saved model",
        description="Classify each example of INPUT with a model saved by 'fastgrad train "
        "--save' and print one predicted class per line (in INPUT's order).",
        formatter_class=formatter,
    )
    p.add_argument("model", metavar="MODEL", help="a model file (.npz) written by fastgrad train --save")
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a CSV of features (one example per line, no label column; a header line is "
        "allowed), an .npy of rows (N, features) or images (N, h, w), or an .npz with X",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="write the predictions to PATH instead (one per line; a NumPy array if PATH ends in .npy)",
    )
    p.set_defaults(run=run_predict)


# ---------------------------------------------------------------------- evaluate --


def _evaluation_data(args, info):
    """(X, y, description): --data, or the digits' test split for a digits model."""
    dtype = np.dtype(info.dtype)
    if args.data is not None:
        labelled = read_labelled(args.data)
        if labelled.X.shape[1] != info.sizes[0]:
            raise CLIError(f"{args.data}: {labelled.X.shape[1]} features per row, the model takes {info.sizes[0]}")
        _, y = encode(args.data, labelled.labels, info.classes)
        return labelled.X.astype(dtype), y, f"{args.data}: {len(y)} rows"
    if info.data != "digits":
        raise CLIError(
            f"{args.model} was trained on {info.data!r}, not the bundled digits; give labelled "
            "data to evaluate on with --data FILE"
        )
    from fastgrad.datasets import load_digits

    _, _, X_test, y_test = load_digits(dtype=dtype)
    if X_test.shape[1] != info.sizes[0]:  # pragma: no cover - a hand-edited description
        raise CLIError(f"{args.model}: the digits have 64 features, the model takes {info.sizes[0]}")
    return X_test, y_test, f"the digits' test split: {len(y_test)} images"


def confusion_matrix(y_true, y_pred, n_classes) -> np.ndarray:
    """counts[i, j]: examples of class i predicted as class j."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def format_confusion(counts, classes) -> str:
    names = [str(c) for c in classes]
    width = max(max(map(len, names)), len(str(counts.max())))
    head = " " * (width + 2) + " ".join(n.rjust(width) for n in names)
    rows = [f"{name.rjust(width)}  " + " ".join(str(v).rjust(width) for v in row) for name, row in zip(names, counts)]
    return "\n".join(["confusion matrix (rows: true class, columns: predicted class):", head, *rows])


def _plot_confusion(path, counts, classes, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    size = min(12.0, 3.0 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=90 if k > 12 else 0)
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 30:
        top = counts.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if counts[i, j] > top / 2 else "black",
                )
    ax.set_title(title)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def run_evaluate(args) -> int:
    plot = plot_path("--plot", args.plot) if args.plot is not None else None
    model, info = modelfile.load(args.model)
    X, y, where = _evaluation_data(args, info)
    predicted = np.argmax(scores(model, X), axis=1)
    counts = confusion_matrix(y, predicted, len(info.classes))
    accuracy = float(np.trace(counts) / len(y))
    if plot is not None:
        _plot_confusion(plot, counts, info.classes, f"{info.architecture()}: accuracy {accuracy:.3f}")
    if args.json:
        classes = [c.item() for c in info.classes]
        result = {
            "accuracy": accuracy,
            "examples": int(len(y)),
            "classes": classes,
            "confusion_matrix": counts.tolist(),
            "model": info.architecture(),
        }
        if plot is not None:
            result["files"] = {"plot": plot}
        print(json.dumps(result))
        return 0
    print(f"fastgrad evaluate: {args.model}, {info.architecture()}, classes {describe_classes(info.classes)}")
    print(f"data: {where}")
    print(f"test accuracy: {accuracy:.3f}")
    print(format_confusion(counts, info.classes))
    if plot is not None:
        print(f"saved confusion matrix to {plot}")
    return 0


# ----------------------------------------------------------------------- predict --


def _warn_if_out_of_range(args, X, info):
    """Values far outside the training range usually mean a different scaling (0..16, 0..1)."""
    low, high = info.x_range
    span = max(high - low, 1e-12)
    got_low, got_high = float(X.min()), float(X.max())
    if got_low < low - span or got_high > high + span:
        print(
            f"fastgrad predict: warning: {args.input}'s values span [{got_low:g}, {got_high:g}], "
            f"the model was trained on [{low:g}, {high:g}]; scale the input as the training data was",
            file=sys.stderr,
        )


def run_predict(args) -> int:
    out = output_path("--out", args.out) if args.out is not None else None
    model, info = modelfile.load(args.model)
    X = read_features(args.input, info.sizes[0])
    _warn_if_out_of_range(args, X, info)
    labels = info.classes[np.argmax(scores(model, X.astype(info.dtype)), axis=1)]
    if out is None:
        sys.stdout.write("".join(f"{v}\n" for v in labels))
        return 0
    with atomic_write(out) as tmp:
        if out.lower().endswith(".npy"):
            np.save(tmp, labels)
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(f"{v}\n" for v in labels))
    print(f"wrote {len(labels)} predictions to {out}")
    return 0
