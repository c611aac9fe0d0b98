"""Generate a NumPy module (forward, backward, torch conversion) for a derived cell.

Every decision about the computation is made here, in Python; the Jinja2 template only lays out the
printed lines. The generated code is fast by construction:

* weights that share an input are one fused array, so all gates cost one GEMM;
* the input projection of every step is one GEMM before the loop, and the input-weight and recurrent-
  weight gradients are one GEMM each after the loop (the per-step adjoints are kept for that);
* each time step writes into preallocated buffers with in-place ufuncs (`printing.InplaceEmitter`);
* Jacobians are never formed: a product with diag(f) is `f * v`;
* backward's step is folded and factored (`symlstm.folding`): the coefficients of the adjoints, which
  read forward values only, are computed for chunks of steps outside the recurrence, and a step makes
  one multiply per adjoint term, one for a run of adjacent gate blocks;
* only what backward reads is cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from ...activations import sigmoid
from ...engine import Derivation
from ...folding import FoldedStep, factor, fold
from ...naming import adjoint
from ...spec import ElementwiseNode, FuseGroup, LinearNode, SpecError
from .head import module_head
from .printer import InplaceEmitter, NumpyCodePrinter, ScratchPool
from .source import block_span, equation_text, group_shape, member_view, tuple_source, wrap

__all__ = ["Layout", "NumpyModule", "gemm_layouts", "plan_numpy"]


def _bspan(k0: int, k1: int, blocks: int) -> str:
    """An index over the gate axis of a gate-major buffer: `2` (one block, its (.., B, H) array),
    `0:2` (a run of blocks), or '' for all blocks (a single block is indexed even when it is all)."""
    if k1 - k0 == 1:
        return str(k0)
    return "" if (k0, k1) == (0, blocks) else f"{k0}:{k1}"


def _index(prefix: str, span: str) -> str:
    """`buf[t]` or `buf[t, 0:2]` (prefix 'buf_W_ih[t': a (T, G, B, H) buffer at step t), or `buf` or
    `buf_g[1]` (prefix 'buf_W_hh_g[': a (G, B, H) array); `span` as `_bspan` gives it."""
    if prefix.endswith("["):
        return f"{prefix}{span}]" if span else prefix[:-1]
    return f"{prefix}, {span}]" if span else f"{prefix}]"


@dataclass
class Layout:
    """A fused weight group: its stacked blocks, the linear node of each block and its input vector."""

    group: FuseGroup
    nodes: tuple[str, ...]
    input: str
    kind: str  # "input" (x: GEMMs outside the loop), "recurrent" (a previous state) or "inner" (a node)

    @property
    def blocks(self) -> int:
        return len(self.nodes)

    @property
    def name(self) -> str:
        return self.group.name


@dataclass
class NumpyModule:
    """Everything the template needs, already printed."""

    spec_name: str
    title: str
    doc: str
    source: str
    states: list[str]
    output: str
    equations: list[str]
    groups: list[dict]
    torch: dict
    same_size: bool
    jvp_body: list[str] = field(default_factory=list)
    forward_setup: list[str] = field(default_factory=list)
    forward_step: list[str] = field(default_factory=list)
    forward_end: list[str] = field(default_factory=list)
    cache_keys: list[str] = field(default_factory=list)
    backward_setup: list[str] = field(default_factory=list)
    backward_step: list[str] = field(default_factory=list)
    backward_end: list[str] = field(default_factory=list)


@dataclass
class _StepPlan:
    """The backward step after `symlstm.folding`: what each kept adjoint is made of.

    exprs: vector -> elementwise adjoint as sum of coefficient * adjoint, a precomputed coefficient
        being the symbol `coef_step[j]` (slot j of this step's row of the coefficient buffer);
    coefficients: slot j -> its expression in forward values;
    runs: the run's vector that comes first in VJP order -> (vectors in block order, adjoint factor,
        node of the lowest block, lowest slot), other members -> None: linear-node adjoints
        d_w * coefficient in adjacent blocks of the adjoint buffer, one multiply.
    """

    folding: FoldedStep
    exprs: dict[str, sp.Expr]
    coefficients: list[sp.Expr]
    runs: dict[str, tuple | None]


class _Planner:
    def __init__(self, d: Derivation):
        self.d = d
        self.spec = d.spec
        self.p = NumpyCodePrinter()
        self.layouts = self._layouts()
        self.numbers = d.equation_numbers
        self._inplace: dict | None = None
        self._plan: _StepPlan | None = None
        self._check_supported()

    # -- structure -----------------------------------------------------------------------------
    def _layouts(self) -> dict[str, Layout]:
        out = {}
        for g in self.spec.groups:
            first = self.spec.param(g.members[0])
            if not first.is_matrix:
                continue
            nodes, inputs = [], set()
            for m in g.members:
                for n in self.spec.nodes:
                    if isinstance(n, LinearNode):
                        for w, u in n.terms:
                            if w == m:
                                nodes.append(n.name)
                                inputs.add(u)
            (u,) = inputs
            kind = "input" if u == self.spec.input else "recurrent" if u in self.spec.prev_names else "inner"
            out[g.name] = Layout(g, tuple(nodes), u, kind)
        return out

    def _check_supported(self) -> None:
        s = self.spec
        for n in s.nodes:
            if isinstance(n, LinearNode):
                for _, u in n.terms:
                    if isinstance(s.node(u) if u not in s.leaves else None, LinearNode):
                        raise SpecError(
                            f"cell {s.name!r}: linear node {n.name!r} reads linear node {u!r}; "
                            "merge them into one linear node"
                        )
        for st, node in s.updates:
            if isinstance(s.node(node), LinearNode):
                raise SpecError(
                    f"cell {s.name!r}: state {st!r} is updated by linear node {node!r}; "
                    "state updates must be elementwise nodes"
                )
        if isinstance(s.node(s.output), LinearNode):
            raise SpecError(f"cell {s.name!r}: the output {s.output!r} must be an elementwise node")

    def layout_of(self, weight: str) -> tuple[Layout, int]:
        g = self.spec.group_of(weight)
        return self.layouts[g.name], g.members.index(weight)

    def home(self, node: LinearNode) -> tuple[Layout, int]:
        """Where a linear node's pre-activation lives: the block of its first weight's GEMM output."""
        return self.layout_of(node.terms[0][0])

    def buffer(self, lay: Layout) -> str:
        name = f"buf_{lay.name}"
        return f"{name}[t" if lay.kind == "input" else f"{name}_g["

    def block_view(self, lay: Layout, k: int) -> str:
        return _index(self.buffer(lay), _bspan(k, k + 1, lay.blocks))

    def grad_view(self, node: str, n: int = 1) -> str:
        """The adjoints of `n` linear nodes from `node` on, in the step's row of the adjoint buffer:
        `grad_step[2]`, `grad_step[0:3]` (a (U, B, H) view), or `grad_step[t, 0]` when U = 1."""
        order = self.grad_order()
        u = order.index(node)
        step = "grad_step[t" if len(order) == 1 else "grad_step["
        return _index(step, _bspan(u, u + n, len(order)))

    def grad_order(self) -> list[str]:
        """The linear nodes in the order of the blocks of the adjoint buffer `grad_rows`, (T, B, U*H).

        One buffer holds every linear node's adjoint once, even where two weight groups share nodes
        (GRU's W_ih: a_r, a_z, a_n and W_hh: a_r, a_z, u_n), so no adjoint is copied between buffers.
        The widest per-step (recurrent or inner) group's nodes come first and in its order, so its
        per-step GEMM reads one column range; the other groups read one column range per run of
        their blocks that the order keeps adjacent (`grad_runs`).
        """
        per_step = sorted(
            (lay for lay in self.layouts.values() if lay.kind != "input"), key=lambda lay: -lay.blocks
        )
        order: list[str] = []
        for lay in [*per_step, *self.layouts.values()]:
            order += [n for n in lay.nodes if n not in order]
        return order

    def grad_runs(self, lay: Layout) -> list[tuple[int, int, int]]:
        """(first block of `lay`, first block of the adjoint buffer, count) for each run of `lay`'s
        blocks that lies adjacent and in order in the adjoint buffer."""
        order = self.grad_order()
        runs: list[list[int]] = []
        for k, node in enumerate(lay.nodes):
            u = order.index(node)
            if runs and u == runs[-1][1] + runs[-1][2]:
                runs[-1][2] += 1
            else:
                runs.append([k, u, 1])
        return [tuple(r) for r in runs]

    def grad_columns(self, u0: int, n: int) -> str:
        """The column span `H : 3 * H` of blocks [u0, u0 + n) ('' for all)."""
        return block_span(u0, u0 + n, len(self.grad_order()))

    # -- what backward reads -------------------------------------------------------------------
    def backward_symbols(self) -> set[str]:
        """Forward values that the backward step's expressions read."""
        names: set[str] = set()
        for a in self.d.vjp:
            names |= {s.name for s in a.elementwise.free_symbols}
        for g in self.d.param_gradients:
            if g.expr is not None:
                names |= {s.name for s in g.expr.free_symbols}
        return {n for n in names if not n.startswith(("d_", "din_"))}

    def inplace_nodes(self) -> dict[str, tuple[str, Layout, int, sp.Expr]]:
        """Elementwise nodes written over the pre-activation they consume, in the input-projection buffer.

        A node `n = F(a)` or `n = F(a + rest)` (F a one-argument call) whose pre-activation `a` lives in
        block k of a (T, G, B, H) input-projection buffer, is read by `n` only and not by backward, takes
        block k over: the buffer then holds the gates themselves and is the gates' cache, with no
        separate copy, and one call applies F to a run of adjacent blocks (sigmoid on [i, f] at once).
        Returns node -> (pre-activation, layout, block, rest), with rest 0 for `F(a)`.
        """
        if self._inplace is not None:
            return self._inplace
        s, d = self.spec, self.d
        out: dict[str, tuple[str, Layout, int, sp.Expr]] = {}
        self._inplace = out
        backward = self.backward_symbols()
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
                if not a.is_Symbol or a.name not in self._linear_names or a.name in backward:
                    continue
                if [c.name for c in s.consumers(a.name)] != [n.name]:
                    continue
                lay, k = self.home(s.node(a.name))
                rest = sp.Add(*(t for t in terms if t != a))
                if lay.kind == "input" and a not in rest.free_symbols:
                    out[n.name] = (a.name, lay, k, rest)
                    break
        return out

    @property
    def _linear_names(self) -> set[str]:
        return {n.name for n in self.spec.nodes if isinstance(n, LinearNode)}

    def stored_at(self, name: str) -> str | None:
        """`buf_W_ih[t, 0]` for a node stored in place in a buffer, else None."""
        hit = self.inplace_nodes().get(name)
        return None if hit is None else self.block_view(hit[1], hit[2])

    def cached_nodes(self) -> list[str]:
        """Nodes and intermediates whose values backward reads (states live in their sequences, nodes
        stored in place in an input-projection buffer live there): those in the backward expressions
        and the inputs of weights multiplying a node."""
        need = self.backward_symbols() | {lay.input for lay in self.layouts.values()}
        skip = set(self.spec.update_of.values()) | set(self.inplace_nodes())
        order = [*(n.name for n in self.spec.nodes)]
        inter = [m.name for m in self.d.intermediates]
        return [v for v in order + inter if v in need and v not in skip]

    def cached_buffers(self) -> list[str]:
        """Input-projection buffers that hold values backward reads (gates stored in place)."""
        need = self.backward_symbols() | {lay.input for lay in self.layouts.values()}
        hits = self.inplace_nodes()
        return list(dict.fromkeys(f"buf_{hits[v][1].name}" for v in hits if v in need))

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, mod: NumpyModule) -> None:
        s, d = self.spec, self.d
        setup, step = mod.forward_setup, mod.forward_step
        cached = self.cached_nodes()
        inplace = self.inplace_nodes()
        pool = ScratchPool()
        emit = InplaceEmitter(self.p, pool)
        state_node = {node: st for st, node in s.updates}
        setup += self._prescale_lines()
        # Biases of nodes whose home is an input projection are added once, outside the loop: for a
        # projection done in chunks, on the way from the chunk's GEMM output into the gate buffer.
        per_step_bias = []
        bias_ops = []
        for n in s.nodes:
            if isinstance(n, LinearNode):
                lay, k = self.home(n)
                for b in n.biases:
                    blay = s.group_of(b)
                    op = (lay, k, blay, blay.members.index(b))
                    (bias_ops if lay.kind == "input" else per_step_bias).append(op)
        for lay in self.layouts.values():
            if lay.kind == "input":
                G = lay.blocks
                biases = [op for op in bias_ops if op[0] is lay]
                bias_ops = [op for op in bias_ops if op[0] is not lay]
                if biases:  # the sum of the biases added to each block, (G, 1, H)
                    setup.append(f"buf_{lay.name}_bias = np.zeros(({G}, 1, H), dtype=dtype)")
                    setup += self._merged_adds(
                        biases, lambda lay: f"buf_{lay.name}_bias[", vector=True, rows=False
                    )
                if G == 1:
                    setup.append(f"# Input projection of all {lay.name} blocks for every step: one GEMM.")
                    setup.append(f"buf_{lay.name} = np.empty((T, 1, B, H), dtype=dtype)")
                    setup.append(
                        f"np.matmul(x.reshape(T * B, I), {lay.name}.T, out=buf_{lay.name}.reshape(T * B, H))"
                    )
                    if biases:
                        setup.append(f"buf_{lay.name} += buf_{lay.name}_bias")
                    continue
                into = f"buf_{lay.name}[t : t + buf_steps]"
                setup += [
                    f"# Input projection of all {lay.name} blocks for every step, stored (T, gate, B, H) so",
                    "# that every gate block and run of blocks is contiguous: one GEMM per chunk of steps",
                    "# (256 rows, or one step) into a scratch that stays in cache, then into place"
                    + (" with the biases added." if biases else "."),
                    f"buf_{lay.name} = np.empty((T, {G}, B, H), dtype=dtype)",
                    "buf_steps = max(1, min(T, 256 // max(B, 1)))",
                    f"buf_proj = np.empty((buf_steps * B, {G} * H), dtype=dtype)",
                    "for t in range(0, T, buf_steps):",
                    "    buf_x = x[t : t + buf_steps]",
                    "    buf_rows = buf_proj[: len(buf_x) * B]",
                    f"    np.matmul(buf_x.reshape(-1, I), {lay.name}.T, out=buf_rows)",
                    f"    buf_rows = buf_rows.reshape(len(buf_x), B, {G}, H).transpose(0, 2, 1, 3)",
                    f"    np.add(buf_rows, buf_{lay.name}_bias, out={into})"
                    if biases
                    else f"    np.copyto({into}, buf_rows)",
                ]
        for st in s.states:
            setup.append(f"seq_{st} = np.empty((T + 1, B, H), dtype=dtype)")
            setup.append(f"seq_{st}[0] = {st}0")
        for v in cached:
            setup.append(f"cache_{v} = np.empty((T, B, H), dtype=dtype)")
        out_node = s.output
        if out_node not in state_node and out_node not in cached:
            setup.append(f"cache_{out_node} = np.empty((T, B, H), dtype=dtype)")
            cached.append(out_node)
        for lay in self.layouts.values():
            if lay.kind != "input":
                setup.append(f"buf_{lay.name} = np.empty((B, {lay.blocks} * H), dtype=dtype)")
                setup.append(
                    f"buf_{lay.name}_g = buf_{lay.name}.reshape(B, {lay.blocks}, H).transpose(1, 0, 2)"
                )
        own = [
            v
            for v in [*(n.name for n in s.nodes if isinstance(n, ElementwiseNode)),
                      *(m.name for m in d.intermediates)]
            if v not in cached and v not in state_node and v not in inplace
        ]  # fmt: skip
        for v in own:
            setup.append(f"{v} = np.empty((B, H), dtype=dtype)")
        # The step.
        for st in s.states:
            step.append(f"{st}_prev = seq_{st}[t]")
        done_gemm: set[str] = set()
        nodes = list(s.nodes)
        i = 0
        while i < len(nodes):
            if isinstance(nodes[i], LinearNode):
                seg = []
                while i < len(nodes) and isinstance(nodes[i], LinearNode):
                    seg.append(nodes[i])
                    i += 1
                step += self._forward_linear(seg, done_gemm, per_step_bias, cached)
                continue
            if nodes[i].name in inplace:
                run = [nodes[i]]
                i += 1
                while i < len(nodes) and self._extends_run(run, nodes[i], inplace):
                    run.append(nodes[i])
                    i += 1
                step += self._forward_inplace(run, inplace, emit, setup)
                continue
            n = nodes[i]
            i += 1
            target = (
                f"seq_{state_node[n.name]}[t + 1]" if n.name in state_node
                else f"cache_{n.name}[t]" if n.name in cached else None
            )  # fmt: skip
            step.append(f"# ({self.numbers[('fwd', n.name)]}) {n.name} = {sp.sstr(n.expr)}")
            for m in d.intermediates_of(n.name):
                if m.name in cached:
                    step.append(f"{m.name} = cache_{m.name}[t]")
                call = m.call.func(*(d.computational(arg) for arg in m.call.args))
                step += emit.emit(call, m.name)
            if target:
                step.append(f"{n.name} = {target}")
            step += emit.emit(d.computational(n.expr), n.name)
        for k in range(pool.size):
            setup.append(f"buf_{k} = np.empty((B, H), dtype=dtype)")
        y = f"seq_{state_node[out_node]}[1:]" if out_node in state_node else f"cache_{out_node}"
        mod.forward_end.append(f"y = {y}")
        _hoist_views(setup, step)
        mod.cache_keys = [
            *(f"seq_{st}" for st in s.states),
            *self.cached_buffers(),
            *(f"cache_{v}" for v in cached),
        ]

    def prescaled(self) -> dict[str, str]:
        """Sigmoid gates computed as tanh of a pre-activation whose weights were scaled by 0.5.

        sigmoid(a) = 0.5 * tanh(0.5 * a) + 0.5. For an in-place node `sigmoid(a)` whose linear node `a`
        owns its weights and biases (no other node reads them), forward scales their rows by 0.5 once
        per call (O(parameters)), so the buffer holds 0.5 * a and one tanh call covers a run of
        sigmoid and tanh gates ([i, f, g, o] of the LSTM), followed by `*= 0.5; += 0.5` on the sigmoid
        blocks (one scale and one shift over the run when sigmoid blocks lie on both sides of a tanh
        block). Returns node -> its pre-activation.
        """
        s = self.spec
        uses: dict[str, int] = {}
        for n in s.nodes:
            if isinstance(n, LinearNode):
                for p in [*(w for w, _ in n.terms), *n.biases]:
                    uses[p] = uses.get(p, 0) + 1
        out = {}
        for name, (a, _, _, rest) in self.inplace_nodes().items():
            node = s.node(a)
            params = [*(w for w, _ in node.terms), *node.biases]
            if s.node(name).expr.func is sigmoid and rest == 0 and all(uses[p] == 1 for p in params):
                out[name] = a
        return out

    def _prescale_lines(self) -> list[str]:
        """Forward setup: copies of the fused weights and biases with the prescaled rows times 0.5."""
        s = self.spec
        scaled = {p for a in self.prescaled().values() for p in self._linear_params(s.node(a))}
        lines = []
        for g in s.groups:
            blocks = [j for j, m in enumerate(g.members) if m in scaled]
            if not blocks:
                continue
            lines.append(f"{g.name} = {g.name}.copy()")
            runs: list[list[int]] = []
            for j in blocks:
                if runs and j == runs[-1][1]:
                    runs[-1][1] = j + 1
                else:
                    runs.append([j, j + 1])
            for j0, j1 in runs:
                span = block_span(j0, j1, len(g.members))
                lines.append(f"{g.name}[{span or '...'}] *= 0.5")
        if lines:
            lines.insert(
                0, "# sigmoid(a) = 0.5 * tanh(0.5 * a) + 0.5: sigmoid gates' rows scaled by 0.5 once,"
            )
            lines.insert(1, "# so that one tanh call covers adjacent sigmoid and tanh gates.")
        return lines

    @staticmethod
    def _linear_params(node: LinearNode) -> list[str]:
        return [*(w for w, _ in node.terms), *node.biases]

    def _extends_run(self, run: list[ElementwiseNode], n, inplace) -> bool:
        """Whether node `n` applies the run's function (tanh for a prescaled sigmoid) to the next block."""
        if n.name not in inplace or inplace[n.name][3] != 0 or inplace[run[0].name][3] != 0:
            return False
        _, lay, k, _ = inplace[n.name]
        _, lay0, k0, _ = inplace[run[0].name]
        return self._run_func(n) == self._run_func(run[0]) and lay is lay0 and k == k0 + len(run)

    def _run_func(self, n: ElementwiseNode):
        return sp.tanh if n.name in self.prescaled() else n.expr.func

    def _forward_inplace(
        self, run: list[ElementwiseNode], inplace, emit: InplaceEmitter, setup: list[str]
    ) -> list[str]:
        """`F(a)` over a run of adjacent blocks (or `F(a + rest)` for one), written over `a`."""
        lines = [f"# ({self.numbers[('fwd', n.name)]}) {n.name} = {sp.sstr(n.expr)}" for n in run]
        _, lay, k, rest = inplace[run[0].name]
        name = run[0].name if len(run) == 1 else "_".join(["gates", *(n.name for n in run)])
        lines.append(f"{name} = {_index(self.buffer(lay), _bspan(k, k + len(run), lay.blocks))}")
        if rest != 0:
            buf = emit.pool.acquire()
            lines += emit.emit(self.d.computational(rest), buf)
            lines.append(f"{name} += {buf}")
            emit.pool.release()
        lines += emit.emit(self._run_func(run[0])(sp.Symbol(name, real=True)), name)
        prescaled = self.prescaled()
        flags = [n.name in prescaled for n in run]
        if sum(a and not b for a, b in zip(flags, [False, *flags])) > 1:
            # Sigmoid blocks on both sides of a tanh block ([i, f, g, o]): one scale and one shift over
            # the whole run, 1 and 0 on the tanh blocks, instead of a pair of calls per sigmoid stretch.
            scale = ", ".join("0.5" if f else "1.0" for f in flags)
            shift = ", ".join("0.5" if f else "0.0" for f in flags)
            suffix = name.removeprefix("gates_")
            setup.append(f"buf_scale_{suffix} = np.array([{scale}], dtype=dtype).reshape({len(run)}, 1, 1)")
            setup.append(f"buf_shift_{suffix} = np.array([{shift}], dtype=dtype).reshape({len(run)}, 1, 1)")
            lines += [f"{name} *= buf_scale_{suffix}", f"{name} += buf_shift_{suffix}"]
            flags = [False] * len(run)
        j = 0
        while j < len(run):  # finish the prescaled sigmoids: 0.5 * tanh(0.5 a) + 0.5
            if not flags[j]:
                j += 1
                continue
            j1 = j
            while j1 < len(run) and flags[j1]:
                j1 += 1
            view = name if j1 - j == len(run) else _index(self.buffer(lay), _bspan(k + j, k + j1, lay.blocks))
            lines += [f"{view} *= 0.5", f"{view} += 0.5"]
            j = j1
        if len(run) > 1:
            lines += [f"{n.name} = {self.block_view(lay, k + j)}" for j, n in enumerate(run)]
        return lines

    def _merged_adds(self, ops, dst_prefix, vector: bool = False, src_prefix=None, rows: bool = True):
        """Print `dst[block k] += src[block j]` ops, merging consecutive blocks into one slice.
        `rows=False`: the destination of a vector is a (G, 1, H) array of blocks, not a gate buffer."""
        ops = sorted(ops, key=lambda o: (o[0].name, o[2].name, o[1]))
        lines, run = [], None

        def flush():
            if run is None:
                return
            dlay, k0, slay, j0, n = run
            dst = dst_prefix(dlay)
            dspan = _bspan(k0, k0 + n, dlay.blocks)
            dtext = _index(dst, dspan)
            if vector:  # a bias (G*H,): a run of n blocks as (n, 1, H), against (.., n, B, H)
                sspan = block_span(j0, j0 + n, len(slay.members))
                stext = f"{slay.name}[{sspan}]" if sspan else slay.name
                if not rows:
                    pass  # a (G, 1, H) array of blocks: indexed as it is
                elif dlay.kind == "input":
                    dtext = f"buf_{dlay.name}[:, {dspan}]" if dspan else f"buf_{dlay.name}"
                elif not dspan:
                    dtext = f"buf_{dlay.name}"  # all blocks of a step's (B, G*H) GEMM output
                if n > 1 and (dspan or dlay.kind == "input" or not rows):
                    stext += f".reshape({n}, 1, H)"
            else:
                stext = _index(src_prefix(slay), _bspan(j0, j0 + n, slay.blocks))
            lines.append(f"{dtext} += {stext}")

        for dlay, k, slay, j in ops:
            if run and run[0] is dlay and run[2] is slay and k == run[1] + run[4] and j == run[3] + run[4]:
                run = (*run[:4], run[4] + 1)
                continue
            flush()
            run = (dlay, k, slay, j, 1)
        flush()
        return lines

    def _forward_linear(self, seg, done_gemm, per_step_bias, cached) -> list[str]:
        lines = []
        lines += [f"# ({self.numbers[('fwd', n.name)]}) {equation_text(n)}" for n in seg]
        adds = []
        for n in seg:
            hlay, hk = self.home(n)
            for w, _ in n.terms:
                lay, k = self.layout_of(w)
                if lay.kind != "input" and lay.name not in done_gemm:
                    lines.append(f"np.matmul({lay.input}, {lay.name}.T, out=buf_{lay.name})")
                    done_gemm.add(lay.name)
                if (lay, k) != (hlay, hk):
                    adds.append((hlay, hk, lay, k))
        seg_names = {n.name for n in seg}
        consumed_in_place = {hit[0] for hit in self.inplace_nodes().values()}
        bias = [op for op in per_step_bias if op[0].nodes[op[1]] in seg_names]
        # A cached node with one bias and nothing else added to its block (GRU's u_n = W_hn h + b_hn):
        # the bias is added on the way into the cache, one call instead of an add and a copy.
        into_cache = {}
        for op in bias:
            node = op[0].nodes[op[1]]
            alone = sum(o[:2] == op[:2] for o in bias) == 1 and not any(a[:2] == op[:2] for a in adds)
            if node in cached and node not in consumed_in_place and alone:
                into_cache[node] = op
        bias = [op for op in bias if op not in into_cache.values()]
        lines += self._merged_adds(bias, lambda lay: self.buffer(lay), vector=True)
        lines += self._merged_adds(
            adds, lambda lay: self.buffer(lay), src_prefix=lambda lay: self.buffer(lay)
        )
        for n in seg:
            lay, k = self.home(n)
            view = self.block_view(lay, k)
            if n.name in consumed_in_place:
                continue  # the elementwise node that reads it writes over it
            if n.name in into_cache:
                _, _, blay, j = into_cache[n.name]
                span = block_span(j, j + 1, len(blay.members))
                src = f"{blay.name}[{span}]" if span else blay.name
                lines.append(f"{n.name} = cache_{n.name}[t]")
                lines.append(f"np.add({view}, {src}, out={n.name})")
            elif n.name in cached:
                lines.append(f"{n.name} = cache_{n.name}[t]")
                lines.append(f"np.copyto({n.name}, {view})")
            else:
                lines.append(f"{n.name} = {view}")
        return lines

    # -- backward: the folded step and its coefficients ---------------------------------------------
    def chunk_source(self, name: str) -> str | None:
        """The forward value `name` over the steps coef_t0..t (an (n, B, H) view), a parameter vector
        as itself, or None where backward has no such sequence (the value is then not chunked)."""
        s = self.spec
        for st in s.states:
            if name == f"{st}_prev":
                return f"seq_{st}[coef_t0 : t + 1]"
            if name == s.update_of[st]:
                return f"seq_{st}[coef_t0 + 1 : t + 2]"
        hit = self.inplace_nodes().get(name)
        if hit is not None:
            return f"buf_{hit[1].name}[coef_t0 : t + 1, {hit[2]}]"
        if name in self.cached_nodes():
            return f"cache_{name}[coef_t0 : t + 1]"
        if name in {p.name for p in s.elementwise_params()}:
            return name
        return None

    def step_plan(self) -> _StepPlan:
        """Fold and factor the backward step (`symlstm.folding`), give each coefficient that is more
        than a symbol a slot, and find the runs of adjacent blocks that one multiply fills."""
        if self._plan is not None:
            return self._plan
        s = self.spec
        keep = self._linear_names | {f"{st}_prev" for st in s.states} | {s.input}
        folding = fold(self.d, keep)
        terms = {v: factor(e) for v, e in folding.kept.items()}

        def chunked(c: sp.Expr) -> bool:
            return not (c.is_Symbol or c.is_Number) and all(
                self.chunk_source(x.name) is not None for x in c.free_symbols
            )

        order_u = self.grad_order()

        def run_member(v: str) -> tuple[sp.Symbol, int] | None:
            """(adjoint factor, block in the adjoint buffer) of a linear node's single-term adjoint."""
            if v not in self._linear_names or len(terms[v]) != 1 or not chunked(terms[v][0][1]):
                return None
            return (terms[v][0][0], order_u.index(v)) if len(order_u) > 1 else None

        order = list(folding.kept)
        coefficients: list[sp.Expr] = []
        slot_of: dict[tuple[str, sp.Expr], int] = {}  # (vector, adjoint) -> slot
        runs: dict[str, tuple | None] = {}
        members = {v: m for v in order if (m := run_member(v)) is not None}
        for w in dict.fromkeys(m[0] for m in members.values()):
            blocks = sorted((m[1], v) for v, m in members.items() if m[0] == w)
            j = 0
            while j < len(blocks):  # runs of adjacent blocks, each one multiply by d_w
                k = j + 1
                while k < len(blocks) and blocks[k][0] == blocks[k - 1][0] + 1:
                    k += 1
                if k - j > 1:
                    run = [v for _, v in blocks[j:k]]  # block order
                    first = min(run, key=order.index)  # emitted where the first of them was due
                    runs[first] = (run, w, run[0], len(coefficients))
                    runs.update({v: None for v in run if v != first})
                    for v in run:
                        slot_of[(v, w)] = len(coefficients)
                        coefficients.append(terms[v][0][1])
                j = k
        seen: dict[sp.Expr, int] = {}
        exprs: dict[str, sp.Expr] = {}
        for v in order:
            total = sp.S.Zero
            for w, c in terms[v]:
                if (v, w) not in slot_of and chunked(c):
                    if c not in seen:
                        seen[c] = len(coefficients)
                        coefficients.append(c)
                    slot_of[(v, w)] = seen[c]
                if (v, w) in slot_of:
                    c = sp.Symbol(f"coef_step[{slot_of[(v, w)]}]", real=True)
                total += c * w
            exprs[v] = total
        self._plan = _StepPlan(folding, exprs, coefficients, runs)
        return self._plan

    def _param_gradient_expr(self, expr: sp.Expr) -> sp.Expr:
        """An elementwise parameter's per-step gradient in terms of a linear node's adjoint where it is
        a multiple of one (peephole: c_prev*d_i*i*(1 - i) = c_prev * d_a_i, d_a_i already in the step's
        row of grad_rows: one multiply), else with the folded adjoints substituted."""
        adjoints = lambda e: {x for x in e.free_symbols if x.name.startswith(("d_", "din_"))}  # noqa: E731
        for v in self.grad_order():
            own = sp.sympify(self.d.adjoint(v).elementwise)
            if own == 0:
                continue
            ratio = sp.cancel(expr / own)
            if not adjoints(ratio):
                return ratio * sp.Symbol(self.grad_view(v), real=True)
        return self.step_plan().folding.substitute(expr)

    def _coefficient_code(self) -> tuple[list[str], list[str]]:
        """(step lines, setup lines) of the coefficients: at the first step of each chunk (steps
        coef_t0..t, backwards), every coefficient of the chunk at once into coef_buf[:coef_n], then
        this step's row `coef_step`; the setup allocates coef_buf and the chunk scratch."""
        plan = self.step_plan()
        if not plan.coefficients:
            return [], []
        pool = ScratchPool("coef_tmp_")
        emit = InplaceEmitter(self.p, pool)
        names = sorted({x.name for c in plan.coefficients for x in c.free_symbols})
        views = {n: self.chunk_source(n) for n in names}
        body = [
            "coef_t0 = max(0, t + 1 - coef_steps)",
            "coef_n = t + 1 - coef_t0",
            *(f"coef_of_{n} = {src}" for n, src in views.items() if src != n),
        ]
        rename = {
            sp.Symbol(n, real=True): sp.Symbol(f"coef_of_{n}" if src != n else n, real=True)
            for n, src in views.items()
        }
        temps, reduced = sp.cse(
            [c.xreplace(rename) for c in plan.coefficients],
            symbols=sp.numbered_symbols("coef_cse_", real=True),
        )
        # A shared factor that is itself a coefficient is computed straight into that coefficient's slot.
        home = {e: j for j, e in reversed(list(enumerate(reduced))) if e in dict(temps)}
        named = {x: sp.Symbol(f"coef_{home[x]}", real=True) for x, _ in temps if x in home}
        lines: list[str] = []
        for x, e in temps:  # factors shared by several coefficients, e.g. GRU's (1 - z) and (1 - n**2)
            if x in home:
                j = home[x]
                lines.append(f"# coef {j} = {sp.sstr(plan.coefficients[j])}, also a factor of others")
                lines.append(f"coef_{j} = coef_buf[:coef_n, {j}]")
            else:
                lines.append(f"{x.name} = {x.name}_all[:coef_n]")
            lines += emit.emit(e.xreplace(named), named.get(x, x).name)
        for j, (c, e) in enumerate(zip(plan.coefficients, reduced)):
            if named.get(e) == sp.Symbol(f"coef_{j}", real=True):
                continue  # computed above, as a shared factor
            lines.append(f"# coef {j} = {sp.sstr(c)}")
            lines.append(f"coef_{j} = coef_buf[:coef_n, {j}]")
            lines += emit.emit(e.xreplace(named), f"coef_{j}")
        body += [f"coef_tmp_{k} = coef_tmp_{k}_all[:coef_n]" for k in range(pool.size)]
        body += lines
        step = [
            "if t < coef_t0:  # the next chunk of steps: its coefficients of the adjoints, all at once",
            *("    " + line for line in body),
            "coef_step = coef_buf[t - coef_t0]",
        ]
        setup = [
            "# Coefficients of the adjoints (forward values only), computed for chunks of steps at once,",
            "# outside the recurrence: at most 4096 numbers per coefficient and chunk, or one step.",
            "coef_steps = max(1, min(T, 4096 // max(B * H, 1)))",
            f"coef_buf = np.empty((coef_steps, {len(plan.coefficients)}, B, H), dtype=dtype)",
            *(f"coef_tmp_{k}_all = np.empty((coef_steps, B, H), dtype=dtype)" for k in range(pool.size)),
            *(f"{x.name}_all = np.empty((coef_steps, B, H), dtype=dtype)" for x, _ in temps if x not in home),
            "coef_t0 = T",
        ]
        return step, setup

    def _emit_run(self, v: str) -> list[str]:
        """One multiply for a run of adjacent blocks: grad_step[u0:u1] = coef_step[j0:j1] * d_w."""
        run = self.step_plan().runs[v]
        if run is None:
            return []  # done with the first member of its run
        vectors, w, low, slot = run
        n = len(vectors)
        vjp_order = [a.vector for a in self.d.vjp]
        lines = [
            f"# ({self.numbers[('adj', u)]}) {adjoint(u)} = {sp.sstr(self.d.adjoint(u).elementwise)}"
            for u in sorted(vectors, key=vjp_order.index)
        ]
        target = self.grad_view(low, n)
        lines.append(f"np.multiply(coef_step[{slot}:{slot + n}], {self.p._print(w)}, out={target})")
        return lines

    # -- backward --------------------------------------------------------------------------------
    def backward(self, mod: NumpyModule) -> None:
        s, d = self.spec, self.d
        setup, step, end = mod.backward_setup, mod.backward_step, mod.backward_end
        pool = ScratchPool()
        emit = InplaceEmitter(self.p, pool)
        cached = self.cached_nodes()
        state_node = {node: st for st, node in s.updates}
        plan = self.step_plan()
        folded = plan.folding.folded
        elem_params = [g for g in d.param_gradients if g.kind == "elementwise"]
        param_exprs = {g.param: self._param_gradient_expr(g.expr) for g in elem_params}
        x_adjoint = plan.folding.substitute(d.adjoint(s.input).elementwise)
        step_exprs = [*plan.exprs.values(), *param_exprs.values(), x_adjoint]
        need = {x.name for e in step_exprs for x in e.free_symbols}
        linear_names = {n.name for n in s.nodes if isinstance(n, LinearNode)}
        U = len(self.grad_order())
        setup.append(
            f"# Adjoints of the linear nodes {', '.join(self.grad_order())}, one (B, {U} * H) row per step."
        )
        setup.append(f"grad_rows = np.empty((T, B, {U} * H), dtype=dtype)")
        if U == 1:
            setup.append("grad_step = grad_rows.reshape(T, 1, B, H)")
        else:
            setup.append(f"grad_rows_g = grad_rows.reshape(T, B, {U}, H).transpose(0, 2, 1, 3)")
        for k, st in enumerate(s.states):
            setup.append(
                f"d_{st}_prev = np.zeros((B, H), dtype=dtype) if dstate is None else dstate[{k}].copy()"
            )
            setup.append(f"din_{s.update_of[st]} = np.empty((B, H), dtype=dtype)")
        aliases = set()  # adjoints that are just the incoming gradient
        for a in d.vjp:
            if a.vector in s.leaves or a.vector in linear_names or a.vector in folded:
                continue
            if a.incoming and a.elementwise == 0 and not a.linear:
                aliases.add(a.vector)
            else:
                setup.append(f"{adjoint(a.vector)} = np.empty((B, H), dtype=dtype)")
        x_elementwise = x_adjoint != 0
        if x_elementwise:
            setup.append("dx = np.zeros((T, B, I), dtype=dtype)")
        for g in self.stored_groups_with(elem_params):
            setup.append(f"d_{g.name} = np.zeros({self.group_shape(g)}, dtype=dtype)")
            for m in g.members:
                if m != g.name:
                    setup.append(f"d_{m} = {member_view('d_' + g.name, g, m)}")

        # -- one step, in reverse --
        coef_step, coef_setup = self._coefficient_code()
        step += coef_step
        setup += coef_setup
        # A step's adjoints are written straight into their row of grad_rows, through a (U, B, H) view:
        # the operand of the step's recurrent GEMMs and, after the loop, of the weight-gradient GEMMs.
        if U > 1:
            step.append("grad_step = grad_rows_g[t]")
        for st in s.states:
            if f"{st}_prev" in need:
                step.append(f"{st}_prev = seq_{st}[t]")
            if s.update_of[st] in need:
                step.append(f"{s.update_of[st]} = seq_{st}[t + 1]")
        step += [f"{v} = cache_{v}[t]" for v in cached if v in need]
        step += [f"{v} = {self.stored_at(v)}" for v in self.inplace_nodes() if v in need]
        step.append("# Gradients arriving at this step's outputs: the loss at t and the later steps.")
        for st in s.states:
            node = s.update_of[st]
            if node == s.output:
                step.append(f"np.add(dy[t], d_{st}_prev, out=din_{node})")
            else:
                step.append(f"din_{node}, d_{st}_prev = d_{st}_prev, din_{node}")
        if s.output not in state_node:
            step.append(f"din_{s.output} = dy[t]")
        reduced, emit_temps, hoisted = self._backward_cse(aliases, emit, setup)
        for a in d.vjp:
            v = a.vector
            if v == s.input:
                continue
            number = self.numbers[("adj", v)]
            if v in folded:
                step.append(
                    f"# ({number}) {adjoint(v)} = {sp.sstr(a.elementwise)}: folded into the coefficients"
                )
                continue
            if v in plan.runs:
                step += self._emit_run(v)
                continue
            if v in linear_names:
                step.append(f"# ({number}) {adjoint(v)} = {sp.sstr(a.elementwise)}")
                step += emit_temps(reduced[v])
                if v not in hoisted:
                    step.append(f"{adjoint(v)} = {self.grad_view(v)}")
                    step += emit.emit(reduced[v], adjoint(v))
                continue
            total = a.elementwise + (sp.Symbol(f"din_{v}", real=True) if a.incoming else 0)
            gemms = list(dict.fromkeys(self.layout_of(w)[0].name for w, _ in a.linear))
            desc = sp.sstr(total) if total != 0 else ""
            desc += "".join(f" + {w}^T {adjoint(n)}" for w, n in a.linear)
            step.append(f"# ({number}) {adjoint(v)} = {desc.removeprefix(' + ')}")
            if v in aliases:
                step.append(f"{adjoint(v)} = din_{v}")
                continue
            target = adjoint(v)
            if total != 0:
                step += emit_temps(reduced[v])
                step += emit.emit(reduced[v], target)
            products = [
                (
                    f"grad_rows[t{', :, ' + cols if (cols := self.grad_columns(u0, n)) else ''}]",
                    _rows(gname, k0, n, lay),
                )
                for gname in gemms
                for lay in [self.layouts[gname]]
                for k0, u0, n in self.grad_runs(lay)
            ]
            for j, (rows, weight) in enumerate(products):
                if total == 0 and j == 0:
                    step.append(f"np.matmul({rows}, {weight}, out={target})")
                else:
                    buf = pool.acquire()
                    step.append(f"np.matmul({rows}, {weight}, out={buf})")
                    step.append(f"{target} += {buf}")
                    pool.release()
            if total == 0 and not gemms:
                step.append(f"{target}.fill(0)")
        if x_elementwise:
            step += emit.emit(x_adjoint, "dx[t]")
        for g in elem_params:
            buf = pool.acquire()
            number = self.numbers[("grad", g.param)]
            step.append(f"# ({number}) d_{g.param} += batch sum of {sp.sstr(g.expr)}")
            step += emit.emit(param_exprs[g.param], buf)
            step.append(f"d_{g.param} += {buf}.sum(axis=0)")
            pool.release()
        setup += [f"buf_{k} = np.empty((B, H), dtype=dtype)" for k in range(pool.size)]

        # -- after the loop: weight gradients and dx as one GEMM each, biases as one sum each --
        end.append("# Weight gradients of all steps at once: one GEMM per fused weight.")
        for g in d.param_gradients:
            if g.kind == "weight":
                number = self.numbers[("grad", g.param)]
                end.append(f"# ({number}) d_{g.param} = sum over t of {adjoint(g.node)} {g.input}^T")
        end.append(f"grad_all = grad_rows.reshape(T * B, {U} * H)")
        for lay in self.layouts.values():
            if lay.kind == "input":
                src, n_in = "x", "I"
            elif lay.kind == "recurrent":
                src, n_in = f"seq_{lay.input.removesuffix('_prev')}[:-1]", "H"
            else:
                src, n_in = f"cache_{lay.input}", "H"
            runs = self.grad_runs(lay)
            if len(runs) == 1:
                end.append(
                    f"d_{lay.name} = np.matmul({_grad_all(self, runs[0])}.T, {src}.reshape(T * B, {n_in}))"
                )
                continue
            end.append(f"d_{lay.name} = np.empty({self.group_shape(lay.group)}, dtype=dtype)")
            for run in runs:
                k0, _, n = run
                out = f"d_{lay.name}[{block_span(k0, k0 + n, lay.blocks) or '...'}]"
                end.append(f"np.matmul({_grad_all(self, run)}.T, {src}.reshape(T * B, {n_in}), out={out})")
        x_gemms = [lay for lay in self.layouts.values() if lay.kind == "input"]
        xa = d.adjoint(s.input)
        desc = " + ".join(f"{w}^T {adjoint(n)}" for w, n in xa.linear)
        end.append(f"# ({self.numbers[('adj', s.input)]}) {adjoint(s.input)} = {desc}, all steps at once")
        j = 0
        for lay in x_gemms:
            for run in self.grad_runs(lay):
                weight = _rows(lay.name, run[0], run[2], lay)
                product = f"np.matmul({_grad_all(self, run)}, {weight}).reshape(T, B, I)"
                end.append(f"dx {'+=' if x_elementwise or j else '='} {product}")
                j += 1
        if not x_gemms and not x_elementwise:
            end.append("dx = np.zeros((T, B, I), dtype=dtype)")
        end += self._bias_gradients(elem_params)
        end.append("dparams = {" + ", ".join(f'"{g.name}": d_{g.name}' for g in s.groups) + "}")
        end.append("dstate0 = " + tuple_source([f"d_{st}_prev" for st in s.states], quote=False))
        _hoist_views(setup, step)

    def _backward_cse(self, aliases: set[str], emit: InplaceEmitter, setup: list[str]):
        """Common subexpressions of the step's adjoint expressions, each computed once.

        After folding the expressions are sums of coefficient * adjoint, so what repeats is a product
        (two adjoints with the same coefficient and factor, outside a run). A pre-activation adjoint
        that *is* a common subexpression is computed straight into its block of the adjoint buffer at
        its first use and read from there; other common subexpressions get a (B, H) scratch array
        `cse_k`, filled just before their first use. No built-in cell has any left after folding.

        Returns (vector -> expression to emit, emit_temps(expr) -> lines, hoisted vectors).
        """
        s, d = self.spec, self.d
        linear_names = self._linear_names
        plan = self.step_plan()
        exprs: dict[str, sp.Expr] = {}
        for a in d.vjp:
            v = a.vector
            if v == s.input or v in aliases or v in plan.folding.folded or v in plan.runs:
                continue
            total = plan.exprs[v]
            if v not in linear_names and a.incoming:
                total = total + sp.Symbol(f"din_{v}", real=True)
            exprs[v] = total
        names = list(exprs)
        temps, out = sp.cse([exprs[v] for v in names], symbols=sp.numbered_symbols("cse_", real=True))
        reduced = dict(zip(names, out))
        temp_expr = dict(temps)
        storage: dict[sp.Symbol, str] = {}
        hoisted: set[str] = set()
        for v in names:
            x = reduced[v]
            if v in linear_names and x in temp_expr and x not in storage:
                storage[x] = v
                hoisted.add(v)
        subs = {x: sp.Symbol(adjoint(v), real=True) for x, v in storage.items()}
        reduced = {v: e.xreplace(subs) for v, e in reduced.items()}
        temp_expr = {x: e.xreplace(subs) for x, e in temp_expr.items()}
        by_name = {sp.Symbol(adjoint(v), real=True): x for x, v in storage.items()}
        for x in temp_expr:
            if x not in storage:
                setup.append(f"{x.name} = np.empty((B, H), dtype=dtype)")
        done: set[sp.Symbol] = set()

        def emit_temps(expr: sp.Expr) -> list[str]:
            lines: list[str] = []
            for sym in sorted(expr.free_symbols, key=lambda z: z.name):
                x = by_name.get(sym, sym)
                if x not in temp_expr or x in done:
                    continue
                lines += emit_temps(temp_expr[x])
                done.add(x)
                if x in storage:
                    v = storage[x]
                    number = self.numbers[("adj", v)]
                    lines.append(f"# ({number}) {adjoint(v)} first: a common subexpression, computed once")
                    lines.append(f"{adjoint(v)} = {self.grad_view(v)}")
                    lines += emit.emit(temp_expr[x], adjoint(v))
                else:
                    lines += emit.emit(temp_expr[x], x.name)
            return lines

        return reduced, emit_temps, hoisted

    def _bias_gradients(self, elem_params) -> list[str]:
        """Each bias gradient as slices of one sum of the adjoint buffer over time and batch."""
        s = self.spec
        elementwise_only = {g.param for g in elem_params}
        order = self.grad_order()
        groups = [
            g
            for g in s.groups
            if not s.param(g.members[0]).is_matrix and not all(m in elementwise_only for m in g.members)
        ]
        if not groups:
            return []
        lines = [
            "# Bias gradients: sums of the pre-activation adjoints over time and batch, one pass for all.",
            "grad_sums = grad_all.sum(axis=0)",
        ]
        for g in groups:
            ops = []  # (block of the group, block of the adjoint buffer)
            for j, m in enumerate(g.members):
                for n in s.nodes:
                    if isinstance(n, LinearNode) and m in n.biases:
                        ops.append((j, order.index(n.name)))
            runs: list[list[int]] = []  # [j0, u0, count]
            for j, u in sorted(ops):
                if runs and j == runs[-1][0] + runs[-1][2] and u == runs[-1][1] + runs[-1][2]:
                    runs[-1][2] += 1
                else:
                    runs.append([j, u, 1])
            if len(runs) == 1 and runs[0][0] == 0 and runs[0][2] == len(g.members):
                cols = block_span(runs[0][1], runs[0][1] + runs[0][2], len(order))
                lines.append(f"d_{g.name} = grad_sums{f'[{cols}]' if cols else ''}.copy()")
                continue
            lines.append(f"d_{g.name} = np.empty({self.group_shape(g)}, dtype=dtype)")
            for j, u, count in runs:
                span = block_span(j, j + count, len(g.members))
                cols = block_span(u, u + count, len(order))
                dst = f"d_{g.name}[{span}]" if span else f"d_{g.name}[...]"
                lines.append(f"{dst} = grad_sums{f'[{cols}]' if cols else ''}")
        return lines

    # -- parameters --------------------------------------------------------------------------------
    def stored_groups_with(self, grads) -> list[FuseGroup]:
        names = {g.param for g in grads}
        return [g for g in self.spec.groups if any(m in names for m in g.members)]

    def group_shape(self, g: FuseGroup) -> str:
        return group_shape(self.spec, g)


