"""Topic 3: the complete LSTM forward pass, mini-batch form, dimensions, parameters and layout."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symlstm import cell, derive, load
from symlstm.backends.latex import CellTex, Document
from symlstm.engine import H, I

TITLE = "Putting the LSTM together"


def build(doc: Document) -> None:
    d = derive("lstm")
    ct = CellTex(d, prefix="lstm.")
    spec = d.spec
    doc.abstract = (
        r"The complete LSTM step, its mini-batch form, a table of every symbol with its size (generated "
        r"from the cell specification), the parameter count, the usual initialization conventions and the "
        r"fused-weight layout with its gate order, as stored by \texttt{generated/numpy/lstm.py} and "
        r"\texttt{torch.nn.LSTM}."
    )
    doc.section("Forward pass")
    doc.text(
        r"One step for one sample; numbers as in \texttt{lstm.tex} and in the generated code's comments:"
    )
    doc.equations(ct.forward_rows())
    doc.section("Mini-batch form")
    doc.text(
        r"Stack the $B$ samples of a mini-batch as rows: $X_t \in \mathbb{R}^{B\times I}$, "
        r"$H_{t-1}, C_{t-1} \in \mathbb{R}^{B\times H}$. The four pre-activations of all samples come out "
        r"of two matrix products with the fused weights (next section), one of which does not depend on "
        r"the recurrence and is computed for all time steps at once:"
    )
    doc.display(
        r"A_t = \underbrace{X_t W_{ih}^{\top} + \mathbf{1} b_{ih}^{\top}}_{\text{all } t \text{ in one GEMM}}"
        r" + H_{t-1} W_{hh}^{\top} + \mathbf{1} b_{hh}^{\top} \in \mathbb{R}^{B \times 4H}, \qquad "
        r"A_t = \bigl[A_{i,t} \;\; A_{f,t} \;\; A_{g,t} \;\; A_{o,t}\bigr]."
    )
    doc.text(
        r"The gate and state equations are elementwise, so they hold unchanged for the $B\times H$ arrays."
    )
    doc.section("Dimensions")
    doc.table(
        "Every symbol of the LSTM step, generated from the cell specification.",
        ["symbol", "what it is", "one sample", "mini-batch", "stored in"],
        ct.dimension_rows(),
        label="tab:dims",
    )
    doc.section("Parameter count")
    stored, minimal = ct.count_formula()
    doc.claim(
        r"As stored (PyTorch keeps two bias vectors per gate, $b_{i\ast}$ and $b_{h\ast}$):",
        stored,
        4 * H * (I + H + 2),
        lhs_tex=r"\#\theta_{\text{PyTorch}}",
        code="sum of the sizes of the spec's parameters == 4H(I + H + 2)",
    )
    doc.claim(
        r"The two biases of a gate are added in the same equation and always receive the same gradient "
        r"(\texttt{lstm.tex}, the gradient equations), so one is redundant; with one bias per gate:",
        minimal,
        4 * H * (I + H + 1),
        lhs_tex=r"\#\theta_{\text{one bias}}",
        code="stored count - H for each extra bias in a linear equation == 4H(I + H + 1)",
    )
    rows = []
    for name in ("rnn", "lstm", "gru"):
        c = CellTex(derive(name))
        st, mi = c.count_formula()
        rows.append([rf"\texttt{{{name}}}", f"${sp.latex(st)}$", f"${sp.latex(mi)}$",
                     str(cell(name).param_count(10, 20))])  # fmt: skip
    doc.table(
        r"Parameter counts of the built-in cells; the last column at $I = 10$, $H = 20$ (PyTorch's count).",
        ["cell", "stored (two biases)", "one bias per equation", "$I=10, H=20$"],
        rows,
        label="tab:counts",
    )
    doc.check(
        r"At $I = 10$, $H = 20$ the formula gives $2560$, the count of \texttt{torch.nn.LSTM(10, 20)}.",
        int(stored.subs({I: 10, H: 20})) == spec.param_count(10, 20) == 2560,
        code='4H(I + H + 2) at (10, 20) == cell("lstm").param_count(10, 20) == 2560',
    )
    doc.section("Initialization conventions")
    mod = load("lstm")
    params = mod.init_params(10, 20, seed=0)
    bound = 1 / np.sqrt(20)
    doc.check(
        r"\textbf{Default (PyTorch).} Every parameter, biases included, is drawn uniformly from "
        r"$\bigl(-1/\sqrt{H}, 1/\sqrt{H}\bigr)$; the generated \texttt{init\_params} does the same.",
        all(float(np.max(np.abs(v))) <= bound for v in params.values()),
        code="max |init_params(10, 20)| <= 1/sqrt(20) for every array",
    )
    doc.text(
        r"\textbf{Forget-gate bias $1$.} Starting with $f_t \approx \sigma(1) \approx 0.73$ instead of "
        r"$\sigma(0) = 0.5$ lets gradient flow along the cell state from the first update; Gers et al.\ "
        r"recommended positive forget biases, and some libraries add $1$ (Keras stores it, TensorFlow's "
        r"\texttt{forget\_bias} adds it at run time). With two bias vectors one must choose which to set; "
        r"only their sum matters. Topic 4 measures the effect of biases $0$, $1$ and $3$. "
        r"\textbf{Orthogonal recurrent weights.} Initializing each $H\times H$ block of $W_{hh}$ as an "
        r"orthogonal matrix puts all its singular values at $1$, the knife-edge of topic 1, which at least "
        r"does not start the hidden-state path vanishing or exploding."
    )
    doc.section("Fused-weight layout and gate order")
    doc.text(
        r"The per-gate matrices are stored stacked along the first axis in PyTorch's "
        r"$(\text{out}, \text{in})$ layout, so that one matrix product computes all gates:"
    )
    doc.table(
        "Stored arrays of the LSTM, generated from the cell specification.",
        ["array", "shape", "blocks"],
        ct.layout_rows(),
        label="tab:layout",
    )
    doc.check(
        r"The gate order is $i, f, g, o$, as in \texttt{torch.nn.LSTM}, and the generated module stores "
        r"exactly these blocks.",
        {g.name: g.members for g in spec.groups} == mod.BLOCKS
        and spec.group_of("W_ii").members == ("W_ii", "W_if", "W_ig", "W_io"),
        code='load("lstm").BLOCKS == spec groups; W_ih blocks == (W_ii, W_if, W_ig, W_io)',
    )
    doc.text(
        r"Other libraries stack differently: Keras also uses $i, f, c, o$ (same order), while CS231n and "
        r"Karpathy's batched LSTM use $i, f, o, g$. Converting weights between them means permuting these "
        r"four row blocks; the columns (the input layout) stay as they are."
    )
