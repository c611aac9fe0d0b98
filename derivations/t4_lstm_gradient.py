"""Topic 4: the gradient in the LSTM: step Jacobian, the cell-state highway and the other paths, BPTT,
parameter gradients, one step worked by hand, and the residual reading."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symlstm import Diag, derive, load
from symlstm.backends.latex import CellTex, Document, Row
from symlstm.backends.latex.checks import step_values
from symlstm.backends.latex.documents import dimension_table, fd_check, unrolled_diagram, verification_section
from symlstm.build import figures

TITLE = "Gradient in the LSTM"

PRELUDE = """\
import runpy
import numpy as np
import sympy as sp
from symlstm import Diag, derive, load
from symlstm.backends.latex.celltex import CellTex
from symlstm.backends.latex.checks import finite_differences
t4 = runpy.run_path("derivations/t4_lstm_gradient.py")  # from the source checkout
d = derive("lstm"); s = d.sym; mod = load("lstm")"""

# One step small enough to redo by hand: H = I = 1, the recurrent biases zero.
EXAMPLE = {
    "x": 1.0, "h_prev": 0.5, "c_prev": 1.0,
    "W_ii": 0.5, "W_hi": -1.0, "b_ii": 0.0,
    "W_if": 1.0, "W_hf": 2.0, "b_if": 0.0,
    "W_ig": 1.0, "W_hg": 0.0, "b_ig": 0.0,
    "W_io": 0.0, "W_ho": 0.0, "b_io": 0.0,
}  # fmt: skip


def example_point(d) -> dict[str, np.ndarray]:
    """The worked example as the printed equations take it: every value a (1,) or (1, 1) array."""
    values = {}
    for name in d.spec.leaves:
        values[name] = np.array([EXAMPLE[name]])
    for p in d.spec.params:
        v = EXAMPLE.get(p.name, 0.0)
        values[p.name] = np.array([[v]]) if p.is_matrix else np.array([v])
    return values


def example_generated(d) -> tuple[float, float, dict[str, float]]:
    """The worked example run by the generated module: (h_t, c_t, {name: gradient}) for L = h_t."""
    mod = load("lstm")
    point = example_point(d)
    params = {}
    for array, members in mod.BLOCKS.items():
        params[array] = np.concatenate([point[m].reshape(1, -1) if point[m].ndim == 2 else point[m]
                                        for m in members])  # fmt: skip
    x = point["x"].reshape(1, 1, 1)
    state0 = (point["h_prev"].reshape(1, 1), point["c_prev"].reshape(1, 1))
    y, (h, c), cache = mod.forward(params, x, state0)
    dparams, dx, (dh0, dc0) = mod.backward(
        params, cache, np.zeros_like(y), (np.ones((1, 1)), np.zeros((1, 1)))
    )
    grads = {"x": float(dx[0, 0, 0]), "h_prev": float(dh0[0, 0]), "c_prev": float(dc0[0, 0])}
    for array, members in mod.BLOCKS.items():
        for k, m in enumerate(members):
            grads[m] = float(dparams[array].reshape(len(members), -1)[k, 0])
    return float(h[0, 0]), float(c[0, 0]), grads


def example_printed(d) -> tuple[dict, dict, dict]:
    """The worked example evaluated from the printed equations: (forward values, adjoints, gradients)."""
    return step_values(d, example_point(d), {"h": np.array([1.0]), "c": np.array([0.0])})


def example_agrees(d) -> tuple[float, float]:
    """Largest differences between the generated module and the printed equations: (forward, backward)."""
    v, adj, grads = example_printed(d)
    h, c, generated = example_generated(d)
    printed = {"x": adj["x"][0], "h_prev": adj["h_prev"][0], "c_prev": adj["c_prev"][0],
               **{k: float(np.ravel(g)[0]) for k, g in grads.items()}}  # fmt: skip
    forward = max(abs(h - v["h"][0]), abs(c - v["c"][0]))
    backward = max(abs(generated[k] - printed[k]) for k in printed)
    return float(forward), float(backward)


def cell_state_step_check(seed: int = 1) -> bool:
    """With no gradient on h_t, the generated backward hands c_{t-1} exactly f_t * dL/dc_t."""
    mod = load("lstm")
    rng = np.random.default_rng(seed)
    params = mod.init_params(8, 16, seed=seed)
    x = rng.standard_normal((1, 4, 8))
    state0 = (rng.standard_normal((4, 16)), rng.standard_normal((4, 16)))
    w = rng.standard_normal((4, 16))
    y, _, cache = mod.forward(params, x, state0)
    _, _, (_, dc0) = mod.backward(params, cache, np.zeros_like(y), (np.zeros((4, 16)), w))
    f = figures.forget_gates(params, x, [state0])[0]
    return bool(np.allclose(dc0, f * w, rtol=1e-13, atol=0))


def path_ratios(bias: float = 3.0) -> tuple[float, float, float]:
    """(full, cell-state path alone) ||dL/dc_{T-k}|| at k = 60 over its value at k = 1 (generated code),
    and the mean forget gate of the run."""
    x, w, _ = figures._problem()
    mod = load("lstm")
    params = mod.initialize(figures.INPUT, figures.HIDDEN, forget_bias=bias, seed=0)
    full = figures.gradient_norms("lstm", params, x, w, state=1)
    alone = figures.memory_path_norms(params, x, w)
    mean_f = float(np.mean(figures.forget_gates(params, x, figures._states(mod, params, x))))
    return float(full[-1] / full[0]), float(alone[-1] / alone[0]), mean_f


def build(doc: Document) -> None:
    d = derive("lstm")
    ct = CellTex(d, prefix="lstm.")
    p = ct.p
    f, o, tanh_c = d.sym["f"], d.sym["o"], d.sym["tanh_c"]
    doc.abstract = (
        r"With the whole cell in hand, the step Jacobian of $(h_t, c_t)$ with respect to "
        r"$(h_{t-1}, c_{t-1})$ is derived block by block. Its cell-state block is "
        r"$\operatorname{diag}(f_t)$, so along the cell state the gradient is scaled coordinate by "
        r"coordinate by products of forget gates, with no weight matrix; the other paths, through $h$ "
        r"and the gates, still carry weight matrices. Then the backward (BPTT) equations, the parameter "
        r"gradients, one step worked through by hand and the residual reading of the cell state."
    )
    doc.section("The step Jacobian")
    doc.text(r"The forward equations, numbered as in the cell document \texttt{lstm} (symbols and sizes in "
             r"Table~\ref{tab:dims}):")  # fmt: skip
    doc.equations(ct.forward_rows())
    dimension_table(doc, [ct], "Every symbol of the LSTM step, generated from the cell specification.")
    doc.text(r"Treat the state as the pair $(h, c)$. The Jacobian of one step is a $2\times2$ block matrix:")
    doc.display(ct.step_matrix())
    doc.equations([ct.jacobian_row(a, b) for a, b in ct.step_blocks()])
    doc.check(
        "Multiplied out, each block above is the engine's Jacobian.",
        ct.factored_is_engine(),
        code="CellTex(d).factored_is_engine()",
    )
    fd_check(doc, ct, 2, "The four blocks")
    doc.begin_derivation()
    doc.text(
        r"Start from the end of the step and apply the chain rule along the graph. The blocks with respect "
        r"to $c_{t-1}$: $c_{t-1}$ enters only equation \eqref{eq:lstm:fwd:c}, whose slope in $c_{t-1}$ is "
        r"$f_t$; and $h_t$ depends on $c_{t-1}$ only through $c_t$:"
    )
    hc, cc = d.jacobian("h", "c"), d.jacobian("c", "c_prev")
    doc.equations([
        Row(ct.jacobian_symbol("c", "c_prev"), [p._print(cc)]),
        Row(ct.jacobian_symbol("h", "c_prev"),
            [rf"{ct.jacobian_symbol('h', 'c')}\,{ct.jacobian_symbol('c', 'c_prev')} = "
             rf"{p._print(hc)}\,{p._print(cc)} = {p._print(d.jacobian('h', 'c_prev'))}"]),
    ])  # fmt: skip
    doc.text(
        r"The blocks with respect to $h_{t-1}$: $h_{t-1}$ enters the four pre-activations through "
        r"$W_{hi}, W_{hf}, W_{hg}, W_{ho}$; each gate adds one term, the gate's slope times the slope of "
        rf"$c_t$ (or $h_t$) in that gate. For instance the forget-gate term of "
        rf"${ct.jacobian_symbol('c', 'h_prev')}$ is"
    )
    cnode, fnode = d.spec.node("c"), d.spec.node("f")
    doc.display(
        rf"{ct.jacobian_symbol('c', 'f')}\,{ct.jacobian_symbol('f', 'a_f')}\,"
        rf"{ct.jacobian_symbol('a_f', 'h_prev')} = "
        rf"\operatorname{{diag}}\left({p._print(d.partial(cnode, 'f'))}\right)"
        rf"\operatorname{{diag}}\left({p._print(d.partial(fnode, 'a_f'))}\right) W_{{hf}}."
    )
    doc.end_derivation()
    doc.claim(
        r"\textbf{The cell-state path.} The block from the old memory to the new one is the forget gate "
        r"and nothing else:",
        d.jacobian("c", "c_prev"),
        Diag(f),
        printer=p,
        lhs_tex=ct.jacobian_symbol("c", "c_prev"),
        code='d.jacobian("c", "c_prev") == Diag(s["f"])',
    )
    doc.claim(
        r"The block from the old memory to the new hidden state is diagonal too:",
        d.jacobian("h", "c_prev"),
        Diag(f * o * (1 - tanh_c**2)),
        printer=p,
        lhs_tex=ct.jacobian_symbol("h", "c_prev"),
        code='d.jacobian("h", "c_prev") == Diag(s["f"] * s["o"] * (1 - s["tanh_c"]**2))',
    )
    _gap(doc, ct)
    _backward(doc, ct)
    _example(doc, ct)
    _residual(doc, ct)
    verification_section(doc, [ct], PRELUDE)


def _gap(doc: Document, ct: CellTex) -> None:
    d, p = ct.d, ct.p
    doc.section("Across a gap: the highway and the other paths")
    doc.text(
        r"Over $k$ steps the Jacobian is the product $J_t J_{t-1} \cdots J_{t-k+1}$ of block matrices "
        r"(Figure~\ref{fig:lstm:unrolled}). Its $c$-to-$c$ block is a sum over all paths from "
        r"$c_{t-k}$ to $c_t$. One path stays on the cell state at every step:"
    )
    ps = type(p)(d, "s")
    doc.display(
        rf"\frac{{\partial c_{{t}}}}{{\partial c_{{t-k}}}}\Big|_{{\text{{cell-state path}}}} = "
        rf"\prod_{{s=t-k+1}}^{{t}} {ps._print(Diag(d.sym['f']))} = "
        rf"\operatorname{{diag}}\Bigl(\prod_{{s=t-k+1}}^{{t}} {ps.name('f')}\Bigr)."
    )
    unrolled_diagram(doc, ct)
    doc.text(
        r"Compare the vanilla RNN's $\prod_s \operatorname{diag}(1-h_s^2)\,W_{hh}$ (topic 1): there every "
        r"step multiplies by a full matrix and a slope below one. Here coordinate $k$ is scaled by "
        r"$\prod_s f_{s,k}$, no matrix, no $\tanh$ slope. With a constant gate value $f$ that is $f^k = "
        r"(1 - (1-f))^k \approx e^{-k(1-f)}$: it stays near $1$ only while $k(1-f) \ll 1$, i.e.\ for gaps "
        r"well below $1/(1-f)$ steps."
    )
    doc.check(
        r"An open gate is not enough by itself: at $f = 0.95$ the cell-state path keeps less than $5\,\%$ "
        r"after sixty steps; at $f = 0.999$ it keeps more than $90\,\%$.",
        0.95**60 < 0.05 and 0.999**60 > 0.9,
        math=r"0.95^{60} \approx " + f"{0.95**60:.3f}" + r", \qquad 0.999^{60} \approx " + f"{0.999**60:.3f}",
        code="0.95**60 < 0.05 and 0.999**60 > 0.9",
    )
    doc.text(
        r"\textbf{The other paths.} Every other path leaves the cell state through $h$ "
        rf"(${ct.jacobian_symbol('h', 'c_prev')}$, diagonal) and comes back through the gates' recurrent "
        rf"weights (${ct.jacobian_symbol('c', 'h_prev')}$, which contains $W_{{hi}}, W_{{hf}}, W_{{hg}}$). "
        r"For two steps the $c$-to-$c$ block of $J_t J_{t-1}$ is"
    )
    doc.display(
        r"\frac{\partial c_t}{\partial c_{t-1}}\frac{\partial c_{t-1}}{\partial c_{t-2}} + "
        r"\frac{\partial c_t}{\partial h_{t-1}}\frac{\partial h_{t-1}}{\partial c_{t-2}} = "
        r"\operatorname{diag}(f_t)\operatorname{diag}(f_{t-1}) + \frac{\partial c_t}{\partial h_{t-1}}"
        r"\operatorname{diag}\bigl(f_{t-1} \odot o_{t-1} \odot (1 - \tanh^2 c_{t-1})\bigr),"
    )
    doc.text(
        r"and over longer gaps such terms multiply weight matrices and slopes just as the vanilla RNN does: "
        r"they can vanish or grow. The gradient that reaches $c_{t-k}$ is the sum of the cell-state path "
        r"and of all these. Figure~\ref{fig:lstm} measures the total for three forget-gate biases; "
        r"Figure~\ref{fig:memory} separates the cell-state path from the rest."
    )
    doc.figure(
        "lstm_gradient_norms.pdf",
        r"$\|\partial L/\partial h_{T-k}\|_2$ for $L = \langle w, h_T\rangle$, all paths included, computed "
        r"by the generated \texttt{lstm} module with PyTorch's default initialization ($H = 32$, inputs "
        r"$\mathcal N(0,1)$) and the forget-gate bias $b_{if}$ set to $0$, $1$, $3$ ($b_{hf} = 0$; the mean "
        r"gate values are then about $0.5$, $0.73$ and $0.95$).",
        label="fig:lstm",
    )
    full, alone, mean_f = path_ratios(3.0)
    doc.figure(
        "lstm_memory_path.pdf",
        r"Solid: $\|\partial L/\partial c_{T-k}\|_2$ from the generated backward (all paths). Dashed: the "
        r"cell-state path alone, $\|(\prod_{s} f_s) \odot \partial L/\partial c_{T-1}\|_2$ with the forget "
        r"gates of the same forward run. Same setup as Figure~\ref{fig:lstm}, forget biases $1$ and $3$.",
        label="fig:memory",
    )
    doc.check(
        r"\textbf{What the figures show.} With forget bias $3$ the cell-state path alone "
        rf"keeps ${alone:.2g}$ of its value after sixty steps, close to ${mean_f:.3f}^{{59}} \approx "
        rf"{mean_f**59:.2g}$ for the mean forget gate ${mean_f:.3f}$ of the run, while the full gradient "
        rf"ends at ${full:.2g}$ times its value at $k = 1$: here the gradient crosses sixty steps through "
        r"the paths that leave the cell state and come back through the gates, not along the cell state "
        r"alone. The highway guarantees a path that no weight matrix can shrink; it does not by itself "
        r"carry a gradient over gaps much longer than $1/(1-f)$.",
        alone < 0.1 and full > 1.0,
        code='(lambda full, alone, mean_f: alone < 0.1 and full > 1.0)(*t4["path_ratios"](3.0))',
    )


def _backward(doc: Document, ct: CellTex) -> None:
    d, p = ct.d, ct.p
    f = d.sym["f"]
    doc.section("Backward pass (BPTT)")
    doc.text(
        r"$\delta v = \partial L/\partial v$. At step $t$ the new states receive "
        r"$\delta^{\mathrm{in}} h_t = \partial L/\partial y_t + \delta h_{t}^{(t+1)}$ (the loss at this step "
        r"plus what step $t+1$ sends back into its previous-state slot) and "
        r"$\delta^{\mathrm{in}} c_t = \delta c_t^{(t+1)}$. One step backward, in order "
        + doc.cite("werbos1990")
        + ":"
    )
    doc.equations(ct.adjoint_rows())
    fd_check(doc, ct, 0, f"Equations {ct.span('adj')}")
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
        code='d.adjoint("c_prev").elementwise == sp.Symbol("d_c", real=True) * s["f"]',
    )
    doc.check(
        r"The generated backward does exactly that: with a gradient $w$ on $c_t$ and none on $h_t$, one "
        r"step back gives $\delta c_{t-1} = f_t \odot w$ (a batch of four, $H = 16$, to $10^{-13}$):",
        cell_state_step_check(),
        code='t4["cell_state_step_check"]()',
    )
    doc.section("Parameter gradients")
    doc.text(
        r"Every parameter is shared by all steps and all samples, so its gradient is the sum of the "
        r"per-step contributions. A weight $W$ in $a = W u + \dots$ receives $\delta a\, u^{\top}$; a bias, "
        r"$\delta a$:"
    )
    doc.equations(ct.gradient_rows())
    fd_check(doc, ct, 1, f"Equations {ct.span('grad')}")
    doc.text(
        r"The two biases of each gate receive identical gradients (compare the pairs above): only their "
        r"sum is identifiable. In the mini-batch form the input-weight gradient of all steps is one "
        r"matrix product, $\delta W_{ih} = \sum_t \delta\mathbf{a}_t^{\top} \mathbf{x}_t$, which the "
        r"generated code computes after the time loop."
    )


def _example(doc: Document, ct: CellTex) -> None:
    """One step with H = I = 1 and round numbers: forward and backward, checked against the generated code."""
    d, p = ct.d, ct.p
    doc.section("One step by hand", "sec:example")
    given = ", ".join(f"${p.name(k)} = {v:g}$" for k, v in EXAMPLE.items() if not k.startswith("b_"))
    doc.text(
        r"Take $H = I = 1$, so every vector is a number and every matrix a single weight, with "
        rf"{given}, and all biases $0$. The loss is $L = h_t$, so $\delta^{{\mathrm{{in}}}} h_t = 1$ and "
        r"$\delta^{\mathrm{in}} c_t = 0$. Each value below comes from the equation it cites, evaluated at "
        r"these numbers; a calculator with $\sigma$ and $\tanh$ is enough to redo them."
    )
    v, adj, _ = example_printed(d)
    fwd = ["a_i", "a_f", "a_g", "a_o", "i", "f", "g", "o", "c", "h"]
    rows_f = [[f"${p.name(n)}$", ct.ref("fwd", n), f"${v[n][0]:.4f}$"] for n in fwd]
    back = ["h", "c", "o", "a_o", "f", "a_f", "i", "a_i", "g", "a_g", "c_prev", "h_prev", "x"]
    rows_b = [[f"${p.name('d_' + n)}$", ct.ref("adj", n), f"${adj[n][0]:.4f}$"] for n in back]
    header = ["value", "equation", "at the example"]
    doc.table("The forward pass of the example.", header, rows_f, cols="llr", label="tab:example:fwd")
    doc.table("The backward pass of the example, in the order it is computed.", header, rows_b, cols="llr",
              label="tab:example:bwd")  # fmt: skip
    h, c, generated = example_generated(d)
    forward, backward = example_agrees(d)
    doc.check(
        r"The generated \texttt{lstm} module, run on the same numbers (one step, batch of one), returns "
        rf"$h_t = {h:.4f}$ and $c_t = {c:.4f}$, the values of the table, to $10^{{-12}}$.",
        forward < 1e-12,
        code='t4["example_agrees"](d)[0] < 1e-12',
    )
    weights = [k for k in EXAMPLE if k.startswith("W_")]
    doc.table(
        r"Parameter gradients of the example, $\delta W = \delta a\,u$, from the generated backward; each "
        r"bias gradient is its $\delta a$.",
        ["weight", "gradient", "weight", "gradient"],
        [[f"${p.name(a)}$", f"${generated[a]:.4f}$", f"${p.name(b)}$", f"${generated[b]:.4f}$"]
         for a, b in zip(weights[0::2], weights[1::2])],
        cols="lrlr",
        label="tab:example:grad",
    )  # fmt: skip
    doc.check(
        r"Its backward pass ($\partial L/\partial x_t$, $\partial L/\partial h_{t-1}$, "
        r"$\partial L/\partial c_{t-1}$ and all sixteen parameter gradients) agrees with the printed "
        r"equations to $10^{-12}$.",
        backward < 1e-12,
        code='t4["example_agrees"](d)[1] < 1e-12',
    )


def _residual(doc: Document, ct: CellTex) -> None:
    d = ct.d
    c_expr = d.spec.node("c").expr
    f, i, g, c_prev = (d.sym[k] for k in ("f", "i", "g", "c_prev"))
    doc.section("The cell state as a residual connection")
    doc.check(
        r"Write the cell-state update as the identity plus a learned correction:",
        sp.expand(c_expr - (c_prev + ((f - 1) * c_prev + i * g))) == 0,
        math=r"c_t = c_{t-1} + \underbrace{(f_t - 1)\odot c_{t-1} + i_t \odot g_t}"
        r"_{F_t(c_{t-1}, h_{t-1}, x_t)}, \qquad \frac{\partial c_t}{\partial c_{t-1}} = "
        r"I + \operatorname{diag}(f_t - 1) = "
        r"\operatorname{diag}(f_t).",
        code='sp.expand(d.spec.node("c").expr - (s["c_prev"] + (s["f"] - 1) * s["c_prev"] '
        '+ s["i"] * s["g"])) == 0',
    )
    doc.text(
        r"This is the shape of a residual block, $x_{l+1} = x_l + F(x_l)$, whose identity branch lets "
        r"gradient reach early layers of very deep feed-forward networks " + doc.cite("he2016") + r". The "
        r"LSTM has it along time, with one difference: its identity branch is itself gated. With "
        r"$f_t = 1$ (the 1997 cell, " + doc.cite("hochreiter1997") + r") it is exactly the identity; "
        r"with $f_t < 1$ the network can close it. An identity highway carrying the state across the "
        r"recurrence, with learned modules perturbing it rather than overwriting it, is the pattern the "
        r"LSTM introduced nearly two decades before residual networks; reading the LSTM as its temporal "
        r"special case explains both why it trains and why the idea keeps returning."
    )
    doc.intuition(
        r"A residual network adds a correction to its input instead of replacing it; the LSTM adds a "
        r"correction to its memory instead of rewriting it. In both, the gradient has a route back that "
        r"no weight matrix multiplies."
    )