def gemm_layouts(d: Derivation) -> list[Layout]:
    """The fused weight groups of a cell, each one GEMM: `kind` "input" (all steps at once, before the
    loop) or "recurrent"/"inner" (one GEMM per step). The benchmark's GEMM floor is built from these."""
    return list(_Planner(d).layouts.values())


def plan_numpy(d: Derivation) -> NumpyModule:
    """Plan the NumPy module of a derived cell: every line of its computation, printed."""
    planner = _Planner(d)
    s = d.spec
    head = module_head(d)
    mod = NumpyModule(
        spec_name=head.spec_name,
        title=head.title,
        doc=head.doc,
        source=head.source,
        states=list(head.states),
        output=head.output,
        equations=list(head.equations),
        groups=list(head.groups),
        torch=head.torch,
        same_size=head.same_size,
    )
    mod.initial_states = tuple_source([f"{st}0" for st in s.states], quote=False)
    mod.initial_tangents = tuple_source([f"tan_{st}0" for st in s.states], quote=False)
    mod.jvp_states = tuple_source([f"{st}_prev" for st in s.states], quote=False)
    mod.jvp_tangents = tuple_source([f"tan_{st}_prev" for st in s.states], quote=False)
    mod.final_states = tuple_source([f"seq_{st}[T].copy()" for st in s.states], quote=False)
    mod.param_views = [
        f"{m} = {member_view(g.name, g, m)}"
        for g in s.groups
        for m in g.members
        if m != g.name and any(p.name == m for p in s.elementwise_params())
    ]
    mod.states_tuple = tuple_source(s.states)
    mod.jvp_body = _jvp_lines(d, planner.p)
    planner.forward(mod)
    planner.backward(mod)
    mod.forward_setup = _from_workspace(mod.forward_setup, "forward")
    mod.backward_setup = _from_workspace(mod.backward_setup, "backward")
    # Unpack only the arrays a function body reads.
    fwd_body = [*mod.param_views, *mod.forward_setup, *mod.forward_step, *mod.forward_end]
    bwd_body = [*mod.param_views, *mod.backward_setup, *mod.backward_step, *mod.backward_end]
    mod.forward_params = [g.name for g in s.groups if _reads(fwd_body, g.name)]
    mod.backward_params = [g.name for g in s.groups if _reads(bwd_body, g.name)]
    mod.backward_cache = [k for k in mod.cache_keys if _reads(bwd_body, k)]
    return mod


