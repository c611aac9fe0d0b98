"""Mutation testing of the verification: does `symlstm verify` catch single-point edits?

Two kinds of target:

* a generated module (`--module lstm`): each mutant is one edit of the committed
  generated/numpy/<cell>.py, inside `forward`, `backward` and `jvp` (the computation; the argument
  checks and the `check_finite` branches are error paths, left to the tests of bad input). It is
  judged by the numerical columns of `symlstm verify` run on the mutated module (fd, adjoint, taylor,
  same, direction, torch, stopping at the first that fails): the `files` column alone kills every
  such mutant (the file no longer equals the render), so it is left out to measure what the values
  catch. A mutant that survives is compared with the unmutated module (`symlstm.testing.check_same_at`
  at every configuration the plan gives, both dtypes, two seeds): equal there, it is equivalent.
* the generator (`--generator`): each mutant is one edit of a generator file (`GENERATOR_FILES`),
  applied to a copy of the package in a temporary folder; the mutated generator renders lstm and gru
  (as `symlstm generate` would, so the `files` column passes) and verify runs every column on what
  it rendered, in a process of its own. A mutant whose render raises is killed (generate fails); one
  that renders lstm and gru unchanged does not touch them (counted apart); a survivor is compared
  with the committed modules as above.

A kill shows a difference in behaviour, so a killed mutant is non-equivalent; only survivors need
the (slow) equivalence check. The operators (`OPERATORS`) are a fixed list, applied at every place
they fit, in the order of the syntax tree, so a mutant's number names the same edit on every run of
the same source. `--sample K` takes every K-th mutant (from the `--offset`-th).

    python bench/mutate.py --module lstm --module gru --json out.json
    python bench/mutate.py --generator --sample 20
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# The verify columns a module mutant is judged by, cheapest first (the first failure kills it).
MODULE_LADDER = ("fd", "adjoint", "taylor", "same", "direction", "torch")
# All of verify's columns, for a generator mutant (the files it rendered are its committed files).
GENERATOR_LADDER = ("files", "symbolic", "code", "fd", "adjoint", "taylor", "same", "direction", "torch")
MODULE_FUNCTIONS = ("forward", "backward", "jvp")
GENERATOR_FILES = (
    "symlstm/activations.py",
    "symlstm/folding.py",
    "symlstm/plan/backward.py",
    "symlstm/plan/blocking.py",
    "symlstm/backends/numpy/emitter.py",
    "symlstm/backends/numpy/printer.py",
    "symlstm/backends/numpy/inplace.py",
)
CELLS_OF_GENERATOR = ("lstm", "gru")

_BINOP_SWAP: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Pow: ast.Mult, ast.MatMult: ast.Mult,
}  # fmt: skip
_COMPARE_SWAP: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
_UFUNC_SWAP = {"add": "subtract", "subtract": "add", "multiply": "add", "divide": "multiply",
               "tanh": "sin", "exp": "sinh", "maximum": "minimum", "minimum": "maximum"}  # fmt: skip
_SWAPPABLE_ARGS = {"subtract", "divide", "matmul"}


def _np_call(node: ast.AST) -> str | None:
    """The function name of a call `np.<name>(...)`, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        value = node.func.value
        if isinstance(value, ast.Name) and value.id == "np":
            return node.func.attr
    return None


