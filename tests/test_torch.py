"""Independent reference: torch.nn.RNN / LSTM / GRU with the same weights (optional extra)."""

from __future__ import annotations

import numpy as np
import pytest

import symlstm
from symlstm.testing import make_problem
from tests.conftest import require, sizes, torch_net

torch = require("torch")


@pytest.mark.parametrize("name", [n for n in sorted(symlstm.CELLS) if symlstm.cell(n).torch])
@pytest.mark.parametrize(("steps", "batch"), [(1, 1), (6, 3)])
def test_matches_torch_float64(name, steps, batch):
    spec = symlstm.cell(name)
    module = symlstm.load(name)
    I, H = 3, 5
    torch.manual_seed(0)
    net = torch_net(spec, I, H, dtype=torch.float64)
    params = module.from_torch({k: v.detach().numpy() for k, v in net.state_dict().items()})
    p = make_problem(module, I, H, steps, batch, seed=steps, params=params)
    x, state0, w_y, w_s = p.x, p.state0, p.w_y, p.w_state

    y, state, cache = module.forward(params, x, state0)
    dparams, dx, dstate0 = module.backward(params, cache, w_y, w_s)

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in state0]
    yt, final = net(xt, st[0] if len(st) == 1 else tuple(st))
    final = (final,) if len(st) == 1 else final
    loss = (yt * torch.tensor(w_y)).sum() + sum((f[0] * torch.tensor(w)).sum() for f, w in zip(final, w_s))
    loss.backward()

    def close(ours, theirs, what):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10, err_msg=f"{name}: {what}")

    close(y, yt.detach().numpy(), "y")
    for k, (ours, theirs) in enumerate(zip(state, final)):
        close(ours, theirs.detach().numpy()[0], f"final state {k}")
    close(dx, xt.grad.numpy(), "dx")
    grads = dict(net.named_parameters())
    for theirs, ours in module.TORCH_NAMES.items():
        close(dparams[ours], grads[theirs].grad.numpy(), f"d{ours}")
    for k, (ours, theirs) in enumerate(zip(dstate0, st)):
        close(ours, theirs.grad.numpy()[0], f"dstate0[{k}]")


@pytest.mark.parametrize("name", [n for n in sorted(symlstm.CELLS) if symlstm.cell(n).torch])
def test_round_trip_and_parameter_count(name):
    spec = symlstm.cell(name)
    module = symlstm.load(name)
    net = torch_net(spec, 7, 11)
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    back = module.to_torch(module.from_torch(sd))
    assert back.keys() == sd.keys() and all(np.array_equal(back[k], sd[k]) for k in sd)
    assert spec.param_count(7, 11, **sizes(module, 11)) == sum(p.numel() for p in net.parameters())
