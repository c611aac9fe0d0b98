"""Jinja2 environments (Python and TeX-safe) and rendering of the generated files."""

from __future__ import annotations

from functools import cache

import jinja2

from .codegen import plan_numpy
from .engine import Derivation
from .interop import plan_interop

__all__ = ["numpy_env", "render_numpy"]


@cache
def numpy_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("symlstm", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_numpy(d: Derivation) -> str:
    """The source of the generated NumPy module for a derived cell."""
    return numpy_env().get_template("numpy_cell.py.j2").render(m=plan_numpy(d), io=plan_interop(d.spec))
