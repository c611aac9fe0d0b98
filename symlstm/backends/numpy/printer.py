"""Expression -> text: a NumPy printer and an in-place NumPy emitter.

`NumpyCodePrinter` prints an expression as a NumPy expression (`np.tanh(c)`, a stable sigmoid).
`InplaceEmitter` turns an expression into a sequence of NumPy ufunc calls that write into a
preallocated buffer (`np.multiply(f, c_prev, out=c)`, `c += buf_0`), so a time step allocates nothing.
Both print every symbol through the printer, so names are those of `symlstm.naming` everywhere.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from ...activations import relu, sigmoid, step

__all__ = ["InplaceEmitter", "NumpyCodePrinter", "ScratchPool", "number"]


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


class NumpyCodePrinter(NumPyPrinter):
    """NumPy printer with the `np.` alias, exact integers and a one-transcendental stable sigmoid.

    `doprint` spaces operators as ruff format does, so generated modules are format-clean as written.
    """

    def doprint(self, expr, assign_to=None) -> str:
        text = super().doprint(expr, assign_to)
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


class ScratchPool:
    """Named (B, H) scratch buffers, handed out as a stack; `size` is the most used at once."""

    def __init__(self, prefix: str = "buf_"):
        self.prefix = prefix
        self.in_use = 0
        self.size = 0

    def acquire(self) -> str:
        name = f"{self.prefix}{self.in_use}"
        self.in_use += 1
        self.size = max(self.size, self.in_use)
        return name

    def release(self) -> None:
        self.in_use -= 1


_UFUNCS = {sp.tanh: "np.tanh", sp.exp: "np.exp", sp.log: "np.log", sp.sin: "np.sin", sp.cos: "np.cos",
           sp.atan: "np.arctan", sp.Abs: "np.abs"}  # fmt: skip


class InplaceEmitter:
    """Writes an expression into an existing array with in-place ufuncs and pooled scratch buffers."""

    def __init__(self, printer: NumpyCodePrinter, pool: ScratchPool):
        self.p = printer
        self.pool = pool

    def emit(self, expr: sp.Expr, out: str) -> list[str]:
        """Lines that leave `expr` in the array named `out` (which no symbol of `expr` may alias).

        A sum is written in the form that takes the fewest calls among itself and its expansion
        collected by each symbol: `h_prev*z + n*(1 - z)` (four calls) as `n + z*(h_prev - n)` (three).
        """
        expr = sp.sympify(expr)
        if not expr.is_Add or sp.count_ops(expr) > 16:
            return self._emit(expr, out)
        expanded = sp.expand(expr)
        forms = [expr, *(sp.collect(expanded, x) for x in sorted(expr.free_symbols, key=str))]
        best: tuple[list[str], int] | None = None  # (lines, scratch buffers used at most)
        in_use, size = self.pool.in_use, self.pool.size
        for form in forms:
            lines = self._emit(form, out)
            if best is None or len(lines) < len(best[0]):
                best = (lines, self.pool.size)
            self.pool.in_use, self.pool.size = in_use, size
        self.pool.size = best[1]
        return best[0]

    def _emit(self, expr: sp.Expr, out: str) -> list[str]:
        expr = sp.sympify(expr)
        if expr.is_Number:
            return [f"{out}.fill({number(expr)})"]
        if expr.is_Symbol:
            return [f"np.copyto({out}, {self.p._print(expr)})"]
        if expr.is_Add:
            return self._add(expr, out)
        if expr.is_Mul:
            return self._mul(expr, out)
        if expr.is_Pow:
            return self._pow(expr, out)
        if isinstance(expr, sp.Function) and len(expr.args) == 1:
            return self._call(expr, out)
        return [f"{out}[...] = {self.p._print(expr)}"]  # rare forms: one NumPy expression

    # -- helpers -------------------------------------------------------------------------------
    def _operand(self, expr: sp.Expr, lines: list[str]) -> tuple[str, bool]:
        """A name holding `expr`: the symbol itself, or a scratch buffer filled here (True = release)."""
        if expr.is_Symbol:
            return self.p._print(expr), False
        buf = self.pool.acquire()
        lines += self._emit(expr, buf)
        return buf, True

    def _into(self, expr: sp.Expr, out: str, lines: list[str]) -> str:
        """Put `expr` in `out` unless it is a plain symbol, in which case return its name to read from."""
        if expr.is_Symbol:
            return self.p._print(expr)
        lines += self._emit(expr, out)
        return out

    def _add(self, expr: sp.Expr, out: str) -> list[str]:
        const = sum((t for t in expr.args if t.is_Number), sp.S.Zero)
        terms = [t for t in expr.args if not t.is_Number]
        positive = [t for t in terms if not t.could_extract_minus_sign()]
        negative = [-t for t in terms if t.could_extract_minus_sign()]
        lines: list[str] = []
        if positive:
            first, *rest_pos = sorted(positive, key=lambda t: t.is_Symbol)  # complex terms first
            if rest_pos and first.is_Symbol and rest_pos[0].is_Symbol:
                lines.append(f"np.add({self.p._print(first)}, {self.p._print(rest_pos[0])}, out={out})")
                rest_pos = rest_pos[1:]
            elif negative and first.is_Symbol and negative[0].is_Symbol:
                lines.append(f"np.subtract({self.p._print(first)}, {self.p._print(negative[0])}, out={out})")
                negative = negative[1:]
            else:
                lines += self._emit(first, out)
            for t in rest_pos:
                name, temp = self._operand(t, lines)
                lines.append(f"{out} += {name}")
                if temp:
                    self.pool.release()
            for t in negative:
                name, temp = self._operand(t, lines)
                lines.append(f"{out} -= {name}")
                if temp:
                    self.pool.release()
            if const != 0:
                lines.append(f"{out} += {number(const)}" if const > 0 else f"{out} -= {number(-const)}")
            return lines
        # only subtracted terms: out = const - (n1 + n2 + ...)
        first, *rest = negative
        src = self._into(first, out, lines)
        for t in rest:
            if src != out:
                lines.append(f"np.copyto({out}, {src})")
                src = out
            name, temp = self._operand(t, lines)
            lines.append(f"{out} += {name}")
            if temp:
                self.pool.release()
        if const != 0:
            lines.append(f"np.subtract({number(const)}, {src}, out={out})")
        else:
            lines.append(f"np.negative({src}, out={out})")
        return lines

    def _mul(self, expr: sp.Expr, out: str) -> list[str]:
        coeff, factors = expr.as_coeff_mul()
        factors = sorted(factors, key=lambda f: f.is_Symbol)  # complex factors first
        lines: list[str] = []
        symbols = [f for f in factors if f.is_Symbol]
        if len(factors) == 1:
            lines += self._emit(factors[0], out)
        elif len(symbols) == len(factors):
            lines.append(f"np.multiply({self.p._print(factors[0])}, {self.p._print(factors[1])}, out={out})")
            lines += [f"{out} *= {self.p._print(f)}" for f in factors[2:]]
        else:
            first, *rest = factors
            lines += self._emit(first, out)
            for f in rest:
                name, temp = self._operand(f, lines)
                lines.append(f"{out} *= {name}")
                if temp:
                    self.pool.release()
        if coeff == -1:
            lines.append(f"np.negative({out}, out={out})")
        elif coeff != 1:
            lines.append(f"{out} *= {number(coeff)}")
        return lines

    def _pow(self, expr: sp.Expr, out: str) -> list[str]:
        base, exp = expr.args
        lines: list[str] = []
        src = self._into(base, out, lines)
        if exp == 2:
            lines.append(f"np.square({src}, out={out})")
        elif exp == -1:
            lines.append(f"np.reciprocal({src}, out={out})")
        elif exp == sp.Rational(1, 2):
            lines.append(f"np.sqrt({src}, out={out})")
        else:
            lines.append(f"np.power({src}, {number(exp)}, out={out})")
        return lines

    def _call(self, expr: sp.Expr, out: str) -> list[str]:
        lines: list[str] = []
        fn = expr.func
        if fn is sigmoid:  # 0.5 * tanh(0.5 a) + 0.5: one transcendental, no overflow
            src = self._into(expr.args[0], out, lines)
            lines += [f"np.multiply({src}, 0.5, out={out})", f"np.tanh({out}, out={out})",
                      f"{out} *= 0.5", f"{out} += 0.5"]  # fmt: skip
        elif fn is relu:
            src = self._into(expr.args[0], out, lines)
            lines.append(f"np.maximum({src}, 0, out={out})")
        elif fn is step:
            src = self._into(expr.args[0], out, lines)
            # ceil(clip(a, 0, 1)), not greater(a, 0): a NaN stays NaN instead of becoming a finite 0
            lines += [f"np.clip({src}, 0, 1, out={out})", f"np.ceil({out}, out={out})"]
        elif fn in _UFUNCS:
            src = self._into(expr.args[0], out, lines)
            lines.append(f"{_UFUNCS[fn]}({src}, out={out})")
        else:
            lines.append(f"{out}[...] = {self.p._print(expr)}")
        return lines
