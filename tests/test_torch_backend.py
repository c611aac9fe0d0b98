"""The torch backend (generated/torch/<cell>.py): the derived backward as a torch.autograd.Function
over the whole sequence and an nn.Module with torch.nn.LSTM's conventions. Checked by gradcheck for
every cell, against torch.nn.RNN/LSTM/GRU (stacked, bidirectional, batch_first, given states) and
against the NumPy backend."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import symlstm
from symlstm.backends import code_backend
from symlstm.build.load import module_from_source
from symlstm.testing import check_same, dims_of, state_shapes

from .conftest import CELL_NAMES, require, sizes, torch_net
from .test_lengths import LENGTHS, with_lengths

torch = require("torch")

TORCH_CELLS = [n for n in CELL_NAMES if symlstm.cell(n).torch]


def _sizes(module):
    return (2, 2) if module.SAME_SIZE else (3, 2)


def _past(lengths, T):
    return torch.arange(T)[:, None, None] >= torch.tensor(lengths)[None, :, None]


def _inputs(module, I, H, T=4, B=3, seed=0):
    """float64 x, states and stored parameters (requiring grad) for SequenceFunction.apply."""
    g = torch.Generator().manual_seed(seed)
    extra = sizes(module, H)
    params = module.init_params(I, H, seed=seed, **extra)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=g, requires_grad=True)
    shapes = state_shapes(module, B, dims_of(module, I, H, extra), len(module.STATES))
    states = [torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True) for shape in shapes]
    weights = [torch.tensor(params[k], requires_grad=True) for k in module.BLOCKS]
    return x, states, weights


@pytest.mark.parametrize("lengths", [None, (3, 1)], ids=["full", "lengths"])
def test_gradcheck(cell_name, lengths):
    """torch.autograd.gradcheck of SequenceFunction: its backward against torch's finite differences,
    for x, every initial state and every stored parameter, with and without steps past a length."""
    module = symlstm.load(cell_name, backend="torch")
    x, states, weights = _inputs(module, *_sizes(module), T=3, B=2)
    past = None if lengths is None else _past(lengths, x.shape[0])

    def run(x, *rest):
        return module.SequenceFunction.apply(past, x, *rest)

    assert torch.autograd.gradcheck(run, (x, *states, *weights), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_catches_a_planted_backward_error():
    """The same check on a module whose backward has one factor wrong (d_c_prev = d_c * i, not * f)."""
    source = code_backend("torch").render(symlstm.derive(symlstm.cell("lstm")))
    assert source.count("d_c_prev = d_c * f") == 1
    broken = module_from_source(
        "torch.planted.lstm", source.replace("d_c_prev = d_c * f", "d_c_prev = d_c * i")
    )
    x, states, weights = _inputs(broken, 2, 3)
    from torch.autograd.gradcheck import GradcheckError

    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(lambda *a: broken.SequenceFunction.apply(None, *a), (x, *states, *weights))


def test_the_step_has_no_autograd_tape():
    """One node in the autograd graph per sequence: the outputs' grad_fn is SequenceFunction's
    backward, whose inputs are x, the states and the parameters (no per-step nodes)."""
    module = symlstm.load("lstm", backend="torch")
    x, states, weights = _inputs(module, 2, 3, T=50)
    y, *_ = module.SequenceFunction.apply(None, x, *states, *weights)
    assert type(y.grad_fn).__name__ == "SequenceFunctionBackward"
    leaves = [fn for fn, _ in y.grad_fn.next_functions]
    assert all(type(fn).__name__ == "AccumulateGrad" for fn in leaves) and len(leaves) == 1 + 2 + 4


CONFIGS = {
    "one layer": dict(),
    "given states": dict(state=True),
    "2 layers": dict(num_layers=2, state=True),
    "bidirectional": dict(bidirectional=True, state=True),
    "2 layers bidirectional batch_first": dict(
        num_layers=2, bidirectional=True, batch_first=True, state=True
    ),
    "no bias": dict(bias=False),
    "unbatched": dict(unbatched=True, state=True),
}


def _pair(name, config, I=3, H=4):
    """(torch.nn module, our Layer with its state dict loaded, kwargs) for a cell torch.nn has."""
    spec = symlstm.cell(name)
    kwargs = {k: config[k] for k in ("num_layers", "bidirectional", "batch_first", "bias") if k in config}
    torch.manual_seed(0)
    net = torch_net(spec, I, H, dtype=torch.float64, **kwargs)
    module = symlstm.load(name, backend="torch")
    ours = module.Layer(I, H, dtype=torch.float64, **kwargs, **sizes(module, H))
    ours.load_state_dict(net.state_dict())  # strict: every name matches
    return net, ours, kwargs


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
@pytest.mark.parametrize("name", TORCH_CELLS)
def test_layer_equals_torch_nn(name, config):
    """Outputs, final states and every gradient (input, initial states, each parameter) equal those
    of torch.nn.RNN/LSTM/GRU with the same state dict."""
    options = CONFIGS[config]
    net, ours, kwargs = _pair(name, options)
    T, B, I, H = 5, 2, 3, 4
    L, D = kwargs.get("num_layers", 1), 2 if kwargs.get("bidirectional") else 1
    g = torch.Generator().manual_seed(1)
    shape = (T, I) if options.get("unbatched") else (B, T, I) if kwargs.get("batch_first") else (T, B, I)
    x = torch.randn(*shape, dtype=torch.float64, generator=g)
    module = symlstm.load(name, backend="torch")
    count = len(module.STATES)
    lead = (L * D,) if options.get("unbatched") else (L * D, B)
    dims = dims_of(module, I, H, sizes(module, H))
    states = [
        torch.randn(*lead, dims[label], dtype=torch.float64, generator=g) for label in module.STATE_SIZES
    ]
    results = []
    for module in (net, ours):
        xi = x.clone().requires_grad_()
        si = [s.clone().requires_grad_() for s in states]
        given = None if not options.get("state") else si[0] if count == 1 else tuple(si)
        out, final = module(xi, given)
        final = (final,) if count == 1 else final
        w = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        loss = (out * w).sum() + sum((f * (k + 1)).sum() for k, f in enumerate(final))
        loss.backward()
        grads = [xi.grad, *((s.grad for s in si) if options.get("state") else ())]
        grads += [p.grad for _, p in sorted(module.named_parameters())]
        results.append([out, *final, *grads])
    assert [n for n, _ in sorted(net.named_parameters())] == [n for n, _ in sorted(ours.named_parameters())]
    for theirs, mine in zip(*results, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_numpy_contract_equals_the_numpy_backend(cell_name, dtype):
    """forward/backward of the torch module (run by its torch code) against the optimised NumPy
    module, with and without lengths."""
    mine, theirs = symlstm.load(cell_name, backend="torch"), symlstm.load(cell_name)
    I, H = (4, 4) if mine.SAME_SIZE else (3, 4)
    for a, b in ((mine, theirs), (with_lengths(mine, LENGTHS), with_lengths(theirs, LENGTHS))):
        report = check_same(a, b, I, H, steps=5, batch=4, dtype=dtype)
        assert report.ok, str(report)


def test_layer_equals_the_numpy_backend_layer_by_layer(cell_name):
    """A 2-layer Layer against the NumPy module run layer after layer on the same parameters: y, the
    final states, dx and the parameter gradients."""
    torch_module, numpy_module = symlstm.load(cell_name, backend="torch"), symlstm.load(cell_name)
    I, H = _sizes(torch_module)
    I = H if torch_module.SAME_SIZE else I
    layer = torch_module.Layer(I, H, num_layers=2, dtype=torch.float64, **sizes(torch_module, H))
    x = torch.randn(
        4, 2, I, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True
    )
    out, final = layer(x)
    final = (final,) if len(torch_module.STATES) == 1 else final
    out.sum().backward()
    names = torch_module.STATE_DICT_NAMES
    params = [
        {k: getattr(layer, names[k].replace("_l0", f"_l{n}")).detach().numpy() for k in names}
        for n in range(2)
    ]
    y0, s0, c0 = numpy_module.forward(params[0], x.detach().numpy())
    y1, s1, c1 = numpy_module.forward(params[1], np.array(y0))
    g1, dx1, _ = numpy_module.backward(params[1], c1, np.ones_like(y1))
    g0, dx0, _ = numpy_module.backward(params[0], c0, dx1)
    np.testing.assert_allclose(out.detach().numpy(), y1, rtol=0, atol=1e-12)
    for k in range(len(torch_module.STATES)):
        np.testing.assert_allclose(final[k].detach().numpy(), np.stack([s0[k], s1[k]]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), dx0, rtol=0, atol=1e-11)
    for n, grads in enumerate((g0, g1)):
        for k, name in names.items():
            got = getattr(layer, name.replace("_l0", f"_l{n}")).grad.numpy()
            np.testing.assert_allclose(
                got, grads[k], rtol=0, atol=1e-11, err_msg=f"{cell_name} {name} layer {n}"
            )


def test_a_user_cell_trains_in_torch():
    """symlstm.load(spec, backend="torch") for a cell declared by the user (torch.nn has none): its
    Layer's gradients against gradcheck, and names from the fused groups."""
    spec = symlstm.cell("peephole")
    module = symlstm.load(spec, backend="torch", fresh=True)
    layer = module.Layer(2, 3, dtype=torch.float64)
    assert sorted(n for n, _ in layer.named_parameters()) == sorted(module.STATE_DICT_NAMES.values())
    assert "weight_p_l0" in module.STATE_DICT_NAMES.values() and "bias_l0" in module.STATE_DICT_NAMES.values()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *w: layer(x)[0], (x,))


