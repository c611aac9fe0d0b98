"""Shared fixtures: every parametrised test runs over the one cell registry."""

from __future__ import annotations

import pytest

import symlstm

CELL_NAMES = sorted(symlstm.CELLS)


@pytest.fixture(params=CELL_NAMES)
def cell_name(request) -> str:
    return request.param
