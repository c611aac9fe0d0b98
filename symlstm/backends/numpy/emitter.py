"""Generate a NumPy module (forward, backward, torch conversion) for a derived cell.

Every decision about the computation is made here, in Python; the Jinja2 template only lays out the
printed lines. The generated code is fast by construction:

* weights that share an input are one fused array, so all gates cost one GEMM;
* the input projection of every step is one GEMM before the loop, and the input-weight and recurrent-
  weight gradients are one GEMM each after the loop (the per-step adjoints are kept for that);
* each time step writes into preallocated buffers with in-place ufuncs (`inplace.InplaceEmitter`);
* Jacobians are never formed: a product with diag(f) is `f * v`;
* backward's step is folded and factored (`symlstm.folding`): the coefficients of the adjoints, which
  read forward values only, are computed for chunks of steps outside the recurrence, and a step makes
  one multiply per adjoint term, one for a run of adjacent gate blocks;
* only what backward reads is cached.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import sympy as sp

from ...engine import Derivation
from ...naming import adjoint
from ...plan import CellPlan, Gemm, coefficient, plan_cell
from ...spec import ElementwiseNode, FuseGroup, LinearNode
from .head import SizeTexts, module_head
from .inplace import InplaceEmitter, ScratchPool
from .printer import NumpyCodePrinter
from .source import block_span, equation_text, group_shape, member_view, tuple_source, wrap

__all__ = ["NumpyEmitter", "NumpyModule", "numpy_module"]


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
    sizes: SizeTexts
    jvp_body: list[str] = field(default_factory=list)
    forward_setup: list[str] = field(default_factory=list)
    forward_step: list[str] = field(default_factory=list)
    forward_end: list[str] = field(default_factory=list)
    cache_keys: list[str] = field(default_factory=list)
    backward_setup: list[str] = field(default_factory=list)
    backward_step: list[str] = field(default_factory=list)
    backward_end: list[str] = field(default_factory=list)


class NumpyEmitter:
    """Prints a cell's NumPy module from its plan: every line of forward and backward."""

    def __init__(self, plan: CellPlan):
        self.plan = plan
        self.d = plan.derivation
        self.spec = self.d.spec
        self.step_names = {self.spec.input: "x[t]"}  # the input read elementwise, at the step's row
        self.p = NumpyCodePrinter(self.step_names)
        self.layouts = dict(plan.gemms)
        self.numbers = self.d.equation_numbers
        self.function = "forward"  # the function being emitted: the key prefix of its workspace arrays

    def scratch(self, name: str, shape: str, *, zeros: bool = False) -> list[str]:
        """Allocate an array the function uses for its own work or for the cache: taken from the
        caller's workspace dict when one is given (`_array`), so that a training loop reuses the same
        memory call after call. (Gradients a function returns are always new arrays: not this.)"""
        lines = [f'{name} = _array(workspace, "{self.function}.{name}", {shape}, dtype)']
        return [*lines, f"{name}.fill(0)"] if zeros else lines

    def layout_of(self, weight: str) -> tuple[Gemm, int]:
        return self.plan.gemm_of(weight)

    def home(self, node: LinearNode) -> tuple[Gemm, int]:
        """Where a linear node's pre-activation lives: the block of its first weight's GEMM output."""
        gemm, k = self.plan.home[node.name]
        return self.layouts[gemm], k

    def buffer(self, lay: Gemm) -> str:
        name = f"buf_{lay.name}"
        return f"{name}[t" if lay.kind == "input" else f"{name}_g["

    def block_view(self, lay: Gemm, k: int) -> str:
        return _index(self.buffer(lay), _bspan(k, k + 1, lay.blocks))

    def grad_view(self, node: str, n: int = 1) -> str:
        """The adjoints of `n` linear nodes from `node` on, in the step's row of the adjoint buffer:
        `grad_step[2]`, `grad_step[0:3]` (a (U, B, H) view), or `grad_step[t, 0]` when U = 1."""
        order = self.grad_order()
        u = order.index(node)
        step = "grad_step[t" if len(order) == 1 else "grad_step["
        return _index(step, _bspan(u, u + n, len(order)))

    def grad_order(self) -> list[str]:
        return list(self.plan.adjoint_order)

    def grad_runs(self, lay: Gemm) -> list[tuple[int, int, int]]:
        return list(self.plan.adjoint_runs[lay.name])

    def grad_columns(self, u0: int, n: int) -> str:
        """The column span `H : 3 * H` of blocks [u0, u0 + n) ('' for all)."""
        return block_span(u0, u0 + n, len(self.grad_order()))

    # -- what backward reads -------------------------------------------------------------------
    def backward_symbols(self) -> set[str]:
        return set(self.plan.backward_reads)

    def inplace_nodes(self) -> dict[str, tuple[str, Gemm, int, sp.Expr]]:
        """Gates written over their pre-activation: node -> (pre-activation, GEMM, block, rest)."""
        return {n: (g.pre, self.layouts[g.gemm], g.block, g.rest) for n, g in self.plan.gates.items()}

    @property
    def _linear_names(self) -> set[str]:
        return {n.name for n in self.spec.nodes if isinstance(n, LinearNode)}

    def bind(self, name: str, lay: Gemm, k: int) -> str | StepView:
        """`name` bound at each step to block k of a GEMM's output."""
        if lay.kind == "input":
            return StepView(name, f"buf_{lay.name}", k)
        return f"{name} = {self.block_view(lay, k)}"

    def bind_adjoint(self, node: str) -> str | StepView:
        """`d_<node>` bound at each step to the node's block of the adjoint buffer."""
        if len(self.grad_order()) == 1:
            return StepView(adjoint(node), "grad_step", 0)
        return f"{adjoint(node)} = {self.grad_view(node)}"

    def cached_nodes(self) -> list[str]:
        return list(self.plan.cached)

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
        state_node = dict(self.plan.state_of)
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
                    setup += self.scratch(f"buf_{lay.name}_bias", f"({G}, 1, H)", zeros=True)
                    setup += self._merged_adds(
                        biases, lambda lay: f"buf_{lay.name}_bias[", vector=True, rows=False
                    )
                if G == 1:
                    setup.append(f"# Input projection of all {lay.name} blocks for every step: one GEMM.")
                    setup += self.scratch(f"buf_{lay.name}", "(T, 1, B, H)")
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
                    f"# ({self.plan.projection_rows} rows, or one step) into a scratch that stays in cache, "
                    "then into place" + (" with the biases added." if biases else "."),
                    *self.scratch(f"buf_{lay.name}", f"(T, {G}, B, H)"),
                    f"buf_steps = max(1, min(T, {self.plan.projection_rows} // max(B, 1)))",
                    *self.scratch("buf_proj", f"(buf_steps * B, {G} * H)"),
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
            setup += self.scratch(f"seq_{st}", "(T + 1, B, H)")
            setup.append(f"seq_{st}[0] = {st}0")
        for v in cached:
            setup += self.scratch(f"cache_{v}", "(T, B, H)")
        out_node = s.output
        if out_node not in state_node and out_node not in cached:
            setup += self.scratch(f"cache_{out_node}", "(T, B, H)")
            cached.append(out_node)
        for lay in self.layouts.values():
            if lay.kind != "input":
                setup += self.scratch(f"buf_{lay.name}", f"(B, {lay.blocks} * H)")
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
            setup += self.scratch(v, "(B, H)")
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
            for other in self.plan.copies.get(n.name, ()):  # further states with the same new value
                step.append(f"np.copyto(seq_{other}[t + 1], {n.name})")
        # A sequence that has ended (lengths=) keeps its state over the remaining steps.
        step.append("if buf_past is not None:  # steps past a sequence's length keep its state")
        step += [f"    np.copyto(seq_{st}[t + 1], seq_{st}[t], where=buf_past[t])" for st in s.states]
        for k in range(pool.size):
            setup += self.scratch(f"buf_{k}", "(B, H)")
        y = f"seq_{state_node[out_node]}[1:]" if out_node in state_node else f"cache_{out_node}[:]"
        # y is a view of arrays backward reads: the caller gets it read-only (and the cache's fingerprint
        # includes it), so that writing into it cannot make backward's gradients wrong. Past a
        # sequence's length y is 0, as torch's pad_packed_sequence gives it.
        mod.forward_end += [
            f"y = {y}",
            "if buf_past is not None:",
            "    y = np.where(buf_past, 0, y)",
            "y.flags.writeable = False",
        ]
        _resolve_views(setup, step)
        mod.cache_keys = [
            *(f"seq_{st}" for st in s.states),
            *self.cached_buffers(),
            *(f"cache_{v}" for v in cached),
        ]

    def prescaled(self) -> dict[str, str]:
        return {n: self.plan.gates[n].pre for n in self.plan.prescaled}

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
        if len(run) == 1:
            lines.append(self.bind(name, lay, k))
        else:
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
            lines += [self.bind(n.name, lay, k + j) for j, n in enumerate(run)]
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
                lines.append(self.bind(n.name, lay, k))
        return lines

    # -- backward: the folded step and its coefficients ---------------------------------------------
    def chunk_source(self, name: str) -> str | None:
        """The forward value `name` over the steps coef_t0..t (an (n, B, H) view), a parameter vector
        as itself, or None where backward has no such sequence (the value is then not chunked)."""
        s = self.spec
        if name == s.input:
            return "x[coef_t0 : t + 1]"
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

    def sequence(self, name: str) -> str:
        """The forward value `name` over all steps, a (T, B, H) array or view."""
        s = self.spec
        if name in self.plan.state_of:
            return f"seq_{self.plan.state_of[name]}[1:]"
        if name in self.plan.gates:
            slot = self.plan.gates[name]
            return f"buf_{slot.gemm}[:, {slot.block}]"
        if name in s.prev_names:
            return f"seq_{name.removesuffix('_prev')}[:-1]"
        return f"cache_{name}"

    def step_plan(self):
        return self.plan.step

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
            f"# outside the recurrence: at most {self.plan.coefficient_numbers} numbers per coefficient and "
            "chunk, or one step.",
            f"coef_steps = max(1, min(T, {self.plan.coefficient_numbers} // max(B * H, 1)))",
            *self.scratch("coef_buf", f"(coef_steps, {len(plan.coefficients)}, B, H)"),
            *(
                line
                for k in range(pool.size)
                for line in self.scratch(f"coef_tmp_{k}_all", "(coef_steps, B, H)")
            ),
            *(
                line
                for x, _ in temps
                if x not in home
                for line in self.scratch(f"{x.name}_all", "(coef_steps, B, H)")
            ),
            "coef_t0 = T",
        ]
        return step, setup

    def _emit_run(self, v: str) -> list[str]:
        """One multiply for a run of adjacent blocks: grad_step[u0:u1] = coef_step[j0:j1] * d_w."""
        run = self.step_plan().runs[v]
        if run is None:
            return []  # done with the first member of its run
        vectors, w, low, slot = run.vectors, run.factor, run.first, run.slot
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
        self.function = "backward"
        s, d = self.spec, self.d
        setup, step, end = mod.backward_setup, mod.backward_step, mod.backward_end
        pool = ScratchPool()
        plan = self.step_plan()
        # The step reads coefficient slot j as coef_step[j]; a parameter's gradient reads the linear
        # nodes' adjoints from their blocks of the adjoint buffer.
        slots = {coefficient(j).name: f"coef_step[{j}]" for j in range(len(plan.coefficients))}
        emit = InplaceEmitter(NumpyCodePrinter({**self.step_names, **slots}), pool)
        views = {adjoint(v): self.grad_view(v) for v in self.grad_order()}
        emit_grads = InplaceEmitter(NumpyCodePrinter({**self.step_names, **slots, **views}), pool)
        cached = self.cached_nodes()
        state_node = dict(self.plan.state_of)
        folded = plan.folding.folded
        elem_params = [g for g in d.param_gradients if g.kind == "elementwise"]
        param_exprs = dict(self.plan.param_gradients)
        x_adjoint = plan.folding.substitute(d.adjoint(s.input).elementwise)
        step_exprs = [*plan.exprs.values(), *param_exprs.values(), x_adjoint]
        need = {x.name for e in step_exprs for x in e.free_symbols}
        linear_names = {n.name for n in s.nodes if isinstance(n, LinearNode)}
        U = len(self.grad_order())
        setup.append(
            f"# Adjoints of the linear nodes {', '.join(self.grad_order())}, one (B, {U} * H) row per step."
        )
        setup += self.scratch("grad_rows", f"(T, B, {U} * H)")
        if U == 1:
            setup.append("grad_step = grad_rows.reshape(T, 1, B, H)")
        else:
            setup.append(f"grad_rows_g = grad_rows.reshape(T, B, {U}, H).transpose(0, 2, 1, 3)")
        for k, st in enumerate(s.states):
            setup.append(
                f"d_{st}_prev = np.zeros((B, H), dtype=dtype) if dstate is None else dstate[{k}].copy()"
            )
            if self.plan.state_of[s.update_of[st]] == st:
                setup.append(f"din_{s.update_of[st]} = np.empty((B, H), dtype=dtype)")
        aliases = self.plan.aliases  # adjoints that are just the incoming gradient
        for a in d.vjp:
            if a.vector in s.leaves or a.vector in linear_names or a.vector in folded or a.vector in aliases:
                continue
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
            if s.update_of[st] in need and self.plan.state_of[s.update_of[st]] == st:
                step.append(f"{s.update_of[st]} = seq_{st}[t + 1]")
        step += [f"{v} = cache_{v}[t]" for v in cached if v in need]
        step += [self.bind(v, lay, k) for v, (_, lay, k, _) in self.inplace_nodes().items() if v in need]
        # Past a sequence's length (lengths=) a step leaves the state as it was: the gradients arriving
        # at its new states pass to the previous ones unchanged, and the step itself gets none.
        carry = [f"buf_carry_{st}" for st in s.states]
        setup += [f"{c} = None if buf_past is None else np.empty((B, H), dtype=dtype)" for c in carry]
        step.append("if buf_past is not None:  # past a sequence's length: its gradients skip the step")
        for st, c in zip(s.states, carry):
            step += [f"    np.copyto({c}, d_{st}_prev)", f"    np.copyto(d_{st}_prev, 0, where=buf_past[t])"]
        step.append("# Gradients arriving at this step's outputs: the loss at t and the later steps.")
        for node, st in state_node.items():
            others = self.plan.copies.get(node, ())
            if node == s.output:
                step.append(f"np.add(dy[t], d_{st}_prev, out=din_{node})")
            elif others:
                step.append(f"np.add(d_{st}_prev, d_{others[0]}_prev, out=din_{node})")
                others = others[1:]
            else:  # the incoming gradient is the state's, as it arrived: swap the buffers, no copy
                step.append(f"din_{node}, d_{st}_prev = d_{st}_prev, din_{node}")
            step += [f"din_{node} += d_{other}_prev" for other in others]
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
                    step.append(self.bind_adjoint(v))
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
            step += emit_grads.emit(param_exprs[g.param], buf)
            step.append(f"d_{g.param} += {buf}.sum(axis=0)")
            pool.release()
        step.append("if buf_past is not None:")
        step += [f"    np.copyto(d_{st}_prev, {c}, where=buf_past[t])" for st, c in zip(s.states, carry)]
        setup += [line for k in range(pool.size) for line in self.scratch(f"buf_{k}", "(B, H)")]

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
                src, n_in = self.sequence(lay.input), "H"
            runs = self.grad_runs(lay)
            if len(runs) == 1:
                end.append(
                    f"d_{lay.name} = np.matmul({_grad_all(self, runs[0])}.T, {src}.reshape(T * B, {n_in}))"
                )
                continue
            shape = self.group_shape(self.spec.group_of(lay.members[0]))
            end.append(f"d_{lay.name} = np.empty({shape}, dtype=dtype)")
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
        _resolve_views(setup, step)

    def _backward_cse(self, aliases, emit: InplaceEmitter, setup: list[str]):
        """The step's common subexpressions (`plan.cse`): (vector -> expression to emit, emit_temps(expr)
        -> lines computing the temporaries it reads that are not computed yet, hoisted vectors)."""
        cse = self.plan.cse
        for x in cse.temps:
            if x not in cse.hoisted:
                setup += self.scratch(x.name, "(B, H)")
        done: set[sp.Symbol] = set()

        def emit_temps(expr: sp.Expr) -> list[str]:
            lines: list[str] = []
            for sym in sorted(expr.free_symbols, key=lambda z: z.name):
                if sym not in cse.temps or sym in done:
                    continue
                lines += emit_temps(cse.temps[sym])
                done.add(sym)
                if sym in cse.hoisted:
                    v = cse.hoisted[sym]
                    number = self.numbers[("adj", v)]
                    lines.append(f"# ({number}) {adjoint(v)} first: a common subexpression, computed once")
                    lines.append(self.bind_adjoint(v))
                    lines += emit.emit(cse.temps[sym], adjoint(v))
                else:
                    lines += emit.emit(cse.temps[sym], sym.name)
            return lines

        return dict(cse.exprs), emit_temps, set(cse.hoisted.values())

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
        accumulated = {g.name for g in self.stored_groups_with(elem_params)}  # already zeros + terms
        for g in groups:
            ops: dict[int, list[int]] = {}  # block of the group -> blocks of the adjoint buffer
            for j, m in enumerate(g.members):
                for n in s.nodes:
                    if isinstance(n, LinearNode) and m in n.biases:
                        ops.setdefault(j, []).append(order.index(n.name))
            runs: list[list[int]] = []  # [j0, u0, count] over the members added to one node only
            for j in sorted(j for j, us in ops.items() if len(us) == 1):
                u = ops[j][0]
                if runs and j == runs[-1][0] + runs[-1][2] and u == runs[-1][1] + runs[-1][2]:
                    runs[-1][2] += 1
                else:
                    runs.append([j, u, 1])
            shared = [
                (j, u) for j, us in sorted(ops.items()) if len(us) > 1 for u in us
            ]  # biases of several nodes
            fresh = g.name not in accumulated and len(ops) == len(g.members)  # every block set from the sums
            if fresh and not shared and len(runs) == 1 and runs[0][0] == 0 and runs[0][2] == len(g.members):
                cols = block_span(runs[0][1], runs[0][1] + runs[0][2], len(order))
                lines.append(f"d_{g.name} = grad_sums{f'[{cols}]' if cols else ''}.copy()")
                continue
            if g.name not in accumulated:
                kind = "empty" if fresh else "zeros"
                lines.append(f"d_{g.name} = np.{kind}({self.group_shape(g)}, dtype=dtype)")
            done: set[int] = set()
            for j, u, count in [*runs, *((j, u, 1) for j, u in shared)]:
                span = block_span(j, j + count, len(g.members))
                cols = block_span(u, u + count, len(order))
                dst = f"d_{g.name}[{span}]" if span else f"d_{g.name}[...]"
                assign = "=" if fresh and j not in done else "+="
                done.update(range(j, j + count))
                lines.append(f"{dst} {assign} grad_sums{f'[{cols}]' if cols else ''}")
        return lines

    # -- parameters --------------------------------------------------------------------------------
    def stored_groups_with(self, grads) -> list[FuseGroup]:
        names = {g.param for g in grads}
        return [g for g in self.spec.groups if any(m in names for m in g.members)]

    def group_shape(self, g: FuseGroup) -> str:
        return group_shape(self.spec, g)


