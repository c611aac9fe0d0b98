"""The torch target: one module per cell for training in PyTorch with the derived backward.

`render_torch(derivation)` returns the module's source (`generated/torch/<cell>.py`): the reference
module's equations printed on tensors (`emitter`, `printer`) inside a `torch.autograd.Function` over the
whole sequence and an `nn.Module` with torch.nn.LSTM's conventions (`runtime/layer.py`, a real Python
file the template includes), plus the common NumPy contract (`init_params`, `forward`, `backward`, the
interop functions) computed by the same torch code. The module imports torch when it is run, never
when it is rendered, so `symlstm generate` writes it on any machine.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from ...engine import Derivation
from .. import numpy as numpy_backend
from ..numpy.head import module_head
from ..numpy.interop import plan_interop
from .emitter import torch_code

__all__ = ["render_torch", "torch_env"]

HERE = Path(__file__).parent


class _Loader(jinja2.FileSystemLoader):
    """This backend's templates, its `torch_runtime/<file>.py` and the NumPy backend's templates and
    runtime, each runtime file from its marker line on."""

    def __init__(self):
        super().__init__([HERE / "templates", numpy_backend.HERE / "templates"])
        self.numpy = numpy_backend.module_env().loader

    def get_source(self, environment: jinja2.Environment, template: str):
        if template.startswith("runtime/"):
            return self.numpy.get_source(environment, template)
        if not template.startswith("torch_runtime/"):
            return super().get_source(environment, template)
        path = HERE / "runtime" / template.removeprefix("torch_runtime/")
        text = path.read_text(encoding="utf-8")
        if numpy_backend.RUNTIME_MARKER not in text:
            raise jinja2.TemplateNotFound(f"{template} (no include marker)")
        body = text.split(numpy_backend.RUNTIME_MARKER, 1)[1].strip("\n") + "\n"
        return body, str(path), lambda: True


@cache
def torch_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=_Loader(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_torch(d: Derivation) -> str:
    """The source of the torch module of a derived cell."""
    template = torch_env().get_template("torch_cell.py.j2")
    return template.render(m=module_head(d), code=torch_code(d), io=plan_interop(d.spec))
