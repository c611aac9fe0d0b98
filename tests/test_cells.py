"""Every cell of the notes and its variants: what each derivation says, and the generator features
they need."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symlstm
import symlstm.cells
from symlstm import Cell, CellSpec, SpecError, sigmoid, tanh
from symlstm.activations import step
from symlstm.backends.numpy import render_numpy
from symlstm.backends.numpy.printer import NumpyCodePrinter
from symlstm.engine import Diag, H
from symlstm.proof import prove_all
from symlstm.testing import check_full_fd, make_problem

ROOT = Path(__file__).resolve().parent.parent


def test_sigmoid_of_a_sum_is_parenthesised():
    """JANET's sigmoid(s - 1): the stable form must halve the whole argument."""
    s, p, c = sp.symbols("s p c", real=True)
    printer = NumpyCodePrinter()
    assert printer.doprint(sigmoid(s - 1)) == "0.5 * np.tanh(0.5 * (s - 1)) + 0.5"
    assert printer.doprint(sigmoid(s)) == "0.5 * np.tanh(0.5 * s) + 0.5"
    value = eval(printer.doprint(sigmoid(s + p * c)), {"np": np, "s": 0.3, "p": -2.0, "c": 0.7})
    assert abs(value - 1 / (1 + math.exp(-(0.3 - 1.4)))) < 1e-15


def test_long_tangent_sums_wrap_one_term_per_line_as_ruff_does():
    """FGR's ten-term tangents do not fit in parentheses on one line: split at top-level + and -."""
    from symlstm.backends.numpy.source import wrap as _wrap

    terms = [f"tan_x{k} @ W_{k}.T" for k in range(8)]
    line = "        tan_a = " + " + ".join(terms) + " - (a - b) * c"
    out = _wrap(line, indent=4)
    assert out[0] == "        tan_a = (" and out[-1] == "        )"
    assert out[1:-1] == [f"            {terms[0]}", *(f"            + {t}" for t in terms[1:]),
                         "            - (a - b) * c"]  # fmt: skip
    assert _wrap("    y = a + b", indent=4) == ["    y = a + b"]


# -- what each new cell's derivation says -------------------------------------------------------------

S = {
    name: sp.Symbol(name, real=True)
    for name in ("c", "f", "h", "i", "n", "r", "z", "p_i", "p_f", "h_prev", "c_prev")
}


@pytest.mark.parametrize("name", ["lstm_nofg", "additive"])
def test_no_forget_gate_carry_is_the_identity(name):
    """The 1997 carousel and the notes' additive memory: dc_t/dc_{t-1} = I exactly."""
    d = symlstm.derive(name)
    assert d.jacobian("c", "c_prev") == sp.Identity(H)


def test_greff_nfg_carry_is_the_identity_plus_the_input_peephole():
    """NFG keeps the input gate's peephole on c_{t-1}, so dc_t/dc_{t-1} = I + diag(z p_i i (1 - i))."""
    ((term,),) = symlstm.derive("greff_nfg").jacobian_terms("c", "c_prev")
    i, z, p_i = S["i"], S["z"], S["p_i"]
    assert sp.expand(term[1] - (1 + z * p_i * i * (1 - i))) == 0


@pytest.mark.parametrize("name", ["peephole", "greff_nig", "greff_cifg", "greff_fgr", "janet"])
def test_gated_carries_are_diagonal(name):
    """With peepholes, or coupled gates, the carry along the memory is still diagonal (no weight matrix)."""
    d = symlstm.derive(name)
    state = "c" if "c" in symlstm.cell(name).states else "h"
    direct = [t for t in d.jacobian_terms(state, f"{state}_prev") if all(k == "diag" for k, _ in t)]
    assert len(direct) == 1


