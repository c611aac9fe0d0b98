"""Figures of the derivation documents, computed with the generated NumPy modules (`symlstm.load`).

`gradient_norms` measures ||dL/ds_{T-k}|| against the gap k for L = <w, h_T>: the state at T-k comes from
the generated `forward`, and the gradient from the generated `backward` run over the last k steps with
the loss gradient given at the final state (`dstate`), so the value is exactly the gradient leaving the
state slot at T-k (`dstate0`). `memory_path_norms` is the part of the LSTM's cell-state gradient that
travels along the cell state alone, prod_s f_s * dL/dc_{T-1}, with the forget gates f_s of the same
forward run. `FIGURES` maps each figure file a document includes to the function that draws it;
`draw(folder, names)` writes the named ones (matplotlib, Agg backend) and is called by
`symlstm latex --pdf`; the figures are build output, not committed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .load import load

__all__ = [
    "FIGURES",
    "Curve",
    "can_draw",
    "draw",
    "draw_all",
    "gradient_norms",
    "lstm_curves",
    "memory_path_curves",
    "memory_path_norms",
    "orthogonal",
    "rnn_curves",
]

HIDDEN, INPUT, BATCH, GAPS = 32, 8, 8, 60


@dataclass
class Curve:
    """Mean over the batch of a gradient norm for k = 1..len(norms) (norms[k-1])."""

    label: str
    norms: np.ndarray
    bound: np.ndarray | None = None  # the bound (gamma sigma_max)^k ||w||, where one is drawn
    dashed: bool = False  # drawn dashed, in the colour of the curve before it


def _states(mod, params: dict[str, np.ndarray], x: np.ndarray) -> list:
    """The states after steps 0..T of the generated forward, one step at a time (None before step 1)."""
    states, state = [None], None
    for t in range(x.shape[0]):
        _, state, _ = mod.forward(params, x[t : t + 1], state)
        states.append(state)
    return states


def gradient_norms(cell: str, params: dict[str, np.ndarray], x: np.ndarray, w: np.ndarray, *,
                   state: int = 0) -> np.ndarray:  # fmt: skip
    """||dL/ds_{T-k}|| for k = 1..T, L = sum over the batch of <w, h_T>; mean over the batch.

    Args:
        cell: a built-in cell name (its generated module is used).
        params: the cell's parameters (`init_params` layout).
        x: (T, B, I) inputs.
        w: (B, H) the loss weights on the final hidden state.
        state: which state's gradient (0: h, 1: c for the LSTM).
    """
    mod = load(cell)
    T = x.shape[0]
    states = _states(mod, params, x)  # one forward per prefix would be quadratic
    out = np.empty(T)
    for k in range(1, T + 1):
        start = T - k
        y, final, cache = mod.forward(params, x[start:], states[start])
        dstate = tuple(w if j == 0 else np.zeros_like(s) for j, s in enumerate(final))
        _, _, dstate0 = mod.backward(params, cache, np.zeros_like(y), dstate)
        out[k - 1] = float(np.mean(np.linalg.norm(dstate0[state], axis=1)))
    return out


def orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((GAPS, BATCH, INPUT))
    w = rng.standard_normal((BATCH, HIDDEN)) / np.sqrt(HIDDEN)
    return x, w, rng


def rnn_curves(radii: tuple[float, ...] = (0.9, 1.0, 1.1)) -> list[Curve]:
    """Vanilla tanh RNN with W_hh = rho * Q (Q orthogonal), so every singular value of W_hh is rho.

    The input drive is tiny (W_ih ~ 1e-5), so the states stay near 0 where tanh' = 1 and the bound
    (gamma sigma_max)^k ||w|| with gamma = 1 is nearly attained: the curves show the bound itself.
    """
    curves = []
    for rho in radii:
        x, w, rng = _problem()
        mod = load("rnn")
        params = mod.init_params(INPUT, HIDDEN, seed=0)
        params["W_hh"] = rho * orthogonal(rng, HIDDEN)
        params["W_ih"] = 1e-5 * rng.standard_normal((HIDDEN, INPUT))  # tiny drive: near-linear regime
        params["b_ih"][:] = 0.0
        params["b_hh"][:] = 0.0
        bound = rho ** np.arange(1, GAPS + 1) * float(np.mean(np.linalg.norm(w, axis=1)))
        label = rf"RNN, $\sigma_{{\max}}(W_{{hh}}) = {rho:g}$"
        curves.append(Curve(label, gradient_norms("rnn", params, x, w), bound))
    return curves


def lstm_curves(biases: tuple[float, ...] = (0.0, 1.0, 3.0)) -> list[Curve]:
    """LSTM with PyTorch's default initialization and the forget-gate bias b_if set (b_hf = 0)."""
    curves = []
    for bias in biases:
        x, w, _ = _problem()
        params = load("lstm").initialize(INPUT, HIDDEN, forget_bias=bias, seed=0)
        curves.append(Curve(f"LSTM, forget bias {bias:g}", gradient_norms("lstm", params, x, w)))
    return curves


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def forget_gates(params: dict[str, np.ndarray], x: np.ndarray, states: list) -> np.ndarray:
    """(T, B, H) forget gates f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf) of a forward run.

    `states` are the generated forward's states after each step (`_states`); the blocks of W_if, W_hf,
    b_if, b_hf are found through the module's BLOCKS, not by position.
    """
    blocks = load("lstm").BLOCKS

    def block(array: str, member: str) -> np.ndarray:
        k, H = blocks[array].index(member), params["W_hh"].shape[1]
        return params[array][k * H : (k + 1) * H]

    W_if, W_hf = block("W_ih", "W_if"), block("W_hh", "W_hf")
    b_f = block("b_ih", "b_if") + block("b_hh", "b_hf")
    out = []
    for t in range(x.shape[0]):
        h_prev = states[t][0] if states[t] is not None else np.zeros((x.shape[1], W_hf.shape[1]))
        out.append(_sigmoid(x[t] @ W_if.T + h_prev @ W_hf.T + b_f))
    return np.stack(out)


