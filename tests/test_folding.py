"""The folded, factored backward step (`symlstm.folding`) is the derived one, checked symbolically."""

from __future__ import annotations

import pytest
import sympy as sp

import symlstm
from symlstm.folding import factor
from symlstm.plan import coefficient, plan_cell
from tests.conftest import CELL_NAMES

R = dict(real=True)


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, **R)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_every_kept_adjoint_equals_its_derivation(name):
    """sum of coefficient * adjoint, the coefficients put back from their slots, equals the derived
    elementwise adjoint with the folded adjoints put back: for every kept adjoint of every cell."""
    d = symlstm.derive(name)
    plan = plan_cell(d).step
    slots = {coefficient(j): c for j, c in enumerate(plan.coefficients)}
    folded = {_sym(f"d_{v}"): e for v, e in plan.folding.folded.items()}
    for a in d.vjp:
        original = sp.sympify(a.elementwise)
        for _ in range(len(folded) + 1):  # put back folded adjoints until none is left
            original = original.xreplace(folded)
        if a.vector in plan.folding.folded:
            assert not set(folded) & plan.folding.folded[a.vector].free_symbols
            continue
        rewritten = plan.exprs[a.vector].xreplace(slots)
        assert sp.expand(rewritten - original) == 0, (name, a.vector, rewritten, original)
        assert not any(s.name.startswith("coef_") for c in plan.coefficients for s in c.free_symbols)


def test_lstm_gate_adjoints_are_folded_and_its_carry_is_kept():
    plan = plan_cell(symlstm.derive("lstm")).step
    assert set(plan.folding.folded) == {"o", "g", "f", "i"}
    assert plan.exprs["c_prev"] == _sym("d_c") * _sym("f")  # diag(f): a plain product, no coefficient
    o, tanh_c, g, i = (_sym(n) for n in ("o", "tanh_c", "g", "i"))
    assert o * (1 - tanh_c**2) in plan.coefficients and g * i * (1 - i) in plan.coefficients
    run = plan.runs["a_g"]  # blocks i, f, g of the adjoint buffer, one multiply by d_c, due at a_g
    assert run.vectors == ("a_i", "a_f", "a_g") and run.factor == _sym("d_c")


def test_factor_rejects_what_is_not_linear_in_the_adjoints():
    d_h, o = _sym("d_h"), _sym("o")
    assert factor(d_h * o * (1 - o)) == [(d_h, o * (1 - o))]
    with pytest.raises(ValueError, match="not linear and homogeneous"):
        factor(d_h**2 * o)
    with pytest.raises(ValueError, match="not linear and homogeneous"):
        factor(d_h * o + o)
