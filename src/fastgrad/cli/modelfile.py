"""Model files of ``fastgrad train --save``: the weights and what is needed to use them.

An uncompressed ``.npz`` with one array per parameter (the names of
``Module.state_dict()``, so ``nn.MLP(sizes, …).load(path)`` reads the weights too) and
one more, ``__fastgrad_model__``: a JSON text with the architecture, the activation,
the dtype, the class labels and where the training data came from. Reading never
unpickles (``allow_pickle=False``); a file that is truncated, is not a model file, or
whose weights do not fit its recorded architecture is refused with one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from . import CLIError, atomic_write
from .data import _first_line

META_KEY = "__fastgrad_model__"
FORMAT = 1
ACTIVATIONS = ("sigmoid", "relu", "tanh")
DTYPES = ("float32", "float64")


@dataclass
class ModelInfo:
    """What a model file records besides the weights."""

    sizes: list
    activation: str
    dtype: str
    classes: np.ndarray  # the label of each output, ints or strings
    loss: str = "cross-entropy"
    data: str = "digits"  # "digits" (the bundled set) or the training file's name
    x_range: tuple = (0.0, 1.0)  # smallest and largest training feature

    def architecture(self) -> str:
        hidden = self.activation if len(self.sizes) > 2 else "no"
        return f"MLP {'-'.join(map(str, self.sizes))} ({hidden} hidden, {self.dtype})"

    def to_json(self) -> str:
        classes = [c.item() if hasattr(c, "item") else c for c in self.classes]
        return json.dumps(
            {
                "format": FORMAT,
                "kind": "MLP",
                "sizes": [int(s) for s in self.sizes],
                "activation": self.activation,
                "dtype": self.dtype,
                "classes": classes,
                "loss": self.loss,
                "data": self.data,
                "x_range": [float(v) for v in self.x_range],
            }
        )


def build(info: ModelInfo, rng=None):
    from fastgrad import nn

    return nn.MLP(info.sizes, activation=info.activation, dtype=np.dtype(info.dtype), rng=rng)


def save(path: str, model, info: ModelInfo) -> None:
    arrays = dict(model.state_dict())
    arrays[META_KEY] = np.array(info.to_json())
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)


def _malformed(path, why):
    return CLIError(f"{path}: malformed model description ({why}); re-save it with fastgrad train --save")


def _parse_info(path, text) -> ModelInfo:
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise _malformed(path, f"not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise _malformed(path, "not a JSON object")
    if meta.get("format") != FORMAT or meta.get("kind") != "MLP":
        raise CLIError(
            f"{path}: model format {meta.get('format')!r}, kind {meta.get('kind')!r}; this "
            f"fastgrad reads format {FORMAT}, kind 'MLP'"
        )
    sizes = meta.get("sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise _malformed(path, f"sizes {sizes!r} is not a list of at least two positive integers")
    if meta.get("activation") not in ACTIVATIONS:
        raise _malformed(path, f"activation {meta.get('activation')!r} is not one of {ACTIVATIONS}")
    if meta.get("dtype") not in DTYPES:
        raise _malformed(path, f"dtype {meta.get('dtype')!r} is not one of {DTYPES}")
    classes = meta.get("classes")
    kinds = {type(c) for c in classes} if isinstance(classes, list) else None
    if not kinds or not (kinds <= {int} or kinds <= {str}) or len(classes) != sizes[-1]:
        raise _malformed(path, f"classes must list {sizes[-1]} labels, all integers or all names, got {classes!r}")
    classes = np.array(classes)
    if len(np.unique(classes)) != len(classes) or np.any(classes[:-1] >= classes[1:]):
        raise _malformed(path, "classes must be distinct and sorted")
    x_range = meta.get("x_range", [0.0, 1.0])
    if not (isinstance(x_range, list) and len(x_range) == 2 and all(isinstance(v, (int, float)) for v in x_range)):
        raise _malformed(path, f"x_range {x_range!r} is not [low, high]")
    return ModelInfo(
        sizes=sizes,
        activation=meta["activation"],
        dtype=meta["dtype"],
        classes=classes,
        loss=str(meta.get("loss", "cross-entropy")),
        data=str(meta.get("data", "")),
        x_range=tuple(float(v) for v in x_range),
    )


def load(path: str):
    """(model, info) from a file written by :func:`save`; CLIError (exit 1) otherwise."""
    if not os.path.exists(path):
        raise CLIError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"model file {path!r} is a directory, not a file")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise CLIError(f"{path}: one array (.npy), not a model file written by fastgrad train --save")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except CLIError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CLIError(f"{path}: holds Python objects, which fastgrad never unpickles") from None
        raise CLIError(f"{path}: not a readable model file ({_first_line(exc)})") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError: truncated or not a zip
        raise CLIError(f"{path}: not a readable model file ({_first_line(exc)})") from None
    text = arrays.pop(META_KEY, None)
    if text is None:
        raise CLIError(
            f"{path}: no model description ({META_KEY}); it was not written by "
            "'fastgrad train --save' (weights saved with Module.save load with model.load)"
        )
    if text.shape != () or text.dtype.kind != "U":
        raise _malformed(path, f"{META_KEY} is a {text.dtype} array of shape {text.shape}")
    info = _parse_info(path, str(text))
    model = build(info)
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise CLIError(f"{path}: parameter {name!r} holds {array.dtype} values, not numbers")
        if not np.all(np.isfinite(array)):
            raise CLIError(f"{path}: parameter {name!r} holds non-finite values")
    try:
        model.load_state_dict(arrays, strict=True)
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise CLIError(f"{path}: the weights do not fit the recorded {info.architecture()}: {message}") from None
    return model, info