def test_peephole_carry_and_output_gate_peeks_at_the_new_cell_state():
    d = symlstm.derive("peephole")
    c, f, i, z, p_i, p_f, c_prev = (S[k] for k in ("c", "f", "i", "z", "p_i", "p_f", "c_prev"))
    ((term,),) = d.jacobian_terms("c", "c_prev")
    expected = f + c_prev * p_f * f * (1 - f) + z * p_i * i * (1 - i)
    assert sp.expand(term[1] - expected) == 0
    o_node = symlstm.cell("peephole").node("o")
    assert c in o_node.expr.free_symbols and c_prev not in o_node.expr.free_symbols


def test_cifg_couples_the_forget_gate_to_one_minus_i():
    d = symlstm.derive("greff_cifg")
    i = S["i"]
    assert "f" not in {n.name for n in symlstm.cell("greff_cifg").nodes}
    ((term,),) = [t for t in d.jacobian_terms("c", "c_prev") if len(t) == 1]
    assert sp.expand(term[1].subs(S["p_i"], 0) - (1 - i)) == 0


def test_fgr_state_carries_the_gate_activations():
    spec = symlstm.cell("greff_fgr")
    assert spec.states == ("h", "c", "i", "f", "o")
    assert {g.name for g in spec.groups} >= {"R_i", "R_f", "R_o"}
    assert spec.param_count(2, 3) == 4 * 3 * (2 + 3) + 4 * 3 + 9 * 3 * 3 + 3 * 3


def test_gru_cho_jacobian_matches_the_reference_formula():
    """cells.md 3: dh/dh_prev = diag(z) + diag((h-n) z(1-z)) U_z
    + diag((1-z)(1-n^2)) U_n [diag(r) + diag(h r(1-r)) U_r]."""
    d = symlstm.derive("gru_cho")
    z, n, r, h_prev = S["z"], S["n"], S["r"], S["h_prev"]
    expected = {
        (): z,
        ("W_hz",): (h_prev - n) * z * (1 - z),
        ("W_hn", "diag"): None,
        ("W_hn", "diag", "W_hr"): None,
    }
    got = {}
    for term in d.jacobian_terms("h", "h_prev"):
        key = tuple(v if k == "mat" else "diag" for k, v in term[1:])
        got[key] = term
    assert set(got) == set(expected)
    assert sp.expand(got[()][0][1] - z) == 0
    assert sp.expand(got[("W_hz",)][0][1] - expected[("W_hz",)]) == 0
    outer = (1 - z) * (1 - n**2)
    assert sp.expand(got[("W_hn", "diag")][0][1] - outer) == 0 and got[("W_hn", "diag")][2][1] == r
    assert sp.expand(got[("W_hn", "diag", "W_hr")][2][1] - h_prev * r * (1 - r)) == 0


def test_gru_conventions_are_different_functions():
    """Reset before (Cho) and after (PyTorch) the matmul: same weights, different outputs."""
    cho, torch_gru = symlstm.load("gru_cho"), symlstm.load("gru")
    params = torch_gru.init_params(3, 4, seed=1)
    cho_params = {"W_ih": params["W_ih"], "W_hh": params["W_hh"][:8], "W_hn": params["W_hh"][8:],
                  "b": params["b_ih"] + params["b_hh"]}  # fmt: skip
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    h0 = (np.random.default_rng(1).standard_normal((2, 4)),)
    y1, _, _ = torch_gru.forward(params, x, h0)
    y2, _, _ = cho.forward(cho_params, x, h0)
    assert np.abs(y1 - y2).max() > 1e-3
    params["b_hh"][8:] = 0.0  # with b_hn = 0 they agree at the first step only when h0 = 0
    y1, _, _ = torch_gru.forward(params, x[:1])
    y2, _, _ = cho.forward({**cho_params, "b": params["b_ih"] + params["b_hh"]}, x[:1])
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-14)


def test_rnn_relu_derivative_is_the_step_of_its_output():
    d = symlstm.derive("rnn_relu")
    assert d.jacobian("h", "h_prev") == sp.MatMul(Diag(step(S["h"])), sp.MatrixSymbol("W_hh", H, H))


