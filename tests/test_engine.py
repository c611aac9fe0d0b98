"""The derivation engine: named results are what the notes say, and every result is proved."""

from __future__ import annotations

import pytest
import sympy as sp

import symlstm
from symlstm.activations import ACTIVATIONS, derivative_rule_holds, tanh
from symlstm.engine import Diag, H
from symlstm.proof import prove_all
from tests.conftest import CELL_NAMES


def test_lstm_cell_state_carry_is_diag_f():
    d = symlstm.derive("lstm")
    f = sp.Symbol("f", real=True)
    assert d.jacobian("c", "c_prev") == Diag(f)


def test_rnn_recurrent_jacobian_is_diag_one_minus_h_squared_times_w_hh():
    d = symlstm.derive("rnn")
    h = sp.Symbol("h", real=True)
    assert d.jacobian("h", "h_prev") == sp.MatMul(Diag(1 - h**2), sp.MatrixSymbol("W_hh", H, H))


def test_lstm_h_wrt_c_prev_is_diagonal_and_gru_keeps_the_z_carry():
    d = symlstm.derive("lstm")
    f, o, tanh_c = sp.symbols("f o tanh_c", real=True)
    assert d.jacobian("h", "c_prev") == Diag(f * o * (1 - tanh_c**2))
    gru = symlstm.derive("gru")
    terms = gru.jacobian_terms("h", "h_prev")
    z = sp.Symbol("z", real=True)
    assert (("diag", z),) in terms  # the identity-like carry diag(z_t) of the GRU


def test_step_jacobian_blocks_and_bptt_shapes():
    d = symlstm.derive("lstm")
    block = d.step_jacobian()
    assert block.blockshape == (2, 2)
    assert set(d.bptt()) == {"h_prev", "c_prev"}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_rules(name):
    assert derivative_rule_holds(ACTIVATIONS[name])


@pytest.mark.parametrize("name", CELL_NAMES)
def test_every_result_is_proved_against_scalar_jacobian(name):
    results = prove_all(symlstm.derive(name))
    failed = [r.claim for r in results if not r.ok]
    assert not failed, f"{name}: unproved claims {failed}"
    claims = {r.claim for r in results}
    spec = symlstm.cell(name)
    # every parameter gradient, every leaf adjoint and the BPTT recurrence are among the proofs
    assert {f"gradient {p.name}" for p in spec.params} <= claims
    assert {f"vjp d_{leaf}" for leaf in spec.leaves} <= claims
    assert {f"bptt d_{prev}" for prev in spec.prev_names} <= claims


def test_proof_detects_a_wrong_jacobian():
    """The proof machinery can fail: a planted wrong derivative rule is caught."""
    d = symlstm.derive("lstm")
    f = sp.Symbol("f", real=True)
    d._memo[("c", "c_prev")] = [(("diag", f * f),)]  # claim dc/dc_prev = diag(f^2)
    results = {r.claim: r.ok for r in prove_all(d)}
    assert results["jacobian(c, c_prev)"] is False


def test_proof_detects_a_wrong_bptt_recurrence(monkeypatch):
    """The BPTT claim is about `bptt()`'s own result: a recurrence missing the path through h_t fails."""
    d = symlstm.derive("lstm")
    f = sp.Symbol("f", real=True)
    wrong = {**d.bptt(), "c_prev": sp.MatMul(Diag(f), sp.MatrixSymbol("din_c", H, 1))}
    monkeypatch.setattr(d, "bptt", lambda: wrong)
    results = {r.claim: r for r in prove_all(d)}
    assert results["bptt d_c_prev"].ok is False
    assert results["bptt d_c_prev"].detail == "SymPy's Matrix.jacobian of the cell expanded at H=3, I=2"
    assert results["bptt d_h_prev"].ok is True


def test_bptt_of_a_previous_state_no_new_state_reads_is_zero():
    cell = symlstm.Cell("unread")
    x, h_prev, _ = cell.input("x"), cell.state("h"), cell.state("k")
    a = cell.linear("a", {"W_ih": x, "W_hh": h_prev}, biases=["b"])
    cell.update(h=cell.elementwise("h", tanh(a)), k=cell.elementwise("k", 2 * tanh(a)))
    d = symlstm.derive(cell.build())
    assert d.bptt()["k_prev"] == sp.ZeroMatrix(H, 1)
    failed = [r.claim for r in prove_all(d) if not r.ok]
    assert not failed


def test_a_tan_inside_an_expression_gets_a_name_outside_the_tangent_prefix():
    """tan(a) inside h's expression is named act_tan_a: tan_a would clash with the tangents tan_<name>."""
    cell = symlstm.Cell("inner_tan")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W_ih": x, "W_hh": h_prev}, biases=["b"])
    cell.update(h=cell.elementwise("h", tanh(sp.tan(a) / 2 + h_prev)))
    d = symlstm.derive(cell.build())
    assert [m.name for m in d.intermediates] == ["act_tan_a"]
    assert all(r.ok for r in prove_all(d))


def test_unknown_vector_is_a_clear_error():
    with pytest.raises(symlstm.SpecError, match="not a vector of the cell"):
        symlstm.derive("lstm").jacobian("c", "nope")
