"""The NumPy target: one self-contained module per cell, numpy its only import.

`render_numpy(derivation)` returns the module's source: `codegen` decides and prints the computation,
`printer` turns expressions into NumPy calls, `templates/numpy_cell.py.j2` lays out the module.
"""

from __future__ import annotations

from functools import cache

import jinja2

from ...engine import Derivation
from .codegen import plan_numpy
from .interop import plan_interop

__all__ = ["numpy_env", "render_numpy"]


@cache
def numpy_env() -> jinja2.Environment:
    from pathlib import Path

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_numpy(d: Derivation) -> str:
    """The source of the generated NumPy module for a derived cell."""
    return numpy_env().get_template("numpy_cell.py.j2").render(m=plan_numpy(d), io=plan_interop(d.spec))
