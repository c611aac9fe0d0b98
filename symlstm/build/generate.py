"""Writing `generated/`: render every file in memory, then replace the old files only when all succeeded.

`generate(out_dir)` renders the NumPy module and LaTeX document of every registered cell in memory,
writes the changed files to a staging directory inside `out_dir` and moves them into place one by one
(`os.replace`, atomic per file), removing stale files of the managed kinds. A failure while rendering
leaves `out_dir` untouched. `check=True` writes nothing and returns the unified diff of what would
change.

Without `out_dir`: `generated/` of the source checkout. Outside a checkout (an installed package) there
is no default to write to (the copy installed inside the package belongs to the installation), and
`check=True` compares that installed copy with what the installed generator renders.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import jinja2

from ..backends import CODE_BACKENDS
from ..backends.latex import cell_document, topic_documents
from ..backends.latex.documents import derivations_dir
from ..cells import CELLS, cell
from ..engine import derive
from ..paths import checkout_root, installed_generated_dir
from ..spec import CellSpec, SpecError

__all__ = ["GenerateError", "default_output_dir", "describe_output_dir", "generate", "render_all"]

# Subdirectories of generated/ that the generator owns, and the suffix of the files it writes there.
MANAGED = {**{name: ".py" for name in CODE_BACKENDS}, "latex": ".tex"}


class GenerateError(RuntimeError):
    """Rendering or writing `generated/` failed; the message says what, and that nothing was changed."""


def default_output_dir(*, check: bool = False) -> Path:
    """`generated/` of the source checkout; outside one, the installed copy for `check` only.

    Raises `GenerateError` outside a checkout when writing: the working directory is never a default.
    """
    root = checkout_root()
    if root is not None:
        return root / "generated"
    installed = installed_generated_dir()
    if check and installed is not None:
        return installed
    where = f"its generated files are installed in {installed}" if installed else "it has no generated files"
    raise GenerateError(
        f"symlstm is not running from a source checkout ({where}); give the directory to write to "
        "(symlstm generate --out DIR, or generate(out_dir))"
    )


def describe_output_dir(out_dir: Path) -> str:
    """Which directory `out_dir` is, in words: the checkout's generated/, the installed copy, or a path."""
    root = checkout_root()
    if root is not None and out_dir.resolve() == (root / "generated").resolve():
        return f"generated/ of the source checkout {root}"
    installed = installed_generated_dir()
    if installed is not None and out_dir.resolve() == installed.resolve():
        return f"the copy installed with the package, {installed}"
    return str(out_dir)


def topic_sources_available() -> bool:
    """Whether the topic documents' sources (`derivations/`, in the source checkout only) are here."""
    return derivations_dir() is not None


def _unmanaged(name: str, topics: bool) -> bool:
    """Whether an existing file is outside what a full run writes: without the topic sources
    (`derivations/`, in the source checkout only) the documents that are not a cell's are left alone."""
    return not topics and name.startswith("latex/") and Path(name).stem not in CELLS


def _specs(names: Iterable[str] | None) -> list[CellSpec]:
    return [cell(n) for n in (names if names else sorted(CELLS))]


def render_all(
    names: Iterable[str] | None = None, renderers: dict[str, Callable] | None = None
) -> dict[str, str]:
    """Every generated file as {relative path: text}, rendered in memory."""
    files: dict[str, str] = {}
    for spec in _specs(names):
        d = derive(spec)
        for backend in CODE_BACKENDS.values():
            files[f"{backend.name}/{spec.name}.py"] = backend.render(d)
        files[f"latex/{spec.name}.tex"] = cell_document(d).render()
    if names is None:  # the topic documents draw on several cells: written with the full set only
        for doc in topic_documents():
            files[f"latex/{doc.name}.tex"] = doc.render()
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


def _changed(old: dict[str, str], files: dict[str, str], complete: bool) -> list[str]:
    """Relative paths whose text differs between `old` and `files` (stale files count when `complete`)."""
    names = set(files) | (set(old) if complete else set())
    return sorted(n for n in names if old.get(n) != files.get(n))


