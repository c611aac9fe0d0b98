"""The backward step as data: folded adjoints, coefficients per chunk of steps, runs, common factors.

`symlstm.folding` writes every kept adjoint as sum of coefficient * adjoint, the coefficients reading
forward values only. Here each coefficient that is more than a symbol or a number and whose forward
values all have a sequence over time gets a slot j: backward computes slot j for a chunk of steps at
once, outside the recurrence, and the step reads it as the symbol `coef_j` (`coefficient(j)`). Linear
nodes whose adjoints are single multiples of one adjoint and lie in adjacent blocks of the adjoint
buffer form a run: one multiply by a run of slots (`AdjointRun`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy as sp

from ..engine import Derivation
from ..folding import FoldedStep, factor, fold
from ..naming import adjoint, incoming
from ..spec import LinearNode

__all__ = [
    "AdjointRun",
    "BackwardStep",
    "backward_step",
    "coefficient",
    "incoming_aliases",
    "param_gradient",
    "step_cse",
]


def coefficient(j: int) -> sp.Symbol:
    """The symbol of coefficient slot j at the current step."""
    return sp.Symbol(f"coef_{j}", real=True)


@dataclass(frozen=True)
class AdjointRun:
    """Adjoints of linear nodes in adjacent blocks of the adjoint buffer, each a coefficient times the
    same adjoint `factor`: one multiply of a run of coefficient slots."""

    vectors: tuple[str, ...]  # in block order
    factor: sp.Symbol
    first: str  # the node of the lowest block
    slot: int  # the coefficient slot of the lowest block


@dataclass(frozen=True)
class BackwardStep:
    """The folded and factored step (see the module docstring)."""

    folding: FoldedStep
    exprs: Mapping[str, sp.Expr]  # kept vector -> its elementwise adjoint, slots as coef_j
    coefficients: tuple[sp.Expr, ...]  # slot j -> its expression in forward values
    runs: Mapping[str, AdjointRun | None]  # the run's first vector in VJP order -> run; others -> None


def backward_step(
    d: Derivation, order: tuple[str, ...], chunked_value: Callable[[str], bool]
) -> BackwardStep:
    """Fold and factor the step, give coefficients slots, find the runs.

    `order` is the adjoint buffer's block order; `chunked_value(name)` says whether forward value `name`
    has a sequence over time to compute coefficients from (for a chunk of steps at once).
    """
    s = d.spec
    linear = {n.name for n in s.nodes if isinstance(n, LinearNode)}
    keep = linear | {f"{st}_prev" for st in s.states} | {s.input}
    folding = fold(d, keep)
    terms = {v: factor(e) for v, e in folding.kept.items()}

    def chunked(c: sp.Expr) -> bool:
        return not (c.is_Symbol or c.is_Number) and all(chunked_value(x.name) for x in c.free_symbols)

    def run_member(v: str) -> tuple[sp.Symbol, int] | None:
        """(adjoint factor, block in the adjoint buffer) of a linear node's single-term adjoint."""
        if v not in linear or len(terms[v]) != 1 or not chunked(terms[v][0][1]):
            return None
        return (terms[v][0][0], order.index(v)) if len(order) > 1 else None

    vjp_order = list(folding.kept)
    coefficients: list[sp.Expr] = []
    slot_of: dict[tuple[str, sp.Expr], int] = {}  # (vector, adjoint) -> slot
    runs: dict[str, AdjointRun | None] = {}
    members = {v: m for v in vjp_order if (m := run_member(v)) is not None}
    for w in dict.fromkeys(m[0] for m in members.values()):
        blocks = sorted((m[1], v) for v, m in members.items() if m[0] == w)
        j = 0
        while j < len(blocks):  # runs of adjacent blocks, each one multiply by d_w
            k = j + 1
            while k < len(blocks) and blocks[k][0] == blocks[k - 1][0] + 1:
                k += 1
            if k - j > 1:
                run = [v for _, v in blocks[j:k]]  # block order
                first = min(run, key=vjp_order.index)  # emitted where the first of them was due
                runs[first] = AdjointRun(tuple(run), w, run[0], len(coefficients))
                runs.update({v: None for v in run if v != first})
                for v in run:
                    slot_of[(v, w)] = len(coefficients)
                    coefficients.append(terms[v][0][1])
            j = k
    seen: dict[sp.Expr, int] = {}
    exprs: dict[str, sp.Expr] = {}
    for v in vjp_order:
        total = sp.S.Zero
        for w, c in terms[v]:
            if (v, w) not in slot_of and chunked(c):
                if c not in seen:
                    seen[c] = len(coefficients)
                    coefficients.append(c)
                slot_of[(v, w)] = seen[c]
            if (v, w) in slot_of:
                c = coefficient(slot_of[(v, w)])
            total += c * w
        exprs[v] = total
    return BackwardStep(folding, exprs, tuple(coefficients), runs)


