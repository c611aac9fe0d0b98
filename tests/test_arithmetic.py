"""The reference module in other arithmetics (`symlstm.arithmetic`): 50-digit values, and the rounding
bounds that `check_same` falls back on where a cell's values cancel."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import symlstm
from symlstm import arithmetic
from symlstm.arithmetic import Bounded, precise_run, rounding_run
from symlstm.testing import _labelled, check_same

# A drawn cell whose values cancel (a polynomial read of x, sin near a multiple of pi scaled by n1**2):
# over ten steps two correct modules differ by 3e-10 of y's largest value, 30 times `same_rtol`.
CANCELLING = """
cell = Cell('fuzz', title='A drawn cell', same_size=True)
x = cell.input('x')
s0_prev = cell.state('s0')
n0 = cell.elementwise('n0', s0_prev*x)
n1 = cell.elementwise('n1', n0*(n0 + 3) - n0 - 2*s0_prev + 2*x - 1)
n2 = cell.elementwise('n2', n1**2)
n3 = cell.elementwise('n3', sp.sin(-n1 + x + relu(x)))
n4 = cell.elementwise('n4', n2)
n5 = cell.linear('n5', {'W5_0': x, 'W5_1': n0, 'W5_2': n0}, biases=['b5_0'])
u_s0 = cell.elementwise('u_s0', tanh(2**tanh(n1*s0_prev) + n2*n3 + sp.sin(n1)))
cell.update(s0=u_s0)
"""


def _cancelling():
    scope: dict = {}
    exec("import sympy as sp\nfrom symlstm import Cell, relu, sigmoid, tanh\n" + CANCELLING, scope)
    return scope["cell"].build()


def _modules(cell):
    return symlstm.load(cell), symlstm.load(cell, backend="reference")


def _point(reference, I, H, T, B, seed):
    rng = np.random.default_rng(seed)
    params = reference.init_params(I, H, seed=seed)
    n = len(reference.STATES)

    def states():
        return tuple(rng.standard_normal((B, H)) for _ in range(n))

    x, state0, dy, dstate = rng.standard_normal((T, B, I)), states(), rng.standard_normal((T, B, H)), states()
    direction = (
        {k: rng.standard_normal(v.shape) for k, v in params.items()},
        rng.standard_normal((T, B, I)),
        states(),
    )
    return params, x, state0, dy, dstate, direction


def _results(module, point, states):
    params, x, state0, dy, dstate, direction = point
    y, state, cache = module.forward(params, x, state0)
    grads = module.backward(params, cache, dy, dstate)
    return dict(_labelled(states, y, state, grads, module.jvp(params, x, state0, *direction)))


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_relu", "cancelling"])
def test_the_rounding_bound_covers_each_modules_true_error(name):
    """Every result of both modules is within the reference's first-order rounding bound of its value
    in 50 digits (up to the half ulp of rounding that value to a float)."""
    module, reference = _modules(_cancelling() if name == "cancelling" else name)
    point = _point(reference, 4 if name == "cancelling" else 3, 4, 10, 8, seed=22)
    states = reference.STATES
    truth = dict(_labelled(states, *precise_run(reference, point)))
    bound = dict(_labelled(states, *rounding_run(reference, point, np.float64)))
    for which in (module, reference):
        got = _results(which, point, states)
        for label, exact in truth.items():
            error = np.abs(got[label] - exact)
            assert np.all(error <= bound[label] + np.spacing(np.abs(exact)) / 2), (name, label)
    # and the 50-digit values are the reference's to rounding
    assert all(
        np.allclose(_results(reference, point, states)[k], v, rtol=1e-8, atol=1e-12) for k, v in truth.items()
    )


def test_a_bound_that_does_not_carry_errors_through_operations_does_not_cover(monkeypatch):
    """The coverage test above has teeth: a bound that counts each operation's own rounding but does
    not carry its operands' errors through it (a planted bug) is exceeded by the true errors."""
    reference = symlstm.load("lstm", backend="reference")
    point = _point(reference, 3, 4, 10, 8, seed=22)
    monkeypatch.setattr(
        Bounded, "_made", lambda self, v, e, ulps=1.0: Bounded(v, ulps * self.u * abs(v), self.u)
    )
    truth = dict(_labelled(reference.STATES, *precise_run(reference, point)))
    bound = dict(_labelled(reference.STATES, *rounding_run(reference, point, np.float64)))
    got = _results(reference, point, reference.STATES)
    assert any(np.any(np.abs(got[k] - v) > bound[k] + np.spacing(np.abs(v)) / 2) for k, v in truth.items())


def _scaled_dx(module, factor):
    def backward(params, cache, dy, dstate=None):
        dparams, dx, dstate0 = module.backward(params, cache, dy, dstate)
        return dparams, dx * factor, dstate0

    names = ("CELL", "STATES", "BLOCKS", "init_params", "forward", "jvp")
    return SimpleNamespace(**{k: getattr(module, k) for k in names}, backward=backward)


def test_check_same_judges_a_cancelling_cell_to_its_rounding_bound_and_still_fails_a_wrong_module():
    """The cancelling cell's modules differ by 3e-10 (relative) in y at this point, more than
    `same_rtol`: within the rounding bound, so they agree, and the report says so. A dx off by 1e-7
    (relative) still fails there, and for a cell without cancellation (lstm) a dx off by 1e-9 fails."""
    module, reference = _modules(_cancelling())
    report = check_same(module, reference, 4, 4, steps=10, batch=8, seed=22)
    assert report.ok, str(report)
    judged = {b.block for b in report.blocks if b.diagnosis.startswith("within rounding")}
    assert {"y", "dx"} <= judged, str(report)
    wrong = check_same(_scaled_dx(module, 1 + 1e-7), reference, 4, 4, steps=10, batch=8, seed=22)
    assert [b.block for b in wrong.failures] == ["dx"], str(wrong)
    lstm, lstm_reference = _modules("lstm")
    wrong = check_same(_scaled_dx(lstm, 1 + 1e-9), lstm_reference, 3, 4, steps=5, batch=2)
    assert [b.block for b in wrong.failures] == ["dx"], str(wrong)


def test_a_step_whose_argument_rounding_may_move_across_zero_is_bounded_by_its_jump():
    step = arithmetic._bounded_function("step")
    u = 2.0**-53
    assert step(Bounded(0.0, 0.0, u)).e == 0.0  # an exact zero: relu'(0) = 0, exactly
    assert step(Bounded(1e-17, 1e-16, u)).e == 1.0
    assert step(Bounded(0.5, 1e-16, u)).e == 0.0


def test_a_bounded_constant_meets_an_array_entry_by_entry():
    """`const_0 + n2` in a reference module: a Bounded constant on the left of an object array (found by
    the fuzzer: it raised inside `same`'s second opinion)."""
    u = 2.0**-53
    constant = Bounded(1.5, u * 1.5, u)
    array = np.array([Bounded(2.0, 0.0, u), Bounded(-1.0, 0.0, u)], dtype=object)
    for result in (constant + array, constant - array, constant * array, constant / array, constant**array):
        assert result.shape == (2,) and all(isinstance(v, Bounded) for v in result)
    assert [v.v for v in constant + array] == [3.5, 0.5]
