"""The emission decisions that make the generated code fast, checked on the printed lines.

Correctness of the same code is covered by the gradient, torch and checker tests; these pin the
structure so that a change which quietly undoes an optimisation fails here.
"""

from __future__ import annotations

import re

import pytest

import symlstm
from symlstm.backends.numpy import numpy_module

from .conftest import FUSED_CELLS


@pytest.fixture(scope="module")
def plans():
    return {name: numpy_module(symlstm.derive(name)) for name in ("lstm", "gru", "rnn")}


def _count(lines: list[str], text: str) -> int:
    return sum(line.count(text) for line in lines if not line.lstrip().startswith("#"))


def test_one_tanh_covers_all_lstm_gates(plans):
    step = plans["lstm"].forward_step
    assert _count(step, "np.tanh(") == 2  # the four gates at once, then tanh(c)
    assert "gates_i_f_g_o = buf_W_ih[t]" in step
    # 0.5 * tanh + 0.5 on [i, f] and [o], identity on g: one scale and one shift over the four blocks
    assert "gates_i_f_g_o *= buf_scale_i_f_g_o" in step and "gates_i_f_g_o += buf_shift_i_f_g_o" in step
    assert _count(step, "0.5") == 0
    setup = plans["lstm"].forward_setup
    assert "W_hh[: 2 * H] *= 0.5" in setup and "W_hh[3 * H :] *= 0.5" in setup
    assert not any("W_hh[2 * H : 3 * H]" in line for line in setup)  # g is a tanh gate: unscaled


def test_gates_are_cached_in_the_projection_buffer(plans):
    keys = plans["lstm"].cache_keys
    assert keys == ["seq_h", "seq_c", "buf_W_ih", "cache_tanh_c"]
    assert plans["gru"].cache_keys == ["seq_h", "buf_W_ih", "cache_u_n"]


def _loop_calls(step: list[str]) -> list[str]:
    """The NumPy calls a backward step makes at every step (not those of the once-per-chunk block)."""
    return [
        line
        for line in step
        if not line.startswith((" ", "#")) and ("np." in line or re.search(r" [-+*/]= ", line))
    ]


def test_gru_backward_step_is_one_multiply_for_all_adjoints(plans):
    """All of GRU's linear-node adjoints are d_h times a coefficient of forward values, and one buffer
    holds them once, W_hh's blocks [a_r, a_z, u_n] first: one multiply fills the step's row, the
    recurrent GEMM reads its first three blocks, and nothing is copied between buffers. (1 - n**2) is
    computed per chunk of steps, not per step."""
    step = plans["gru"].backward_step
    calls = _loop_calls(step)
    assert "np.multiply(coef_step[0:4], d_h, out=grad_step)" in calls
    assert "np.matmul(grad_rows[t, :, : 3 * H], W_hh, out=buf_0)" in calls
    assert len(calls) == 5, calls  # din_h, the multiply, d_h*z, the GEMM and its add
    assert all("np.square" not in line for line in calls)
    assert sum(line.strip().startswith("np.square(coef_of_n") for line in step) == 1
    end = plans["gru"].backward_end
    assert "d_b_hh = grad_sums[: 3 * H].copy()" in end  # b_hh: W_hh's blocks, in order


def test_lstm_backward_step_makes_seven_calls(plans):
    """din_h, d_c (a multiply and an add), [d_a_i, d_a_f, d_a_g] at once, d_a_o, the recurrent GEMM,
    d_c_prev. The adjoints are written straight into their row of grad_rows: no copy per step."""
    step = plans["lstm"].backward_step
    calls = _loop_calls(step)
    assert "np.multiply(coef_step[0:3], d_c, out=grad_step[0:3])" in calls
    assert "grad_step = grad_rows_g[t]" in step
    assert len(calls) == 7, calls


def test_block_views_are_made_before_the_loops(plans):
    """`i = buf_W_ih[t, 0]` costs a tuple index per step; `i = i_seq[t]` a plain index."""
    for plan in plans.values():
        for line in plan.forward_step + plan.backward_step:
            assert not re.match(r"^\w+ = \w+\[t, \d+\]$", line), line
    assert "f = f_seq[t]" in plans["lstm"].backward_step
    assert "f_seq = buf_W_ih[:, 1]" in plans["lstm"].backward_setup


@pytest.mark.parametrize("name", FUSED_CELLS)
def test_gate_buffers_are_gate_major(name):
    """Projection and adjoint buffers are (T, G, B, H): every gate block and every run of adjacent
    blocks at a step is one contiguous array, so the per-gate ufuncs take NumPy's contiguous loops
    (strided (B, H) views of a (T, B, G*H) buffer ran 1.5-3.5x slower per element)."""
    import numpy as np

    mod = symlstm.load(name)
    I, H, T, B = 3, 4, 5, 2
    if mod.SAME_SIZE:
        I = H
    params = mod.init_params(I, H, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    _, _, cache = mod.forward(params, x)
    plan = numpy_module(symlstm.derive(name))
    for key in plan.cache_keys:
        if key.startswith("buf_"):
            buf = cache[key]
            G = buf.shape[1]
            assert buf.ndim == 4 and buf.shape == (T, G, B, H), (key, buf.shape)
            runs = [(t, k, j) for t in range(T) for k in range(G) for j in range(k + 1, G + 1)]
            assert all(buf[t, k:j].flags.c_contiguous for t, k, j in runs)
    # a step's adjoints: one (B, U * H) row of one buffer, written through a (U, B, H) view
    prefix = 'grad_rows = _array(workspace, "backward.grad_rows", (T, B, '
    assert sum(line.startswith(prefix) for line in plan.backward_setup) == 1


@pytest.mark.parametrize("name", sorted(symlstm.CELLS))
def test_every_cell_plans_without_allocating_in_the_loop(name):
    plan = numpy_module(symlstm.derive(name))
    for line in plan.forward_step + plan.backward_step:
        assert "np.empty" not in line and "np.zeros" not in line and ".copy()" not in line, line
