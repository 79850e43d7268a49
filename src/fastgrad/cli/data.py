"""Files the command line reads: labelled data (``train --data``, ``evaluate --data``) and
inputs to classify (``predict``). Never unpickled; every problem is one CLIError line
naming the file and, where it helps, the line or array.

- A CSV: comma-separated, one example per line, the last column the label (an integer
  class or a name); an optional header line; blank lines skipped. ``.csv.gz`` works too.
- An ``.npz``: arrays ``X`` (features: one row per example, or one image per example,
  flattened) and ``y`` (labels: integers, or strings).
- ``predict``'s input: a CSV of features only, an ``.npy`` of rows or images, or an
  ``.npz`` with an array ``X``.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from dataclasses import dataclass

import numpy as np

from . import CLIError

_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass
class Labelled:
    """Features X (N, D) float64 and raw labels (N,), ints or strings."""

    X: np.ndarray
    labels: np.ndarray


def _show(value) -> str:
    """repr of a label as the user wrote it ('emu', 3), not NumPy's np.str_('emu')."""
    return repr(value.item() if hasattr(value, "item") else value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _exists(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise CLIError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory, not a file")


def _open_text(path):
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return open(path, newline="", encoding="utf-8")


def _read_csv_rows(path: str) -> list[tuple[int, list[str]]]:
    """Non-blank rows as (line number, cells stripped of spaces)."""
    try:
        with _open_text(path) as f:
            rows = []
            reader = csv.reader(f)
            for row in reader:
                cells = [c.strip() for c in row]
                if any(cells):
                    rows.append((reader.line_num, cells))
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise CLIError(f"{path}: cannot read it as a CSV text file ({_first_line(exc)})") from None
    if not rows:
        raise CLIError(f"{path}: the file holds no rows")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(path, rows, columns):
    """The cells of ``rows`` (line number, cells) in ``columns`` as a float64 array."""
    cells = [cells[columns] for _, cells in rows]
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        for number, row in rows:  # find the cell to name
            for column, cell in enumerate(row[columns], start=1):
                if not _is_number(cell):
                    raise CLIError(f"{path}, line {number}, column {column}: {cell!r} is not a number") from None
        raise


def _csv_table(path: str, label_column: bool):
    rows = _read_csv_rows(path)
    width = len(rows[0][1])
    features = slice(0, width - 1) if label_column else slice(0, width)
    # A first line whose feature cells are not all numbers is a header.
    if not all(_is_number(c) for c in rows[0][1][features]):
        rows = rows[1:]
        if not rows:
            raise CLIError(f"{path}: the file holds a header line and no data")
    for number, cells in rows:
        if len(cells) != width:
            raise CLIError(f"{path}, line {number}: {len(cells)} columns, but the first line has {width}")
    need = 2 if label_column else 1
    if width < need:
        raise CLIError(
            f"{path}: one column; a labelled CSV needs at least one feature column and the label in the last column"
        )
    X = _numbers(path, rows, features)
    labels = np.array([cells[-1] for _, cells in rows]) if label_column else None
    return X, labels, [number for number, _ in rows]


def _labels_from_text(path, labels: np.ndarray) -> np.ndarray:
    """Integer classes where every label is an integer (1, 1.0), else the names."""
    if all(_INTEGER.match(v) for v in labels):
        return labels.astype(np.int64)
    if all(_is_number(v) for v in labels):
        values = labels.astype(np.float64)
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return values.astype(np.int64)
        bad = next(v for v, f in zip(labels, values) if not (np.isfinite(f) and f == round(f)))
        raise CLIError(
            f"{path}: the label column (the last) holds {_show(bad)}; labels are classes — "
            "integers or names — not measurements"
        )
    if any(v == "" for v in labels):
        raise CLIError(f"{path}: a row has an empty label (the last column)")
    return labels


def _load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CLIError(
                f"{path}: holds Python objects, which fastgrad never unpickles; store plain numeric (or string) arrays"
            ) from None
        raise CLIError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError: truncated or not a zip
        raise CLIError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None


def _as_features(path, X, name="X") -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise CLIError(f"{path}: {name} must hold numbers, not {X.dtype} values")
    if X.ndim < 2:
        raise CLIError(f"{path}: {name} has shape {X.shape}; it needs one row (or image) per example")
    return X.reshape(len(X), -1).astype(np.float64)


def _check_finite(path, X, rows=None) -> None:
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        where = f"line {rows[i]}" if rows is not None else f"row {i}"
        raise CLIError(f"{path}, {where}: feature {j + 1} is {X[i, j]} (every feature must be finite)")


def read_labelled(path: str) -> Labelled:
    """Features and labels from a CSV (label last) or an .npz (X, y)."""
    _exists(path, "data file")
    lower = path.lower()
    if lower.endswith(".npy"):
        raise CLIError(
            f"{path}: an .npy file holds one array; labelled data is a CSV (the label in the "
            "last column) or an .npz with arrays X (features) and y (labels)"
        )
    if lower.endswith(".npz"):
        arrays = _load_npz(path)
        missing = [k for k in ("X", "y") if k not in arrays]
        if missing:
            raise CLIError(
                f"{path}: holds arrays {sorted(arrays)}; labelled data needs X (features, one "
                "row per example) and y (labels, one per row)"
            )
        X = _as_features(path, arrays["X"])
        y = np.asarray(arrays["y"])
        if y.ndim != 1 or len(y) != len(X):
            raise CLIError(f"{path}: y has shape {y.shape}; it needs one label per row of X {X.shape}")
        if y.dtype.kind == "f":
            if not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
                raise CLIError(f"{path}: y holds non-integer numbers; labels are classes — integers or names")
            y = y.astype(np.int64)
        elif y.dtype.kind in "bu":
            y = y.astype(np.int64)
        elif y.dtype.kind not in "iU":
            raise CLIError(f"{path}: y must hold integers or strings, not {y.dtype} values")
        _check_finite(path, X)
        return Labelled(X, y)
    X, labels, rows = _csv_table(path, label_column=True)
    _check_finite(path, X, rows)
    return Labelled(X, _labels_from_text(path, labels))


def read_features(path: str, n_features: int) -> np.ndarray:
    """Rows to classify, as float64 (N, n_features): a CSV, an .npy or an .npz's X."""
    _exists(path, "input file")
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise CLIError(f"{path}: holds Python objects, which fastgrad never unpickles") from None
            raise CLIError(f"{path}: not a readable .npy file ({_first_line(exc)})") from None
        except Exception as exc:
            raise CLIError(f"{path}: not a readable .npy file ({_first_line(exc)})") from None
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise CLIError(f"{path}: must hold numbers, not {X.dtype} values")
        if X.size == n_features and X.ndim in (1, 2) and X.shape[-1] != n_features:
            X = X.reshape(1, -1)  # one image, e.g. (8, 8)
        elif X.ndim == 1 and X.size == n_features:
            X = X.reshape(1, -1)  # one row
        elif X.ndim >= 2 and np.prod(X.shape[1:]) == n_features:
            X = X.reshape(len(X), -1)  # rows, or images
        else:
            raise CLIError(
                f"{path}: an array of shape {X.shape} does not fit the model's {n_features} "
                f"inputs; give rows (N, {n_features}) or images whose pixels number {n_features}"
            )
        X = X.astype(np.float64)
        _check_finite(path, X)
        return X
    if lower.endswith(".npz"):
        arrays = _load_npz(path)
        if "X" not in arrays:
            raise CLIError(f"{path}: holds arrays {sorted(arrays)}; the input to classify is X")
        X = _as_features(path, arrays["X"])
        rows = None
    else:
        X, _, rows = _csv_table(path, label_column=False)
    if X.shape[1] != n_features:
        hint = " (is the last column a label? drop it)" if X.shape[1] == n_features + 1 else ""
        raise CLIError(f"{path}: {X.shape[1]} features per row, the model takes {n_features}{hint}")
    _check_finite(path, X, rows)
    return X


def encode(path, labels: np.ndarray, classes: np.ndarray | None = None):
    """(classes, y): the sorted distinct labels, and each label's index among them.

    With ``classes`` given (a model's), labels outside it are an error naming one.
    """
    if classes is None:
        classes = np.unique(labels)
        if len(classes) < 2:
            raise CLIError(
                f"{path}: every row has the label {_show(classes[0])}; a classifier needs at least two classes"
            )
        return classes, np.searchsorted(classes, labels)
    if classes.dtype.kind != labels.dtype.kind and not (classes.dtype.kind in "iu" and labels.dtype.kind in "iu"):
        raise CLIError(
            f"{path}: labels such as {_show(labels[0])} are not of the model's classes "
            f"({', '.join(map(str, classes[:10]))}{', …' if len(classes) > 10 else ''})"
        )
    index = np.searchsorted(classes, labels)
    index = np.minimum(index, len(classes) - 1)
    unknown = classes[index] != labels
    if unknown.any():
        raise CLIError(
            f"{path}: label {_show(labels[unknown][0])} is not one of the model's classes "
            f"({', '.join(map(str, classes[:10]))}{', …' if len(classes) > 10 else ''})"
        )
    return classes, index


def describe_classes(classes: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(map(str, classes[:limit]))
    return shown + (", …" if len(classes) > limit else "")
