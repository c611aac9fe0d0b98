"""Train the generated NumPy LSTM on a delay task with a small Adam: y_t = x_{t - DELAY}.

    python examples/train_numpy.py [--steps N] [--cell lstm]

Each step draws a batch of random sequences, runs `forward`, a linear readout and the squared error,
then `backward` with the readout's gradient as dy, and updates every parameter with Adam. Prints the
loss as it falls ("step k loss v"), then "loss first -> last".
"""

from __future__ import annotations

import argparse

import numpy as np

import symlstm

DELAY, T, B, H = 3, 20, 32, 24


class Adam:
    """Adam (Kingma & Ba 2015) over a dict of arrays, updated in place."""

    def __init__(self, params: dict[str, np.ndarray], lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1**self.t)
            v_hat = self.v[k] / (1 - self.beta2**self.t)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cell", default="lstm")
    args = parser.parse_args(argv)
    cell = symlstm.load(args.cell)
    rng = np.random.default_rng(0)
    params = cell.init_params(1, H, seed=0)
    params["W_out"] = rng.uniform(-0.2, 0.2, size=(1, H))  # the readout y = W_out h + b_out
    params["b_out"] = np.zeros(1)
    adam = Adam(params)
    losses = []
    for step in range(args.steps):
        x = rng.standard_normal((T, B, 1))
        target = np.zeros_like(x)
        target[DELAY:] = x[:-DELAY]
        cell_params = {k: params[k] for k in cell.BLOCKS}
        h, _, cache = cell.forward(cell_params, x)
        pred = h @ params["W_out"].T + params["b_out"]
        err = (pred - target)[DELAY:]
        loss = float(np.mean(err**2))
        d_pred = np.zeros_like(pred)
        d_pred[DELAY:] = 2 * err / err.size
        grads, _, _ = cell.backward(cell_params, cache, d_pred @ params["W_out"])
        grads["W_out"] = np.einsum("tbo,tbh->oh", d_pred, h)
        grads["b_out"] = d_pred.sum(axis=(0, 1))
        adam.step(grads)
        losses.append(loss)
        if step % max(args.steps // 10, 1) == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss:.5f}", flush=True)
    print(f"loss {losses[0]:.5f} -> {losses[-1]:.5f}")
    return losses


if __name__ == "__main__":
    main()
