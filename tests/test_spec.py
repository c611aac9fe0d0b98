"""Cell specifications: the registry and clear errors for bad specs."""

from __future__ import annotations

import pytest
import sympy as sp

import symlstm
from symlstm import Cell, SpecError, sigmoid, tanh


def test_unknown_cell_lists_known_ones():
    with pytest.raises(SpecError) as err:
        symlstm.cell("lstn")
    for name in symlstm.CELLS:
        assert name in str(err.value)


def test_builtin_cells_have_pytorch_layouts():
    assert [g.name for g in symlstm.cell("lstm").groups] == ["W_ih", "W_hh", "b_ih", "b_hh"]
    assert symlstm.cell("lstm").group_of("W_ig").members == ("W_ii", "W_if", "W_ig", "W_io")
    assert symlstm.cell("gru").group_of("W_hn").members == ("W_hr", "W_hz", "W_hn")


@pytest.mark.parametrize(
    ("name", "expected"), [("rnn", 640), ("lstm", 2560), ("gru", 1920)]
)  # torch.nn counts for input 10, hidden 20 (reference/cells.md, section 3.5)
def test_parameter_counts(name, expected):
    assert symlstm.cell(name).param_count(10, 20) == expected


def test_undefined_symbol_is_rejected():
    cell = Cell("toy")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev})
    with pytest.raises(SpecError, match="undefined symbol 'q'"):
        cell.elementwise("h", tanh(a + sp.Symbol("q")))


@pytest.mark.parametrize("bad", ["class", "print", "1abc", "a-b", "x y", "np", "d_h", "", "é"])
def test_unsafe_names_are_rejected(bad):
    with pytest.raises(SpecError, match="name"):
        Cell("toy").input(bad)


def test_cross_coordinate_construct_is_rejected():
    cell = Cell("toy")
    cell.input("x")
    cell.state("h")  # h_prev is declared: the rejections below are about the constructs, not the names
    k = sp.Symbol("k", integer=True)
    with pytest.raises(SpecError, match="is not supported"):
        cell.elementwise("h", sp.Sum(sp.Indexed(sp.IndexedBase("h_prev"), k), (k, 0, 3)))
    with pytest.raises(SpecError, match="cross-coordinate"):
        cell.elementwise("h", (sp.MatrixSymbol("M", 3, 3) * sp.MatrixSymbol("v", 3, 1))[0, 0])


def test_non_differentiable_construct_is_rejected():
    cell = Cell("toy")
    x, h_prev = cell.input("x"), cell.state("h")
    with pytest.raises(SpecError, match="not differentiable"):
        cell.elementwise("h", sp.Max(x, h_prev))


def test_state_without_update_is_rejected():
    cell = Cell("toy")
    x, h_prev = cell.input("x"), cell.state("h")
    cell.linear("a", {"W": x, "U": h_prev})
    with pytest.raises(SpecError, match="no new value"):
        cell.build()


def test_fused_weight_with_two_inputs_is_rejected():
    cell = Cell("toy")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev})
    g = cell.elementwise("g", sigmoid(a))
    b = cell.linear("b", {"V": g})
    h = cell.elementwise("h", g * tanh(b))
    cell.update(h=h)
    cell.fuse("UV", ["U", "V"])
    with pytest.raises(SpecError, match="one input"):
        cell.build()


def test_a_rejected_declaration_leaves_the_builder_unchanged():
    cell = Cell("retry")
    with pytest.raises(SpecError, match="not a safe identifier"):
        cell.input("1x")
    x = cell.input("x")  # the rejected name was not recorded as the input
    h_prev = cell.state("h")
    with pytest.raises(SpecError, match="declared twice"):
        cell.state("h")
    cell.update(h=cell.elementwise("h", tanh(cell.linear("a", {"W_ih": x, "W_hh": h_prev}))))
    assert cell.build().states == ("h",)


def test_an_output_that_is_not_a_node_says_what_is_expected():
    cell = Cell("bad_output")
    x, h_prev = cell.input("x"), cell.state("h")
    cell.update(h=cell.elementwise("h", tanh(cell.linear("a", {"W_ih": x, "W_hh": h_prev}))))
    cell.output(x)
    with pytest.raises(SpecError, match=r"output 'x' is not a node \(expected the symbol returned by"):
        cell.build()
