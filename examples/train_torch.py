"""Train the generated torch module (the derived backward as a torch.autograd.Function) on a delay
task with torch.optim.Adam: y_t = x_{t - DELAY}.

    python examples/train_torch.py [--steps N] [--cell peephole]

`symlstm.load(cell, backend="torch").Layer` is used as torch.nn.LSTM is (any registered cell, or a
`CellSpec` of your own); a torch.nn.Linear reads its output. Prints the loss as it falls
("step k loss v"), then "loss first -> last".
"""

from __future__ import annotations

import argparse

import torch

import symlstm

DELAY, T, B, H = 3, 20, 32, 24


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cell", default="peephole")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rnn = symlstm.load(args.cell, backend="torch").Layer(1, H)
    readout = torch.nn.Linear(H, 1)
    optimizer = torch.optim.Adam([*rnn.parameters(), *readout.parameters()], lr=1e-2)
    losses = []
    for step in range(args.steps):
        x = torch.randn(T, B, 1)
        target = torch.zeros_like(x)
        target[DELAY:] = x[:-DELAY]
        output, _ = rnn(x)
        loss = torch.mean((readout(output) - target)[DELAY:] ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % max(args.steps // 10, 1) == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.5f}", flush=True)
    print(f"loss {losses[0]:.5f} -> {losses[-1]:.5f}")
    return losses


if __name__ == "__main__":
    main()