def memory_path_norms(params: dict[str, np.ndarray], x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """||prod_{s=T-k+1}^{T-1} f_s * dL/dc_{T-1}|| for k = 1..T: the gradient along the cell state alone.

    dL/dc_{T-1} = f_T * dL/dc_T exactly (c_{T-1} enters step T only through c_T = f_T c_{T-1} + ...), so
    the value at k = 1 is the generated backward's; each further step back multiplies by one more f.
    """
    mod = load("lstm")
    T = x.shape[0]
    states = _states(mod, params, x)
    f = forget_gates(params, x, states)  # f[t] is f_{t+1} in 1-based time
    y, _, cache = mod.forward(params, x[T - 1 :], states[T - 1])
    _, _, dstate0 = mod.backward(params, cache, np.zeros_like(y), (w, np.zeros_like(w)))
    grad = dstate0[1]
    out = np.empty(T)
    for k in range(1, T + 1):
        out[k - 1] = float(np.mean(np.linalg.norm(grad, axis=1)))
        grad = grad * f[T - 1 - k] if k < T else grad  # one more forget gate: f_{T-k}
    return out


def memory_path_curves(biases: tuple[float, ...] = (1.0, 3.0)) -> list[Curve]:
    """Per forget-gate bias: the full ||dL/dc_{T-k}|| (generated backward) and the memory path alone."""
    curves = []
    for bias in biases:
        x, w, _ = _problem()
        params = load("lstm").initialize(INPUT, HIDDEN, forget_bias=bias, seed=0)
        curves.append(Curve(f"bias {bias:g}: full gradient", gradient_norms("lstm", params, x, w, state=1)))
        curves.append(Curve(f"bias {bias:g}: cell-state path alone", memory_path_norms(params, x, w),
                            dashed=True))  # fmt: skip
    return curves


def _plot(curves: list[Curve], path: Path, title: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    color = None
    for c in curves:
        k = np.arange(1, len(c.norms) + 1)
        style = {"linestyle": "--", "color": color} if c.dashed else {}
        (line,) = ax.semilogy(k, c.norms, label=c.label, **style)
        color = line.get_color()
        if c.bound is not None:  # open markers on top of the line: visible even where they coincide
            every = slice(4, None, 5)
            ax.semilogy(k[every], c.bound[every], linestyle="none", marker="o", markersize=4,
                        markerfacecolor="none", markeredgecolor="black", markeredgewidth=0.8,
                        zorder=3, label=r"bound $\rho^k\|w\|$" if c is curves[0] else None)  # fmt: skip
    ax.set_xlabel("gap $k$ (steps)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)


_H_NORM, _C_NORM = r"$\|\partial L / \partial h_{T-k}\|_2$", r"$\|\partial L / \partial c_{T-k}\|_2$"

# Every figure a document may include: file name -> function drawing it at the given path.
FIGURES: dict[str, Callable[[Path], None]] = {
    "rnn_gradient_norms.pdf": lambda p: _plot(
        rnn_curves(), p, "Vanilla RNN: vanishing or exploding", _H_NORM
    ),
    "lstm_gradient_norms.pdf": lambda p: _plot(lstm_curves(), p, "LSTM: three forget-gate biases", _H_NORM),
    "lstm_memory_path.pdf": lambda p: _plot(
        memory_path_curves(), p, "LSTM: the cell-state path against all paths", _C_NORM
    ),
}


def can_draw() -> bool:
    """True when matplotlib is installed (the `docs` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def draw(folder: Path | str, names: Iterable[str]) -> list[Path]:
    """Write the named figures (keys of `FIGURES`) into `folder` as PDF; returns their paths."""
    folder = Path(folder)
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(sorted(FIGURES))}")
    paths = []
    for name in names:
        FIGURES[name](folder / name)
        paths.append(folder / name)
    return paths


def draw_all(folder: Path | str) -> list[Path]:
    """Write every figure of `FIGURES` into `folder`."""
    return draw(folder, sorted(FIGURES))
