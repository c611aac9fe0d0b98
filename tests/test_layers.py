"""Stacked and bidirectional runs (`forward_layers`, `backward_layers` and the interop of stacks) in the
generated NumPy-contract modules: equal to torch.nn.RNN/LSTM/GRU(num_layers, bidirectional) with and
without a PackedSequence, full finite differences of every parameter of every layer and direction, every
backend equal to the NumPy module, and the errors for malformed stacks."""

from __future__ import annotations

import numpy as np
import pytest

import symlstm
from symlstm.backends import CODE_BACKENDS
from symlstm.testing import Problem, check_full_fd, dims_of, output_size

from .conftest import require, sizes, torch_net

TORCH_CELLS = [name for name in sorted(symlstm.CELLS) if symlstm.cell(name).torch]
# (num_layers, bidirectional, lengths): T = 4, B = 3; lengths with a full, a short and an empty sequence.
STACKS = [
    (1, True, None),
    (2, False, None),
    (2, True, None),
    (3, True, (4, 1, 0)),
    (2, False, (2, 4, 3)),
]


class Stacked:
    """A stack of `module` as one module of the common contract, for `symlstm.testing`: its params
    are every layer's and direction's, keyed "l<k>.<name>" and "l<k>_reverse.<name>"."""

    def __init__(self, module, num_layers, bidirectional, lengths=None):
        self.module, self.lengths = module, lengths
        self.L, self.D = num_layers, 2 if bidirectional else 1
        self.CELL, self.STATES = f"{module.CELL} stack", module.STATES

    def key(self, k, d, name):
        return f"l{k}{'_reverse' if d else ''}.{name}"

    def flat(self, layers):
        return {
            self.key(k, d, n): v
            for k in range(self.L)
            for d in range(self.D)
            for n, v in layers[k][d].items()
        }

    def nested(self, params):
        return [[{n: params[self.key(k, d, n)] for n in self.module.BLOCKS} for d in range(self.D)]
                for k in range(self.L)]  # fmt: skip

    def forward(self, params, x, state0=None):
        return self.module.forward_layers(self.nested(params), x, state0, lengths=self.lengths)

    def backward(self, params, cache, dy, dstate=None):
        dlayers, dx, dstate0 = self.module.backward_layers(self.nested(params), cache, dy, dstate)
        return self.flat(dlayers), dx, dstate0


def problem(module, num_layers, bidirectional, lengths, *, I=3, H=2, T=4, B=3, dtype=np.float64,
            with_dstate=True, seed=0):  # fmt: skip
    """A seeded problem for the stack: inputs, states (L * D, B, H) and loss weights standard normal."""
    stack = Stacked(module, num_layers, bidirectional, lengths)
    rng = np.random.default_rng(seed)
    extra = sizes(module, H)
    layers = module.init_layers(
        I, H, num_layers, bidirectional=bidirectional, seed=seed, dtype=dtype, **extra
    )
    dims = dims_of(module, I, H, extra)
    count, width = stack.L * stack.D, stack.D * output_size(module, dims)
    shapes = [(count, B, dims[label]) for label in module.STATE_SIZES]
    state0 = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    w_state = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    return Problem(
        stack, stack.flat(layers), rng.standard_normal((T, B, I)).astype(dtype), state0,
        rng.standard_normal((T, B, width)).astype(dtype), w_state if with_dstate else None, stack.CELL,
        smooth=bool(getattr(module, "SMOOTH", True)),
    )  # fmt: skip


def _sizes(module):
    return (2, 2) if module.SAME_SIZE else (3, 2)


# -- the stack's gradient: full finite differences -------------------------------------------------------


@pytest.mark.parametrize("num_layers, bidirectional, lengths", STACKS, ids=str)
def test_every_cell_stack_passes_full_fd(cell_name, num_layers, bidirectional, lengths):
    module = symlstm.load(cell_name)
    if module.SAME_SIZE and bidirectional and num_layers > 1:
        pytest.skip("a same-size cell cannot read a bidirectional layer's 2 H outputs (tested below)")
    I, H = _sizes(module)
    report = check_full_fd(problem(module, num_layers, bidirectional, lengths, I=I, H=H))
    assert report.ok, str(report)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("steps, with_dstate", [(1, True), (4, False), (3, True)], ids=str)
