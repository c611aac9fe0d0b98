"""Property-based tests (hypothesis) for every registered cell, over random sizes, seeds, dtypes and
sequence lengths:

* a sequence run in one `forward` equals the same steps run one `forward` call at a time;
* `backward` matches central finite differences of every entry (tiny sizes);
* truncated BPTT: a sequence split in two, the state carried forward and its gradient carried back,
  gives the gradients of the whole sequence.

Examples are derandomised (the same on every run) and few per cell, so the file stays fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symlstm
from symlstm.testing import check_full_fd, check_sizes_of, dims_of, make_problem, state_shapes
from tests.conftest import CELL_NAMES

PROPERTY = settings(max_examples=10, deadline=None, derandomize=True, database=None)

# The same arithmetic in another grouping (one GEMM for T steps instead of T GEMMs; sums over time in
# two parts) may round differently: a few ulps of the dtype, accumulated over at most a few steps.
REGROUPING_RTOL = {np.float64: 1e-11, np.float32: 2e-5}


@st.composite
def problems(draw, min_steps: int = 1, max_steps: int = 5, max_batch: int = 3):
    """(I, H, T, B, dtype, seed) for a cell; I == H is forced later where the cell needs it."""
    return (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        draw(st.integers(min_steps, max_steps)),
        draw(st.integers(1, max_batch)),
        draw(st.sampled_from([np.float64, np.float32])),
        draw(st.integers(0, 2**16)),
    )


def _setup(name: str, drawn):
    m = symlstm.load(name)
    I, H, T, B, dtype, seed = drawn
    if m.SAME_SIZE:
        I = H
    rng = np.random.default_rng(seed)
    extra = check_sizes_of(m, H)
    params = m.init_params(I, H, seed=seed, dtype=dtype, **extra)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    shapes = state_shapes(m, B, dims_of(m, I, H, extra), len(m.STATES))
    state0 = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    return m, params, x, state0, rng


def _close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    rtol = REGROUPING_RTOL[expected.dtype.type]
    scale = float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def _check_steps(m, params, x, state0) -> None:
    name = m.CELL
    y, state, _ = m.forward(params, x, state0)
    carried = state0
    for t in range(x.shape[0]):
        y_t, carried, _ = m.forward(params, x[t : t + 1], carried)
        _close(y_t[0], y[t], f"{name}: y[{t}] of the sequence vs the single step")
    for k, (a, b) in enumerate(zip(carried, state)):
        _close(a, b, f"{name}: final state {m.STATES[k]}")
    ys, _, _, _ = m.jvp(params, x, state0)  # the independent, unfused implementation
    _close(ys, y, f"{name}: jvp's y vs forward's y")


@pytest.mark.parametrize("name", CELL_NAMES)
@PROPERTY
@given(drawn=problems())
def test_sequence_equals_repeated_single_steps(name, drawn):
    m, params, x, state0, _ = _setup(name, drawn)
    _check_steps(m, params, x, state0)


@pytest.mark.parametrize("name", CELL_NAMES)
@PROPERTY
@given(drawn=problems(max_steps=4, max_batch=2), with_dstate=st.booleans())
def test_backward_matches_finite_differences(name, drawn, with_dstate):
    m = symlstm.load(name)
    I, H, T, B, dtype, seed = drawn
    problem = make_problem(
        m, H if m.SAME_SIZE else I, H, T, B, dtype=dtype, seed=seed, with_dstate=with_dstate
    )
    report = check_full_fd(problem)
    assert report.ok, str(report)


def _check_truncated(m, params, x, state0, rng, k: int) -> None:
    name, T, dtype = m.CELL, x.shape[0], x.dtype
    y, state, cache = m.forward(params, x, state0)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in state0)

    dparams, dx, dstate0 = m.backward(params, cache, dy, dstate)

    y1, state_k, cache1 = m.forward(params, x[:k], state0)
    y2, state_t, cache2 = m.forward(params, x[k:], state_k)
    dparams2, dx2, dstate_k = m.backward(params, cache2, dy[k:], dstate)
    dparams1, dx1, dstate0_split = m.backward(params, cache1, dy[:k], dstate_k)

    _close(np.concatenate([y1, y2]), y, f"{name}: y split at {k} of {T}")
    for a, b in zip(state_t, state):
        _close(a, b, f"{name}: final state split at {k}")
    _close(np.concatenate([dx1, dx2]), dx, f"{name}: dx split at {k} of {T}")
    for key in params:
        _close(dparams1[key] + dparams2[key], dparams[key], f"{name}: d{key} split at {k} of {T}")
    for j, (a, b) in enumerate(zip(dstate0_split, dstate0)):
        _close(a, b, f"{name}: dstate0[{j}] split at {k} of {T}")


@pytest.mark.parametrize("name", CELL_NAMES)
@PROPERTY
@given(drawn=problems(min_steps=0, max_steps=6), split=st.integers(0, 6))
def test_truncated_bptt_equals_whole_sequence(name, drawn, split):
    m, params, x, state0, rng = _setup(name, drawn)
    _check_truncated(m, params, x, state0, rng, min(split, x.shape[0]))  # 0 and T: an empty half


class _Planted:
    """lstm with one planted fault: `forward` ignores state0, or `backward` ignores dstate."""

    def __init__(self, fault: str):
        self._m, self.fault = symlstm.load("lstm"), fault
        self.CELL, self.STATES = "lstm-" + fault, self._m.STATES

    def forward(self, params, x, state0=None):
        return self._m.forward(params, x, None if self.fault == "state0" else state0)

    def backward(self, params, cache, dy, dstate=None):
        return self._m.backward(params, cache, dy, None if self.fault == "dstate" else dstate)

    def jvp(self, params, x, state0=None):
        return self._m.jvp(params, x, state0)


def test_the_properties_can_fail():
    """Planted faults that the properties must catch (a check that cannot fail checks nothing)."""
    _, params, x, state0, rng = _setup("lstm", (2, 3, 4, 2, np.float64, 7))
    with pytest.raises(AssertionError, match="y\\[1\\] of the sequence vs the single step"):
        _check_steps(_Planted("state0"), params, x, state0)
    with pytest.raises(AssertionError, match="split at 2 of 4"):
        _check_truncated(_Planted("dstate"), params, x, state0, rng, 2)
    _check_truncated(_Planted("none"), params, x, state0, rng, 2)
