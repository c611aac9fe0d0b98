"""The README (and the docs) as printed: every python block runs, every doctest block gives its output,
every `symlstm` command line parses with valid cells and checks, every relative link and anchor exists."""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import symlstm
from symlstm.cli import build_parser
from symlstm.verify import parse_checks

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(path: Path, language: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced block of `language` in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == language
    ]


README = ROOT / "README.md"
PYTHON = _blocks(README, "python")
PYCON = _blocks(README, "pycon")


def test_the_readme_has_code_to_run():
    assert len(PYTHON) >= 4 and len(PYCON) >= 1 and _blocks(README, "sh")


@pytest.mark.parametrize(("line", "code"), PYTHON, ids=[f"line {n}" for n, _ in PYTHON])
def test_python_block_runs_as_printed(line, code, tmp_path):
    """Each block on its own, in a fresh interpreter, from an empty directory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"README.md line {line}:\n{proc.stderr[-3000:]}"
    assert not list(tmp_path.iterdir()), "a README example wrote into the working directory"


@pytest.mark.parametrize(("line", "text"), PYCON, ids=[f"line {n}" for n, _ in PYCON])
def test_doctest_block_gives_its_output(line, text):
    test = doctest.DocTestParser().get_doctest(text, {}, f"README.md:{line}", str(README), line)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    failures = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0 and test.examples, "".join(failures)


def _commands() -> list[tuple[str, int, str]]:
    """(file, line, command) of every `symlstm ...` line in the shell blocks of the docs."""
    found = []
    for path in DOCS:
        for start, block in _blocks(path, "sh"):
            for k, line in enumerate(block.splitlines()):
                if line.strip().startswith("symlstm "):
                    found.append((path.name, start + 1 + k, line.strip()))
    return found


COMMANDS = _commands()


@pytest.mark.parametrize(("name", "line", "command"), COMMANDS, ids=[f"{f}:{n}" for f, n, _ in COMMANDS])
def test_command_line_parses_with_valid_cells_and_checks(name, line, command):
    argv = shlex.split(command, comments=True)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{name} line {line}: `{command}` does not parse (exit {exit_.code})")
    for cell in getattr(args, "cells", []) or []:
        symlstm.cell(cell)  # an unknown name raises SpecError
    if getattr(args, "checks", None):
        parse_checks(args.checks)


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_links_and_anchors_exist(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+://", target):
            continue
        file, _, anchor = target.partition("#")
        where = (path.parent / file).resolve() if file else path
        assert where.exists(), f"{path.name}: link to missing {target}"
        if anchor:
            heads = (
                anchors
                if where == path
                else {_slug(h) for h in re.findall(r"^#+ (.*)$", where.read_text(), re.M)}
            )
            assert anchor in heads, f"{path.name}: no heading for #{anchor} in {where.name}"
