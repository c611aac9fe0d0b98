"""The derivation documents: one per cell (`cell_document`) and one per topic source (`topic_documents`).

Every equation is printed from the derivation engine (`CellTex`), every picture drawn from the cell's
graph (`diagrams`), every claim checked while the document is built (`Document.claim`/`check`), and
each document ends with what was checked and how (`verification_section`). Cell documents number their
equations with `Derivation.equation_numbers`, as the generated code's comments do. `symlstm.build.pdf`
compiles them with latexmk.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import sympy as sp

from ...engine import Derivation, Diag, H, I, derive, size_symbol
from ...naming import tex_escape
from ...paths import checkout_root
from ...spec import CellSpec
from .cellnotes import NOTES
from .celltex import CellTex
from .checks import TOLERANCE, finite_differences
from .diagrams import cell_layout, cell_tikz, unrolled_layout, unrolled_tikz
from .document import Document, tt

__all__ = [
    "cell_diagram",
    "cell_document",
    "derivations_dir",
    "dimension_table",
    "documents",
    "fd_check",
    "render_documents",
    "topic_documents",
    "unrolled_diagram",
    "verification_section",
]

CELL_PRELUDE = """\
import sympy as sp
from symlstm import Diag, derive
from symlstm.engine import H, I{size_import}
from symlstm.backends.latex.celltex import CellTex
from symlstm.backends.latex.checks import finite_differences
d = derive({cell})"""


def cell_prelude(spec: CellSpec, cell: str) -> str:
    """The code every check line of a cell document runs after, the cell derived from `cell` (its
    name, quoted, or a variable), its declared sizes as symbols too."""
    size_import = ", size_symbol" if spec.extra_sizes else ""
    text = CELL_PRELUDE.format(cell=cell.replace("'", '"'), size_import=size_import)
    return text + "".join(f'\n{label} = size_symbol("{label}")' for label, _ in spec.extra_sizes)


DIMENSION_COLUMNS = r"l>{\raggedright\arraybackslash}p{6.3cm}lll"


# -- pictures with their captions ----------------------------------------------------------------------


def cell_diagram(doc: Document, ct: CellTex, label: str = "", what: str = "") -> None:
    """The cell's graph as a figure, the caption saying which carry paths avoid weight matrices."""
    lay = cell_layout(ct.d)
    p = ct.p
    s = ct.spec
    hw = []
    for path in lay.highways:
        a, b = path[0], path[-1]
        hw.append(rf"${p.name(a)} \to {p.name(b)}$")
    highway = (
        f"Green: the carry path{'s' if len(hw) > 1 else ''} {', '.join(hw)} through elementwise operations "
        "only (drawn straight on top; further green edges are other paths without a weight matrix): along "
        "them the Jacobian is diagonal."
        if hw
        else "Every path from a previous state to its new value passes through a weight matrix: no highway."
    )
    doc.diagram(
        cell_tikz(ct.d, lay),
        (what or f"One step of \\texttt{{{tex_escape(s.name)}}}, drawn from its graph. ")
        + r"Boxes on the left: the input and the states from step $t-1$; grey boxes: linear maps "
        r"(the weight matrices above them, biases added); circles: elementwise operations (orange: "
        r"sigmoid gates; the operation above each); double borders: the new states, passed to step "
        r"$t+1$. Blue edges leave a previous state. " + highway,
        label or f"fig:{s.name}:cell",
    )


def unrolled_diagram(doc: Document, ct: CellTex, label: str = "") -> None:
    """Three steps unrolled: the forward path along the states, the backward path through each step."""
    lay = unrolled_layout(ct.d)
    diag = [(a, b) for a, b, part in lay.blocks if part == "diag"]
    p, s = ct.p, ct.spec
    if diag:
        names = ", ".join(
            rf"$\partial {p.name(s.update_of[a])}/\partial {p.name(s.prev(b))}$" for a, b in diag
        )
        green = f"Green lines: the diagonal parts (no weight matrix) of the blocks {names}."
    else:
        green = "No block has a part without a weight matrix."
    doc.diagram(
        unrolled_tikz(ct.d, lay),
        r"Three steps unrolled. Black: the forward pass along the states, from left to right. Red, "
        r"dashed: the backward pass, from right to left; inside each step a line joins a new state (right) "
        r"to a previous state (left) for every non-zero block of the step Jacobian, the terms through a "
        rf"weight matrix dashed. {green}",
        label or f"fig:{s.name}:unrolled",
    )


