"""A user-defined cell in a few lines: declared, derived, proved, generated and checked.

The cell is a one-gate RNN whose candidate uses an activation the package does not know,
2/pi * atan(a): SymPy differentiates it (d/da = 2 / (pi (1 + a^2))), and nothing else is needed.

    python derivations/custom_cell.py --out /tmp/generated   # runs `symlstm generate atan_gate`

writes /tmp/generated/numpy/atan_gate.py, a module with the same contract as the built-in ones.
`symlstm.load(build())` gives the same module in memory, without writing anything.
"""

from __future__ import annotations

import argparse

import sympy as sp

from symlstm import Cell, CellSpec, sigmoid


def build() -> CellSpec:
    """The cell: u = sigmoid(W_xu x + W_hu h_prev + b_u), h = u h_prev + (1 - u) 2/pi atan(a_c)."""
    cell = Cell("atan_gate", title="One-gate RNN, arctan candidate", source="derivations/custom_cell.py")
    x, h_prev = cell.input("x"), cell.state("h")
    a_u = cell.linear("a_u", {"W_xu": x, "W_hu": h_prev}, biases=["b_u"])
    a_c = cell.linear("a_c", {"W_xc": x, "W_hc": h_prev}, biases=["b_c"])
    u = cell.elementwise("u", sigmoid(a_u))
    cand = cell.elementwise("cand", 2 / sp.pi * sp.atan(a_c))  # not a package activation: SymPy's own
    h = cell.elementwise("h", u * h_prev + (1 - u) * cand)
    cell.update(h=h)
    cell.fuse("W_ih", ["W_xu", "W_xc"])  # optional: one GEMM for both input weights
    cell.fuse("W_hh", ["W_hu", "W_hc"])
    return cell.build()


def main(argv: list[str] | None = None) -> int:
    """Register the cell for this process only and run `symlstm generate atan_gate --out OUT`."""
    from symlstm.cells import CELLS, register
    from symlstm.cli import main as symlstm_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (a generated/ tree)")
    args = parser.parse_args(argv)
    if "atan_gate" not in CELLS:
        register(build)
    return symlstm_main(["generate", "atan_gate", "--out", args.out])


if __name__ == "__main__":
    raise SystemExit(main())
