"""`symlstm verify [CELL...]`: the verification ladder for chosen cells, as one table.

It checks the modules users import: for a registered cell the committed files of every code backend
(`generated/<backend>/<cell>.py`, or those under `--generated DIR`), for a user cell the modules
`symlstm.load` renders. For each cell: the files equal what the generator renders and import
(`files`); the symbolic proofs (`symbolic`: `symlstm.proof.prove_all`, hidden size 3, input size 2);
the code-level proof of the reference module (`code`: `symlstm.proof_code.prove_code`); on the NumPy
module, the full finite-difference Jacobian (`fd`, tiny sizes), the random-direction FD check
(`direction`) and the dot-product test (`adjoint`) at realistic sizes, the Taylor remainder test
(`taylor`, medium sizes), each also at T = 1, with dstate None and in float32 (`VARIANTS`); every
optimised module equal to the reference module (`same`) at the configurations derived from the plan
(`symlstm.testing.configurations`: both sides of every threshold, a realistic size); and, when torch is
installed and PyTorch has the cell, the PyTorch reference (`torch`, at the variants and a realistic
size). Rows are cells, columns checks, each entry pass/FAIL with the worst error (the lowest Taylor
order for the taylor column, claims or files for the others). Each row is printed as soon as it and
the rows above it are done (the rows keep the order of the cells, whatever `--jobs`), under a progress
line when stdout is a terminal; the files checked are named below the table, failing checks' full
reports follow it. The exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import difflib
import math
import multiprocessing
import os
import shutil
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import sympy as sp

from .activations import relu, step
from .backends import CODE_BACKENDS, CodeBackend
from .build.load import cached_module_file, import_module_file, module_from_source
from .cells import CELLS, cell
from .engine import Derivation, derive
from .paths import generated_dir
from .plan import CellPlan, plan_cell
from .proof import prove_all
from .proof_code import prove_code
from .spec import CellSpec, ElementwiseNode
from .testing import (
    NO_TORCH_COUNTERPART,
    REALISTIC,
    BlockResult,
    CheckReport,
    check_adjoint,
    check_direction,
    check_full_fd,
    check_same_at,
    check_taylor,
    check_torch,
    configurations,
    make_problem,
    merge_reports,
)

__all__ = [
    "CHECKS",
    "SIZES",
    "VARIANTS",
    "add_arguments",
    "cli_main",
    "format_table",
    "is_smooth",
    "parse_checks",
    "verify_cell",
]

# The rungs, by the one-word names `--checks` takes and the table's columns show, in the order they run.
CHECKS = ("files", "symbolic", "code", "fd", "direction", "adjoint", "taylor", "same", "torch")
CHECK_TEXT = {
    "files": "the committed modules equal the render and import",
    "symbolic": "exact symbolic proofs",
    "code": "exact proof of the reference module's code",
    "fd": "full finite-difference Jacobian",
    "direction": "random-direction finite differences",
    "adjoint": "dot-product test of jvp and backward",
    "taylor": "Taylor remainder orders",
    "same": "optimised == reference on both sides of every threshold",
    "torch": "PyTorch reference",
}

# (input size, hidden size, steps, batch) per numerical rung; the input size becomes the hidden size
# for cells that need them equal. Chosen so that all built-in cells verify in a few minutes.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "fd": (2, 3, 3, 2),
    "direction": (32, 64, 16, 8),
    "adjoint": (32, 64, 16, 8),
    "taylor": (8, 16, 8, 4),
    "torch": (3, 5, 6, 3),
}

# Besides its own configuration (the sizes above, dstate given, the chosen dtype), every numerical rung
# runs at these, so that a bug showing only there fails verify: T = 1, no gradient arriving at the
# final states, and float32 (when the chosen dtype is float64). The torch rung also runs at REALISTIC.
VARIANTS = ("T=1", "dstate None", "float32")


@dataclass(frozen=True)
class _Options:
    dtype: np.dtype
    seed: int


@dataclass
class _File:
    """One backend's module of a cell: where it comes from, its text, the module or why it failed."""

    backend: str
    path: Path | None  # None: rendered in memory (a user cell, or no generated folder)
    text: str | None  # None: the file is missing
    module: Any = None
    error: str = ""