def numpy_module(d: Derivation) -> NumpyModule:
    """The NumPy module of a derived cell: every line of its computation, printed from its plan."""
    planner = NumpyEmitter(plan_cell(d))
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
        sizes=head.sizes,
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
    mod.jvp_body = _jvp_lines(d, NumpyCodePrinter())
    planner.forward(mod)
    planner.backward(mod)
    # Unpack only the arrays a function body reads.
    read_forward = _names_read(mod.param_views + mod.forward_setup, mod.forward_step, mod.forward_end)
    read_backward = _names_read(mod.param_views + mod.backward_setup, mod.backward_step, mod.backward_end)
    mod.forward_params = [g.name for g in s.groups if g.name in read_forward]
    mod.backward_params = [g.name for g in s.groups if g.name in read_backward]
    mod.backward_cache = [k for k in mod.cache_keys if k in read_backward]
    return mod


def _rows(weight: str, k0: int, n: int, lay: Gemm) -> str:
    """The rows of blocks [k0, k0 + n) of a fused weight: `W_hh`, `W_hh[: 2 * H]`."""
    span = block_span(k0, k0 + n, lay.blocks)
    return f"{weight}[{span}]" if span else weight


def _grad_all(planner: NumpyEmitter, run: tuple[int, int, int]) -> str:
    """The columns of a run of the (T * B, U * H) adjoint matrix: `grad_all`, `grad_all[:, H:]`."""
    cols = planner.grad_columns(run[1], run[2])
    return f"grad_all[:, {cols}]" if cols else "grad_all"


