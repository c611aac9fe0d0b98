"""The plan: every decision about how a derived cell is computed, as immutable data, made once.

`plan_cell(derivation) -> CellPlan` decides the fused GEMMs and where each pre-activation lives
(`layout`), where each forward value of a step is kept and what backward needs cached (`storage`),
the folded and factored backward step with its coefficients, runs and common subexpressions
(`backward`), and the chunks of steps the code computes at once (`blocking`). The plan holds no code
text: a backend turns it into code (`symlstm.backends.numpy`), and a test can inspect every decision
here. Symbols in it are mathematical names (`coef_3`, `d_a_i`),
never pieces of code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from ..engine import Derivation
from ..spec import LinearNode
from .backward import (
    AdjointRun,
    BackwardStep,
    StepCse,
    backward_step,
    coefficient,
    incoming_aliases,
    param_gradient,
    step_cse,
)
from .blocking import COEFFICIENT_NUMBERS, PROJECTION_ROWS, Threshold, thresholds
from .layout import Gemm, adjoint_order, adjoint_runs, gemms
from .storage import GateSlot, backward_reads, cached_values, gate_slots, prescaled_gates

__all__ = [
    "AdjointRun",
    "BackwardStep",
    "CellPlan",
    "GateSlot",
    "Gemm",
    "StepCse",
    "Threshold",
    "coefficient",
    "plan_cell",
    "thresholds",
]


@dataclass(frozen=True)
class CellPlan:
    """How a cell is computed; see the package docstring and the modules named below."""

    derivation: Derivation
    gemms: Mapping[str, Gemm]  # fused weight groups by stored name (layout)
    home: Mapping[str, tuple[str, int]]  # linear node -> (GEMM, block) holding its pre-activation
    adjoint_order: tuple[str, ...]  # linear nodes in the adjoint buffer's block order
    adjoint_runs: Mapping[str, tuple[tuple[int, int, int], ...]]  # GEMM -> its runs in that buffer
    backward_reads: frozenset[str]  # forward values the backward expressions read (storage)
    gates: Mapping[str, GateSlot]  # nodes written over their pre-activation
    prescaled: frozenset[str]  # sigmoid gates computed from rows prescaled by 0.5
    cached: tuple[str, ...]  # nodes and intermediates kept (T, B, H) for backward
    step: BackwardStep  # the folded and factored backward step (backward)
    aliases: frozenset[str]  # adjoints that are the incoming gradient itself
    cse: StepCse  # common subexpressions of the step's adjoints
    param_gradients: Mapping[str, sp.Expr]  # parameter vector -> its per-step gradient
    state_of: Mapping[str, str]  # node giving states their new value -> the state whose sequence holds it
    copies: Mapping[str, tuple[str, ...]]  # such a node -> the further states it updates (copied there)
    projection_rows: int  # the most rows (steps * B) of one chunk of an input projection (blocking)
    coefficient_numbers: int  # the most numbers (steps * B * H) of one coefficient's chunk (blocking)

    @property
    def spec(self):
        return self.derivation.spec

    def gemm_of(self, weight: str) -> tuple[Gemm, int]:
        """The GEMM a weight belongs to and its block there."""
        g = self.spec.group_of(weight)
        return self.gemms[g.name], g.members.index(weight)


def _has_sequence(spec, gates, cached, name: str) -> bool:
    """Whether forward value `name` has a sequence over time (coefficients read it per chunk)."""
    return (
        name in spec.prev_names
        or name in spec.update_of.values()
        or name in gates
        or name in cached
        or name in {p.name for p in spec.elementwise_params()}
        or (name == spec.input and spec.same_size)
    )


def plan_cell(d: Derivation) -> CellPlan:
    """Every decision about computing `d`'s cell (see `CellPlan`)."""
    s = d.spec
    groups = gemms(s)
    home = {}
    for n in s.nodes:
        if isinstance(n, LinearNode):
            g = s.group_of(n.terms[0][0])
            home[n.name] = (g.name, g.members.index(n.terms[0][0]))
    order = adjoint_order(groups)
    state_of: dict[str, str] = {}
    copies: dict[str, tuple[str, ...]] = {}
    for st, node in s.updates:
        if node in state_of:
            copies[node] = (*copies.get(node, ()), st)
        else:
            state_of[node] = st
    gates = gate_slots(d, groups, home)
    cached = cached_values(d, groups, gates)
    step = backward_step(d, order, lambda name: _has_sequence(s, gates, cached, name))
    aliases = incoming_aliases(d, step)
    grads = {
        g.param: param_gradient(d, step, order, g.expr) for g in d.param_gradients if g.kind == "elementwise"
    }
    return CellPlan(
        derivation=d,
        gemms=groups,
        home=home,
        adjoint_order=order,
        adjoint_runs={name: adjoint_runs(g, order) for name, g in groups.items()},
        backward_reads=backward_reads(d),
        gates=gates,
        prescaled=prescaled_gates(d, gates),
        cached=cached,
        step=step,
        aliases=aliases,
        cse=step_cse(d, step, aliases),
        param_gradients=grads,
        state_of=state_of,
        copies=copies,
        projection_rows=PROJECTION_ROWS,
        coefficient_numbers=COEFFICIENT_NUMBERS,
    )
