"""Topic 5: the GRU with the same treatment, its gates read as the LSTM's, and its parameter count."""

from __future__ import annotations

import sympy as sp

from symlstm import Diag, cell, derive
from symlstm.backends.latex import CellTex, Document
from symlstm.backends.latex.documents import (
    cell_diagram,
    dimension_table,
    fd_check,
    unrolled_diagram,
    verification_section,
)
from symlstm.engine import H, I

TITLE = "The gated recurrent unit (GRU)"

PRELUDE = """\
import sympy as sp
from symlstm import Diag, cell, derive
from symlstm.backends.latex.celltex import CellTex
from symlstm.backends.latex.checks import finite_differences
from symlstm.engine import H, I
d = derive("gru"); s = d.sym; lstm = derive("lstm")
g_stored, g_min = CellTex(d).count_formula(); l_stored, l_min = CellTex(lstm).count_formula()"""


def build(doc: Document) -> None:
    d = derive("gru")
    ct = CellTex(d, prefix="gru.")
    p = ct.p
    z = d.sym["z"]
    doc.abstract = (
        r"The GRU merges the memory and the hidden state into one vector and uses two gates: an update "
        r"gate that interpolates between the old state and a candidate, and a reset gate that decides how "
        r"much of the old state the candidate sees. Forward pass, step Jacobian, backward equations and "
        r"parameter gradients are printed from the engine and numbered as in the cell document "
        r"\texttt{gru}; the convention is PyTorch's (reset applied after the recurrent matrix product, "
        r"gate order $r, z, n$)."
    )
    doc.text(
        r"The GRU was proposed by Cho et al.\ " + doc.cite("cho2014") + r" and compared with the LSTM by "
        r"Chung et al.\ " + doc.cite("chung2014") + r", who write the update with the roles of $z_t$ and "
        r"$1 - z_t$ swapped; here $z_t \to 1$ keeps the old state, as in Cho et al.\ and in "
        r"\texttt{torch.nn.GRU} " + doc.cite("paszke2019") + r". PyTorch applies the reset gate after the "
        r"recurrent product, Cho et al.\ before it (the cell document \texttt{gru\_cho}): two different "
        r"functions."
    )
    doc.section("Forward pass")
    doc.equations(ct.forward_rows())
    cell_diagram(doc, ct, what=r"The GRU step, drawn from its graph. ")
    dimension_table(doc, [ct], "Every symbol of the GRU step, generated from the cell specification.")
    doc.text(
        r"\textbf{Reset gate} $r_t$ (sigmoid): per coordinate, how much of the recurrent contribution "
        r"$u_{n,t} = W_{hn} h_{t-1} + b_{hn}$ enters the candidate; $r_{t,k}\approx 0$ lets the candidate "
        r"start afresh from the input. \textbf{Update gate} $z_t$ (sigmoid): per coordinate, the share of "
        r"the old state that is kept; the rest is replaced by the candidate $n_t$ ($\tanh$). There is no "
        r"output gate: the whole state is exposed."
    )
    lstm = derive("lstm")
    lf, li, lg, lc_prev = (lstm.sym[k] for k in ("f", "i", "g", "c_prev"))
    as_lstm = lstm.spec.node("c").expr.subs({lf: z, li: 1 - z, lg: d.sym["n"], lc_prev: d.sym["h_prev"]})
    doc.check(
        r"\textbf{The update gate plays both LSTM gates.} Substituting $f_t \to z_t$, $i_t \to 1 - z_t$, "
        r"$g_t \to n_t$, $c_{t-1} \to h_{t-1}$ in the LSTM's cell-state update gives the GRU's update: "
        r"$z_t$ is the forget gate and $1 - z_t$ the input gate, coupled so that what is written displaces "
        r"what is kept.",
        sp.expand(as_lstm - d.spec.node("h").expr) == 0,
        math=r"f_t \odot c_{t-1} + i_t \odot g_t \;\longrightarrow\; z_t \odot h_{t-1} + (1 - z_t) \odot n_t",
        code='sp.expand(lstm.spec.node("c").expr.subs({lstm.sym["f"]: s["z"], lstm.sym["i"]: 1 - s["z"], '
        'lstm.sym["g"]: s["n"], lstm.sym["c_prev"]: s["h_prev"]}) - d.spec.node("h").expr) == 0',
    )
    doc.intuition(
        r"An LSTM with coupled gates and no output gate, whose memory is its output: the GRU keeps the "
        r"additive, gated carry and drops what it can."
    )
    doc.section("Step Jacobian")
    doc.text(
        r"The state is $h$ alone, so the step Jacobian is a single $H\times H$ block, in chain-rule form:"
    )
    doc.equations([ct.jacobian_row("h", "h_prev")])
    doc.check(
        "Multiplied out, it is the engine's Jacobian.",
        ct.factored_is_engine(),
        code="CellTex(d).factored_is_engine()",
    )
    fd_check(doc, ct, 2, "The block above")
    terms = d.jacobian_terms("h", "h_prev")
    doc.check(
        r"\textbf{The highway.} One of its terms carries no weight matrix: the update gate, "
        r"$\operatorname{diag}(z_t)$, plays the part of the LSTM's $\operatorname{diag}(f_t)$.",
        (("diag", z),) in terms,
        math=rf"{ct.jacobian_symbol('h', 'h_prev')} = {p._print(Diag(z))} + \dots",
        code='(("diag", s["z"]),) in d.jacobian_terms("h", "h_prev")',
    )
    doc.text(
        r"Unlike the LSTM's memory block, the GRU's block also contains the terms through $W_{hz}$, "
        r"$W_{hr}$ and $W_{hn}$, because the carried vector is also the one the gates read. With "
        r"$z_t \to 1$ those terms vanish (their factors contain $1 - z_t$ or $z_t(1-z_t)$) and the "
        r"Jacobian tends to the identity (Figure~\ref{fig:gru:unrolled})."
    )
    unrolled_diagram(doc, ct)
    doc.section("Backward pass (BPTT)")
    doc.text(
        r"With $\delta^{\mathrm{in}} h_t = \partial L/\partial y_t + $ the gradient sent back by step "
        r"$t+1$, one step backward:"
    )
    doc.equations(ct.adjoint_rows())
    fd_check(doc, ct, 0, f"Equations {ct.span('adj')}")
    doc.begin_derivation()
    doc.text(r"The local slopes of the elementwise equations, from SymPy:")
    doc.equations(ct.local_derivative_rows())
    doc.end_derivation()
    doc.section("Parameter gradients")
    doc.equations(ct.gradient_rows())
    fd_check(doc, ct, 1, f"Equations {ct.span('grad')}")
    node_of = {g.param: g.node for g in d.param_gradients if g.kind == "bias"}
    d_u = d.adjoint("u_n").elementwise
    doc.check(
        r"\textbf{Which biases are redundant.} In the $r$ and $z$ blocks both biases are added in the same "
        r"equation and receive the same gradient, so only their sums matter. In the $n$ block neither is "
        r"redundant: $b_{in}$ is added in $a_{n,t}$, $b_{hn}$ in $u_{n,t}$, inside the reset product, and "
        rf"their gradients differ, $\delta a_{{n,t}}$ against ${p.name('d_u_n')} = {p._print(d_u)}$.",
        node_of["b_ir"] == node_of["b_hr"] and node_of["b_iz"] == node_of["b_hz"]
        and node_of["b_in"] != node_of["b_hn"] and d_u != sp.Symbol("d_a_n", real=True),
        code='{g.param: g.node for g in d.param_gradients if g.kind == "bias"}["b_in"] != '
        '{g.param: g.node for g in d.param_gradients if g.kind == "bias"}["b_hn"]',
    )  # fmt: skip
    doc.section("Parameter count against the LSTM")
    g_stored, g_min = ct.count_formula()
    l_stored, l_min = CellTex(lstm).count_formula()
    doc.claim(
        r"As stored (two bias vectors per gate):",
        g_stored,
        3 * H * (I + H + 2),
        lhs_tex=r"\#\theta_{\text{GRU}}",
        code="g_stored == 3*H*(I + H + 2)",
    )
    doc.claim(
        r"So a GRU has three quarters of the parameters of an LSTM of the same sizes, for any $I$ and $H$:",
        sp.simplify(g_stored / l_stored),
        sp.Rational(3, 4),
        lhs_tex=r"\#\theta_{\text{GRU}} / \#\theta_{\text{LSTM}}",
        code="sp.simplify(g_stored / l_stored) == sp.Rational(3, 4)",
    )
    g20, l20 = cell("gru").param_count(10, 20), cell("lstm").param_count(10, 20)
    doc.text(
        rf"With one bias per equation the counts are ${sp.latex(g_min)}$ (GRU; both $b_{{in}}$ and "
        rf"$b_{{hn}}$ stay) and ${sp.latex(l_min)}$ (LSTM); the ratio is then no longer exactly $3/4$. At "
        rf"$I = 10$, $H = 20$: ${g20}$ against ${l20}$ stored."
    )
    verification_section(doc, [ct], PRELUDE)
