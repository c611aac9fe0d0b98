"""Topic 1: why a vanilla RNN cannot keep a value, and the additive memory that can."""

from __future__ import annotations

import sympy as sp
from sympy.calculus.util import maximum

from symlstm import Cell, Diag, derive, sigmoid, tanh
from symlstm.backends.latex import CellTex, Document, Row, TexPrinter
from symlstm.engine import H

TITLE = "Vanilla RNN limitations and the additive memory"


def _memory_cell(forget: bool):
    """The seed of the LSTM: a memory c updated additively, optionally rescaled by a forget gate."""
    cell = Cell("forget_memory" if forget else "additive_memory")
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    a_u = cell.linear("a_u", {"W_xu": x, "W_hu": h_prev}, biases=["b_u"])
    u = cell.elementwise("u", tanh(a_u))
    if forget:
        a_f = cell.linear("a_f", {"W_xf": x, "W_hf": h_prev}, biases=["b_f"])
        f = cell.elementwise("f", sigmoid(a_f))
        c = cell.elementwise("c", f * c_prev + u)
    else:
        c = cell.elementwise("c", c_prev + u)
    h = cell.elementwise("h", tanh(c))
    cell.update(h=h, c=c)
    return derive(cell.build())


def build(doc: Document) -> None:
    d = derive("rnn")
    ct = CellTex(d, prefix="rnn.")
    p = ct.p
    h = d.sym["h"]
    W = d.weight_matrix("W_hh")

    doc.abstract = (
        r"The vanilla recurrence overwrites its state at every step, so the gradient that links a distant "
        r"past to the present is a product of recurrent Jacobians that shrinks or grows geometrically. "
        r"An additively updated memory removes the weight matrix from that path: its Jacobian is the "
        r"identity, and with a learned forget gate it becomes $\operatorname{diag}(f_t)$."
    )
    doc.section("The vanilla update overwrites the state")
    doc.text(
        r"The Elman cell computes its new state from the previous one through a full matrix and a "
        r"squashing nonlinearity (tags quote the cell document \texttt{rnn.tex} and the comments of "
        r"\texttt{generated/numpy/rnn.py}):"
    )
    doc.equations(ct.forward_rows())
    doc.text(
        r"No coordinate of $h_{t-1}$ reaches $h_t$ untouched: every coordinate is mixed by $W_{hh}$ and "
        r"then squashed. Whatever the cell should remember has to be rebuilt from scratch at each step."
    )
    doc.subsection("The recurrent Jacobian")
    doc.claim(
        r"Differentiating the two equations above gives a diagonal slope matrix times the recurrent "
        r"weights:",
        d.jacobian("h", "h_prev"),
        sp.MatMul(Diag(1 - h**2), W),
        printer=p,
        lhs_tex=ct.jacobian_symbol("h", "h_prev"),
        code='derive("rnn").jacobian("h", "h_prev") == Diag(1 - h**2) * W_hh',
    )
    ps = TexPrinter(d, "s")
    factor = " ".join(
        ps._print(Diag(v)) if kind == "diag" else ps.name(v) for kind, v in d.jacobian_terms("h", "h_prev")[0]
    )
    doc.text(r"Across a gap of $k$ steps the chain rule multiplies $k$ of these factors:")
    doc.display(
        rf"\frac{{\partial h_{{t}}}}{{\partial h_{{t-k}}}} = \prod_{{s=t-k+1}}^{{t}} {factor},"
        r"\qquad \text{(latest step on the left).}"
    )
    doc.subsection("The geometric bound")
    slope = d.partial(d.spec.node("h"), "a")
    y = sp.Symbol("y", real=True)
    gamma = maximum(slope.subs(h, y), y, sp.Interval(-1, 1))
    doc.claim(
        r"The slope of $\tanh$, written in its output $h \in (-1, 1)$, is at most $\gamma = 1$ "
        r"(attained at $h = 0$):",
        gamma,
        sp.Integer(1),
        lhs_tex=rf"\gamma = \max_{{h \in [-1,1]}} \left({p._print(slope)}\right)",
        code='maximum(derive("rnn").partial(h, "a"), h, [-1, 1]) == 1',
    )
    z = sp.Symbol("z", real=True)
    sig_slope = sigmoid(z).diff(z).subs(sigmoid(z), y)
    doc.claim(
        r"For a sigmoid nonlinearity the same maximum is $\gamma = 1/4$ (at $\sigma = 1/2$):",
        maximum(sig_slope, y, sp.Interval(0, 1)),
        sp.Rational(1, 4),
        lhs_tex=r"\max_{\sigma \in [0,1]} \sigma\,(1-\sigma)",
        code="maximum(sigmoid(z).diff(z) at sigmoid = y, y, [0, 1]) == 1/4",
    )
    doc.text(
        r"Since the spectral norm is submultiplicative and $\|\operatorname{diag}(1-h_s^2)\|_2 \le \gamma$,"
    )
    doc.display(
        r"\Bigl\| \frac{\partial h_{t}}{\partial h_{t-k}} \Bigr\|_2 \;\le\; "
        r"\prod_{s} \|\operatorname{diag}(1-h_s^2)\|_2 \, \|W_{hh}\|_2 \;\le\; "
        r"\bigl(\gamma\, \sigma_{\max}(W_{hh})\bigr)^{k}."
    )
    doc.text(
        r"If $\gamma\,\sigma_{\max}(W_{hh}) < 1$ the gradient from $k$ steps back is guaranteed to die out "
        r"geometrically. Growth needs the opposite, $\sigma_{\max}(W_{hh}) > 1/\gamma$, and then the "
        r"product can blow up at the same geometric rate along the directions $W_{hh}$ stretches."
    )
    doc.section("Preservation is a knife-edge")
    doc.text(
        r"To carry one piece of information unchanged across $k$ steps, the map $h_{t-1} \mapsto h_t$ would "
        r"have to act as the identity on it at every one of those steps: $W_{hh}$ needs a singular value of "
        r"exactly one along that direction, and the slopes $1 - h_s^2$ must stay at one, i.e.\ the "
        r"coordinates must sit at $0$, in the linear part of $\tanh$. Any factor $1 \pm \varepsilon$ is "
        r"raised to the power $k$: the value is erased ($1-\varepsilon$) or amplified until it saturates "
        r"($1+\varepsilon$). The balance point has measure zero; an optimizer cannot hold it for every "
        r"direction and every step. Figure~\ref{fig:rnn} measures it with the generated code."
    )
    doc.figure(
        "rnn_gradient_norms.pdf",
        r"$\|\partial L/\partial h_{T-k}\|_2$ for $L = \langle w, h_T\rangle$, computed by the generated "
        r"\texttt{rnn} module (forward, then backward over the last $k$ steps), with "
        r"$W_{hh} = \rho\,Q$ for an orthogonal $Q$ and a tiny input drive, so the states stay near $0$ "
        r"where $\gamma = 1$. Dotted: the bound $\rho^k \|w\|$. Only $\rho = 1$ keeps the gradient, and "
        r"only because the states never leave the linear region.",
        label="fig:rnn",
    )
    doc.section("Building the identity path")
    m = _memory_cell(forget=False)
    cm = CellTex(m, prefix="")
    doc.text(
        r"Instead of hoping the recurrence preserves a value, give the cell a separate memory $c_t$ that "
        r"is changed only by adding an increment $u_t$ computed from the input and the previous hidden "
        r"state, never from $c_{t-1}$ itself (this is a user-defined cell, derived by the same engine; "
        r"the equations are unnumbered because no generated module quotes them):"
    )
    doc.equations([Row(r.lhs, r.lines) for r in cm.forward_rows()])
    doc.claim(
        r"The Jacobian of the memory update is the identity, by construction:",
        m.jacobian("c", "c_prev"),
        sp.Identity(H),
        printer=cm.p,
        lhs_tex=cm.jacobian_symbol("c", "c_prev"),
        code='derive(additive_memory).jacobian("c", "c_prev") == Identity(H)',
    )
    doc.text(
        r"Along the memory the backward pass multiplies by $I^{\top} = I$ at every step: the product over "
        r"any gap is exactly $I$, not $(\gamma\sigma_{\max})^k$. This is the constant error carousel of "
        r"the 1997 LSTM. The contrast in one line: the vanilla path is "
        r"$\prod_s \operatorname{diag}(1-h_s^2)\,W_{hh}$, which generically vanishes or explodes; the "
        r"additive path is $\prod_s I = I$. The fix is not a better matrix; it is no matrix on the carry "
        r"path."
    )
    doc.section("Learning to forget")
    fm = _memory_cell(forget=True)
    cf = CellTex(fm, prefix="")
    doc.text(
        r"A memory that only adds never lets go of anything, and its values can drift without bound. A "
        r"forget gate $f_t \in (0,1)^H$ rescales the old memory before the increment is added:"
    )
    doc.equations([Row(r.lhs, r.lines) for r in cf.forward_rows(["a_f", "f", "c"])])
    f = fm.sym["f"]
    doc.claim(
        r"Now the recurrent Jacobian of the memory is the forget gate itself:",
        fm.jacobian("c", "c_prev"),
        Diag(f),
        printer=cf.p,
        lhs_tex=cf.jacobian_symbol("c", "c_prev"),
        code='derive(forget_memory).jacobian("c", "c_prev") == Diag(f)',
    )
    fs = sp.symbols("f_1:4", positive=True)
    prod = sp.eye(3)
    for v in fs:
        prod = prod * sp.diag(v, v + 1, 2 * v)  # three coordinates with different gate values
    doc.check(
        r"A product of diagonal matrices is the diagonal matrix of the coordinatewise products, so over a "
        r"gap the memory is scaled coordinate by coordinate, $\prod_s \operatorname{diag}(f_s) = "
        r"\operatorname{diag}\bigl(\prod_s f_s\bigr)$: no mixing, no matrix norm.",
        prod == sp.diag(sp.Mul(*fs), sp.Mul(*[v + 1 for v in fs]), sp.Mul(*[2 * v for v in fs])),
        code="diag(f1) diag(f2) diag(f3) == diag(f1 f2 f3), per coordinate, at size 3",
    )
    doc.text(
        r"Coordinate $k$ survives $n$ steps with weight $\prod_s f_{s,k}$: the network keeps it by driving "
        r"$f_{s,k}$ to $1$ and erases it by driving $f_{s,k}$ to $0$. Preservation is no longer a balance "
        r"the weights must strike; it is a decision the gate takes. With an input gate and an output gate "
        r"this becomes the LSTM (topic 2); merging memory and output gives the GRU (topic 5)."
    )
