"""The NumPy target: one self-contained module per cell, numpy its only import.

`render_numpy(derivation)` returns the module's source: `emitter` prints the computation from the
cell's plan (`symlstm.plan`), `printer` and `inplace` turn expressions into NumPy calls,
`templates/numpy_cell.py.j2` lays out the module and includes the runtime every module carries
(`runtime/*.py`: validation, interop, workspace), real Python files that ruff and the tests read.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from ...engine import Derivation
from .emitter import NumpyModule, numpy_module
from .interop import plan_interop

__all__ = ["RUNTIME_MARKER", "NumpyModule", "module_env", "numpy_env", "numpy_module", "render_numpy"]

HERE = Path(__file__).parent
# A runtime file is included from the line after this one; above it are stand-ins for what the
# generated module defines, so that the file lints on its own.
RUNTIME_MARKER = "# -- generated modules include this file from the next line on --\n"


class _Loader(jinja2.FileSystemLoader):
    """Templates from the given folders, and this backend's `runtime/<file>.py` from its marker line on."""

    def get_source(self, environment: jinja2.Environment, template: str):
        if not template.startswith("runtime/"):
            return super().get_source(environment, template)
        path = HERE / template
        text = path.read_text(encoding="utf-8")
        if RUNTIME_MARKER not in text:
            raise jinja2.TemplateNotFound(f"{template} (no include marker)")
        body = text.split(RUNTIME_MARKER, 1)[1].strip("\n") + "\n"
        return body, str(path), lambda: True


def module_env(*template_dirs: Path) -> jinja2.Environment:
    """The Jinja2 environment of a NumPy-family module: templates from `template_dirs` and this
    backend's (`constants.py.j2`), and the runtime files."""
    return jinja2.Environment(
        loader=_Loader([*template_dirs, HERE / "templates"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@cache
def numpy_env() -> jinja2.Environment:
    return module_env()


def render_numpy(d: Derivation) -> str:
    """The source of the generated NumPy module for a derived cell (the reference module's code for a
    cell the fused layout does not take: `symlstm.backends.reference.unfused_reason`)."""
    from ..reference import render_reference, unfused_reason

    if unfused_reason(d):
        return render_reference(d, standing_in_for="numpy")
    return numpy_env().get_template("numpy_cell.py.j2").render(m=numpy_module(d), io=plan_interop(d.spec))