@dataclass
class _Cell:
    """What the rungs of one cell read: its spec, derivation, plan and modules."""

    spec: CellSpec
    opt: _Options
    files: dict[str, _File] = field(default_factory=dict)
    numpy: Any = None  # the module the numerical rungs check (the NumPy file, or `module=`)

    @cached_property
    def d(self) -> Derivation:
        return derive(self.spec)

    @cached_property
    def plan(self) -> CellPlan:
        return plan_cell(self.d)

    def module(self, backend: str) -> Any:
        f = self.files[backend]
        if f.module is None:
            raise RuntimeError(f"the {backend} module of {self.spec.name} is not usable: {f.error}")
        return f.module


def is_smooth(spec: CellSpec) -> bool:
    """False when a node uses relu or step (piecewise smooth: FD steps must not cross kinks)."""
    return not any(
        isinstance(e, (relu, step))
        for n in spec.nodes
        if isinstance(n, ElementwiseNode)
        for e in sp.preorder_traversal(n.expr)
    )


def _registered(spec: CellSpec) -> bool:
    return spec.name in CELLS and cell(spec.name) == spec


def _modules(c: _Cell, generated: Path | None) -> dict[str, _File]:
    """Every code backend's module of the cell: the committed file of a registered cell (under
    `generated`), else the render."""
    out, spec = {}, c.spec
    for backend in CODE_BACKENDS.values():
        if generated is not None and _registered(spec):
            path = generated / backend.name / f"{spec.name}.py"
            f = _File(backend.name, path, path.read_text(encoding="utf-8") if path.is_file() else None)
        else:
            f = _File(backend.name, None, backend.render(c.d))
        if f.text is None:
            f.error = f"{f.path} is missing (symlstm generate writes it)"
        else:
            try:
                f.module = _module(backend, spec.name, f)
            except Exception as err:  # a file that does not import is a failed check, reported
                f.error = f"does not import: {type(err).__name__}: {err}"
        out[backend.name] = f
    return out


def _module(backend: CodeBackend, cell_name: str, f: _File) -> types.ModuleType:
    """The module of `f`; a target whose modules run from a file (numba caches its compiled kernels
    beside it) imports the file itself, or the rendered text written to the cache folder."""
    if backend.from_file:
        # Under the module name `symlstm.load` gives the same file: numba's cache refers to it by name.
        if f.path is not None:
            return import_module_file(f"{backend.name}.{cell_name}", Path(f.path))
        path = cached_module_file(backend.name, cell_name, f.text)
        if path is not None:
            return import_module_file(f"{backend.name}.{path.stem}", path)
    return module_from_source(f"verify.{backend.name}.{cell_name}", f.text, str(f.path) if f.path else None)


def _first_difference(text: str, render: str) -> str:
    """The first differing line of a file and of the render, as a short diff."""
    diff = difflib.unified_diff(text.splitlines(), render.splitlines(), "file", "render", n=0, lineterm="")
    lines = [line for line in diff if not line.startswith(("---", "+++"))]
    changed = sum(line[:1] in "+-" for line in lines)
    return f"{changed} line(s) differ from the render: " + " | ".join(lines[:3])


def _files(c: _Cell) -> CheckReport:
    report = CheckReport("committed modules == render", c.spec.name, "exact", labels=("identical", "imports"))
    for name, f in c.files.items():
        if f.path is None:
            where, identical = "rendered in memory: the module symlstm.load gives", f.text is not None
            why = ""
        else:
            render = CODE_BACKENDS[name].render(c.d)
            where, identical = str(f.path), f.text == render
            why = "" if identical or f.text is None else _first_difference(f.text, render)
        why = "; ".join(w for w in (why, f.error) if w)
        ok = identical and f.module is not None
        imports = f.module is not None
        report.blocks.append(
            BlockResult(
                name, 0.0 if ok else 1.0, (), float(identical), float(imports), ok, where, diagnosis=why
            )
        )
    return report


