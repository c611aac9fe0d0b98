"""Pictures of a cell drawn from its graph: a layout computed as data, then printed as TikZ.

`cell_layout(d)` places the vectors of one step on a grid: the input and previous states in column 0,
every node one column right of the furthest vector it reads, so linear maps, gates and the nodes that
combine them fall into columns in the order they are computed. A *carry path* is a path from a previous
state to its new value; one that passes through elementwise nodes only (its Jacobian is diagonal, no
weight matrix on it, like the LSTM's c_{t-1} -> c_t) is a *highway*: its shortest instance is laid on
one straight row at the top. `unrolled_layout(d)` is three steps side by side with the states as lanes:
forward arrows along the lanes, and inside each step one backward line per non-zero block of the step
Jacobian (green when the block is diagonal). `cell_tikz` and `unrolled_tikz` print the layouts; every
mathematical decision (which edges are highways, which blocks vanish) is made from the derivation here,
in the layout, where a test can inspect it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import sympy as sp

from ...activations import relu, sigmoid
from ...engine import Derivation
from ...naming import latex_name
from ...spec import ElementwiseNode, LinearNode
from .printer import TexPrinter

__all__ = [
    "CellLayout",
    "DiagramEdge",
    "DiagramNode",
    "UnrolledLayout",
    "cell_layout",
    "cell_tikz",
    "unrolled_layout",
    "unrolled_tikz",
]

COLUMN, ROW = 2.35, 1.2  # grid spacing of the cell diagram (cm)
WIDTH = 16.0  # the widest picture (cm): a wider grid is scaled down to fit
EXIT_LABEL = 3.4  # room for the labels of the states leaving on the right (cm)


@dataclass(frozen=True)
class DiagramNode:
    """One vector of the step, placed at (col, row); row 0 is the top."""

    name: str
    kind: str  # "input", "state_in", "linear", "gate", "activation", "combine"
    label: str  # TeX math
    op: tuple[str, ...]  # TeX lines above the node: a linear map's weights, or the function and parameters
    col: int
    row: float
    new_state: str = ""  # the state this node gives the new value of ("" if none)
    output: bool = False  # the node is the step's output y_t
    exit_long: bool = False  # its way out to step t+1 runs to the right edge (nothing in the way)


@dataclass(frozen=True)
class DiagramEdge:
    """`src` is read by `dst`."""

    src: str
    dst: str
    highway: bool = False  # on an elementwise-only path from a previous state to its new value
    recurrent: bool = False  # leaves a previous state
    bend: int = 0  # degrees; nonzero when the straight line would cross a node


@dataclass(frozen=True)
class CellLayout:
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]
    highways: tuple[tuple[str, ...], ...]  # the straight highway paths, one per state that has one

    def node(self, name: str) -> DiagramNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def columns(self) -> int:
        return 1 + max(n.col for n in self.nodes)

    @property
    def op_lines(self) -> int:
        return max((len(n.op) for n in self.nodes), default=0)


# -- the cell graph -----------------------------------------------------------------------------


def _reads(d: Derivation, name: str) -> list[str]:
    """The vectors a node reads directly (inputs of a linear map, arguments of an elementwise node)."""
    return d.args_of(d.spec.node(name))


OP_WIDTH = 3  # names per line above a node


def _lines(items: list[str]) -> tuple[str, ...]:
    return tuple(",\\,".join(items[k : k + OP_WIDTH]) for k in range(0, len(items), OP_WIDTH))


def _op(d: Derivation, p: TexPrinter, node: LinearNode | ElementwiseNode) -> tuple[str, tuple[str, ...]]:
    """(kind, TeX lines above the node) from the node's equation."""
    if isinstance(node, LinearNode):
        return "linear", _lines([p.name(w) for w, _ in node.terms])
    expr = node.expr
    names = {sigmoid: r"\sigma", sp.tanh: r"\tanh", relu: r"\mathrm{relu}"}
    params = [p.name(q) for q in d.params_of(node)]
    if isinstance(expr, sp.Function) and len(expr.args) == 1:
        fn = type(expr)
        kind = "gate" if fn is sigmoid else "activation"
        return kind, _lines([names.get(fn, rf"\mathrm{{{fn.__name__}}}"), *params])
    ops = []
    walk = list(sp.preorder_traversal(expr))
    if any(isinstance(e, sp.Mul) and sum(not a.is_number for a in e.args) > 1 for e in walk):
        ops.append(r"\odot")
    if any(isinstance(e, sp.Add) for e in walk):
        ops.append("+")
    for e in walk:
        if (
            isinstance(e, sp.Function)
            and (name := names.get(type(e), rf"\mathrm{{{type(e).__name__}}}")) not in ops
        ):
            ops.append(name)
    if not ops:  # a copy or a scaled copy, e.g. z = a_z
        ops.append(r"\cdot")
    return "combine", _lines([*ops, *params])


