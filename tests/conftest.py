"""Shared fixtures: every parametrised test runs over the one cell registry; optional modules skip
with the extra that installs them."""

from __future__ import annotations

import types

import pytest

import symlstm

CELL_NAMES = sorted(symlstm.CELLS)

# Optional module -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "torch": "torch", "keras": "keras", "matplotlib": "docs", "line_profiler": "dev", "hypothesis": "test",
}  # fmt: skip


def require(module: str) -> types.ModuleType:
    """Import `module`, or skip the test with a message naming the extra that installs it."""
    extra = EXTRAS[module]
    reason = f"{module} is not installed: pip install 'symlstm[{extra}]' (in a clone: '.[{extra}]')"
    return pytest.importorskip(module, reason=reason)


@pytest.fixture(params=CELL_NAMES)
def cell_name(request) -> str:
    return request.param
