"""Torch tensors handed to a generated module: converted by `from_torch` without warnings, refused as
parameters or inputs with the same TypeError and a hint."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symlstm
from tests.conftest import require, torch_net

torch = require("torch")

TORCH_CELLS = [n for n in sorted(symlstm.CELLS) if symlstm.cell(n).torch]


@pytest.mark.parametrize("name", TORCH_CELLS)
@pytest.mark.parametrize("source", ["state_dict", "named_parameters"])
def test_from_torch_reads_tensors_without_warnings(name, source):
    spec, module = symlstm.cell(name), symlstm.load(name)
    net = torch_net(spec, 3, 4, dtype=torch.float64)
    tensors = net.state_dict() if source == "state_dict" else dict(net.named_parameters())
    if source == "named_parameters":
        assert all(t.requires_grad for t in tensors.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy DeprecationWarning (the __array__ copy keyword) fails
        params = module.from_torch(tensors)
    for ours, theirs in zip(module.BLOCKS, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")):
        expected = tensors[theirs].detach().numpy()
        assert params[ours].dtype == np.float64 and np.array_equal(params[ours], expected)
        assert not np.shares_memory(params[ours], expected)  # a copy: the module's weights stay its own


def test_from_torch_names_a_dtype_numpy_lacks():
    net = torch.nn.LSTM(3, 4).to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"lstm.from_torch: state_dict\['weight_ih_l0'\] has no numpy dtype"):
        symlstm.load("lstm").from_torch(net.state_dict())


def test_a_tensor_in_params_is_the_same_mistake_as_a_tensor_for_x():
    module = symlstm.load("lstm")
    params = module.init_params(3, 4)
    x = np.zeros((2, 1, 3))
    hint = "got a torch Tensor (convert it with .detach().cpu().numpy())"
    with pytest.raises(TypeError, match=r"lstm: x must be a numpy array of shape \(T, B, 3\)") as on_x:
        module.forward(params, torch.zeros(2, 1, 3, dtype=torch.float64))
    bad = {**params, "W_hh": torch.from_numpy(params["W_hh"])}
    with pytest.raises(TypeError, match=r"lstm: params\['W_hh'\] must be a numpy array") as on_params:
        module.forward(bad, x)
    assert hint in str(on_x.value) and hint in str(on_params.value)
    parameter = {**params, "W_ih": torch.nn.Parameter(torch.from_numpy(params["W_ih"]))}
    with pytest.raises(TypeError, match="got a torch Parameter"):
        module.forward(parameter, x)
