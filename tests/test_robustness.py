"""Robustness: bad input, array layouts, empty sizes, numerical extremes, the NaN/Inf policy, long
sequences, and a generator that never leaves `generated/` half-written or runs code from a spec."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import jinja2
import numpy as np
import pytest

import symlstm
import symlstm.cells
from symlstm.activations import tanh
from symlstm.backends.numpy import render_numpy
from symlstm.build.generate import GenerateError, generate, render_all
from symlstm.cli import main
from symlstm.engine import derive
from symlstm.spec import Cell, SpecError
from symlstm.testing import check_sizes_of, make_problem

# The modules themselves (`symlstm.generate` is also the name of the function the package exports).
GENERATE = importlib.import_module("symlstm.build.generate")
RENDER = importlib.import_module("symlstm.backends.numpy")

# Two runs of the same arithmetic through different BLAS paths (Fortran-ordered or strided operands)
# may sum in another order: a few ulps of the result's dtype, never more.
LAYOUT_RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def _sizes(m, input_size: int = 3, hidden_size: int = 4) -> tuple[int, int]:
    return (hidden_size, hidden_size) if m.SAME_SIZE else (input_size, hidden_size)


def _problem(m, T: int = 5, B: int = 2, dtype=np.float64, seed: int = 0):
    """params, x (T, B, I), state0, dy (T, B, size of y), dstate for module `m` (its states at their
    sizes: `symlstm.testing.make_problem`)."""
    p = make_problem(m, *_sizes(m), T, B, dtype=dtype, seed=seed)
    return p.params, p.x, p.state0, p.w_y, p.w_state


@pytest.fixture
def mod(cell_name):
    return symlstm.load(cell_name)


# -- 1. input validation -----------------------------------------------------------------------------

BAD_INPUTS = {
    # id: (call(m, params, x, state0, dy, dstate), exception, words the message must contain: {s0} the size
    # of the first state, {y} that of y, {y_less} one less)
    "x is 2-D": (
        lambda m, p, x, s, dy, ds: m.forward(p, x[0]),
        ValueError,
        ["x must have shape (T, B, ", "got (2,"],
    ),
    "x is a list": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.tolist()),
        TypeError,
        ["x must be a numpy array", "list"],
    ),
    "x has another I": (
        lambda m, p, x, s, dy, ds: m.forward(p, x[..., :-1]),
        ValueError,
        ["x must have shape", "got (5, 2,"],
    ),
    "x int64": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.astype(np.int64)),
        TypeError,
        ["x must have dtype float64", "int64"],
    ),
    "x float16": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.astype(np.float16)),
        TypeError,
        ["x must have dtype float64", "float16"],
    ),
    "x complex": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.astype(complex)),
        TypeError,
        ["x must have dtype float64", "complex128"],
    ),
    "x object": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.astype(object)),
        TypeError,
        ["x must have dtype float64", "object"],
    ),
    "x float32, params float64": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.astype(np.float32)),
        TypeError,
        ["x must have dtype float64", "float32"],
    ),
    "state0 a bare array": (
        lambda m, p, x, s, dy, ds: m.forward(p, x, s[0]),
        ValueError,
        ["state0 must be a tuple of", "(2, 4)", "an array of shape (2, {s0})"],
    ),
    "state0 too many": (
        lambda m, p, x, s, dy, ds: m.forward(p, x, (*s, s[0])),
        ValueError,
        ["state0 must be a tuple of", "items"],
    ),
    "state0 batch mismatch": (
        lambda m, p, x, s, dy, ds: m.forward(p, x, tuple(a[:1] for a in s)),
        ValueError,
        ["state0[0]", "must have shape (2, {s0})", "got (1, {s0})"],
    ),
    "state0 int": (
        lambda m, p, x, s, dy, ds: m.forward(p, x, tuple(a.astype(int) for a in s)),
        TypeError,
        ["state0[0]", "float64", "int64"],
    ),
    "params a list": (
        lambda m, p, x, s, dy, ds: m.forward(list(p.values()), x),
        TypeError,
        ["params must be a dict", "list"],
    ),
    "params missing a key": (
        lambda m, p, x, s, dy, ds: m.forward(dict(list(p.items())[1:]), x),
        ValueError,
        ["params must have the keys", "missing ['W_ih']"],
    ),
    "params an extra key": (
        lambda m, p, x, s, dy, ds: m.forward({**p, "W_xx": p["W_ih"]}, x),
        ValueError,
        ["unexpected ['W_xx']"],
    ),
    "params float16": (
        lambda m, p, x, s, dy, ds: m.forward({k: v.astype(np.float16) for k, v in p.items()}, x),
        TypeError,
        ["params['W_ih'] dtype", "float32 or float64", "float16"],
    ),
    "params complex": (
        lambda m, p, x, s, dy, ds: m.forward({k: v.astype(complex) for k, v in p.items()}, x),
        TypeError,
        ["float32 or float64", "complex128"],
    ),
    "W_ih a list of lists, like x as a list": (
        lambda m, p, x, s, dy, ds: m.forward({**p, "W_ih": p["W_ih"].tolist()}, x),
        TypeError,
        ["params['W_ih'] must be a numpy array of shape (", "got a list (make it an array with np.asarray)"],
    ),
    "x a list, like a parameter as a list": (
        lambda m, p, x, s, dy, ds: m.forward(p, x.tolist()),
        TypeError,
        ["x must be a numpy array of shape (T, B, 3)", "got a list (make it an array with np.asarray)"],
    ),
    "the last parameter a list in backward": (
        lambda m, p, x, s, dy, ds: m.backward(
            {**p, list(p)[-1]: p[list(p)[-1]].tolist()}, m.forward(p, x)[2], dy
        ),
        TypeError,
        ["must be a numpy array", "got a list (make it an array with np.asarray)"],
    ),
    "W_ih flattened": (
        lambda m, p, x, s, dy, ds: m.forward({**p, "W_ih": p["W_ih"].ravel()}, x),
        ValueError,
        ["params['W_ih'] must be a 2-D array of shape (", "got an array of shape ("],
    ),
    "dy wrong shape": (
        lambda m, p, x, s, dy, ds: m.backward(p, m.forward(p, x)[2], dy[:, :, :-1]),
        ValueError,
        ["dy must have shape (5, 2, {y})", "got (5, 2, {y_less})"],
    ),
    "dy float32": (
        lambda m, p, x, s, dy, ds: m.backward(p, m.forward(p, x)[2], dy.astype(np.float32)),
        TypeError,
        ["dy must have dtype float64", "float32"],
    ),
    "dstate batch mismatch": (
        lambda m, p, x, s, dy, ds: m.backward(p, m.forward(p, x)[2], dy, tuple(a[:1] for a in ds)),
        ValueError,
        ["dstate[0]", "got (1, {s0})"],
    ),
    "jvp dx wrong shape": (
        lambda m, p, x, s, dy, ds: m.jvp(p, x, dx=x[:1]),
        ValueError,
        ["dx must have shape (5, 2,"],
    ),
    "jvp dparams wrong shape": (
        lambda m, p, x, s, dy, ds: m.jvp(p, x, dparams={**p, "W_ih": p["W_ih"][:-1]}),
        ValueError,
        ["dparams['W_ih'] must have shape", "as in params"],
    ),
    "jvp dstate0 a list of lists": (
        lambda m, p, x, s, dy, ds: m.jvp(p, x, dstate0=[a.tolist() for a in s]),
        TypeError,
        ["dstate0[0]", "must be a numpy array", "list"],
    ),
    "init_params hidden_size 0": (
        lambda m, p, x, s, dy, ds: m.init_params(3, 0, **check_sizes_of(m, 4)),
        ValueError,
        ["hidden_size must be a positive integer, got 0"],
    ),
    "init_params float16": (
        lambda m, p, x, s, dy, ds: m.init_params(4, 4, dtype=np.float16, **check_sizes_of(m, 4)),
        TypeError,
        ["dtype must be float32 or float64, got float16"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_argument_expected_and_given(mod, case):
    call, exc, words = BAD_INPUTS[case]
    p, x, s, dy, ds = _problem(mod)
    with pytest.raises(exc) as info:
        call(mod, p, x, s, dy, ds)
    message = str(info.value)
    assert message.startswith(f"{mod.CELL}: "), message
    sizes = {"s0": s[0].shape[1], "y": dy.shape[2], "y_less": dy.shape[2] - 1}
    for word in words:
        word = word.format(**sizes)
        assert word in message, f"{case}: {word!r} not in {message!r}"


def test_each_wrong_parameter_shape_is_blamed_on_that_parameter(mod):
    p, x, *_ = _problem(mod)
    for name, value in p.items():
        bad = np.concatenate([value, value[:1]])  # one row too many
        with pytest.raises(ValueError) as info:
            mod.forward({**p, name: bad}, x)
        message = str(info.value)
        assert f"params[{name!r}] must have shape {value.shape}" in message, message
        assert f"got {bad.shape}" in message and "hidden size 4" in message, message
        if name != next(iter(p)):  # a later parameter in another dtype
            with pytest.raises(TypeError, match=rf"params\['{name}'\] must have dtype float64"):
                mod.forward({**p, name: value.astype(np.float32)}, x)


# -- non-contiguous, Fortran-ordered and empty inputs --------------------------------------------------


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (every other element of a twice-as-long last axis)."""
    return np.repeat(a, 2, axis=-1)[..., ::2]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed"])
