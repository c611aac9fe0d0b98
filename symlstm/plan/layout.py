"""Where a cell's weights and pre-activation adjoints live: the fused GEMMs and the adjoint buffer.

Every fused weight group is one GEMM (`Gemm`): the input projection of all steps at once when it
multiplies the input x ("input"), else one GEMM per step ("recurrent" for a previous state, "inner" for
a node computed earlier in the step). A linear node's pre-activation lives in the block of its first
weight's GEMM output (`home`); its other terms and its biases are added there.

Backward keeps every linear node's adjoint once, in one (T, B, U*H) buffer whose block order
(`adjoint_order`) puts the widest per-step GEMM's nodes first, in its order, so that its recurrent
GEMM reads one column range; every GEMM reads one column range per run of its blocks that lies
adjacent and in order there (`adjoint_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import CellSpec, LinearNode

__all__ = ["Gemm", "adjoint_order", "adjoint_runs", "gemms"]


@dataclass(frozen=True)
class Gemm:
    """A fused weight group: one GEMM whose output blocks are the pre-activations of `nodes`."""

    name: str  # the stored array, e.g. W_ih
    members: tuple[str, ...]  # its weight blocks, stacked along the rows
    nodes: tuple[str, ...]  # the linear node each block feeds
    input: str  # the vector it multiplies
    kind: str  # "input" (all steps before the loop), "recurrent" (a previous state) or "inner" (a node)

    @property
    def blocks(self) -> int:
        return len(self.nodes)


def gemms(spec: CellSpec) -> dict[str, Gemm]:
    """The cell's fused weight groups, by stored name, in the spec's group order."""
    out = {}
    for g in spec.groups:
        if not spec.param(g.members[0]).is_matrix:
            continue
        nodes, inputs = [], []
        for m in g.members:
            for n in spec.nodes:
                if isinstance(n, LinearNode):
                    for w, u in n.terms:
                        if w == m:
                            nodes.append(n.name)
                            inputs.append(u)
        (u,) = set(inputs)  # a fused group multiplies one vector (checked by Cell.build)
        kind = "input" if u == spec.input else "recurrent" if u in spec.prev_names else "inner"
        out[g.name] = Gemm(g.name, g.members, tuple(nodes), u, kind)
    return out


def adjoint_order(groups: dict[str, Gemm]) -> tuple[str, ...]:
    """The linear nodes in the block order of the adjoint buffer (see the module docstring)."""
    per_step = sorted((g for g in groups.values() if g.kind != "input"), key=lambda g: -g.blocks)
    order: list[str] = []
    for g in [*per_step, *groups.values()]:
        order += [n for n in g.nodes if n not in order]
    return tuple(order)


def adjoint_runs(gemm: Gemm, order: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """(first block of `gemm`, first block of the adjoint buffer, count) for each run of the GEMM's
    blocks that lies adjacent and in order in the adjoint buffer."""
    runs: list[list[int]] = []
    for k, node in enumerate(gemm.nodes):
        u = order.index(node)
        if runs and u == runs[-1][1] + runs[-1][2]:
            runs[-1][2] += 1
        else:
            runs.append([k, u, 1])
    return tuple(tuple(r) for r in runs)
