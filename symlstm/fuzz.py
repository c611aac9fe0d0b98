"""The checks every cell the package accepts must pass, over random cells: `symlstm fuzz`.

Cells are drawn by `symlstm.random_cells.random_cells` (a hypothesis strategy over the whole `Cell`
API); `cell_source(spec)` prints one as the declaration that builds it.

`check_cell(spec)` runs what the package promises for any cell it accepts: derive, prove (the derivation
and the generated code), generate every backend, and the numerical checks of each backend's module
(every one installed here, or those of `backends=`): full finite differences, the dot-product test, and
module == reference at sizes on both sides of the generated code's thresholds. `symlstm fuzz --cells N
--seed S [--backends numpy,numba]` runs it over N drawn cells, one line each, and prints a failing cell
(shrunk by hypothesis) as a declaration to paste into a test.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable, Collection
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .activations import relu
from .random_cells import cell_source, random_cells
from .spec import CellSpec, ElementwiseNode

__all__ = ["CellCheck", "add_arguments", "cell_source", "check_cell", "cli_main", "fuzz", "random_cells"]

# -- what every accepted cell must pass ----------------------------------------------------------------


@dataclass
class CellCheck:
    """The outcome of `check_cell`: one (check, ok, detail) per check, and the time taken."""

    spec: CellSpec
    results: list[tuple[str, bool, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.results)

    def summary(self) -> str:
        failed = [name for name, ok, _ in self.results if not ok]
        nodes = len(self.spec.nodes)
        head = f"{len(self.spec.states)} state(s), {nodes} nodes, {len(self.spec.params)} parameters"
        return (
            f"{head}: " + ("ok" if not failed else "FAILED " + ", ".join(failed)) + f" ({self.seconds:.1f} s)"
        )

    def report(self) -> str:
        lines = [f"{name}: {'ok' if ok else 'FAILED'}" + (f"\n{detail}" if detail and not ok else "")
                 for name, ok, detail in self.results]  # fmt: skip
        return "\n".join(lines)


def _smooth(spec: CellSpec) -> bool:
    return not any(
        isinstance(e, relu)
        for n in spec.nodes
        if isinstance(n, ElementwiseNode)
        for e in sp.preorder_traversal(n.expr)
    )


def check_cell(spec: CellSpec, *, proofs: bool = True, backends: Collection[str] | None = None) -> CellCheck:
    """Derive, prove, generate with every backend and check `spec` (see the module docstring); whatever
    the cell, never raises. Every registered backend (`symlstm.backends`) renders; the modules of
    `backends` (default: every one whose framework is installed here; the reference module always) each
    get the full FD check, and each but the reference the dot-product test against its jvp and the
    comparison with the reference module. A name in `backends` that is not registered raises
    ValueError, one whose framework is not installed ImportError naming the extra."""
    from .backends import CODE_BACKENDS
    from .build.load import module_from_source
    from .engine import derive
    from .proof import prove_all
    from .proof_code import prove_code
    from .testing import check_adjoint, check_full_fd, check_same, make_problem
    from .verify import release_compiled

    run_here = _backends_to_run(backends)
    out = CellCheck(spec)
    start = time.perf_counter()

    def run(name: str, fn: Callable[[], tuple[bool, str]]) -> bool:
        try:
            ok, detail = fn()
        except Exception:
            ok, detail = False, traceback.format_exc(limit=6)
        out.results.append((name, ok, detail))
        return ok

    d = None
    sources: dict[str, str] = {}
    modules: dict[str, object] = {}

    def derive_and_render() -> tuple[bool, str]:
        nonlocal d
        d = derive(spec)
        for backend in CODE_BACKENDS.values():
            sources[backend.name] = backend.render(d)  # every backend renders, installed or not
            if backend.name in run_here:
                module = module_from_source(f"fuzz.{backend.name}.{spec.name}", sources[backend.name])
                modules[backend.name] = backend.checkable(module)
        return True, ""

    if not run("derive and generate", derive_and_render):
        out.seconds = time.perf_counter() - start
        return out

    def failed_claims(results) -> tuple[bool, str]:
        failed = [r for r in results if not r.ok]
        bad = [f"{r.claim} (undecided)" if r.detail.startswith("undecided") else r.claim for r in failed]
        return not bad, "failed claims: " + ", ".join(bad)

    if proofs:
        run("symbolic proofs", lambda: failed_claims(prove_all(d, hidden=2, inputs=2)))
        run("code proof", lambda: failed_claims(prove_code(d, sources["reference"])))
    ref = modules["reference"]
    smooth = _smooth(spec)

    def numeric(check, module) -> Callable[[], tuple[bool, str]]:
        def go() -> tuple[bool, str]:
            report = check(make_problem(module, 3, 3, 3, 2, seed=1, smooth=smooth))
            return report.ok, str(report)

        return go

    for name, module in modules.items():
        run(f"full FD ({name})", numeric(check_full_fd, module))
    for name, module in modules.items():
        if name != "reference":
            run(f"dot-product test ({name})", numeric(check_adjoint, module))
    for name, module in modules.items():
        if name == "reference":
            continue
        for label, config in _SAME_CONFIGS.items():

            def same(module=module, config=config) -> tuple[bool, str]:
                hidden = config.get("hidden_size", 3)
                options = {k: v for k, v in config.items() if k not in ("hidden_size", "input_size")}
                inputs = hidden if spec.same_size else config.get("input_size", 2)
                report = check_same(module, ref, inputs, hidden, **options)
                return report.ok, str(report)

            run(f"{name} == reference, {label}", same)
    release_compiled()  # each drawn cell is a new module: its compiled functions would pile up
    out.seconds = time.perf_counter() - start
    return out


def _backends_to_run(backends: Collection[str] | None) -> list[str]:
    """The names of the code backends whose modules `check_cell` runs: `backends` (each checked to be
    registered and runnable here) or every available one, the reference module first."""
    from .backends import CODE_BACKENDS, code_backend

    if backends is None:
        return [name for name, b in CODE_BACKENDS.items() if name == "reference" or b.available()]
    names = ["reference", *(n for n in backends if n != "reference")]
    for name in names:
        target = code_backend(name)  # an unknown name raises ValueError listing the known ones
        if not target.available():
            raise ImportError(
                f"backend {name!r} needs {target.requires}: pip install 'symlstm[{target.extra}]'"
            )
    return names


# Sizes on both sides of the optimised module's thresholds, as in tests/test_reference.py.
_SAME_CONFIGS = {
    "T=1": dict(steps=1, batch=2),
    "two projection chunks": dict(steps=3, batch=100),
    "None states, float32": dict(steps=3, batch=2, with_state0=False, with_dstate=False, dtype=np.float32),
    "coefficient chunk of one step": dict(steps=3, batch=70, hidden_size=64, input_size=5),
    "reused workspace": dict(steps=4, batch=2, workspace=True),
}


# -- the command ---------------------------------------------------------------------------------------


# numba never frees the machine code it compiles: a process that checks drawn cells on the numba backend
# grows by about 25 MB a cell (6 GB after some 240 cells). The command runs those checks in a worker
# process that is replaced after this many cells.
CELLS_PER_WORKER = 40


def _check_in_worker(spec: CellSpec, proofs: bool, backends: Collection[str] | None) -> tuple[int, CellCheck]:
    return os.getpid(), check_cell(spec, proofs=proofs, backends=backends)


class _WorkerChecks:
    """`check_cell` in one worker process at a time (a fresh interpreter), replaced every `per_worker`
    cells; `workers` holds the process ids that ran a check. A worker that dies (a crash in compiled
    code) is a RuntimeError naming the cell, not a hang."""

    def __init__(self, per_worker: int) -> None:
        self.per_worker = per_worker
        self.executor: ProcessPoolExecutor | None = None
        self.done = 0
        self.workers: set[int] = set()

    def run(self, what: str, function: Callable, *args):
        """`function(*args)` in the worker (a new one after `per_worker` calls or a death)."""
        if self.executor is None or self.done == self.per_worker:
            self.close()
            self.executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self.done = 0
        self.done += 1
        try:
            return self.executor.submit(function, *args).result()
        except BrokenProcessPool as error:
            self.executor = None
            raise RuntimeError(f"the worker process died while checking {what}") from error

    def __call__(self, spec: CellSpec, proofs: bool, backends: Collection[str] | None) -> CellCheck:
        pid, result = self.run(f"this cell:\n\n{cell_source(spec)}", _check_in_worker, spec, proofs, backends)
        self.workers.add(pid)
        return result

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None


def fuzz(
    cells: int,
    seed: int,
    *,
    proofs: bool = True,
    backends: Collection[str] | None = None,
    keep_going: bool = False,
    out=print,
) -> CellCheck | None:
    """Check `cells` drawn cells (seeded), one line each, running the modules of `backends` (as in
    `check_cell`); on the first failure let hypothesis shrink it and return the check of the smallest
    failing cell it finds (None when all passed). With `keep_going`, print each failing cell's
    declaration and its report as it fails (not shrunk), go on to the end and return the first failure."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    state: dict[str, object] = {"count": 0, "failing": None}
    in_worker = "numba" in _backends_to_run(backends)
    check = _WorkerChecks(CELLS_PER_WORKER) if in_worker else check_cell

    @with_seed(seed)
    @settings(max_examples=cells, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink])  # fmt: skip
    @given(random_cells())
    def one(spec: CellSpec) -> None:
        result = check(spec, proofs=proofs, backends=backends)
        if state["failing"] is None:
            state["count"] += 1
            out(f"cell {state['count']}: {result.summary()}")
        if not result.ok and keep_going:
            out(f"\n{cell_source(spec)}\n\n{result.report()}\n")
            state["first"] = state.get("first") or result
            return
        if not result.ok:
            state["failing"] = result  # the last failing example hypothesis runs is the shrunk one
            raise AssertionError(result.summary())

    try:
        one()
    except AssertionError:
        return state["failing"]  # type: ignore[return-value]
    finally:
        if in_worker:
            check.close()
    return state.get("first")  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cells", type=int, default=100, help="how many cells to draw (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--no-proofs", action="store_true", help="skip the symbolic and code proofs")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="print each failing cell as it fails (not shrunk) and go on to the end",
    )
    parser.add_argument(
        "--backends",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help="comma-separated code backends whose modules run (default: every one installed here; "
        "numba compiles each drawn cell, seconds a cell)",
    )


def cli_main(args: argparse.Namespace) -> int:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        print("symlstm fuzz: needs hypothesis: pip install 'symlstm[test]'", file=sys.stderr)
        return 2
    if args.cells < 1:
        print(f"symlstm fuzz: --cells must be a positive integer, got {args.cells}", file=sys.stderr)
        return 2
    try:
        _backends_to_run(args.backends)
    except (ValueError, ImportError) as err:
        print(f"symlstm fuzz: --backends: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    failing = fuzz(
        args.cells,
        args.seed,
        proofs=not args.no_proofs,
        backends=args.backends,
        keep_going=args.keep_going,
        out=lambda line: print(line, flush=True),
    )
    if failing is None:
        print(f"{args.cells} cells (seed {args.seed}): all passed in {time.perf_counter() - start:.0f} s")
        return 0
    if args.keep_going:
        print(f"{args.cells} cells (seed {args.seed}): failures above ({time.perf_counter() - start:.0f} s)")
        return 1
    print(f"\nA failing cell (shrunk by hypothesis), to reproduce:\n\n{cell_source(failing.spec)}\n")
    print(failing.report())
    return 1