def dimension_table(doc: Document, cells: Iterable[CellTex], caption: str, label: str = "tab:dims") -> None:
    """One dimensions table for the symbols of several cells (each symbol once, first cell first)."""
    rows, seen = [], set()
    for ct in cells:
        for row in ct.dimension_rows():
            if row[0] not in seen:
                seen.add(row[0])
                rows.append(row)
    doc.table(caption, ["symbol", "what it is", "one sample", "mini-batch", "stored in"], rows,
              cols=DIMENSION_COLUMNS, label=label)  # fmt: skip


# -- what was checked --------------------------------------------------------------------------------


def fd_check(
    doc: Document, ct: CellTex, group: int, equations: str, what: str = "the forward equations"
) -> None:
    """The mark on a group of printed equations: checked against central differences just now."""
    report = finite_differences(ct.d)
    c = report.checks[group]
    doc.check(
        rf"{equations} agree with central differences of {what} at a random point "
        rf"($H = 3$, $I = 2$, float64): worst relative error below $10^{{{int(sp.log(TOLERANCE, 10))}}}$.",
        c.ok,
        code=f"finite_differences(d).checks[{group}].ok",
    )


def verification_section(doc: Document, cells: Iterable[CellTex], prelude: str) -> None:
    """The section that says which equations were checked how, with the code a reader can run."""
    cells = list(cells)
    names = ", ".join(rf"\texttt{{{tex_escape(c.spec.name)}}}" for c in cells)
    torch_cells = [c for c in cells if c.spec.torch]
    doc.section("What was checked, and how", "sec:checked")
    doc.prelude = prelude
    fd = [b for b in doc.blocks if b["kind"] == "claim" and b["code"].startswith("finite_differences(")]
    numeric = (
        rf" The {len(fd)} marks that mention central differences evaluate the printed equations at one "
        r"random point and compare every entry with central differences of the forward equations (step "
        r"$10^{-6}$): they check what is printed, not the generated code."
        if fd
        else ""
    )
    doc.text(
        r"\small\textbf{While this document was built} every check marked \claimmark\ above was evaluated, "
        rf"and a false one would have stopped the build: {doc.claims} checks. Those stated as equations "
        r"compare expressions of the derivation engine symbolically (matrix expressions structurally, "
        r"scalars by \texttt{simplify(a - b) == 0}); those about numbers run the generated NumPy code or "
        r"SymPy." + numeric
    )
    doc.text(
        rf"\textbf{{Proved exactly, outside this document.}} For {names}, "
        rf"{tt('symlstm.proof.prove_all')} expands the cell coordinate by coordinate at $H = 3$, $I = 2$ "
        r"with opaque activations and proves every Jacobian, the backward program, every parameter "
        r"gradient, the BPTT recurrence and the forward-mode (tangent) program equal to SymPy's "
        r"\texttt{Matrix.jacobian} of the expanded cell, by \texttt{expand(a - b) == 0}: a proof at that "
        r"size, not a sample. It takes seconds to minutes per cell, so the test suite and "
        r"\texttt{symlstm verify} run it, not the document build."
    )
    torch_text = (
        " and against "
        + ", ".join(rf"\texttt{{torch.nn.{c.spec.torch['module']}}}" for c in torch_cells)
        + r" with the same weights (outputs and every gradient to $10^{-10}$, when torch is installed)"
        if torch_cells
        else ""
    )
    doc.text(
        r"\textbf{The generated code.} The NumPy module \texttt{symlstm generate} writes for each cell "
        rf"({tt('symlstm.load(name)')} returns it) quotes the equation numbers of its cell document in its "
        r"comments. \texttt{symlstm verify} checks it against central differences (every entry at a tiny "
        r"size, random directions at a realistic one), by the dot-product test between its forward-mode "
        r"and backward code, by the second-order decay of the Taylor remainder" + torch_text + "."
    )
    doc.text(
        r"\textbf{Run the checks yourself.} Each check's \textit{Python} line is an expression that is "
        r"\texttt{True} after this prelude:"
    )
    doc.code(prelude)
    doc.text(
        "and the whole ladder runs with "
        + ", ".join(rf"\texttt{{symlstm verify {tex_escape(c.spec.name)}}}" for c in cells)
        + f", the exact proof with {tt('all(r.ok for r in symlstm.proof.prove_all(d))')}."
    )


# -- cell documents ----------------------------------------------------------------------------------


