"""The JAX backend (`generated/jax/`): the derived forward, backward and tangent programs as scans,
differentiable through `jax.custom_vjp`. Equal to the reference module for every cell, its gradients
(`jax.grad` through `forward`) checked against finite differences by `jax.test_util.check_grads`, and
working under `jax.jit` and `jax.vmap`."""

from __future__ import annotations

import numpy as np
import pytest

import symlstm
from symlstm.backends import code_backend
from symlstm.testing import check_same
from tests.conftest import CELL_NAMES, require

jax = require("jax")
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

jax.config.update("jax_enable_x64", True)
BACKEND = code_backend("jax")


def sizes(module) -> tuple[int, int]:
    return (4, 4) if module.SAME_SIZE else (3, 4)


def problem(module, T=4, B=2, seed=0, dtype=np.float64):
    I, H = sizes(module)
    rng = np.random.default_rng(seed)
    params = {k: jnp.asarray(v) for k, v in module.init_params(I, H, seed=seed, dtype=dtype).items()}
    x = jnp.asarray(rng.standard_normal((T, B, I)).astype(dtype))
    state0 = tuple(jnp.asarray(rng.standard_normal((B, H)).astype(dtype)) for _ in module.STATES)
    return params, x, state0


@pytest.mark.parametrize("name", CELL_NAMES)
def test_equal_to_the_reference_module(name):
    module = BACKEND.checkable(symlstm.load(name, backend="jax"))
    I, H = sizes(module)
    report = check_same(module, symlstm.load(name, backend="reference"), I, H)
    assert report.ok, report


@pytest.mark.parametrize(
    "config",
    [dict(steps=1), dict(with_state0=False, with_dstate=False), dict(dtype=np.float32)],
    ids=["T=1", "None states", "float32"],
)
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_equal_to_the_reference_where_the_inputs_change(name, config):
    module = BACKEND.checkable(symlstm.load(name, backend="jax"))
    report = check_same(module, symlstm.load(name, backend="reference"), 3, 4, **config)
    assert report.ok, report


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "peephole"])
def test_gradients_through_forward_pass_check_grads(name):
    """`check_grads` compares reverse mode (the custom_vjp, i.e. the derived backward) with finite
    differences of forward, over params, x and state0."""
    module = symlstm.load(name, backend="jax")
    params, x, state0 = problem(module, T=3)

    def loss(params, x, state0):
        y, state = module.forward(params, x, state0)
        return jnp.sum(y * jnp.cos(y)) + sum(jnp.sum(s**2) for s in state)

    check_grads(loss, (params, x, state0), order=1, modes=["rev"], eps=1e-6)


def test_grad_through_forward_is_the_derived_backward():
    module = symlstm.load("lstm", backend="jax")
    params, x, state0 = problem(module)
    rng = np.random.default_rng(1)
    dy = jnp.asarray(rng.standard_normal((4, 2, 4)))
    dstate = tuple(jnp.asarray(rng.standard_normal((2, 4))) for _ in module.STATES)
    _, pullback = jax.vjp(module.forward, params, x, state0)
    got = pullback((dy, dstate))
    want = module.backward(params, x, state0, dy, dstate)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_jit_and_vmap():
    """Under jit the result is the eager one; vmap over a leading axis of x runs each sequence alone."""
    module = symlstm.load("gru", backend="jax")
    params, x, state0 = problem(module)
    y, _ = module.forward(params, x, state0)
    y_jit, _ = jax.jit(module.forward)(params, x, state0)
    np.testing.assert_allclose(np.asarray(y_jit), np.asarray(y), rtol=1e-13, atol=1e-14)
    xs = jnp.stack([x, 2 * x, -x])
    ys, _ = jax.vmap(lambda x: module.forward(params, x, state0))(xs)
    for k in range(3):
        y_k, _ = module.forward(params, xs[k], state0)
        np.testing.assert_allclose(np.asarray(ys[k]), np.asarray(y_k), rtol=1e-13, atol=1e-14)
    loss = lambda p: jnp.sum(module.forward(p, x, state0)[0] ** 2)  # noqa: E731
    grads = jax.jit(jax.grad(loss))(params)
    np.testing.assert_allclose(
        np.asarray(grads["W_hh"]), np.asarray(jax.grad(loss)(params)["W_hh"]), rtol=1e-12
    )


def test_a_user_cell_through_load():
    cell = symlstm.Cell("jax_user", same_size=True)
    x, h_prev = cell.input("x"), cell.state("h")
    w = cell.param("w")
    a = cell.linear("a", {"W": x, "U": h_prev}, biases=["b"])
    cell.update(h=cell.elementwise("h", symlstm.tanh(a) * symlstm.sigmoid(w * x) + 0.5 * h_prev))
    spec = cell.build()
    module = BACKEND.checkable(symlstm.load(spec, backend="jax"))
    assert check_same(module, symlstm.load(spec, backend="reference"), 3, 3).ok
    params, x, state0 = problem(module.module, T=3)
    check_grads(
        lambda p: jnp.sum(module.module.forward(p, x, state0)[0] ** 3), (params,), order=1, modes=["rev"]
    )


