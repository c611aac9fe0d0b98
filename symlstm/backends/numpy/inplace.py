"""Expression -> in-place NumPy calls: `InplaceEmitter` writes an expression into a preallocated array.

`np.multiply(f, c_prev, out=c)`, `c += buf_0`: a time step allocates nothing. Every symbol goes through
the `NumpyCodePrinter`, so names are those of `symlstm.naming` (or the printer's mapping) everywhere.
"""

from __future__ import annotations

import sympy as sp

from ...activations import relu, sigmoid, step
from .printer import NumpyCodePrinter, number

__all__ = ["InplaceEmitter", "ScratchPool"]


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
        if not exp.is_number:  # an exponent that reads a vector (u**v, 2**v): computed, then applied
            src = self._into(base, out, lines) if not base.is_number else number(base)
            name, temp = self._operand(exp, lines)
            lines.append(f"np.power({src}, {name}, out={out})")
            if temp:
                self.pool.release()
            return lines
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
