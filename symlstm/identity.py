"""Exact zero test for the large expressions of the code-level proofs: canonical sparse polynomials.

`sympy.expand` re-expands every argument of every function call at every occurrence; the expressions
of an unrolled cell's gradient share most of their subtrees, so that costs minutes. `Canonical` writes an
expression, once per distinct subtree (SymPy's expressions are hashed and shared), as a polynomial with
rational coefficients in *atoms*: symbols, and calls `F(args)` keyed by the class and the canonical
forms of their arguments (so `tanh(a*b + c)` and `tanh(c + b*a)` are one atom). A negative power of a
non-monomial is an atom too (its base canonical). Two expressions with the same canonical polynomial
are equal; `is_zero` is therefore exact and never accepts a nonzero expression. (It could reject an
identity that needs cancellation inside a denominator or an argument, e.g. `F(a + b) - F(b + a)` is
zero but `1 / (a**2 - 1) - 1 / ((a - 1) * (a + 1))` is not recognised; the generated code and the
cell it is compared with are built alike, so such forms do not arise.)
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

__all__ = ["Canonical", "is_zero"]

Monomial = tuple[tuple[int, int], ...]  # sorted (atom index, exponent)
Polynomial = dict[Monomial, Fraction]


def _mul_monomials(a: Monomial, b: Monomial) -> Monomial:
    if not a:
        return b
    if not b:
        return a
    merged: dict[int, int] = dict(a)
    for k, e in b:
        merged[k] = merged.get(k, 0) + e
    return tuple(sorted(merged.items()))


def _add(a: Polynomial, b: Polynomial, sign: int = 1) -> Polynomial:
    out = dict(a)
    for m, c in b.items():
        v = out.get(m, 0) + sign * c
        if v:
            out[m] = v
        else:
            out.pop(m, None)
    return out


def _mul(a: Polynomial, b: Polynomial) -> Polynomial:
    if len(a) > len(b):
        a, b = b, a
    out: Polynomial = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = _mul_monomials(ma, mb)
            v = out.get(m, 0) + ca * cb
            if v:
                out[m] = v
            else:
                out.pop(m, None)
    return out


def _pow(a: Polynomial, n: int) -> Polynomial:
    result: Polynomial = {(): Fraction(1)}
    base = a
    while n:
        if n & 1:
            result = _mul(result, base)
        n >>= 1
        if n:
            base = _mul(base, base)
    return result


class Canonical:
    """Canonical polynomials of SymPy expressions, memoised per subtree; atoms shared across calls."""

    def __init__(self) -> None:
        self._memo: dict[sp.Basic, Polynomial] = {}
        self._atoms: dict[object, int] = {}

    def _atom(self, key: object) -> Polynomial:
        index = self._atoms.setdefault(key, len(self._atoms))
        return {((index, 1),): Fraction(1)}

    @staticmethod
    def _key(p: Polynomial) -> frozenset:
        return frozenset(p.items())

    def of(self, expr: sp.Basic) -> Polynomial:
        """The canonical polynomial of `expr`."""
        hit = self._memo.get(expr)
        if hit is not None:
            return hit
        out = self._convert(expr)
        self._memo[expr] = out
        return out

    def _convert(self, e: sp.Basic) -> Polynomial:
        if e.is_Rational:
            return {(): Fraction(int(e.p), int(e.q))} if e != 0 else {}
        if e.is_Float:
            value = Fraction(sp.Rational(e).p, sp.Rational(e).q)
            return {(): value} if value else {}
        if e.is_Symbol:
            return self._atom(("symbol", e.name))
        if e.is_Add:
            out: Polynomial = {}
            for arg in e.args:
                out = _add(out, self.of(arg))
            return out
        if e.is_Mul:
            out = {(): Fraction(1)}
            for arg in e.args:
                out = _mul(out, self.of(arg))
                if not out:
                    return out
            return out
        if e.is_Pow and e.exp.is_Integer:
            n = int(e.exp)
            if n >= 0:
                return _pow(self.of(e.base), n)
            base = self.of(e.base)
            if len(base) == 1:  # a monomial: negative exponents are exact
                ((m, c),) = base.items()
                return {tuple((k, x * n) for k, x in m): Fraction(1) / c ** (-n)}
            return _pow(self._atom(("inverse", self._key(base))), -n)
        if e.is_number and not e.free_symbols:  # pi, E, sqrt(2), ...: exact atoms
            return self._atom(("number", sp.srepr(e)))
        if isinstance(e, sp.Function) or e.args:
            key = (type(e).__name__, type(e), tuple(self._key(self.of(a)) for a in e.args))
            return self._atom(key)
        return self._atom(("other", sp.srepr(e)))


def is_zero(expr: sp.Basic, canonical: Canonical | None = None) -> bool:
    """Whether `expr` is identically zero (see the module docstring for what it can prove)."""
    return not (canonical or Canonical()).of(sp.sympify(expr))
