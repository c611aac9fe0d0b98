"""The emission decisions that make the generated code fast, checked on the printed lines.

Correctness of the same code is covered by the gradient, torch and checker tests; these pin the
structure so that a change which quietly undoes an optimisation fails here.
"""

from __future__ import annotations

import re

import pytest

import symlstm
from symlstm.codegen import plan_numpy


@pytest.fixture(scope="module")
def plans():
    return {name: plan_numpy(symlstm.derive(name)) for name in ("lstm", "gru", "rnn")}


def _count(lines: list[str], text: str) -> int:
    return sum(line.count(text) for line in lines if not line.lstrip().startswith("#"))


def test_one_tanh_covers_all_lstm_gates(plans):
    step = plans["lstm"].forward_step
    assert _count(step, "np.tanh(") == 2  # the four gates at once, then tanh(c)
    assert "gates_i_f_g_o = buf_W_ih[t]" in step
    assert _count(step, "*= 0.5") == 2 and _count(step, "+= 0.5") == 2  # [i, f] and [o]
    setup = plans["lstm"].forward_setup
    assert "W_hh[: 2 * H] *= 0.5" in setup and "W_hh[3 * H :] *= 0.5" in setup
    assert not any("W_hh[2 * H : 3 * H]" in line for line in setup)  # g is a tanh gate: unscaled


def test_gates_are_cached_in_the_projection_buffer(plans):
    keys = plans["lstm"].cache_keys
    assert keys == ["seq_h", "seq_c", "buf_W_ih", "cache_tanh_c"]
    assert plans["gru"].cache_keys == ["seq_h", "buf_W_ih", "cache_u_n"]


def test_gru_backward_computes_the_shared_factor_once(plans):
    step = plans["gru"].backward_step
    assert _count(step, "np.square(n") == 1  # d_n*(1 - n**2): once, into d_a_n
    assert "np.multiply(d_a_n, u_n, out=d_r)" in step
    assert "np.multiply(d_a_n, r, out=d_u_n)" in step


def test_adjacent_sigmoid_adjoints_share_one_call(plans):
    step = plans["lstm"].backward_step
    assert "np.subtract(1, gates_i_f, out=d_pre_i_f)" in step
    assert _count(step, "np.subtract(1, i,") == 0 and _count(step, "np.subtract(1, f,") == 0


def test_block_views_are_made_before_the_loops(plans):
    """`i = buf_W_ih[t, 0]` costs a tuple index per step; `i = i_seq[t]` a plain index."""
    for plan in plans.values():
        for line in plan.forward_step + plan.backward_step:
            assert not re.match(r"^\w+ = \w+\[t, \d+\]$", line), line
    assert "i = i_seq[t]" in plans["lstm"].backward_step
    assert "i_seq = buf_W_ih[:, 0]" in plans["lstm"].backward_setup


@pytest.mark.parametrize("name", sorted(symlstm.CELLS))
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
    plan = plan_numpy(symlstm.derive(name))
    for key in plan.cache_keys:
        if key.startswith("buf_"):
            buf = cache[key]
            G = buf.shape[1]
            assert buf.ndim == 4 and buf.shape == (T, G, B, H), (key, buf.shape)
            runs = [(t, k, j) for t in range(T) for k in range(G) for j in range(k + 1, G + 1)]
            assert all(buf[t, k:j].flags.c_contiguous for t, k, j in runs)
    for line in plan.backward_setup:  # a step's adjoints: one contiguous (G, B, H) scratch
        if line.startswith("d_buf_") and "np.empty" in line:
            assert re.search(r"np\.empty\(\(\d+, B, H\)", line), line


@pytest.mark.parametrize("name", sorted(symlstm.CELLS))
def test_every_cell_plans_without_allocating_in_the_loop(name):
    plan = plan_numpy(symlstm.derive(name))
    for line in plan.forward_step + plan.backward_step:
        assert "np.empty" not in line and "np.zeros" not in line and ".copy()" not in line, line
