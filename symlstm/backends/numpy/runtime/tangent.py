"""Runtime of the reference and numba modules: `jvp`, around the reference equations' `_jvp`.

The template renders this file from the marker below into each module; `_jvp` is the module's own
(the tangent equations of the derivation, one statement each, per node and unfused: a forward-mode
derivative independent of the optimised code and of the kernels).
"""

import numpy as np

# Stand-ins for what each generated module defines, so that this file reads (and lints) on its own.
OUTPUT_SIZE = "H"


def _jvp(params, xs, state0, dparams, tan_xs, tan_state0): ...
def _check_params(params, what="params", like=None): ...
def _check_array(value, name, shape, dtype): ...
def _check_input(x, I, dtype): ...
def _check_state(state, name, B, H, dtype, default=0): ...
def _check_lengths(lengths, T, B): ...
def _check_finite(function, kind, sequences, whole, states, backward=False): ...
def _named(arrays, what): ...


# -- generated modules include this file from the next line on --


def jvp(params, x, state0=None, dparams=None, dx=None, dstate0=None, *, lengths=None, check_finite=False):
    """Forward-mode derivative: (y, state, dy, dstate), the outputs and their tangents along the
    direction (dparams, dx, dstate0) (zeros where None), from the tangent equations of the derivation;
    with `lengths`, sequence by sequence over its own steps, as `forward`."""
    dims, dtype = _check_params(params)
    xs = _check_input(x, dims["I"], dtype)
    T, B = xs.shape[0], xs.shape[1]
    state0 = _check_state(state0, "state0", B, dims, dtype)
    tan_xs = np.zeros_like(xs) if dx is None else _check_array(dx, "dx", xs.shape, dtype)
    tan_state0 = _check_state(dstate0, "dstate0", B, dims, dtype)
    if dparams is None:
        dparams = {name: np.zeros_like(value) for name, value in params.items()}
    _check_params(dparams, "dparams", like=(dims, dtype))
    lengths = _check_lengths(lengths, T, B)
    if lengths is not None:  # x and its tangent are not read past a sequence's length
        past = np.arange(T)[:, None, None] >= lengths[:, None]
        xs, tan_xs = np.where(past, 0, xs), np.where(past, 0, tan_xs)
    if check_finite:
        _check_finite(
            "jvp",
            "input",
            [("x", xs), ("dx", tan_xs)],
            _named(params, "params") + _named(dparams, "dparams"),
            _named(state0, "state0") + _named(dstate0, "dstate0"),
        )
    if lengths is None:
        ys, state, tan_ys, tan_state = _jvp(params, xs, state0, dparams, tan_xs, tan_state0)
    else:
        ys, tan_ys = (np.zeros((T, B, dims[OUTPUT_SIZE]), dtype=dtype) for _ in range(2))
        state, tan_state = tuple(s.copy() for s in state0), tuple(s.copy() for s in tan_state0)
        for b, n in enumerate(lengths):
            rows = slice(b, b + 1)
            s0_b, ts0_b = tuple(s[rows] for s in state0), tuple(s[rows] for s in tan_state0)
            y_b, s_b, ty_b, ts_b = _jvp(params, xs[:n, rows], s0_b, dparams, tan_xs[:n, rows], ts0_b)
            ys[:n, b], tan_ys[:n, b] = y_b[:, 0], ty_b[:, 0]
            for out, value in zip(state + tan_state, s_b + ts_b):
                out[b] = value[0]
    if check_finite:
        outputs = _named(state, "state") + _named(tan_state, "dstate")
        _check_finite("jvp", "output", [("y", ys), ("dy", tan_ys)], [], outputs)
    return ys, state, tan_ys, tan_state
