"""The reference backend: one statement per equation, and the optimised module equal to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symlstm
from symlstm.plan import plan_cell
from symlstm.testing import REALISTIC, check_same, check_same_at, check_torch, configurations

from .conftest import CELL_NAMES, require


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_optimised_module_equals_the_reference(cell_name, dtype):
    """At the configurations the plan gives (`symlstm.testing.configurations`): T = 1, state0 and
    dstate given and None, a reused workspace, both sides of every threshold of the generated code and
    its boundary, and (float64) a realistic size."""
    opt, ref = symlstm.load(cell_name), symlstm.load(cell_name, backend="reference")
    configs = configurations(
        plan_cell(symlstm.derive(cell_name)), dtypes=[dtype], realistic=dtype == np.float64
    )
    report = check_same_at(opt, ref, configs)
    assert report.ok, str(report)


@pytest.mark.parametrize("name", [n for n in CELL_NAMES if symlstm.cell(n).torch])
def test_a_realistic_size_equals_torch(name):
    """Values and every gradient at T=100, B=32, H=64 against torch.nn, an implementation of its own."""
    require("torch")
    report = check_torch(symlstm.load(name), symlstm.cell(name).torch, *REALISTIC, name=name)
    assert not report.skipped and report.ok, str(report)


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
