"""Expression -> text: the NumPy printer (`np.tanh(c)`, a one-transcendental stable sigmoid).

Every symbol is printed by name (`symlstm.naming`), or as the code a mapping gives for it.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from ...activations import relu, sigmoid, step

__all__ = ["NumpyCodePrinter", "number"]


def _strip_outer_parens(text: str) -> str:
    """`(a + b)` -> `a + b` when the parentheses enclose the whole text."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for k, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(text) - 1:
            return text
    return text[1:-1]


def number(value: sp.Expr) -> str:
    """A numeric constant as Python source (0.5 rather than 1/2)."""
    value = sp.nsimplify(value) if isinstance(value, sp.Float) and value == int(value) else value
    if value.is_Integer:
        return str(int(value))
    return repr(float(value))


_PACKAGE_FUNCTIONS = (sigmoid, relu, step)


def _defined(e: sp.Expr) -> sp.Expr:
    """`e` with each package activation replaced by its definition (sigmoid as 1/(1 + exp(-a)))."""
    while e.has(*_PACKAGE_FUNCTIONS):  # nested ones (sigmoid(sigmoid(0))) need one pass each
        e = e.replace(lambda a: isinstance(a, _PACKAGE_FUNCTIONS), lambda a: type(a).definition(*a.args))
    return e


def constant_value(value: sp.Expr) -> float:
    """A constant's value as a float, a package activation in it (relu(0), sigmoid(sigmoid(0))) by its
    definition."""
    return float(sp.N(_defined(value), 20))


def _float_constants(e: sp.Expr) -> sp.Expr:
    """`e` with each constant that is neither a rational nor a float (log(3), sqrt(2), sigmoid(0)) as a
    float of full precision: printed as a Python float literal, which keeps a float32 computation in
    float32 (NumPy's `np.log(3)` is a float64 scalar and would promote it)."""
    if e.is_number:
        if e.is_Rational or e.is_Float or e.is_NumberSymbol:
            return e
        # A package activation SymPy cannot evaluate (relu(0)) by its definition (relu = Max(a, 0)).
        exact = _defined(e)
        value = sp.N(exact, 20) if not exact.has(*_PACKAGE_FUNCTIONS) else exact
        if value.is_Rational or value.is_Float:
            return value if value.is_Rational else sp.Float(value, 17)
        return e
    if e.args and not isinstance(e, sp.Symbol):
        return e.func(*(_float_constants(a) for a in e.args))
    return e


class NumpyCodePrinter(NumPyPrinter):
    """NumPy printer with the `np.` alias, exact integers and a one-transcendental stable sigmoid.

    `doprint` spaces operators as ruff format does, so generated modules are format-clean as written.
    `names` maps symbol names to the code that holds their value where that is not the name itself
    (a coefficient slot `coef_3` read as `coef_step[3]`).
    """

    def __init__(self, names: dict[str, str] | None = None, **settings):
        super().__init__(settings)
        self.names = names or {}

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr.name) or super()._print_Symbol(expr)

    def doprint(self, expr, assign_to=None) -> str:
        text = super().doprint(_float_constants(sp.sympify(expr)), assign_to)
        text = re.sub(r"\s*(?<!\*)\*(?!\*)\s*", " * ", text)  # a * b, but keep the power operator
        text = re.sub(r"(?<=\))\*\*|\*\*(?=\()", " ** ", text)  # (1 - n) ** 2: complex operand
        text = re.sub(r"\s*/\s*", " / ", text)
        return _strip_outer_parens(text)

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return (
            "np." + fqn[len("numpy.") :]
            if fqn.startswith("numpy.")
            else super()._module_format(fqn, register)
        )

    def _print_sigmoid(self, expr: sp.Expr) -> str:
        arg = self.parenthesize(expr.args[0], PRECEDENCE["Mul"])  # 0.5 * (s - 1), not 0.5 * s - 1
        return f"(0.5 * np.tanh(0.5 * {arg}) + 0.5)"

    def _print_relu(self, expr: sp.Expr) -> str:
        return f"np.maximum({self._print(expr.args[0])}, 0)"

    def _print_step(self, expr: sp.Expr) -> str:
        # ceil(clip(a, 0, 1)), not (a > 0): a NaN stays NaN instead of becoming a finite 0 (relu' of
        # NaN); 0 for a <= 0, 1 for a > 0 (subnormals included). np.sign would do, at several times the cost.
        return f"np.ceil(np.clip({self._print(expr.args[0])}, 0, 1))"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        # A negative integer power as a division, exact on any array (NumPyPrinter writes x**(-1.0)).
        if expr.exp.is_Integer and expr.exp < 0:
            positive = expr.base if expr.exp == -1 else sp.Pow(expr.base, -expr.exp, evaluate=False)
            return f"1 / {self.parenthesize(positive, PRECEDENCE['Mul'], strict=True)}"
        return super()._print_Pow(expr, rational=rational)

    def _print_Rational(self, expr: sp.Rational) -> str:
        return number(expr)

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(int(expr))

    def _print_Float(self, expr: sp.Float) -> str:
        return number(expr)