def test_any_memory_layout_gives_the_contiguous_result(mod, layout, dtype):
    p, x, s, dy, ds = _problem(mod, dtype=dtype)
    convert = {
        "fortran": np.asfortranarray,
        "strided": _strided,
        "reversed": lambda a: np.flip(np.flip(a, axis=0).copy(), axis=0),  # negative strides
    }[layout]
    pv, xv, sv, dyv, dsv = ({k: convert(v) for k, v in p.items()}, convert(x), tuple(map(convert, s)),
                            convert(dy), tuple(map(convert, ds)))  # fmt: skip
    if layout != "reversed":
        assert not xv.flags.c_contiguous and not pv["W_ih"].flags.c_contiguous
    rtol = LAYOUT_RTOL[dtype]
    y, state, cache = mod.forward(p, x, s)
    dparams, dx, dstate0 = mod.backward(p, cache, dy, ds)
    y_v, state_v, cache_v = mod.forward(pv, xv, sv)
    dparams_v, dx_v, dstate0_v = mod.backward(pv, cache_v, dyv, dsv)
    np.testing.assert_allclose(y_v, y, rtol=rtol, atol=0)
    for a, b in zip(state_v + dstate0_v, state + dstate0):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    np.testing.assert_allclose(dx_v, dx, rtol=rtol, atol=rtol * np.abs(dx).max())
    for k in p:
        np.testing.assert_allclose(dparams_v[k], dparams[k], rtol=rtol, atol=rtol * np.abs(dparams[k]).max())
    tan = {k: convert(np.ones_like(v)) for k, v in p.items()}
    ys, _, tan_ys, _ = mod.jvp(pv, xv, sv, dparams=tan, dx=convert(np.ones_like(x)), dstate0=sv)
    ys_c, _, tan_ys_c, _ = mod.jvp(p, x, s, {k: np.ones_like(v) for k, v in p.items()}, np.ones_like(x), s)
    np.testing.assert_allclose(ys, ys_c, rtol=rtol, atol=0)
    np.testing.assert_allclose(tan_ys, tan_ys_c, rtol=rtol, atol=rtol * np.abs(tan_ys_c).max())