def test_bad_input_is_named():
    lstm = symlstm.load("lstm", backend="torch")
    layer = lstm.Layer(3, 4, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"input must be 3-D \(T, B, I\) or 2-D \(T, I\) unbatched, got shape"
    ):
        layer(torch.zeros(2, 3, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="input size 2 is not this layer's input_size 3"):
        layer(torch.zeros(2, 3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"input is torch\.float32 on cpu, the parameters torch\.float64"):
        layer(torch.zeros(2, 3, 3))
    with pytest.raises(
        ValueError, match=r"state c must have shape \(1, 3, 4\) \(L \* D, B, H\), got \(2, 3, 4\)"
    ):
        layer(torch.zeros(2, 3, 3, dtype=torch.float64), (torch.zeros(1, 3, 4), torch.zeros(2, 3, 4)))
    with pytest.raises(ValueError, match=r"state must be a tuple of 2 tensors \('h', 'c'\)"):
        layer(torch.zeros(2, 3, 3, dtype=torch.float64), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="num_layers must be a positive integer, got 0"):
        lstm.Layer(3, 4, num_layers=0)
    same = symlstm.load("janet", backend="torch")
    if same.SAME_SIZE:
        with pytest.raises(ValueError, match="needs input size == hidden size"):
            same.Layer(3, 4)


def test_without_torch_the_module_says_which_extra(monkeypatch):
    """The module renders without torch; run without it, it raises ImportError naming the extra."""
    source = code_backend("torch").render(symlstm.derive(symlstm.cell("gru")))
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'symlstm\[torch\]'"):
        module_from_source("torch.without.gru", source + "\n# without torch\n")


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=GPU)])
@pytest.mark.parametrize("name", TORCH_CELLS)
@pytest.mark.parametrize(
    "layers, bidirectional", [(1, False), (2, True)], ids=["one layer", "2 layers bidirectional"]
)
def test_a_packed_sequence_as_torch_nn_runs_it(name, layers, bidirectional, device):
    """A PackedSequence in (lengths out of order, one of length 1): the output packed as torch.nn packs
    it, the final states at each sequence's length, and every gradient equal to torch.nn's; on the CPU,
    and on a GPU where there is one."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    net, ours, _ = _pair(name, dict(num_layers=layers, bidirectional=bidirectional))
    net, ours = net.to(device), ours.to(device)
    T, B, I = 5, 4, 3
    lengths = torch.tensor([3, 5, 1, 4])
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(device)
    results = []
    for module in (net, ours):
        xi = x.clone().requires_grad_()
        out, final = module(pack_padded_sequence(xi, lengths, enforce_sorted=False))
        final = (final,) if isinstance(final, torch.Tensor) else final
        padded, got_lengths = pad_packed_sequence(out)
        assert torch.equal(got_lengths, lengths)
        w = torch.randn(padded.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        loss = (padded * w.to(device)).sum() + sum((f * (k + 1)).sum() for k, f in enumerate(final))
        loss.backward()
        grads = [xi.grad, *(p.grad for _, p in sorted(module.named_parameters()))]
        results.append([out.data, out.batch_sizes, out.sorted_indices, *final, *grads])
    for theirs, mine in zip(*results, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_dropout_between_layers_as_torch_nn():
    """dropout applies to the input of every layer but the first, in training mode only: with p = 1
    layer 2 reads zeros (as torch.nn.LSTM's does); in eval mode it changes nothing."""
    x = torch.randn(5, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for train in (True, False):
        torch.manual_seed(0)
        net = torch.nn.LSTM(3, 4, num_layers=2, dropout=1.0, dtype=torch.float64).train(train)
        ours = symlstm.load("lstm", backend="torch").Layer(
            3, 4, num_layers=2, dropout=1.0, dtype=torch.float64
        )
        ours.load_state_dict(net.state_dict())
        ours.train(train)
        torch.testing.assert_close(ours(x)[0], net(x)[0], rtol=0, atol=1e-12)
    assert "dropout=1.0" in repr(ours)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\]"):
        symlstm.load("lstm", backend="torch").Layer(3, 4, dropout=1.5)


def _run_on_meta(module) -> None:
    """Layer forward and backward with its parameters and input on torch's 'meta' device (shapes, no
    values), 2 layers, bidirectional, batch_first. (Not a PackedSequence: unpacking one copies its
    indices to the CPU, which a meta tensor cannot do.)"""
    I, H = _sizes(module)
    layer = module.Layer(I, H, num_layers=2, bidirectional=True, batch_first=True, **sizes(module, H))
    layer = layer.to("meta")
    x = torch.empty(4, 5, I, device="meta", requires_grad=True)
    out, final = layer(x)
    finals = (final,) if isinstance(final, torch.Tensor) else final
    (out.sum() + sum(f.sum() for f in finals)).backward()
    assert out.device.type == "meta" and all(f.device.type == "meta" for f in finals)
    assert x.grad is not None and x.grad.device.type == "meta"
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.device.type == "meta" and p.grad.shape == p.shape, name


def test_the_layer_runs_where_its_parameters_are(cell_name):
    """Every tensor the module makes is made on the device of its input and parameters: on the 'meta'
    device (a stand-in for a GPU here) a tensor made on the CPU instead would mix devices and raise."""
    _run_on_meta(symlstm.load(cell_name, backend="torch"))


def test_a_tensor_made_on_the_cpu_is_caught_on_another_device():
    """The check above on a module whose zero initial states are made on the CPU, not the input's device."""
    source = code_backend("torch").render(symlstm.derive(symlstm.cell("lstm")))
    made_here = "x.new_zeros((count, B, n))"
    assert source.count(made_here) == 1
    broken = module_from_source(
        "torch.planted.device", source.replace(made_here, "torch.zeros((count, B, n), dtype=x.dtype)")
    )
    with pytest.raises(RuntimeError, match="device"):
        _run_on_meta(broken)
