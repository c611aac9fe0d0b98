"""Symbolic proofs: every matrix-form result equals SymPy's scalar calculus on the expanded cell.

At a small size (hidden 3, input 2 by default) the cell is expanded coordinate by coordinate, with one
symbol per input, state and parameter entry, and the activations kept as opaque functions of their
arguments. Those functions are not the package's: each is differentiated by a rule SymPy derives from
the activation's textbook definition (`symlstm.definitions`), so a wrong derivative rule in
`symlstm.activations` fails every claim that uses it. Then:

* each Jacobian `Derivation.jacobian(of, wrt)`, evaluated entry by entry, must equal
  `Matrix(of).jacobian(wrt)`;
* the backward program, run symbolically with symbolic incoming adjoints, must give for every leaf and
  every parameter exactly sum_k din_k * d out_k / d entry, i.e. the transposed Jacobian times the adjoints;
* the tangent program must give exactly the Jacobian times a symbolic direction;
* the BPTT recurrence must equal the backward program's state adjoints.

Equality is decided exactly, as equal canonical polynomials in these atoms (`symlstm.identity`): a
proof for that size, not a sample. The activations' own derivative rules are also proved on their own
(`activations.derivative_rule_holds`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass

import sympy as sp

from .activations import ACTIVATIONS, derivative_rule_holds
from .definitions import independent
from .engine import Derivation, Diag, Term, size_symbol
from .identity import MODULUS_BITS, Canonical, Undecided, is_zero
from .naming import adjoint, incoming, tangent
from .spec import ElementwiseNode, LinearNode

__all__ = ["Expanded", "ProofResult", "expand_cell", "prove_all"]


@dataclass
class ProofResult:
    claim: str
    ok: bool
    detail: str = ""  # what the claim was compared with (reported when it fails)


class Expanded:
    """The cell expanded coordinate by coordinate at sizes H (hidden), I (input) and each size the cell
    declares (`extra`, by label; default hidden - 1, - 2, ..., at least 1: unlike H, and no larger)."""

    def __init__(self, d: Derivation, hidden: int = 3, inputs: int = 2, extra: dict[str, int] | None = None):
        self.d = d
        self.spec = d.spec
        self.n = {"H": hidden, "I": inputs}
        for k, (label, _) in enumerate(self.spec.extra_sizes):
            self.n[label] = (extra or {}).get(label, max(1, hidden - 1 - k))
        self.by_symbol = {size_symbol(label): n for label, n in self.n.items()}
        # The zero test's canonical forms, shared by every claim about this cell (memoised subtrees: the
        # claims share most of them); one per cell, so a long run of cells does not accumulate them.
        self.canonical = Canonical()
        self.vec: dict[str, sp.Matrix] = {}
        self.par: dict[str, sp.Matrix] = {}
        for leaf in self.spec.leaves:
            self.vec[leaf] = self._symbols(leaf, self.n[self.spec.size(leaf)])
        for p in self.spec.params:
            if p.is_matrix:
                r, c = (self.n[k] for k in p.shape)
                self.par[p.name] = sp.Matrix(r, c, lambda i, j, nm=p.name: sp.Symbol(f"{nm}[{i},{j}]"))
            else:
                self.par[p.name] = self._symbols(p.name, self.n[p.shape[0]])
        for node in self.spec.nodes:
            self.vec[node.name] = self._node_value(node)
        for inter in d.intermediates:
            self.vec[inter.name] = self._per_coordinate(inter.call, size=self.spec.size(inter.node))

    @staticmethod
    def _symbols(name: str, size: int) -> sp.Matrix:
        return sp.Matrix([sp.Symbol(f"{name}[{k}]") for k in range(size)])

    def coordinate(self, k: int, extra: dict[str, sp.Matrix] | None = None) -> dict[sp.Symbol, sp.Expr]:
        """Substitution of every per-coordinate symbol by its k-th explicit component."""
        table = {**self.vec, **{p: v for p, v in self.par.items() if v.shape[1] == 1}, **(extra or {})}
        return {self.d.sym.get(name, sp.Symbol(name, real=True)): v[k] for name, v in table.items()
                if v.shape[0] > k}  # fmt: skip

    def _per_coordinate(
        self, expr: sp.Expr, extra: dict[str, sp.Matrix] | None = None, size: str = "H"
    ) -> sp.Matrix:
        """`expr` (per coordinate) for each coordinate of a vector of size `size` (a label)."""
        expr = independent(expr)  # activations by their definitions, not by the package's rules
        return sp.Matrix([expr.xreplace(self.coordinate(k, extra)) for k in range(self.n[size])])

    def _node_value(self, node: LinearNode | ElementwiseNode) -> sp.Matrix:
        if isinstance(node, LinearNode):
            total = sp.zeros(self.n[self.spec.size(node.name)], 1)
            for w, u in node.terms:
                total += self.par[w] * self.vec[u]
            for b in node.biases:
                total += self.par[b]
            return total
        return self._per_coordinate(node.expr, size=self.spec.size(node.name))

    def matrix(self, terms: list[Term], of: str, wrt: str) -> sp.Matrix:
        rows, cols = self.n[self.spec.size(of)], self.n[self.spec.size(wrt)]
        total = sp.zeros(rows, cols)
        for term in terms:
            label = self.spec.size(of)
            m = sp.eye(rows)
            for kind, v in term:
                if kind == "diag":
                    m = m * sp.diag(*self._per_coordinate(v, size=label))  # type: ignore[arg-type]
                else:
                    m = m * self.par[v]  # type: ignore[index]
                    label = self.spec.param(v).shape[1]  # type: ignore[arg-type]
            total += m
        return total

    def _label(self, n: sp.Expr) -> str:
        return next(label for label, k in self.n.items() if size_symbol(label) == n)

    def explicit(self, m: sp.MatrixExpr, vectors: dict[str, sp.Matrix]) -> sp.Matrix:
        """A matrix expression of `Diag`s, weights and the column vectors `vectors`, written out."""
        if isinstance(m, Diag):
            return sp.diag(*self._per_coordinate(m.expr, size=self._label(m.shape[0])))
        if isinstance(m, sp.MatrixSymbol):
            return vectors[m.name] if m.name in vectors else self.par[m.name]
        if isinstance(m, sp.Transpose):
            return self.explicit(m.arg, vectors).T
        if isinstance(m, sp.ZeroMatrix):
            return sp.zeros(*(self.by_symbol.get(k, k) for k in m.shape))
        if isinstance(m, sp.Identity):
            return sp.eye(self.by_symbol[m.rows])
        parts = [self.explicit(a, vectors) for a in m.args]
        if isinstance(m, sp.MatMul):
            return functools.reduce(operator.mul, parts)
        if isinstance(m, sp.MatAdd):
            return functools.reduce(operator.add, parts)
        raise TypeError(f"cannot write out {type(m).__name__} {m}")

    @property
    def reference(self) -> str:
        """What every claim about the expanded cell is compared with."""
        return "SymPy's Matrix.jacobian of the cell expanded at " + ", ".join(
            f"{label}={n}" for label, n in self.n.items()
        )

    def entries(self, name: str) -> list[sp.Symbol]:
        """The independent symbols of a leaf or parameter, row-major."""
        if name in self.par:
            return list(self.par[name])
        return list(self.vec[name])


def decide(entries: Iterable[sp.Expr], canonical: Canonical) -> tuple[bool, str]:
    """(every entry zero, "" or why the zero test could not decide it at this size, or, for a zero
    decided by evaluation, the bound on the chance that it is wrong)."""
    before = len(canonical.randomised)
    try:
        ok = all(is_zero(e, canonical) for e in entries)
    except Undecided as why:
        return False, f"undecided at this size: {why}"
    randomised = canonical.randomised[before:]
    if not ok or not randomised:
        return ok, ""
    error = sum(r.error for r in randomised)
    degree, trials = max(r.degree for r in randomised), min(r.trials for r in randomised)
    many = "entry" if len(randomised) == 1 else "entries"
    return True, (
        f"randomised: {len(randomised)} {many} too large to decide exactly, each zero at {trials} or "
        f"more random points modulo random {MODULUS_BITS}-bit primes (degree at most {degree}); the "
        f"chance that a nonzero claim passes is below {error:.0e}"
    )


def _claim(claim: str, difference: sp.Matrix, ex: Expanded) -> ProofResult:
    """The claim that every entry of `difference` is zero, decided by the zero test (or undecided)."""
    ok, note = decide(difference, ex.canonical)
    return ProofResult(claim, ok, note or ex.reference)


def _prove_jacobians(ex: Expanded) -> list[ProofResult]:
    d, spec = ex.d, ex.spec
    out = []
    for of in [n.name for n in spec.nodes]:
        for wrt in spec.leaves:
            mine = ex.matrix(d.jacobian_terms(of, wrt), of, wrt)
            want = ex.vec[of].jacobian(ex.entries(wrt))
            out.append(_claim(f"jacobian({of}, {wrt})", mine - want, ex))
    return out


def run_vjp(ex: Expanded, din: dict[str, sp.Matrix]) -> tuple[dict[str, sp.Matrix], dict[str, sp.Matrix]]:
    """Run the backward program on explicit vectors; returns (adjoints, parameter gradients)."""
    d = ex.d
    adj: dict[str, sp.Matrix] = {}
    for a in d.vjp:
        label = ex.spec.size(a.vector)
        label = "H" if label == "I" else label  # the input read elementwise: a same-size cell, I == H
        total = din[a.vector] if a.incoming else sp.zeros(ex.n[ex.spec.size(a.vector)], 1)
        if a.elementwise != 0:
            extra = {adjoint(k): v for k, v in adj.items()}
            total = total + ex._per_coordinate(a.elementwise, extra, size=label)
        for w, node in a.linear:
            total = total + ex.par[w].T * adj[node]
        adj[a.vector] = total
    grads: dict[str, sp.Matrix] = {}
    extra = {adjoint(k): v for k, v in adj.items()}
    for g in d.param_gradients:
        if g.kind == "weight":
            val = adj[g.node] * ex.vec[g.input].T
        elif g.kind == "bias":
            val = adj[g.node]
        else:
            val = ex._per_coordinate(g.expr, extra, size=ex.spec.param(g.param).shape[0])
        grads[g.param] = grads.get(g.param, sp.zeros(*val.shape)) + val
    return adj, grads


def _prove_vjp(ex: Expanded) -> list[ProofResult]:
    d, spec = ex.d, ex.spec
    din = {v: ex._symbols(incoming(v), ex.n[spec.size(v)]) for v in d.incoming}
    adj, grads = run_vjp(ex, din)

    def pullback(entries: list[sp.Symbol]) -> sp.Matrix:
        total = sp.zeros(len(entries), 1)
        for v in d.incoming:
            total += ex.vec[v].jacobian(entries).T * din[v]
        return total

    out = []
    for leaf in spec.leaves:
        out.append(_claim(f"vjp d_{leaf}", adj[leaf] - pullback(ex.entries(leaf)), ex))
    for p in spec.params:
        got = sp.Matrix(list(grads[p.name]))  # row-major, like entries()
        out.append(_claim(f"gradient {p.name}", got - pullback(ex.entries(p.name)), ex))
    # BPTT recurrence: delta s_{t-1} = sum J^T din s'_t, with the gradients arriving at the new states.
    din_vectors = {incoming(v): m for v, m in din.items()}
    for prev, recurrence in d.bptt().items():
        out.append(_claim(f"bptt d_{prev}", ex.explicit(recurrence, din_vectors) - adj[prev], ex))
    return out


def _prove_jvp(ex: Expanded) -> list[ProofResult]:
    d, spec = ex.d, ex.spec
    tan: dict[str, sp.Matrix] = {}
    for leaf in spec.leaves:
        tan[leaf] = ex._symbols(tangent(leaf), ex.n[spec.size(leaf)])
    tpar = {
        p: sp.Matrix(*m.shape, lambda i, j, nm=p: sp.Symbol(f"{tangent(nm)}[{i},{j}]"))
        for p, m in ex.par.items()
    }
    for t in d.jvp:
        node = spec.node(t.node)
        if isinstance(node, LinearNode):
            val = sp.zeros(ex.n[spec.size(node.name)], 1)
            for w, u in node.terms:
                val += ex.par[w] * tan[u] + tpar[w] * ex.vec[u]
            for b in node.biases:
                val += tpar[b]
        else:
            extra = {tangent(k): v for k, v in {**tan, **tpar}.items() if v.shape[1] == 1}
            val = ex._per_coordinate(t.expr, extra, size=spec.size(node.name))
        tan[t.node] = val
    all_entries, all_tan = [], []
    for leaf in spec.leaves:
        all_entries += ex.entries(leaf)
        all_tan += list(tan[leaf])
    for p in spec.params:
        all_entries += ex.entries(p.name)
        all_tan += list(tpar[p.name])
    direction = sp.Matrix(all_tan)
    out = []
    for st in spec.states:
        node = spec.update_of[st]
        want = ex.vec[node].jacobian(all_entries) * direction
        out.append(_claim(f"jvp tan_{node}", tan[node] - want, ex))
    return out


def prove_all(d: Derivation, hidden: int = 3, inputs: int = 2) -> list[ProofResult]:
    """Every symbolic claim about a cell, proved at the given size (the input size is the hidden size
    for a cell that needs them equal; a size the cell declares is hidden - 1, - 2, ..., at least 1).
    Returns one result per claim (one too large for the zero test is not proved: "undecided")."""
    results = [
        ProofResult(
            f"activation {name}: derivative in output form",
            derivative_rule_holds(fn),
            "the derivative of its textbook definition",
        )
        for name, fn in ACTIVATIONS.items()
        if any(isinstance(e, fn) for n in d.spec.nodes if isinstance(n, ElementwiseNode)
               for e in sp.preorder_traversal(n.expr))
    ]  # fmt: skip
    ex = Expanded(d, hidden, hidden if d.spec.same_size else inputs)  # same_size cells: I == H
    results += _prove_jacobians(ex)
    results += _prove_vjp(ex)
    results += _prove_jvp(ex)
    return results


def expand_cell(d: Derivation, hidden: int = 3, inputs: int = 2) -> Expanded:
    return Expanded(d, hidden, inputs)
