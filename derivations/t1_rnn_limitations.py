"""Topic 1: why a vanilla RNN cannot keep a value, what training does about it, and the additive memory."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.calculus.util import maximum

from symlstm import Cell, Diag, derive, load, sigmoid, tanh
from symlstm.backends.latex import CellTex, Document, TexPrinter
from symlstm.backends.latex.documents import (
    cell_diagram,
    dimension_table,
    fd_check,
    unrolled_diagram,
    verification_section,
)
from symlstm.build.figures import orthogonal
from symlstm.engine import H

TITLE = "Vanilla RNN limitations and the additive memory"

PRELUDE = """\
import runpy
import sympy as sp
from sympy.calculus.util import maximum
from symlstm import Diag, derive
from symlstm.backends.latex.checks import finite_differences
from symlstm.engine import H
y = sp.Symbol("y", real=True)
t1 = runpy.run_path("derivations/t1_rnn_limitations.py")  # from the source checkout
d = derive("rnn"); m = t1["memory_cell"](forget=False); fm = t1["memory_cell"](forget=True)"""


def memory_cell(forget: bool):
    """The seed of the LSTM: a memory c updated additively, optionally rescaled by a forget gate.

    Weights follow the LSTM's naming: W_i<k> multiplies the input, W_h<k> the previous hidden state.
    """
    cell = Cell("forget_memory" if forget else "additive_memory")
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    a_u = cell.linear("a_u", {"W_iu": x, "W_hu": h_prev}, biases=["b_u"])
    u = cell.elementwise("u", tanh(a_u))
    if forget:
        a_f = cell.linear("a_f", {"W_if": x, "W_hf": h_prev}, biases=["b_f"])
        f = cell.elementwise("f", sigmoid(a_f))
        c = cell.elementwise("c", f * c_prev + u)
    else:
        c = cell.elementwise("c", c_prev + u)
    h = cell.elementwise("h", tanh(c))
    cell.update(h=h, c=c)
    return derive(cell.build())


def truncation_loss(rho: float, window: int, steps: int = 60) -> float:
    """||dW_hh(truncated) - dW_hh(full)|| / ||dW_hh(full)|| for L = <w, h_T> of a tanh RNN.

    W_hh = rho Q (Q orthogonal), PyTorch's initialization otherwise, inputs N(0, 1); the truncated
    gradient is the generated backward run over the last `window` steps only (the state at T - window
    taken as given), the full one over all `steps`.
    """
    mod = load("rnn")
    hidden, inputs, batch = 32, 8, 8
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, inputs))
    w = rng.standard_normal((batch, hidden)) / np.sqrt(hidden)
    params = mod.init_params(inputs, hidden, seed=0)
    params["W_hh"] = rho * orthogonal(rng, hidden)
    y, _, cache = mod.forward(params, x)
    full, _, _ = mod.backward(params, cache, np.zeros_like(y), (w,))
    _, start, _ = mod.forward(params, x[: steps - window])
    y, _, cache = mod.forward(params, x[steps - window :], start)
    cut, _, _ = mod.backward(params, cache, np.zeros_like(y), (w,))
    return float(np.linalg.norm(cut["W_hh"] - full["W_hh"]) / np.linalg.norm(full["W_hh"]))


def build(doc: Document) -> None:
    d = derive("rnn")
    ct = CellTex(d, prefix="rnn.")
    p = ct.p
    h = d.sym["h"]
    W = d.weight_matrix("W_hh")
    m, fm = memory_cell(forget=False), memory_cell(forget=True)
    cm, cf = CellTex(m), CellTex(fm)

    doc.abstract = (
        r"The vanilla recurrence overwrites its state at every step, so the gradient that links a distant "
        r"past to the present is a product of recurrent Jacobians that shrinks or grows geometrically. "
        r"Gradient clipping and truncated backpropagation treat the symptoms; an additively updated memory "
        r"removes the weight matrix from the carry path: its Jacobian is the identity, and with a learned "
        r"forget gate it becomes $\operatorname{diag}(f_t)$."
    )
    doc.section("The vanilla update overwrites the state")
    doc.text(
        r"The Elman cell " + doc.cite("elman1990") + r" computes its new state from the previous one "
        r"through a full matrix and a squashing nonlinearity (the tags \texttt{rnn.1}, \texttt{rnn.2} are "
        r"the equation numbers of the cell document \texttt{rnn}); Figure~\ref{fig:rnn:cell} draws it, and "
        r"Table~\ref{tab:dims} lists every symbol of this document:"
    )
    doc.equations(ct.forward_rows())
    cell_diagram(doc, ct, what=r"One step of the vanilla RNN, drawn from its graph. ")
    dimension_table(doc, [ct, cf], r"The symbols of this document: the vanilla RNN, then the memory cells "
                    r"of Sections~\ref{sec:identity} and~\ref{sec:forget} (generated from the cell "
                    r"specifications).")  # fmt: skip
    doc.text(
        r"No coordinate of $h_{t-1}$ reaches $h_t$ untouched: every coordinate is mixed by $W_{hh}$ and "
        r"then squashed. Whatever the cell should remember has to be rebuilt from scratch at each step."
    )
    doc.intuition(
        r"Think of $h_t$ as a whiteboard that is wiped and rewritten at every step from what was on it. A "
        r"fact written at step $1$ survives to step $100$ only if $99$ rewrites in a row copy it exactly."
    )
    doc.subsection("The recurrent Jacobian")
    doc.claim(
        r"Differentiating the two equations above gives a diagonal slope matrix times the recurrent "
        r"weights:",
        d.jacobian("h", "h_prev"),
        sp.MatMul(Diag(1 - h**2), W),
        printer=p,
        lhs_tex=ct.jacobian_symbol("h", "h_prev"),
        code='d.jacobian("h", "h_prev") == sp.MatMul(Diag(1 - d.sym["h"]**2), d.weight_matrix("W_hh"))',
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
        code='maximum(d.partial(d.spec.node("h"), "a").subs(d.sym["h"], y), y, sp.Interval(-1, 1)) == 1',
    )
    z = sp.Symbol("z", real=True)
    sig_slope = sigmoid(z).diff(z).subs(sigmoid(z), y)
    doc.claim(
        r"For a sigmoid nonlinearity the same maximum is $\gamma = 1/4$ (at $\sigma = 1/2$):",
        maximum(sig_slope, y, sp.Interval(0, 1)),
        sp.Rational(1, 4),
        lhs_tex=r"\max_{\sigma \in [0,1]} \sigma\,(1-\sigma)",
        code="maximum(y * (1 - y), y, sp.Interval(0, 1)) == sp.Rational(1, 4)",
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
        r"geometrically: that condition is sufficient for vanishing. Exploding needs the opposite, "
        r"$\sigma_{\max}(W_{hh}) > 1/\gamma$ (necessary, not sufficient), and then the product can grow at "
        r"the same geometric rate along the directions $W_{hh}$ stretches "
        + doc.cite("bengio1994", "pascanu2013")
        + "."
    )
    doc.section("Preservation is a knife-edge")
    doc.text(
        r"To carry one piece of information unchanged across $k$ steps, the map $h_{t-1} \mapsto h_t$ would "
        r"have to act as the identity on it at every one of those steps: $W_{hh}$ needs a singular value of "
        r"exactly one along that direction, and the slopes $1 - h_s^2$ must stay at one, i.e.\ the "
        r"coordinates must sit at $0$, in the linear part of $\tanh$. Any factor $1 \pm \varepsilon$ is "
        r"raised to the power $k$: the value is erased ($1-\varepsilon$) or amplified until it saturates "
        r"($1+\varepsilon$). The balance point has measure zero; an optimizer cannot hold it for every "
        r"direction and every step. Figure~\ref{fig:rnn} measures it with the generated code; "
        r"Figure~\ref{fig:rnn:unrolled} shows where the factors come from: every backward step through the "
        r"cell passes through $W_{hh}^{\top}$."
    )
    doc.intuition(
        r"$0.9^{60} \approx 0.002$ and $1.1^{60} \approx 300$: a $10\,\%$ error per step becomes a factor of "
        r"hundreds after sixty steps, in either direction."
    )
    doc.figure(
        "rnn_gradient_norms.pdf",
        r"$\|\partial L/\partial h_{T-k}\|_2$ for $L = \langle w, h_T\rangle$, computed by the generated "
        r"\texttt{rnn} module (forward, then backward over the last $k$ steps), with "
        r"$W_{hh} = \rho\,Q$ for an orthogonal $Q$ and a tiny input drive, so the states stay near $0$ "
        r"where $\gamma = 1$. Circles: the bound $\rho^k \|w\|$; it lies on the curves because near $0$ "
        r"the bound is attained. Only $\rho = 1$ keeps the gradient, and only because the states never "
        r"leave the linear region.",
        label="fig:rnn",
    )
    unrolled_diagram(doc, ct)
    _training(doc)
    doc.section("Building the identity path", "sec:identity")
    doc.text(
        r"Instead of hoping the recurrence preserves a value, give the cell a separate memory $c_t$ that is "
        r"changed only by adding an increment $u_t$ computed from the input and the previous hidden state. "
        r"This is a cell declared with the same tools as any user cell and derived by the same engine; its "
        r"equations are unnumbered because no generated module quotes them:"
    )
    doc.equations(cm.forward_rows(numbered=False))
    cell_diagram(doc, cm, label="fig:additive", what=r"The additive memory, drawn from its graph. ")
    doc.claim(
        r"The block of the step Jacobian that maps the old memory to the new one is the identity, by "
        r"construction:",
        m.jacobian("c", "c_prev"),
        sp.Identity(H),
        printer=cm.p,
        lhs_tex=cm.jacobian_symbol("c", "c_prev"),
        code='m.jacobian("c", "c_prev") == sp.Identity(H)',
    )
    cross = cm.jacobian_row("c", "h_prev")
    doc.check(
        r"This does not mean that $c_t$ ignores $c_{t-1}$: $u_t$ reads $h_{t-1} = \tanh(c_{t-1})$, and the "
        r"block from $h_{t-1}$ is not zero; it goes through the weight matrix $W_{hu}$:",
        any(kind == "mat" for t in m.jacobian_terms("c", "h_prev") for kind, _ in t),
        math=f"{cross.lhs} = {' '.join(cross.lines)}",
        code='any(k == "mat" for t in m.jacobian_terms("c", "h_prev") for k, _ in t)',
    )
    doc.text(
        r"So the backward pass has two kinds of paths. Along the memory alone, $c_{t-1} \to c_t$, it "
        r"multiplies by $I^{\top} = I$ at every step, and the product over any gap is exactly $I$, not "
        r"$(\gamma\sigma_{\max})^k$: this is the constant error carousel of the 1997 LSTM "
        + doc.cite("hochreiter1997")
        + r". The paths that leave the memory through $h$ and return through $W_{hu}$ are products like the "
        r"vanilla one and can still vanish or explode; but they are no longer the only way back. The "
        r"contrast in one line: the vanilla path is $\prod_s \operatorname{diag}(1-h_s^2)\,W_{hh}$; the "
        r"memory path is $\prod_s I = I$. The fix is not a better matrix; it is no matrix on the carry path."
    )
    doc.section("Learning to forget", "sec:forget")
    doc.text(
        r"A memory that only adds never lets go of anything, and its values can drift without bound. A "
        r"forget gate $f_t \in (0,1)^H$ rescales the old memory before the increment is added "
        + doc.cite("gers2000")
        + ":"
    )
    doc.equations(cf.forward_rows(["a_f", "f", "c"], numbered=False))
    f = fm.sym["f"]
    doc.claim(
        r"Now the recurrent Jacobian of the memory is the forget gate itself:",
        fm.jacobian("c", "c_prev"),
        Diag(f),
        printer=cf.p,
        lhs_tex=cf.jacobian_symbol("c", "c_prev"),
        code='fm.jacobian("c", "c_prev") == Diag(fm.sym["f"])',
    )
    cell_diagram(doc, cf, label="fig:forget", what=r"The memory with a forget gate, drawn from its graph. ")
    doc.text(
        r"Products of diagonal matrices multiply coordinate by coordinate, so along the memory coordinate "
        r"$k$ survives $n$ steps with weight $\prod_s f_{s,k}$: the network keeps it by driving $f_{s,k}$ "
        r"to $1$ and erases it by driving $f_{s,k}$ to $0$. Preservation is no longer a balance the weights "
        r"must strike; it is a decision the gate takes."
    )
    c_expr = fm.spec.node("c").expr
    cs = {k: fm.sym[k] for k in ("c_prev", "u")}
    doc.check(
        r"\textbf{A residual connection along time.} The update is the identity plus a learned "
        r"correction, as in a residual block $x_{l+1} = x_l + F(x_l)$ " + doc.cite("he2016") + ":",
        sp.expand(c_expr - (cs["c_prev"] + ((f - 1) * cs["c_prev"] + cs["u"]))) == 0,
        math=r"c_t = c_{t-1} + \underbrace{(f_t - 1) \odot c_{t-1} + u_t}_{\text{learned correction}}",
        code='sp.expand(fm.spec.node("c").expr - (fm.sym["c_prev"] + (fm.sym["f"] - 1) * fm.sym["c_prev"] '
        '+ fm.sym["u"])) == 0',
    )
    doc.text(
        r"The additive carry is a skip connection along time: information and gradient move through "
        r"elementwise arithmetic, with no weight matrix to attenuate them, nearly two decades before "
        r"residual connections let feed-forward networks reach hundreds of layers. With an input gate and "
        r"an output gate this becomes the LSTM (topic 2); merging memory and output gives the GRU (topic 5)."
    )
    fd_check(doc, ct, 2, r"The printed Jacobian of the vanilla cell")
    fd_check(doc, cf, 2, r"The printed Jacobian blocks of the memory with a forget gate")
    verification_section(doc, [ct], PRELUDE)


def _training(doc: Document) -> None:
    """Gradient clipping and truncated BPTT: what they fix and what they cannot."""
    doc.section("What training does about it: clipping and truncation")
    doc.text(
        r"\textbf{Gradient clipping} " + doc.cite("pascanu2013") + r" bounds the exploding side: when the "
        r"gradient $g$ of all parameters has a norm above a threshold $\theta$ it is rescaled,"
    )
    doc.display(r"g \;\leftarrow\; \frac{\theta}{\|g\|}\, g \qquad \text{if } \|g\| > \theta,")
    doc.text(
        r"which keeps its direction and caps the length of the step. It does nothing for a gradient that "
        r"has already vanished: a term $10^{-6}$ times smaller than the others stays invisible."
    )
    doc.text(
        r"\textbf{Truncated backpropagation through time} " + doc.cite("williams1990") + r" bounds the cost: "
        r"the sequence is processed in windows of $K$ steps, the state is carried forward from window to "
        r"window, but the gradient is not carried back across a window boundary (the generated "
        r"\texttt{backward} does this when it is run on one window with the final-state gradient given). "
        r"Every contribution over a gap longer than $K$ is dropped. Table~\ref{tab:truncation} measures "
        r"what that loses, with the generated \texttt{rnn} module:"
    )
    rows, values = [], {}
    for rho in (0.9, 1.0, 1.1):
        for window in (10, 20):
            values[rho, window] = truncation_loss(rho, window)
        rows.append([f"${rho:g}$", f"${values[rho, 10]:.2g}$", f"${values[rho, 20]:.2g}$"])
    doc.table(
        r"Relative change of $\partial L/\partial W_{hh}$ when backpropagation is truncated to the last $K$ "
        r"of $60$ steps ($L = \langle w, h_{60}\rangle$, $H = 32$, $W_{hh} = \rho Q$ with $Q$ orthogonal, "
        r"PyTorch's initialization otherwise, inputs $\mathcal N(0,1)$).",
        [r"$\rho$", "$K = 10$", "$K = 20$"],
        rows,
        cols="lll",
        label="tab:truncation",
    )
    doc.check(
        r"The larger the recurrent weights, the more of the gradient lives in the long gaps that truncation "
        r"drops, at both window sizes:",
        all(values[0.9, k] < values[1.0, k] < values[1.1, k] for k in (10, 20)),
        code='all(t1["truncation_loss"](0.9, k) < t1["truncation_loss"](1.0, k) '
        '< t1["truncation_loss"](1.1, k) for k in (10, 20))',
    )
    doc.text(
        r"Truncation is harmless exactly where the long-range gradient was negligible anyway, so neither "
        r"remedy closes the gap between the horizon the gradient can reach and the timescale of the data. "
        r"The problem is the architecture."
    )
