"""The ``fastgrad`` command: ``train``, ``evaluate``, ``predict`` and ``bench``.

- ``fastgrad train`` trains the lecture's multilayer perceptron (sigmoid hidden layers,
  linear output) on the 8×8 digits that ship inside the package, or on a CSV/.npz of
  the user's (``--data``), and ends with ``test accuracy: 0.xxx`` (or the validation
  accuracy); ``--save`` writes the model with its architecture.
- ``fastgrad evaluate MODEL`` and ``fastgrad predict MODEL INPUT`` load such a file.
- ``fastgrad bench`` hands its arguments to :mod:`fastgrad.bench.runner`.

Every failure is one line on stderr, ``fastgrad COMMAND: error: …``, and a non-zero
exit: 2 for a command line that cannot run (a bad option, an output path that cannot
be written — checked before any work starts), 1 for a run that failed (a malformed
file, a diverged training). Outputs are written to a temporary file and renamed into
place at the end, so a failed run leaves earlier files as they were.

Importing this module is cheap: matplotlib, tqdm and the benchmark code are imported
by the commands that use them (``fastgrad --help`` stays instant).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile

__all__ = ["main", "build_parser", "CLIError"]


class CLIError(Exception):
    """A failure reported as one line (``fastgrad COMMAND: error: message``) and exit ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: …)" once, where the help text does not already say the default."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
        ):
            return text
        return text + " (default: %(default)s)"


# ----------------------------------------------------------------- argument types --


def _type(check):
    """An argparse type from ``check(text) -> value`` that raises ValueError(message)."""

    def convert(text):
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__.strip("_")  # argparse names the type in some errors
    return convert


def _parse_float(text):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {text}")
    return value


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


@_type
def positive_int(text):
    value = _parse_int(text)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {value}")
    return value


@_type
def seed(text):
    value = _parse_int(text)
    if value < 0:
        raise ValueError(f"must be an integer >= 0, got {value}")
    return value


@_type
def positive_float(text):
    value = _parse_float(text)
    if value <= 0:
        raise ValueError(f"must be a finite number > 0, got {text}")
    return value


@_type
def non_negative_float(text):
    value = _parse_float(text)
    if value < 0:
        raise ValueError(f"must be a finite number >= 0, got {text}")
    return value


@_type
def unit_interval(text):
    """A fraction in [0, 1): momentum, the validation split."""
    value = _parse_float(text)
    if not 0 <= value < 1:
        raise ValueError(f"must be in [0, 1), got {text}")
    return value


# ----------------------------------------------------------------- output files --


def output_path(option: str, path: str, suffix: str | None = None) -> str:
    """The file an output option will write (``suffix`` appended if absent), after checking
    that it can be written there; a CLIError (exit 2) naming the option otherwise.

    Called before any work starts, so an unwritable path costs nothing.
    """
    if not path:
        raise CLIError(f"argument {option}: expected a file name, got ''", 2)
    if os.path.isdir(path):
        raise CLIError(f"argument {option}: {path!r} is a directory, not a file", 2)
    if suffix and not path.lower().endswith(suffix):
        path += suffix
        if os.path.isdir(path):
            raise CLIError(f"argument {option}: {path!r} is a directory, not a file", 2)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"argument {option}: directory {directory!r} does not exist", 2)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise CLIError(f"argument {option}: {path!r} exists and is not writable", 2)
    try:  # the real test (permissions, read-only file systems): make and remove a file
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".fastgrad-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"argument {option}: cannot write in directory {directory!r} ({exc.strerror})", 2) from None
    return path


@contextlib.contextmanager
def atomic_write(path: str):
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` only if
    the block succeeds. A failed write leaves an existing ``path`` untouched."""
    directory, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 → what open() would have given
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_matplotlib(option: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError(
            f"argument {option} needs matplotlib, which is not installed; install it with: "
            "pip install 'fastgrad[train]'  (or pip install matplotlib)",
            2,
        ) from None


def plot_path(option: str, path: str) -> str:
    """An image path matplotlib can write: ``.png`` appended when there is no extension.
    Its directory is checked first (that needs no matplotlib), then matplotlib."""
    output_path(option, path if os.path.splitext(path)[1] else path + ".png")
    check_matplotlib(option)
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if not extension:
        path += ".png"
    elif extension not in supported:
        raise CLIError(
            f"argument {option}: matplotlib cannot write .{extension} files; use one of "
            + ", ".join(f".{e}" for e in sorted(supported)),
            2,
        )
    return output_path(option, path)


def check_backend(name) -> None:
    if name is None:
        return
    import fastgrad

    available = fastgrad.available_backends()
    if name not in available:
        raise CLIError(
            f"argument --backend: {name!r} is not available on this install (available: {', '.join(available)})",
            2,
        )


# ------------------------------------------------------------------------- parser --


def build_parser() -> argparse.ArgumentParser:
    from fastgrad import __version__

    from . import evaluate, train

    parser = Parser(
        prog="fastgrad",
        description="fastgrad: reverse-mode automatic differentiation for NumPy.",
        epilog="Each command has its own --help, e.g. 'fastgrad train --help'.",
    )
    parser.add_argument("--version", action="version", version=f"fastgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train.add_parser(sub, HelpFormatter)
    evaluate.add_parsers(sub, HelpFormatter)
    sub.add_parser(
        "bench",
        help="time fastgrad beside NumPy by hand (and PyTorch, autograd, JAX from a checkout)",
        add_help=False,
        description="All arguments after 'bench' go to the benchmark runner; see 'fastgrad bench --help'.",
    )
    return parser


# ------------------------------------------------------------------------- main --


def _bench(argv) -> int:
    try:
        from fastgrad.bench.runner import main as bench_main
    except ImportError as exc:
        print(f"fastgrad bench: error: the benchmark runner is not available ({exc})", file=sys.stderr)
        return 1
    result = bench_main(list(argv))
    return 0 if result is None else int(result)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "bench":  # everything after it belongs to the runner
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CLIError as exc:
        print(f"fastgrad {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if type(exc).__name__ != "DistributedError":  # (fastgrad.distributed, if it was imported)
            raise
        print(f"fastgrad {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastgrad {args.command}: interrupted", file=sys.stderr)
        return 130