def test_every_cell_has_a_source_and_a_title():
    for name in symlstm.CELLS:
        spec = symlstm.cell(name)
        assert spec.source and spec.title != name, name


def test_cell_lookup_is_fast():
    import time

    start = time.perf_counter()
    for name in symlstm.CELLS:
        symlstm.cell(name)
    assert time.perf_counter() - start < 0.5


# -- user-defined cells ---------------------------------------------------------------------------------


def _example():
    path = ROOT / "derivations" / "custom_cell.py"
    spec = importlib.util.spec_from_file_location("custom_cell_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_user_cell_example_is_proved_generated_and_checked(tmp_path, monkeypatch):
    example = _example()
    spec = example.build()
    assert "atan_gate" not in symlstm.CELLS  # importing the example registers nothing
    d = symlstm.derive(spec)
    # the unknown activation's derivative comes from SymPy: d/da 2/pi atan(a) = 2 / (pi (1 + a^2))
    a_c = sp.Symbol("a_c", real=True)
    assert sp.simplify(d.partial(spec.node("cand"), "a_c") - 2 / (sp.pi * (1 + a_c**2))) == 0
    assert all(r.ok for r in prove_all(d))
    report = check_full_fd(make_problem(symlstm.load(spec), 2, 3, 4, 2, seed=3))
    assert report.ok, str(report)
    monkeypatch.setattr(symlstm.cells, "CELLS", dict(symlstm.CELLS))
    assert example.main(["--out", str(tmp_path)]) == 0
    written = (tmp_path / "numpy" / "atan_gate.py").read_text()
    assert written == render_numpy(d)


def _toy(name="toy"):
    cell = Cell(name)
    return cell, cell.input("x"), cell.state("h")


def test_ill_formed_specs_are_rejected_with_what_is_expected():
    cell, x, h_prev = _toy()
    with pytest.raises(SpecError, match="undefined symbol 'later'"):  # a forward reference: no cycles
        cell.elementwise("h", tanh(sp.Symbol("later", real=True)))
    with pytest.raises(SpecError, match="is a Python keyword"):
        Cell("lambda")
    with pytest.raises(SpecError, match="not a safe identifier"):
        Cell("my-cell")
    cell, x, h_prev = _toy()
    cell.linear("a", {"W": x})
    with pytest.raises(SpecError, match="used with shapes"):  # W would be (H, I) and (H, H)
        cell.linear("b", {"W": h_prev})
    cell, x, h_prev = _toy()
    a = cell.linear("a", {"W": x, "U": h_prev})
    cell.update(h=cell.elementwise("h", tanh(a)))
    cell.fuse("WU", ["W", "U"])
    with pytest.raises(SpecError, match="mixes shapes"):
        cell.build()


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (sp.Abs, "not differentiable everywhere"),
        (lambda a: sp.Max(a, 0), "not differentiable everywhere"),
        (sp.erf, "cannot be computed with numpy alone"),
        (lambda a: sp.besselj(0, a), "cannot be computed with numpy alone"),
        (lambda a: sp.Function("mystery")(a), "undefined function"),
    ],
)
def test_unsupported_constructs_are_rejected_with_what_is_supported(fn, message):
    cell, x, _ = _toy()
    a = cell.linear("a", {"W": x})
    with pytest.raises(SpecError, match=message) as err:
        cell.elementwise("h", fn(a))
    assert "'toy'" in str(err.value) and "'h'" in str(err.value)


def test_a_bad_cell_in_the_registry_stops_generation_before_any_file_is_written(tmp_path, monkeypatch):
    def broken() -> CellSpec:
        cell, x, _ = _toy("broken")
        cell.elementwise("h", tanh(x) + sp.Symbol("nowhere", real=True))
        return cell.build()

    out = tmp_path / "generated"
    monkeypatch.setitem(symlstm.cells.CELLS, "broken", broken)
    with pytest.raises(SpecError, match="undefined symbol 'nowhere'"):
        symlstm.generate(out, ["rnn", "broken"])
    assert not out.exists() or not any(out.rglob("*.py"))
