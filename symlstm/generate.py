"""Writing `generated/`: render every file in memory, then replace the old files only when all succeeded.

`generate(out_dir)` renders the NumPy module of every registered cell into a temporary directory beside
`out_dir` and moves the files into place one by one (`os.replace`, atomic per file), removing stale
files of the managed kinds. A failure while rendering leaves `out_dir` untouched. `check=True` writes
nothing and returns the unified diff of what would change.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .cells import CELLS, cell
from .engine import derive
from .render import render_numpy
from .spec import CellSpec

__all__ = ["default_output_dir", "generate", "render_all"]

# Subdirectories of generated/ that the generator owns, and the suffix of the files it writes there.
MANAGED = {"numpy": ".py"}


def default_output_dir() -> Path:
    """`generated/` of the source checkout when run from one, else `./generated`."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "symlstm").is_dir():
        return root / "generated"
    return Path.cwd() / "generated"


def _specs(names: Iterable[str] | None) -> list[CellSpec]:
    return [cell(n) for n in (names if names else sorted(CELLS))]


def render_all(
    names: Iterable[str] | None = None, renderers: dict[str, Callable] | None = None
) -> dict[str, str]:
    """Every generated file as {relative path: text}, rendered in memory."""
    files: dict[str, str] = {}
    for spec in _specs(names):
        d = derive(spec)
        files[f"numpy/{spec.name}.py"] = render_numpy(d)
    for name, render in (renderers or {}).items():
        files[name] = render()
    return dict(sorted(files.items()))


def _existing(out_dir: Path) -> dict[str, str]:
    found = {}
    for sub, suffix in MANAGED.items():
        folder = out_dir / sub
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{suffix}")):
                found[f"{sub}/{path.name}"] = path.read_text(encoding="utf-8")
    return found


def diff(out_dir: Path, files: dict[str, str], complete: bool = True) -> str:
    """Unified diff from the files in `out_dir` to `files` (stale files count when `complete`)."""
    old = _existing(out_dir)
    names = sorted(set(files) | (set(old) if complete else set()))
    chunks = []
    for name in names:
        a, b = old.get(name, ""), files.get(name, "")
        if a != b:
            chunks += difflib.unified_diff(
                a.splitlines(keepends=True), b.splitlines(keepends=True),
                fromfile=f"generated/{name}" if name in old else "/dev/null",
                tofile=f"generated/{name}" if name in files else "/dev/null",
            )  # fmt: skip
    return "".join(chunks)


def generate(
    out_dir: Path | str | None = None,
    names: Iterable[str] | None = None,
    *,
    check: bool = False,
    extra: dict[str, Callable] | None = None,
) -> tuple[list[str], str]:
    """Regenerate `out_dir`; returns (changed relative paths, unified diff). `check` writes nothing."""
    out_dir = Path(out_dir) if out_dir is not None else default_output_dir()
    names = list(names) if names else None
    files = render_all(names, extra)
    complete = names is None
    text = diff(out_dir, files, complete)
    old = _existing(out_dir)
    changed = sorted(n for n in set(files) | (set(old) if complete else set()) if old.get(n) != files.get(n))
    if check or not changed:
        return changed, text
    out_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(f"output directory {out_dir} is not writable")
    staging = Path(tempfile.mkdtemp(prefix=".symlstm-", dir=out_dir))
    try:
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(content)
        for name in changed:
            target = out_dir / name
            if name in files:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, target)
            else:
                target.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return changed, text
