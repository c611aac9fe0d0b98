"""Proofs of the generated code itself, and proofs that do not share the rules they check."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

import symlstm
from symlstm import activations
from symlstm.activations import relu, sigmoid
from symlstm.definitions import output_form_derivative
from symlstm.proof import prove_all
from symlstm.proof_code import prove_code
from symlstm.spec import LinearNode

from .conftest import CELL_NAMES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", CELL_NAMES)
def test_committed_reference_module_is_proved(name):
    """The file users import, generated/reference/<cell>.py, run on SymPy arrays: every claim holds."""
    source = (ROOT / "generated" / "reference" / f"{name}.py").read_text()
    results = prove_code(symlstm.derive(name), source)
    assert results and all(r.ok for r in results), [r.claim for r in results if not r.ok]


# Single-point errors in the generated LSTM reference: each must fail at least one claim (and the
# claims it fails say what is wrong).
PLANTED = {
    "forget-gate carry dropped": ("d_c_prev = d_c * f", "d_c_prev = d_c", "backward dc0"),
    "sigma' = sigma": ("d_a_f = d_f * f * (1 - f)", "d_a_f = d_f * f", "backward dW_hh"),
    "dy not added": ("din_h = d_h_prev + dy[t]", "din_h = d_h_prev", "backward dx"),
    "dW_hi from x": ("d_W_hi += d_a_i.T @ h_prev", "d_W_hi += d_a_i.T @ x", "backward dW_hh"),
    "bias not summed over the batch": ("d_b_ii += d_a_i.sum(axis=0)", "d_b_ii += d_a_i[0]", "backward db_ih"),
    "W_hf transposed": ("d_a_f @ W_hf", "d_a_f @ W_hf.T", "backward dh0"),
    "forward input gate dropped": ("c = c_prev * f + g * i", "c = c_prev * f + g", "forward c_T"),
    "tangent doubled": ("tan_c = ", "tan_c = 2 * ", "jvp dc_T"),
    "loop skips t = 0": ("for t in range(T - 1, -1, -1):", "for t in range(T - 1, 0, -1):", "backward dx"),
}


@pytest.mark.parametrize("label", list(PLANTED))
def test_a_planted_error_in_the_generated_code_fails_its_proof(label):
    old, new, claim = PLANTED[label]
    source = (ROOT / "generated" / "reference" / "lstm.py").read_text()
    assert source.count(old) >= 1, f"the plant for {label!r} no longer applies"
    failed = [r.claim for r in prove_code(symlstm.derive("lstm"), source.replace(old, new, 1)) if not r.ok]
    assert any(claim in f for f in failed), failed


def _by_evaluation_of_the_form(expr, canonical):
    """The zero test with every claim decided by the randomised test of its canonical form alone (no
    cancellation, no clearing)."""
    return canonical.evaluated(canonical.of(sp.sympify(expr))) is not None


def _by_evaluation_of_the_expression(expr, canonical):
    """... of the expression as it stands (no canonical form but the leaves')."""
    return canonical.evaluated_expression(sp.sympify(expr)) is not None


EVALUATIONS = {"form": _by_evaluation_of_the_form, "expression": _by_evaluation_of_the_expression}


@pytest.mark.parametrize("how", list(EVALUATIONS))
@pytest.mark.parametrize("label", list(PLANTED))
def test_a_planted_error_fails_its_proof_when_every_claim_is_decided_by_evaluation(how, label, monkeypatch):
    """With every claim decided by the randomised test alone, the LSTM reference is proved, and each
    planted error still fails its claim: evaluation agrees with the exact test on all of them."""
    from symlstm import proof

    monkeypatch.setattr(proof, "is_zero", EVALUATIONS[how])
    source = (ROOT / "generated" / "reference" / "lstm.py").read_text()
    if label == "forget-gate carry dropped":  # once for all plants: the right module passes, by evaluation
        results = prove_code(symlstm.derive("lstm"), source)
        assert results and all(r.ok and r.detail.startswith("randomised") for r in results), results
    old, new, claim = PLANTED[label]
    failed = [r.claim for r in prove_code(symlstm.derive("lstm"), source.replace(old, new, 1)) if not r.ok]
    assert any(claim in f for f in failed), failed


def test_output_form_derivatives_are_derived_from_the_definitions():
    s = sp.Symbol("s", real=True)
    assert sp.expand(output_form_derivative(sigmoid) - s * (1 - s)) == 0
    assert sp.expand(output_form_derivative(sp.tanh) - (1 - s**2)) == 0
    assert output_form_derivative(relu) == sp.Heaviside(s, 0)


def _through(spec, start: str, end: str, via: set[str]) -> bool:
    """Whether a path from vector `start` to node `end` passes through a node of `via`."""

    def reach(a: str) -> set[str]:
        seen, todo = set(), [a]
        while todo:
            v = todo.pop()
            for n in spec.consumers(v):
                if n.name not in seen:
                    seen.add(n.name)
                    todo.append(n.name)
        return seen

    return any(n in reach(start) and (n == end or end in reach(n)) for n in via)


def test_a_wrong_derivative_rule_fails_every_claim_that_uses_it(monkeypatch):
    """sigma' = sigma planted in the rule: each Jacobian claim fails exactly when its path crosses a
    sigmoid (the reference side differentiates the definition, not the package's rule)."""
    monkeypatch.setattr(activations.sigmoid, "fdiff", lambda self, argindex=1: self)
    d = symlstm.derive("lstm")
    spec = d.spec
    gates = {n.name for n in spec.nodes if not isinstance(n, LinearNode) and n.expr.func is sigmoid}
    results = {r.claim: r.ok for r in prove_all(d)}
    assert results["activation sigmoid: derivative in output form"] is False
    jacobians = [c for c in results if c.startswith("jacobian(")]
    assert len(jacobians) == len(spec.nodes) * len(spec.leaves)
    for claim in jacobians:
        of, wrt = claim[len("jacobian(") : -1].split(", ")
        assert results[claim] is not _through(spec, wrt, of, gates), claim
    for leaf in spec.leaves:  # the backward program: d_x and d_h_prev cross a gate, d_c_prev does not
        crosses = any(_through(spec, leaf, out, gates) for out in d.incoming)
        assert results[f"vjp d_{leaf}"] is not crosses, leaf
