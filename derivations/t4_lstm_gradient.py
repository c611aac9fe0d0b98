"""Topic 4: the gradient in the LSTM: step Jacobian, the cell-state highway, BPTT and parameter gradients."""

from __future__ import annotations

import sympy as sp

from symlstm import Diag, derive
from symlstm.backends.latex import CellTex, Document, Row

TITLE = "Gradient in the LSTM"


def build(doc: Document) -> None:
    d = derive("lstm")
    ct = CellTex(d, prefix="lstm.")
    p = ct.p
    f, o, tanh_c = d.sym["f"], d.sym["o"], d.sym["tanh_c"]
    doc.abstract = (
        r"With the whole cell in hand, the step Jacobian of $(h_t, c_t)$ with respect to "
        r"$(h_{t-1}, c_{t-1})$ is derived block by block. Its cell-state block is "
        r"$\operatorname{diag}(f_t)$, "
        r"so over a gap the memory path contributes $\operatorname{diag}(\prod_s f_s)$: no weight matrix, "
        r"no squashing slope. Then the backward (BPTT) equations and the parameter gradients, each "
        r"numbered as in \texttt{lstm.tex} and in the comments of \texttt{generated/numpy/lstm.py}."
    )
    doc.section("The step Jacobian")
    doc.text(r"The forward equations, for reference:")
    doc.equations(ct.forward_rows())
    doc.text(r"Treat the state as the pair $(h, c)$. The Jacobian of one step is a $2\times2$ block matrix:")
    doc.display(ct.step_matrix())
    doc.equations([ct.jacobian_row(a, b) for a, b in ct.step_blocks()])
    doc.begin_derivation()
    doc.text(
        r"Start from the end of the step and apply the chain rule along the graph. The blocks with respect "
        r"to $c_{t-1}$: $c_{t-1}$ enters only equation \eqref{eq:lstm:fwd:c}, whose slope in $c_{t-1}$ is "
        r"$f_t$; and $h_t$ depends on $c_{t-1}$ only through $c_t$:"
    )
    hc = d.jacobian("h", "c")
    cc = d.jacobian("c", "c_prev")
    doc.equations([
        Row(ct.jacobian_symbol("c", "c_prev"), [p._print(cc)]),
        Row(ct.jacobian_symbol("h", "c_prev"),
            [rf"{ct.jacobian_symbol('h', 'c')}\,{ct.jacobian_symbol('c', 'c_prev')} = "
             rf"{p._print(hc)}\,{p._print(cc)} = {p._print(d.jacobian('h', 'c_prev'))}"]),
    ])  # fmt: skip
    doc.claim(
        r"The product of the two diagonal factors is the block the engine derived:",
        d.jacobian("h", "c_prev"),
        Diag(f * o * (1 - tanh_c**2)),
        printer=p,
        lhs_tex=ct.jacobian_symbol("h", "c_prev"),
        code='jacobian("h", "c_prev") == Diag(f*o*(1 - tanh_c**2))',
    )
    doc.text(
        r"The blocks with respect to $h_{t-1}$: $h_{t-1}$ enters the four pre-activations through "
        r"$W_{hi}, W_{hf}, W_{hg}, W_{ho}$; each gate adds one term, the gate's slope times the slope of "
        r"$c_t$ (or $h_t$) in that gate. For instance the forget-gate term of "
        rf"${ct.jacobian_symbol('c', 'h_prev')}$ is"
    )
    cnode = d.spec.node("c")
    fnode = d.spec.node("f")
    doc.display(
        rf"{ct.jacobian_symbol('c', 'f')}\,{ct.jacobian_symbol('f', 'a_f')}\,"
        rf"{ct.jacobian_symbol('a_f', 'h_prev')} = "
        rf"\operatorname{{diag}}\left({p._print(d.partial(cnode, 'f'))}\right)"
        rf"\operatorname{{diag}}\left({p._print(d.partial(fnode, 'a_f'))}\right) W_{{hf}}."
    )
    doc.end_derivation()
    doc.claim(
        r"\textbf{The cell-state path.} The block on the memory is the forget gate and nothing else:",
        d.jacobian("c", "c_prev"),
        Diag(f),
        printer=p,
        lhs_tex=ct.jacobian_symbol("c", "c_prev"),
        code='derive("lstm").jacobian("c", "c_prev") == Diag(f)',
    )
    doc.section("Across a gap: the highway")
    doc.text(
        r"Along the memory alone (ignoring the paths that leave $c$ through $h$ and come back through the "
        r"gates), the Jacobian over $k$ steps is a product of diagonal matrices:"
    )
    ps = type(p)(d, "s")
    doc.display(
        rf"\frac{{\partial c_{{t}}}}{{\partial c_{{t-k}}}}\Big|_{{\text{{memory path}}}} = "
        rf"\prod_{{s=t-k+1}}^{{t}} {ps._print(Diag(f))} = "
        rf"\operatorname{{diag}}\Bigl(\prod_{{s=t-k+1}}^{{t}} {ps.name('f')}\Bigr)."
    )
    fs = sp.symbols("f_1:5", positive=True)
    mats = sp.eye(2)
    for k, v in enumerate(fs):
        mats = mats * sp.diag(v, v**2 + k)
    doc.check(
        r"Diagonal matrices multiply coordinate by coordinate (checked on four steps, two coordinates with "
        r"independent values):",
        mats == sp.diag(sp.Mul(*fs), sp.Mul(*[v**2 + k for k, v in enumerate(fs)])),
        math=r"\operatorname{diag}(f_{1})\cdots\operatorname{diag}(f_{4}) = "
        r"\operatorname{diag}(f_{1}\odot\cdots\odot f_{4})",
        code="product of four 2x2 diagonal matrices == diagonal of the products",
    )
    doc.text(
        r"Compare the vanilla RNN's $\prod_s \operatorname{diag}(1-h_s^2)\,W_{hh}$ (topic 1): there every "
        r"step multiplies by a full matrix and a slope below one. Here coordinate $k$ is scaled by "
        r"$\prod_s f_{s,k}$, which stays near $1$ as long as the forget gate stays open. The gate is "
        r"learned, so the network itself decides which coordinates carry gradient far. Figure "
        r"\ref{fig:lstm} measures $\|\partial L/\partial h_{T-k}\|$ with the generated code for three "
        r"forget-gate biases (the full gradient, all paths included)."
    )
    doc.figure(
        "lstm_gradient_norms.pdf",
        r"$\|\partial L/\partial h_{T-k}\|_2$ for $L = \langle w, h_T\rangle$, computed by the generated "
        r"\texttt{lstm} module with PyTorch's default initialization ($H = 32$, inputs $\mathcal N(0,1)$) "
        r"and the forget-gate bias $b_{if}$ set to $0$, $1$, $3$ ($b_{hf} = 0$). With $f \approx 0.95$ "
        r"the gradient crosses sixty steps almost undiminished.",
        label="fig:lstm",
    )
    doc.figure(
        "rnn_gradient_norms.pdf",
        r"The vanilla RNN for comparison (topic 1): $W_{hh} = \rho Q$, $Q$ orthogonal; dotted: "
        r"$\rho^k\|w\|$.",
        label="fig:rnn",
    )
    doc.section("Backward pass (BPTT)")
    doc.text(
        r"$\delta v = \partial L/\partial v$. At step $t$ the new states receive "
        r"$\delta^{\mathrm{in}} h_t = \partial L/\partial y_t + \delta h_{t}^{(t+1)}$ (the loss at this step "
        r"plus what step $t+1$ sends back into its previous-state slot) and "
        r"$\delta^{\mathrm{in}} c_t = \delta c_t^{(t+1)}$. One step backward, in order:"
    )
    doc.equations(ct.adjoint_rows())
    doc.begin_derivation()
    doc.text(
        r"Every line is the chain rule $\delta u = \sum_{v} (\partial v/\partial u)^{\top} \delta v$ over "
        r"the equations $v$ that read $u$. An elementwise equation has a diagonal Jacobian, so its "
        r"transpose is itself and the product is elementwise; a linear equation contributes "
        r"$W^{\top}\delta a$. For the cell state, which is read by $h_t$ and receives gradient from "
        rf"step $t+1$: $\delta c_t = \delta^{{\mathrm{{in}}}} c_t + "
        rf"\left({ct.jacobian_symbol('h', 'c')}\right)^{{\top}} \delta h_t$ with "
        rf"${ct.jacobian_symbol('h', 'c')} = {p._print(d.jacobian('h', 'c'))}$. The slopes used, from SymPy:"
    )
    doc.equations(ct.local_derivative_rows())
    doc.end_derivation()
    doc.claim(
        r"The gradient handed to the previous memory is the forget gate times the memory's gradient, an "
        r"elementwise product (the generated code writes \texttt{d\_c\_prev = d\_c * f}):",
        d.adjoint("c_prev").elementwise,
        sp.Symbol("d_c", real=True) * f,
        printer=p,
        lhs_tex=p.name("d_c_prev"),
        code='derive("lstm").adjoint("c_prev").elementwise == d_c * f',
    )
    doc.section("Parameter gradients")
    doc.text(
        r"Every parameter is shared by all steps and all samples, so its gradient is the sum of the "
        r"per-step contributions. A weight $W$ in $a = W u + \dots$ receives $\delta a\, u^{\top}$; a bias, "
        r"$\delta a$:"
    )
    doc.equations(ct.gradient_rows())
    doc.text(
        r"The two biases of each gate receive identical gradients (compare the pairs above): only their "
        r"sum is identifiable. In the mini-batch form, the input-weight gradient of all steps is one "
        r"matrix product, $\delta W_{ih} = \sum_t \delta A_t^{\top} X_t$, which the generated code computes "
        r"after the time loop."
    )