def _claims(title: str, name: str, results) -> CheckReport:
    report = CheckReport(title, name, "exact", labels=("proved", "claims"))
    for r in results:
        why = "" if r.ok else f"not equal to {r.detail}"
        report.blocks.append(
            BlockResult(r.claim, 0.0 if r.ok else 1.0, (), float(r.ok), 1.0, r.ok, diagnosis=why)
        )
    return report


def _symbolic(c: _Cell) -> CheckReport:
    return _claims("symbolic proof (H=3, I=2)", c.spec.name, prove_all(c.d))


def _code(c: _Cell) -> CheckReport:
    f = c.files["reference"]
    if f.text is None:
        raise RuntimeError(f.error)
    where = f.path or "the render"
    return _claims(f"code proof of the reference module ({where})", c.spec.name, prove_code(c.d, f.text))


def _variants(dtype: np.dtype) -> list[tuple[str, dict[str, Any]]]:
    """(label, options) of the ladder's own configuration and of its VARIANTS."""
    out = [
        (str(dtype), {}),
        (f"T=1, {dtype}", {"steps": 1}),
        (f"dstate None, {dtype}", {"with_dstate": False}),
    ]
    if dtype != np.float32:
        out.append(("float32", {"dtype": np.dtype(np.float32)}))
    return out


