"""Installed like any package: an sdist and a wheel built from the sources, the wheel installed (not
editable) into a fresh virtualenv and used from another directory.

The wheel is built once per test session. The fresh environment gets the dependencies (numpy, sympy,
jinja2) as a path entry to the test environment's own site directories, so nothing is downloaded; the
package itself comes only from the wheel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from importlib.metadata import version
from pathlib import Path

import pytest

import symlstm
from symlstm.backends import CODE_BACKENDS

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"
# A module that must never run: planted as ./generated/numpy/lstm.py in the caller's directory.
PLANTED = "from pathlib import Path\nPath(__file__).with_name('PLANTED_RAN').touch()\nraise SystemExit(97)\n"
# Not sources: skipped when the sources are copied (at the top, and anywhere).
TOP_JUNK = {".venv", ".git", "build", "dist", "out"}
ANY_JUNK = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis")


def _junk(folder: str, names: list[str]) -> set[str]:
    top = TOP_JUNK & set(names) if Path(folder) == ROOT else set()
    return top | ANY_JUNK(folder, names)


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _committed() -> dict[str, bytes]:
    return {
        str(p.relative_to(GENERATED)): p.read_bytes()
        for p in sorted(GENERATED.rglob("*"))
        if p.is_file() and p.suffix in {".py", ".tex"}
    }


def _build_requirement() -> int:
    """The major version of setuptools that pyproject.toml's build-system requires."""
    found = re.search(r'"setuptools>=(\d+)', (ROOT / "pyproject.toml").read_text())
    assert found, "pyproject.toml names no setuptools version in build-system.requires"
    return int(found.group(1))


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    """{'sdist', 'wheel'}: built from a copy of the sources (the checkout stays clean)."""
    for module in ("setuptools", "pip"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"building a wheel needs {module} in the test environment")
    needed, found = _build_requirement(), version("setuptools")  # not imported: it patches distutils
    if int(found.split(".")[0]) < needed:
        pytest.skip(f"building needs setuptools>={needed} (pyproject.toml), found {found}")
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=_junk)
    code = "from setuptools.build_meta import build_sdist; print(build_sdist('dist'))"
    proc = _run([sys.executable, "-c", code], cwd=src)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sdist = src / "dist" / proc.stdout.split()[-1]
    wheels = work / "wheels"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
           "-w", str(wheels), str(sdist)]  # fmt: skip
    proc = _run(cmd, cwd=work)  # the wheel is built from the sdist: both must be complete
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = wheels.glob("symlstm-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def _dependencies() -> list[str]:
    """The names in pyproject.toml's `dependencies`."""
    found = re.search(r"^dependencies = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert found, "pyproject.toml: no one-line dependencies list"
    return re.findall(r'"([A-Za-z0-9_.-]+)', found.group(1))


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions `names` and everything they require (extras left out), in order."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop(0)).lower()
        if name in seen:
            continue
        seen[name] = dist = metadata.distribution(name)
        todo += [re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in dist.requires or () if "extra ==" not in r]
    return list(seen.values())


@pytest.fixture(scope="session")
def venv(built, tmp_path_factory) -> Path:
    """The python of a fresh virtualenv with the wheel installed."""
    home = tmp_path_factory.mktemp("venv")
    proc = _run([sys.executable, "-m", "venv", "--without-pip", str(home / "env")], cwd=home)
    assert proc.returncode == 0, proc.stderr
    python = home / "env" / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=home)
    # The dependencies, linked from this environment into one folder on the new one's path: only them,
    # so that no copy of symlstm installed here is visible there.
    deps = home / "deps"
    deps.mkdir()
    for dist in _closure(_dependencies()):
        for top in {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (deps / top).exists():
                (deps / top).symlink_to(source)
    (Path(site.stdout.strip()) / "symlstm_test_deps.pth").write_text(f"{deps}\n")
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q",
           str(built["wheel"])]  # fmt: skip
    proc = _run(cmd, cwd=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return python


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory outside the checkout, with a planted ./generated/numpy/lstm.py."""
    planted = tmp_path / "generated" / "numpy" / "lstm.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(PLANTED)
    return tmp_path


def _script(env_python: Path, cwd: Path, code: str) -> subprocess.CompletedProcess:
    return _run([str(env_python), "-c", code], cwd=cwd, env={**os.environ, "PYTHONPATH": ""})


def _symlstm(env_python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return _run([str(env_python.parent / "symlstm"), *args], cwd=cwd, env={**os.environ, "PYTHONPATH": ""})


def test_sdist_and_wheel_carry_the_generated_files(built):
    committed = _committed()
    with tarfile.open(built["sdist"]) as tar:
        names = {"/".join(Path(n).parts[1:]) for n in tar.getnames()}
    missing = [f"generated/{n}" for n in committed if f"generated/{n}" not in names]
    assert not missing, f"sdist lacks {missing}"
    for needed in ("setup.py", "pyproject.toml", "README.md", "tests/test_install.py", "derivations"):
        assert needed in names, f"sdist lacks {needed}"
    with zipfile.ZipFile(built["wheel"]) as whl:
        shipped = {n.removeprefix("symlstm/generated/"): whl.read(n) for n in whl.namelist()
                   if n.startswith("symlstm/generated/")}  # fmt: skip
        runtime = [n for n in whl.namelist() if n.startswith("symlstm/backends/numpy/runtime/")]
        metadata = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert shipped == committed, "the wheel's symlstm/generated/ differs from generated/"
    here = Path(__file__).resolve().parents[1] / "symlstm/backends/numpy/runtime"
    wanted = sorted(f"symlstm/backends/numpy/runtime/{p.name}" for p in here.glob("*.py"))
    assert sorted(runtime) == wanted  # the runtime files the templates include
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    runtime_requires = [r for r in requires if "extra ==" not in r]
    assert not any("pytest" in r for r in runtime_requires), runtime_requires
    assert any("pytest" in r and "extra == " in r and "test" in r for r in requires), requires


def test_installed_load_never_imports_from_the_working_directory(venv, elsewhere):
    code = (
        "import json, numpy as np, symlstm, symlstm.paths\n"
        "m = symlstm.load('lstm')\n"
        "p = m.init_params(3, 4, seed=0)\n"
        "x = np.random.default_rng(0).standard_normal((5, 2, 3))\n"
        "y, state, cache = m.forward(p, x)\n"
        "dp, dx, ds = m.backward(p, cache, np.ones_like(y))\n"
        "print(json.dumps({'package': symlstm.__file__, 'module': m.__file__, 'version': symlstm.__version__,"
        " 'generated': str(symlstm.paths.generated_dir()), 'finite': bool(np.isfinite(dp['W_hh']).all())}))\n"
    )
    proc = _script(venv, elsewhere, code)
    assert not (elsewhere / "generated" / "numpy" / "PLANTED_RAN").exists(), "the planted module ran"
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    env_root = venv.parent.parent
    assert Path(out["package"]).is_relative_to(env_root), out  # the wheel's copy, not the checkout
    assert Path(out["module"]) == Path(out["generated"]) / "numpy" / "lstm.py", out
    assert Path(out["generated"]).is_relative_to(env_root) and out["finite"], out
    assert out["version"] == symlstm.__version__ == version("symlstm")


def test_installed_generate_says_where_and_needs_out(venv, elsewhere):
    before = sorted(p.name for p in elsewhere.rglob("*"))
    proc = _symlstm(venv, elsewhere, "generate")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not running from a source checkout" in proc.stderr and "--out DIR" in proc.stderr, proc.stderr
    assert sorted(p.name for p in elsewhere.rglob("*")) == before  # nothing written to the cwd

    proc = _symlstm(venv, elsewhere, "generate", "--check")  # compares the installed copy
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "the copy installed with the package" in proc.stdout and "is up to date" in proc.stdout
    assert proc.stdout.count("\n") == 1, proc.stdout  # one line, no diff
    assert "topic documents (t1..t5) skipped" in proc.stderr

    proc = _symlstm(venv, elsewhere, "generate", "lstm", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert f"{len(CODE_BACKENDS) + 1} file(s) written to out" in proc.stdout, proc.stdout  # and latex/
    for backend in CODE_BACKENDS:
        written = elsewhere / "out" / backend / "lstm.py"
        assert written.read_bytes() == (GENERATED / backend / "lstm.py").read_bytes()

    proc = _symlstm(venv, elsewhere, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"symlstm {symlstm.__version__}", proc


def test_installed_copy_that_was_edited_is_reported(venv, elsewhere):
    code = "import symlstm.paths; print(symlstm.paths.installed_generated_dir())"
    installed = Path(_script(venv, elsewhere, code).stdout.strip())
    target = installed / "numpy" / "rnn.py"
    original = target.read_bytes()
    try:
        target.write_bytes(original + b"# edited\n")
        proc = _symlstm(venv, elsewhere, "generate", "--check", "rnn")
        assert proc.returncode == 1 and "-# edited" in proc.stdout, proc.stdout[-2000:] + proc.stderr
        assert "reinstall symlstm" in proc.stderr, proc.stderr
    finally:
        target.write_bytes(original)
