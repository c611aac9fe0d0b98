"""Derivation documents in LaTeX: documents built from a derivation, with checked claims.

Every equation in a document is printed from the derivation engine by `TexPrinter` (see `printer`). A
document is a list of blocks of already-printed strings, built with `Document` and laid out by
`templates/document.tex.j2` in a TeX-safe Jinja2 environment; every claim (`Document.claim`,
`Document.check`) is evaluated while the document is built, and a false claim raises `ClaimError`, so
no document states something the engine does not confirm.

Documents: one per registered cell (`cell_document`, `generated/latex/<cell>.tex`, equations tagged with
`Derivation.equation_numbers`, as the generated code's comments) and one per topic source in
`derivations/` (`topic_documents`). `symlstm.build.pdf` compiles them with latexmk.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

import jinja2
import sympy as sp

from ...engine import Derivation, H, I, derive
from ...naming import adjoint, incoming, latex_name, tex_escape
from ...paths import checkout_root
from ...spec import CellSpec, ElementwiseNode, LinearNode
from .printer import TexPrinter, break_sum, expr_lines, ordered_terms, terms_lines

__all__ = [
    "CellTex",
    "ClaimError",
    "Document",
    "Row",
    "cell_document",
    "latex_env",
    "render_documents",
    "topic_documents",
]

TEMPLATE = "document.tex.j2"


class ClaimError(AssertionError):
    """A claim stated in a document does not hold; the message names the document and the claim."""


@dataclass
class Row:
    """One displayed equation: `lhs = lines[0]` continued on further lines, tagged and labelled."""

    lhs: str
    lines: list[str]
    tag: str = ""
    label: str = ""
    rel: str = "="


@dataclass
class Document:
    """A derivation document under construction: blocks of printed strings for the template.

    Args:
        name: the file name without `.tex` (`lstm`, `t4_lstm_gradient`).
        title: the document title (TeX).
        source: where the document comes from, for the header comment (a path relative to the checkout).
    """

    name: str
    title: str
    source: str
    abstract: str = ""
    blocks: list[dict] = field(default_factory=list)
    claims: int = 0
    _labels: set[str] = field(default_factory=set)

    # prose and structure ---------------------------------------------------------------------------
    def section(self, title: str, label: str = "") -> None:
        self.blocks.append({"kind": "section", "title": title, "label": self._label(label)})

    def subsection(self, title: str, label: str = "") -> None:
        self.blocks.append({"kind": "subsection", "title": title, "label": self._label(label)})

    def text(self, tex: str) -> None:
        """A paragraph of prose, written in TeX by the topic's author."""
        self.blocks.append({"kind": "text", "tex": _dedent(tex)})

    def display(self, tex: str) -> None:
        """An unnumbered display (TeX math, no surrounding $$)."""
        self.blocks.append({"kind": "display", "tex": tex})

    def begin_derivation(self, title: str = "Derivation, step by step") -> None:
        """Open a marked block of steps a reader may verify line by line."""
        self.blocks.append({"kind": "begin_derivation", "title": title})

    def end_derivation(self) -> None:
        self.blocks.append({"kind": "end_derivation"})

    def table(self, caption: str, header: Sequence[str], rows: Iterable[Sequence[str]], cols: str = "",
              label: str = "") -> None:  # fmt: skip
        rows = [list(r) for r in rows]
        self.blocks.append({
            "kind": "table", "caption": caption, "header": list(header), "rows": rows,
            "cols": cols or "l" * len(header), "label": self._label(label),
        })  # fmt: skip

    def figure(self, file: str, caption: str, label: str = "", width: str = r"0.8\linewidth") -> None:
        """Include `figures/<file>` (built by `symlstm latex --pdf`); a note replaces it when absent."""
        self.blocks.append(
            {"kind": "figure", "file": f"figures/{file}", "caption": caption, "label": self._label(label),
             "width": width}
        )  # fmt: skip

    def _label(self, label: str) -> str:
        if not label or label in self._labels:
            return ""
        self._labels.add(label)
        return label

    # equations --------------------------------------------------------------------------------
    def equations(self, rows: Sequence[Row]) -> None:
        """An `align` block; each row's label is kept only the first time it appears in the document."""
        lines = []
        for k, r in enumerate(rows):
            label = self._label(r.label)
            for j, line in enumerate(r.lines):
                head = f"{r.lhs} &{r.rel} " if j == 0 else r"  &\quad "
                if j < len(r.lines) - 1:
                    end = r" \notag"
                else:
                    end = rf" \tag{{{r.tag}}}" if r.tag else r" \notag"
                    end += rf"\label{{{label}}}" if label else ""
                last = k == len(rows) - 1 and j == len(r.lines) - 1
                lines.append(head + line + end + ("" if last else r" \\"))
        self.blocks.append({"kind": "align", "lines": lines})

    def claim(self, statement: str, lhs: object, rhs: object, *, printer: TexPrinter | None = None,
              lhs_tex: str = "", code: str = "") -> None:  # fmt: skip
        """State `lhs == rhs` (checked now, symbolically) and display it with a check mark.

        Matrix expressions must be structurally equal (both come from the engine or from `Diag`);
        scalars are compared by `simplify(lhs - rhs) == 0`. A false claim raises `ClaimError`.
        """
        if not symbolic_equal(lhs, rhs):
            raise ClaimError(f"{self.name}: claim {statement!r} is false: {lhs} != {rhs}")
        p = printer
        left = lhs_tex or (p._print(lhs) if p else sp.latex(lhs))
        right = p._print(rhs) if p else sp.latex(rhs)
        self.claims += 1
        self.blocks.append({"kind": "claim", "statement": statement, "math": f"{left} = {right}",
                            "code": tex_escape(code), "number": self.claims})  # fmt: skip

    def check(self, statement: str, holds: bool, *, math: str = "", code: str = "") -> None:
        """State a property computed by the caller (`holds`); a false one raises `ClaimError`."""
        if holds is not True:
            raise ClaimError(f"{self.name}: claim {statement!r} does not hold")
        self.claims += 1
        self.blocks.append({"kind": "claim", "statement": statement, "math": math,
                            "code": tex_escape(code), "number": self.claims})  # fmt: skip

    def render(self) -> str:
        return latex_env().get_template(TEMPLATE).render(doc=self, template=TEMPLATE)


