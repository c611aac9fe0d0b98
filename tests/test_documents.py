"""What the documents compute before they print: diagram layouts, factored Jacobians, numerical checks of
the printed equations, and the check lines a reader can run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symlstm import Cell, derive, sigmoid, tanh
from symlstm.backends.latex import CellTex, documents
from symlstm.backends.latex.checks import finite_differences
from symlstm.backends.latex.diagrams import cell_layout, highway_paths, unrolled_layout
from symlstm.backends.latex.factored import Product, expand, factored, same_terms

from .conftest import CELL_NAMES

ROOT = Path(__file__).resolve().parent.parent


# -- diagrams ------------------------------------------------------------------------------------------


def test_the_lstm_cell_state_is_the_straight_highway():
    lay = cell_layout(derive("lstm"))
    assert lay.highways == (("c_prev", "c"),)
    assert lay.node("c_prev").row == lay.node("c").row == 0  # one straight row, on top
    assert all(n.row > 0 for n in lay.nodes if n.name not in ("c_prev", "c"))
    assert {(e.src, e.dst) for e in lay.edges if e.highway} == {("c_prev", "c")}
    assert lay.node("c").new_state == "c" and lay.node("h").output


def test_the_vanilla_rnn_has_no_highway_and_every_carry_goes_through_w_hh():
    d = derive("rnn")
    assert highway_paths(d) == {}
    assert cell_layout(d).highways == ()
    assert unrolled_layout(d).blocks == (("h", "h", "matrix"),)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_every_vector_and_dependency_is_drawn_once(name):
    d = derive(name)
    lay = cell_layout(d)
    names = [n.name for n in lay.nodes]
    assert sorted(names) == sorted([*d.spec.leaves, *(n.name for n in d.spec.nodes)])
    want = {(u, n.name) for n in d.spec.nodes for u in d.args_of(n)}
    assert {(e.src, e.dst) for e in lay.edges} == want
    col = {n.name: n.col for n in lay.nodes}
    assert all(col[e.src] < col[e.dst] for e in lay.edges)  # computed left to right
    rows = [(n.col, n.row) for n in lay.nodes]
    assert len(rows) == len(set(rows))  # no two vectors on one spot


def test_unrolled_blocks_split_diagonal_and_matrix_parts():
    lstm = unrolled_layout(derive("lstm"))
    assert lstm.states == ("c", "h")  # the highway lane on top
    assert set(lstm.blocks) == {
        ("c", "c", "diag"),
        ("c", "h", "matrix"),
        ("h", "c", "diag"),
        ("h", "h", "matrix"),
    }
    gru = unrolled_layout(derive("gru"))
    assert set(gru.blocks) == {("h", "h", "diag"), ("h", "h", "matrix")}  # diag(z) plus the gated terms


def test_a_carry_through_a_linear_map_is_not_a_highway():
    cell = Cell("through_matrix")
    x, h = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W_x": x, "W_h": h})
    cell.update(h=cell.elementwise("h_new", sigmoid(a) * tanh(a)))
    assert highway_paths(derive(cell.build())) == {}


# -- factored Jacobians ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_factored_blocks_multiply_out_to_the_engine_jacobian(name):
    assert CellTex(derive(name)).factored_is_engine()


def test_factored_forms_take_common_factors_out_and_refer_to_blocks():
    d = derive("lstm")
    blocks = CellTex(d).step_blocks()
    hh = factored(d, "h", "h_prev", blocks)
    assert len(hh) == 2 and any(q.ref == ("c", "h_prev") for q in hh)  # ... + diag(..) dc_t/dh_{t-1}
    gru = derive("gru")
    (bracket,) = [q for q in factored(gru, "h", "h_prev") if q.rest]
    r, n, z = gru.sym["r"], gru.sym["n"], gru.sym["z"]
    assert sp.expand(bracket.coeff - r * (1 - n**2) * (1 - z)) == 0  # common to both terms inside


def test_a_wrong_factored_form_is_caught():
    d = derive("lstm")
    good = factored(d, "c", "h_prev")
    wrong = (dataclasses.replace(good[0], coeff=good[0].coeff * 2), *good[1:])
    assert same_terms(expand(d, good), d.jacobian_terms("c", "h_prev"))
    assert not same_terms(expand(d, wrong), d.jacobian_terms("c", "h_prev"))
    assert not same_terms(expand(d, (Product(sp.S.One, "W_hf"),)), d.jacobian_terms("c", "h_prev"))


# -- numerical checks of the printed equations -----------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_printed_equations_agree_with_central_differences(name):
    report = finite_differences(derive(name))
    assert report.ok, report


def test_a_planted_error_in_the_backward_program_is_caught():
    d = derive("lstm")
    vjp = list(d.vjp)
    k = next(j for j, a in enumerate(vjp) if a.vector == "c_prev")
    vjp[k] = dataclasses.replace(vjp[k], elementwise=vjp[k].elementwise * 2)  # d_c_prev = 2 d_c f
    d.__dict__["vjp"] = tuple(vjp)
    report = finite_differences(d, seed=12345)
    assert not report.checks[0].ok and report.checks[0].worst > 0.1


def test_a_planted_error_in_a_parameter_gradient_is_caught():
    d = derive("gru")
    grads = [g if g.param != "b_hn" else dataclasses.replace(g, node="a_n") for g in d.param_gradients]
    d.__dict__["param_gradients"] = tuple(grads)  # b_hn treated as redundant with b_in: it is not
    report = finite_differences(d, seed=12345)
    assert report.checks[0].ok and not report.checks[1].ok


# -- the check lines a reader can run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_documents():
    return documents()


def test_every_check_line_runs_and_is_true(all_documents, monkeypatch):
    monkeypatch.chdir(ROOT)  # the topic preludes load their source from derivations/
    have_torch = True
    try:
        import torch  # noqa: F401
    except ImportError:
        have_torch = False
    failed = []
    for doc in all_documents:
        scope: dict = {}
        exec(doc.prelude, scope)
        for code in doc.checks:
            if "torch_parameter_count" in code and not have_torch:
                continue
            value = eval(code, scope)
            if not (isinstance(value, (bool, np.bool_)) and bool(value)):
                failed.append((doc.name, code, value))
    assert not failed, failed


def test_every_document_says_what_was_checked(all_documents):
    for doc in all_documents:
        titles = [b["title"] for b in doc.blocks if b["kind"] == "section"]
        assert "What was checked, and how" in titles, doc.name
        assert doc.prelude and doc.checks, doc.name
        if doc.name.startswith("t3"):  # forward pass, counts and layout only: no derivative printed
            continue
        marks = [b for b in doc.blocks if b["kind"] == "claim" and "central differences" in b["statement"]]
        assert marks, f"{doc.name}: no equation checked numerically"


def test_every_cell_document_marks_backward_gradients_jacobian_and_bptt(all_documents):
    for doc in all_documents:
        if doc.name.startswith("t"):
            continue
        codes = doc.checks
        for group in range(5):
            assert f"finite_differences(d).checks[{group}].ok" in codes, (doc.name, group)


def test_topics_have_dimension_tables_and_pictures(all_documents):
    topics = {d.name: d for d in all_documents if d.name.startswith("t")}
    for name, doc in topics.items():
        tables = [b["label"] for b in doc.blocks if b["kind"] == "table"]
        assert "tab:dims" in tables, name
        if not name.startswith("t3"):
            assert any(b["kind"] == "diagram" for b in doc.blocks), name
