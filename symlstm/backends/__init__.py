"""Targets that print code or documents from a derivation; see README.md in this folder.

`CODE_BACKENDS` lists the code targets by name: the folder of `generated/` they fill, the `backend=` of
`symlstm.load`, and what `symlstm generate`, the fuzzer and the tests iterate over. A target's renderer
is imported only when it is used, and the generated modules of an optional target import their
framework (numba, torch, jax) only when they are run, so every target renders on any machine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CODE_BACKENDS", "CodeBackend", "code_backend"]


@dataclass(frozen=True)
class CodeBackend:
    """A code target: `render` (dotted path of `render(derivation) -> str`) writes `generated/<name>/`."""

    name: str
    render_path: str
    requires: str | None = None  # the module its generated code imports besides numpy
    extra: str | None = None  # the extra that installs it: pip install 'symlstm[<extra>]'
    # Dotted path of a class giving a module of this target the NumPy modules' contract (forward ->
    # (y, state, cache), backward(params, cache, ...)) for the checks; None: it has that contract.
    contract_path: str | None = None
    from_file: bool = False  # its modules run from a file (numba caches compiled code beside it)

    @property
    def render(self) -> Callable:
        module, _, function = self.render_path.rpartition(".")
        return getattr(importlib.import_module(module), function)

    def checkable(self, module: object) -> object:
        """`module` with the NumPy modules' contract, as `symlstm.testing`'s checks call it."""
        if self.contract_path is None:
            return module
        path, _, name = self.contract_path.rpartition(".")
        return getattr(importlib.import_module(path), name)(module)

    def available(self) -> bool:
        """Whether its generated modules can run here (their framework is installed)."""
        if self.requires is None:
            return True
        try:
            importlib.import_module(self.requires)
        except ImportError:
            return False
        return True


CODE_BACKENDS: dict[str, CodeBackend] = {
    b.name: b
    for b in (
        CodeBackend("numpy", "symlstm.backends.numpy.render_numpy"),
        CodeBackend("reference", "symlstm.backends.reference.render_reference"),
        CodeBackend(
            "jax",
            "symlstm.backends.jax.render_jax",
            "jax",
            "jax",
            "symlstm.backends.jax.contract.NumpyContract",
        ),
        CodeBackend("numba", "symlstm.backends.numba.render_numba", "numba", "numba", from_file=True),
        CodeBackend("torch", "symlstm.backends.torch.render_torch", requires="torch", extra="torch"),
    )
}


def code_backend(name: str) -> CodeBackend:
    """The registered code target `name`; an unknown name raises ValueError listing the known ones."""
    if name not in CODE_BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(CODE_BACKENDS)}")
    return CODE_BACKENDS[name]