@dataclass(frozen=True)
class StepView:
    """A step line `name = array[t, block]`: a view of one block of a (T, G, ...) array at step t."""

    name: str
    array: str
    block: int


def _resolve_views(setup: list, step: list) -> None:
    """Print the step's `StepView`s. A name bound once per step to `array[t, k]` is bound to
    `name_seq[t]` instead, with `name_seq = array[:, k]` made once before the loop: a plain index costs
    less than a tuple index, which counts at B = 1."""
    views = [line for line in step if isinstance(line, StepView)]
    once = {v.name for v in views if sum(w.name == v.name for w in views) == 1}
    for k, line in enumerate(step):
        if not isinstance(line, StepView):
            continue
        if line.name in once:
            setup.append(f"{line.name}_seq = {line.array}[:, {line.block}]")
            step[k] = f"{line.name} = {line.name}_seq[t]"
        else:
            step[k] = f"{line.name} = {line.array}[t, {line.block}]"


def _names_read(setup: list[str], step: list[str], end: list[str]) -> set[str]:
    """The names a function body built of these lines reads (its Python syntax tree, not its text)."""
    body = [*setup, "for t in range(T):", *("    " + line for line in step or ["pass"]), *end]
    tree = ast.parse("\n".join(body))
    return {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


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
    body.append("if buf_past is None:")
    for st in s.states:
        node = s.update_of[st]
        body.append(f"    {st}_prev, tan_{st}_prev = {node}, tan_{node}")
    body.append("else:  # past a sequence's length the state and its tangent stay as they were")
    for st in s.states:
        node = s.update_of[st]
        body.append(f"    {st}_prev = np.where(buf_past[t], {st}_prev, {node})")
        body.append(f"    tan_{st}_prev = np.where(buf_past[t], tan_{st}_prev, tan_{node})")
    lines += ["    " + line for line in body]
    lines += [
        "if buf_past is not None:  # y and its tangent are 0 past a sequence's length",
        "    ys[buf_past[..., 0]] = 0",
        "    tan_ys[buf_past[..., 0]] = 0",
    ]
    return [wrapped for line in lines for wrapped in wrap(line, indent=4)]