def param_gradient(d: Derivation, step: BackwardStep, order: tuple[str, ...], expr: sp.Expr) -> sp.Expr:
    """A parameter vector's per-step gradient in terms of a linear node's adjoint where it is a multiple
    of one (peephole: c_prev*d_i*i*(1 - i) = c_prev * d_a_i, d_a_i already in the adjoint buffer: one
    multiply), else with the folded adjoints substituted."""

    def adjoints(e: sp.Expr) -> set[sp.Symbol]:
        return {x for x in e.free_symbols if x.name.startswith(("d_", "din_"))}

    for v in order:
        own = sp.sympify(d.adjoint(v).elementwise)
        if own == 0:
            continue
        ratio = sp.cancel(expr / own)
        # Only an exact multiple: a ratio with a variable denominator would divide by a value that can
        # vanish (0 * inf = nan at a zero state).
        if not adjoints(ratio) and not sp.fraction(ratio)[1].free_symbols:
            return ratio * sp.Symbol(adjoint(v), real=True)
    return step.folding.substitute(expr)


def incoming_aliases(d: Derivation, step: BackwardStep) -> frozenset[str]:
    """Vectors whose adjoint is just the gradient arriving from outside the step (d_h = din_h)."""
    s = d.spec
    linear = {n.name for n in s.nodes if isinstance(n, LinearNode)}
    out = set()
    for a in d.vjp:
        if a.vector in s.leaves or a.vector in linear or a.vector in step.folding.folded:
            continue
        if a.incoming and a.elementwise == 0 and not a.linear:
            out.add(a.vector)
    return frozenset(out)


@dataclass(frozen=True)
class StepCse:
    """Common subexpressions of the step's adjoint expressions.

    After folding the expressions are sums of coefficient * adjoint, so what repeats is a product (two
    adjoints with the same coefficient and factor, outside a run). A pre-activation adjoint that *is* a
    common subexpression is computed straight into its block of the adjoint buffer at its first use
    and read from there (`hoisted`: temporary -> vector); other temporaries get a (B, H) scratch array.
    No built-in cell has any left after folding.
    """

    exprs: Mapping[str, sp.Expr]  # vector -> its expression to emit, temporaries as symbols
    temps: Mapping[sp.Symbol, sp.Expr]  # temporary (or a hoisted adjoint's symbol) -> expression
    hoisted: Mapping[sp.Symbol, str]  # adjoint symbol d_v -> v, for temporaries stored in v's block


def step_cse(d: Derivation, step: BackwardStep, aliases: frozenset[str]) -> StepCse:
    s = d.spec
    linear = {n.name for n in s.nodes if isinstance(n, LinearNode)}
    exprs: dict[str, sp.Expr] = {}
    for a in d.vjp:
        v = a.vector
        if v == s.input or v in aliases or v in step.folding.folded or v in step.runs:
            continue
        total = step.exprs[v]
        if v not in linear and a.incoming:
            total = total + sp.Symbol(incoming(v), real=True)
        exprs[v] = total
    names = list(exprs)
    temps, out = sp.cse([exprs[v] for v in names], symbols=sp.numbered_symbols("cse_", real=True))
    reduced = dict(zip(names, out))
    temp_expr = dict(temps)
    storage: dict[sp.Symbol, str] = {}
    for v in names:
        x = reduced[v]
        if v in linear and x in temp_expr and x not in storage:
            storage[x] = v
    subs = {x: sp.Symbol(adjoint(v), real=True) for x, v in storage.items()}
    reduced = {v: e.xreplace(subs) for v, e in reduced.items()}
    renamed = {subs.get(x, x): e.xreplace(subs) for x, e in temp_expr.items()}
    hoisted = {subs[x]: v for x, v in storage.items()}
    return StepCse(reduced, renamed, hoisted)
