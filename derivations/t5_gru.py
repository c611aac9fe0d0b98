"""Topic 5: the GRU with the same treatment, and its parameter count against the LSTM's."""

from __future__ import annotations

import sympy as sp

from symlstm import Diag, derive
from symlstm.backends.latex import CellTex, Document
from symlstm.engine import H, I

TITLE = "The gated recurrent unit (GRU)"


def build(doc: Document) -> None:
    d = derive("gru")
    ct = CellTex(d, prefix="gru.")
    p = ct.p
    z = d.sym["z"]
    doc.abstract = (
        r"The GRU merges the memory and the hidden state into one vector and uses two gates: an update "
        r"gate that interpolates between the old state and a candidate, and a reset gate that decides how "
        r"much of the old state the candidate sees. Forward pass, step Jacobian, backward equations and "
        r"parameter gradients are printed from the engine and numbered as in \texttt{gru.tex} and "
        r"\texttt{generated/numpy/gru.py}; the convention is PyTorch's (reset applied after the recurrent "
        r"matrix product, gate order $r, z, n$)."
    )
    doc.section("Forward pass")
    doc.equations(ct.forward_rows())
    doc.text(
        r"\textbf{Reset gate} $r_t$ (sigmoid): per coordinate, how much of the recurrent contribution "
        r"$u_{n,t} = W_{hn} h_{t-1} + b_{hn}$ enters the candidate; $r_{t,k}\approx 0$ lets the candidate "
        r"start afresh from the input. \textbf{Update gate} $z_t$ (sigmoid): per coordinate, the share of "
        r"the old state that is kept; the rest is replaced by the candidate $n_t$ ($\tanh$). There is no "
        r"output gate: the whole state is exposed."
    )
    doc.section("Step Jacobian")
    doc.text(r"The state is $h$ alone, so the step Jacobian is a single $H\times H$ block:")
    doc.equations([ct.jacobian_row("h", "h_prev")])
    terms = d.jacobian_terms("h", "h_prev")
    doc.check(
        r"\textbf{The highway.} One of its terms carries no weight matrix: the update gate, "
        r"$\operatorname{diag}(z_t)$, plays the part of the LSTM's $\operatorname{diag}(f_t)$.",
        (("diag", z),) in terms,
        math=rf"{ct.jacobian_symbol('h', 'h_prev')} = {p._print(Diag(z))} + \dots",
        code='(("diag", z),) in derive("gru").jacobian_terms("h", "h_prev")',
    )
    doc.text(
        r"Unlike the LSTM's memory block, the GRU's block also contains the terms through $W_{hz}$, "
        r"$W_{hr}$ and $W_{hn}$, because the carried vector is also the one the gates read. With "
        r"$z_t \to 1$ those terms vanish (their factors contain $1 - z_t$ or $z_t(1-z_t)$) and the "
        r"Jacobian tends to the identity."
    )
    doc.section("Backward pass (BPTT)")
    doc.text(
        r"With $\delta^{\mathrm{in}} h_t = \partial L/\partial y_t + $ the gradient sent back by step "
        r"$t+1$, one step backward:"
    )
    doc.equations(ct.adjoint_rows())
    doc.begin_derivation()
    doc.text(r"The local slopes of the elementwise equations, from SymPy:")
    doc.equations(ct.local_derivative_rows())
    doc.end_derivation()
    doc.section("Parameter gradients")
    doc.equations(ct.gradient_rows())
    doc.text(
        r"Note $b_{hn}$: it sits inside the reset product $r_t \odot u_{n,t}$, so its gradient is that of "
        r"$u_{n,t}$, not of $a_{n,t}$; it is the one bias of PyTorch's GRU that is not redundant."
    )
    doc.section("Parameter count against the LSTM")
    g_stored, g_min = ct.count_formula()
    l_stored, l_min = CellTex(derive("lstm")).count_formula()
    doc.claim(
        r"As stored (two bias vectors per gate):",
        g_stored,
        3 * H * (I + H + 2),
        lhs_tex=r"\#\theta_{\text{GRU}}",
        code="GRU stored count == 3H(I + H + 2)",
    )
    doc.claim(
        r"So a GRU has three quarters of the parameters of an LSTM of the same sizes, for any $I$ and $H$:",
        sp.simplify(g_stored / l_stored),
        sp.Rational(3, 4),
        lhs_tex=r"\#\theta_{\text{GRU}} / \#\theta_{\text{LSTM}}",
        code="simplify(count(gru) / count(lstm)) == 3/4",
    )
    doc.text(
        rf"With one bias per equation the counts are ${sp.latex(g_min)}$ (GRU; $b_{{hn}}$ stays) and "
        rf"${sp.latex(l_min)}$ (LSTM). At $I = 10$, $H = 20$: $1920$ against $2560$ stored."
    )
