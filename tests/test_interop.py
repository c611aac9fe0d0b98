"""Framework interoperability: PyTorch (stacked layers), Keras layouts, parameter counts, initializers.

Keras is not installed here: its layouts are checked against a NumPy transcription of Keras's own
equations (reference/cells.md 4: row vectors, `x @ kernel`, gate orders i, f, c, o and z, r, h).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import symlstm
from symlstm.backends.numpy.interop import validate_keras
from tests.conftest import CELL_NAMES, require

KERAS_CELLS = [n for n in CELL_NAMES if symlstm.cell(n).keras]
TORCH_CELLS = [n for n in CELL_NAMES if symlstm.cell(n).torch]


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def keras_reference(layer, config, weights, x, h0, c0=None):
    """Keras 3's SimpleRNN / LSTM / GRU step by step, x (T, B, I) -> y (T, B, H)."""
    kernel, rec, bias = weights
    H = rec.shape[0]
    h, c, ys = h0, c0, []
    for xt in x:
        if layer == "SimpleRNN":
            a = xt @ kernel + h @ rec + bias
            h = np.tanh(a) if config["activation"] == "tanh" else np.maximum(a, 0)
        elif layer == "LSTM":
            a = xt @ kernel + h @ rec + bias
            i, f, g, o = (a[:, k * H : (k + 1) * H] for k in range(4))
            c = _sig(f) * c + _sig(i) * np.tanh(g)
            h = _sig(o) * np.tanh(c)
        elif config["reset_after"]:
            xa, ha = xt @ kernel + bias[0], h @ rec + bias[1]
            z = _sig(xa[:, :H] + ha[:, :H])
            r = _sig(xa[:, H : 2 * H] + ha[:, H : 2 * H])
            hh = np.tanh(xa[:, 2 * H :] + r * ha[:, 2 * H :])
            h = z * h + (1 - z) * hh
        else:
            xa = xt @ kernel + bias
            z = _sig(xa[:, :H] + h @ rec[:, :H])
            r = _sig(xa[:, H : 2 * H] + h @ rec[:, H : 2 * H])
            hh = np.tanh(xa[:, 2 * H :] + (r * h) @ rec[:, 2 * H :])
            h = z * h + (1 - z) * hh
        ys.append(h)
    return np.stack(ys)


def _keras_weights(spec, I, H, rng):
    G = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[spec.keras["layer"]]
    bias_shape = (2, G * H) if spec.keras["config"].get("reset_after") else (G * H,)
    return [rng.standard_normal((I, G * H)), rng.standard_normal((H, G * H)), rng.standard_normal(bias_shape)]


@pytest.mark.parametrize("name", KERAS_CELLS)
def test_from_keras_computes_the_keras_layer(name):
    spec, module = symlstm.cell(name), symlstm.load(name)
    rng = np.random.default_rng(0)
    I, H, T, B = 3, 4, 5, 2
    weights = [0.5 * w for w in _keras_weights(spec, I, H, rng)]
    x = rng.standard_normal((T, B, I))
    state0 = tuple(rng.standard_normal((B, H)) for _ in module.STATES)
    y, _, _ = module.forward(module.from_keras(weights), x, state0)
    y_keras = keras_reference(spec.keras["layer"], spec.keras["config"], weights, x, *state0)
    np.testing.assert_allclose(y, y_keras, rtol=0, atol=1e-12)
    back = module.to_keras(module.from_keras(weights))
    assert all(np.array_equal(a, b) for a, b in zip(back, weights))
    by_name = module.from_keras(dict(zip(["kernel", "recurrent_kernel", "bias"], weights)))
    assert all(np.array_equal(by_name[k], v) for k, v in module.from_keras(weights).items())


@pytest.mark.parametrize("name", KERAS_CELLS)
def test_to_keras_keeps_the_function_and_the_keras_parameter_count(name):
    spec, module = symlstm.cell(name), symlstm.load(name)
    params = module.init_params(3, 4, seed=2)
    weights = module.to_keras(params)
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    y1, _, _ = module.forward(params, x)
    y2, _, _ = module.forward(module.from_keras(weights), x)
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-13)
    I, H = 3, 4
    counts = {  # reference/cells.md 4.2, 4.3
        "SimpleRNN": H * (I + H) + H,
        "LSTM": 4 * H * (I + H) + 4 * H,
        "GRU": 3 * H * (I + H) + (6 * H if spec.keras["config"].get("reset_after") else 3 * H),
    }
    assert sum(w.size for w in weights) == counts[spec.keras["layer"]]


def test_keras_errors_name_what_was_expected():
    lstm = symlstm.load("lstm")
    with pytest.raises(ValueError, match="expected 3 arrays"):
        lstm.from_keras([np.zeros((3, 16))])
    with pytest.raises(ValueError, match="kernel must have shape"):
        lstm.from_keras([np.zeros((3, 15)), np.zeros((4, 16)), np.zeros(16)])
    with pytest.raises(ValueError, match="recurrent_kernel must have shape"):
        lstm.from_keras([np.zeros((3, 16)), np.zeros((5, 16)), np.zeros(16)])
    with pytest.raises(KeyError, match="bias"):
        lstm.from_keras({"kernel": np.zeros((3, 16)), "recurrent_kernel": np.zeros((4, 16))})
    with pytest.raises(NotImplementedError, match="Keras has no layer"):
        symlstm.load("janet").from_keras([])
    with pytest.raises(NotImplementedError, match=r"torch\.nn has no counterpart"):
        symlstm.load("peephole").from_torch({})


