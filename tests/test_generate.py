"""generated/ is exactly what the generator writes, on any machine, hash seed and locale."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symlstm.build.generate import default_output_dir, generate, render_all
from symlstm.cli import main

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"


def test_golden_generated_matches_generator(tmp_path):
    out = tmp_path / "generated"
    generate(out)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    committed = sorted(
        str(p.relative_to(GENERATED))
        for p in GENERATED.rglob("*")
        if p.is_file() and p.suffix in {".py", ".tex"}
    )
    assert written == committed, "the set of generated files changed; run: symlstm generate"
    changed, diff = generate(GENERATED, check=True)
    assert not changed, f"generated/ is out of date; run: symlstm generate\n{diff}"


def test_cli_check_exits_nonzero_with_a_diff_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "generated"
    shutil.copytree(GENERATED, out)
    target = out / "numpy" / "lstm.py"
    target.write_text(target.read_text() + "# edited by hand\n")
    before = target.read_text()
    assert main(["generate", "--check", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "-# edited by hand" in captured.out and "symlstm generate" in captured.err
    assert target.read_text() == before  # --check never writes
    assert main(["generate", "--out", str(out)]) == 0
    assert main(["generate", "--check", "--out", str(out)]) == 0


@pytest.mark.parametrize("seed", ["0", "1", "12345"])
def test_byte_identical_under_hash_seeds_and_locales(seed, tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": seed, "LC_ALL": "C", "LANG": "C"}
    code = (
        "import sys, json; from symlstm.build.generate import render_all;json.dump(render_all(), sys.stdout)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    import json

    assert json.loads(out.stdout) == render_all()


def test_default_output_dir_is_the_checkout():
    assert default_output_dir() == GENERATED


def test_generated_code_imports_only_numpy():
    for path in [*(GENERATED / "numpy").glob("*.py"), *(GENERATED / "reference").glob("*.py")]:
        imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert imports == ["import numpy as np"], f"{path.name}: {imports}"


def test_generated_code_is_ruff_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed: pip install 'symlstm[dev]' (in a clone: '.[dev]')")
    subprocess.run([ruff, "format", "--check", str(GENERATED)], check=True, cwd=ROOT)
    subprocess.run([ruff, "check", str(GENERATED), str(ROOT / "symlstm")], check=True, cwd=ROOT)


def test_no_generated_module_defines_a_name_twice():
    """Each module is its template and the runtime files it includes: a function or constant defined in
    two of them would silently take the later one (the torch Layer's sequence reversal was once
    overridden by the NumPy stacks' function of the same name)."""
    import ast
    from collections import Counter

    for path in sorted(GENERATED.glob("*/*.py")):
        tree = ast.parse(path.read_text())
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        names += [
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        ]
        twice = sorted(name for name, k in Counter(names).items() if k > 1)
        assert not twice, f"{path.relative_to(ROOT)} defines {twice} twice"
