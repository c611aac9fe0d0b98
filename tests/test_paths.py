"""Where the package finds its generated files: the checkout, else the installed copy, never the cwd."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

import symlstm
import symlstm.build.generate as gen
import symlstm.build.load as load_module
import symlstm.paths as paths
from symlstm.backends import CODE_BACKENDS
from symlstm.cli import main

LATEX_DOCUMENTS = importlib.import_module("symlstm.backends.latex.documents")

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "from pathlib import Path\nPath(__file__).with_name('PLANTED_RAN').touch()\nraise SystemExit(97)\n"


@pytest.fixture
def planted_cwd(tmp_path, monkeypatch) -> Path:
    """The working directory holds a ./generated/numpy/lstm.py that must never run."""
    planted = tmp_path / "generated" / "numpy" / "lstm.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(PLANTED)
    monkeypatch.chdir(tmp_path)
    return planted


@pytest.fixture
def outside_checkout(monkeypatch):
    """The package as if installed without its checkout: no checkout, and no installed copy either."""
    for module in (paths, gen):
        monkeypatch.setattr(module, "checkout_root", lambda: None)
    monkeypatch.setattr(paths, "installed_generated_dir", lambda: None)
    monkeypatch.setattr(gen, "installed_generated_dir", lambda: None)


def test_checkout_files_are_found_from_any_directory(planted_cwd):
    assert paths.generated_dir() == ROOT / "generated"
    assert symlstm.load("lstm").__file__ == str(ROOT / "generated" / "numpy" / "lstm.py")
    assert not planted_cwd.with_name("PLANTED_RAN").exists()


def test_without_generated_files_load_renders_and_ignores_the_cwd(planted_cwd, outside_checkout):
    assert paths.generated_dir() is None and load_module.module_path("lstm") is None
    module = symlstm.load("lstm")
    assert module.__file__ == "<symlstm generated numpy.lstm>"  # rendered from the derivation in memory
    assert not planted_cwd.with_name("PLANTED_RAN").exists()
    assert module.CELL == "lstm" and callable(module.backward)


def test_generate_outside_a_checkout_needs_a_directory(planted_cwd, outside_checkout, capsys):
    with pytest.raises(gen.GenerateError, match=r"not running from a source checkout.*--out DIR"):
        gen.default_output_dir()
    before = planted_cwd.read_text()
    assert main(["generate"]) == 2
    assert "generate: error: symlstm is not running from a source checkout" in capsys.readouterr().err
    assert main(["generate", "--check"]) == 2  # nothing installed to compare with either
    assert planted_cwd.read_text() == before and not (planted_cwd.parent / "rnn.py").exists()


def test_check_outside_a_checkout_compares_the_installed_copy(tmp_path, monkeypatch, capsys):
    installed = tmp_path / "site" / "symlstm" / "generated"
    shutil.copytree(ROOT / "generated", installed)
    monkeypatch.setattr(gen, "checkout_root", lambda: None)
    monkeypatch.setattr(gen, "installed_generated_dir", lambda: installed)
    monkeypatch.setattr(paths, "installed_generated_dir", lambda: installed)
    for module in (gen, LATEX_DOCUMENTS):  # the topic sources are not installed
        monkeypatch.setattr(module, "derivations_dir", lambda: None)
    assert gen.default_output_dir(check=True) == installed
    assert main(["generate", "--check"]) == 0
    out = capsys.readouterr()
    assert f"the copy installed with the package, {installed} is up to date" in out.out
    assert "topic documents (t1..t5) skipped" in out.err  # and not reported as stale files
    target = installed / "numpy" / "gru.py"
    target.write_text(target.read_text().replace("def forward", "def forwarded", 1))
    assert main(["generate", "--check"]) == 1
    out = capsys.readouterr()
    assert f"--- {installed}/numpy/gru.py" in out.out and "-def forwarded" in out.out
    assert "reinstall symlstm" in out.err


def test_writing_says_where(tmp_path, capsys):
    assert main(["generate", "rnn", "--out", str(tmp_path)]) == 0
    files = len(CODE_BACKENDS) + 1  # a module per code backend and the LaTeX document
    assert f"{files} file(s) written to {tmp_path} in" in capsys.readouterr().out
    assert main(["generate", "rnn", "--out", str(tmp_path)]) == 0
    assert f"{tmp_path} is up to date, nothing written" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"symlstm {symlstm.__version__}\n"
