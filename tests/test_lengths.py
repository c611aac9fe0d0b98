"""Variable-length batches (`lengths=`) and backward without a loss on y (`dy=None`), in the generated
NumPy modules (optimised and reference): every cell, every check of `symlstm.testing`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import symlstm
from symlstm.backends import CODE_BACKENDS
from symlstm.testing import check_adjoint, check_full_fd, check_same, make_problem

from .conftest import CELL_NAMES, require, torch_net

LENGTHS = (5, 2, 0, 4)  # T = 5, B = 4: one full sequence, two shorter ones and an empty one


def with_lengths(module, lengths):
    """`module` with `lengths` bound: the contract `symlstm.testing` checks (forward, backward, and jvp
    where the module has one)."""
    bound = SimpleNamespace(
        CELL=module.CELL,
        STATES=module.STATES,
        BLOCKS=module.BLOCKS,
        SAME_SIZE=module.SAME_SIZE,
        SIZES=module.SIZES,
        STATE_SIZES=module.STATE_SIZES,
        OUTPUT_SIZE=module.OUTPUT_SIZE,
        init_params=module.init_params,
        forward=lambda params, x, state0=None, **kw: module.forward(params, x, state0, lengths=lengths, **kw),
        backward=module.backward,
    )
    if hasattr(module, "jvp"):
        bound.jvp = lambda *args, **kw: module.jvp(*args, lengths=lengths, **kw)
    return bound


def _sizes(module):
    return (4, 4) if module.SAME_SIZE else (3, 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_optimised_equals_reference_with_lengths(cell_name, dtype):
    """The masked recurrence of the optimised module against the reference, which runs each sequence
    alone over its own steps (an independent implementation of the same semantics)."""
    opt, ref = symlstm.load(cell_name), symlstm.load(cell_name, backend="reference")
    I, H = _sizes(opt)
    for workspace in (False, True):
        report = check_same(
            with_lengths(opt, LENGTHS), with_lengths(ref, LENGTHS), I, H, steps=5, batch=4,
            dtype=dtype, workspace=workspace,
        )  # fmt: skip
        assert report.ok, str(report)


def test_gradients_with_lengths_are_those_of_finite_differences(cell_name):
    module = with_lengths(symlstm.load(cell_name), LENGTHS)
    smooth = cell_name != "rnn_relu"
    problem = make_problem(module, *_sizes(module), steps=5, batch=4, seed=3, smooth=smooth)
    for check in (check_full_fd, check_adjoint):
        report = check(problem)
        assert report.ok, str(report)


def _runnable(backend):
    target = CODE_BACKENDS[backend]
    if not target.available():
        pytest.skip(f"{target.requires} is not installed: pip install 'symlstm[{target.extra}]'")
    return backend


@pytest.mark.parametrize("backend", ["numpy", "reference", "numba"])
def test_a_sequence_past_its_length_is_not_read_and_gets_no_gradient(backend):
    """Each sequence of the batch gives what it gives alone, over its own steps; padding (NaN here) is
    not read, its y is 0, its dy does not count and its dx is 0."""
    module = symlstm.load("lstm", backend=_runnable(backend))
    rng = np.random.default_rng(0)
    I, H, T = 3, 4, 5
    params = module.init_params(I, H, seed=1)
    x = rng.standard_normal((T, len(LENGTHS), I))
    state0 = tuple(rng.standard_normal((len(LENGTHS), H)) for _ in module.STATES)
    dy, dstate = (
        rng.standard_normal((T, len(LENGTHS), H)),
        tuple(rng.standard_normal((4, H)) for _ in range(2)),
    )
    for b, n in enumerate(LENGTHS):
        x[n:, b] = np.nan
        dy[n:, b] = np.nan
    y, state, cache = module.forward(params, x, state0, lengths=LENGTHS)
    dparams, dx, dstate0 = module.backward(params, cache, dy, dstate)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for b, n in enumerate(LENGTHS):
        rows = slice(b, b + 1)
        y_b, state_b, cache_b = module.forward(params, x[:n, rows], tuple(s[rows] for s in state0))
        grads_b, dx_b, dstate0_b = module.backward(
            params, cache_b, dy[:n, rows], tuple(s[rows] for s in dstate)
        )
        np.testing.assert_allclose(y[:n, rows], y_b, rtol=0, atol=1e-14)
        assert not y[n:, b].any() and not dx[n:, b].any()
        np.testing.assert_allclose(dx[:n, rows], dx_b, rtol=0, atol=1e-14)
        for ours, alone in [*zip(state, state_b), *zip(dstate0, dstate0_b)]:
            np.testing.assert_allclose(ours[rows], alone, rtol=0, atol=1e-14)
        for k in total:
            total[k] += grads_b[k]
    for k in total:
        np.testing.assert_allclose(dparams[k], total[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "reference"])
def test_dy_none_is_no_loss_on_y(backend, cell_name):
    module = symlstm.load(cell_name, backend=backend)
    p = make_problem(module, *_sizes(module), steps=4, batch=2, seed=2)
    _, _, cache = module.forward(p.params, p.x)
    none = module.backward(p.params, cache, None, p.w_state)
    zeros = module.backward(p.params, cache, np.zeros_like(p.w_y), p.w_state)
    for a, b in zip(
        [*none[0].values(), none[1], *none[2]], [*zeros[0].values(), zeros[1], *zeros[2]], strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_lengths_equal_to_t_change_nothing():
    lstm = symlstm.load("lstm")
    params = lstm.init_params(3, 4)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y1, s1, _ = lstm.forward(params, x)
    y2, s2, _ = lstm.forward(params, x, lengths=[5, 5])
    assert np.array_equal(y1, y2) and all(np.array_equal(a, b) for a, b in zip(s1, s2))


@pytest.mark.parametrize("backend", ["numpy", "reference", "numba"])
def test_bad_lengths_are_named(backend):
    lstm = symlstm.load("lstm", backend=_runnable(backend))
    params, x = lstm.init_params(3, 4), np.zeros((5, 2, 3))
    with pytest.raises(
        ValueError, match=r"lengths must be B = 2 integers \(one per sequence\), got shape \(3,\)"
    ):
        lstm.forward(params, x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\], got values from 1 to 6"):
        lstm.forward(params, x, lengths=[1, 6])
    with pytest.raises(ValueError, match="got values from -1"):
        lstm.forward(params, x, lengths=np.array([-1, 2]))
    with pytest.raises(TypeError, match="lengths must be integers, got dtype float64"):
        lstm.forward(params, x, lengths=[1.0, 2.0])
    with pytest.raises(TypeError, match="lengths must be B = 2 integers"):
        lstm.forward(params, x, lengths=3)


def test_lengths_as_torch_packs_them():
    """The optimised module with lengths against nn.LSTM/GRU/RNN on a PackedSequence (enforce_sorted
    False): outputs, final states and every gradient."""
    torch = require("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lengths = [5, 2, 3, 1]
    for name in [n for n in CELL_NAMES if symlstm.cell(n).torch]:
        spec, module = symlstm.cell(name), symlstm.load(name)
        torch.manual_seed(0)
        net = torch_net(spec, 3, 4, dtype=torch.float64)
        params = module.from_torch({k: v.detach().numpy() for k, v in net.state_dict().items()})
        p = make_problem(module, 3, 4, steps=5, batch=4, seed=1, params=params)
        x, state0, w_y, w_s = p.x, p.state0, p.w_y, p.w_state
        y, state, cache = module.forward(params, x, state0, lengths=lengths)
        dparams, dx, dstate0 = module.backward(params, cache, w_y, w_s)
        xt = torch.tensor(x, requires_grad=True)
        st = [torch.tensor(s[None], requires_grad=True) for s in state0]
        packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
        out, final = net(packed, st[0] if len(st) == 1 else tuple(st))
        yt, _ = pad_packed_sequence(out, total_length=5)
        final = (final,) if len(st) == 1 else final
        loss = (yt * torch.tensor(w_y)).sum() + sum(
            (f[0] * torch.tensor(w)).sum() for f, w in zip(final, w_s)
        )
        loss.backward()
        pairs = [
            (y, yt),
            (dx, xt.grad),
            *zip(state, (f[0] for f in final)),
            *zip(dstate0, (s.grad[0] for s in st)),
        ]
        pairs += [
            (dparams[ours], dict(net.named_parameters())[theirs].grad)
            for theirs, ours in module.TORCH_NAMES.items()
        ]
        for ours, theirs in pairs:
            np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-12, err_msg=name)


def test_drawn_cells_with_lengths():
    """A fixed sample of drawn cells (`symlstm.fuzz.random_cells`): with lengths, the optimised module
    equals the reference and its gradients those of finite differences."""
    require("hypothesis")
    from hypothesis import HealthCheck, Phase, given, settings

    from symlstm.backends import code_backend
    from symlstm.build.load import module_from_source
    from symlstm.random_cells import cell_source, random_cells

    @settings(max_examples=15, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
    @given(random_cells())
    def check(spec):
        d = symlstm.derive(spec)
        sources = {b: code_backend(b).render(d) for b in ("numpy", "reference")}
        opt, ref = (module_from_source(f"lengths.{b}.{spec.name}", s) for b, s in sources.items())
        I, H = (3, 3) if spec.same_size else (2, 3)
        report = check_same(with_lengths(opt, LENGTHS), with_lengths(ref, LENGTHS), I, H, steps=5, batch=4)
        assert report.ok, f"{cell_source(spec)}\n{report}"
        smooth = "relu" not in cell_source(spec)
        report = check_full_fd(make_problem(with_lengths(opt, LENGTHS), I, H, 5, 4, seed=1, smooth=smooth))
        assert report.ok, f"{cell_source(spec)}\n{report}"

    check()
