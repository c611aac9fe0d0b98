"""Where the generated code changes path with the sizes: its chunks, as data of the plan.

The optimised module computes two things in chunks of steps, each chunk of at most `limit` numbers
and at least one step (`steps = max(1, min(T, limit // per_step))`):

* the input projection of a fused GEMM with several blocks: `PROJECTION_ROWS` rows of T * B, one GEMM
  per chunk into a scratch that stays in cache (a GEMM with one block is one GEMM for all steps);
* backward's coefficients of the adjoints (`symlstm.plan.backward`): `COEFFICIENT_NUMBERS` numbers
  of T * B * H per coefficient and chunk.

`thresholds(plan)` lists those the plan's code has, with the sizes a step adds to the chunk, so that the
checks can place sizes on both sides of each and at its boundary (`symlstm.testing.configurations`);
the NumPy emitter prints the same numbers from the plan. A new blocking belongs here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import CellPlan

__all__ = ["COEFFICIENT_NUMBERS", "PROJECTION_ROWS", "Threshold", "thresholds"]

PROJECTION_ROWS = 256  # rows (steps * B) of one chunk of an input projection
COEFFICIENT_NUMBERS = 4096  # numbers (steps * B * H) of one coefficient in one chunk


@dataclass(frozen=True)
class Threshold:
    """A chunking of the generated code: a chunk holds `max(1, min(T, limit // per_step))` steps."""

    name: str
    limit: int  # the most numbers one chunk holds (unless one step alone holds more)
    per_step: tuple[str, ...]  # the sizes whose product is what one step adds: ("B",) or ("B", "H")


def thresholds(plan: CellPlan) -> tuple[Threshold, ...]:
    """The chunkings `plan`'s generated code has, in the order it runs them."""
    out = []
    if any(g.kind == "input" and g.blocks > 1 for g in plan.gemms.values()):
        out.append(Threshold("input projection chunk", plan.projection_rows, ("B",)))
    if plan.step.coefficients:
        out.append(Threshold("coefficient chunk", plan.coefficient_numbers, ("B", "H")))
    return tuple(out)