def test_empty_sequence_and_empty_batch(mod):
    p, x, s, dy, ds = _problem(mod)
    Y = dy.shape[2]  # the size of y
    # T = 0: the final state is the initial one, and the gradient passes straight through.
    y, state, cache = mod.forward(p, x[:0], s)
    assert y.shape == (0, 2, Y)
    for a, b in zip(state, s):
        np.testing.assert_array_equal(a, b)
    dparams, dx, dstate0 = mod.backward(p, cache, dy[:0], ds)
    assert dx.shape == (0, 2, x.shape[2])
    assert all(not v.any() and v.shape == p[k].shape for k, v in dparams.items())
    for a, b in zip(dstate0, ds):
        np.testing.assert_array_equal(a, b)
    assert mod.jvp(p, x[:0], s)[0].shape == (0, 2, Y)
    # B = 0: every output is empty and the parameter gradients are zero.
    y, state, cache = mod.forward(p, x[:, :0])
    assert y.shape == (5, 0, Y) and all(a.shape == (0, b.shape[1]) for a, b in zip(state, s))
    dparams, dx, dstate0 = mod.backward(p, cache, dy[:, :0])
    assert dx.shape == (5, 0, x.shape[2]) and all(not v.any() for v in dparams.values())
    assert mod.jvp(p, x[:, :0])[2].shape == (5, 0, Y)