def highway_paths(d: Derivation) -> dict[str, list[tuple[str, ...]]]:
    """Per state, every path prev(state) -> new value through elementwise nodes only."""
    s = d.spec
    elementwise = {n.name for n in s.nodes if isinstance(n, ElementwiseNode)}
    out: dict[str, list[tuple[str, ...]]] = {}
    for st in s.states:
        target = s.update_of[st]
        paths: list[tuple[str, ...]] = []

        def walk(path: tuple[str, ...], target: str = target, paths: list = paths) -> None:
            if path[-1] == target:
                paths.append(path)
                return
            for nxt in s.consumers(path[-1]):
                if nxt.name in elementwise and nxt.name not in path:
                    walk((*path, nxt.name))

        walk((s.prev(st),))
        if paths:
            out[st] = sorted(paths, key=len)
    return out


def _depths(d: Derivation) -> dict[str, int]:
    s = d.spec
    depth = {leaf: 0 for leaf in s.leaves}
    for node in s.nodes:
        depth[node.name] = 1 + max((depth[u] for u in _reads(d, node.name)), default=0)
    return depth


def _order_rows(columns: list[list[str]], preds: dict[str, list[str]], succs: dict[str, list[str]],
                fixed: dict[str, float]) -> dict[str, float]:  # fmt: skip
    """Rows within each column: barycentre sweeps, each node as near its neighbours as free rows allow.

    The `fixed` nodes (the straight highways) keep their rows, and no other node takes a row at or
    above the lowest of them, in any column: the highways run straight across the whole picture.
    """
    first_free = 1.0 + max(fixed.values(), default=-1.0)
    row = {n: first_free + k for col in columns for k, n in enumerate(col)}
    row.update(fixed)

    def place(col: list[str], neighbours: dict[str, list[str]]) -> None:
        free = [n for n in col if n not in fixed]
        want = {n: (sum(row[m] for m in neighbours[n]) / len(neighbours[n]) if neighbours[n] else row[n])
                for n in free}  # fmt: skip
        last = first_free - 1.0
        for n in sorted(free, key=lambda n: (want[n], n)):
            row[n] = last = max(want[n], last + 1.0)

    for _ in range(3):
        for col in columns[1:]:
            place(col, preds)
        for col in reversed(columns[:-1]):
            place(col, succs)
    for col in columns:  # snap to half rows: stable output, tidy picture
        for n in col:
            row[n] = round(row[n] * 2) / 2
    return row


def _bend(a: tuple[int, float], b: tuple[int, float], nodes: list[tuple[int, float]]) -> int:
    """A bend (degrees) for an edge a -> b whose straight line would pass through another node."""
    (c1, y1), (c2, y2) = a, b
    for c, y in nodes:
        if c1 < c < c2:
            y_line = y1 + (y2 - y1) * (c - c1) / (c2 - c1)
            if abs(y - y_line) < 0.5:
                return 25 if y >= y_line else -25
    return 0


def cell_layout(d: Derivation) -> CellLayout:
    """The step of cell `d` as a layered graph (see the module docstring)."""
    s = d.spec
    p = TexPrinter(d)
    depth = _depths(d)
    highways = highway_paths(d)
    straight = {st: paths[0] for st, paths in highways.items()}
    highway_edges = {edge for paths in highways.values() for path in paths for edge in pairwise(path)}
    preds = {n: [] for n in depth}
    succs = {n: [] for n in depth}
    edges = []
    for node in s.nodes:
        for u in _reads(d, node.name):
            preds[node.name].append(u)
            succs[u].append(node.name)
            edges.append((u, node.name))
    # the straight highways take the top rows, one per state
    fixed: dict[str, float] = {}
    for k, path in enumerate(straight.values()):
        for v in path:
            fixed.setdefault(v, float(k))
    n_cols = 1 + max(depth.values())
    columns: list[list[str]] = [[] for _ in range(n_cols)]
    leaves_first = [*s.prev_names, s.input]  # previous states above the input
    for v in [*leaves_first, *(n.name for n in s.nodes)]:
        columns[depth[v]].append(v)
    row = _order_rows(columns, preds, succs, fixed)
    nodes = []
    new_state = {v: st for st, v in s.updates}
    for v in leaves_first:
        kind = "input" if v == s.input else "state_in"
        nodes.append(DiagramNode(v, kind, p.name(v), (), 0, row[v]))

    def clear_right(v: str) -> bool:  # no other vector to the right on this row
        return not any(depth[u] > depth[v] and abs(row[u] - row[v]) < 0.5 for u in depth)

    for node in s.nodes:
        kind, op = _op(d, p, node)
        nodes.append(DiagramNode(node.name, kind, p.name(node.name), op, depth[node.name], row[node.name],
                                 new_state.get(node.name, ""), node.name == s.output,
                                 clear_right(node.name)))  # fmt: skip
    where = {n.name: (n.col, n.row) for n in nodes}
    out_edges = []
    for u, v in edges:
        others = [where[n] for n in where if n not in (u, v)]
        out_edges.append(DiagramEdge(u, v, (u, v) in highway_edges, u in s.prev_names,
                                     _bend(where[u], where[v], others)))  # fmt: skip
    return CellLayout(tuple(nodes), tuple(out_edges), tuple(straight.values()))