def _sizes(spec: CellSpec, sizes: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    i, h, t, b = sizes
    return (h if spec.same_size else i), h, t, b


def _numeric(check: Callable[..., CheckReport], name: str) -> Callable[[_Cell], CheckReport]:
    def run(c: _Cell) -> CheckReport:
        i, h, t, b = _sizes(c.spec, SIZES[name])
        reports = []
        for label, options in _variants(c.opt.dtype):
            o = {"steps": t, "dtype": c.opt.dtype, "with_dstate": True, **options}
            problem = make_problem(c.numpy, i, h, batch=b, seed=c.opt.seed, name=c.spec.name,
                                   smooth=is_smooth(c.spec), **o)  # fmt: skip
            reports.append(
                (label, check(problem) if check is check_full_fd else check(problem, seed=c.opt.seed))
            )
        return merge_reports(reports[0][1].check, c.spec.name, reports)

    return run


def _same(c: _Cell) -> CheckReport:
    configs = configurations(
        c.plan, dtypes=(c.opt.dtype,) if c.opt.dtype == np.float32 else (np.float64, np.float32)
    )
    reference = c.module("reference")
    reports = []
    for name in c.files:
        if name == "reference":
            continue
        if name != "numpy" and not CODE_BACKENDS[name].available():
            continue  # its framework is not installed here
        module = c.numpy if name == "numpy" else CODE_BACKENDS[name].checkable(c.module(name))
        reports.append((name, check_same_at(module, reference, configs, seed=c.opt.seed, name=c.spec.name)))
    if len(reports) == 1:
        return reports[0][1]
    merged = CheckReport(
        "optimised == reference", c.spec.name, reports[0][1].dtype, labels=reports[0][1].labels
    )
    for name, r in reports:
        merged.blocks += [BlockResult(**{**b.__dict__, "config": f"{name}: {b.config}"}) for b in r.blocks]
    return merged


def _torch(c: _Cell) -> CheckReport:
    i, h, t, b = _sizes(c.spec, SIZES["torch"])
    runs = [(label, (i, h, o.get("steps", t), b), {"dtype": o.get("dtype", c.opt.dtype),
             "with_dstate": o.get("with_dstate", True)}) for label, o in _variants(c.opt.dtype)]  # fmt: skip
    ri, rh, rt, rb = _sizes(c.spec, REALISTIC)
    runs.append((f"realistic I={ri} H={rh} T={rt} B={rb}, float64", (ri, rh, rt, rb), {"dtype": np.float64}))
    reports = [(label, check_torch(c.numpy, c.spec.torch, *sizes, seed=c.opt.seed, name=c.spec.name, **kw))
               for label, sizes, kw in runs]  # fmt: skip
    return merge_reports("PyTorch reference", c.spec.name, reports)


_RUNNERS: dict[str, Callable[[_Cell], CheckReport]] = {
    "files": _files,
    "symbolic": _symbolic,
    "code": _code,
    "fd": _numeric(check_full_fd, "fd"),
    "direction": _numeric(check_direction, "direction"),
    "adjoint": _numeric(check_adjoint, "adjoint"),
    "taylor": _numeric(check_taylor, "taylor"),
    "same": _same,
    "torch": _torch,
}


def parse_checks(checks: str | Sequence[str]) -> list[str]:
    """Check names from a comma-separated string or a sequence, in order, without repeats; any case.

    Raises ValueError naming an unknown or empty name and listing the valid ones.
    """
    items = checks.split(",") if isinstance(checks, str) else list(checks)
    names = []
    for item in items:
        name = item.strip().lower() if isinstance(item, str) else item
        if name not in _RUNNERS:
            what = "an empty check name" if name == "" else f"unknown check {item!r}"
            raise ValueError(f"{what}; valid checks: {', '.join(CHECKS)} (comma-separated, e.g. fd,taylor)")
        if name not in names:
            names.append(name)
    return names


def verify_cell(
    spec: str | CellSpec,
    *,
    module: Any = None,
    checks: Sequence[str] = CHECKS,
    dtype: Any = np.float64,
    seed: int = 0,
    generated: str | Path | None = None,
) -> dict[str, CheckReport]:
    """Run the chosen rungs of the ladder on one cell; returns check name -> report.

    Args:
        spec: a registry name or a `CellSpec` (a registered one is checked in its committed files, any
            other in the modules `symlstm.load` renders).
        module: the module the numerical rungs and `same` check instead of the NumPy module (any
            module with the contract of `symlstm.testing`).
        checks: names from `CHECKS` (a sequence, or one comma-separated string).
        dtype: float64 or float32 for the numerical rungs.
        seed: seeds every draw.
        generated: the generated folder whose files are checked (default: the package's,
            `symlstm.paths.generated_dir()`).
    """
    spec = cell(spec) if isinstance(spec, str) else spec
    checks = parse_checks(checks)
    folder = Path(generated) if generated is not None else generated_dir()
    c = _Cell(spec, _Options(np.dtype(dtype), seed))
    c.files = _modules(c, folder)
    c.numpy = c.files["numpy"].module if module is None else module
    out: dict[str, CheckReport] = {}
    for name in checks:
        start = time.perf_counter()
        try:
            if c.numpy is None and name not in ("files", "symbolic", "code"):
                raise RuntimeError(f"the numpy module is not usable: {c.files['numpy'].error}")
            report = _RUNNERS[name](c)
        except Exception as err:  # a crashing module is a failed check, reported, not a traceback
            report = CheckReport(
                name, spec.name, str(c.opt.dtype), note=f"raised {type(err).__name__}: {err}"
            )
            report.blocks.append(BlockResult("(crash)", float("inf"), (), float("nan"), float("nan"), False))
        report.seconds = time.perf_counter() - start
        out[name] = report
    release_compiled()
    return out


def release_compiled() -> None:
    """Drop JAX's compiled functions: each cell's module compiles its own, and over many cells in one
    process they would pile up until LLVM cannot allocate memory. A no-op where JAX was not imported."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()


def _headline(report: CheckReport) -> list[BlockResult]:
    """The blocks whose figure the table shows: the failing ones, else those of the main dtype (a
    float32 variant's rounding would hide float64's figure)."""
    if not report.ok:
        return report.failures
    main = [b for b in report.blocks if "float32" not in b.config]
    return main or report.blocks


def _entry(check: str, report: CheckReport) -> str:
    if report.skipped:
        return "n/a" if report.skipped == NO_TORCH_COUNTERPART else "skip"
    mark = "pass" if report.ok else "FAIL"
    if check in ("files", "symbolic", "code"):
        good = sum(b.ok for b in report.blocks)
        return f"{mark} {good}/{len(report.blocks)}"
    blocks = _headline(report)
    if check == "taylor":
        orders = [b.numeric for b in blocks if not math.isnan(b.numeric)]
        return f"{mark} {min(orders):.2f}" if orders else f"{mark} flat"
    worst = max(blocks, key=lambda b: b.rel_error, default=None)
    return f"{mark} {worst.rel_error:.0e}" if worst else mark


# The widest usual entry of each column ("pass 102/102", "FAIL 1e+00", "pass 2.00"), so that rows
# printed one at a time line up without knowing the others.
_ENTRY_WIDTH = {"files": 8, "symbolic": 12, "code": 10, "taylor": 9}
_NUMBER_WIDTH = 10
_SECONDS_WIDTH = 5


class _Table:
    """The table's layout, fixed by the cell names and checks before any row exists."""

    def __init__(self, names: Sequence[str], checks: Sequence[str]):
        self.checks = list(checks)
        self.widths = [
            max(len("cell"), *(len(n) for n in names)),
            *(max(len(c), _ENTRY_WIDTH.get(c, _NUMBER_WIDTH)) for c in self.checks),
            _SECONDS_WIDTH,
        ]

    def _line(self, values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, self.widths)).rstrip()

    def header(self) -> str:
        return self._line(["cell", *self.checks, "s"]) + "\n" + "  ".join("-" * w for w in self.widths)

    def row(self, name: str, reports: dict[str, CheckReport]) -> str:
        entries = [_entry(c, reports[c]) if c in reports else "" for c in self.checks]
        return self._line([name, *entries, f"{sum(r.seconds for r in reports.values()):.1f}"])


