"""The registry of built-in cells. One entry here drives generation, documents and every test.

Each builder declares its cell once, with the PyTorch parameter names and gate order in the fused layout:
`W_ih` stacks the per-gate input weights (rows), `W_hh` the recurrent ones, and PyTorch's two bias
vectors are kept, as in `torch.nn`.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .activations import relu, sigmoid, tanh
from .spec import Cell, CellSpec, SpecError

__all__ = ["CELLS", "cell", "register"]

CELLS: dict[str, Callable[[], CellSpec]] = {}


def register(builder: Callable[[], CellSpec]) -> Callable[[], CellSpec]:
    """Add a cell builder to the registry under the name of the cell it builds."""
    CELLS[builder().name] = builder
    return builder


def cell(name: str) -> CellSpec:
    """Return the built-in cell `name`; an unknown name raises `SpecError` listing the known ones."""
    if not isinstance(name, str) or name not in CELLS:
        raise SpecError(f"unknown cell {name!r}; known cells: {', '.join(sorted(CELLS))}")
    return CELLS[name]()


def _torch(module: str, mode: str | None = None, **kwargs: object) -> dict[str, object]:
    names = {"weight_ih_l0": "W_ih", "weight_hh_l0": "W_hh", "bias_ih_l0": "b_ih", "bias_hh_l0": "b_hh"}
    return {"module": module, "mode": mode, "kwargs": kwargs, "names": names}


def _keras(layer: str, kernel, recurrent, bias, **config: object) -> dict[str, object]:
    """Keras layout: `kernel`/`recurrent_kernel` as one row of weight blocks, `bias` as rows of blocks,
    each block a tuple of the parameters it sums (see symlstm.backends.numpy.interop)."""
    one = lambda names: tuple((n,) if isinstance(n, str) else tuple(n) for n in names)  # noqa: E731
    rows = (one(bias),) if not isinstance(bias[0], list) else tuple(one(r) for r in bias)
    weights = (("kernel", (one(kernel),)), ("recurrent_kernel", (one(recurrent),)), ("bias", rows))
    return {"layer": layer, "config": config, "weights": weights}


def _fuse(cell: Cell, gates: str, *, one_bias: bool = False) -> None:
    """Fuse per-gate W_i<k>, W_h<k> into W_ih, W_hh (gate order `gates`), and the biases: b_<k> into b
    when `one_bias`, else PyTorch's pair b_i<k>, b_h<k> into b_ih, b_hh."""
    cell.fuse("W_ih", [f"W_i{k}" for k in gates])
    cell.fuse("W_hh", [f"W_h{k}" for k in gates])
    if one_bias:
        cell.fuse("b", [f"b_{k}" for k in gates])
    else:
        cell.fuse("b_ih", [f"b_i{k}" for k in gates])
        cell.fuse("b_hh", [f"b_h{k}" for k in gates])


def _elman(name: str, nonlinearity: str, activation: Callable, *, doc: str, source: str) -> CellSpec:
    """The vanilla RNN h_t = activation(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), as torch.nn.RNN."""
    cell = Cell(name, title=f"Vanilla (Elman) RNN, {nonlinearity}", doc=doc, source=source)
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W_ih": x, "W_hh": h_prev}, biases=["b_ih", "b_hh"])
    h = cell.elementwise("h", activation(a))
    cell.update(h=h)
    cell.torch = _torch("RNN", f"RNN_{nonlinearity.upper()}", nonlinearity=nonlinearity)
    cell.keras = _keras("SimpleRNN", ["W_ih"], ["W_hh"], [("b_ih", "b_hh")], activation=nonlinearity)
    return cell.build()


@register
def rnn() -> CellSpec:
    return _elman(
        "rnn",
        "tanh",
        tanh,
        doc="h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).",
        source="Elman 1990; torch.nn.RNN(nonlinearity='tanh')",
    )


def _lstm_gates(cell: Cell, x: sp.Symbol, h_prev: sp.Symbol) -> tuple[sp.Symbol, ...]:
    """torch.nn.LSTM's gates i, f, g, o (sigma or tanh of W_i<k> x + W_h<k> h_prev + b_i<k> + b_h<k>),
    the four linear nodes declared first."""
    pre = {}
    for gate in "ifgo":
        pre[gate] = cell.linear(
            f"a_{gate}", {f"W_i{gate}": x, f"W_h{gate}": h_prev}, biases=[f"b_i{gate}", f"b_h{gate}"]
        )
    return tuple(cell.elementwise(k, (tanh if k == "g" else sigmoid)(pre[k])) for k in "ifgo")


