"""The registry of built-in cells. One entry here drives generation, documents and every test.

Each builder declares its cell once, with the PyTorch parameter names and gate order in the fused layout:
`W_ih` stacks the per-gate input weights (rows), `W_hh` the recurrent ones, and PyTorch's two bias
vectors are kept, as in `torch.nn`.
"""

from __future__ import annotations

from collections.abc import Callable

from .activations import sigmoid, tanh
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


@register
def rnn() -> CellSpec:
    cell = Cell(
        "rnn",
        title="Vanilla (Elman) RNN, tanh",
        doc="h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).",
        source="Elman 1990; torch.nn.RNN(nonlinearity='tanh')",
    )
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W_ih": x, "W_hh": h_prev}, biases=["b_ih", "b_hh"])
    h = cell.elementwise("h", tanh(a))
    cell.update(h=h)
    cell.torch = _torch("RNN", "RNN_TANH", nonlinearity="tanh")
    return cell.build()


@register
def lstm() -> CellSpec:
    cell = Cell(
        "lstm",
        title="LSTM with forget gate",
        doc="Gers et al. 2000 forget-gate LSTM without peepholes, as torch.nn.LSTM (gate order i, f, g, o).",
        source="Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000; torch.nn.LSTM",
    )
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    pre = {}
    for gate in "ifgo":
        pre[gate] = cell.linear(
            f"a_{gate}", {f"W_i{gate}": x, f"W_h{gate}": h_prev}, biases=[f"b_i{gate}", f"b_h{gate}"]
        )
    i = cell.elementwise("i", sigmoid(pre["i"]))
    f = cell.elementwise("f", sigmoid(pre["f"]))
    g = cell.elementwise("g", tanh(pre["g"]))
    o = cell.elementwise("o", sigmoid(pre["o"]))
    c = cell.elementwise("c", f * c_prev + i * g)
    h = cell.elementwise("h", o * tanh(c))
    cell.update(h=h, c=c)
    cell.fuse("W_ih", [f"W_i{k}" for k in "ifgo"])
    cell.fuse("W_hh", [f"W_h{k}" for k in "ifgo"])
    cell.fuse("b_ih", [f"b_i{k}" for k in "ifgo"])
    cell.fuse("b_hh", [f"b_h{k}" for k in "ifgo"])
    cell.torch = _torch("LSTM", "LSTM")
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
    cell.fuse("W_ih", ["W_ir", "W_iz", "W_in"])
    cell.fuse("W_hh", ["W_hr", "W_hz", "W_hn"])
    cell.fuse("b_ih", ["b_ir", "b_iz", "b_in"])
    cell.fuse("b_hh", ["b_hr", "b_hz", "b_hn"])
    cell.torch = _torch("GRU", "GRU")
    return cell.build()
