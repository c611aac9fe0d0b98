"""What the documents say about each built-in cell beyond its equations: an introduction, the role of
each vector, and the references its equations come from. Data, keyed by cell name; a user cell has
none and its document uses the title, description and source given with the cell instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["NOTES", "CellNotes"]

_LSTM_ROLES = {
    "i": "input gate", "f": "forget gate", "g": "candidate", "z": "block input (candidate)",
    "o": "output gate", "c": "cell state (memory)", "h": "hidden state",
}  # fmt: skip
_GRU_ROLES = {"r": "reset gate", "z": "update gate", "n": "candidate", "h": "hidden state"}


@dataclass(frozen=True)
class CellNotes:
    intro: str  # TeX
    cites: tuple[str, ...]  # keys of bibliography.REFERENCES
    roles: dict[str, str] = field(default_factory=dict)  # node name -> its role in words


def _greff(change: str, extra: str = "", roles: dict | None = None) -> CellNotes:
    return CellNotes(
        r"A variant of the peephole LSTM of Greff et al.\ (the document \texttt{peephole}) with one "
        rf"change: {change}{extra} Greff et al.\ compared the eight variants on three tasks.",
        ("greff2017",),
        roles if roles is not None else _LSTM_ROLES,
    )


NOTES: dict[str, CellNotes] = {
    "rnn": CellNotes(
        r"The vanilla (Elman) recurrent cell: the new hidden state is a squashed affine function of the "
        r"input and the previous hidden state. Its recurrent Jacobian contains $W_{hh}$ at every step, which "
        r"is why its gradients over long gaps vanish or explode. Equations and parameter layout follow "
        r"\texttt{torch.nn.RNN}, which keeps two bias vectors.",
        ("elman1990", "paszke2019", "bengio1994", "pascanu2013"),
        {"a": "pre-activation", "h": "hidden state"},
    ),
    "rnn_relu": CellNotes(
        r"The vanilla recurrent cell with a rectifier instead of $\tanh$, as "
        r"\texttt{torch.nn.RNN(nonlinearity=\textquotesingle relu\textquotesingle)}; its slope is $1$ where "
        r"the pre-activation is positive "
        r"and $0$ elsewhere (at $0$ itself it is taken as $0$, as PyTorch does).",
        ("elman1990", "paszke2019"),
        {"a": "pre-activation", "h": "hidden state"},
    ),
    "lstm": CellNotes(
        r"The long short-term memory cell with a forget gate, without peepholes, in the form and parameter "
        r"layout of \texttt{torch.nn.LSTM} (gate order $i, f, g, o$; two bias vectors per gate). The cell "
        r"state $c_t$ is the memory: its own Jacobian is $\operatorname{diag}(f_t)$, no weight matrix.",
        ("hochreiter1997", "gers2000", "paszke2019"),
        _LSTM_ROLES,
    ),
    "lstmp": CellNotes(
        r"The LSTM with a recurrent projection layer (LSTMP), in the form and layout of "
        r"\texttt{torch.nn.LSTM} with \texttt{proj\_size}: the cell output $m_t = o_t \odot \tanh(c_t)$ "
        r"of size $H$ is projected to $h_t = W_{hr} m_t$ of size $P$, which is both the output and the "
        r"recurrent input of the gates. The recurrent weights shrink from $4H \times H$ to $4H \times P$; "
        r"the memory $c_t$ and its carry $\operatorname{diag}(f_t)$ are those of the LSTM.",
        ("sak2014", "gers2000", "paszke2019"),
        {
            **_LSTM_ROLES,
            "m": "cell output (before the projection)",
            "r": "projection",
            "h": "projected hidden state",
        },
    ),
    "lstm_nofg": CellNotes(
        r"The LSTM as first proposed, without a forget gate: the memory is a constant error carousel, "
        r"$c_t = c_{t-1} + i_t \odot g_t$, so $\partial c_t/\partial c_{t-1} = I$. The squashing functions "
        r"are the paper's scaled sigmoids, $g = 4\sigma(\cdot) - 2$ and "
        r"$h_t = o_t \odot (2\sigma(c_t) - 1)$, one bias per gate. The 1997 paper trained this "
        r"architecture with a truncated gradient (only the carousel carried error back in time); the "
        r"backward pass below is the exact gradient of the same function, as later computed with full "
        r"BPTT \cite{graves2005}, so it is not the 1997 learning rule.",
        ("hochreiter1997", "graves2005"),
        _LSTM_ROLES,
    ),
    "additive": CellNotes(
        r"The first repair of the vanilla cell: a memory $c_t$ changed only by adding an increment "
        r"$\delta_t$ computed from the input and the previous hidden state. Its Jacobian is the identity, "
        r"so along it nothing vanishes, and nothing is ever forgotten either.",
        ("hochreiter1997",),
        {"a": "pre-activation of the increment", "delta": "increment", "c": "memory", "h": "hidden state"},
    ),
    "peephole": CellNotes(
        r"The LSTM that Greff et al.\ call vanilla: forget gate and peephole connections, vectors "
        r"$p_i, p_f, p_o$ through which the gates see the cell state ($i$ and $f$ the previous one, $o$ the "
        r"new one), one bias per gate. Peepholes were introduced by Gers and Schmidhuber for timing tasks.",
        ("greff2017", "gers2000time", "gers2002"),
        _LSTM_ROLES,
    ),
    "greff_nig": _greff(r"no input gate, $i_t = 1$: every candidate is written in full."),
    "greff_nfg": _greff(
        r"no forget gate, $f_t = 1$: the cell state is the 1997 carousel again, with "
        r"the peepholes of the input and output gates kept.",
        "",
    ),
    "greff_nog": _greff(r"no output gate, $o_t = 1$: $h_t = \tanh(c_t)$ exposes the whole memory."),
    "greff_niaf": _greff(r"no input activation, the block input $z_t = a_{z,t}$ is linear."),
    "greff_noaf": _greff(
        r"no output activation, $h_t = c_t \odot o_t$.",
        r" Greff et al.\ found this variant, and the one without forget gate, clearly worse.",
    ),
    "greff_np": _greff(
        r"no peepholes.",
        r" This is the LSTM of Keras (one bias per gate), and "
        r"\texttt{torch.nn.LSTM} up to its second bias vector.",
    ),
    "greff_cifg": _greff(
        r"coupled input and forget gates, $f_t = 1 - i_t$: what is written displaces "
        r"what is kept, as in the GRU.",
        "",
    ),
    "greff_fgr": _greff(
        r"full gate recurrence: each gate also reads the previous step's three gate "
        r"activations through nine $H \times H$ matrices $R_{\langle\text{from}\rangle"
        r"\langle\text{to}\rangle}$, so the gates are states too.",
        r" These equations are written from memory of the paper and were not checked "
        r"against its text.",
    ),
    "gru": CellNotes(
        r"The gated recurrent unit in the form and parameter layout of \texttt{torch.nn.GRU}: gate order "
        r"$r, z, n$, the reset gate applied after the recurrent matrix product (to "
        r"$W_{hn} h_{t-1} + b_{hn}$), and $h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$, so $z_t \to 1$ "
        r"keeps the old state. Cho et al.\ "
        r"apply the reset before the product (the document \texttt{gru\_cho}); the two are different "
        r"functions. Chung et al.\ write the update with the roles of $z$ and $1-z$ swapped.",
        ("cho2014", "chung2014", "paszke2019"),
        {**_GRU_ROLES, "u_n": "recurrent part of the candidate's pre-activation"},
    ),
    "gru_cho": CellNotes(
        r"The gated recurrent unit as Cho et al.\ wrote it: the reset gate multiplies $h_{t-1}$ before the "
        r"recurrent matrix product, $n_t = \tanh(W_{in} x_t + W_{hn}(r_t \odot h_{t-1}) + b_n)$, one bias "
        r"per gate; Keras computes it with \texttt{GRU(reset\_after=False)}. PyTorch's GRU is a different "
        r"function (the document \texttt{gru}).",
        ("cho2014",),
        {**_GRU_ROLES, "rh": "reset previous state"},
    ),
    "mgu": CellNotes(
        r"The minimal gated unit: one gate $f_t$ does the work of the GRU's two, resetting the previous "
        r"state inside the candidate and interpolating, $h_t = (1 - f_t) \odot h_{t-1} + f_t \odot n_t$, so "
        r"here $f_t \to 1$ overwrites the state.",
        ("zhou2016",),
        {"f": "the one gate", "fh": "gated previous state", "n": "candidate", "h": "hidden state"},
    ),
    "janet": CellNotes(
        r"The forget-gate-only LSTM (JANET): the memory is the hidden state, kept by $\sigma(s_t)$ and "
        r"written with weight $1 - \sigma(s_t - \beta)$, $\beta = 1$, so keeping and writing share one "
        r"pre-activation, shifted.",
        ("westhuizen2018",),
        {"s": "forget pre-activation", "f": "forget gate", "g": "candidate", "h": "hidden state (memory)"},
    ),
}