def _intro(doc: Document, ct: CellTex) -> None:
    s = ct.spec
    notes = NOTES.get(s.name) if ct._is_builtin() else None
    if notes is not None:
        doc.text(notes.intro.rstrip(".") + " " + doc.cite(*notes.cites) + ".")
        return
    if s.doc:
        doc.text(r"\textit{As declared with the cell:} " + tex_escape(s.doc))
    if s.source:
        doc.text(r"\textit{Source:} " + tex_escape(s.source))


def _count(doc: Document, ct: CellTex) -> None:
    s = ct.spec
    stored, minimal = ct.count_formula()
    extra = {label: (keyword, 5 + k) for k, (label, keyword) in enumerate(s.extra_sizes)}  # P = 5 < H
    at = {I: 10, H: 20, **{size_symbol(label): n for label, (_, n) in extra.items()}}
    value = stored.subs(at)
    if s.torch:
        what = rf"as \texttt{{torch.nn.{s.torch['module']}}} stores them"
    else:
        what = "every stored array (this cell has no PyTorch counterpart)"
    names = ", ".join(["$I$", *(f"${label}$" for label in extra)]) + " and $H$"
    values = ", ".join(f"${sp.latex(k)} = {n}$" for k, n in at.items())
    keywords = "".join(f", {keyword}={n}" for keyword, n in extra.values())
    over = r",\,".join(f"{sp.latex(k)}={n}" for k, n in at.items())
    doc.check(
        rf"Parameter count, {what}, as a formula in {names}; at {values} it is the number "
        rf"the cell specification counts ({tt(f'param_count(10, 20{keywords})')}):",
        value == s.param_count(10, 20, **{keyword: n for keyword, n in extra.values()}),
        math=rf"\#\theta = {sp.latex(stored)} \overset{{{over}}}{{=}} {sp.latex(value)}",
        code=f"CellTex(d).count_formula()[0].subs({at}) == d.spec.param_count(10, 20{keywords}) == {value}",
    )
    if minimal != stored:
        doc.text(
            rf"With one bias vector per linear equation (biases added in the same equation always receive "
            rf"the same gradient, so only their sum matters) the count is ${sp.latex(minimal)}$."
        )


