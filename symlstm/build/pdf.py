"""Building the PDFs: the documents written out, the figures drawn, latexmk run on each; `symlstm latex`."""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.latex import render_documents
from ..paths import checkout_root

__all__ = ["BuildResult", "add_arguments", "build_pdfs", "cli_main", "default_build_dir", "first_error"]

@dataclass
class BuildResult:
    """The outcome of compiling one document."""

    name: str
    ok: bool
    pdf: Path | None
    error: str = ""
    undefined: list[str] = field(default_factory=list)
    seconds: float = 0.0


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


def _latexmk(tex: Path) -> BuildResult:
    import time

    start = time.perf_counter()
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
           "-silent", tex.name]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tex.parent, capture_output=True, text=True)
    log_path = tex.with_suffix(".log")
    log = log_path.read_text(errors="replace") if log_path.is_file() else proc.stdout + proc.stderr
    pdf = tex.with_suffix(".pdf")
    undefined = sorted(set(m.group(0) for m in _UNDEFINED.finditer(log)))
    ok = proc.returncode == 0 and pdf.is_file()
    error = "" if ok else (first_error(log) or (proc.stderr.strip().splitlines() or ["latexmk failed"])[-1])
    return BuildResult(tex.stem, ok and not undefined, pdf if pdf.is_file() else None, error, undefined,
                       time.perf_counter() - start)  # fmt: skip


def build_pdfs(out_dir: Path, files: dict[str, str], *, figures: bool = True, jobs: int = 2,
               ) -> list[BuildResult]:  # fmt: skip
    """Write `files` ({name.tex: TeX}) to `out_dir`, draw the figures, compile each with latexmk."""
    if shutil.which("latexmk") is None:
        raise OSError("latexmk not found: install texlive-latex-base, texlive-latex-recommended, latexmk")
    out_dir.mkdir(parents=True, exist_ok=True)
    if figures:
        from .figures import draw_all

        draw_all(out_dir / "figures")
    paths = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(_latexmk, paths))


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
    out = Path(args.out) if args.out else default_build_dir()
    files = render_documents(args.cells or None, topics=not args.no_topics)
    if not args.pdf:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
        print(f"{len(files)} document(s) written to {out}")
        return 0
    results = build_pdfs(out, files)
    failed = 0
    for r in results:
        if r.ok:
            print(f"{r.name}.pdf  ({r.seconds:.1f} s)")
            continue
        failed += 1
        reason = r.error or "; ".join(r.undefined)
        print(f"symlstm latex: {r.name}.tex failed: {reason} (log: {out / (r.name + '.log')})",
              file=sys.stderr)  # fmt: skip
    print(f"{len(results) - failed} of {len(results)} PDF(s) built in {out}")
    return 1 if failed else 0
