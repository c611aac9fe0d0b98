"""The numba target: one module per cell whose forward and backward are compiled kernels.

`render_numba(derivation)` returns the module's source (`generated/numba/<cell>.py`): `emitter` prints
the two kernels and the Python around them from the cell's plan (`symlstm.plan`), `printer` the scalar
statements, `templates/numba_cell.py.j2` lays out the module and includes the runtime it carries: this
target's `runtime/*.py` (numba found at import, BLAS from the kernels, vectorising tanh/exp/sigmoid) and
the NumPy target's (validation, interop, workspace), real Python files that ruff and the tests read.
Rendering needs neither numba nor scipy; the rendered module needs both to run its kernels.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from ...engine import Derivation
from ..numpy import RUNTIME_MARKER, module_env
from ..numpy.interop import plan_interop
from ..reference.emitter import reference_code
from .emitter import NumbaModule, numba_module

__all__ = ["NumbaModule", "numba_env", "numba_module", "render_numba"]

HERE = Path(__file__).parent
PREFIX = "numba_runtime/"


class _RuntimeLoader(jinja2.BaseLoader):
    """This target's `runtime/<file>.py` as `numba_runtime/<file>.py`, from its marker line on."""

    def get_source(self, environment: jinja2.Environment, template: str):
        if not template.startswith(PREFIX):
            raise jinja2.TemplateNotFound(template)
        path = HERE / "runtime" / template.removeprefix(PREFIX)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        text = path.read_text(encoding="utf-8")
        if RUNTIME_MARKER not in text:
            raise jinja2.TemplateNotFound(f"{template} (no include marker)")
        body = text.split(RUNTIME_MARKER, 1)[1].strip("\n") + "\n"
        return body, str(path), lambda: True


@cache
def numba_env() -> jinja2.Environment:
    env = module_env(HERE / "templates")
    env.loader = jinja2.ChoiceLoader([_RuntimeLoader(), env.loader])
    return env


def render_numba(d: Derivation) -> str:
    """The source of the numba module of a derived cell (the reference module's code, without kernels,
    for a cell the fused layout does not take: `symlstm.backends.reference.unfused_reason`)."""
    from ..reference import render_reference, unfused_reason

    if unfused_reason(d):
        return render_reference(d, standing_in_for="numba")
    template = numba_env().get_template("numba_cell.py.j2")
    mod = numba_module(d)
    return template.render(m=mod.head, n=mod, code=reference_code(d), io=plan_interop(d.spec))