def _diff(old: dict[str, str], files: dict[str, str], complete: bool, label: str = "generated") -> str:
    """Unified diff from the texts `old` to `files` (stale files count when `complete`); file names
    are shown under `label`."""
    chunks = []
    for name in _changed(old, files, complete):
        chunks += difflib.unified_diff(
            old.get(name, "").splitlines(keepends=True), files.get(name, "").splitlines(keepends=True),
            fromfile=f"{label}/{name}" if name in old else "/dev/null",
            tofile=f"{label}/{name}" if name in files else "/dev/null",
        )  # fmt: skip
    return "".join(chunks)


def _label(out_dir: Path) -> str:
    """`generated` for the checkout's generated/ (paths as in the repository), else the directory."""
    root = checkout_root()
    if root is not None and out_dir.resolve() == (root / "generated").resolve():
        return "generated"
    return str(out_dir)


def _template_line(err: BaseException) -> str:
    """' (template X line N)' for an error raised inside a Jinja2 template, else ''."""
    if isinstance(err, jinja2.TemplateSyntaxError):
        return f" (template {err.name or err.filename} line {err.lineno})"
    tb = err.__traceback__
    where = ""
    while tb is not None:  # Jinja2 rewrites template frames to the template's file and line
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f" (template {Path(filename).name} line {tb.tb_lineno})"
        tb = tb.tb_next
    return where


def generate(
    out_dir: Path | str | None = None,
    names: Iterable[str] | None = None,
    *,
    check: bool = False,
    extra: dict[str, Callable] | None = None,
) -> tuple[list[str], str]:
    """Regenerate `out_dir`; returns (changed relative paths, unified diff). `check` writes nothing.

    `out_dir` defaults to `generated/` of the source checkout (outside one: see `default_output_dir`).
    Every file is rendered in memory first, then the changed ones are written to a staging directory
    inside `out_dir` and moved into place one by one (`os.replace`), each old file backed up first. Any
    failure (an unknown cell: `SpecError`; a broken spec, a template error or an unwritable directory:
    `GenerateError`) leaves the files in `out_dir` as they were.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_output_dir(check=check)
    names = list(names) if names else None
    try:
        files = render_all(names, extra)
    except SpecError:
        raise
    except Exception as err:
        raise GenerateError(
            f"rendering failed{_template_line(err)}: {type(err).__name__}: {err}; "
            f"nothing was written to {out_dir}"
        ) from err
    complete = names is None
    topics = topic_sources_available()  # whether render_all wrote the topic documents
    old = {n: t for n, t in _existing(out_dir).items() if not _unmanaged(n, topics)}
    text = _diff(old, files, complete, _label(out_dir))
    changed = _changed(old, files, complete)
    if check or not changed:
        return changed, text
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(13, "Permission denied", str(out_dir))
        staging = Path(tempfile.mkdtemp(prefix=".symlstm-", dir=out_dir))
    except OSError as err:
        raise GenerateError(f"cannot write to {out_dir}: {err}; nothing was changed") from err
    replaced: list[tuple[Path, Path | None]] = []  # (target, its backup or None when it was new)
    try:
        for name in changed:
            if name in files:
                path = staging / "new" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "w", encoding="utf-8", newline="\n") as fh:
                    fh.write(files[name])
        for name in changed:
            target = out_dir / name
            backup = None
            if target.exists():
                backup = staging / "old" / name
                backup.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(target, backup)
            if name in files:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / "new" / name, target)
            else:
                target.unlink()
            replaced.append((target, backup))
    except OSError as err:
        restored = _restore(replaced)
        raise GenerateError(
            f"writing {out_dir} failed: {err}; "
            + ("every file was restored, nothing was changed" if restored else f"could not restore {out_dir}")
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return changed, text


def _restore(replaced: list[tuple[Path, Path | None]]) -> bool:
    """Undo `generate`'s moves, newest first; whether every file was restored."""
    ok = True
    for target, backup in reversed(replaced):
        try:
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(backup, target)
        except OSError:
            ok = False
    return ok