@register
def lstm() -> CellSpec:
    cell = Cell(
        "lstm",
        title="LSTM with forget gate",
        doc="Gers et al. 2000 forget-gate LSTM without peepholes, as torch.nn.LSTM (gate order i, f, g, o).",
        source="Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000; torch.nn.LSTM",
    )
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    i, f, g, o = _lstm_gates(cell, x, h_prev)
    c = cell.elementwise("c", f * c_prev + i * g)
    h = cell.elementwise("h", o * tanh(c))
    cell.update(h=h, c=c)
    _fuse(cell, "ifgo")
    cell.torch = _torch("LSTM", "LSTM")
    cell.keras = _keras(
        "LSTM",  # Keras gate order i, f, c, o is PyTorch's i, f, g, o
        [f"W_i{k}" for k in "ifgo"],
        [f"W_h{k}" for k in "ifgo"],
        [(f"b_i{k}", f"b_h{k}") for k in "ifgo"],
    )
    cell.gates = {"keep": ("b_if", "b_hf"), "write": ("b_ii", "b_hi")}
    return cell.build()


@register
def lstmp() -> CellSpec:
    cell = Cell(
        "lstmp",
        title="LSTM with a recurrent projection (LSTMP)",
        doc="Sak et al. 2014 LSTM with a recurrent projection layer, as torch.nn.LSTM(proj_size=P): the "
        "cell output o*tanh(c) (size H) is projected to h = W_hr (o*tanh(c)) of size P, which is the "
        "output and the recurrent input of the gates (H P recurrent weights per gate instead of H H).",
        source="Sak, Senior & Beaufays 2014; torch.nn.LSTM (proj_size)",
    )
    cell.size("P", "proj_size")
    x, h_prev, c_prev = cell.input("x"), cell.state("h", size="P"), cell.state("c")
    i, f, g, o = _lstm_gates(cell, x, h_prev)
    c = cell.elementwise("c", f * c_prev + i * g)
    m = cell.elementwise("m", o * tanh(c))
    r = cell.linear("r", {"W_hr": m}, size="P")
    h = cell.elementwise("h", r)
    cell.update(h=h, c=c)
    _fuse(cell, "ifgo")
    cell.torch = _torch("LSTM", "LSTM")
    cell.torch["names"]["weight_hr_l0"] = "W_hr"
    cell.torch["sizes"] = {"proj_size": "proj_size"}  # our size keyword -> torch.nn.LSTM's
    cell.gates = {"keep": ("b_if", "b_hf"), "write": ("b_ii", "b_hi")}
    return cell.build()


@register
def gru() -> CellSpec:
    cell = Cell(
        "gru",
        title="GRU, reset after the recurrent matmul",
        doc="Cho et al. 2014 gating with the reset gate applied to W_hn h_{t-1} + b_hn, as torch.nn.GRU "
        "(gate order r, z, n); h_t = (1 - z_t) n_t + z_t h_{t-1}.",
        source="Cho et al. 2014; torch.nn.GRU; Keras GRU(reset_after=True)",
    )
    x, h_prev = cell.input("x"), cell.state("h")
    a_r = cell.linear("a_r", {"W_ir": x, "W_hr": h_prev}, biases=["b_ir", "b_hr"])
    a_z = cell.linear("a_z", {"W_iz": x, "W_hz": h_prev}, biases=["b_iz", "b_hz"])
    a_n = cell.linear("a_n", {"W_in": x}, biases=["b_in"])
    u_n = cell.linear("u_n", {"W_hn": h_prev}, biases=["b_hn"])
    r = cell.elementwise("r", sigmoid(a_r))
    z = cell.elementwise("z", sigmoid(a_z))
    n = cell.elementwise("n", tanh(a_n + r * u_n))
    h = cell.elementwise("h", (1 - z) * n + z * h_prev)
    cell.update(h=h)
    _fuse(cell, "rzn")
    cell.torch = _torch("GRU", "GRU")
    cell.keras = _keras(  # Keras gate order z, r, h: the first two of PyTorch's r, z, n swapped
        "GRU",
        ["W_iz", "W_ir", "W_in"],
        ["W_hz", "W_hr", "W_hn"],
        [["b_iz", "b_ir", "b_in"], ["b_hz", "b_hr", "b_hn"]],
        reset_after=True,
    )
    cell.gates = {"keep": ("b_iz", "b_hz")}
    return cell.build()