def test_bad_input_is_named():
    module = symlstm.load("lstm", backend="jax")
    params, x, state0 = problem(module)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, I\)"):
        module.forward(params, x[0])
    with pytest.raises(ValueError, match=r"params\['W_ih'\] \(input size 2, hidden size 4\) must have shape"):
        module.forward(params, x[:, :, :2])
    with pytest.raises(ValueError, match="must be a dict with the keys"):
        module.forward({"W_ih": params["W_ih"]}, x)
    with pytest.raises(TypeError, match="dtype float64 like x, got float32"):
        module.forward(params, x, tuple(s.astype(jnp.float32) for s in state0))
    with pytest.raises(ValueError, match=r"state0 must be a tuple of 2 arrays \('h', 'c'\)"):
        module.forward(params, x, state0[:1])


def test_the_module_imports_without_jax_and_says_what_to_install():
    import subprocess
    import sys

    from symlstm.build.load import module_path

    code = (
        "import sys, importlib.util\n"
        "sys.modules['jax'] = None  # as if jax were not installed\n"
        f"spec = importlib.util.spec_from_file_location('lstm_jax', {str(module_path('lstm', 'jax'))!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(sorted(module.init_params(2, 3)))\n"
        "module.forward(module.init_params(2, 3), None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "['W_hh', 'W_ih', 'b_hh', 'b_ih']" in proc.stdout
    assert "ImportError: lstm: this module needs jax: pip install 'symlstm[jax]'" in proc.stderr


@pytest.mark.parametrize("name", ["lstm", "gru", "mgu", "lstmp"])
def test_lengths_equal_the_reference_and_finite_differences(name):
    """lengths= (a full, two shorter and an empty sequence): equal to the reference module, which runs
    each sequence alone over its own steps, and its gradients to full finite differences."""
    from symlstm.testing import check_full_fd, make_problem

    from .test_lengths import LENGTHS, with_lengths

    module = BACKEND.checkable(symlstm.load(name, backend="jax"))
    ref = symlstm.load(name, backend="reference")
    I, H = sizes(module)
    report = check_same(with_lengths(module, LENGTHS), with_lengths(ref, LENGTHS), I, H, steps=5, batch=4)
    assert report.ok, report
    report = check_full_fd(make_problem(with_lengths(module, LENGTHS), I, H, steps=5, batch=4, seed=3))
    assert report.ok, report


def test_lengths_under_jit_grad_and_vmap():
    """With lengths the pullback of forward is the derived backward, under jit too; vmap over a
    leading axis of x and of lengths runs each batch with its own lengths."""
    module = symlstm.load("lstm", backend="jax")
    params, x, state0 = problem(module, T=5, B=3)
    lengths = jnp.asarray([5, 2, 0])
    rng = np.random.default_rng(1)
    dy = jnp.asarray(rng.standard_normal((5, 3, 4)))
    dstate = tuple(jnp.asarray(rng.standard_normal((3, 4))) for _ in module.STATES)
    y, state = module.forward(params, x, state0, lengths)
    assert not np.asarray(y[2:, 1]).any() and not np.asarray(y[:, 2]).any()  # 0 past each length
    np.testing.assert_array_equal(np.asarray(state[0][2]), np.asarray(state0[0][2]))  # empty: kept
    _, pullback = jax.vjp(lambda p, x, s: module.forward(p, x, s, lengths), params, x, state0)
    got = pullback((dy, dstate))
    want = jax.jit(module.backward)(params, x, state0, dy, dstate, lengths)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-14)
    assert not np.asarray(got[1][2:, 1]).any()  # no gradient for x past a sequence's length
    xs, many = jnp.stack([x, -x]), jnp.asarray([[5, 2, 0], [1, 4, 3]])
    ys, _ = jax.jit(jax.vmap(lambda x, n: module.forward(params, x, state0, n)))(xs, many)
    for k in range(2):
        np.testing.assert_allclose(
            np.asarray(ys[k]), np.asarray(module.forward(params, xs[k], state0, many[k])[0]), rtol=1e-13
        )


def test_bad_lengths_are_named_by_the_jax_module():
    module = symlstm.load("gru", backend="jax")
    params, x, state0 = problem(module, T=5, B=2)
    with pytest.raises(
        ValueError, match=r"lengths must be B = 2 integers \(one per sequence\), got shape \(3,\)"
    ):
        module.forward(params, x, state0, [1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\], got values from 1 to 6"):
        module.forward(params, x, state0, [1, 6])
    with pytest.raises(TypeError, match="lengths must be integers"):
        module.forward(params, x, state0, [1.0, 2.0])
