"""LaTeX printing of a cell's expressions: `TexPrinter` and the line breaking of long sums.

`TexPrinter` (a subclass of SymPy's `LatexPrinter`) prints vectors with their time index (`c_prev` ->
`c_{t-1}`), products of per-coordinate symbols as Hadamard products and adjoints as deltas; the
helpers below break a displayed sum into lines of at most `WIDTH` visible characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ...engine import Derivation, Diag
from ...naming import latex_name
from ...spec import ElementwiseNode

__all__ = ["WIDTH", "TexPrinter", "break_sum", "expr_lines", "ordered_terms", "visible_width", "wrap_diag"]

WIDTH = 62  # visible characters per displayed line before a sum is broken


class TexPrinter(LatexPrinter):
    """LaTeX for a cell's expressions: time-indexed vectors, Hadamard products, deltas for adjoints.

    Args:
        d: the derivation whose symbols are printed.
        time: the time index of the step's vectors (`t`; previous states get `time-1`).
    """

    def __init__(self, d: Derivation, time: str = "t", **settings):
        super().__init__({"mat_symbol_style": "plain", **settings})
        self.d = d
        self.time = time
        spec = d.spec
        self.params = {p.name for p in spec.params}
        self.vectors = [*spec.leaves, *(n.name for n in spec.nodes)]
        self.calls = {m.name: m.call for m in d.intermediates}
        kinds = {n.name: (1 if isinstance(n, ElementwiseNode) else 2) for n in spec.nodes}
        kinds.update({v: 3 for v in spec.leaves})
        self._rank = {v: (kinds[v], k) for k, v in enumerate(self.vectors)}

    # names ---------------------------------------------------------------------------------------
    def name(self, name: str) -> str:
        """LaTeX for a code name of this cell (vector, parameter, intermediate, adjoint, tangent)."""
        if name in self.params:
            return latex_name(name, is_param=True)
        if name in self.calls:
            return self._print(self.calls[name])
        if name.startswith("din_"):
            return rf"\delta^{{\mathrm{{in}}}} {self.name(name[4:])}"
        if name.startswith("d_"):
            return rf"\delta {self.name(name[2:])}"
        if name.startswith("tan_"):
            return rf"\dot{{{self.name(name[4:])}}}"
        prev = self._prev_time()
        if name.endswith("_prev"):
            return self._vector(latex_name(name[: -len("_prev")], time=prev))
        return self._vector(latex_name(name, time=self.time))

    @staticmethod
    def _vector(tex: str) -> str:
        """A vector named delta would read as an adjoint (delta v): it is printed as a capital Delta."""
        return r"\Delta" + tex[len(r"\delta") :] if tex.startswith(r"\delta_") else tex

    def _prev_time(self) -> str:
        return f"{self.time}-1" if self.time.isalpha() else self.time + "-1"

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return self.name(expr.name)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        return self.name(expr.name)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        inner = self._print(expr.arg)
        if not isinstance(expr.arg, sp.MatrixSymbol):
            inner = rf"\left({inner}\right)"
        return rf"{inner}^{{\top}}"

    def _print_Identity(self, expr: sp.Identity) -> str:
        return "I"

    def _print_ZeroMatrix(self, expr: sp.ZeroMatrix) -> str:
        return "0"

    def _print_Diag(self, expr: Diag) -> str:
        return rf"\operatorname{{diag}}\left({self._print(expr.expr)}\right)"

    # Hadamard products -----------------------------------------------------------------------------
    def _factor_key(self, factor: sp.Expr) -> tuple:
        base = factor.base if isinstance(factor, sp.Pow) else factor
        if isinstance(base, sp.Symbol):
            n = base.name
            if n.startswith(("d_", "din_", "tan_")):
                return (0, 0, n)
            if n in self.params:
                return (1, 0, n)
            if n in self._rank:
                return (2, *self._rank[n])
            return (5, 0, n)
        if isinstance(base, sp.Add) and len(base.free_symbols) == 1 and 1 in base.args:
            # 1 - v, 1 - v**2: next to v itself, so that a slope such as v (1 - v) reads as one piece
            (sym,) = base.free_symbols
            return (*self._factor_key(sym), 1)
        return (6, 0, sp.default_sort_key(factor))

    def _print_Mul(self, expr: sp.Mul) -> str:
        coeff, factors = expr.as_coeff_mul()
        if any(f.is_commutative is False for f in factors):
            return super()._print_Mul(expr)
        num = [f for f in factors if not (isinstance(f, sp.Pow) and f.exp.is_negative)]
        den = [1 / f for f in factors if isinstance(f, sp.Pow) and f.exp.is_negative]
        if den:
            top = sp.Mul(coeff, *num) if num or coeff != 1 else sp.S.One
            return rf"\frac{{{self._print(top)}}}{{{self._print(sp.Mul(*den))}}}"
        parts = []
        for f in sorted(num, key=self._factor_key):
            text = self._print(f)
            if isinstance(f, sp.Add):
                text = rf"\left({text}\right)"
            parts.append(text)
        body = r" \odot ".join(parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"- {body}"
        c = self._print(coeff)
        return f"{c} {body}" if body else c

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.args
        if isinstance(base, sp.Symbol) and base.name in self.calls and exp.is_Integer and exp > 0:
            call = self.calls[base.name]
            fname = {"tanh": r"\tanh", "sigmoid": r"\sigma"}.get(type(call).__name__)
            if fname:
                return rf"{fname}^{{{exp}}}\left({self._print(call.args[0])}\right)"
            return rf"\left({self._print(call)}\right)^{{{exp}}}"
        if isinstance(base, sp.Symbol) and exp.is_Integer and exp > 0:
            return rf"{self._print(base)}^{{\odot {exp}}}" if exp != 2 else rf"{self._print(base)}^{{2}}"
        return super()._print_Pow(expr)

    def _print_tanh(self, expr: sp.Expr, exp: str | None = None) -> str:
        return rf"\tanh\left({self._print(expr.args[0])}\right)"

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        return " ".join(break_sum([self._print(t) for t in ordered_terms(self, expr)], width=10**6))


def visible_width(tex: str) -> int:
    """A rough count of the glyphs a math string shows (commands count one, braces none)."""
    tex = re.sub(r"\\(left|right|operatorname|mathrm|odot|top|quad)\b", "x", tex)
    tex = re.sub(r"\\[A-Za-z]+", "x", tex)
    tex = re.sub(r"[{}\s]", "", tex)
    tex = re.sub(r"\^x|_x", "", tex)
    return len(tex)


def break_sum(terms: Sequence[str], width: int = WIDTH) -> list[str]:
    """Join printed summands with + or -, starting a new line when one would pass `width` glyphs.

    A summand printed with a leading `- ` is subtracted. Continuation lines start with their sign.
    """
    lines: list[str] = []
    cur = ""
    for term in terms:
        neg = term.startswith("- ")
        body = term[2:] if neg else term
        if not cur and not lines:
            piece = f"-{body}" if neg else body
        else:
            piece = ("- " if neg else "+ ") + body
        if cur and visible_width(f"{cur} {piece}") > width:
            lines.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        lines.append(cur)
    return lines


def ordered_terms(printer: TexPrinter, expr: sp.Expr) -> list[sp.Expr]:
    """The summands of a scalar expression in print order: numbers first, then SymPy's order."""
    if not isinstance(expr, sp.Add):
        return [expr]
    terms = list(printer._as_ordered_terms(expr, order=None))
    return [t for t in terms if t.is_Number] + [t for t in terms if not t.is_Number]


