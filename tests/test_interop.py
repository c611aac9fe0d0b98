"""Framework interoperability: PyTorch (stacked layers), Keras layouts, parameter counts, initializers.

What Keras computes with the converted weights is checked against real Keras layers in
tests/test_keras.py; here the conversions' own properties and errors.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import symlstm
from symlstm.backends.numpy.interop import validate_keras
from symlstm.testing import dims_of, output_size
from tests.conftest import CELL_NAMES, require, sizes, torch_net

KERAS_CELLS = [n for n in CELL_NAMES if symlstm.cell(n).keras]
TORCH_CELLS = [n for n in CELL_NAMES if symlstm.cell(n).torch]


def _keras_weights(spec, I, H, rng):
    G = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[spec.keras["layer"]]
    bias_shape = (2, G * H) if spec.keras["config"].get("reset_after") else (G * H,)
    return [rng.standard_normal((I, G * H)), rng.standard_normal((H, G * H)), rng.standard_normal(bias_shape)]


@pytest.mark.parametrize("name", KERAS_CELLS)
def test_from_keras_and_to_keras_are_inverse(name):
    """Keras weights -> params -> Keras weights is the identity (what Keras computes with them is
    checked against real Keras layers in tests/test_keras.py)."""
    spec, module = symlstm.cell(name), symlstm.load(name)
    weights = _keras_weights(spec, 3, 4, np.random.default_rng(0))
    back = module.to_keras(module.from_keras(weights))
    assert all(np.array_equal(a, b) for a, b in zip(back, weights, strict=True))
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
    net = torch_net(spec, I, H, num_layers=L, dtype=torch.float64)
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    extra = sizes(module, H)
    width = output_size(module, dims_of(module, I, H, extra))  # what layer 1 reads
    assert sum(spec.param_count(I if k == 0 else width, H, **extra) for k in range(L)) == sum(
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
    extra = sizes(module, H)
    base = module.initialize(I, H, seed=3, **extra)
    ref = module.init_params(I, H, seed=3, **extra)
    assert all(np.array_equal(base[k], ref[k]) for k in ref)  # "pytorch" is init_params
    assert all(np.abs(v).max() <= 1 / np.sqrt(H) for v in base.values())
    ortho = module.initialize(I, H, scheme="orthogonal", seed=3, dtype=np.float32, **extra)
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
        p = module.initialize(I, H, forget_bias=1.0, seed=3, **extra)
        total = sum(module._member(p, m) for m in keep)
        np.testing.assert_array_equal(total, np.ones(H))
    else:
        with pytest.raises(ValueError, match="keeps the old state"):
            module.initialize(I, H, forget_bias=1.0, **extra)
    if keep or write:
        p = module.initialize(I, H, scheme="orthogonal", chrono=100, seed=3, **extra)
        b_keep = sum(module._member(p, m) for m in keep) if keep else None
        b_write = sum(module._member(p, m) for m in write) if write else None
        b = b_keep if keep else -b_write
        assert (b >= 0).all() and (b <= np.log(99)).all() and b.std() > 0
        if keep and write:
            np.testing.assert_array_equal(b_write, -b_keep)
    else:
        with pytest.raises(ValueError, match="neither"):
            module.initialize(I, H, chrono=100, **extra)


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


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_a_bidirectional_state_dict_is_converted_per_direction_or_refused(name):
    """Without `reverse` a bidirectional state dict is refused (no silent forward-only conversion);
    each direction converts, the backward one computing torch's second half of the output over the
    reversed sequence; to_torch(reverse=True) writes the `_reverse` entries back."""
    torch = require("torch")
    module = symlstm.load(name)
    torch.manual_seed(0)
    net = getattr(torch.nn, module.TORCH_MODULE)(3, 4, bidirectional=True).double()
    state_dict = net.state_dict()
    with pytest.raises(ValueError, match=r"bidirectional.*reverse=False.*reverse=True"):
        module.from_torch(state_dict)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    with torch.no_grad():
        out = net(torch.from_numpy(x))[0].numpy()
    y_forward, _, _ = module.forward(module.from_torch(state_dict, reverse=False), x)
    y_backward, _, _ = module.forward(module.from_torch(state_dict, reverse=True), x[::-1].copy())
    np.testing.assert_allclose(y_forward, out[:, :, :4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_backward[::-1], out[:, :, 4:], rtol=0, atol=1e-12)
    back = module.to_torch(module.from_torch(state_dict, reverse=True), reverse=True)
    assert all(k.endswith("_reverse") and np.array_equal(v, state_dict[k].numpy()) for k, v in back.items())
