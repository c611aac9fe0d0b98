"""What forward hands the caller cannot corrupt the gradients backward computes."""

from __future__ import annotations

import numpy as np
import pytest

import symlstm
from symlstm.backends import CODE_BACKENDS

from .conftest import CELL_NAMES, sizes


def _run(module, seed=0):
    I = 4 if module.SAME_SIZE else 3
    params = module.init_params(I, 4, seed=seed, **sizes(module, 4))
    return params, np.random.default_rng(seed).standard_normal((5, 2, I))


# numba (a JIT of seconds per cell) is checked on a sample of cells in tests/test_numba.py; jax has
# its own contract, with immutable arrays (nothing a caller holds can be written into).
WRITABLE = [
    name for name, b in CODE_BACKENDS.items() if name != "numba" and b.contract_path is None and b.available()
]


@pytest.mark.parametrize("backend", WRITABLE)
@pytest.mark.parametrize("name", CELL_NAMES)
def test_writing_into_y_or_the_state_cannot_change_the_gradients(name, backend):
    """np.clip(y, ..., out=y): refused (y is read-only) or without effect on backward; the same for the
    final states; and a y made writeable again and changed is caught by the cache check."""
    module = symlstm.load(name, backend=backend)
    params, x = _run(module)
    y, state, cache = module.forward(params, x)
    want = module.backward(params, module.forward(params, x)[2], np.ones_like(y))
    try:
        np.clip(y, -0.1, 0.1, out=y)
    except ValueError as err:
        assert "read-only" in str(err)
    for s in state:
        s *= 3.0  # the final states are the caller's own copies
    try:
        got = module.backward(params, cache, np.ones_like(y))
    except ValueError as err:  # a change to what backward reads is refused, never used
        assert "changed in place" in str(err)
        return
    for a, b in zip([*want[0].values(), want[1], *want[2]], [*got[0].values(), got[1], *got[2]]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_a_y_made_writeable_and_changed_is_refused(name):
    module = symlstm.load(name)
    params, x = _run(module)
    y, _, cache = module.forward(params, x)
    assert not y.flags.writeable
    y.flags.writeable = True
    y[2, 1, 0] += 1e-3
    with pytest.raises(ValueError, match=r"\['y'\] changed in place between forward and backward.*read-only"):
        module.backward(params, cache, np.ones_like(y))
