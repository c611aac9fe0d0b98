"""The backward step rewritten for speed: adjoints folded into their consumers, coefficients factored out.

Every adjoint of a derived cell is linear in the other adjoints (a VJP is linear in its cotangent):
d_v = sum over adjoints w of coeff_w * d_w, where coeff_w depends on forward values only. Two rewrites
follow, both exact and both checked here symbolically:

* folding: an adjoint that is one such term and that nothing but other adjoints reads (the LSTM's gate
  adjoints d_o = d_h*tanh_c, d_i = d_c*g, ...) is substituted into its consumers, so the step never
  computes it: d_a_o = d_o*o*(1 - o) becomes d_a_o = d_h*(tanh_c*o*(1 - o));
* factoring: each remaining adjoint is written as sum of coeff_w * d_w. The coefficients read forward
  values only, so the generated backward computes them for a chunk of steps at once, outside the
  recurrence, and a step is left with one multiply (and an add) per term.

An LSTM step then costs d_c = d_h*k + din_c, [d_a_i, d_a_f, d_a_g] = d_c*[k_i, k_f, k_g] (one call
over three adjacent blocks), d_a_o = d_h*k_o, d_c_prev = d_c*f, and the recurrent GEMM, with k, k_i, ...
coefficients of forward values.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .engine import Derivation
from .naming import adjoint

__all__ = ["FoldedStep", "adjoint_symbols", "factor", "fold"]


def adjoint_symbols(expr: sp.Expr) -> list[sp.Symbol]:
    """The adjoints (`d_*`, `din_*`) an expression reads, sorted by name."""
    return sorted((s for s in expr.free_symbols if s.name.startswith(("d_", "din_"))), key=lambda s: s.name)


def factor(expr: sp.Expr) -> list[tuple[sp.Symbol, sp.Expr]]:
    """`expr` as [(adjoint, coefficient)], expr == sum of coefficient * adjoint, coefficients free of
    adjoints. Raises ValueError if `expr` is not of that form (linear and homogeneous in its adjoints)."""
    terms = [(w, sp.diff(expr, w)) for w in adjoint_symbols(expr)]
    rest = sp.expand(expr - sum((c * w for w, c in terms), sp.S.Zero))
    if rest != 0 or any(adjoint_symbols(c) for _, c in terms):
        raise ValueError(f"not linear and homogeneous in its adjoints: {expr}")
    return [(w, c) for w, c in terms if c != 0]


@dataclass(frozen=True)
class FoldedStep:
    """The backward step after folding.

    kept: vector -> its elementwise adjoint expression (without the incoming gradient), in terms of kept
        adjoints only; the order is the derivation's VJP order.
    folded: vector -> the expression substituted for d_<vector> wherever it was read.
    """

    kept: dict[str, sp.Expr]
    folded: dict[str, sp.Expr]

    def substitute(self, expr: sp.Expr) -> sp.Expr:
        """`expr` with every folded adjoint replaced by its expression."""
        return sp.sympify(expr).xreplace(
            {sp.Symbol(adjoint(v), real=True): e for v, e in self.folded.items()}
        )


def fold(d: Derivation, keep: set[str]) -> FoldedStep:
    """Fold every adjoint that is a single term coeff * d_w and is not in `keep` into its consumers.

    `keep` names vectors whose adjoints are read outside the elementwise adjoint expressions (the
    linear nodes' adjoints feed GEMMs, the previous states' are the step's outputs). Adjoints that
    receive an incoming gradient or have GEMM terms are kept. An expression outside the step that reads
    a folded adjoint (a parameter's gradient) takes it through `FoldedStep.substitute`.
    """
    subs: dict[sp.Symbol, sp.Expr] = {}
    kept: dict[str, sp.Expr] = {}
    folded: dict[str, sp.Expr] = {}
    for a in d.vjp:
        expr = sp.sympify(a.elementwise).xreplace(subs)
        if a.vector not in keep and not a.incoming and not a.linear and len(factor(expr)) == 1:
            subs[sp.Symbol(adjoint(a.vector), real=True)] = expr
            folded[a.vector] = expr
        else:
            kept[a.vector] = expr
    return FoldedStep(kept, folded)
