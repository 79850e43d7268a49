"""The docs run as written: every code block of README.md and docs/*.md, and every file
they name exists.

A page's blocks run in document order in one scratch directory (so a file one block
writes, the next can read), Python blocks in one namespace of a fresh interpreter:

- ```python blocks run. A block marked ```python excerpt=PATH is a passage of that source
  file instead: each of its lines must be in the file, so the page cannot drift from it.
- Shell blocks (```bash, ```console, or no language): `fastgrad train/evaluate/predict …`,
  `python -c …` and simple file commands (printf, …) run; `fastgrad bench …` (minutes of
  timing) is parsed, options and all; `pip install ".[extra]"` names an extra
  pyproject.toml defines; commands for other machines (venvs, mpiexec under Slurm,
  docker, kubectl) and scripts that time things are checked for the files they name.
- README's two opening commands are what .ci/run runs.
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
SHELL = {"", "bash", "sh", "console", "shell"}


def _blocks(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip().split()
        lang = info[0] if info else ""
        attrs = dict(a.split("=", 1) for a in info[1:] if "=" in a)
        line = text.count("\n", 0, m.start()) + 1
        out.append((lang, attrs, m.group(2), line))
    return out


def _env():
    src = os.path.join(ROOT, "src")
    path = os.environ.get("PYTHONPATH", "")
    # A checkout with an in-place build runs from src; an installed package needs nothing.
    if os.path.exists(os.path.join(src, "fastgrad", "__init__.py")) and not os.environ.get("FASTGRAD_DOCS_INSTALLED"):
        path = os.pathsep.join([src, path]) if path else src
    return dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg")


def _excerpt_matches(page, line, attrs, body):
    source = os.path.join(ROOT, attrs["excerpt"])
    assert os.path.exists(source), f"{page}:{line}: excerpt of a missing file {attrs['excerpt']}"
    with open(source, encoding="utf-8") as f:
        text = f.read()
    for excerpt_line in body.splitlines():
        stripped = excerpt_line.strip()
        if stripped and not stripped.startswith("#"):
            assert stripped in text, f"{page}:{line}: `{stripped}` is not in {attrs['excerpt']}"


def _commands(body, lang):
    """The commands of a shell block: `$ ` prompts in a console block, else every line;
    comments dropped, backslash continuations joined, `a && b` split."""
    lines = body.splitlines()
    if lang == "console":
        lines = [ln[2:] for ln in lines if ln.startswith("$ ")]
    joined, cur = [], ""
    for ln in lines:
        cur += ln.rstrip("\\") + " " if ln.endswith("\\") else ln
        if not ln.endswith("\\"):
            joined.append(cur)
            cur = ""
    cmds = []
    for ln in joined:
        ln = "" if ln.lstrip().startswith("#") else ln.split(" #")[0].strip()
        if ln:
            cmds += [c.strip() for c in ln.split("&&")]
    return cmds


EXTRAS = None


def _extras():
    global EXTRAS
    if EXTRAS is None:
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            EXTRAS = set(tomllib.load(f)["project"]["optional-dependencies"])
    return EXTRAS


OUTPUT_OPTIONS = {"--plots", "--out", "--save", "--plot", "--json"}
FILE_COMMANDS = {"printf", "echo", "cat", "head", "ls", "rm", "mkdir"}


def _check_names_files(page, line, words):
    """Every repository path a command names exists (not the ones it writes)."""
    for prev, w in zip([""] + words[:-1], words):
        w = w.strip("'\"")
        if prev in OUTPUT_OPTIONS:
            continue
        if re.match(r"^(src|tests|benchmarks|examples|docs|tools|scripts)/[\w./-]+$", w):
            assert os.path.exists(os.path.join(ROOT, w)), f"{page}:{line}: names a missing file {w}"


def _steps(page):
    """The page's runnable steps in order: ("python", code) and ("run", argv or shell line)."""
    from fastgrad.bench import runner
    from fastgrad.cli import build_parser

    steps = []
    for lang, attrs, body, line in _blocks(page):
        where = f"{page}:{line}"
        if lang == "python":
            if "excerpt" in attrs:
                _excerpt_matches(page, line, attrs, body)
            else:
                steps.append(("python", where, body))
            continue
        if lang not in SHELL:
            continue
        for cmd in _commands(body, lang):
            words = shlex.split(cmd)
            _check_names_files(page, line, words)
            if words[:2] == ["pip", "install"]:
                for w in words[2:]:
                    m = re.search(r"\[([\w,]+)\]", w)
                    if m:
                        unknown = set(m.group(1).split(",")) - _extras()
                        assert not unknown, f"{where}: pip install names unknown extras {unknown}"
                continue
            if words[:1] == ["taskset"]:
                words = words[3:]
            if words[:2] == ["fastgrad", "bench"]:
                runner.build_parser().parse_args(words[2:])  # minutes of timing: parsed only
            elif words[:1] == ["fastgrad"]:
                build_parser().parse_args(words[1:])
                steps.append(("run", where, [sys.executable, "-m", "fastgrad", *words[1:]]))
            elif words[:2] == ["python", "-c"]:
                steps.append(("run", where, [sys.executable, *words[1:]]))
            elif words[:1] and words[0] in FILE_COMMANDS:
                steps.append(("run", where, ["bash", "-c", cmd]))
            # anything else (venvs, scripts that time things for minutes, mpiexec on a
            # cluster, docker, kubectl) is checked for the files it names, above
    return steps


DRIVER = r"""
import json, subprocess, sys
steps = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for kind, where, what in steps:
    if kind == "python":
        try:
            exec(compile(what, where, "exec"), namespace)
        except Exception as exc:
            import traceback; traceback.print_exc()
            sys.exit(f"FAILED at {where}: {type(exc).__name__}: {exc}")
    else:
        proc = subprocess.run(what, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            sys.exit(f"FAILED at {where}: {' '.join(what)}\n{proc.stderr[-2000:]}")
"""


@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_run(page, tmp_path):
    steps = _steps(page)
    if not steps:
        pytest.skip(f"{page} has nothing to run (its blocks were checked for the files they name)")
    (tmp_path / "steps.json").write_text(json.dumps(steps), encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    proc = subprocess.run([sys.executable, "driver.py", "steps.json"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{page}:\n{proc.stderr[-4000:]}"


def test_readme_opens_with_the_two_commands_ci_runs():
    blocks = [b for b in _blocks("README.md") if b[0] == "bash"][:2]
    train, test = (b[2].strip() for b in blocks)
    assert train.endswith('pip install ".[train]" && fastgrad train')
    assert 'pip install ".[test]"' in test and "python -m pytest" in test
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    for part in ['pip install -q ".[test]"', 'pip install -q ".[train]"', "fastgrad train",
                 "python -m pytest", "FASTGRAD_BACKEND=reference python -m pytest", "python3 -m venv"]:
        assert part in ci, f".ci/run does not do what the README says: {part}"
    for part in test.split("&&")[2:]:
        assert part.strip().replace('pip install ', 'pip install -q ') in ci, part


@pytest.mark.parametrize("page", PAGES)
def test_files_named_in_prose_exist(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    for m in re.finditer(r"(?<![\w/.])((?:src|tests|benchmarks|examples|docs|tools|scripts)/[\w/.-]*\w)", text):
        path = m.group(1)
        if re.search(r"--(plots|out|save|plot|json) $", text[max(0, m.start() - 9):m.start()]):
            continue  # a file or directory the command writes
        if any(ch in path for ch in "*{<"):
            continue
        assert os.path.exists(os.path.join(ROOT, path)), f"{page} names a missing file {path}"
