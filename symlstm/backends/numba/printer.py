"""Expression -> one scalar statement of a compiled kernel: `c = c_prev * f + g * i`.

Numbers are printed as `dtype(0.5)` (the kernel's float type, so float32 code stays float32: a Python
number would promote it to float64), small integer powers as products, tanh, exp and sigmoid as the
vectorising functions of `runtime/vmath.py`, the other functions as NumPy's scalar ufuncs.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.str import StrPrinter

from ...activations import relu, sigmoid, step
from ..numpy.printer import constant_value

__all__ = ["NumbaScalarPrinter"]

# SymPy function -> the kernel's function of one scalar.
FUNCTIONS = {
    "tanh": "_vtanh",
    "exp": "_vexp",
    "log": "np.log",
    "sin": "np.sin",
    "cos": "np.cos",
    "tan": "np.tan",
    "sinh": "np.sinh",
    "cosh": "np.cosh",
    "asin": "np.arcsin",
    "acos": "np.arccos",
    "atan": "np.arctan",
    "asinh": "np.arcsinh",
    "acosh": "np.arccosh",
    "atanh": "np.arctanh",
}


def _number(value: sp.Expr) -> str:
    """A constant in the kernel's float type: `dtype(2)`, `-dtype(0.5)`."""
    number = constant_value(value)
    text = f"dtype({abs(int(value))})" if value.is_Integer else f"dtype({abs(number)!r})"
    return "-" + text if number < 0 else text


def _enclosed(text: str) -> bool:
    """Whether `text` is one parenthesised group: `(n * n)`, not `(n * n) + dtype(1)`."""
    if not text.startswith("("):
        return False
    depth = 0
    for k, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return k == len(text) - 1
    return False


class NumbaScalarPrinter(StrPrinter):
    """Scalar kernel statements; `names` maps a symbol's name to the code holding its value where that
    is not the name itself. `doprint` spaces operators as ruff format does."""

    def __init__(self, names: dict[str, str] | None = None):
        super().__init__()
        self.names = names or {}

    def doprint(self, expr) -> str:
        text = super().doprint(sp.sympify(expr))
        text = re.sub(r"\s*(?<!\*)\*(?!\*)\s*", " * ", text)
        text = re.sub(r"\s*/\s*", " / ", text)
        return text

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr.name, expr.name)

    def _print_Integer(self, expr: sp.Integer) -> str:
        return _number(expr)

    def _print_Rational(self, expr: sp.Rational) -> str:
        return _number(expr)

    def _print_Float(self, expr: sp.Float) -> str:
        return _number(expr)

    def _print_NumberSymbol(self, expr) -> str:
        return _number(expr)

    _print_Pi = _print_Exp1 = _print_EulerGamma = _print_GoldenRatio = _print_Catalan = _print_NumberSymbol

    def _print_Mul(self, expr: sp.Mul) -> str:
        coeff, rest = expr.as_coeff_Mul()
        if coeff.is_Number and coeff < 0:  # -a * b, not dtype(-1) * a * b
            inner = self._print(rest if coeff == -1 else sp.Mul(-coeff, rest, evaluate=False))
            return "-" + (f"({inner})" if rest.is_Add and coeff == -1 else inner)
        numerator, denominator = [], []
        for f in expr.as_ordered_factors():
            if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < 0:
                denominator.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp, evaluate=False))
            else:
                numerator.append(f)
        text = "*".join(self._factor(f) for f in numerator) or "dtype(1)"
        if not denominator:
            return text
        under = "*".join(self._factor(f) for f in denominator)
        return f"{text} / {under if len(denominator) == 1 else '(' + under + ')'}"

    def _factor(self, f: sp.Expr) -> str:
        """A factor of a product, in parentheses where a sum or a negative number would split it."""
        text = self._print(f)
        return f"({text})" if f.is_Add or (f.is_Number and f < 0) else text

    def _print_Add(self, expr: sp.Add, order=None) -> str:
        out = ""
        for k, term in enumerate(self._as_ordered_terms(expr, order=None)):
            text = self._print(term)
            if k == 0:
                out = text
            elif text.startswith("-"):
                out += " - " + text[1:]
            else:
                out += " + " + text
        return out

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.base, expr.exp
        if expr.is_number:
            return _number(expr)
        b = self._print(base)
        if not (base.is_Symbol or base.is_Function):
            b = f"({b})"
        if exp.is_Integer and 1 < exp <= 4:
            return "(" + " * ".join([b] * int(exp)) + ")"
        if exp.is_Integer and exp < 0:
            positive = base if exp == -1 else sp.Pow(base, -exp, evaluate=False)
            text = self._print(positive)
            if not (positive.is_Symbol or positive.is_Function or _enclosed(text)):
                text = f"({text})"  # (n * n) + dtype(1) starts with a parenthesis, and needs its own
            return f"dtype(1) / {text}"
        if exp == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"dtype(1) / np.sqrt({self._print(base)})"
        return f"{b} ** {_number(exp) if exp.is_Number else '(' + self._print(exp) + ')'}"

    def _print_Function(self, expr: sp.Function) -> str:
        args = ", ".join(self._print(a) for a in expr.args)
        if isinstance(expr, sigmoid):
            return f"_vsigmoid({args})"
        if isinstance(expr, relu):
            return f"_relu({args})"
        if isinstance(expr, step):
            return f"_step({args})"
        name = type(expr).__name__
        if name not in FUNCTIONS:
            raise ValueError(f"the numba backend cannot compute {name}() (supported: {', '.join(FUNCTIONS)})")
        return f"{FUNCTIONS[name]}({args})"
