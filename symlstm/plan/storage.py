"""Where each forward value of a step lives, and what backward needs kept.

* A state's new value is written into the state's sequence, (T + 1, B, H), row t + 1.
* A gate `n = F(a)` or `n = F(a + rest)` (F a one-argument call) whose pre-activation `a` is block k of
  an input-projection buffer, read by `n` only and not by backward, is written over `a` (`GateSlot`):
  the buffer then holds the gates themselves and is their cache, and one call applies F to a run of
  adjacent blocks. A sigmoid gate whose linear node owns its weights and biases is *prescaled*: forward
  scales those rows by 0.5 once per call, so that sigmoid(a) = 0.5 * tanh(0.5 a) + 0.5 is one tanh over a
  run of sigmoid and tanh gates (all four LSTM gates) followed by a scale and a shift.
* Values backward reads, and the inputs of inner GEMMs, that live nowhere else are cached, (T, B, H).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..activations import sigmoid
from ..engine import Derivation
from ..spec import ElementwiseNode, LinearNode
from .layout import Gemm

__all__ = ["GateSlot", "backward_reads", "cached_values", "gate_slots", "prescaled_gates"]


@dataclass(frozen=True)
class GateSlot:
    """An elementwise node written over its pre-activation, block `block` of input GEMM `gemm`."""

    node: str
    pre: str  # the linear node it reads
    gemm: str
    block: int
    rest: sp.Expr  # F's argument minus the pre-activation (0 for F(a))


def backward_reads(d: Derivation) -> frozenset[str]:
    """Forward values (nodes, intermediates, leaves, parameter vectors) the backward expressions read."""
    names: set[str] = set()
    for a in d.vjp:
        names |= {s.name for s in a.elementwise.free_symbols}
    for g in d.param_gradients:
        if g.expr is not None:
            names |= {s.name for s in g.expr.free_symbols}
    return frozenset(n for n in names if not n.startswith(("d_", "din_")))


def gate_slots(
    d: Derivation, groups: dict[str, Gemm], home: dict[str, tuple[str, int]]
) -> dict[str, GateSlot]:
    """The elementwise nodes written over their pre-activation (see the module docstring)."""
    s = d.spec
    out: dict[str, GateSlot] = {}
    reads = backward_reads(d)
    linear = {n.name for n in s.nodes if isinstance(n, LinearNode)}
    state_nodes = set(s.update_of.values()) | {s.output}
    for n in s.nodes:
        if not isinstance(n, ElementwiseNode) or n.name in state_nodes or d.intermediates_of(n.name):
            continue
        expr = n.expr
        if not (isinstance(expr, sp.Function) and len(expr.args) == 1):
            continue
        arg = expr.args[0]
        terms = arg.args if arg.is_Add else (arg,)
        for a in terms:
            if not a.is_Symbol or a.name not in linear or a.name in reads:
                continue
            if [c.name for c in s.consumers(a.name)] != [n.name]:
                continue
            gemm, k = home[a.name]
            rest = sp.Add(*(t for t in terms if t != a))
            if groups[gemm].kind == "input" and a not in rest.free_symbols:
                out[n.name] = GateSlot(n.name, a.name, gemm, k, rest)
                break
    return out


def prescaled_gates(d: Derivation, gates: dict[str, GateSlot]) -> frozenset[str]:
    """The sigmoid gates computed as 0.5 * tanh(0.5 a) + 0.5 from rows prescaled by 0.5."""
    s = d.spec
    uses: dict[str, int] = {}
    for n in s.nodes:
        if isinstance(n, LinearNode):
            for p in [*(w for w, _ in n.terms), *n.biases]:
                uses[p] = uses.get(p, 0) + 1
    out = set()
    for name, slot in gates.items():
        node = s.node(slot.pre)
        params = [*(w for w, _ in node.terms), *node.biases]
        if s.node(name).expr.func is sigmoid and slot.rest == 0 and all(uses[p] == 1 for p in params):
            out.add(name)
    return frozenset(out)


def cached_values(d: Derivation, groups: dict[str, Gemm], gates: dict[str, GateSlot]) -> tuple[str, ...]:
    """Nodes and intermediates whose values backward reads, or that an inner GEMM's weight gradient
    multiplies, and that live nowhere else (a state's new value lives in its sequence, a gate in its
    buffer)."""
    s = d.spec
    need = backward_reads(d) | {g.input for g in groups.values()}
    skip = set(s.update_of.values()) | set(gates)
    order = [*(n.name for n in s.nodes), *(m.name for m in d.intermediates)]
    return tuple(v for v in order if v in need and v not in skip)
