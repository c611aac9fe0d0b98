"""Building the PDFs: the documents written out, their figures drawn, latexmk run on each; `symlstm latex`.

`build_pdfs(out_dir, files, figures=...)` writes each `<name>.tex` into `out_dir`, draws the named figures
into `out_dir/figures/` (only those; matplotlib, see `figures`), and compiles every document with latexmk,
two at a time. The PDFs land beside the `.tex` files; LaTeX's own files (`.aux`, `.log`, `.fls`, ...) go
to `out_dir/logs/`, where a failure report points. Without matplotlib the figures are left out and each
document shows a boxed note in their place.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.latex import documents
from ..paths import checkout_root

__all__ = [
    "LOGS",
    "BuildResult",
    "add_arguments",
    "build_pdfs",
    "cli_main",
    "default_build_dir",
    "first_error",
    "log_path",
]

LOGS = "logs"  # subfolder of the output directory for LaTeX's auxiliary files and logs


@dataclass
class BuildResult:
    """The outcome of compiling one document."""

    name: str
    ok: bool
    pdf: Path | None
    error: str = ""
    undefined: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: Path | None = None


_ERROR = re.compile(r"^(!.*|[^\s:]+\.tex:\d+: .*)$")
_UNDEFINED = re.compile(r"(Reference|Citation) `[^']*' on page \d+ undefined|There were undefined references")


def first_error(log: str) -> str:
    """The first error line of a LaTeX log (`! ...` or `file:line: ...`), with the line that follows."""
    lines = log.splitlines()
    for k, line in enumerate(lines):
        if _ERROR.match(line):
            nxt = lines[k + 1].strip() if k + 1 < len(lines) else ""
            return f"{line.strip()} {nxt}".strip()
    return ""


def log_path(tex: Path, aux_dir: Path | None = None) -> Path:
    """Where latexmk leaves the log of `tex` (beside it, or in `aux_dir`)."""
    return (aux_dir if aux_dir is not None else tex.parent) / f"{tex.stem}.log"


def _latexmk(tex: Path, aux_dir: Path | None = None) -> BuildResult:
    """Compile `tex` in its folder; auxiliary files and the log beside it or in `aux_dir`."""
    start = time.perf_counter()
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "-silent"]
    if aux_dir is not None:
        cmd += [f"-auxdir={aux_dir.resolve()}", "-emulate-aux-dir"]
    proc = subprocess.run([*cmd, tex.name], cwd=tex.parent, capture_output=True, text=True, errors="replace")
    log_file = log_path(tex, aux_dir)
    log = log_file.read_text(errors="replace") if log_file.is_file() else proc.stdout + proc.stderr
    pdf = tex.with_suffix(".pdf")
    undefined = sorted(set(m.group(0) for m in _UNDEFINED.finditer(log)))
    ok = proc.returncode == 0 and pdf.is_file()
    error = "" if ok else (first_error(log) or (proc.stderr.strip().splitlines() or ["latexmk failed"])[-1])
    return BuildResult(tex.stem, ok and not undefined, pdf if pdf.is_file() else None, error, undefined,
                       time.perf_counter() - start, log_file)  # fmt: skip


def build_pdfs(out_dir: Path, files: dict[str, str], *, figures: Iterable[str] = (), jobs: int = 2,
               ) -> list[BuildResult]:  # fmt: skip
    """Write `files` ({name.tex: TeX}) to `out_dir`, draw `figures` (file names), compile each document.

    Figures are drawn only when matplotlib is installed (`figures.can_draw()`); a document whose figure
    is missing still compiles, with a boxed note in its place.
    """
    if shutil.which("latexmk") is None:
        raise OSError("latexmk not found: install texlive-latex-base, texlive-latex-recommended, latexmk")
    out_dir.mkdir(parents=True, exist_ok=True)
    from . import figures as figs

    wanted = sorted(set(figures))
    if wanted and figs.can_draw():
        figs.draw(out_dir / "figures", wanted)
    aux = out_dir / LOGS
    aux.mkdir(exist_ok=True)
    paths = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda p: _latexmk(p, aux), paths))


def default_build_dir() -> Path:
    root = checkout_root()
    return (root if root is not None else Path.cwd()) / "build" / "latex"


# -- command line ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cells", nargs="*", help="cells whose documents to write (default: all)")
    parser.add_argument("--pdf", action="store_true", help="also draw the figures and compile PDFs (latexmk)")
    parser.add_argument("--out", help="output directory (default: build/latex of the checkout)")
    parser.add_argument("--no-topics", action="store_true", help="only the per-cell documents")


def cli_main(args: argparse.Namespace) -> int:
    from . import figures as figs

    out = Path(args.out) if args.out else default_build_dir()
    docs = documents(args.cells or None, topics=not args.no_topics)
    files = {f"{d.name}.tex": d.render() for d in docs}
    if not args.pdf:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
        print(f"{len(files)} document(s) written to {out}")
        return 0
    wanted = sorted({f for d in docs for f in d.figures})
    if wanted and not figs.can_draw():
        print(f"symlstm latex: matplotlib is not installed (pip install 'symlstm[docs]'): {len(wanted)} "
              "figure(s) replaced by a boxed note", file=sys.stderr)  # fmt: skip
    start = time.perf_counter()
    results = build_pdfs(out, files, figures=wanted)
    failed = 0
    for r in results:
        if r.ok:
            print(f"{r.name}.pdf  ({r.seconds:.1f} s)")
            continue
        failed += 1
        reason = r.error or "; ".join(r.undefined)
        print(f"symlstm latex: {r.name}.tex failed: {reason} (log: {r.log})", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"{len(results) - failed} of {len(results)} PDF(s) built in {out} in {seconds:.0f} s "
          f"(LaTeX logs in {out / LOGS})")  # fmt: skip
    return 1 if failed else 0
