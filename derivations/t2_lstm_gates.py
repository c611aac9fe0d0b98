"""Topic 2: the LSTM cell built one piece at a time: cell state, forget, input and output gates."""

from __future__ import annotations

import sympy as sp

from symlstm import Diag, derive, sigmoid
from symlstm.backends.latex import CellTex, Document, Row
from symlstm.backends.latex.documents import cell_diagram, dimension_table, fd_check, verification_section

TITLE = "The LSTM cell, one gate at a time"

PRELUDE = """\
import sympy as sp
from symlstm import Diag, derive
from symlstm.backends.latex.checks import finite_differences
d = derive("lstm"); s = d.sym
u = sp.Symbol("u", real=True)"""


def _partials(ct: CellTex, node: str) -> list[Row]:
    """The local derivatives of one elementwise equation, from SymPy."""
    d = ct.d
    n = d.spec.node(node)
    return [Row(ct.jacobian_symbol(node, arg), [ct.p._print(d.partial(n, arg))]) for arg in d.args_of(n)]


def build(doc: Document) -> None:
    d = derive("lstm")
    ct = CellTex(d, prefix="lstm.")
    p = ct.p
    s = {k: d.sym[k] for k in ("i", "f", "g", "o", "c", "c_prev", "h", "tanh_c")}
    doc.abstract = (
        r"The cell state is the LSTM's memory line; three sigmoid gates decide, coordinate by coordinate, "
        r"how much of it to keep, what to write into it, and how much of it to show. For each piece: its "
        r"role, its activation, how to read one coordinate, its equations (numbered as in the cell "
        r"document \texttt{lstm}, e.g.\ \texttt{lstm.9}) and its local derivatives, all printed from the "
        r"derivation engine."
    )
    doc.text(
        r"The cell was introduced without a forget gate " + doc.cite("hochreiter1997") + r"; the forget "
        r"gate came three years later " + doc.cite("gers2000") + r". Figure~\ref{fig:lstm:cell} shows the "
        r"whole cell, drawn from its graph, and Table~\ref{tab:dims} lists its symbols."
    )
    cell_diagram(doc, ct, what=r"The LSTM cell, drawn from its graph. ")
    dimension_table(doc, [ct], "Every symbol of the LSTM step, generated from the cell specification.")
    u = sp.Symbol("u", real=True)
    doc.section("Gates are sigmoids")
    doc.check(
        r"A gate is a sigmoid of an affine function of $x_t$ and $h_{t-1}$, so each coordinate lies in "
        r"$(0, 1)$: it is a soft switch that multiplies another vector coordinate by coordinate.",
        sp.limit(sigmoid.definition(u), u, -sp.oo) == 0 and sp.limit(sigmoid.definition(u), u, sp.oo) == 1,
        math=r"\lim_{u\to-\infty}\sigma(u) = 0, \qquad \lim_{u\to\infty}\sigma(u) = 1",
        code="sp.limit(1 / (1 + sp.exp(-u)), u, -sp.oo) == 0 "
        "and sp.limit(1 / (1 + sp.exp(-u)), u, sp.oo) == 1",
    )
    doc.text(
        r"A gate value of $0$ blocks a coordinate, $1$ lets it through, and anything in between scales it. "
        r"Because the gates multiply elementwise, every coordinate of the state has its own switches."
    )

    doc.section("Cell state")
    doc.text(
        r"\textbf{Role.} $c_t \in \mathbb{R}^H$ is the memory: a line through time along which the state is "
        r"changed by elementwise arithmetic only, a skip connection along time. \textbf{Update.} Keep a "
        r"gated share of the old memory and add a gated candidate:"
    )
    doc.equations(ct.forward_rows(["c"]))
    doc.text(r"\textbf{Local derivatives} (each is the diagonal of a diagonal Jacobian):")
    doc.equations(_partials(ct, "c"))
    doc.claim(
        r"\textbf{The carry.} The block of the step Jacobian from the old memory to the new one involves no "
        r"weight matrix at all:",
        d.jacobian("c", "c_prev"),
        Diag(s["f"]),
        printer=p,
        lhs_tex=ct.jacobian_symbol("c", "c_prev"),
        code='d.jacobian("c", "c_prev") == Diag(s["f"])',
    )
    doc.intuition(
        r"Read $c_t = c_{t-1} + \bigl[(f_t - 1)\odot c_{t-1} + i_t \odot g_t\bigr]$: the old memory plus a "
        r"correction the gates compute. With $f_t = 1$ and $i_t = 0$ the memory passes through untouched, "
        r"like the identity branch of a residual block."
    )

    doc.section("Forget gate")
    doc.text(
        r"\textbf{Role.} Decide how much of each memory coordinate survives the step. "
        r"\textbf{Activation.} Sigmoid: a share between $0$ and $1$. \textbf{Per coordinate.} "
        r"$f_{t,k} \approx 1$ keeps coordinate $k$ of $c_{t-1}$, $f_{t,k} \approx 0$ erases it."
    )
    doc.equations(ct.forward_rows(["a_f", "f"]))
    doc.equations(_partials(ct, "f"))
    doc.claim(
        r"Through the cell state, the forget gate's effect is multiplied by the old memory:",
        d.partial(d.spec.node("c"), "f"),
        s["c_prev"],
        printer=p,
        lhs_tex=ct.jacobian_symbol("c", "f"),
        code='d.partial(d.spec.node("c"), "f") == s["c_prev"]',
    )
    f_val = sp.Rational(9, 10)
    horizon = sp.summation(f_val ** sp.Symbol("k", integer=True, nonnegative=True),
                           (sp.Symbol("k", integer=True, nonnegative=True), 0, sp.oo))  # fmt: skip
    doc.check(
        r"\textbf{Per coordinate, a leaky memory.} With a constant $f$ the contribution of a value written "
        r"$k$ steps ago is scaled by $f^k$; the weights add up to $1/(1-f)$, the memory's horizon in steps "
        r"(ten steps at $f = 0.9$):",
        horizon == 10,
        math=r"\sum_{k \ge 0} 0.9^{k} = \frac{1}{1 - 0.9} = 10",
        code='sp.summation(sp.Rational(9, 10)**sp.Symbol("k"), (sp.Symbol("k"), 0, sp.oo)) == 10',
    )
    doc.intuition(
        r"The forget gate is a per-coordinate dial for how long to remember: $f = 0.5$ halves a memory at "
        r"every step, $f = 0.99$ keeps a noticeable share for hundreds of steps."
    )

    doc.section("Input gate")
    doc.text(
        r"\textbf{Role.} Decide what is written into the memory. It works with the candidate $g_t$: the "
        r"candidate proposes a value, the gate says how much of it to add. \textbf{Activations.} "
        r"$i_t$ is a sigmoid (a share), $g_t$ is a $\tanh$ (a signed value in $(-1,1)$, so writes can "
        r"increase or decrease a coordinate). \textbf{Per coordinate.} $i_{t,k} \approx 0$ leaves "
        r"coordinate $k$ of the memory as the forget gate left it; $i_{t,k} \approx 1$ adds $g_{t,k}$."
    )
    doc.equations(ct.forward_rows(["a_i", "a_g", "i", "g"]))
    doc.equations([*_partials(ct, "i"), *_partials(ct, "g")])
    doc.claim(
        r"The write is bilinear in gate and candidate: each one's slope through $c_t$ is the other one.",
        sp.Matrix([d.partial(d.spec.node("c"), "i"), d.partial(d.spec.node("c"), "g")]),
        sp.Matrix([s["g"], s["i"]]),
        printer=p,
        lhs_tex=rf"\left({ct.jacobian_symbol('c', 'i')}, {ct.jacobian_symbol('c', 'g')}\right)",
        code='(d.partial(d.spec.node("c"), "i"), d.partial(d.spec.node("c"), "g")) == (s["g"], s["i"])',
    )
    doc.intuition(
        r"Separating what to write ($g$) from whether to write ($i$) lets the cell hold a value while new "
        r"inputs arrive: $i \approx 0$ ignores them without changing what $g$ would have said."
    )

    doc.section("Output gate")
    doc.text(
        r"\textbf{Role.} Decide how much of the memory is exposed as the hidden state $h_t$, which is both "
        r"the output and the input of the gates at the next step. \textbf{Activation.} Sigmoid, applied "
        r"to a $\tanh$-squashed copy of the memory. \textbf{Per coordinate.} $o_{t,k} \approx 0$ hides "
        r"coordinate $k$ (the memory keeps it, the rest of the network does not see it); $o_{t,k} "
        r"\approx 1$ shows $\tanh(c_{t,k})$."
    )
    doc.equations(ct.forward_rows(["a_o", "o", "h"]))
    doc.equations([*_partials(ct, "o"), *_partials(ct, "h")])
    doc.claim(
        r"The hidden state reads the memory through a diagonal Jacobian too, scaled by the output gate "
        r"and the slope of $\tanh$:",
        d.jacobian("h", "c"),
        Diag(s["o"] * (1 - s["tanh_c"] ** 2)),
        printer=p,
        lhs_tex=ct.jacobian_symbol("h", "c"),
        code='d.jacobian("h", "c") == Diag(s["o"] * (1 - s["tanh_c"]**2))',
    )
    doc.text(
        r"The hidden state is overwritten at every step, like a vanilla RNN's; the memory is not. Gradient "
        r"that must travel far can travel along $c$, as topic 4 derives."
    )
    fd_check(
        doc, ct, 4, "All local derivatives printed above", what="their equations, one argument at a time"
    )
    verification_section(doc, [ct], PRELUDE)