def expr_lines(printer: TexPrinter, expr: sp.Expr, width: int = WIDTH) -> list[str]:
    """A scalar expression as display lines, broken between summands."""
    return break_sum([printer._print(t) for t in ordered_terms(printer, expr)], width)


def _pieces(printer: TexPrinter, expr: sp.Expr) -> list[str]:
    """A product's printed factors or a sum's printed summands, each after the first with its operator."""
    if isinstance(expr, sp.Mul) and expr.as_coeff_mul()[0] == 1:
        parts = []
        for k, f in enumerate(sorted(expr.args, key=printer._factor_key)):
            text = printer._print(f)
            text = rf"\left({text}\right)" if isinstance(f, sp.Add) else text
            parts.append(text if k == 0 else rf"\odot {text}")
        return parts
    if isinstance(expr, sp.Add):
        parts = []
        for k, t in enumerate(ordered_terms(printer, expr)):
            text = printer._print(t)
            neg = text.startswith("- ")
            body = text[2:] if neg else text
            parts.append((f"-{body}" if neg else body) if k == 0 else ("- " if neg else "+ ") + body)
        return parts
    return [printer._print(expr)]


def wrap_diag(printer: TexPrinter, expr: sp.Expr, after: str, width: int) -> list[str]:
    """`diag( ... ) after` broken over lines between factors (big delimiters, no left/right pairs)."""
    lines, cur = [], r"\operatorname{diag}\Bigl("
    for k, piece in enumerate(_pieces(printer, expr)):
        if k and visible_width(f"{cur} {piece}") > width:
            lines.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if k else cur + piece
    lines.append(cur + r"\Bigr)" + (f" {after}" if after else ""))
    return lines