@register
def rnn_relu() -> CellSpec:
    return _elman(
        "rnn_relu",
        "relu",
        relu,
        doc="h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); relu'(0) = 0 as in PyTorch.",
        source="Elman 1990; torch.nn.RNN(nonlinearity='relu'); Keras SimpleRNN(activation='relu')",
    )


@register
def lstm_nofg() -> CellSpec:
    cell = Cell(
        "lstm_nofg",
        title="LSTM without forget gate (Hochreiter & Schmidhuber 1997)",
        doc="The 1997 architecture: a constant error carousel c_t = c_{t-1} + i_t g_t, so dc_t/dc_{t-1} = I, "
        "with the paper's squashing functions g(a) = 4 sigmoid(a) - 2 and h(c) = 2 sigmoid(c) - 1, one "
        "bias per gate (gate order i, g, o). The paper trained it with a truncated gradient (only the "
        "carousel carried error back in time); the code here is the exact BPTT gradient of the same "
        "architecture, so it differs from the 1997 learning rule.",
        source="Hochreiter & Schmidhuber 1997, Neural Computation 9(8) (reference/cells.md 2.1)",
    )
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    pre = {k: cell.linear(f"a_{k}", {f"W_i{k}": x, f"W_h{k}": h_prev}, biases=[f"b_{k}"]) for k in "igo"}
    i = cell.elementwise("i", sigmoid(pre["i"]))
    g = cell.elementwise("g", 4 * sigmoid(pre["g"]) - 2)
    o = cell.elementwise("o", sigmoid(pre["o"]))
    c = cell.elementwise("c", c_prev + i * g)
    h = cell.elementwise("h", o * (2 * sigmoid(c) - 1))
    cell.update(h=h, c=c)
    _fuse(cell, "igo", one_bias=True)
    cell.gates = {"write": ("b_i",)}
    return cell.build()


@register
def additive() -> CellSpec:
    cell = Cell(
        "additive",
        title="Additive memory only",
        doc="The notes' first fix of the vanilla RNN: a memory updated by addition, c_t = c_{t-1} + Delta_t "
        "with Delta_t = tanh(W_ih x_t + W_hh h_{t-1} + b) and h_t = tanh(c_t); dc_t/dc_{t-1} = I exactly, "
        "and nothing ever forgets.",
        source="the notes, 'Vanilla RNNs limitations' (c_t = c_{t-1} + Delta_t)",
    )
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    a = cell.linear("a", {"W_ih": x, "W_hh": h_prev}, biases=["b"])
    delta = cell.elementwise("delta", tanh(a))
    c = cell.elementwise("c", c_prev + delta)
    h = cell.elementwise("h", tanh(c))
    cell.update(h=h, c=c)
    return cell.build()


# -- Greff et al.'s peephole LSTM and its eight variants ----------------------------------------------

GREFF_VARIANTS = ("nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")