# -- caches --------------------------------------------------------------------------------------------


def test_backward_detects_a_foreign_or_stale_cache(mod):
    p, x, s, dy, _ = _problem(mod)
    other = symlstm.load("gru" if mod.CELL != "gru" else "lstm")
    po, xo, *_ = _problem(other)
    with pytest.raises(ValueError, match=f"got the cache of cell '{other.CELL}', not of {mod.CELL}.forward"):
        mod.backward(p, other.forward(po, xo)[2], dy)
    _, _, cache = mod.forward(p, x, s)
    with pytest.raises(ValueError, match="other parameter arrays"):
        mod.backward({k: v.copy() for k, v in p.items()}, cache, dy)
    with pytest.raises(ValueError, match=r"needs the cache returned by .*forward, got a NoneType"):
        mod.backward(p, None, dy)
    with pytest.raises(ValueError, match=r"got a dict with keys \['cell'\]"):
        mod.backward(p, {"cell": mod.CELL}, dy)
    mod.backward(dict(p), cache, dy)  # another dict holding the same arrays is fine
    name = list(p)[-1]
    p[name][0] += 1e-3  # an optimiser step taken between forward and backward
    with pytest.raises(ValueError, match=rf"\['{name}'\] changed in place between forward and backward"):
        mod.backward(p, cache, dy)
    p[name][0] -= 1e-3
    _, _, cache = mod.forward(p, x, s)
    p[name].flat[-1] = np.nextafter(p[name].flat[-1], np.inf)  # the smallest change there is: one ulp
    with pytest.raises(ValueError, match=rf"\['{name}'\] changed in place"):
        mod.backward(p, cache, dy)
    _, _, cache = mod.forward(p, x, s)
    x[0, 0, 0] += 1.0  # the caller reused the input buffer
    with pytest.raises(ValueError, match=r"\['x'\] changed in place"):
        mod.backward(p, cache, dy)


# -- 2. numerical extremes -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_preactivations_of_1e4_are_finite_without_warnings(mod, dtype):
    I, H = _sizes(mod)
    params = {k: (v * 4e4).astype(dtype) for k, v in make_problem(mod, I, H, seed=1).params.items()}
    x = np.sign(np.random.default_rng(1).standard_normal((3, 2, I))).astype(dtype)
    assert np.abs(x[0] @ params["W_ih"].T).max() > 1e4  # the pre-activations really are that large
    with np.errstate(all="raise"):
        y, state, cache = mod.forward(params, x)
        dparams, dx, dstate0 = mod.backward(
            params, cache, np.ones_like(y), tuple(np.ones_like(s) for s in state)
        )
        ys, _, tan_ys, _ = mod.jvp(params, x, dx=np.ones_like(x))
    for a in (y, dx, ys, tan_ys, *state, *dstate0, *dparams.values()):
        assert np.isfinite(a).all()
    np.testing.assert_allclose(ys, y, rtol=LAYOUT_RTOL[dtype], atol=LAYOUT_RTOL[dtype] * np.abs(y).max())


def test_nan_in_x_propagates_through_its_batch_row_only(mod):
    p, x, s, dy, ds = _problem(mod)
    x[2, 0, 0] = np.nan
    y, state, cache = mod.forward(p, x, s)
    assert np.isfinite(y[:2]).all() and np.isfinite(y[:, 1]).all()
    assert all(np.isnan(y[t, 0]).any() for t in range(2, 5)), "a NaN turned into finite output"
    assert all(np.isnan(a[0]).any() and np.isfinite(a[1]).all() for a in state)
    dparams, dx, dstate0 = mod.backward(p, cache, dy, ds)
    assert np.isnan(dparams["W_ih"]).any() and np.isfinite(dx[:, 1]).all()
    assert np.isnan(dx[:3, 0]).any() and np.isnan(dstate0[0][0]).any()
    ys, _, tan_ys, _ = mod.jvp(p, x, s, dx=np.ones_like(x))
    assert np.isnan(ys[4, 0]).any() and np.isnan(tan_ys[4, 0]).any() and np.isfinite(tan_ys[:, 1]).all()


