"""Keras interop against real Keras 3 layers (`keras.layers.SimpleRNN`, `LSTM`, `GRU` with
reset_after True and False), run on Keras's torch backend.

`from_keras(layer.get_weights())` gives parameters whose forward is the layer's output and final
states; `layer.set_weights(to_keras(params))` makes the layer compute the module's forward. The
weights are drawn in the layer's own shapes, so the layouts are checked by Keras, not by another
transcription of its equations.

Keras computes in float32 even for float64 layers (its type promotion turns every 64-bit result into
32 bits, as JAX does by default: `keras.ops.matmul` of two float64 arrays is float32), so the layers
run in float32 and the module in float64 on the same numbers; they agree to float32 rounding (the
tolerance `check_torch` uses for float32), and a wrong block or gate order is off by O(0.1).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import symlstm
from symlstm.testing import TOLERANCES
from tests.conftest import CELL_NAMES, require

os.environ.setdefault("KERAS_BACKEND", "torch")  # keras 3 reads it when first imported
keras = require("keras")

KERAS_CELLS = [n for n in CELL_NAMES if symlstm.cell(n).keras]
I, H, T, B = 3, 4, 5, 2
RTOL = TOLERANCES[np.float32].torch_rtol


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * max(1.0, float(np.abs(want).max())))


def keras_layer(spec: symlstm.CellSpec):
    """The Keras layer the cell's metadata names, built for (B, T, I) float32 inputs."""
    layer_class = getattr(keras.layers, spec.keras["layer"])
    layer = layer_class(H, return_sequences=True, return_state=True, dtype="float32", **spec.keras["config"])
    layer.build((B, T, I))
    return layer


def run_keras(layer, x: np.ndarray, state0: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The layer on time-major x (T, B, I): y (T, B, H) and the final states, as float64 NumPy arrays."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    outputs = layer(f32(x.transpose(1, 0, 2)), initial_state=[f32(s) for s in state0])
    y, *states = (keras.ops.convert_to_numpy(o).astype(np.float64) for o in outputs)
    return (y.transpose(1, 0, 2), *states)


def draw(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """Float64 numbers that float32 holds exactly: both sides compute from the same inputs."""
    return (scale * rng.standard_normal(shape)).astype(np.float32).astype(np.float64)


def test_keras_runs_on_its_torch_backend():
    keras_layer(symlstm.cell("lstm"))
    assert keras.backend.backend() == "torch"


@pytest.mark.parametrize("name", KERAS_CELLS)
def test_from_keras_computes_the_keras_layer(name):
    spec, module = symlstm.cell(name), symlstm.load(name)
    layer = keras_layer(spec)
    rng = np.random.default_rng(0)
    weights = [draw(rng, w.shape, 0.5) for w in layer.get_weights()]
    layer.set_weights(weights)
    x = draw(rng, (T, B, I))
    state0 = tuple(draw(rng, (B, H)) for _ in module.STATES)
    y, state, _ = module.forward(module.from_keras(weights), x, state0)
    y_keras, *state_keras = run_keras(layer, x, state0)
    assert_close(y, y_keras)
    for got, want in zip(state, state_keras, strict=True):
        assert_close(got, want)


@pytest.mark.parametrize("name", KERAS_CELLS)
def test_to_keras_makes_the_layer_compute_the_cell(name):
    spec, module = symlstm.cell(name), symlstm.load(name)
    layer = keras_layer(spec)
    rng = np.random.default_rng(5)
    # Not init_params: its zero biases would hide a bias block put in the wrong place.
    params = {k: draw(rng, v.shape, 0.5) for k, v in module.init_params(I, H, seed=3).items()}
    layer.set_weights(module.to_keras(params))
    x = draw(rng, (T, B, I))
    state0 = tuple(draw(rng, (B, H)) for _ in module.STATES)
    y, _, _ = module.forward(params, x, state0)
    assert_close(run_keras(layer, x, state0)[0], y)


def test_the_comparison_catches_a_wrong_gate_order(monkeypatch):
    """The check can fail: PyTorch's r, z order where Keras has z, r gives another function."""
    spec, module = symlstm.cell("gru"), symlstm.load("gru")
    (kernel, rec, bias) = module.KERAS_WEIGHTS
    swap = lambda row: (row[1], row[0], row[2])  # noqa: E731
    wrong = (
        (kernel[0], (swap(kernel[1][0]),)),
        (rec[0], (swap(rec[1][0]),)),
        (bias[0], tuple(map(swap, bias[1]))),
    )
    monkeypatch.setattr(module, "KERAS_WEIGHTS", wrong)
    layer = keras_layer(spec)
    rng = np.random.default_rng(0)
    weights = [draw(rng, w.shape, 0.5) for w in layer.get_weights()]
    layer.set_weights(weights)
    x, state0 = draw(rng, (T, B, I)), (draw(rng, (B, H)),)
    y, _, _ = module.forward(module.from_keras(weights), x, state0)
    assert np.abs(y - run_keras(layer, x, state0)[0]).max() > 100 * RTOL