def _greff(variant: str | None) -> CellSpec:
    """Greff et al.'s vanilla LSTM with peepholes (variant None) or one of its eight variants."""
    v = variant or ""
    name = f"greff_{v}" if v else "peephole"
    title = {
        "": "Peephole LSTM (Greff et al.'s vanilla LSTM)",
        "nig": "Greff NIG: no input gate",
        "nfg": "Greff NFG: no forget gate",
        "nog": "Greff NOG: no output gate",
        "niaf": "Greff NIAF: no input activation function",
        "noaf": "Greff NOAF: no output activation function",
        "np": "Greff NP: no peepholes",
        "cifg": "Greff CIFG: coupled input and forget gate",
        "fgr": "Greff FGR: full gate recurrence",
    }[v]
    doc = {
        "": "z = tanh(a_z); i, f = sigmoid(a + p * c_{t-1}); c_t = z i + c_{t-1} f; "
        "o = sigmoid(a_o + p_o c_t) peeks at the NEW cell state; h_t = tanh(c_t) o. One bias per gate, "
        "gate order i, f, z, o.",
        "nig": "The vanilla peephole LSTM with i_t = 1 (no input gate, no p_i).",
        "nfg": "The vanilla peephole LSTM with f_t = 1 (the 1997 carousel, no p_f): dc_t/dc_{t-1} = I.",
        "nog": "The vanilla peephole LSTM with o_t = 1 (no output gate, no p_o): h_t = tanh(c_t).",
        "niaf": "The vanilla peephole LSTM with a linear block input, z_t = a_z.",
        "noaf": "The vanilla peephole LSTM with a linear block output, h_t = c_t o_t.",
        "np": "The vanilla LSTM without peepholes, with one bias per gate.",
        "cifg": "The vanilla peephole LSTM with f_t = 1 - i_t (no forget-gate weights, no p_f).",
        "fgr": "The vanilla peephole LSTM whose gates also read the previous step's gate activations "
        "i_{t-1}, f_{t-1}, o_{t-1} through nine H x H matrices R_<from><to>; the state carries them.",
    }[v]
    source = "Greff et al., LSTM: A Search Space Odyssey, IEEE TNNLS 2017 (reference/cells.md 1.1, 1.3)"
    if v == "fgr":
        source += "; the FGR equations are from memory of the paper, unverified"
    cell = Cell(name, title=title, doc=doc, source=source)
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    gates = "i" * (v != "nig") + "f" * (v not in ("nfg", "cifg")) + "z" + "o" * (v != "nog")
    gate_prev = {}
    if v == "fgr":
        gate_prev = {k: cell.state(k) for k in "ifo"}
    peep = v != "np"
    pre = {}
    for k in gates:
        terms = {f"W_i{k}": x, f"W_h{k}": h_prev}
        if k != "z":
            terms.update({f"R_{j}{k}": s for j, s in gate_prev.items()})
        pre[k] = cell.linear(f"a_{k}", terms, biases=[f"b_{k}"])
    one = sp.S.One
    z = cell.elementwise("z", pre["z"] if v == "niaf" else tanh(pre["z"]))
    i = (
        cell.elementwise("i", sigmoid(pre["i"] + cell.param("p_i") * c_prev if peep else pre["i"]))
        if "i" in pre
        else one
    )
    if v == "cifg":
        f = 1 - i
    elif "f" in pre:
        f = cell.elementwise("f", sigmoid(pre["f"] + cell.param("p_f") * c_prev if peep else pre["f"]))
    else:
        f = one
    c = cell.elementwise("c", z * i + c_prev * f)
    if "o" in pre:
        o = cell.elementwise("o", sigmoid(pre["o"] + cell.param("p_o") * c if peep else pre["o"]))
    else:
        o = one
    h = cell.elementwise("h", (c if v == "noaf" else tanh(c)) * o)
    updates = {"h": h, "c": c}
    if v == "fgr":
        updates.update(i=i, f=f, o=o)
    cell.update(**updates)
    _fuse(cell, gates, one_bias=True)
    for j in gate_prev:
        cell.fuse(f"R_{j}", [f"R_{j}{k}" for k in gates if k != "z"])
    peepholes = [f"p_{k}" for k in gates if k != "z" and peep]
    if peepholes:
        cell.fuse("p", peepholes)
    roles = {}
    if "f" in pre:
        roles["keep"] = ("b_f",)
    if "i" in pre:
        roles["write"] = ("b_i",)
    cell.gates = roles
    if v == "np":  # no peepholes, one bias per gate: Keras's LSTM (gate order i, f, c, o)
        cell.keras = _keras(
            "LSTM", [f"W_i{k}" for k in gates], [f"W_h{k}" for k in gates], [f"b_{k}" for k in gates]
        )
    return cell.build()


def _register_greff(variant: str | None) -> None:
    def builder() -> CellSpec:
        return _greff(variant)

    builder.__name__ = builder.__qualname__ = f"greff_{variant}" if variant else "peephole"
    register(builder)


for _variant in (None, *GREFF_VARIANTS):
    _register_greff(_variant)


# -- GRU in Cho's convention, MGU and JANET -------------------------------------------------------


