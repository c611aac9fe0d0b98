"""`symlstm verify [CELL...]`: the verification ladder for chosen cells, as one table.

For each cell: the symbolic proofs (`symbolic`: `symlstm.proof.prove_all`, hidden size 3, input size 2),
the full finite-difference Jacobian (`fd`, tiny sizes), the random-direction FD check (`direction`) and
the dot-product test (`adjoint`) at realistic sizes, the Taylor remainder test (`taylor`, medium sizes)
and, when torch is installed and PyTorch has the cell, the PyTorch reference (`torch`). Rows are cells,
columns checks, each entry pass/FAIL with the worst error (the lowest Taylor order for the taylor
column). Each row is printed as soon as it and the rows above it are done (the rows keep the order of
the cells, whatever `--jobs`), under a progress line when stdout is a terminal; failing checks' full
reports follow the table. The exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import sympy as sp

from .activations import relu, step
from .build.load import load
from .cells import CELLS, cell
from .engine import derive
from .proof import prove_all
from .spec import CellSpec, ElementwiseNode
from .testing import (
    NO_TORCH_COUNTERPART,
    BlockResult,
    CheckReport,
    check_adjoint,
    check_direction,
    check_full_fd,
    check_taylor,
    check_torch,
    make_problem,
)

__all__ = [
    "CHECKS",
    "SIZES",
    "add_arguments",
    "cli_main",
    "format_table",
    "is_smooth",
    "parse_checks",
    "verify_cell",
]

# The rungs, by the one-word names `--checks` takes and the table's columns show.
CHECKS = ("symbolic", "fd", "direction", "adjoint", "taylor", "torch")
CHECK_TEXT = {
    "symbolic": "exact symbolic proofs",
    "fd": "full finite-difference Jacobian",
    "direction": "random-direction finite differences",
    "adjoint": "dot-product test of jvp and backward",
    "taylor": "Taylor remainder orders",
    "torch": "PyTorch reference",
}

# (input size, hidden size, steps, batch) per rung; the input size becomes the hidden size for cells
# that need them equal. Chosen so that all built-in cells verify in well under a minute.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "fd": (2, 3, 3, 2),
    "direction": (32, 64, 16, 8),
    "adjoint": (32, 64, 16, 8),
    "taylor": (8, 16, 8, 4),
    "torch": (3, 5, 6, 3),
}


@dataclass(frozen=True)
class _Options:
    dtype: np.dtype
    seed: int


def is_smooth(spec: CellSpec) -> bool:
    """False when a node uses relu or step (piecewise smooth: FD steps must not cross kinks)."""
    return not any(
        isinstance(e, (relu, step))
        for n in spec.nodes
        if isinstance(n, ElementwiseNode)
        for e in sp.preorder_traversal(n.expr)
    )


def _sizes(spec: CellSpec, check: str) -> tuple[int, int, int, int]:
    i, h, t, b = SIZES[check]
    return (h if spec.same_size else i), h, t, b


def _symbolic(spec: CellSpec, module: Any, opt: _Options) -> CheckReport:
    report = CheckReport("symbolic proof (H=3, I=2)", spec.name, "exact", labels=("proved", "claims"))
    for r in prove_all(derive(spec)):
        why = "" if r.ok else f"not equal to {r.detail}"
        report.blocks.append(
            BlockResult(r.claim, 0.0 if r.ok else 1.0, (), float(r.ok), 1.0, r.ok, diagnosis=why)
        )
    return report


def _numeric(
    check: Callable[..., CheckReport], name: str
) -> Callable[[CellSpec, Any, _Options], CheckReport]:
    def run(spec: CellSpec, module: Any, opt: _Options) -> CheckReport:
        problem = make_problem(module, *_sizes(spec, name), dtype=opt.dtype, seed=opt.seed, name=spec.name,
                               smooth=is_smooth(spec))  # fmt: skip
        return check(problem) if check is check_full_fd else check(problem, seed=opt.seed)

    return run


def _torch(spec: CellSpec, module: Any, opt: _Options) -> CheckReport:
    i, h, t, b = _sizes(spec, "torch")
    return check_torch(module, spec.torch, i, h, t, b, dtype=opt.dtype, seed=opt.seed, name=spec.name)


_RUNNERS: dict[str, Callable[[CellSpec, Any, _Options], CheckReport]] = {
    "symbolic": _symbolic,
    "fd": _numeric(check_full_fd, "fd"),
    "direction": _numeric(check_direction, "direction"),
    "adjoint": _numeric(check_adjoint, "adjoint"),
    "taylor": _numeric(check_taylor, "taylor"),
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
) -> dict[str, CheckReport]:
    """Run the chosen rungs of the ladder on one cell; returns check name -> report.

    Args:
        spec: a registry name or a `CellSpec`.
        module: the forward/backward module to check (default: `symlstm.load(spec)`); any module with
            the contract of `symlstm.testing`.
        checks: names from `CHECKS` (a sequence, or one comma-separated string).
        dtype: float64 or float32 for the numerical rungs.
        seed: seeds every draw.
    """
    spec = cell(spec) if isinstance(spec, str) else spec
    checks = parse_checks(checks)
    module = load(spec) if module is None else module
    opt = _Options(np.dtype(dtype), seed)
    out: dict[str, CheckReport] = {}
    for name in checks:
        start = time.perf_counter()
        try:
            report = _RUNNERS[name](spec, module, opt)
        except Exception as err:  # a crashing module is a failed check, reported, not a traceback
            report = CheckReport(name, spec.name, str(opt.dtype), note=f"raised {type(err).__name__}: {err}")
            report.blocks.append(BlockResult("(crash)", float("inf"), (), float("nan"), float("nan"), False))
        report.seconds = time.perf_counter() - start
        out[name] = report
    return out


def _entry(check: str, report: CheckReport) -> str:
    if report.skipped:
        return "n/a" if report.skipped == NO_TORCH_COUNTERPART else "skip"
    mark = "pass" if report.ok else "FAIL"
    if check == "symbolic":
        good = sum(b.ok for b in report.blocks)
        return f"{mark} {good}/{len(report.blocks)}"
    if check == "taylor":
        orders = [b.numeric for b in report.blocks if not math.isnan(b.numeric)]
        return f"{mark} {min(orders):.2f}" if orders else f"{mark} flat"
    worst = report.worst
    return f"{mark} {worst.rel_error:.0e}" if worst else mark


# The widest usual entry of each column ("pass 102/102", "FAIL 1e+00", "pass 2.00"), so that rows
# printed one at a time line up without knowing the others.
_ENTRY_WIDTH = {"symbolic": 12, "taylor": 9}
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
    "entries: worst relative error (symbolic: claims proved; taylor: lowest observed order, 2 expected); "
    "n/a: PyTorch has no such cell; skip: torch not installed (pip install 'symlstm[torch]')"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cells", nargs="*", help="cells to verify (default: all registered cells)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="dtype of the numerical checks (default float64)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--checks", help="comma-separated subset of the checks (default: all): "
                        + "; ".join(f"{c}: {CHECK_TEXT[c]}" for c in CHECKS))  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="print every report, not only failures")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="cells verified in parallel processes (default: number of CPUs)")  # fmt: skip


def _single_threaded_blas() -> contextlib.AbstractContextManager:
    """The checks multiply small matrices: BLAS threads only contend (with each other and with --jobs)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _verify_worker(name: str, checks: Sequence[str], dtype: str, seed: int) -> dict[str, CheckReport]:
    with _single_threaded_blas():
        return verify_cell(name, checks=checks, dtype=dtype, seed=seed)


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
    with ProcessPoolExecutor(jobs) as pool:
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
    start = time.perf_counter()
    jobs = min(args.jobs, len(names))
    work = [(name, checks, args.dtype, args.seed) for name in names]
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
    failed = [(n, c) for n, r in results.items() for c, rep in r.items() if not rep.ok]
    for r in results.values():
        for rep in r.values():
            if args.verbose or not rep.ok:
                print()
                print(rep)
    print(f"\n{len(names)} cell(s), {len(checks)} check(s), {args.dtype}, seed {args.seed}, {jobs} job(s): "
          f"{'all passed' if not failed else f'{len(failed)} FAILED'} in {elapsed:.1f} s")  # fmt: skip
    return 1 if failed else 0
