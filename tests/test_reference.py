"""The reference backend: one statement per equation, and the optimised module equal to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symlstm
from symlstm.testing import check_same

from .conftest import CELL_NAMES

# (I, H, T, B) and call options on both sides of the generated code's thresholds: T = 1, the
# input-projection chunk (T * B rows of 256), the backward coefficients' chunk (B * H above 4096),
# initial and final states given or None, a workspace reused from an earlier call.
CONFIGS = {
    "T=1": dict(steps=1, batch=2),
    "small": dict(steps=7, batch=3),
    "two projection chunks": dict(steps=130, batch=2),
    "two projection chunks of two steps": dict(steps=3, batch=100),
    "state0 and dstate None": dict(steps=3, batch=2, with_state0=False, with_dstate=False),
    "coefficient chunk of one step": dict(steps=4, batch=70, input_size=5, hidden_size=64),
    "reused workspace": dict(steps=5, batch=2, workspace=True),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_optimised_module_equals_the_reference(cell_name, config, dtype):
    opt, ref = symlstm.load(cell_name), symlstm.load(cell_name, backend="reference")
    options = dict(CONFIGS[config])
    hidden = options.pop("hidden_size", 4)
    inputs = hidden if opt.SAME_SIZE else options.pop("input_size", 3)
    options.pop("input_size", None)
    report = check_same(opt, ref, inputs, hidden, dtype=dtype, **options)
    assert report.ok, str(report)


def test_a_planted_difference_is_caught():
    """A reference that differs from the optimised module in one gradient fails the comparison."""
    opt, ref = symlstm.load("lstm"), symlstm.load("lstm", backend="reference")

    class Planted:
        STATES, init_params, forward, jvp = ref.STATES, ref.init_params, ref.forward, ref.jvp

        @staticmethod
        def backward(params, cache, dy, dstate=None):
            dparams, dx, dstate0 = ref.backward(params, cache, dy, dstate)
            dparams["W_hh"][5, 1] += 1e-6
            return dparams, dx, dstate0

    report = check_same(opt, Planted, 3, 4)
    assert not report.ok and [b.block for b in report.failures] == ["dW_hh"]


@pytest.mark.parametrize("name", CELL_NAMES)
def test_reference_reads_like_the_document(name):
    """Every forward, adjoint and gradient equation is one numbered statement, in the document's order."""
    text = Path(symlstm.load(name, backend="reference").__file__).read_text()
    d = symlstm.derive(name)
    positions = [text.index(f"# ({k}) ") for k in sorted(d.equation_numbers.values())]
    assert positions == sorted(positions)
