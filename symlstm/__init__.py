"""symlstm: symbolic derivation, NumPy code generation and gradient verification for recurrent cells.

Declare a cell once (`Cell`), or take a built-in one (`cell("lstm")`); `derive` gives its equations,
step Jacobians, backward (BPTT) and tangent programs, proved by `symlstm.proof`; `load` gives the
generated NumPy forward/backward module; `symlstm.testing` checks gradients numerically.
"""

from .activations import relu, sigmoid, tanh
from .build.generate import generate
from .build.load import load
from .cells import CELLS, cell
from .engine import Derivation, Diag, derive
from .spec import Cell, CellSpec, SpecError

__all__ = [
    "CELLS",
    "Cell",
    "CellSpec",
    "Derivation",
    "Diag",
    "SpecError",
    "cell",
    "derive",
    "generate",
    "load",
    "relu",
    "sigmoid",
    "tanh",
]

__version__ = "0.1.0"
