"""`workspace=`: forward and backward reuse the caller's arrays call after call, with the same results."""

from __future__ import annotations

import numpy as np
import pytest

import symlstm

from .conftest import FUSED_CELLS


def _problem(mod, T, B, seed):
    I, H = (4, 4) if mod.SAME_SIZE else (3, 4)
    rng = np.random.default_rng(seed)
    params = mod.init_params(I, H, seed=seed)
    return params, rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "gru_cho", "peephole", "greff_fgr"])
def test_results_equal_those_without_a_workspace_and_arrays_are_reused(name):
    mod = symlstm.load(name)
    ws = {}
    kept = kept_y = None
    for seed in (0, 1):  # the second call runs in the first one's arrays
        params, x, dy = _problem(mod, 5, 3, seed)
        y, state, cache = mod.forward(params, x, workspace=ws)
        grads = mod.backward(params, cache, dy, workspace=ws)
        y0, state0, cache0 = mod.forward(params, x)
        grads0 = mod.backward(params, cache0, dy)
        np.testing.assert_array_equal(y, y0)
        for a, b in zip(state, state0):
            np.testing.assert_array_equal(a, b)
        for k in grads0[0]:
            np.testing.assert_array_equal(grads[0][k], grads0[0][k])
        np.testing.assert_array_equal(grads[1], grads0[1])
        # y is a fresh read-only view each call, of memory the workspace keeps
        arrays = {k: v for k, v in cache.items() if isinstance(v, np.ndarray) and k not in ("x", "y")}
        if kept is not None:
            assert all(arrays[k] is kept[k] for k in arrays), "the cache arrays were not reused"
            assert np.shares_memory(cache["y"], kept_y), "y is not a view of the reused arrays"
        kept, kept_y = arrays, cache["y"]
    assert any(key.startswith("backward.") for key in ws) and any(key.startswith("forward.") for key in ws)


def test_a_cache_overwritten_by_a_later_forward_is_refused():
    mod = symlstm.load("lstm")
    ws = {}
    params, x, dy = _problem(mod, 4, 2, 0)
    _, _, first = mod.forward(params, x, workspace=ws)
    _, _, second = mod.forward(params, x[::-1].copy(), workspace=ws)
    with pytest.raises(ValueError, match="reused by a later forward with the same workspace"):
        mod.backward(params, first, dy)
    mod.backward(params, second, dy)  # the newest cache is fine
    _, _, other = mod.forward(params, x, workspace={})  # another workspace does not interfere
    mod.backward(params, other, dy)


def test_new_shapes_get_new_arrays():
    mod = symlstm.load("gru")
    ws = {}
    for T, B in ((5, 3), (7, 2), (5, 3)):
        params, x, dy = _problem(mod, T, B, T)
        _, _, cache = mod.forward(params, x, workspace=ws)
        assert cache["seq_h"].shape == (T + 1, B, 4)
        _, dx, _ = mod.backward(params, cache, dy, workspace=ws)
        _, _, cache0 = mod.forward(params, x)
        np.testing.assert_array_equal(dx, mod.backward(params, cache0, dy)[1])


def test_a_workspace_that_is_not_a_dict_is_refused():
    mod = symlstm.load("rnn")
    params, x, _ = _problem(mod, 2, 1, 0)
    with pytest.raises(TypeError, match=r"rnn: workspace must be a dict kept across calls, or None; got"):
        mod.forward(params, x, workspace=[])


def test_a_forward_refused_at_validation_leaves_the_older_cache_valid():
    mod = symlstm.load("lstm")
    ws = {}
    params, x, dy = _problem(mod, 4, 2, 0)
    _, _, cache = mod.forward(params, x, workspace=ws)
    with pytest.raises(ValueError):
        mod.forward(params, x[..., :2], workspace=ws)  # wrong input size: nothing written
    mod.backward(params, cache, dy)


@pytest.mark.parametrize("name", FUSED_CELLS)
def test_the_cache_is_claimed_before_the_first_array_is_taken(name):
    """A forward that fails part-way (check_finite on its outputs) has already written into the
    workspace: the older cache must be void by then, so the claim comes before every `_array`."""
    import inspect

    source = inspect.getsource(symlstm.load(name).forward)
    assert source.index("claim = _claim(workspace)") < source.index("_array(workspace")


@pytest.mark.parametrize("name", ["lstm", "gru", "peephole", "greff_fgr"])
@pytest.mark.parametrize("T", [3, 4])  # odd and even: a step swaps the incoming and outgoing state adjoints
def test_returned_gradients_are_not_workspace_arrays(name, T):
    """Gradients returned by one backward survive the next backward with the same workspace."""
    mod = symlstm.load(name)
    ws = {}
    params, x, dy = _problem(mod, T, 2, 0)
    _, _, cache = mod.forward(params, x, workspace=ws)
    dparams, dx, dstate0 = mod.backward(params, cache, dy, workspace=ws)
    kept = ({k: v.copy() for k, v in dparams.items()}, dx.copy(), [s.copy() for s in dstate0])
    _, _, cache = mod.forward(params, 2 * x, workspace=ws)
    mod.backward(params, cache, 3 * dy, workspace=ws)
    for k in dparams:
        np.testing.assert_array_equal(dparams[k], kept[0][k])
    np.testing.assert_array_equal(dx, kept[1])
    for a, b in zip(dstate0, kept[2]):
        np.testing.assert_array_equal(a, b)
