"""Cells with sizes besides I and H (`Cell.size`): the declaration and its checks, the derivation and
its proofs (an LSTM with a projection, LSTMP, as torch.nn.LSTM(proj_size=P) computes it)."""

from __future__ import annotations

import pytest
import sympy as sp

import symlstm.spec
from symlstm.activations import sigmoid, tanh
from symlstm.engine import Diag, derive, size_symbol
from symlstm.proof import prove_all
from symlstm.spec import Cell, SpecError

P = size_symbol("P")


@pytest.fixture(autouse=True)
def _generated(monkeypatch):
    monkeypatch.setattr(symlstm.spec, "EXTRA_SIZES_GENERATED", True)


def lstmp() -> symlstm.CellSpec:
    cell = Cell("lstmp_test")
    cell.size("P", "proj_size")
    x, h_prev, c_prev = cell.input("x"), cell.state("h", size="P"), cell.state("c")
    pre = {k: cell.linear(f"a_{k}", {f"W_i{k}": x, f"W_h{k}": h_prev}, biases=[f"b_i{k}", f"b_h{k}"])
           for k in "ifgo"}  # fmt: skip
    i, f, g, o = ((tanh if k == "g" else sigmoid)(pre[k]) for k in "ifgo")
    i, f, g, o = (cell.elementwise(k, e) for k, e in zip("ifgo", (i, f, g, o)))
    c = cell.elementwise("c", f * c_prev + i * g)
    m = cell.elementwise("m", o * tanh(c))
    r = cell.linear("r", {"W_hr": m}, size="P")
    cell.update(h=cell.elementwise("h", r), c=c)
    return cell.build()


def test_sizes_of_vectors_and_parameters():
    spec = lstmp()
    assert spec.extra_sizes == (("P", "proj_size"),)
    assert spec.state_sizes == ("P", "H")
    assert spec.size("r") == spec.size("h") == spec.size("h_prev") == "P"
    assert spec.size("m") == spec.size("c") == "H" and spec.size("x") == "I"
    assert spec.param("W_hi").shape == ("H", "P") and spec.param("W_hr").shape == ("P", "H")
    assert spec.param_count(3, 4, proj_size=2) == 4 * 4 * (3 + 2) + 8 * 4 + 2 * 4
    with pytest.raises(TypeError, match="proj_size="):
        spec.param_count(3, 4)


def test_the_derivation_has_the_sizes_and_its_proofs_hold():
    d = derive(lstmp())
    assert d.jacobian("c", "c_prev") == Diag(sp.Symbol("f", real=True))
    assert d.jacobian("h", "h_prev").shape == (P, P)
    assert d.jacobian("c", "h_prev").shape == (size_symbol("H"), P)
    results = prove_all(d, hidden=3, inputs=1)  # three sizes that differ: P is H - 1
    assert results and all(r.ok for r in results), [r.claim for r in results if not r.ok]
    assert "H=3, I=1, P=2" in results[-1].detail


def test_a_wrong_rule_fails_the_proofs(monkeypatch):
    """A Jacobian with the projection's weight left out fails its proof (the sizes do not hide it)."""
    d = derive(lstmp())
    original = d._terms

    def wrong(of, wrt):
        terms = original(of, wrt)
        return [t for t in terms if ("mat", "W_hr") not in t] if of == "h" else terms

    monkeypatch.setattr(d, "_terms", wrong)
    d._memo.clear()
    failed = [r.claim for r in prove_all(d, hidden=2, inputs=2) if not r.ok]
    assert "jacobian(h, x)" in failed


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda c: c.size("p", "proj_size"), "capital letters"),
        (lambda c: (c.size("P", "proj_size"), c.size("P", "other_size")), "declared twice"),
        (lambda c: c.size("Q", "chrono"), "argument of the generated functions"),
        (lambda c: c.state("s", size="Q"), "'Q', which is not declared"),
        (lambda c: c.linear("a", {"W": c.input("x")}, size="I"), "cannot have the input's size"),
    ],
    ids=["lowercase label", "twice", "taken keyword", "undeclared", "input size"],
)
def test_malformed_sizes_are_refused(declare, message):
    with pytest.raises(SpecError, match=message):
        declare(Cell("bad"))


def test_mixed_sizes_in_one_elementwise_node_are_refused():
    cell = Cell("mixed")
    cell.size("P", "proj_size")
    cell.input("x")
    h_prev, s_prev = cell.state("h"), cell.state("s", size="P")
    with pytest.raises(
        SpecError, match=r"mixes vectors of different sizes \(h_prev of size H; s_prev of size P\)"
    ):
        cell.elementwise("n", h_prev * s_prev)


def test_a_state_updated_by_a_node_of_another_size_is_refused():
    cell = Cell("wrong_update")
    cell.size("P", "proj_size")
    x, s_prev = cell.input("x"), cell.state("s", size="P")
    a = cell.linear("a", {"W": x, "U": s_prev})
    cell.update(s=cell.elementwise("n", tanh(a)))
    with pytest.raises(SpecError, match="state 's' has size P but its new value 'n' has size H"):
        cell.build()


def test_a_size_no_parameter_has_is_refused():
    cell = Cell("unread")
    cell.size("P", "proj_size")
    x, h_prev, s_prev = cell.input("x"), cell.state("h"), cell.state("s", size="P")
    a = cell.linear("a", {"W": x, "U": h_prev})
    cell.update(h=cell.elementwise("h", tanh(a)), s=cell.elementwise("u", tanh(s_prev)))
    with pytest.raises(SpecError, match="no parameter has size 'P'"):
        cell.build()


def test_a_parameter_vector_takes_its_nodes_size():
    cell = Cell("peep")
    cell.size("P", "proj_size")
    x, s_prev, h_prev = cell.input("x"), cell.state("s", size="P"), cell.state("h")
    p = cell.param("p")
    a = cell.linear("a", {"W": x, "U": h_prev}, size="P")
    cell.update(
        s=cell.elementwise("n", tanh(a + p * s_prev)),
        h=cell.elementwise("g", tanh(cell.linear("b", {"V": s_prev}))),
    )
    spec = cell.build()
    assert spec.param("p").shape == ("P",)
    d = derive(spec)
    assert all(r.ok for r in prove_all(d, hidden=2, inputs=2))


def test_until_generated_extra_sizes_are_refused(monkeypatch):
    monkeypatch.setattr(symlstm.spec, "EXTRA_SIZES_GENERATED", False)
    with pytest.raises(SpecError, match="not generated yet"):
        lstmp()


def test_a_cell_without_a_vector_of_size_h_is_refused():
    cell = Cell("no_h")
    cell.size("P", "proj_size")
    x, s_prev = cell.input("x"), cell.state("s", size="P")
    a = cell.linear("a", {"W": x, "U": s_prev}, size="P")
    cell.update(s=cell.elementwise("n", tanh(a)))
    with pytest.raises(SpecError, match="no vector has the hidden size H"):
        cell.build()


def test_a_declared_size_no_vector_has_is_refused():
    cell = Cell("unused_size")
    cell.size("P", "proj_size")
    x, h_prev = cell.input("x"), cell.state("h")
    cell.update(h=cell.elementwise("h", tanh(cell.linear("a", {"W": x, "U": h_prev}))))
    with pytest.raises(SpecError, match=r"sizes \['P'\] are declared \(cell.size\) but no vector has them"):
        cell.build()
