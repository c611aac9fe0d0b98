"""`CellTex`: the printed pieces of one derivation that cell and topic documents share.

Forward equations, Jacobian blocks (factored, see `factored`), the backward program, parameter
gradients, local derivatives, and the tables (dimensions, fused layout, parameter counts), all printed
from the derivation engine with `TexPrinter`, numbered with `Derivation.equation_numbers`.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy as sp

from ...activations import relu, sigmoid
from ...engine import Derivation, size_symbol
from ...naming import adjoint, incoming, latex_name, tex_escape
from ...spec import ElementwiseNode, LinearNode
from .cellnotes import NOTES
from .document import Row
from .factored import expand, factored, factored_lines, same_terms
from .printer import WIDTH, TexPrinter, break_sum, expr_lines, ordered_terms

__all__ = ["CellTex"]


class CellTex:
    """Printed pieces of one derivation: equations, Jacobians, backward program, tables.

    Args:
        d: the derivation.
        prefix: text before equation numbers (`""` in the cell's own document, `"lstm."` elsewhere).
    """

    def __init__(self, d: Derivation, prefix: str = ""):
        self.d = d
        self.spec = d.spec
        self.p = TexPrinter(d)
        self.prefix = prefix
        self.numbers = d.equation_numbers
        notes = NOTES.get(self.spec.name)
        self.roles = notes.roles if notes is not None and self._is_builtin() else {}

    def _is_builtin(self) -> bool:
        from ...cells import CELLS, cell

        return self.spec.name in CELLS and cell(self.spec.name) == self.spec

    def tag(self, kind: str, name: str) -> str:
        return f"{self.prefix}{self.numbers[(kind, name)]}"

    def label(self, kind: str, name: str) -> str:
        return f"eq:{self.spec.name}:{kind}:{name}"

    def ref(self, kind: str, name: str) -> str:
        """`\\eqref` of an equation of this cell (only where the document displays it)."""
        return rf"\eqref{{{self.label(kind, name)}}}"

    def span(self, kind: str) -> str:
        """The numbers of all equations of one kind ("fwd", "adj", "grad"), e.g. `(11)--(29)`."""
        nums = [n for (k, _), n in self.numbers.items() if k == kind]
        lo, hi = f"{self.prefix}{min(nums)}", f"{self.prefix}{max(nums)}"
        return f"({lo})" if lo == hi else f"({lo})--({hi})"

    def linear_terms(self, node: LinearNode) -> list[str]:
        n = self.p.name
        return [f"{n(w)} {n(u)}" for w, u in node.terms] + [n(b) for b in node.biases]

    def forward_rows(self, nodes: Iterable[str] | None = None, *, numbered: bool = True) -> list[Row]:
        wanted = set(nodes) if nodes is not None else None
        rows = []
        for node in self.spec.nodes:
            if wanted is not None and node.name not in wanted:
                continue
            if isinstance(node, LinearNode):
                lines = break_sum(self.linear_terms(node))
            else:
                lines = expr_lines(self.p, node.expr)
            tag, label = (self.tag("fwd", node.name), self.label("fwd", node.name)) if numbered else ("", "")
            rows.append(Row(self.p.name(node.name), lines, tag, label))
        return rows

    # Jacobians ---------------------------------------------------------------------------------------
    def jacobian_symbol(self, of: str, wrt: str, time: str | None = None, frac: str = r"\frac") -> str:
        p = self.p if time is None else TexPrinter(self.d, time)
        return rf"{frac}{{\partial {p.name(of)}}}{{\partial {p.name(wrt)}}}"

    def step_blocks(self) -> list[tuple[str, str]]:
        """(new-state node, previous state) pairs of the step Jacobian, row by row."""
        s = self.spec
        return [(s.update_of[a], s.prev(b)) for a in s.states for b in s.states]

    def jacobian_row(self, of: str, wrt: str, refs: Iterable[tuple[str, str]] | None = None) -> Row:
        """One block in factored form; sub-blocks among `refs` (default: the step blocks) by name."""
        blocks = list(self.step_blocks() if refs is None else refs)
        f = factored(self.d, of, wrt, blocks)
        lines = factored_lines(self.p, f, lambda a, b: self.jacobian_symbol(a, b), WIDTH)
        return Row(self.jacobian_symbol(of, wrt), lines)

    def factored_is_engine(self, blocks: Iterable[tuple[str, str]] | None = None) -> bool:
        """Every printed factored block multiplies out to the engine's `jacobian_terms`."""
        blocks = list(self.step_blocks() if blocks is None else blocks)
        return all(
            same_terms(expand(self.d, factored(self.d, a, b, blocks)), self.d.jacobian_terms(a, b))
            for a, b in blocks
        )

    def step_matrix(self) -> str:
        """The step Jacobian as a block matrix of named blocks (rows spaced so fractions never touch)."""
        s = self.spec
        n = self.p.name
        rows = [" & ".join(self.jacobian_symbol(s.update_of[a], s.prev(b), frac=r"\dfrac") for b in s.states)
                for a in s.states]  # fmt: skip
        body = r" \\[10pt] ".join(rows)
        left = (rf"\frac{{\partial ({', '.join(n(s.update_of[a]) for a in s.states)})}}"
                rf"{{\partial ({', '.join(n(s.prev(b)) for b in s.states)})}}")  # fmt: skip
        return (rf"J_t = {left} = \left[\,\begin{{matrix}} {body} \end{{matrix}}\,\right]"
                if len(s.states) > 1 else rf"J_t = {left}")  # fmt: skip

    def diagonal_blocks(self) -> list[tuple[str, str]]:
        """Step blocks whose every term is a product of diagonal factors only (no weight matrix)."""
        out = []
        for a, b in self.step_blocks():
            terms = self.d.jacobian_terms(a, b)
            if terms and all(all(kind == "diag" for kind, _ in t) for t in terms):
                out.append((a, b))
        return out

    # backward ---------------------------------------------------------------------------------------
    def adjoint_rows(self, vectors: Iterable[str] | None = None) -> list[Row]:
        wanted = set(vectors) if vectors is not None else None
        rows = []
        n = self.p.name
        for a in self.d.vjp:
            if wanted is not None and a.vector not in wanted:
                continue
            terms = []
            if a.incoming:
                terms.append(n(incoming(a.vector)))
            if a.elementwise != 0:
                terms += [self.p._print(t) for t in ordered_terms(self.p, a.elementwise)]
            terms += [rf"{n(w)}^{{\top}} {n(adjoint(node))}" for w, node in a.linear]
            lines = break_sum(terms) if terms else ["0"]
            rows.append(Row(n(adjoint(a.vector)), lines, self.tag("adj", a.vector),
                            self.label("adj", a.vector)))  # fmt: skip
        return rows

    def gradient_rows(self, params: Iterable[str] | None = None) -> list[Row]:
        wanted = set(params) if params is not None else None
        n = self.p.name
        by_param: dict[str, list[str]] = {}
        for g in self.d.param_gradients:
            if wanted is not None and g.param not in wanted:
                continue
            if g.kind == "weight":
                term = rf"{n(adjoint(g.node))}\, {n(g.input)}^{{\top}}"
            elif g.kind == "bias":
                term = n(adjoint(g.node))
            else:
                term = self.p._print(g.expr)
                term = rf"\left({term}\right)" if isinstance(g.expr, sp.Add) else term
            by_param.setdefault(g.param, []).append(term)
        rows = []
        for param, terms in by_param.items():
            sums = [rf"\sum_{{t}} \sum_{{b}} {t}" for t in terms]
            rows.append(Row(rf"\delta {n(param)}", break_sum(sums), self.tag("grad", param),
                            self.label("grad", param)))  # fmt: skip
        return rows

    def bptt_rows(self) -> list[Row]:
        s, p = self.spec, self.p
        rows = []
        for st in self.d.bptt():
            terms = []
            for new in s.states:
                node = s.update_of[new]
                if not isinstance(self.d.jacobian(node, st), sp.ZeroMatrix):
                    terms.append(
                        rf"\left({self.jacobian_symbol(node, st)}\right)^{{\top}} {p.name(incoming(node))}"
                    )
            rows.append(Row(p.name(adjoint(st)), break_sum(terms) if terms else ["0"]))
        return rows

    def local_derivative_rows(self) -> list[Row]:
        """d node / d argument for every elementwise node and every vector or parameter it reads."""
        rows = []
        for node in self.spec.nodes:
            if not isinstance(node, ElementwiseNode):
                continue
            for arg in [*self.d.args_of(node), *self.d.params_of(node)]:
                rows.append(
                    Row(self.jacobian_symbol(node.name, arg), expr_lines(self.p, self.d.partial(node, arg)))
                )
        return rows

    # tables ---------------------------------------------------------------------------------------------
    def describe(self, name: str) -> str:
        """What a vector of the step is, in words, from the graph (and the cell's roles, when known)."""
        s, n = self.spec, self.p.name
        if name == s.input:
            return "input"
        if name in s.prev_names:
            return f"state from step $t-1$ (previous ${latex_name(name[: -len('_prev')], time='t')}$)"
        node = s.node(name)
        role = self.roles.get(name, "")
        if isinstance(node, LinearNode):
            readers = [c.name for c in s.consumers(name)]
            ins = ", ".join(f"${n(u)}$" for u in dict.fromkeys(u for _, u in node.terms))
            what = f"linear in {ins}"
            if len(readers) == 1:
                what = f"pre-activation of ${n(readers[0])}$: {what}"
            return f"{role}: {what}" if role else what
        expr = node.expr
        ranges = {sigmoid: r"$\sigma(\cdot) \in (0, 1)$", sp.tanh: r"$\tanh(\cdot) \in (-1, 1)$",
                  relu: r"$\mathrm{relu}(\cdot) \geq 0$"}  # fmt: skip
        if isinstance(expr, sp.Function) and type(expr) in ranges:
            what = ranges[type(expr)]
        else:
            args = ", ".join(f"${n(a)}$" for a in self.d.args_of(node))
            what = f"elementwise in {args}"
        if name in s.update_of.values() and "state" not in role:
            what += "; new state"
        if name == s.output:
            what += "; output $y_t$"
        return f"{role}, {what}" if role else what

    def dimension_rows(self) -> list[list[str]]:
        """Symbol, what it is, size of one sample, size in a mini-batch of B, where it is stored."""
        s, n = self.spec, self.p.name
        rows = []
        for leaf in s.leaves:
            size = s.size(leaf)
            rows.append([f"${n(leaf)}$", self.describe(leaf), f"${size}$", f"$B \\times {size}$", "argument"])
        for node in s.nodes:
            size = s.size(node.name)
            rows.append([f"${n(node.name)}$", self.describe(node.name), f"${size}$", f"$B \\times {size}$",
                         "computed"])  # fmt: skip
        for m in self.d.intermediates:
            size = self.d.size_label(m.name)
            rows.append([f"${n(m.name)}$", f"inside ${n(m.node)}$, kept for the backward pass", f"${size}$",
                         f"$B \\times {size}$", "computed"])  # fmt: skip
        for prm in s.params:
            g = s.group_of(prm.name)
            shape = r" \times ".join(prm.shape)
            where = rf"\texttt{{{tex_escape(g.name)}}}"
            if len(g.members) > 1:
                where += f", block {g.members.index(prm.name) + 1} of {len(g.members)}"
            rows.append([f"${n(prm.name)}$", self._param_role(prm.name), f"${shape}$", "shared", where])
        return rows

    def _param_role(self, name: str) -> str:
        s, n = self.spec, self.p.name
        for node in s.nodes:
            if isinstance(node, LinearNode):
                for w, u in node.terms:
                    if w == name:
                        return f"weight: ${n(u)}$ into ${n(node.name)}$"
                if name in node.biases:
                    return f"bias of ${n(node.name)}$"
        users = [
            nd.name for nd in s.nodes if isinstance(nd, ElementwiseNode) and name in self.d.params_of(nd)
        ]
        return "vector inside " + ", ".join(f"${n(u)}$" for u in users)

    def layout_rows(self) -> list[list[str]]:
        s = self.spec
        rows = []
        for g in s.groups:
            prm = s.param(g.members[0])
            k = len(g.members)
            first = f"{k}{prm.shape[0]}" if k > 1 else prm.shape[0]
            shape = rf"{first} \times {prm.shape[1]}" if prm.is_matrix else first
            order = ", ".join(f"${self.p.name(m)}$" for m in g.members)
            rows.append([rf"\texttt{{{tex_escape(g.name)}}}", f"${shape}$", order])
        return rows

    def count_formula(self) -> tuple[sp.Expr, sp.Expr]:
        """(stored parameter count, count with one bias per linear node) as polynomials in the sizes."""
        dims = {label: size_symbol(label) for label, _ in self.spec.sizes}
        stored = sp.Add(*[sp.Mul(*[dims[x] for x in p.shape]) for p in self.spec.params])
        redundant = sum(max(len(nd.biases) - 1, 0) * size_symbol(self.spec.size(nd.name))
                        for nd in self.spec.nodes if isinstance(nd, LinearNode))  # fmt: skip
        return sp.factor(stored), sp.factor(stored - redundant)