_ALLOCATION = re.compile(r"^(\w+) = np\.(empty|zeros)\((\(.+\)), dtype=dtype\)$")


def _from_workspace(setup: list[str], function: str) -> list[str]:
    """Every array a function allocates for its own work or for the cache, taken from the caller's
    `workspace` dict when one is given (`_array`), so that a training loop reuses the same memory call
    after call; gradients it returns (`d_*`, `dx`, and `din_*`, which a step swaps with the state
    adjoints `d_<state>_prev` that backward returns) are always new arrays."""
    out = []
    for line in setup:
        m = _ALLOCATION.match(line)
        if m is None or m.group(1).startswith(("d_", "din_")) or m.group(1) == "dx":
            out.append(line)
            continue
        name, kind, shape = m.groups()
        out.append(f'{name} = _array(workspace, "{function}.{name}", {shape}, dtype)')
        if kind == "zeros":
            out.append(f"{name}.fill(0)")
    return out


def _rows(weight: str, k0: int, n: int, lay: Layout) -> str:
    """The rows of blocks [k0, k0 + n) of a fused weight: `W_hh`, `W_hh[: 2 * H]`."""
    span = block_span(k0, k0 + n, lay.blocks)
    return f"{weight}[{span}]" if span else weight


def _grad_all(planner: _Planner, run: tuple[int, int, int]) -> str:
    """The columns of a run of the (T * B, U * H) adjoint matrix: `grad_all`, `grad_all[:, H:]`."""
    cols = planner.grad_columns(run[1], run[2])
    return f"grad_all[:, {cols}]" if cols else "grad_all"


