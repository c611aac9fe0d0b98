"""Cells outside the registry's family, one per class of construct: each comes out right everywhere.

Each is derived, proved (the derivation and the generated reference code), generated, checked
against finite differences, and the optimised module is checked equal to the reference at sizes on
both sides of its thresholds (`symlstm.fuzz.check_cell`, the fuzzer's checks).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symlstm
from symlstm import Cell, SpecError, relu, sigmoid, tanh
from symlstm.backends import CODE_BACKENDS
from symlstm.fuzz import check_cell


def highway() -> symlstm.CellSpec:
    """The input read coordinate by coordinate: h = r * tanh(W x + U h) + (1 - r) * x (needs I == H)."""
    cell = Cell("highway", same_size=True)
    x, h_prev = cell.input("x"), cell.state("h")
    a_r = cell.linear("a_r", {"W_xr": x, "W_hr": h_prev}, biases=["b_r"])
    a_n = cell.linear("a_n", {"W_xn": x, "W_hn": h_prev}, biases=["b_n"])
    r = cell.elementwise("r", sigmoid(a_r))
    h = cell.elementwise("h", r * tanh(a_n) + (1 - r) * x)
    cell.update(h=h)
    return cell.build()


def weighted_input() -> symlstm.CellSpec:
    """A parameter vector times the input: h = tanh(W x + U h + w * x)."""
    cell = Cell("weighted_input", same_size=True)
    x, h_prev = cell.input("x"), cell.state("h")
    w = cell.param("w")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    cell.update(h=cell.elementwise("h", tanh(a + w * x)))
    return cell.build()


def deep_transition() -> symlstm.CellSpec:
    """An elementwise node feeding a linear node: z = tanh(W x + U h), h = tanh(V z + b)."""
    cell = Cell("deep_transition")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev})
    z = cell.elementwise("z", tanh(a))
    v = cell.linear("v", {"V": z}, biases=["b"])
    cell.update(h=cell.elementwise("h", tanh(v)))
    return cell.build()


def state_feeds_linear() -> symlstm.CellSpec:
    """A state's new value read by a later linear node: c is a state and the input of V."""
    cell = Cell("state_feeds_linear")
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    c = cell.elementwise("c", 0.5 * c_prev + tanh(a))
    v = cell.linear("v", {"V": c, "R": h_prev})
    cell.update(h=cell.elementwise("h", sigmoid(v) * tanh(c)), c=c)
    return cell.build()


def shared_bias() -> symlstm.CellSpec:
    """One bias vector added to two linear nodes."""
    cell = Cell("shared_bias")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W_a": x, "U_a": h_prev}, biases=["b"])
    g = cell.linear("g", {"W_g": x, "U_g": h_prev}, biases=["b", "b_g"])
    cell.update(h=cell.elementwise("h", sigmoid(a) * tanh(g) + (1 - sigmoid(a)) * h_prev))
    return cell.build()


def two_states_one_node() -> symlstm.CellSpec:
    """One node giving two states their new value; the output is neither state's first."""
    cell = Cell("two_states_one_node")
    x, h_prev, m_prev = cell.input("x"), cell.state("h"), cell.state("m")
    a = cell.linear("a", {"W": x, "U": h_prev, "M": m_prev}, biases=["b"])
    h = cell.elementwise("h", tanh(a))
    o = cell.elementwise("o", 2 * h - h_prev)
    cell.update(h=h, m=h)
    cell.output(o)
    return cell.build()


def fused_mixed_vectors() -> symlstm.CellSpec:
    """A bias and a peephole stored in one fused array; SymPy's own functions (atan, softplus)."""
    cell = Cell("fused_mixed_vectors")
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    p = cell.param("p")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    c = cell.elementwise("c", sp.atan(a + p * c_prev) * sp.Rational(2, 3) + c_prev / 2)
    cell.update(h=cell.elementwise("h", tanh(sp.log(1 + sp.exp(c)))), c=c)
    cell.fuse("vectors", ["b", "p"])
    return cell.build()


def constants() -> symlstm.CellSpec:
    """Constants a float holds only rounded, and activations of constants: 1/3, pi, sigmoid(0), e."""
    cell = Cell("constants")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev})
    h = tanh(a / 3 + sp.pi * h_prev / 7 + sigmoid(0) + sp.exp(1) * sp.Rational(1, 5))
    cell.update(h=cell.elementwise("h", h))
    return cell.build()


def cancelling() -> symlstm.CellSpec:
    """A gradient that is exactly zero by cancellation: (s - n) with n = s; the optimised module leaves
    rounding residue where the reference computes 0, which the checks must accept as rounding."""
    cell = Cell("cancelling")
    x, s_prev = cell.input("x"), cell.state("s")
    a = cell.linear("a", {"W": x})
    n = cell.elementwise("n", s_prev)
    p = cell.param("p")
    cell.update(s=cell.elementwise("u", tanh((s_prev - n) * (p * s_prev + s_prev)) + tanh(a)))
    return cell.build()