def format_table(results: dict[str, dict[str, CheckReport]]) -> str:
    """Rows = cells, columns = checks, entries pass/FAIL with the worst error, and seconds per cell."""
    checks = list(dict.fromkeys(c for r in results.values() for c in r))
    table = _Table(list(results), checks)
    return "\n".join([table.header(), *(table.row(name, r) for name, r in results.items())])


_LEGEND = (
    "entries: worst relative error (files: modules identical to the render and importable; symbolic, "
    "code: claims proved; taylor: lowest observed order, 2 expected); n/a: PyTorch has no such cell; "
    "skip: torch not installed (pip install 'symlstm[torch]')"
)


def _files_line(names: Sequence[str], folder: Path | None, results: dict[str, dict[str, CheckReport]]) -> str:
    """Which files were checked, and what the files column found."""
    backends = list(CODE_BACKENDS)
    if folder is None:
        return "modules checked: rendered in memory (no generated folder), as symlstm.load gives them"
    which = "{" + ",".join(backends) + "}"
    cells = names[0] if len(names) == 1 else "<cell>"
    where = f"modules checked: {folder}/{which}/{cells}.py"
    if len(names) > 1:
        where += f" for the {len(names)} cells above"
    reports = [r["files"] for r in results.values() if "files" in r]
    if not reports:
        return where + "; not compared with the render (files not among --checks)"
    bad = sum(not b.ok for r in reports for b in r.blocks)
    return where + ("; each identical to the render and imported" if not bad else
                    f"; {bad} differ from the render or do not import (reports below)")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cells", nargs="*", help="cells to verify (default: all registered cells)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="dtype of the numerical checks (default float64)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--checks", help="comma-separated subset of the checks (default: all): "
                        + "; ".join(f"{c}: {CHECK_TEXT[c]}" for c in CHECKS))  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="print every report, not only failures")
    parser.add_argument("--generated", metavar="DIR",
                        help="the generated folder whose modules are checked (default: the package's, "
                        "generated/ of the source checkout)")  # fmt: skip
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="cells verified in parallel processes (default: number of CPUs)")  # fmt: skip