def test_keras_layouts_that_cannot_be_a_keras_array_are_named():
    spec = symlstm.cell("lstm")
    (kernel, rows), *rest = spec.keras["weights"]

    def with_kernel(new_rows):
        return dataclasses.replace(spec, keras={**spec.keras, "weights": ((kernel, new_rows), *rest)})

    with pytest.raises(symlstm.SpecError, match="of weight matrices has 2 rows of blocks; expected one row"):
        validate_keras(with_kernel(rows * 2))
    with pytest.raises(symlstm.SpecError, match=r"mixes shapes .*; expected one shape"):
        validate_keras(with_kernel(((("W_ii",), ("b_ii",)),)))


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_stacked_torch_layers_are_cells_run_one_after_the_other(name):
    torch = require("torch")
    spec, module = symlstm.cell(name), symlstm.load(name)
    I, H, L = 3, 4, 2
    torch.manual_seed(0)
    net = getattr(torch.nn, spec.torch["module"])(
        I, H, num_layers=L, dtype=torch.float64, **spec.torch["kwargs"]
    )
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    assert sum(spec.param_count(I if k == 0 else H, H) for k in range(L)) == sum(
        p.numel() for p in net.parameters()
    )
    x = np.random.default_rng(0).standard_normal((5, 2, I))
    y = x
    for k in range(L):
        y, _, _ = module.forward(module.from_torch(sd, layer=k), y)
        back = module.to_torch(module.from_torch(sd, layer=k), layer=k)
        assert all(np.array_equal(v, sd[n]) for n, v in back.items())
    y_torch, _ = net(torch.tensor(x))
    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=0, atol=1e-12)
    with pytest.raises(KeyError, match="_l2"):
        module.from_torch(sd, layer=2)


# -- initializers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_initializers_for_every_cell(name):
    module, spec = symlstm.load(name), symlstm.cell(name)
    I = H = 5
    base = module.initialize(I, H, seed=3)
    ref = module.init_params(I, H, seed=3)
    assert all(np.array_equal(base[k], ref[k]) for k in ref)  # "pytorch" is init_params
    assert all(np.abs(v).max() <= 1 / np.sqrt(H) for v in base.values())
    ortho = module.initialize(I, H, scheme="orthogonal", seed=3, dtype=np.float32)
    assert all(v.dtype == np.float32 for v in ortho.values())
    for group, members in module.BLOCKS.items():
        for k, member in enumerate(members):
            block = ortho[group][k * H : (k + 1) * H].astype(np.float64)
            if member in module.RECURRENT:
                np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-6)
            elif block.ndim == 1:
                assert not block.any()
            else:
                limit = np.sqrt(6 / (ortho[group].shape[0] + ortho[group].shape[1]))
                assert 0 < np.abs(block).max() <= limit
    keep, write = spec.gates.get("keep", ()), spec.gates.get("write", ())
    if keep:
        p = module.initialize(I, H, forget_bias=1.0, seed=3)
        total = sum(module._member(p, m) for m in keep)
        np.testing.assert_array_equal(total, np.ones(H))
    else:
        with pytest.raises(ValueError, match="keeps the old state"):
            module.initialize(I, H, forget_bias=1.0)
    if keep or write:
        p = module.initialize(I, H, scheme="orthogonal", chrono=100, seed=3)
        b_keep = sum(module._member(p, m) for m in keep) if keep else None
        b_write = sum(module._member(p, m) for m in write) if write else None
        b = b_keep if keep else -b_write
        assert (b >= 0).all() and (b <= np.log(99)).all() and b.std() > 0
        if keep and write:
            np.testing.assert_array_equal(b_write, -b_keep)
    else:
        with pytest.raises(ValueError, match="neither"):
            module.initialize(I, H, chrono=100)


def test_initializer_errors():
    lstm = symlstm.load("lstm")
    with pytest.raises(ValueError, match="scheme must be"):
        lstm.initialize(3, 4, scheme="glorot")
    with pytest.raises(ValueError, match="not both"):
        lstm.initialize(3, 4, forget_bias=1.0, chrono=10)
    with pytest.raises(ValueError, match="T_max > 2"):
        lstm.initialize(3, 4, chrono=2)
    a, b = lstm.initialize(3, 4, chrono=50, seed=1), lstm.initialize(3, 4, chrono=50, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # seeded


def test_keras_check_catches_a_wrong_gate_order(monkeypatch):
    """The layout check can fail: PyTorch's r, z order where Keras has z, r gives another function."""
    spec, module = symlstm.cell("gru"), symlstm.load("gru")
    (kernel, rec, bias) = module.KERAS_WEIGHTS
    swap = lambda row: (row[1], row[0], row[2])  # noqa: E731
    wrong = (
        (kernel[0], (swap(kernel[1][0]),)),
        (rec[0], (swap(rec[1][0]),)),
        (bias[0], tuple(map(swap, bias[1]))),
    )
    monkeypatch.setattr(module, "KERAS_WEIGHTS", wrong)
    rng = np.random.default_rng(0)
    weights = _keras_weights(spec, 3, 4, rng)
    x = rng.standard_normal((3, 2, 3))
    y, _, _ = module.forward(module.from_keras(weights), x)
    y_keras = keras_reference("GRU", spec.keras["config"], weights, x, np.zeros((2, 4)))
    assert np.abs(y - y_keras).max() > 1e-3
