"""NumPy source for the reference backend: elementwise functions called by their bare names.

The reference module defines each elementwise function it uses at module level (`sigmoid`, `tanh`,
`arctan`, ...), so that an expression prints as the document writes it (`sigmoid(a_i)`), and so that
`symlstm.proof` can run the module on arrays of SymPy expressions by replacing those functions with
their SymPy counterparts (`SYMPY_FUNCTIONS`).
"""

from __future__ import annotations

import sympy as sp

from ...activations import relu, sigmoid, step
from ..numpy.printer import NumpyCodePrinter

__all__ = ["CALL_NAMES", "DEFINITIONS", "SYMPY_FUNCTIONS", "ReferencePrinter", "functions_used"]

# Module-level name of each elementwise function in the reference module.
CALL_NAMES: dict[type[sp.Function], str] = {
    sigmoid: "sigmoid", relu: "relu", step: "step", sp.tanh: "tanh", sp.exp: "exp", sp.log: "log",
    sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.sinh: "sinh", sp.cosh: "cosh", sp.asin: "arcsin",
    sp.acos: "arccos", sp.atan: "arctan", sp.asinh: "arcsinh", sp.acosh: "arccosh", sp.atanh: "arctanh",
}  # fmt: skip

# Their definitions in the module: numpy's own ufunc, or a function of the package's activations.
DEFINITIONS: dict[str, str] = {
    "sigmoid": '''def sigmoid(a):
    """The logistic function 1 / (1 + exp(-a)), computed as 0.5 * tanh(0.5 * a) + 0.5 (no overflow)."""
    return 0.5 * np.tanh(0.5 * a) + 0.5''',
    "relu": '''def relu(a):
    """max(a, 0)."""
    return np.maximum(a, 0)''',
    "step": '''def step(a):
    """relu's derivative at relu's output a: 1 where a > 0, else 0 (relu'(0) = 0; NaN stays NaN)."""
    return np.heaviside(a, 0)''',
}

# What `symlstm.proof` puts in their place: the SymPy function of the same name.
SYMPY_FUNCTIONS: dict[str, type[sp.Function]] = {name: fn for fn, name in CALL_NAMES.items()}


def functions_used(exprs) -> list[str]:
    """The module-level function names the expressions call, in a fixed order."""
    found = {type(e) for expr in exprs for e in sp.preorder_traversal(sp.sympify(expr))}
    return [name for fn, name in CALL_NAMES.items() if fn in found]


class ReferencePrinter(NumpyCodePrinter):
    """NumPy source in which every elementwise function is a call of its module-level name."""

    def _print_call(self, expr: sp.Function) -> str:
        return f"{CALL_NAMES[type(expr)]}({self._print(expr.args[0])})"


for _fn in CALL_NAMES:
    setattr(ReferencePrinter, f"_print_{_fn.__name__}", ReferencePrinter._print_call)