def cell_document(spec_or_derivation: CellSpec | Derivation | str) -> Document:
    """The derivation document of one cell: forward, dimensions, step Jacobian, BPTT, gradients, checks."""
    d = spec_or_derivation if isinstance(spec_or_derivation, Derivation) else derive(spec_or_derivation)
    s = d.spec
    ct = CellTex(d)
    p = ct.p
    doc = Document(s.name, tex_escape(s.title), f"the cell {s.name!r} (symlstm.cells or a user CellSpec)")
    doc.abstract = (
        r"Forward pass, dimensions, step Jacobian, backward (BPTT) equations and parameter gradients of "
        rf"the cell \texttt{{{tex_escape(s.name)}}}, all printed from its symbolic derivation, with pictures "
        r"drawn from its graph and, at the end, what was checked and how."
    )
    _intro(doc, ct)
    cell_diagram(doc, ct)

    doc.section("Forward pass", "sec:forward")
    doc.text(
        r"One time step, for one sample (Figure~\ref{" + f"fig:{s.name}:cell" + r"}). Products of vectors "
        r"are elementwise ($\odot$); a weight matrix times a vector is a matrix product. Every elementwise "
        r"equation holds for each coordinate $k = 1, \dots, H$ separately"
        + "".join(
            rf" ($k = 1, \dots, {label}$ for the vectors of size ${label}$)" for label, _ in s.extra_sizes
        )
        + "."
    )
    doc.equations(ct.forward_rows())
    reuse = ", ".join(f"${p.name(m.name)}$" for m in d.intermediates)
    doc.text(
        (rf"The backward pass reuses the forward values {reuse}. " if reuse else "")
        + r"Activations are differentiated in terms of their own outputs, $\sigma' = \sigma\odot(1-\sigma)$ "
        r"and $\tanh' = 1-\tanh^2$."
    )
    doc.subsection("Mini-batch form")
    doc.text(
        r"For a mini-batch of $B$ samples each vector becomes a $B \times \text{size}$ array whose rows are "
        r"the samples (written in bold: $\mathbf{x}_t \in \mathbb{R}^{B \times I}$), and each product "
        r"$W u$ becomes $\mathbf{u} W^{\top}$ (PyTorch's $(\text{out}, \text{in})$ layout of $W$). The "
        r"elementwise equations are unchanged."
    )
    doc.subsection("Dimensions")
    dimension_table(doc, [ct], "Every symbol of the cell, generated from the cell specification.")
    _count(doc, ct)
    doc.table("Stored (fused) parameters: blocks stacked along the first axis, in this order.",
              ["array", "shape", "blocks"], ct.layout_rows(), cols="lll", label="tab:layout")  # fmt: skip

    doc.section("Step Jacobian", "sec:jacobian")
    doc.text(
        r"The Jacobian of the new states with respect to the previous ones (numerator layout: the row index "
        r"is the output coordinate). Block by block, in chain-rule form (each diagonal factor written once, "
        r"in front of what it multiplies; a block used inside another is referred to by name):"
    )
    doc.display(ct.step_matrix())
    doc.equations([ct.jacobian_row(a, b) for a, b in ct.step_blocks()])
    doc.check(
        "Multiplied out, every block above is the Jacobian the engine derived "
        f"({tt('Derivation.jacobian_terms')}).",
        ct.factored_is_engine(),
        code="CellTex(d).factored_is_engine()",
    )
    for a, b in ct.diagonal_blocks():
        doc.check(rf"The block ${ct.jacobian_symbol(a, b)}$ is a diagonal matrix: no weight matrix on this "
                  "path.",
                  isinstance(d.jacobian(a, b), (Diag, sp.Identity)),
                  code=f'isinstance(d.jacobian("{a}", "{b}"), (Diag, sp.Identity))')  # fmt: skip
    fd_check(doc, ct, 2, "The blocks above")
    doc.text(r"Over a gap of $k$ steps the Jacobian is the product $J_t J_{t-1} \cdots J_{t-k+1}$ "
             rf"(Figure~\ref{{fig:{s.name}:unrolled}}).")  # fmt: skip
    unrolled_diagram(doc, ct)

    doc.section("Backward pass (BPTT)", "sec:backward")
    doc.text(
        r"$\delta v = \partial L / \partial v$ has the shape of $v$. The gradient arriving at a new state "
        r"from outside the step, $\delta^{\mathrm{in}}$, is the loss gradient at this step (for the output) "
        r"plus the gradient leaving the previous-state slot of step $t+1$; it is zero beyond the last step "
        r"(or the given final-state gradient). Backward through one step, in order:"
    )
    doc.equations(ct.adjoint_rows())
    fd_check(doc, ct, 0, f"Equations {ct.span('adj')}")
    doc.text(r"Equivalently, the recurrence over the previous states uses the transposed step Jacobian:")
    doc.equations(ct.bptt_rows())
    fd_check(doc, ct, 3, "These recurrences")
    doc.begin_derivation("Local derivatives used above (verify line by line)")
    doc.text(
        r"Each elementwise equation $v = \phi(u, \dots)$ has the diagonal Jacobian "
        r"$\operatorname{diag}(\partial \phi/\partial u)$, so $\delta u$ receives "
        r"$\partial\phi/\partial u \odot \delta v$; each linear equation $a = W u + \dots$ gives "
        r"$\delta u \mathrel{+}= W^{\top}\delta a$. The scalar partial derivatives, from SymPy:"
    )
    doc.equations(ct.local_derivative_rows())
    fd_check(doc, ct, 4, "These slopes", what="the elementwise equations, one argument at a time")
    doc.end_derivation()
    doc.section("Parameter gradients", "sec:gradients")
    doc.text(r"Summed over the time steps $t$ and the samples $b$ of the mini-batch:")
    doc.equations(ct.gradient_rows())
    fd_check(doc, ct, 1, f"Equations {ct.span('grad')}")
    name = repr(s.name) if ct._is_builtin() else "spec"
    verification_section(doc, [ct], cell_prelude(s, name))
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


def documents(names: Iterable[str] | None = None, topics: bool = True) -> list[Document]:
    """The documents of the cells `names` (default: all registered) and, with `topics`, the topics."""
    from ...cells import CELLS

    out = [cell_document(name) for name in (names if names else sorted(CELLS))]  # unknown: SpecError
    if topics:
        out += topic_documents()
    return sorted(out, key=lambda d: d.name)


def render_documents(names: Iterable[str] | None = None, topics: bool = True) -> dict[str, str]:
    """{file name: TeX} for the cells `names` (default: all registered) and the topic documents."""
    return {f"{d.name}.tex": d.render() for d in documents(names, topics)}
