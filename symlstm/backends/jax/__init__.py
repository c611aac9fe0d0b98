"""The JAX target (the `jax` extra): per cell, the derived forward, backward and tangent programs as
`lax.scan`s, and `forward` differentiable through `jax.custom_vjp` with the derived backward.

`render_jax(derivation)` returns the module's source (`generated/jax/<cell>.py`); `emitter` prints the
equations as the reference backend does (`symlstm.backends.reference`), as scan steps. The module
imports jax only to run (it renders and imports anywhere) and carries the NumPy runtime for its
parameters (init_params, from_torch, ...). `contract.NumpyContract` gives it the NumPy modules'
contract (forward -> (y, state, cache), backward(params, cache, ...)), which the checks compare.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from ...engine import Derivation
from ..numpy import module_env
from ..numpy.head import module_head
from ..numpy.interop import plan_interop
from ..reference.emitter import _unpack
from .emitter import jax_code

__all__ = ["jax_env", "render_jax"]


@cache
def jax_env() -> jinja2.Environment:
    return module_env(Path(__file__).parent / "templates")


def render_jax(d: Derivation) -> str:
    """The source of the JAX module of a derived cell."""
    s = d.spec
    head = module_head(d)
    names = {
        "input": s.input,
        "input_adjoint": f"d_{s.input}",
        "prev_unpack": _unpack(s.prev_names),
        "prev_adjoint_unpack": _unpack(f"d_{v}" for v in s.prev_names),
        "prev_tangent_unpack": _unpack(f"tan_{v}" for v in s.prev_names),
    }
    return (
        jax_env()
        .get_template("jax_cell.py.j2")
        .render(m=_Head(head, names), code=jax_code(d), io=plan_interop(s))
    )


class _Head:
    """The NumPy module head (title, groups, equations, ...) and the names the JAX template adds."""

    def __init__(self, head, names: dict[str, str]):
        self._head, self._names = head, names

    def __getattr__(self, name: str):
        if name in self._names:
            return self._names[name]
        return getattr(self._head, name)
