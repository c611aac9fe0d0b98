"""Topic 2: the LSTM cell built one piece at a time: cell state, forget, input and output gates."""

from __future__ import annotations

import sympy as sp

from symlstm import Diag, derive, sigmoid
from symlstm.backends.latex import CellTex, Document, Row

TITLE = "The LSTM cell, one gate at a time"


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
        r"role, its activation, how to read one coordinate, its equations (numbered as in "
        r"\texttt{lstm.tex} and in the comments of \texttt{generated/numpy/lstm.py}) and its local "
        r"derivatives, all printed from the derivation engine."
    )
    u = sp.Symbol("u", real=True)
    doc.section("Gates are sigmoids")
    doc.check(
        r"A gate is a sigmoid of an affine function of $x_t$ and $h_{t-1}$, so each coordinate lies in "
        r"$(0, 1)$: it is a soft switch that multiplies another vector coordinate by coordinate.",
        sp.limit(sigmoid.definition(u), u, -sp.oo) == 0 and sp.limit(sigmoid.definition(u), u, sp.oo) == 1,
        math=r"\lim_{u\to-\infty}\sigma(u) = 0, \qquad \lim_{u\to\infty}\sigma(u) = 1",
        code="limit(1/(1 + exp(-u)), u, -oo) == 0 and limit(..., u, oo) == 1",
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
        r"\textbf{The carry.} The memory's own Jacobian involves no weight matrix at all:",
        d.jacobian("c", "c_prev"),
        Diag(s["f"]),
        printer=p,
        lhs_tex=ct.jacobian_symbol("c", "c_prev"),
        code='derive("lstm").jacobian("c", "c_prev") == Diag(f)',
    )

    doc.section("Forget gate")
    doc.text(
        r"\textbf{Role.} Decide how much of each memory coordinate survives the step. "
        r"\textbf{Activation.} Sigmoid: a share between $0$ and $1$. \textbf{Per coordinate.} "
        r"$f_{t,k} \approx 1$ keeps coordinate $k$ of $c_{t-1}$, $f_{t,k} \approx 0$ erases it; a value "
        r"like $0.9$ makes the coordinate a leaky average with a horizon of about $1/(1-0.9) = 10$ steps."
    )
    doc.equations(ct.forward_rows(["a_f", "f"]))
    doc.equations(_partials(ct, "f"))
    doc.claim(
        r"Through the cell state, the forget gate's effect is multiplied by the old memory:",
        d.partial(d.spec.node("c"), "f"),
        s["c_prev"],
        printer=p,
        lhs_tex=ct.jacobian_symbol("c", "f"),
        code='derive("lstm").partial(c, "f") == c_prev',
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
        code='(partial(c, "i"), partial(c, "g")) == (g, i)',
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
        code='derive("lstm").jacobian("h", "c") == Diag(o*(1 - tanh_c**2))',
    )
    doc.text(
        r"The hidden state is overwritten at every step, like a vanilla RNN's; the memory is not. Gradient "
        r"that must travel far travels along $c$, as topic 4 derives."
    )