# -- printing the cell diagram -------------------------------------------------------------------------

_STYLES = r"""
  every node/.style={font=\small},
  vec/.style={draw, rounded corners=2pt, minimum height=0.62cm, minimum width=0.9cm, inner sep=2pt},
  input/.style={vec, fill=blue!8},
  state/.style={vec, fill=yellow!25, line width=0.9pt},
  linear/.style={draw, fill=gray!12, minimum height=0.6cm, minimum width=0.95cm, inner sep=2pt},
  gate/.style={draw, circle, fill=orange!25, inner sep=1pt, minimum size=0.78cm},
  activation/.style={draw, circle, fill=yellow!15, inner sep=1pt, minimum size=0.78cm},
  combine/.style={draw, circle, fill=white, inner sep=1pt, minimum size=0.78cm},
  newstate/.style={double, double distance=1.2pt, line width=0.6pt},
  op/.style={font=\scriptsize, text=black!75, inner sep=0.5pt, fill=white, fill opacity=0.85, text opacity=1},
  flow/.style={-{Stealth[length=4.5pt]}, black!75},
  recurrent/.style={flow, blue!60!black},
  highway/.style={-{Stealth[length=6pt]}, line width=2.2pt, green!45!black},
  exit/.style={-{Stealth[length=5pt]}, black!75, dashed},
"""


def _tex_coord(x: float, y: float) -> str:
    return f"({x:.2f},{y:.2f})"


def cell_tikz(d: Derivation, layout: CellLayout | None = None) -> str:
    """A TikZ picture of one step of the cell: vectors, linear maps, gates, states and highways."""
    lay = layout or cell_layout(d)
    scale = min(1.0, (WIDTH - EXIT_LABEL) / (COLUMN * (lay.columns - 0.35 + 0.5)))
    row = ROW + 0.28 * max(lay.op_lines - 1, 0)
    lines = [rf"\begin{{tikzpicture}}[x={COLUMN * scale:.3f}cm, y={row:.3f}cm, {_STYLES.strip()}]"]
    ident = {n.name: f"n{k}" for k, n in enumerate(lay.nodes)}
    for n in lay.nodes:
        style = {"state_in": "state"}.get(n.kind, n.kind) + (", newstate" if n.new_state else "")
        lines.append(rf"  \node[{style}] ({ident[n.name]}) at {_tex_coord(n.col, -n.row)} {{${n.label}$}};")
    for e in lay.edges:
        kind = "highway" if e.highway else ("recurrent" if e.recurrent else "flow")
        path = f"to[bend left={e.bend}]" if e.bend else "--"
        lines.append(rf"  \draw[{kind}] ({ident[e.src]}) {path} ({ident[e.dst]});")
    for n in lay.nodes:  # the operations last, on top of the edges that pass them
        if n.op:
            text = r"\\".join(f"${line}$" for line in n.op)
            lines.append(rf"  \node[op, anchor=south, align=center] at ({ident[n.name]}.north) {{{text}}};")
    right = lay.columns - 0.35
    for n in lay.nodes:  # the ways out to step t+1, where the row to the right is free
        if not (n.new_state or n.output) or not n.exit_long:
            continue
        text = rf"${latex_name(n.new_state, time='t')}$ to step $t+1$" if n.new_state else ""
        if n.output:
            text = f"{text} and $y_t$" if text else "$y_t$"
        hw = any(path[-1] == n.name for path in lay.highways)
        style, start = "highway" if hw else "exit", f"({ident[n.name]}.east)"
        lines.append(rf"  \draw[{style}] {start} -- ({right:.2f},{-n.row:.2f}) "
                     rf"node[right, font=\scriptsize, inner sep=1pt] {{{text}}};")  # fmt: skip
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


# -- the unrolled graph ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnrolledLayout:
    """Three steps with the states as lanes; `blocks` are the non-zero parts of the step Jacobian."""

    states: tuple[str, ...]  # lane order, top to bottom: states with a highway first
    # (new state, previous state, part): part "diag" for the sum of the block's terms without a weight
    # matrix (a diagonal matrix), "matrix" for the terms through weight matrices
    blocks: tuple[tuple[str, str, str], ...]


