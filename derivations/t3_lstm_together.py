"""Topic 3: the complete LSTM forward pass, mini-batch form, dimensions, parameters, initialization and
the fused layout."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symlstm import cell, derive, load
from symlstm.backends.latex import CellTex, Document
from symlstm.backends.latex.checks import torch_parameter_count
from symlstm.backends.latex.documents import cell_diagram, dimension_table, verification_section
from symlstm.engine import H, I

TITLE = "Putting the LSTM together"

PRELUDE = """\
import numpy as np
from symlstm import cell, derive, load
from symlstm.backends.latex.celltex import CellTex
from symlstm.backends.latex.checks import torch_parameter_count
from symlstm.engine import H, I
d = derive("lstm"); spec = d.spec; mod = load("lstm")
stored, minimal = CellTex(d).count_formula()"""


def _block(params: dict[str, np.ndarray], blocks: dict, array: str, member: str) -> np.ndarray:
    k, size = blocks[array].index(member), params["W_hh"].shape[1]
    return params[array][k * size : (k + 1) * size]


def build(doc: Document) -> None:
    d = derive("lstm")
    ct = CellTex(d, prefix="lstm.")
    spec = d.spec
    mod = load("lstm")
    doc.abstract = (
        r"The complete LSTM step, its mini-batch form, a table of every symbol with its size (generated "
        r"from the cell specification), the parameter count, the usual initialization conventions and the "
        r"fused-weight layout with its gate order, as the generated NumPy module stores it and as "
        r"\texttt{torch.nn.LSTM} does " + doc.cite("paszke2019") + "."
    )
    doc.section("Forward pass")
    doc.text(
        r"One step for one sample, numbered as in the cell document \texttt{lstm} (the tags "
        r"\texttt{lstm.1}, \dots); Figure~\ref{fig:lstm:cell} draws the same equations from the cell's graph:"
    )
    doc.equations(ct.forward_rows())
    cell_diagram(doc, ct, what=r"The LSTM step, drawn from its graph. ")
    doc.section("Mini-batch form")
    doc.text(
        r"Stack the $B$ samples of a mini-batch as rows, written in bold: $\mathbf{x}_t \in "
        r"\mathbb{R}^{B\times I}$, $\mathbf{h}_{t-1}, \mathbf{c}_{t-1} \in \mathbb{R}^{B\times H}$ ($H$ is "
        r"always the hidden size). The four pre-activations of all samples come out of two matrix products "
        r"with the fused weights (Section~\ref{sec:layout}), one of which does not depend on the recurrence "
        r"and is computed for all time steps at once:"
    )
    doc.display(
        r"\mathbf{a}_t = \underbrace{\mathbf{x}_t W_{ih}^{\top} + \mathbf{1} b_{ih}^{\top}}_{\text{all } t "
        r"\text{ in one product}} + \mathbf{h}_{t-1} W_{hh}^{\top} + \mathbf{1} b_{hh}^{\top} \in "
        r"\mathbb{R}^{B \times 4H}, \qquad \mathbf{a}_t = \bigl[\mathbf{a}_{i,t} \;\; \mathbf{a}_{f,t} \;\; "
        r"\mathbf{a}_{g,t} \;\; \mathbf{a}_{o,t}\bigr]."
    )
    doc.text(
        r"The gate and state equations are elementwise, so they hold unchanged for the $B\times H$ arrays. "
        r"Table~\ref{tab:dims} lists every symbol with its size for one sample and for a mini-batch."
    )
    dimension_table(doc, [ct], "Every symbol of the LSTM step, generated from the cell specification.")
    doc.section("Parameter count")
    stored, minimal = ct.count_formula()
    doc.claim(
        r"As stored (PyTorch keeps two bias vectors per gate, $b_{i\ast}$ and $b_{h\ast}$):",
        stored,
        4 * H * (I + H + 2),
        lhs_tex=r"\#\theta_{\text{PyTorch}}",
        code="stored == 4*H*(I + H + 2)",
    )
    doc.claim(
        r"The two biases of a gate are added in the same equation and always receive the same gradient "
        r"(the gradient equations of the cell document), so one is redundant; with one bias per gate:",
        minimal,
        4 * H * (I + H + 1),
        lhs_tex=r"\#\theta_{\text{one bias}}",
        code="minimal == 4*H*(I + H + 1)",
    )
    rows = []
    for name in ("rnn", "lstm", "gru"):
        c = CellTex(derive(name))
        st, mi = c.count_formula()
        rows.append([rf"\texttt{{{name}}}", f"${sp.latex(st)}$", f"${sp.latex(mi)}$",
                     str(cell(name).param_count(10, 20))])  # fmt: skip
    doc.table(
        r"Parameter counts of the built-in cells PyTorch also has; the last column at $I = 10$, $H = 20$.",
        ["cell", "stored (two biases)", "one bias per equation", "$I=10, H=20$"],
        rows,
        label="tab:counts",
    )
    at = int(stored.subs({I: 10, H: 20}))
    torch_count = torch_parameter_count("LSTM", 10, 20)  # None without torch
    reference = torch_count if torch_count is not None else spec.param_count(10, 20)
    doc.check(
        rf"At $I = 10$, $H = 20$ the formula gives ${at}$, the number of stored entries of the cell "
        r"specification and of \texttt{torch.nn.LSTM(10, 20)}. Where this document is built with torch "
        r"installed, the check counts \texttt{sum(p.numel() for p in torch.nn.LSTM(10, 20).parameters())}; "
        r"without torch it can only compare the formula with the specification.",
        at == spec.param_count(10, 20) == reference,
        code="int(stored.subs({I: 10, H: 20})) == spec.param_count(10, 20) "
        '== torch_parameter_count("LSTM", 10, 20)',
    )
    _initialization(doc, mod)
    doc.section("Fused-weight layout and gate order", "sec:layout")
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
        code='{g.name: g.members for g in spec.groups} == mod.BLOCKS and mod.BLOCKS["W_ih"] == '
        '("W_ii", "W_if", "W_ig", "W_io")',
    )
    doc.text(
        r"Other libraries stack differently: Keras also uses $i, f, c, o$ (the same order), TensorFlow's "
        r"older \texttt{LSTMCell} $i, j, f, o$, and the batched LSTMs of CS231n and of Karpathy $i, f, o, "
        r"g$. Converting weights between them permutes these four row blocks; the columns (the input "
        r"layout) stay as they are. Topic 4 works one step of this cell through by hand, forward and "
        r"backward."
    )
    verification_section(doc, [ct], PRELUDE)


def _initialization(doc: Document, mod) -> None:
    doc.section("Initialization conventions")
    params = mod.init_params(10, 20, seed=0)
    bound = 1 / np.sqrt(20)
    doc.check(
        r"\textbf{Default (PyTorch).} Every parameter, biases included, is drawn uniformly from "
        r"$\bigl(-1/\sqrt{H}, 1/\sqrt{H}\bigr)$; the generated \texttt{init\_params} does the same.",
        all(float(np.max(np.abs(v))) <= bound for v in params.values()),
        code="all(np.max(np.abs(v)) <= 1 / np.sqrt(20) for v in mod.init_params(10, 20, seed=0).values())",
    )
    biased = mod.initialize(10, 20, forget_bias=1.0, seed=0)
    doc.check(
        r"\textbf{Forget-gate bias $1$.} Starting with $f_t \approx \sigma(1) \approx 0.73$ instead of "
        r"$\sigma(0) = 0.5$ lets gradient flow along the cell state from the first update. Gers et al.\ "
        + doc.cite("gers2000")
        + r" recommended positive forget biases; Jozefowicz et al.\ "
        + doc.cite("jozefowicz2015")
        + r" found that with a bias of $1$ the LSTM matched the best of the architectures they searched, "
        r"the GRU included. With two bias vectors one must choose which to set, since only "
        r"their sum matters; \texttt{initialize(..., forget\_bias=1)} sets $b_{if} = 1$ and $b_{hf} = 0$:",
        bool(np.all(_block(biased, mod.BLOCKS, "b_ih", "b_if") == 1.0))
        and bool(np.all(_block(biased, mod.BLOCKS, "b_hh", "b_hf") == 0.0)),
        code="all((mod.initialize(10, 20, forget_bias=1.0, seed=0)[k][20:40] == v).all() "
        'for k, v in (("b_ih", 1), ("b_hh", 0)))',
    )
    ortho = mod.initialize(10, 20, scheme="orthogonal", seed=0)
    blocks = [_block(ortho, mod.BLOCKS, "W_hh", m) for m in mod.BLOCKS["W_hh"]]
    doc.check(
        r"\textbf{Orthogonal recurrent weights.} Initializing each $H\times H$ block of $W_{hh}$ as an "
        r"orthogonal matrix puts all its singular values at $1$, the knife-edge of topic 1, which at least "
        r"does not start the hidden-state path vanishing or exploding; "
        r'\texttt{initialize(..., scheme="orthogonal")} does it block by block:',
        all(np.allclose(q.T @ q, np.eye(20), atol=1e-12) for q in blocks),
        code="all(np.allclose(q.T @ q, np.eye(20), atol=1e-12) for q in np.split(mod.initialize(10, 20, "
        'scheme="orthogonal", seed=0)["W_hh"], 4))',
    )
    doc.text(
        r"\textbf{Chrono initialization} " + doc.cite("tallec2018") + r" draws the forget bias as "
        r"$\log \mathcal{U}[1, T_{\max} - 1]$ and the input-gate bias as its negative, so that the "
        r"forget gates span the time scales up to $T_{\max}$ (\texttt{initialize(..., chrono=T)}). Topic 4 "
        r"measures the effect of forget biases $0$, $1$ and $3$ on the gradient."
    )