def test_lstm_stack_full_fd_at_t1_without_dstate_and_in_float32(dtype, steps, with_dstate):
    module = symlstm.load("lstm")
    lengths = (steps, max(steps - 1, 0), 0)
    p = problem(module, 2, True, lengths, T=steps, dtype=dtype, with_dstate=with_dstate, seed=3)
    report = check_full_fd(p)
    assert report.ok, str(report)
    _, _, cache = p.module.forward(p.params, p.x, p.state0)
    dparams, dx, dstate0 = p.module.backward(p.params, cache, p.w_y, p.w_state)
    assert all(v.dtype == dtype for v in [*dparams.values(), dx, *dstate0])


def test_a_planted_error_in_the_reverse_direction_is_caught(monkeypatch):
    """backward_layers with the reverse direction's sequences not reversed: full FD fails on x."""
    import sys

    module = symlstm.load("gru")
    p = problem(module, 1, True, (4, 2, 3))
    assert check_full_fd(p).ok
    real = module._reversed

    def wrong(sequence, order):
        return sequence if sys._getframe(1).f_code.co_name == "backward_layers" else real(sequence, order)

    monkeypatch.setattr(module, "_reversed", wrong)
    report = check_full_fd(p)
    assert not report.ok
    assert not {b.block: b for b in report.blocks}["x"].ok


# -- every backend equal to the NumPy module --------------------------------------------------------------


@pytest.mark.parametrize("backend", [b for b in CODE_BACKENDS if b not in ("numpy", "jax")])
def test_every_backend_runs_stacks_as_the_numpy_module(backend):
    target = CODE_BACKENDS[backend]
    if not target.available():
        pytest.skip(f"{target.requires} is not installed: pip install 'symlstm[{target.extra}]'")
    lengths = None if backend == "numba" else (4, 1, 3)  # numba's kernels run all T steps
    for name in ("lstm", "peephole"):
        ours, theirs = symlstm.load(name), symlstm.load(name, backend=backend)
        p = problem(ours, 2, True, lengths, seed=5)
        layers = p.module.nested(p.params)
        y, state, cache = ours.forward_layers(layers, p.x, p.state0, lengths=lengths)
        grads = ours.backward_layers(layers, cache, p.w_y, p.w_state)
        y2, state2, cache2 = theirs.forward_layers(layers, p.x, p.state0, lengths=lengths)
        grads2 = theirs.backward_layers(layers, cache2, p.w_y, p.w_state)
        np.testing.assert_allclose(y2, y, rtol=1e-10, atol=1e-12)
        for a, b in zip([*state, grads[1], *grads[2]], [*state2, grads2[1], *grads2[2]]):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
        for k in range(2):
            for d in range(2):
                for key in ours.BLOCKS:
                    np.testing.assert_allclose(grads2[0][k][d][key], grads[0][k][d][key], rtol=1e-10,
                                               atol=1e-12)  # fmt: skip


# -- torch.nn: values and gradients, padded and packed ----------------------------------------------------


