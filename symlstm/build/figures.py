"""Figures of the derivation documents, computed with the generated NumPy modules (`symlstm.load`).

`gradient_norms` measures ||dL/dh_{T-k}|| against the gap k for L = <w, h_T>: the state at T-k comes from
the generated `forward`, and the gradient from the generated `backward` run over the last k steps with
the loss gradient given at the final state (`dstate`), so the value is exactly the gradient leaving the
state slot at T-k (`dstate0`). `draw_all(folder)` writes the PDFs the documents include (matplotlib,
Agg backend); it is called by `symlstm latex --pdf`, and the figures are build output, not committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .load import load

__all__ = ["Curve", "draw_all", "gradient_norms", "lstm_curves", "rnn_curves"]

HIDDEN, INPUT, BATCH, GAPS = 32, 8, 8, 60


@dataclass
class Curve:
    """Mean over the batch of ||dL/dh_{T-k}||_2 for k = 1..len(norms) (norms[k-1])."""

    label: str
    norms: np.ndarray
    bound: np.ndarray | None = None  # the bound (gamma sigma_max)^k ||w||, where one is drawn


def gradient_norms(cell: str, params: dict[str, np.ndarray], x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """||dL/dh_{T-k}|| for k = 1..T, L = sum over the batch of <w, h_T>; mean over the batch.

    Args:
        cell: a built-in cell name (its generated module is used).
        params: the cell's parameters (`init_params` layout).
        x: (T, B, I) inputs.
        w: (B, H) the loss weights on the final hidden state.
    """
    mod = load(cell)
    T = x.shape[0]
    # States after each step 0..T: one forward per prefix would be quadratic; step one at a time instead.
    states = [None]
    state = None
    for t in range(T):
        _, state, _ = mod.forward(params, x[t : t + 1], state)
        states.append(state)
    out = np.empty(T)
    for k in range(1, T + 1):
        start = T - k
        y, final, cache = mod.forward(params, x[start:], states[start])
        dstate = tuple(w if j == 0 else np.zeros_like(s) for j, s in enumerate(final))
        _, _, dstate0 = mod.backward(params, cache, np.zeros_like(y), dstate)
        out[k - 1] = float(np.mean(np.linalg.norm(dstate0[0], axis=1)))
    return out


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
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
        params["W_hh"] = rho * _orthogonal(rng, HIDDEN)
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


def _plot(curves: list[Curve], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for c in curves:
        k = np.arange(1, len(c.norms) + 1)
        (line,) = ax.semilogy(k, c.norms, label=c.label)
        if c.bound is not None:
            ax.semilogy(k, c.bound, linestyle=":", color=line.get_color(), linewidth=1)
    ax.set_xlabel("gap $k$ (steps)")
    ax.set_ylabel(r"$\|\partial L / \partial h_{T-k}\|_2$")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)


def draw_all(folder: Path | str) -> list[Path]:
    """Write the documents' figures into `folder` as PDF; returns their paths."""
    folder = Path(folder)
    rnn_path, lstm_path = folder / "rnn_gradient_norms.pdf", folder / "lstm_gradient_norms.pdf"
    _plot(rnn_curves(), rnn_path, "Vanilla RNN: vanishing or exploding")
    _plot(lstm_curves(), lstm_path, "LSTM: the cell-state highway")
    return [rnn_path, lstm_path]