def _single_threaded_blas() -> contextlib.AbstractContextManager:
    """The checks multiply small matrices: BLAS threads only contend (with each other and with --jobs)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _verify_worker(
    name: str, checks: Sequence[str], dtype: str, seed: int, generated: Path | None
) -> dict[str, CheckReport]:
    with _single_threaded_blas():
        return verify_cell(name, checks=checks, dtype=dtype, seed=seed, generated=generated)


class _Progress:
    """One line at the bottom of a terminal saying how far the run is; nothing when not a terminal."""

    def __init__(self, out: TextIO, total: int):
        self.out, self.total, self.start = out, total, time.perf_counter()
        self.live = out.isatty()
        self.shown = False

    def show(self, done: int, running: Sequence[str]) -> None:
        if not self.live:
            return
        elapsed = time.perf_counter() - self.start
        text = f"[{done}/{self.total} cells, {elapsed:.0f} s] running: {', '.join(running) or '-'}"
        self.out.write("\r\033[K" + text[: max(20, shutil.get_terminal_size().columns - 1)])
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self.shown = False

    def print(self, line: str) -> None:
        """Print a finished line above the progress line."""
        self.clear()
        print(line, file=self.out, flush=True)


def _in_thread(function: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
    """`function(*args)` in a daemon thread (Ctrl-C does not wait for it to finish), as a future."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as err:  # handed to the caller through the future
            future.set_exception(err)

    threading.Thread(target=run, daemon=True).start()
    return future


def _wait(
    future: concurrent.futures.Future, progress: _Progress, status: Callable[[], tuple[int, list[str]]]
) -> dict[str, CheckReport]:
    """The future's result, with the progress line (cells done, cells running) refreshed meanwhile."""
    while True:
        progress.show(*status())
        try:
            return future.result(timeout=0.5)
        except concurrent.futures.TimeoutError:
            continue


def _results(
    names: Sequence[str], work: Sequence[tuple], jobs: int, progress: _Progress
) -> Iterator[tuple[str, dict[str, CheckReport]]]:
    """(cell, reports) in the order of `names`, each as soon as it and those before it are done."""
    if jobs == 1:  # one cell at a time, in a thread, so that the progress line keeps counting
        for k, w in enumerate(work):
            future = _in_thread(_verify_worker, *w)
            yield w[0], _wait(future, progress, lambda k=k, name=w[0]: (k, [name]))
        return
    # Workers forked from a clean server process, not from this one: JAX and torch run threads here,
    # and a fork of a multithreaded process can deadlock.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
        futures = [pool.submit(_verify_worker, *w) for w in work]

        def status() -> tuple[int, list[str]]:
            return sum(f.done() for f in futures), [n for n, f in zip(names, futures) if f.running()]

        for name, future in zip(names, futures):
            yield name, _wait(future, progress, status)


def cli_main(args: argparse.Namespace) -> int:
    names = list(args.cells) or sorted(CELLS)
    for name in names:
        cell(name)  # an unknown name raises SpecError listing the known cells
    try:
        checks = parse_checks(args.checks) if args.checks is not None else list(CHECKS)
    except ValueError as err:
        print(f"symlstm verify: error: --checks: {err}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"symlstm verify: error: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    folder = Path(args.generated) if args.generated else generated_dir()
    if folder is not None and not folder.is_dir():
        print(f"symlstm verify: error: --generated: {folder} is not a folder", file=sys.stderr)
        return 2
    start = time.perf_counter()
    jobs = min(args.jobs, len(names))
    work = [(name, checks, args.dtype, args.seed, folder) for name in names]
    table = _Table(names, checks)
    progress = _Progress(sys.stdout, len(names))
    progress.print(table.header())
    results = {}
    try:
        for name, reports in _results(names, work, jobs, progress):
            results[name] = reports
            progress.print(table.row(name, reports))
    finally:  # an interrupted run leaves no half-drawn progress line
        progress.clear()
    elapsed = time.perf_counter() - start
    print(_LEGEND)
    print(_files_line(names, folder, results))
    failed = [(n, c) for n, r in results.items() for c, rep in r.items() if not rep.ok]
    for r in results.values():
        for rep in r.values():
            if args.verbose or not rep.ok:
                print()
                print(rep)
    print(f"\n{len(names)} cell(s), {len(checks)} check(s), {args.dtype}, seed {args.seed}, {jobs} job(s): "
          f"{'all passed' if not failed else f'{len(failed)} FAILED'} in {elapsed:.1f} s")  # fmt: skip
    return 1 if failed else 0