def test_nan_in_a_parameter_reaches_every_output(mod):
    p, x, s, dy, _ = _problem(mod)
    p["W_ih"][0, 0] = np.nan
    y, _, cache = mod.forward(p, x, s)
    assert np.isnan(y).any(axis=2).all()  # every step of every batch row
    dparams, _, _ = mod.backward(p, cache, dy)
    assert all(np.isnan(v).any() for v in dparams.values())


def test_check_finite_names_the_first_bad_step(mod):
    p, x, s, dy, ds = _problem(mod)
    y, _, cache = mod.forward(p, x, s, check_finite=True)  # finite: no error, same result
    np.testing.assert_array_equal(y, mod.forward(p, x, s)[0])
    mod.backward(p, cache, dy, ds, check_finite=True)
    mod.jvp(p, x, s, check_finite=True)
    bad = x.copy()
    bad[3, 1, 0], bad[4, 0, 0] = np.nan, np.inf
    with np.errstate(invalid="ignore"):  # inf * 0 on the way: NaN, numpy's warning is not ours to test
        mod.forward(p, bad, s)  # by default NaN and Inf propagate without an error
    with pytest.raises(FloatingPointError, match=r"non-finite input first at step t=3: x\[3, 1, 0\] = nan"):
        mod.forward(p, bad, s, check_finite=True)
    with pytest.raises(
        FloatingPointError, match=r"jvp\(check_finite=True\): non-finite input first at step t=3"
    ):
        mod.jvp(p, x, s, dx=bad, check_finite=True)
    name = list(p)[-1]
    p_bad = {**p, name: p[name].copy()}
    p_bad[name][0] = np.inf
    with pytest.raises(FloatingPointError, match=rf"step t=0: params\['{name}'\]\[0(, 0)?\] = inf"):
        mod.forward(p_bad, x, s, check_finite=True)
    s_bad = (s[0].copy(), *s[1:])
    s_bad[0][1, 1] = -np.inf
    with pytest.raises(FloatingPointError, match=r"t=0: state0\[0\] \(h\)\[1, 1\] = -inf"):
        mod.forward(p, x, s_bad, check_finite=True)
    dy_bad = dy.copy()
    dy_bad[1, 0, 0] = dy_bad[3, 1, 1] = np.nan  # backward meets t=3 first
    with pytest.raises(
        FloatingPointError, match=r"backward\(check_finite=True\): non-finite input first at step t=3"
    ):
        mod.backward(p, cache, dy_bad, check_finite=True)


def test_check_finite_reports_outputs_that_overflow():
    m = symlstm.load("lstm")
    y = np.zeros((6, 2, 3))
    y[4, 1, 2] = np.inf
    expected = r"lstm.forward\(check_finite=True\): non-finite output first at step t=4: y\[4, 1, 2\] = inf"
    with pytest.raises(FloatingPointError, match=expected):
        m._check_finite("forward", "output", [("y", y)], [], [])
    dx = np.zeros((6, 2, 3))
    dx[1, 0, 0] = dx[4, 0, 0] = np.nan
    with pytest.raises(
        FloatingPointError, match=r"first at step t=4 \(backward runs from the last step down\)"
    ):
        m._check_finite("backward", "output", [("dx", dx)], [], [], backward=True)


def _chunk_scratch_elements(name: str) -> int:
    """Elements per step row of backward's coefficient chunk buffers (`coef_steps` rows of at most 4096
    numbers each: a constant, not a function of T)."""
    from symlstm.backends.numpy import numpy_module

    setup = numpy_module(symlstm.derive(name)).backward_setup
    rows = [re.search(r"\(coef_steps, (?:(\d+), )?B, H\)", line) for line in setup]
    found = sum(int(m.group(1) or 1) for m in rows if m)
    assert found, "no coefficient chunk buffer found in backward's setup"
    return found


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_ten_thousand_steps_with_memory_linear_in_t(name):
    m = symlstm.load(name)
    chunks = 4096 * 8 * _chunk_scratch_elements(name)  # coefficient chunks: bounded, float64
    params = m.init_params(2, 4, seed=0)
    peaks = {}
    for T in (1000, 10_000):
        x = np.random.default_rng(0).standard_normal((T, 1, 2))
        tracemalloc.start()
        y, _, cache = m.forward(params, x)
        dparams, dx, _ = m.backward(params, cache, np.ones_like(y))
        peaks[T] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.isfinite(y).all() and np.isfinite(dx).all()
        cache_bytes = sum(v.nbytes for v in cache.values() if isinstance(v, np.ndarray))
        assert peaks[T] < 3 * cache_bytes + chunks + 100_000, (T, peaks[T], cache_bytes, chunks)
        del y, cache, dparams, dx
    # Linear: ten times the steps cost at most ten times the memory (plus a small constant), no more.
    assert peaks[10_000] <= 10 * peaks[1000] + 100_000, peaks
    assert peaks[10_000] >= 5 * peaks[1000], peaks