def symbolic_equal(a: object, b: object) -> bool:
    """True when `a` and `b` are the same matrix expression or equal scalar expressions."""
    if isinstance(a, (sp.MatrixExpr, sp.MatrixBase)) or isinstance(b, (sp.MatrixExpr, sp.MatrixBase)):
        if a == b:
            return True
        if isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase):
            return a.shape == b.shape and all(sp.simplify(x - y) == 0 for x, y in zip(a, b))
        return False
    try:
        return bool(sp.simplify(sp.sympify(a) - sp.sympify(b)) == 0)
    except (sp.SympifyError, TypeError):
        return a == b


def _dedent(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return "\n".join(lines)


@cache
def latex_env() -> jinja2.Environment:
    """Jinja2 with TeX-safe delimiters: \\VAR{x}, \\BLOCK{for ...}, \\#{comment}; strict undefined."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        line_statement_prefix=None,
        line_comment_prefix=None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


# -- engine blocks shared by cell and topic documents -----------------------------------------------


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

    def tag(self, kind: str, name: str) -> str:
        return f"{self.prefix}{self.numbers[(kind, name)]}"

    def label(self, kind: str, name: str) -> str:
        return f"eq:{self.spec.name}:{kind}:{name}"

    def ref(self, kind: str, name: str) -> str:
        """`\\eqref` of an equation of this cell (only where the document displays it)."""
        return rf"\eqref{{{self.label(kind, name)}}}"

    def linear_terms(self, node: LinearNode) -> list[str]:
        n = self.p.name
        return [f"{n(w)} {n(u)}" for w, u in node.terms] + [n(b) for b in node.biases]

    def forward_rows(self, nodes: Iterable[str] | None = None) -> list[Row]:
        wanted = set(nodes) if nodes is not None else None
        rows = []
        for node in self.spec.nodes:
            if wanted is not None and node.name not in wanted:
                continue
            if isinstance(node, LinearNode):
                lines = break_sum(self.linear_terms(node))
            else:
                lines = expr_lines(self.p, node.expr)
            rows.append(Row(self.p.name(node.name), lines, self.tag("fwd", node.name),
                            self.label("fwd", node.name)))  # fmt: skip
        return rows

    def jacobian_symbol(self, of: str, wrt: str, time: str | None = None, frac: str = r"\frac") -> str:
        p = self.p if time is None else TexPrinter(self.d, time)
        return rf"{frac}{{\partial {p.name(of)}}}{{\partial {p.name(wrt)}}}"

    def jacobian_row(self, of: str, wrt: str, time: str | None = None) -> Row:
        p = self.p if time is None else TexPrinter(self.d, time)
        return Row(self.jacobian_symbol(of, wrt, time), terms_lines(p, self.d.jacobian_terms(of, wrt)))

    def step_blocks(self) -> list[tuple[str, str]]:
        """(new-state node, previous state) pairs of the step Jacobian, row by row."""
        s = self.spec
        return [(s.update_of[a], s.prev(b)) for a in s.states for b in s.states]

    def step_matrix(self) -> str:
        """The step Jacobian as a block matrix of named blocks."""
        s = self.spec
        n = self.p.name
        rows = [" & ".join(self.jacobian_symbol(s.update_of[a], s.prev(b), frac=r"\dfrac") for b in s.states)
                for a in s.states]  # fmt: skip
        body = r" \\[4pt] ".join(rows)
        left = (rf"\frac{{\partial ({', '.join(n(s.update_of[a]) for a in s.states)})}}"
                rf"{{\partial ({', '.join(n(s.prev(b)) for b in s.states)})}}")  # fmt: skip
        return rf"J_t = {left} = \begin{{bmatrix}} {body} \end{{bmatrix}}"

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
                e = a.elementwise
                terms += [self.p._print(t) for t in ordered_terms(self.p, e)]
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

    def dimension_rows(self) -> list[list[str]]:
        """Symbol, what it is, size of one sample, size in a mini-batch of B, where it is stored."""
        s, n = self.spec, self.p.name
        rows = []
        for leaf in s.leaves:
            what = "input" if leaf == s.input else "previous state"
            size = s.size(leaf)
            rows.append([f"${n(leaf)}$", what, f"${size}$", f"$B \\times {size}$", "argument"])
        for node in s.nodes:
            if isinstance(node, LinearNode):
                what = "pre-activation (linear)"
            elif node.name in s.update_of.values():
                states = [st for st, v in s.updates if v == node.name]
                what = "new state " + ", ".join(f"${latex_name(st, time=None)}$" for st in states)
            else:
                what = "elementwise (gate or candidate)"
            if node.name == s.output:
                what += "; output $y_t$"
            rows.append([f"${n(node.name)}$", what, "$H$", "$B \\times H$", "computed"])
        for m in self.d.intermediates:
            rows.append([f"${n(m.name)}$", "activation inside an equation", "$H$", "$B \\times H$",
                         "computed"])  # fmt: skip
        for prm in s.params:
            g = s.group_of(prm.name)
            shape = r" \times ".join(prm.shape)
            where = rf"\texttt{{{tex_escape(g.name)}}}"
            if len(g.members) > 1:
                k = g.members.index(prm.name)
                where += f", block {k + 1} of {len(g.members)}"
            what = (
                "weight matrix"
                if prm.is_matrix
                else ("bias vector" if not s._used_elementwise(prm.name) else "elementwise parameter vector")
            )
            rows.append([f"${n(prm.name)}$", what, f"${shape}$", "shared", where])
        return rows

    def layout_rows(self) -> list[list[str]]:
        s = self.spec
        rows = []
        for g in s.groups:
            prm = s.param(g.members[0])
            k = len(g.members)
            first = f"{k}H" if k > 1 else "H"
            shape = rf"{first} \times {prm.shape[1]}" if prm.is_matrix else first
            order = ", ".join(f"${self.p.name(m)}$" for m in g.members)
            rows.append([rf"\texttt{{{tex_escape(g.name)}}}", f"${shape}$", order])
        return rows

    def count_formula(self) -> tuple[sp.Expr, sp.Expr]:
        """(stored parameter count, count with one bias per linear node) as polynomials in I and H."""
        dims = {"I": I, "H": H}
        stored = sp.Add(*[sp.Mul(*[dims[x] for x in p.shape]) for p in self.spec.params])
        redundant = sum(max(len(nd.biases) - 1, 0) for nd in self.spec.nodes if isinstance(nd, LinearNode))
        return sp.factor(stored), sp.factor(stored - redundant * H)


# -- cell documents ----------------------------------------------------------------------------------


def cell_document(spec_or_derivation: CellSpec | Derivation | str) -> Document:
    """The derivation document of one cell: forward, dimensions, step Jacobian, BPTT, gradients."""
    d = spec_or_derivation if isinstance(spec_or_derivation, Derivation) else derive(spec_or_derivation)
    s = d.spec
    ct = CellTex(d)
    p = ct.p
    doc = Document(s.name, tex_escape(s.title), f"the cell {s.name!r} (symlstm.cells or a user CellSpec)")
    doc.abstract = (
        rf"Forward pass, dimensions, step Jacobian, backward (BPTT) equations and parameter gradients "
        rf"of the cell \texttt{{{tex_escape(s.name)}}}, all printed from the symbolic derivation. "
        r"Equation numbers are those quoted in the comments of the generated NumPy module "
        rf"\texttt{{generated/numpy/{tex_escape(s.name)}.py}}."
    )
    if s.doc:
        doc.text(tex_escape(s.doc))
    if s.source:
        doc.text(r"\textit{Source:} " + tex_escape(s.source))

    doc.section("Forward pass", "sec:forward")
    doc.text(
        r"One time step, for one sample. Products of vectors are elementwise ($\odot$); a weight matrix "
        r"times a vector is a matrix product. Every equation holds for each coordinate $k = 1, \dots, H$ "
        r"separately, except the matrix products in the linear (pre-activation) equations."
    )
    doc.equations(ct.forward_rows())
    if d.intermediates:
        names = ", ".join(f"${p.name(m.name)}$" for m in d.intermediates)
        doc.text(
            rf"The backward pass reuses the forward values {names}: activations are differentiated in "
            r"terms of their own outputs, $\sigma' = \sigma\odot(1-\sigma)$ and $\tanh' = 1-\tanh^2$."
        )
    else:
        doc.text(
            r"Activations are differentiated in terms of their own outputs, "
            r"$\sigma' = \sigma\odot(1-\sigma)$ and $\tanh' = 1-\tanh^2$."
        )
    doc.subsection("Mini-batch form")
    doc.text(
        r"For a mini-batch of $B$ samples, each vector becomes a $B \times \text{size}$ array whose rows "
        r"are samples, and each $W u$ becomes $U W^{\top}$ with the batch of inputs $U$ as rows "
        r"(PyTorch's $(\text{out}, \text{in})$ layout). Elementwise equations are unchanged."
    )
    doc.subsection("Dimensions")
    doc.table("Every symbol of the cell, generated from the cell specification.",
              ["symbol", "what it is", "one sample", "mini-batch", "stored in"], ct.dimension_rows(),
              cols="lllll", label="tab:dims")  # fmt: skip
    stored, minimal = ct.count_formula()
    doc.claim("Stored parameter count (as PyTorch stores them)",
              stored.subs({I: 10, H: 20}), sp.Integer(s.param_count(10, 20)),
              lhs_tex=rf"\#\theta = {sp.latex(stored)} \overset{{I=10,\,H=20}}{{\longrightarrow}} "
                      rf"{sp.latex(stored.subs({I: 10, H: 20}))}, \quad \text{{spec count}}",
              code=f"param_count(10, 20) == {s.param_count(10, 20)}")  # fmt: skip
    if minimal != stored:
        doc.text(
            rf"With one bias vector per linear equation (the biases added in the same equation are "
            rf"redundant: they always receive the same gradient) the count is ${sp.latex(minimal)}$."
        )
    doc.table("Stored (fused) parameters: blocks stacked along the first axis, in this order.",
              ["array", "shape", "blocks"], ct.layout_rows(), cols="lll", label="tab:layout")  # fmt: skip

    doc.section("Step Jacobian", "sec:jacobian")
    doc.text(
        r"The Jacobian of the new states with respect to the previous ones (numerator layout: row "
        r"index is the output coordinate), block by block:"
    )
    doc.display(ct.step_matrix())
    doc.equations([ct.jacobian_row(a, b) for a, b in ct.step_blocks()])
    for a, b in ct.step_blocks():
        terms = d.jacobian_terms(a, b)
        if terms and all(all(kind == "diag" for kind, _ in t) for t in terms):
            doc.check(rf"The block ${ct.jacobian_symbol(a, b)}$ is diagonal: no weight matrix on this path.",
                      True, code=f'jacobian_terms("{a}", "{b}") has only diag factors')  # fmt: skip
    doc.text(r"Over a gap of $k$ steps the Jacobian is the product $J_t J_{t-1} \cdots J_{t-k+1}$.")

    doc.section("Backward pass (BPTT)", "sec:backward")
    doc.text(
        r"$\delta v = \partial L / \partial v$ has the shape of $v$. The gradient arriving at a new state "
        r"from outside the step, $\delta^{\mathrm{in}}$, is the loss gradient at this step (for the "
        r"output) plus the gradient leaving the previous-state slot of step $t+1$; it is zero beyond the "
        r"last step (or the given final-state gradient). Backward through one step, in order:"
    )
    doc.equations(ct.adjoint_rows())
    doc.text(r"Equivalently, the recurrence over the previous states uses the transposed step Jacobian: ")
    rows = []
    for st in d.bptt():
        terms = []
        for new in s.states:
            node = s.update_of[new]
            if not isinstance(d.jacobian(node, st), sp.ZeroMatrix):
                terms.append(
                    rf"\left({ct.jacobian_symbol(node, st)}\right)^{{\top}} {p.name(incoming(node))}"
                )
        rows.append(Row(p.name(adjoint(st)), break_sum(terms)))
    doc.equations(rows)
    doc.begin_derivation("Local derivatives used above (verify line by line)")
    doc.text(
        r"Each elementwise equation $v = \phi(u, \dots)$ has the diagonal Jacobian "
        r"$\operatorname{diag}(\partial \phi/\partial u)$, so $\delta u$ receives "
        r"$\partial\phi/\partial u \odot \delta v$; each linear equation $a = W u + \dots$ gives "
        r"$\delta u \mathrel{+}= W^{\top}\delta a$. The scalar partial derivatives, from SymPy:"
    )
    doc.equations(ct.local_derivative_rows())
    doc.end_derivation()
    doc.section("Parameter gradients", "sec:gradients")
    doc.text(r"Summed over the time steps $t$ and the samples $b$ of the mini-batch:")
    doc.equations(ct.gradient_rows())
    return doc


# -- topic documents -------------------------------------------------------------------------------


def derivations_dir() -> Path | None:
    """`derivations/` of the source checkout, or None in an installed package without it."""
    root = checkout_root()
    return root / "derivations" if root is not None and (root / "derivations").is_dir() else None


def _load_topic(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"symlstm_derivations.{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def topic_documents(folder: Path | None = None) -> list[Document]:
    """Build the document of every topic source `derivations/t*_*.py` (claims are checked here)."""
    folder = folder if folder is not None else derivations_dir()
    if folder is None:
        return []
    docs = []
    for path in sorted(folder.glob("t[0-9]*_*.py")):
        module = _load_topic(path)
        doc = Document(path.stem, module.TITLE, f"derivations/{path.name}")
        module.build(doc)
        docs.append(doc)
    return docs


def render_documents(names: Iterable[str] | None = None, topics: bool = True) -> dict[str, str]:
    """{file name: TeX} for the cells `names` (default: all registered) and the topic documents."""
    from ...cells import CELLS

    out = {}
    for name in names if names else sorted(CELLS):
        out[f"{name}.tex"] = cell_document(name).render()  # an unknown name raises SpecError
    if topics:
        for doc in topic_documents():
            out[f"{doc.name}.tex"] = doc.render()
    return dict(sorted(out.items()))


# -- building PDFs ---------------------------------------------------------------------------------
