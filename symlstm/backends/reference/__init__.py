"""The reference target: one NumPy module per cell, one statement per equation of its document.

`render_reference(derivation)` returns the module's source (`generated/reference/<cell>.py`): the code a
student reads beside the PDF, with the contract of the optimised NumPy module, tested equal to it, and
proved symbolically by `symlstm.proof` (which runs it on arrays of SymPy expressions).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from ...engine import Derivation
from ..numpy import module_env
from ..numpy.head import module_head
from ..numpy.interop import plan_interop
from .emitter import reference_code

__all__ = ["reference_env", "render_reference"]


@cache
def reference_env() -> jinja2.Environment:
    return module_env(Path(__file__).parent / "templates")


def render_reference(d: Derivation) -> str:
    """The source of the reference module of a derived cell."""
    template = reference_env().get_template("reference_cell.py.j2")
    return template.render(m=module_head(d), code=reference_code(d), io=plan_interop(d.spec))