# -- 3. the generator --------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (hidden ones too) with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def out(tmp_path) -> Path:
    """A copy of generated/ with two files edited, so a regeneration has something to write."""
    folder = tmp_path / "generated"
    generate(folder, ["rnn", "lstm"])
    for name in ("rnn", "lstm"):
        path = folder / "numpy" / f"{name}.py"
        path.write_text(path.read_text() + "# stale\n")
    return folder


def test_unknown_cell_name_is_an_error_and_writes_nothing(out, capsys):
    before = _snapshot(out)
    assert main(["generate", "no_such_cell", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "symlstm generate: error: unknown cell 'no_such_cell'; known cells: " in err and "lstm" in err
    assert _snapshot(out) == before


def test_broken_spec_leaves_generated_untouched(out, capsys, monkeypatch):
    def broken():
        cell = Cell("zz_broken")
        cell.input("x")
        return cell.build()  # no state: a SpecError

    monkeypatch.setitem(symlstm.cells.CELLS, "zz_broken", broken)
    before = _snapshot(out)
    assert main(["generate", "--out", str(out)]) == 2
    assert "error: cell 'zz_broken': no state declared" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_failing_derivation_leaves_generated_untouched(out, capsys, monkeypatch):
    def derive_or_fail(spec):
        if spec.name == "lstm":
            raise RuntimeError("derivation exploded")
        return derive(spec)

    monkeypatch.setattr(GENERATE, "derive", derive_or_fail)
    before = _snapshot(out)
    assert main(["generate", "rnn", "lstm", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "rendering failed: RuntimeError: derivation exploded; nothing was written to" in err, err
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok\n{{ m.no_such_field }}\n", "(template numpy_cell.py.j2 line 2): UndefinedError"),
        ("{% for %}\n", "(template numpy_cell.py.j2 line 1): TemplateSyntaxError"),
    ],
)
def test_template_error_names_template_and_line_and_writes_nothing(
    out, tmp_path, monkeypatch, text, expected
):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "numpy_cell.py.j2").write_text(text)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), undefined=jinja2.StrictUndefined)
    monkeypatch.setattr(RENDER, "numpy_env", lambda: env)
    before = _snapshot(out)
    with pytest.raises(GenerateError) as info:
        generate(out, ["rnn"])
    assert expected in str(info.value) and "nothing was written" in str(info.value)
    assert _snapshot(out) == before


def test_unwritable_output_directory(out, tmp_path, capsys):
    not_a_dir = tmp_path / "a_file"
    not_a_dir.write_text("")
    assert main(["generate", "rnn", "--out", str(not_a_dir / "generated")]) == 2
    assert "error: cannot write to" in capsys.readouterr().err and not_a_dir.read_text() == ""
    if os.geteuid() != 0:  # root writes anywhere: the mode bits cannot stop it
        before = _snapshot(out)
        mode = (out / "numpy").stat().st_mode
        (out / "numpy").chmod(0o555)
        out.chmod(0o555)
        try:
            assert main(["generate", "rnn", "lstm", "--out", str(out)]) == 2
        finally:
            out.chmod(mode)
            (out / "numpy").chmod(mode)
        assert _snapshot(out) == before


def test_a_failure_while_moving_files_restores_every_file(out, monkeypatch):
    before = _snapshot(out)
    real_replace = os.replace
    moved = []

    def replace_failing_second(src, dst):
        if "/new/" in str(src):  # moving a staged file into place; restoring backups is let through
            moved.append(dst)
            if len(moved) == 2:
                raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(GENERATE.os, "replace", replace_failing_second)
    with pytest.raises(GenerateError, match="No space left on device; every file was restored"):
        generate(out, ["rnn", "lstm"])
    monkeypatch.setattr(GENERATE.os, "replace", real_replace)
    assert len(moved) == 2
    after = _snapshot(out)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}  # no staging left
    changed, _ = generate(out, ["rnn", "lstm"])
    assert changed == ["numpy/lstm.py", "numpy/rnn.py"]


