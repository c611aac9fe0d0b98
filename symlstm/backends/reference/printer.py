"""NumPy source for the reference backend: elementwise functions called by their bare names.

The reference module defines each elementwise function it uses at module level (`sigmoid`, `tanh`,
`arctan`, ...), so that an expression prints as the document writes it (`sigmoid(a_i)`), and so that
`symlstm.proof` can run the module on arrays of SymPy expressions by replacing those functions with
their SymPy counterparts (`SYMPY_FUNCTIONS`).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

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
SYMPY_FUNCTIONS: dict[str, object] = {name: fn for fn, name in CALL_NAMES.items()} | {"sqrt": sp.sqrt}


def functions_used(exprs) -> list[str]:
    """The module-level function names the expressions call, in a fixed order."""
    nodes = [e for expr in exprs for e in sp.preorder_traversal(sp.sympify(expr))]
    found = {type(e) for e in nodes}
    names = [name for fn, name in CALL_NAMES.items() if fn in found]
    return [*names, "sqrt"] if any(e.is_Pow and e.exp == sp.S.Half for e in nodes) else names


class ReferencePrinter(NumpyCodePrinter):
    """NumPy source in which every elementwise function is a call of its module-level name.

    Constants are written so that the module computes exactly on SymPy arrays as well as on floats: a
    rational coefficient as integer division (`c_prev / 2`, `2 * atan_c / 3`), any other number that is
    not an integer (pi, 2/pi, a rational term of a sum) as a module-level name `const_k`, whose exact
    value `constants` keeps (`symlstm.proof` gives it that value when it runs the module on SymPy
    arrays). Square roots are calls of `sqrt`.
    """

    def __init__(self, **settings):
        super().__init__(**settings)
        self.constants: dict[str, sp.Expr] = {}

    def doprint(self, expr, assign_to=None) -> str:
        return super().doprint(self._named(sp.sympify(expr)), assign_to)

    def _named(self, e: sp.Expr) -> sp.Expr:
        """`e` with each numeric subexpression that is not an integer, a float or a rational
        coefficient replaced by a named constant."""
        if e.is_number:
            return e if e.is_Integer or e.is_Float else self._constant(e)
        if e.is_Mul:
            numeric = sp.Mul(*(a for a in e.args if a.is_number))
            rest = sp.Mul(*(self._named(a) for a in e.args if not a.is_number))
            keep = numeric.is_Rational or numeric.is_Float
            return (numeric if keep else self._constant(numeric)) * rest
        if e.is_Add:
            return sp.Add(*(self._named(a) for a in e.args))
        if e.is_Pow and e.exp.is_number and not e.exp.is_Integer:
            exp = e.exp if e.exp == sp.S.Half else self._constant(e.exp)  # sqrt(x) is a call
            return sp.Pow(self._named(e.base), exp, evaluate=False)
        if e.args:
            return e.func(*(self._named(a) for a in e.args))
        return e

    def _constant(self, value: sp.Expr) -> sp.Symbol:
        for name, known in self.constants.items():
            if known == value:
                return sp.Symbol(name, real=True)
        name = f"const_{len(self.constants)}"
        self.constants[name] = value
        return sp.Symbol(name, real=True)

    def _print_Mul(self, expr: sp.Mul) -> str:
        coeff, rest = expr.as_coeff_Mul()
        if coeff.is_Rational and not coeff.is_Integer and rest != 1:
            body = self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)
            lead = body if coeff.p == 1 else f"-{body}" if coeff.p == -1 else f"{coeff.p} * {body}"
            return f"{lead} / {coeff.q}"
        return super()._print_Mul(expr)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            return f"sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational=rational)

    def _print_call(self, expr: sp.Function) -> str:
        return f"{CALL_NAMES[type(expr)]}({self._print(expr.args[0])})"


for _fn in CALL_NAMES:
    setattr(ReferencePrinter, f"_print_{_fn.__name__}", ReferencePrinter._print_call)
