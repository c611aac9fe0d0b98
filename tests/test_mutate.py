"""bench/mutate.py on a small fixed sample: its operators apply, a mutant of the committed module is
killed by the verify column named, an equivalent one is judged equivalent, the generator's mutants are
judged in a copy of the package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRU = (ROOT / "generated" / "numpy" / "gru.py").read_text(encoding="utf-8")


def _tool():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "bench" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module
    spec.loader.exec_module(module)
    return module


mutate = _tool()
MUTANTS = mutate.mutants(GRU, "gru", mutate.MODULE_FUNCTIONS)


def _find(operator: str, before: str) -> mutate.Mutant:
    """The first mutant of `operator` on a node written `before` (found by text, not by number, so
    that a regenerated module keeps the test meaningful)."""
    found = [m for m in MUTANTS if m.operator == operator and m.before == before]
    assert found, f"no {operator} mutant of {before!r} in generated/numpy/gru.py"
    return found[0]


def test_every_operator_applies_and_each_mutant_is_one_edit():
    assert {m.operator for m in MUTANTS} == set(mutate.OPERATORS)
    original = mutate.apply(GRU, MUTANTS[0], mutate.MODULE_FUNCTIONS).splitlines()
    unparsed = __import__("ast").unparse(__import__("ast").parse(GRU)).splitlines()
    assert sum(a != b for a, b in zip(original, unparsed)) == 1  # one line differs
    assert all(m.before != m.after for m in MUTANTS)


# (operator, node as written, the column that kills it), one of each kind of error: a gradient's sign,
# the recurrence's carry, a transposed weight in jvp only.
KILLED = [
    ("binop", "1 - z", "adjoint"),
    ("delete", "h *= z", "fd"),
    ("transpose", "W_in.T", "adjoint"),
]


@pytest.mark.parametrize("operator,before,column", KILLED, ids=[k[1] for k in KILLED])
def test_a_mutant_of_the_committed_module_is_killed(operator, before, column):
    mutant = _find(operator, before)
    original = mutate._import("gru_original", GRU)
    verdict = mutate.judge_module_mutant(mutant, GRU, original)
    assert (verdict.status, verdict.by) == ("killed", column), verdict


def test_an_equivalent_mutant_is_judged_equivalent():
    """`max(B * H, 1)` as `max(B * H, 2)`: a chunk size that differs only when B * H = 1, which
    yields the same chunks (max(1, ...) outside): equal everywhere."""
    mutant = next(m for m in MUTANTS if m.operator == "plus_one" and m.line == _line("max(B * H, 1)"))
    module = mutate._import("gru_mutant", mutate.apply(GRU, mutant, mutate.MODULE_FUNCTIONS))
    same, why = mutate.equivalent(module, mutate._import("gru_original", GRU), "gru", quick=True)
    assert same, why
    wrong = _find("binop", "1 - z")  # and a non-equivalent one is not
    module = mutate._import("gru_wrong", mutate.apply(GRU, wrong, mutate.MODULE_FUNCTIONS))
    assert not mutate.equivalent(module, mutate._import("gru_original", GRU), "gru", quick=True)[0]


def _line(text: str) -> int:
    return next(k + 1 for k, line in enumerate(GRU.splitlines()) if text in line and "coef_steps" in line)


def test_a_generator_mutant_is_rendered_and_judged_in_a_copy_of_the_package():
    """sigma' = sigma (1 + sigma) in the derivative rule (activations.py): the copy of the package
    renders lstm and gru with it (so their files equal the render) and the proofs of lstm fail."""
    path = "symlstm/activations.py"
    source = (ROOT / path).read_text(encoding="utf-8")
    rule = next(m for m in mutate.mutants(source, path) if m.operator == "binop" and m.before == "1 - self")
    verdict = mutate._generator_job((rule, source))
    assert (verdict.status, verdict.by) == ("killed", "lstm: symbolic"), verdict
