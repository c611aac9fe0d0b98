"""The generated torch Layer against torch.nn.LSTM/GRU/RNN on the CPU: forward + backward of one
sequence, the same weights, the same thread count, medians over repeats, and their ratio.

    python bench/bench_torch.py [--quick] [--threads N] [--cells lstm gru rnn] [--size T B I H]

A ratio above 1 means the generated module is slower than torch.nn's (whose CPU kernels fuse the gates
in C++); both run the whole sequence with one autograd node per layer.
"""

from __future__ import annotations

import argparse
import statistics
import time

import symlstm


def median_seconds(step, repeats: int) -> float:
    step()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(module, x) -> None:
    out, _ = module(x)
    out.sum().backward()


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--size", nargs=4, type=int, metavar=("T", "B", "I", "H"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    T, B, I, H = args.size or ((10, 4, 8, 16) if args.quick else (100, 32, 64, 128))
    repeats = 3 if args.quick else 15
    print(f"T={T} B={B} I={I} H={H}, float32, {args.threads} thread(s), median of {repeats}")
    print("| cell | torch.nn (ms) | generated (ms) | ratio |")
    print("|---|---|---|---|")
    for name in args.cells:
        spec = symlstm.cell(name)
        torch.manual_seed(0)
        net = getattr(torch.nn, spec.torch["module"])(I, H, **spec.torch["kwargs"])
        ours = symlstm.load(name, backend="torch").Layer(I, H)
        ours.load_state_dict(net.state_dict())
        x = torch.randn(T, B, I)

        theirs_s, ours_s = (median_seconds(lambda m=m, x=x: train_step(m, x), repeats) for m in (net, ours))
        print(f"| {name} | {theirs_s * 1e3:.2f} | {ours_s * 1e3:.2f} | {ours_s / theirs_s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