@pytest.mark.parametrize("num_layers, bidirectional, lengths", STACKS, ids=str)
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_equal_to_torch_nn(cell, num_layers, bidirectional, lengths):
    torch = require("torch")
    module = symlstm.load(cell)
    I, H, T, B = 3, 4, 4, 3
    torch.manual_seed(0)
    net = torch_net(symlstm.cell(cell), I, H, num_layers=num_layers, bidirectional=bidirectional,
                    dtype=torch.float64)  # fmt: skip
    D = 2 if bidirectional else 1
    p = problem(module, num_layers, bidirectional, lengths, I=I, H=H, T=T, B=B, seed=1)
    x, state0, w_y, w_state = p.x, p.state0, p.w_y, p.w_state

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in state0]
    given = st[0] if len(st) == 1 else tuple(st)
    if lengths is None:
        out, final = net(xt, given)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths).clamp(min=1),
                                                         enforce_sorted=False)  # fmt: skip
        out, final = net(packed, given)
        out = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0]
    final = (final,) if len(st) == 1 else final
    loss = (out * torch.tensor(w_y)).sum() + sum((f * torch.tensor(w)).sum() for f, w in zip(final, w_state))
    loss.backward()

    lengths_here = None if lengths is None else tuple(max(n, 1) for n in lengths)  # torch needs >= 1
    layers = module.from_torch_layers(net.state_dict())
    assert len(layers) == num_layers and all(len(layer) == D for layer in layers)
    y, state, cache = module.forward_layers(layers, x, state0, lengths=lengths_here)
    dlayers, dx, dstate0 = module.backward_layers(layers, cache, w_y, w_state)
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    for ours, theirs in zip(state, final):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(dstate0, st):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    theirs = {name: p.grad.numpy() for name, p in net.named_parameters()}
    ours = module.to_torch_layers(dlayers)
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_torch_state_dict_round_trip_and_refusals():
    torch = require("torch")
    module = symlstm.load("lstm")
    net = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    layers = module.from_torch_layers(net.state_dict())
    back = module.to_torch_layers(layers)
    assert sorted(back) == sorted(net.state_dict())
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(back[name], value.numpy())
    projected = torch.nn.LSTM(3, 4, proj_size=2).state_dict()
    with pytest.raises(ValueError, match=r"does not use: \['weight_hr_l0'\]"):
        module.from_torch_layers(projected)
    gap = {k: v for k, v in torch.nn.LSTM(3, 4, num_layers=3).state_dict().items() if "_l1" not in k}
    with pytest.raises(ValueError, match="does not use"):
        module.from_torch_layers(gap)
    with pytest.raises(KeyError, match="no layer 0"):
        module.from_torch_layers({"weight": np.zeros(2)})


# -- errors: malformed stacks, states and caches ----------------------------------------------------------


def test_malformed_stacks_are_refused_with_clear_errors():
    module = symlstm.load("lstm")
    layers = module.init_layers(3, 4, 2, bidirectional=True)
    x = np.zeros((5, 2, 3))
    with pytest.raises(TypeError, match="non-empty list of layers"):
        module.forward_layers([], x)
    with pytest.raises(TypeError, match="non-empty list of layers"):
        module.forward_layers(layers[0][0], x)
    with pytest.raises(TypeError, match=r"layers\[1\] must be a list of 1 or 2"):
        module.forward_layers([layers[0], layers[1][0]], x)
    with pytest.raises(ValueError, match=r"every layer must have 2 direction\(s\)"):
        module.forward_layers([layers[0], layers[1][:1]], x)
    wrong = module.init_layers(3, 4, 2)  # layer 1 reads 4, a bidirectional stack's layer 1 reads 8
    with pytest.raises(ValueError, match=r"layers\[1\]\[0\]\['W_ih'\] must have shape \(16, 8\)"):
        module.forward_layers([layers[0], wrong[1] * 2], x)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 3\)"):
        module.forward_layers(layers, np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match=r"state0\[1\] \(c\) must have shape \(4, 2, 4\)"):
        module.forward_layers(layers, x, (np.zeros((4, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match="must be a tuple of 2"):
        module.forward_layers(layers, x, np.zeros((4, 2, 4)))
    y, _, cache = module.forward_layers(layers, x)
    assert y.shape == (5, 2, 8)
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2, 8\)"):
        module.backward_layers(layers, cache, np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="not those of the cache"):
        module.backward_layers(module.init_layers(3, 4, 1, bidirectional=True), cache, None)
    with pytest.raises(ValueError, match="cache forward_layers returned"):
        module.backward_layers(layers, module.forward(layers[0][0], x)[2], None)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        module.init_layers(3, 4, 0)


def test_a_same_size_cell_refuses_a_bidirectional_stack():
    """Layer 1 of a bidirectional stack reads 2 H values, which a cell needing I == H cannot."""
    from .test_user_cells import highway

    module = symlstm.load(highway())
    assert module.SAME_SIZE
    with pytest.raises(ValueError, match="input_size == hidden_size"):
        module.init_layers(3, 3, 2, bidirectional=True)
    one = module.init_params(3, 3)
    with pytest.raises(ValueError, match="bidirectional stack's layer 1"):
        module.forward_layers([[one, one], [one, one]], np.zeros((2, 1, 3)))
    y, _, _ = module.forward_layers([[one], [one]], np.zeros((2, 1, 3)))  # one direction: fine
    assert y.shape == (2, 1, 3)
