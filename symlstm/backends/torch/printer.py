"""Torch source for the torch backend: the reference module's expressions, called on tensors.

The generated module binds each elementwise function the equations call to torch's own
(`sigmoid = torch.sigmoid`, `arctan = torch.arctan`), so an expression prints as the reference module
and the document write it; constants are named as the reference printer names them. Anything the
printer would write as a NumPy call is refused at render time, so a torch module never calls NumPy on
a tensor.
"""

from __future__ import annotations

import sympy as sp

from ..reference.printer import ReferencePrinter, functions_used

__all__ = ["TORCH_FUNCTIONS", "TorchPrinter", "functions_source"]

# The torch function of each module-level name the equations call, where it is not torch.<name>.
TORCH_FUNCTIONS: dict[str, str] = {
    "step": '''def step(a):
    """relu's derivative at relu's output a: 1 where a > 0, else 0 (relu'(0) = 0; NaN stays NaN)."""
    return torch.heaviside(a, a.new_zeros(()))''',
}


class TorchPrinter(ReferencePrinter):
    """The reference printer, refusing what it would print as a NumPy call."""

    def _module_format(self, fqn: str, register: bool = True) -> str:
        raise NotImplementedError(f"the torch backend has no translation of {fqn}")


def functions_source(exprs) -> tuple[list[str], str]:
    """(names, definitions): the module-level elementwise functions the expressions call, bound to
    torch's."""
    names = functions_used(exprs)
    lines = ["# The elementwise functions of the equations, torch's own (the reference module's names)."]
    lines += [f"{name} = torch.{name}" for name in names if name not in TORCH_FUNCTIONS]
    text = "\n".join(lines)
    for name in names:
        if name in TORCH_FUNCTIONS:
            text += "\n\n\n" + TORCH_FUNCTIONS[name]
    return names, text


def check_printed(text: str, expr: sp.Expr) -> str:
    """`text` if it calls no NumPy function, else NotImplementedError naming the expression."""
    if "np." in text:
        raise NotImplementedError(f"the torch backend cannot print {sp.sstr(expr)} (printed as {text})")
    return text