def powers() -> symlstm.CellSpec:
    """Powers whose exponent reads a vector: u**v of two vectors, a constant to a vector's power, a
    parameter vector as an exponent."""
    cell = Cell("powers")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    p = cell.param("p")
    g = cell.elementwise("g", (1 + a**2) ** sigmoid(h_prev))
    h = tanh(g * 2**h_prev - (1 + h_prev**2) ** p + sp.pi ** (a * h_prev))
    cell.update(h=cell.elementwise("h", h))
    return cell.build()


CELLS = [cancelling, constants, highway, weighted_input, deep_transition, state_feeds_linear, shared_bias,
         two_states_one_node, fused_mixed_vectors, powers]  # fmt: skip


@pytest.mark.parametrize("build", CELLS, ids=[f.__name__ for f in CELLS])
def test_cell_comes_out_right(build):
    result = check_cell(build(), backends=("numpy",))  # numba: tests/test_numba.py (a JIT per cell)
    assert result.ok, result.report()


def test_same_size_is_enforced_with_a_clear_error():
    spec = highway()
    module = symlstm.load(spec)
    with pytest.raises(ValueError, match="needs input_size == hidden_size, got 3 and 4"):
        module.init_params(3, 4)
    params = module.init_params(4, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 4\)"):
        module.forward(params, np.zeros((2, 1, 3)))


def test_reading_the_input_elementwise_needs_same_size():
    cell = Cell("no_same_size")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev})
    cell.update(h=cell.elementwise("h", tanh(a) + x))
    with pytest.raises(SpecError, match=r"needs input size == hidden size: declare the cell with Cell\("):
        cell.build()


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda c, x, h: c.update(h=c.linear("a", {"W": x, "U": h})), "state 'h' is linear node 'a'"),
        (lambda c, x, h: c.update(h=c.elementwise("h", tanh(c.linear("v", {"V": c.linear("a", {"W": x})})))),
         "linear node 'v' reads linear node 'a'"),
        (lambda c, x, h: (c.param("p"), c.update(h=c.elementwise("h", tanh(c.linear("a", {"W": x}) + h)))),
         r"parameters \['p'\] are declared \(cell.param\) but no node uses them"),
        (lambda c, x, h: c.update(h=c.elementwise("h", tanh(c.linear("a", {"U": h})))),
         "no node reads the input 'x'"),
    ],
    ids=["state updated by a linear node", "linear reads linear", "unused parameter", "input never read"],
)  # fmt: skip
def test_unsupported_graphs_are_refused_by_build(declare, message):
    cell = Cell("refused")
    x, h = cell.input("x"), cell.state("h")
    declare(cell, x, h)
    with pytest.raises(SpecError, match=message):
        cell.build()


@pytest.mark.parametrize("constant", [sp.I, 1 + 2 * sp.I, sp.log(-2), sp.oo, -sp.oo, sp.zoo, sp.nan])
def test_a_constant_that_is_not_a_finite_real_is_refused(constant):
    cell = Cell("not_real")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev})
    with pytest.raises(SpecError, match=r"uses the constant .*; a cell computes with finite real numbers"):
        cell.elementwise("h", tanh(a) + constant * h_prev)


def test_a_parameter_gradient_never_divides_by_a_value_that_can_vanish():
    """h = tanh(w * a) with a = W x + U h + b: d_w = g * a (g = d_h * (1 - h^2)) is (a / w) times the
    linear node's adjoint d_a = g * w, but writing it so divides by w: at w = 0 (a zero-initialised
    weight vector) 0 * inf = nan. The generated code reuses an adjoint only for an exact multiple."""
    cell = Cell("zero_weight")
    x, h_prev = cell.input("x"), cell.state("h")
    w = cell.param("w")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    cell.update(h=cell.elementwise("h", tanh(w * a) + 0.5 * h_prev))
    spec = cell.build()
    module, reference = symlstm.load(spec), symlstm.load(spec, backend="reference")
    rng = np.random.default_rng(0)
    params = module.init_params(3, 3, seed=0)
    params["w"][:] = 0.0
    x_seq = rng.standard_normal((4, 2, 3))
    dy = rng.standard_normal((4, 2, 3))
    got = module.backward(params, module.forward(params, x_seq)[2], dy)[0]
    want = reference.backward(params, reference.forward(params, x_seq)[2], dy)[0]
    assert np.isfinite(got["w"]).all()
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-10, atol=1e-12)


def test_an_irrational_constant_keeps_float32_in_float32():
    """log(3) in an equation: every backend's y, gradients and tangents stay float32 (NumPy's np.log(3)
    is a float64 scalar and would promote them; the printers write such a constant as a float literal)."""
    cell = Cell("log_three")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    # relu(0): a constant SymPy cannot evaluate itself (the fuzzer drew one), taken by its definition;
    # sigmoid(sigmoid(0)): a call of a constant is a constant, not a per-coordinate intermediate value
    # (the fuzzer drew one; named as an intermediate, it stayed float64 in the reference module)
    cell.update(h=cell.elementwise("h", tanh(a + sp.log(3) + relu(0) + sigmoid(sigmoid(0))) * sp.sqrt(2) / 2))
    backends = [b for b in ("numpy", "jax", "torch") if CODE_BACKENDS[b].available()]
    result = check_cell(cell.build(), proofs=False, backends=backends)
    assert result.ok, result.report()
    assert any("float32" in name for name, ok, _ in result.results if ok)