def test_the_rollback_check_can_fail(out, monkeypatch):
    """Planted fault: without the rollback the same failure leaves a half-written tree, and we see it."""
    before = _snapshot(out)
    real_replace = os.replace
    moved = []

    def replace_failing_second(src, dst):
        if "/new/" in str(src):
            moved.append(dst)
            if len(moved) == 2:
                raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(GENERATE.os, "replace", replace_failing_second)
    monkeypatch.setattr(GENERATE, "_restore", lambda replaced: True)
    with pytest.raises(GenerateError):
        generate(out, ["rnn", "lstm"])
    after = _snapshot(out)
    assert {k: v[0] for k, v in after.items()} != {k: v[0] for k, v in before.items()}


def test_check_never_writes(out, tmp_path):
    before = _snapshot(out)
    assert main(["generate", "--check", "rnn", "lstm", "--out", str(out)]) == 1
    assert _snapshot(out) == before
    missing = tmp_path / "does_not_exist"
    assert main(["generate", "--check", "rnn", "--out", str(missing)]) == 1
    assert not missing.exists()


def test_regeneration_is_byte_identical_under_another_hash_seed_and_locale(tmp_path):
    env = {
        **os.environ,
        "PYTHONHASHSEED": "987654321",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "Asia/Tokyo",
    }
    folder = tmp_path / "generated"
    code = "import sys; from symlstm.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, "generate", "--out", str(folder)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    written = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    expected = {name: text.encode("utf-8") for name, text in render_all().items()}
    assert written == expected


# -- names and free text from a spec cannot inject code ------------------------------------------------

EVIL = ['x"; import os; "', "a\nb", "h)\nimport os\n(", "__import__", "ẞ", "1x", "", "os.system"]


@pytest.mark.parametrize("name", EVIL)
def test_unsafe_names_are_rejected_before_any_template(name):
    builders = [
        lambda: Cell(name),
        lambda: Cell("c").state(name),
        lambda: Cell("c").input(name),
        lambda: Cell("c").param(name),
        lambda: Cell("c").fuse(name, ["W"]),
    ]
    for build in builders:
        with pytest.raises(SpecError, match=r"not a safe identifier|keyword or builtin|reserved"):
            build()
    cell = Cell("c")
    x, h = cell.input("x"), cell.state("h")
    with pytest.raises(SpecError):
        cell.linear("a", {name: x, "W_hh": h})
    with pytest.raises(SpecError):
        cell.linear("a", {"W_ih": x}, biases=[name])


def test_free_text_of_a_spec_stays_inside_the_docstring():
    evil = 'pwned\n"""\nimport os\nPWNED = 1\n"""\\\n\\'
    cell = Cell("evil", title=evil, doc=evil, source=evil)
    x, h = cell.input("x"), cell.state("h")
    cell.update(h=cell.elementwise("h_new", tanh(cell.linear("a", {"W_ih": x, "W_hh": h}, biases=["b"]))))
    source = render_numpy(derive(cell.build()))
    namespace: dict = {}
    exec(compile(source, "evil", "exec"), namespace)
    assert "PWNED" not in namespace and "os" not in namespace
    assert evil in namespace["__doc__"]


# -- 4. LaTeX: escaping and latexmk's first error ----------------------------------------------------

TEX_HOSTILE = r"Gates & costs: 100% of $5 #1 ~x {y} a_b \end{document}"


def _unescaped_specials(tex: str) -> str:
    """The TeX special characters left in `tex` once every escape sequence is taken out."""
    for pattern in (r"\\(textbackslash|textasciitilde|textasciicircum)\{\}", r"\\\^\{\}", r"\\[&%$#_{}]"):
        tex = re.sub(pattern, "", tex)
    return "".join(ch for ch in tex if ch in "\\{}$&#^_%~")


