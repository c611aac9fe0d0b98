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

__all__ = ["reference_env", "render_reference", "unfused_reason"]


@cache
def reference_env() -> jinja2.Environment:
    return module_env(Path(__file__).parent / "templates")


def render_reference(d: Derivation, *, standing_in_for: str | None = None) -> str:
    """The source of the reference module of a derived cell; with `standing_in_for` ("numpy",
    "numba"), the same code as that target's module for a cell the target's fused layout does not take
    (a cell with sizes besides I and H: `unfused_reason`), saying so in its docstring."""
    template = reference_env().get_template("reference_cell.py.j2")
    stand_in = None if standing_in_for is None else (standing_in_for, unfused_reason(d))
    return template.render(
        m=module_head(d), code=reference_code(d), io=plan_interop(d.spec), stand_in=stand_in
    )


def unfused_reason(d: Derivation) -> str | None:
    """Why the optimised targets (numpy, numba) write a cell with the reference equations, or None when
    their fused layout takes it: its buffers hold the vectors of one hidden size."""
    sizes = d.spec.extra_sizes
    if not sizes:
        return None
    labels = ", ".join(label for label, _ in sizes)
    return (
        f"the cell has vectors of sizes H and {labels}, and the fused layout of the optimised modules "
        "(gate-major buffers, one adjoint buffer) holds vectors of one hidden size"
    )