def unrolled_layout(d: Derivation) -> UnrolledLayout:
    s = d.spec
    highways = highway_paths(d)
    lanes = tuple(sorted(s.states, key=lambda st: (st not in highways, s.states.index(st))))
    blocks = []
    for a in lanes:
        for b in lanes:
            terms = d.jacobian_terms(s.update_of[a], s.prev(b))
            if any(all(kind == "diag" for kind, _ in t) for t in terms):
                blocks.append((a, b, "diag"))
            if any(any(kind == "mat" for kind, _ in t) for t in terms):
                blocks.append((a, b, "matrix"))
    return UnrolledLayout(lanes, tuple(blocks))


def unrolled_tikz(d: Derivation, layout: UnrolledLayout | None = None) -> str:
    """Three steps t-1, t, t+1: forward along the state lanes, backward through each step's Jacobian."""
    lay = layout or unrolled_layout(d)
    lane = {st: -0.9 * k for k, st in enumerate(lay.states)}
    width, gap = 3.2, 1.6
    top, bottom = 0.5, lane[lay.states[-1]] - 0.5
    lines = [r"\begin{tikzpicture}[font=\small, "
             r"fwd/.style={-{Stealth[length=4.5pt]}, black!80, line width=0.7pt}, "
             r"bwd/.style={-{Stealth[length=4.5pt]}, red!70!black, dashed, line width=0.7pt}, "
             r"bwdhw/.style={-{Stealth[length=5pt]}, green!45!black, line width=1.8pt}, "
             r"stepbox/.style={draw, rounded corners=3pt, fill=gray!6}]"]  # fmt: skip
    steps = ["t-1", "t", "t+1"]
    x0 = [gap + k * (width + gap) for k in range(3)]
    for k, t in enumerate(steps):
        left, right, xm = x0[k], x0[k] + width, x0[k] + width / 2
        lines.append(rf"  \draw[stepbox] ({left:.2f},{bottom:.2f}) rectangle ({right:.2f},{top:.2f});")
        lines.append(rf"  \node[font=\scriptsize, text=black!60, anchor=north west] at ({left:.2f},"
                     rf"{bottom - 0.05:.2f}) {{step ${t}$}};")  # fmt: skip
        lines.append(rf"  \draw[fwd] ({xm:.2f},{bottom - 0.8:.2f}) node[below] {{$x_{{{t}}}$}} -- "
                     rf"({xm:.2f},{bottom:.2f});")  # fmt: skip
        lines.append(rf"  \draw[fwd] ({xm - 0.65:.2f},{top:.2f}) -- ({xm - 0.65:.2f},{top + 0.7:.2f}) "
                     rf"node[above] {{$y_{{{t}}}$}};")  # fmt: skip
        lines.append(rf"  \draw[bwd] ({xm + 0.65:.2f},{top + 0.7:.2f}) node[above] "
                     rf"{{$\partial L/\partial y_{{{t}}}$}} -- ({xm + 0.65:.2f},{top:.2f});")  # fmt: skip
        # backward through the step, from the new state a (right) to the previous state b (left)
        for a, b, part in lay.blocks:
            ya, yb = lane[a] - 0.12, lane[b] - 0.12
            if part == "diag":
                lines.append(rf"  \draw[bwdhw] ({right - 0.1:.2f},{ya:.2f}) -- ({left + 0.1:.2f},{yb:.2f});")
            else:
                bend = "to[bend left=18]" if a == b else "--"
                lines.append(
                    rf"  \draw[bwd] ({right - 0.1:.2f},{ya:.2f}) {bend} ({left + 0.1:.2f},{yb:.2f});"
                )
    for k in range(4):  # the lanes between steps, into the first and out of the last
        a = x0[k - 1] + width if k else 0.2
        b = x0[k] if k < 3 else x0[2] + width + gap - 0.2
        t_state = ["t-2", "t-1", "t", "t+1"][k]
        for st in lay.states:
            y = lane[st]
            lines.append(rf"  \draw[fwd] ({a:.2f},{y + 0.12:.2f}) -- ({b:.2f},{y + 0.12:.2f});")
            lines.append(rf"  \draw[bwd] ({b:.2f},{y - 0.12:.2f}) -- ({a:.2f},{y - 0.12:.2f});")
            if k in (1, 2):
                lines.append(rf"  \node[font=\scriptsize, fill=white, inner sep=1pt] at ({(a + b) / 2:.2f},"
                             rf"{y + 0.36:.2f}) {{${latex_name(st, time=t_state)}$}};")  # fmt: skip
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)