@register
def gru_cho() -> CellSpec:
    cell = Cell(
        "gru_cho",
        title="GRU, reset before the recurrent matmul (Cho et al. 2014)",
        doc="n_t = tanh(W_in x_t + W_hn (r_t h_{t-1}) + b_n): the reset gate multiplies h_{t-1} before "
        "the matmul, a different function from torch.nn.GRU's; h_t = (1 - z_t) n_t + z_t h_{t-1}. One bias "
        "per gate (gate order r, z, n), as Keras GRU(reset_after=False).",
        source="Cho et al. 2014 (arXiv:1406.1078v3); Keras GRU(reset_after=False) (reference/cells.md 3, 5)",
    )
    x, h_prev = cell.input("x"), cell.state("h")
    a_r = cell.linear("a_r", {"W_ir": x, "W_hr": h_prev}, biases=["b_r"])
    a_z = cell.linear("a_z", {"W_iz": x, "W_hz": h_prev}, biases=["b_z"])
    r = cell.elementwise("r", sigmoid(a_r))
    z = cell.elementwise("z", sigmoid(a_z))
    rh = cell.elementwise("rh", r * h_prev)
    a_n = cell.linear("a_n", {"W_in": x, "W_hn": rh}, biases=["b_n"])
    n = cell.elementwise("n", tanh(a_n))
    h = cell.elementwise("h", (1 - z) * n + z * h_prev)
    cell.update(h=h)
    cell.fuse("W_ih", ["W_ir", "W_iz", "W_in"])
    cell.fuse("W_hh", ["W_hr", "W_hz"])
    cell.fuse("b", ["b_r", "b_z", "b_n"])
    cell.keras = _keras(
        "GRU", ["W_iz", "W_ir", "W_in"], ["W_hz", "W_hr", "W_hn"], ["b_z", "b_r", "b_n"], reset_after=False
    )
    cell.gates = {"keep": ("b_z",)}
    return cell.build()


@register
def mgu() -> CellSpec:
    cell = Cell(
        "mgu",
        title="Minimal Gated Unit",
        doc="One gate: f_t = sigmoid(W_if x_t + W_hf h_{t-1} + b_f), "
        "n_t = tanh(W_in x_t + W_hn (f_t h_{t-1}) + b_n), h_t = (1 - f_t) h_{t-1} + f_t n_t "
        "(the paper's form, where f_t -> 1 overwrites).",
        source="Zhou, Wu, Zhang & Zhou 2016 (arXiv:1603.09420) (reference/cells.md 7.1)",
    )
    x, h_prev = cell.input("x"), cell.state("h")
    a_f = cell.linear("a_f", {"W_if": x, "W_hf": h_prev}, biases=["b_f"])
    f = cell.elementwise("f", sigmoid(a_f))
    fh = cell.elementwise("fh", f * h_prev)
    a_n = cell.linear("a_n", {"W_in": x, "W_hn": fh}, biases=["b_n"])
    n = cell.elementwise("n", tanh(a_n))
    h = cell.elementwise("h", (1 - f) * h_prev + f * n)
    cell.update(h=h)
    cell.fuse("W_ih", ["W_if", "W_in"])
    cell.fuse("b", ["b_f", "b_n"])
    cell.gates = {"write": ("b_f",)}
    return cell.build()


@register
def janet() -> CellSpec:
    cell = Cell(
        "janet",
        title="JANET, the forget-gate-only LSTM",
        doc="s_t = W_if x_t + W_hf h_{t-1} + b_f, g_t = tanh(W_ig x_t + W_hg h_{t-1} + b_g), "
        "h_t = c_t = sigmoid(s_t) h_{t-1} + (1 - sigmoid(s_t - beta)) g_t with beta = 1; "
        "the state is c_t = h_t.",
        source="van der Westhuizen & Lasenby 2018 (arXiv:1804.04849) (reference/cells.md 7.2)",
    )
    x, h_prev = cell.input("x"), cell.state("h")
    s = cell.linear("s", {"W_if": x, "W_hf": h_prev}, biases=["b_f"])
    a_g = cell.linear("a_g", {"W_ig": x, "W_hg": h_prev}, biases=["b_g"])
    f = cell.elementwise("f", sigmoid(s))
    g = cell.elementwise("g", tanh(a_g))
    h = cell.elementwise("h", f * h_prev + (1 - sigmoid(s - 1)) * g)
    cell.update(h=h)
    _fuse(cell, "fg", one_bias=True)
    cell.gates = {"keep": ("b_f",)}
    return cell.build()