_VIEW = re.compile(r"^(\w+) = (\w+)\[t, (\d+)\]$")


def _hoist_views(setup: list[str], step: list[str]) -> None:
    """`i = buf_W_ih[t, 0]` in the loop becomes `i = i_seq[t]` with `i_seq = buf_W_ih[:, 0]` made once
    before it: a plain index costs less than a tuple index, which counts at B = 1."""
    targets = [m.group(1) for m in map(_VIEW.match, step) if m]
    for k, line in enumerate(step):
        m = _VIEW.match(line)
        if m and targets.count(m.group(1)) == 1:
            name, array, span = m.groups()
            setup.append(f"{name}_seq = {array}[:, {span}]")
            step[k] = f"{name} = {name}_seq[t]"


def _reads(lines: list[str], name: str) -> bool:
    """Whether code lines use `name` as an identifier (not inside a string or a comment)."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    code = (re.sub(r'"[^"]*"', "", line.split("#", 1)[0]) for line in lines)
    return any(pattern.search(line) for line in code)


def _jvp_lines(d: Derivation, printer: NumpyCodePrinter) -> list[str]:
    """Forward-mode (tangent) code, written per node and unfused: an implementation of the cell
    independent of the fused forward, used by the dot-product test against `backward`."""
    s = d.spec
    p = printer.doprint
    lines = []
    for g in s.groups:
        for m in g.members:
            lines.append(f"{m} = {member_view(g.name, g, m)}")
            lines.append(f"tan_{m} = {member_view('tan_' + g.name, g, m)}")
    for st in s.states:
        lines.append(f"{st}_prev, tan_{st}_prev = {st}0, tan_{st}0")
    lines.append("ys = np.empty((T, B, H), dtype=dtype)")
    lines.append("tan_ys = np.empty((T, B, H), dtype=dtype)")
    lines.append("for t in range(T):")
    body = [f"{s.input}, tan_{s.input} = xs[t], tan_xs[t]"]
    for n in s.nodes:
        number = d.equation_numbers[("fwd", n.name)]
        if isinstance(n, LinearNode):
            body.append(f"# ({number}) {equation_text(n)}")
            value = [f"{u} @ {w}.T" for w, u in n.terms] + list(n.biases)
            tangent = [f"tan_{u} @ {w}.T + {u} @ tan_{w}.T" for w, u in n.terms]
            tangent += [f"tan_{b}" for b in n.biases]
            body.append(f"{n.name} = {' + '.join(value)}")
            body.append(f"tan_{n.name} = {' + '.join(tangent)}")
            continue
        body.append(f"# ({number}) {n.name} = {sp.sstr(n.expr)}")
        for m in d.intermediates_of(n.name):
            body.append(f"{m.name} = {p(m.call.func(*(d.computational(a) for a in m.call.args)))}")
        body.append(f"{n.name} = {p(d.computational(n.expr))}")
        tangent = next(t for t in d.jvp if t.node == n.name).expr
        body.append(f"tan_{n.name} = {p(tangent) if tangent != 0 else 'np.zeros_like(' + n.name + ')'}")
    body.append(f"ys[t], tan_ys[t] = {s.output}, tan_{s.output}")
    for st in s.states:
        node = s.update_of[st]
        body.append(f"{st}_prev, tan_{st}_prev = {node}, tan_{node}")
    lines += ["    " + line for line in body]
    return [wrapped for line in lines for wrapped in wrap(line, indent=4)]
