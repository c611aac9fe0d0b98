"""Line-by-line profile of a generated cell's forward and backward, the slowest lines first.

The first thing to look at before changing the code generator: which lines of
``generated/numpy/<cell>.py`` the time goes to at a given size. Needs line_profiler
(``pip install line_profiler``); it adds about a microsecond per executed line, so at the small size
the per-step lines look slower than they are: compare lines with each other, not with the benchmark.

    python bench/profile_cell.py lstm --size medium --dtype float64
    python bench/profile_cell.py gru --size small --calls 200 --top 15
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cells import SIZES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell")
    parser.add_argument("--size", choices=sorted(SIZES), default="medium")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--calls", type=int, default=10, help="forward + backward calls profiled")
    parser.add_argument("--top", type=int, default=25, help="lines shown")
    args = parser.parse_args(argv)
    try:
        from line_profiler import LineProfiler
    except ImportError:
        print("profile_cell.py needs line_profiler: pip install line_profiler", file=sys.stderr)
        return 2
    import numpy as np

    import symlstm

    module = symlstm.load(args.cell)
    B, T, I, H = SIZES[args.size]
    if module.SAME_SIZE:
        I = H
    rng = np.random.default_rng(0)
    params = module.init_params(I, H, seed=0, dtype=args.dtype)
    x = rng.standard_normal((T, B, I)).astype(args.dtype)
    dy = rng.standard_normal((T, B, H)).astype(args.dtype)
    for _ in range(3):  # warm up: BLAS threads, allocator
        module.backward(params, module.forward(params, x)[2], dy)
    profiler = LineProfiler(module.forward, module.backward)
    profiler.enable()
    for _ in range(args.calls):
        module.backward(params, module.forward(params, x)[2], dy)
    profiler.disable()
    text = io.StringIO()
    profiler.print_stats(stream=text, output_unit=1e-6)
    rows = []
    for line in text.getvalue().splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(.*)$", line)
        if m:
            rows.append(
                (float(m.group(3)) / args.calls, int(m.group(2)) // args.calls, m.group(1), m.group(6))
            )
    total = sum(r[0] for r in rows)
    print(
        f"{args.cell} {args.size} (B, T, I, H) = {(B, T, I, H)} {args.dtype}: {total / 1e3:.2f} ms per call"
    )
    print(f"{'us/call':>9} {'share':>6} {'hits':>5} {'line':>5}  code")
    for us, hits, number, code in sorted(rows, reverse=True)[: args.top]:
        print(f"{us:9.1f} {us / total:6.1%} {hits:5d} {number:>5}  {code.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