def test_tex_special_characters_in_free_text_are_escaped():
    from symlstm.backends.latex import cell_document
    from symlstm.naming import tex_escape

    escaped = tex_escape(TEX_HOSTILE + "^")
    assert _unescaped_specials(escaped) == "", escaped
    assert _unescaped_specials(TEX_HOSTILE) != ""  # the check sees raw specials
    cell = Cell("hostile", title=TEX_HOSTILE, doc=TEX_HOSTILE, source=TEX_HOSTILE)
    x, h = cell.input("x"), cell.state("h")
    cell.update(h=cell.elementwise("h_new", tanh(cell.linear("a", {"W_ih": x, "W_hh": h}, biases=["b"]))))
    tex = cell_document(derive(cell.build())).render()
    assert tex_escape(TEX_HOSTILE) in tex and TEX_HOSTILE not in tex


def _latexmk_available() -> bool:
    return shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None


def _typeset(tmp_path: Path, text: str) -> str:
    """`text` escaped, compiled with latexmk and read back from the PDF."""
    from symlstm.build.pdf import _latexmk
    from symlstm.naming import tex_escape

    tex = tmp_path / "escaped.tex"
    tex.write_text(
        "\\documentclass{article}\\usepackage[T1]{fontenc}\\pagestyle{empty}\\begin{document}\n"
        f"{tex_escape(text)}\n\\end{{document}}\n"
    )
    result = _latexmk(tex)
    assert result.ok, result.error
    out = subprocess.run(["pdftotext", str(result.pdf), "-"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


@pytest.mark.skipif(not _latexmk_available(), reason="latexmk and pdftotext are needed")
def test_escaped_text_compiles_to_the_literal_characters(tmp_path):
    assert _typeset(tmp_path, TEX_HOSTILE) == TEX_HOSTILE


@pytest.mark.skipif(not _latexmk_available(), reason="latexmk and pdftotext are needed")
def test_escaped_caret_compiles_to_a_caret(tmp_path):
    assert _typeset(tmp_path, "x^2") == "x^2"


@pytest.mark.skipif(not _latexmk_available(), reason="latexmk is needed")
def test_a_failing_latexmk_run_reports_the_first_error_line_only(tmp_path):
    from symlstm.build.pdf import _latexmk

    tex = tmp_path / "broken.tex"
    tex.write_text(
        "\\documentclass{article}\n\\begin{document}\nfine\n\\nosuchmacro\n\\alsomissing\n\\end{document}\n"
    )
    result = _latexmk(tex)
    assert not result.ok and result.pdf is None
    assert result.error.startswith("./broken.tex:4: Undefined control sequence"), result.error
    assert "\n" not in result.error and "alsomissing" not in result.error  # the first error, not the log
    log = tex.with_suffix(".log").read_text(errors="replace")
    assert len(result.error) < 200 < len(log)


@pytest.mark.parametrize(
    "name",
    ["coef_step", "cse_0", "gates_i_f", "grad_rows", "seq_c", "i_seq", "buf_x", "d_h", "claim", "workspace"],
)
def test_names_the_generated_code_derives_are_reserved(name):
    """`coef_step` is backward's coefficient row, `i_seq` the per-step view sequence of a node `i`:
    a cell's own name may not shadow them."""
    cell = Cell("c")
    x, h = cell.input("x"), cell.state("h")
    with pytest.raises(SpecError, match=rf"name '{name}' is reserved by the generated code"):
        cell.linear(name, {"W_ih": x, "W_hh": h})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_derivative_as_printed_and_as_emitted(dtype):
    """step(a): 0 for a <= 0 (and -inf), 1 for a > 0 (subnormals and inf included), NaN for NaN."""
    import sympy as sp

    from symlstm.activations import step
    from symlstm.backends.numpy.inplace import InplaceEmitter, ScratchPool
    from symlstm.backends.numpy.printer import NumpyCodePrinter

    tiny = np.finfo(dtype).smallest_subnormal
    a = np.array([np.nan, -np.inf, -2, -0.5, -0.0, 0.0, tiny, 0.3, 1, 5, np.inf], dtype=dtype)
    expected = np.array([np.nan, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=dtype)
    sym = sp.Symbol("a", real=True)
    printed = eval(NumpyCodePrinter().doprint(step(sym)), {"np": np, "a": a})
    out = np.empty_like(a)
    for line in InplaceEmitter(NumpyCodePrinter(), ScratchPool()).emit(step(sym), "out"):
        exec(line, {"np": np, "a": a, "out": out})
    for got in (printed, out):
        np.testing.assert_array_equal(got, expected)