def _binop(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINOP_SWAP


def _apply_binop(node: ast.AST) -> ast.AST:
    node.op = _BINOP_SWAP[type(node.op)]()
    return node


def _compare(node: ast.AST) -> bool:
    return isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAP


def _apply_compare(node: ast.AST) -> ast.AST:
    node.ops[0] = _COMPARE_SWAP[type(node.ops[0])]()
    return node


def _number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _apply_plus_one(node: ast.AST) -> ast.AST:
    node.value = node.value + 1
    return node


def _apply_minus_one(node: ast.AST) -> ast.AST:
    node.value = node.value - 1
    return node


def _ufunc(node: ast.AST) -> bool:
    return _np_call(node) in _UFUNC_SWAP


def _apply_ufunc(node: ast.AST) -> ast.AST:
    node.func.attr = _UFUNC_SWAP[node.func.attr]
    return node


def _swappable(node: ast.AST) -> bool:
    return _np_call(node) in _SWAPPABLE_ARGS and len(node.args) >= 2


def _apply_swap(node: ast.AST) -> ast.AST:
    node.args[0], node.args[1] = node.args[1], node.args[0]
    return node


def _negation(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)


def _apply_negation(node: ast.AST) -> ast.AST:
    return node.operand


def _transpose(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "T"


def _apply_transpose(node: ast.AST) -> ast.AST:
    return node.value


def _statement(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr | ast.Assign | ast.AugAssign | ast.Return)


def _apply_delete(node: ast.AST) -> ast.AST:
    return ast.Pass()


def _slice_bound(node: ast.AST) -> bool:
    return isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name)


def _apply_shift(node: ast.AST) -> ast.AST:
    node.slice = ast.BinOp(node.slice, ast.Sub(), ast.Constant(1))
    return node


# name -> (what it does, where it applies, the edit). The fixed list of operators.
OPERATORS: dict[str, tuple[str, Callable[[ast.AST], bool], Callable[[ast.AST], ast.AST]]] = {
    "binop": ("an arithmetic operator replaced (+ -, - +, * +, / *, // *, ** *, @ *)", _binop, _apply_binop),
    "compare": ("a comparison replaced (< <=, <= <, == !=, is is not, ...)", _compare, _apply_compare),
    "plus_one": ("a number n replaced by n + 1", _number, _apply_plus_one),
    "minus_one": ("a number n replaced by n - 1", _number, _apply_minus_one),
    "ufunc": ("a NumPy function replaced (add subtract, tanh sin, exp sinh, ...)", _ufunc, _apply_ufunc),
    "swap_args": ("the two arguments of np.subtract, np.divide, np.matmul swapped", _swappable, _apply_swap),
    "negation": ("a unary minus dropped", _negation, _apply_negation),
    "transpose": ("a .T dropped", _transpose, _apply_transpose),
    "index_shift": ("an index a[t] replaced by a[t - 1]", _slice_bound, _apply_shift),
    "delete": ("a statement deleted (replaced by pass)", _statement, _apply_delete),
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    """One edit: the `index`-th place `operator` fits in `target`, on source line `line`."""

    target: str  # a module's cell name, or a generator file's path
    index: int
    operator: str
    line: int
    before: str  # the node as written, unparsed
    after: str  # the node after the edit


def _skipped(node: ast.AST) -> bool:
    """Error paths of a generated module: argument checks and the check_finite branches."""
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "check_finite":
        return True
    value = node.value if isinstance(node, ast.Expr | ast.Assign) else None
    call = value if isinstance(value, ast.Call) else None
    return (
        call is not None and isinstance(call.func, ast.Name) and call.func.id.startswith(("_check", "_claim"))
    )


def _places(tree: ast.Module, functions: Sequence[str] | None) -> Iterator[tuple[ast.AST, str]]:
    """(node, operator) for every place an operator fits, in a fixed order;
    `functions`: only inside these top-level functions (None: the whole module, docstrings aside)."""
    roots = [
        n for n in tree.body if functions is None or (isinstance(n, ast.FunctionDef) and n.name in functions)
    ]

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        if _skipped(node):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring
        yield node
        for child in ast.iter_child_nodes(node):
            yield from walk(child)

    for root in roots:
        for node in walk(root):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module):
                continue
            for name, (_, fits, _) in OPERATORS.items():
                if fits(node):
                    yield node, name


def mutants(source: str, target: str, functions: Sequence[str] | None = None) -> list[Mutant]:
    """Every mutant of `source` (a module's text), in the fixed order."""
    out = []
    for k, (node, name) in enumerate(_places(ast.parse(source), functions)):
        after = OPERATORS[name][2](copy.deepcopy(node))
        out.append(Mutant(target, k, name, getattr(node, "lineno", 0), *_shown(_text(node), _text(after))))
    return out


def _text(node: ast.AST) -> str:
    return "pass" if isinstance(node, ast.Pass) else " ".join(ast.unparse(node).split())


def _shown(before: str, after: str, width: int = 90) -> tuple[str, str]:
    """The two texts, or when long, the window around where they differ."""
    if max(len(before), len(after)) <= width:
        return before, after
    start = next((k for k, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    start = max(0, start - width // 3)
    return tuple(("..." if start else "") + t[start : start + width] + "..." for t in (before, after))


def apply(source: str, mutant: Mutant, functions: Sequence[str] | None = None) -> str:
    """`source` with `mutant`'s edit (the rest of the module unparsed as it was parsed)."""
    tree = ast.parse(source)
    for k, (node, name) in enumerate(_places(tree, functions)):
        if k == mutant.index:
            assert name == mutant.operator, f"mutant {mutant.index} is {name}, not {mutant.operator}"
            new = OPERATORS[name][2](node)
            if new is not node:
                _replace(tree, node, new)
            return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    raise IndexError(f"{mutant.target} has no mutant {mutant.index}")


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[next(i for i, v in enumerate(value) if v is old)] = new
                return
    raise ValueError("node not found")


# -- judging ------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    mutant: Mutant
    status: str  # "killed", "equivalent", "survived" (non-equivalent, not caught), "untouched"
    by: str = ""  # the column that killed it, or why it is equivalent / untouched
    seconds: float = 0.0


def _import(name: str, text: str) -> Any:
    from symlstm.build.load import module_from_source

    return module_from_source(f"mutant.{name}", text, None)


def equivalent(module: Any, original: Any, name: str, quick: bool = False) -> tuple[bool, str]:
    """Whether `module` equals `original` at every configuration of the cell's plan (both dtypes, a
    realistic size) for two seeds; with the first difference when not. `quick`: the fuzzer's few
    configurations (`configurations(exhaustive=False)`), one seed."""
    import symlstm
    from symlstm.plan import plan_cell
    from symlstm.testing import check_same_at, configurations

    configs = configurations(plan_cell(symlstm.derive(name)), exhaustive=not quick, realistic=not quick)
    seeds = (0,) if quick else (0, 1)
    with np.errstate(all="ignore"):
        for seed in seeds:
            report = check_same_at(module, original, configs, seed=seed, name=name)
            if not report.ok:
                worst = report.failures[0]
                return False, f"differs: {worst.block} at [{worst.config}]"
    return True, f"equal at {len(configs)} configurations, {len(seeds)} seed(s)"


def _ladder(name: str, checks: Sequence[str], module: Any = None, generated: Path | None = None) -> str:
    """The first of `checks` (verify columns) that fails, or ''."""
    from symlstm.verify import verify_cell

    for check in checks:
        with np.errstate(all="ignore"):
            report = verify_cell(name, module=module, checks=[check], generated=generated)[check]
        if not report.ok:
            return check
    return ""


def judge_module_mutant(mutant: Mutant, source: str, original: Any) -> Verdict:
    start = time.perf_counter()
    name = mutant.target
    try:
        module = _import(name, apply(source, mutant, MODULE_FUNCTIONS))
    except Exception as err:  # a file that does not import fails every column
        return Verdict(mutant, "killed", f"import ({type(err).__name__})", time.perf_counter() - start)
    by = _ladder(name, MODULE_LADDER, module=module)
    if by:
        return Verdict(mutant, "killed", by, time.perf_counter() - start)
    same, why = equivalent(module, original, name)
    return Verdict(mutant, "equivalent" if same else "survived", why, time.perf_counter() - start)


def _module_worker(args: tuple[Mutant, str]) -> Verdict:
    mutant, source = args
    from symlstm.verify import _single_threaded_blas

    with _single_threaded_blas():
        original = _import(mutant.target + "_original", source)
        return judge_module_mutant(mutant, source, original)


def run_module(
    name: str, sample: int = 1, jobs: int = 1, limit: int | None = None, offset: int = 0
) -> list[Verdict]:
    source = (ROOT / "generated" / "numpy" / f"{name}.py").read_text(encoding="utf-8")
    chosen = mutants(source, name, MODULE_FUNCTIONS)[offset::sample][:limit]
    return _map(_module_worker, [(m, source) for m in chosen], jobs)


def _map(fn: Callable, work: list, jobs: int) -> list[Verdict]:
    if jobs <= 1:
        return [_progress(fn(w), k, len(work)) for k, w in enumerate(work)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs) as pool:
        return [_progress(v, k, len(work)) for k, v in enumerate(pool.map(fn, work))]


def _progress(v: Verdict, k: int, n: int) -> Verdict:
    m = v.mutant
    print(f"[{k + 1}/{n}] {m.target}#{m.index} {m.operator} line {m.line}: {m.before!r} -> {m.after!r}: "
          f"{v.status} {v.by} ({v.seconds:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
    return v


# -- generator mutants: each in a copy of the package, in a process of its own ------------------------
def _generator_job(args: tuple[Mutant, str]) -> Verdict:
    mutant, source = args
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="symlstm-mutant-") as tmp:
        package = Path(tmp) / "symlstm"
        shutil.copytree(ROOT / "symlstm", package, ignore=shutil.ignore_patterns("__pycache__"))
        (Path(tmp) / mutant.target).write_text(apply(source, mutant), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": tmp, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        command = [sys.executable, str(Path(__file__).resolve()), "--judge-render", tmp]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp)
        except subprocess.TimeoutExpired:
            return Verdict(
                mutant, "killed", "timeout (generate or verify hangs)", time.perf_counter() - start
            )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            why = (done.stderr.strip().splitlines() or ["no output"])[-1][:120]
            return Verdict(mutant, "killed", f"judge crashed: {why}", time.perf_counter() - start)
        status, by = json.loads(lines[-1])
        return Verdict(mutant, status, by, time.perf_counter() - start)


def judge_render(folder: Path) -> tuple[str, str]:
    """In the mutated package's process: render lstm and gru, verify what was rendered."""
    import symlstm
    from symlstm.backends import CODE_BACKENDS

    assert Path(symlstm.__file__).resolve().is_relative_to(folder.resolve()), symlstm.__file__
    generated = folder / "generated"
    changed = []
    try:
        for name in CELLS_OF_GENERATOR:
            d = symlstm.derive(name)
            for backend in CODE_BACKENDS:  # every target, as symlstm generate writes them
                text = CODE_BACKENDS[backend].render(d)
                (generated / backend).mkdir(parents=True, exist_ok=True)
                (generated / backend / f"{name}.py").write_text(text, encoding="utf-8")
                if text != (ROOT / "generated" / backend / f"{name}.py").read_text(encoding="utf-8"):
                    changed.append(name)
    except Exception as err:
        return "killed", f"generate raises {type(err).__name__}"
    changed = list(dict.fromkeys(changed))  # in the order of CELLS_OF_GENERATOR
    if not changed:
        return "untouched", "lstm and gru render unchanged"
    for name in changed:
        by = _ladder(name, GENERATOR_LADDER, generated=generated)
        if by:
            return "killed", f"{name}: {by}"
    for name in changed:
        committed = _import(name + "_committed", (ROOT / "generated" / "numpy" / f"{name}.py").read_text())
        rendered = _import(name, (generated / "numpy" / f"{name}.py").read_text())
        same, why = equivalent(rendered, committed, name)
        if not same:
            return "survived", f"{name}: {why}"
    return "equivalent", "renders differ only in text: " + why


def run_generator(sample: int = 1, jobs: int = 1, limit: int | None = None, offset: int = 0) -> list[Verdict]:
    work = []
    for path in GENERATOR_FILES:
        source = (ROOT / path).read_text(encoding="utf-8")
        work += [(m, source) for m in mutants(source, path)]
    return _map(_generator_job, work[offset::sample][:limit], jobs)


# -- report -------------------------------------------------------------------------------------------
def summary(verdicts: Sequence[Verdict]) -> str:
    killed = sum(v.status == "killed" for v in verdicts)
    survived = [v for v in verdicts if v.status == "survived"]
    equivalent_ = sum(v.status == "equivalent" for v in verdicts)
    untouched = sum(v.status == "untouched" for v in verdicts)
    judged = killed + len(survived)
    score = 100.0 * killed / judged if judged else float("nan")
    lines = [f"{len(verdicts)} mutants: {killed} killed, {len(survived)} survived (non-equivalent), "
             f"{equivalent_} equivalent, {untouched} not touching lstm/gru; "
             f"score {score:.1f} % of non-equivalent killed"]  # fmt: skip
    by: dict[str, int] = {}
    for v in verdicts:
        if v.status == "killed":
            key = v.by.split(" (")[0].split(": ")[-1] if ":" in v.by else v.by.split(" (")[0]
            by[key] = by.get(key, 0) + 1
    lines.append("killed by: " + ", ".join(f"{k} {n}" for k, n in sorted(by.items(), key=lambda kv: -kv[1])))
    for v in survived:
        m = v.mutant
        lines.append(
            f"  survivor {m.target}#{m.index} line {m.line} {m.operator}: {m.before} -> {m.after} ({v.by})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--module", action="append", default=[], help="a cell whose generated module to mutate"
    )
    parser.add_argument("--generator", action="store_true", help="mutate the generator files")
    parser.add_argument("--sample", type=int, default=1, help="take every K-th mutant (default: all)")
    parser.add_argument("--offset", type=int, default=0, help="start the sample at the K-th mutant")
    parser.add_argument("--limit", type=int, help="at most N mutants per target")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutants judged in parallel")
    parser.add_argument("--json", help="write every verdict to this file")
    parser.add_argument("--judge-render", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.judge_render:
        print(json.dumps(judge_render(Path(args.judge_render))))
        return 0
    if args.sample < 1 or args.jobs < 1 or args.offset < 0:
        parser.error("--sample and --jobs must be at least 1, --offset at least 0")
    if not args.module and not args.generator:
        parser.error("name a --module CELL or --generator")
    start = time.perf_counter()
    results = {}
    for name in args.module:
        results[f"module {name}"] = run_module(name, args.sample, args.jobs, args.limit, args.offset)
    if args.generator:
        results["generator"] = run_generator(args.sample, args.jobs, args.limit, args.offset)
    for what, verdicts in results.items():
        print(f"{what}: {summary(verdicts)}")
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        data = {w: [asdict(v) for v in vs] for w, vs in results.items()}
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
