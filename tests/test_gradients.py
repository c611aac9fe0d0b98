"""Generated backward == central finite differences of the generated forward, for every cell."""

from __future__ import annotations

import numpy as np
import pytest

import symlstm
from symlstm.testing import TOLERANCES, check_full_fd, make_problem
from tests.conftest import CELL_NAMES


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("steps", [1, 3, 7])
@pytest.mark.parametrize("with_dstate", [True, False])
def test_full_fd_float64(name, steps, with_dstate):
    module = symlstm.load(name)
    size = 3 if symlstm.cell(name).same_size else 2
    problem = make_problem(module, size, 3, steps, 2, seed=steps, with_dstate=with_dstate)
    report = check_full_fd(problem)
    assert report.ok, str(report)
    assert TOLERANCES[np.float64].rtol == 1e-7  # the bound; never loosened


@pytest.mark.parametrize("name", CELL_NAMES)
def test_full_fd_float32(name):
    module = symlstm.load(name)
    size = 3 if symlstm.cell(name).same_size else 2
    problem = make_problem(module, size, 3, 4, 2, dtype=np.float32, seed=11)
    report = check_full_fd(problem)
    assert report.ok, str(report)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_float32_outputs_stay_float32(name):
    module = symlstm.load(name)
    problem = make_problem(module, 3, 3, 4, 2, dtype=np.float32)
    y, state, _ = module.forward(problem.params, problem.x, problem.state0)
    dparams, dx, dstate0 = problem.gradients()
    arrays = [y, *state, dx, *dstate0, *dparams.values()]
    assert all(a.dtype == np.float32 for a in arrays)


def test_checker_reports_a_wrong_gradient():
    """check_full_fd can fail: a backward with a planted error is reported with its block and index."""
    module = symlstm.load("lstm")

    class Broken:
        STATES = module.STATES
        init_params = staticmethod(module.init_params)
        forward = staticmethod(module.forward)

        @staticmethod
        def backward(params, cache, dy, dstate=None):
            dparams, dx, dstate0 = module.backward(params, cache, dy, dstate)
            dparams["W_hh"] = dparams["W_hh"].copy()
            dparams["W_hh"][1, 2] += 1e-3
            return dparams, dx, dstate0

    report = check_full_fd(make_problem(Broken, 2, 3, 3, 2, name="broken-lstm"))
    assert not report.ok
    bad = [b for b in report.blocks if not b.ok]
    assert [b.block for b in bad] == ["W_hh"] and bad[0].index == (1, 2)
    assert "W_hh" in str(report) and "FAILED" in str(report)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_jvp_forward_matches_fused_forward_and_adjoint_identity(name):
    module = symlstm.load(name)
    p = make_problem(module, 3, 4, 6, 3, seed=5)
    rng = np.random.default_rng(7)
    u = {k: rng.standard_normal(v.shape) for k, v in p.params.items()}
    ux = rng.standard_normal(p.x.shape)
    us = tuple(rng.standard_normal(s.shape) for s in p.state0)
    y, _state, ty, tstate = module.jvp(p.params, p.x, p.state0, u, ux, us)
    y2, _state2, _ = module.forward(p.params, p.x, p.state0)
    np.testing.assert_allclose(y, y2, rtol=0, atol=1e-13)
    dparams, dx, dstate0 = p.gradients()
    lhs = np.sum(ty * p.w_y) + sum(np.sum(a * b) for a, b in zip(tstate, p.w_state))
    rhs = sum(np.sum(u[k] * dparams[k]) for k in u) + np.sum(ux * dx)
    rhs += sum(np.sum(a * b) for a, b in zip(us, dstate0))
    assert abs(lhs - rhs) <= TOLERANCES[np.float64].adjoint_rtol * max(abs(lhs), 1.0)
