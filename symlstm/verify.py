"""`symlstm verify [CELL...]`: the verification ladder for chosen cells, as one table.

For each cell: the symbolic proofs (`symlstm.proof.prove_all`, hidden size 3, input size 2), the full
finite-difference Jacobian (tiny sizes), the random-direction FD check and the dot-product test at
realistic sizes, the Taylor remainder test (medium sizes) and, when torch is installed and PyTorch has the
cell, the PyTorch reference. Rows are cells, columns checks, each entry pass/FAIL with the worst error
(the lowest Taylor order for the Taylor column); failing checks' full reports follow the table. The exit
status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

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

__all__ = ["CHECKS", "SIZES", "add_arguments", "cli_main", "format_table", "is_smooth", "verify_cell"]

CHECKS = ("symbolic", "full FD", "direction", "adjoint", "Taylor", "torch")

# (input size, hidden size, steps, batch) per rung; the input size becomes the hidden size for cells
# that need them equal. Chosen so that all built-in cells verify in well under a minute.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "full FD": (2, 3, 3, 2),
    "direction": (32, 64, 16, 8),
    "adjoint": (32, 64, 16, 8),
    "Taylor": (8, 16, 8, 4),
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
    "full FD": _numeric(check_full_fd, "full FD"),
    "direction": _numeric(check_direction, "direction"),
    "adjoint": _numeric(check_adjoint, "adjoint"),
    "Taylor": _numeric(check_taylor, "Taylor"),
    "torch": _torch,
}


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
        checks: names from `CHECKS`.
        dtype: float64 or float32 for the numerical rungs.
        seed: seeds every draw.
    """
    spec = cell(spec) if isinstance(spec, str) else spec
    unknown = [c for c in checks if c not in _RUNNERS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known checks: {', '.join(CHECKS)}")
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
    if check == "Taylor":
        orders = [b.numeric for b in report.blocks if not math.isnan(b.numeric)]
        return f"{mark} {min(orders):.2f}" if orders else f"{mark} flat"
    worst = report.worst
    return f"{mark} {worst.rel_error:.0e}" if worst else mark


def format_table(results: dict[str, dict[str, CheckReport]]) -> str:
    """Rows = cells, columns = checks, entries pass/FAIL with the worst error, and seconds per cell."""
    checks = list(dict.fromkeys(c for r in results.values() for c in r))
    header = ["cell", *checks, "s"]
    rows = [
        [
            name,
            *(_entry(c, r[c]) if c in r else "" for c in checks),
            f"{sum(x.seconds for x in r.values()):.1f}",
        ]
        for name, r in results.items()
    ]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_LEGEND = (
    "entries: worst relative error (symbolic: claims proved; Taylor: lowest observed order, 2 expected); "
    "n/a: PyTorch has no such cell; skip: torch not installed"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cells", nargs="*", help="cells to verify (default: all registered cells)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="dtype of the numerical checks (default float64)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--checks", help=f"comma-separated subset of: {', '.join(CHECKS)}")
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


def cli_main(args: argparse.Namespace) -> int:
    names = list(args.cells) or sorted(CELLS)
    for name in names:
        cell(name)  # an unknown name raises SpecError listing the known cells
    checks = [c.strip() for c in args.checks.split(",")] if args.checks else list(CHECKS)
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        print(
            f"symlstm verify: error: unknown check(s) {unknown}; known: {', '.join(CHECKS)}", file=sys.stderr
        )
        return 2
    if args.jobs < 1:
        print(f"symlstm verify: error: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    jobs = min(args.jobs, len(names))
    work = [(name, checks, args.dtype, args.seed) for name in names]
    if jobs == 1:
        results = {w[0]: _verify_worker(*w) for w in work}
    else:
        with ProcessPoolExecutor(jobs) as pool:
            results = dict(zip(names, pool.map(_verify_worker, *zip(*work))))
    elapsed = time.perf_counter() - start
    print(format_table(results))
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
