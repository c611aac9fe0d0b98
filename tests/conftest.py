"""Shared fixtures: every parametrised test runs over the one cell registry; optional modules skip
with the extra that installs them."""

from __future__ import annotations

import types

import pytest

import symlstm

CELL_NAMES = sorted(symlstm.CELLS)


def _fused(name: str) -> bool:
    from symlstm.backends.reference import unfused_reason

    return unfused_reason(symlstm.derive(name)) is None


# The cells whose NumPy and numba modules have the fused layout (the others, with sizes besides I and H,
# are written with the reference equations: symlstm.backends.reference.unfused_reason).
FUSED_CELLS = [name for name in CELL_NAMES if _fused(name)]

# Optional module -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "torch": "torch", "keras": "keras", "jax": "jax", "matplotlib": "docs", "line_profiler": "dev",
    "hypothesis": "test",
}  # fmt: skip


def require(module: str) -> types.ModuleType:
    """Import `module`, or skip the test with a message naming the extra that installs it."""
    extra = EXTRAS[module]
    reason = f"{module} is not installed: pip install 'symlstm[{extra}]' (in a clone: '.[{extra}]')"
    return pytest.importorskip(module, reason=reason)


@pytest.fixture(params=CELL_NAMES)
def cell_name(request) -> str:
    return request.param


def sizes(module, hidden_size: int) -> dict[str, int]:
    """A module's declared sizes (besides I and H) at which the tests run it, by keyword ({} for most
    cells; {"proj_size": 2} for lstmp at H = 4): `symlstm.testing.check_sizes_of`."""
    from symlstm.testing import check_sizes_of

    return check_sizes_of(module, hidden_size)


def torch_net(spec, input_size: int, hidden_size: int, **kwargs):
    """The torch.nn module of a cell (`spec.torch`), at the cell's declared sizes too (proj_size)."""
    import torch

    module = symlstm.load(spec)
    theirs = {spec.torch.get("sizes", {}).get(k, k): v for k, v in sizes(module, hidden_size).items()}
    return getattr(torch.nn, spec.torch["module"])(
        input_size, hidden_size, **spec.torch["kwargs"], **theirs, **kwargs
    )
