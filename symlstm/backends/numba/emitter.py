"""The numba module of a derived cell, printed from its plan: two compiled kernels and the Python around them.

Forward: the input projections of all steps are one NumPy GEMM each before the kernel; the kernel runs
the time loop. Each step makes its per-step GEMMs (BLAS, called from the kernel), accumulated into the
input projection's blocks (beta = 1) where the plan's homes allow, else into a (B, n H) scratch; then one
fused loop over the batch rows and the coordinates whose body is the derivation's scalar statements,
reading and writing 1-D views, one per row and block of H (so that LLVM vectorises it). A GEMM of a
value computed inside the step (reset-before GRU, MGU: an "inner" GEMM) splits the step's loop in two
around it.

Backward: the kernel runs the steps in reverse: one fused loop per step printing the plan's folded
adjoints (`plan.step`, coefficients written out), the linear nodes' adjoints stored in the adjoint
buffer (T, B, U H) in the plan's block order, then the recurrent GEMMs into the previous states'
adjoints; an inner GEMM's transposed product splits the loop as in forward. Bias sums are taken per step
while the step's adjoints are in cache; the weight gradients and dx are NumPy GEMMs after the kernel.

Names. Scalar locals of a kernel are the derivation's names (`c`, `tanh_c`, `d_a_i`, `din_h`); every
array of the module's own uses a prefix a cell cannot take (`buf_`, `gates_`, `seq_`, `cache_`, `grad_`,
`d_<state>_prev`), numbered row views `buf_<k>`; a cell's values named `b` or `j` (the kernels' loop
indices) are renamed `cse_b`, `cse_j`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ...engine import Derivation
from ...naming import adjoint, incoming
from ...plan import CellPlan, Gemm, coefficient, plan_cell
from ...spec import LinearNode
from ..numpy.head import ModuleHead, module_head
from ..numpy.source import LINE_LENGTH, equation_text, tuple_source, wrap
from .printer import NumbaScalarPrinter

__all__ = ["NumbaModule", "numba_module"]

LOOP_INDICES = ("b", "j")
OPEN, CLOSE = "\x01", "\x02"  # around a row in a statement's text: replaced by the row's view


def block_of(row: str, block: int) -> str:
    """Coordinate j of block `block` of a row of blocks of H (`gates_W_ih[t, b]`) or of a parameter
    vector (`buf_b_ih`), through the block's own 1-D view (`gates_W_ih[t, b, H : 2 * H]`,
    `buf_b_ih[H : 2 * H]`): LLVM vectorises a loop that reads and writes rows only when every block is
    a pointer of its own (one view of the whole row, indexed `H + j`, leaves it scalar), and numba cannot
    prove `H + j` non-negative (its wraparound of negative indices makes each such load a gather)."""
    head = f"{row[:-1]}, " if row.endswith("]") else f"{row}["
    return f"{OPEN}{head}{columns(block, block + 1)}]{CLOSE}[j]"


def columns(k0: int, k1: int) -> str:
    """The slice of blocks [k0, k1) of H: `0:H`, `H : 3 * H` (spaced as ruff format writes it)."""

    def at(k: int) -> str:
        return "0" if k == 0 else "H" if k == 1 else f"{k} * H"

    lo, hi = at(k0), at(k1)
    return f"{lo} : {hi}" if " " in lo + hi else f"{lo}:{hi}"


def call(head: str, args: list[str], indent: int, tail: str = "") -> list[str]:
    """`head(args)tail` as ruff format writes it at `indent`: one line, the arguments on one line of
    their own, or one argument per line with a trailing comma."""
    flat = f"{head}({', '.join(args)}){tail}"
    if indent + len(flat) <= LINE_LENGTH:
        return [flat]
    inner = ", ".join(args)
    if indent + 4 + len(inner) <= LINE_LENGTH:
        return [f"{head}(", f"    {inner}", f"){tail}"]
    return [f"{head}(", *(f"    {a}," for a in args), f"){tail}"]


@dataclass(frozen=True)
class Location:
    """Where a value of the step lives: `row` (a 1-D row view's source, e.g. `seq_c[t + 1, b]`, or a
    1-D parameter array) and the block of H within it."""

    row: str
    block: int = 0
    per_row: bool = True  # False: a parameter vector (one for all rows), not a row of (t, b)


@dataclass
class Loop:
    """One fused loop over the batch rows and the coordinates: its statements, as (text, reads, writes)."""

    body: list[tuple[str, set[str], set[str]]] = field(default_factory=list)
    stores: list[tuple[str, Location]] = field(default_factory=list)  # (value, where) after computing it
    extra: list[str] = field(default_factory=list)  # lines after the coordinate loop, inside the b-loop


@dataclass
class NumbaModule:
    """Everything the template needs, already printed."""

    head: ModuleHead
    forward_setup: list[str] = field(default_factory=list)
    forward_end: list[str] = field(default_factory=list)
    forward_kernel: list[str] = field(default_factory=list)
    cache_keys: list[str] = field(default_factory=list)
    backward_setup: list[str] = field(default_factory=list)
    backward_end: list[str] = field(default_factory=list)
    backward_kernel: list[str] = field(default_factory=list)
    backward_cache: list[str] = field(default_factory=list)
    initial_states: str = ""
    final_states: str = ""


class NumbaEmitter:
    """Prints a cell's numba module from its plan."""

    def __init__(self, plan: CellPlan):
        self.plan = plan
        self.d: Derivation = plan.derivation
        self.s = self.d.spec
        self.names = {n: f"cse_{n}" for n in LOOP_INDICES}
        self.p = NumbaScalarPrinter(self.names)
        self.linear = {n.name: n for n in self.s.nodes if isinstance(n, LinearNode)}
        self.inputs = [g for g in plan.gemms.values() if g.kind == "input"]
        self.per_step = [g for g in plan.gemms.values() if g.kind != "input"]
        self.into = {g.name: runs for g in self.per_step if (runs := self._accumulation(g)) is not None}
        self.params = {p.name for p in self.s.elementwise_params()}
        out = self.s.output
        self.cached = list(plan.cached)
        if out not in plan.state_of and out not in self.cached:  # y needs a sequence of its own
            self.cached.append(out)

    # -- names -----------------------------------------------------------------------------------
    def local(self, name: str) -> str:
        return self.names.get(name, name)

    def pr(self, expr: sp.Expr) -> str:
        return self.p.doprint(expr)

    # -- where values live -------------------------------------------------------------------------
    def _accumulation(self, g: Gemm) -> list[tuple[int, str, int, int]] | None:
        """Runs (first block of g, input GEMM, its first block, count) through which per-step GEMM `g`
        adds into the input projections with beta = 1: where every block's node has its home there."""
        targets = []
        for node in g.nodes:
            home, k = self.plan.home[node]
            if self.plan.gemms[home].kind != "input":
                return None
            targets.append((home, k))
        runs: list[list] = []
        for j, (home, k) in enumerate(targets):
            if runs and runs[-1][1] == home and runs[-1][2] + runs[-1][3] == k:
                runs[-1][3] += 1
            else:
                runs.append([j, home, k, 1])
        return [tuple(r) for r in runs]

    def sources(self, node: LinearNode) -> list[Location]:
        """The GEMM output blocks whose sum is a linear node's pre-activation (without its biases)."""
        out: list[Location] = []
        for w, _ in node.terms:
            g, k = self.plan.gemm_of(w)
            if g.kind == "input":
                loc = Location(f"gates_{g.name}[t, b]", k)
            elif g.name in self.into:
                (j0, home, k0, _), *_ = [r for r in self.into[g.name] if r[0] <= k < r[0] + r[3]]
                loc = Location(f"gates_{home}[t, b]", k0 + k - j0)
            else:
                loc = Location(f"gates_{g.name}[b]", k)
            if loc not in out:
                out.append(loc)
        return out

    def stored(self, v: str) -> Location | None:
        """Where forward keeps value `v` of step t (None: nowhere, it lives in the loop only)."""
        s = self.s
        if v == s.input:
            return Location(f"seq_{v}[t, b]")
        if v in s.prev_names:
            return Location(f"seq_{v.removesuffix('_prev')}[t, b]")
        if v in self.params:
            g = s.group_of(v)
            return Location(f"buf_{g.name}", g.members.index(v), per_row=False)
        if v in self.plan.state_of:
            return Location(f"seq_{self.plan.state_of[v]}[t + 1, b]")
        if v in self.plan.gates:
            slot = self.plan.gates[v]
            return Location(f"gates_{slot.gemm}[t, b]", slot.block)
        if v in self.cached:
            return Location(f"cache_{v}[t, b]")
        return None

    def writes(self, v: str) -> list[Location]:
        """Every place forward writes node or intermediate `v` (its storage, its copies)."""
        out = []
        if v in self.plan.state_of:
            out.append(Location(f"seq_{self.plan.state_of[v]}[t + 1, b]"))
            out += [Location(f"seq_{st}[t + 1, b]") for st in self.plan.copies.get(v, ())]
        elif v in self.plan.gates:
            slot = self.plan.gates[v]
            out.append(Location(f"gates_{slot.gemm}[t, b]", slot.block))
        if v in self.cached:
            out.append(Location(f"cache_{v}[t, b]"))
        return out

    def slab(self, u: str, step: str = "t") -> str:
        """Forward value `u` at step t as a (B, H) array: the operand of an inner GEMM."""
        if u in self.s.prev_names:
            return f"seq_{u.removesuffix('_prev')}[t]"
        if u in self.plan.state_of:
            return f"seq_{self.plan.state_of[u]}[t + 1]"
        if u in self.plan.gates:
            slot = self.plan.gates[u]
            return f"gates_{slot.gemm}[t, :, {columns(slot.block, slot.block + 1)}]"
        return f"cache_{u}[t]"

    def sequence(self, u: str) -> str:
        """Forward value `u` over all steps as a (T * B, H) matrix (NumPy, after the kernel)."""
        s = self.s
        if u == s.input:
            return "x.reshape(T * B, I)"
        if u in s.prev_names:
            return f"seq_{u.removesuffix('_prev')}[:T].reshape(T * B, H)"
        if u in self.plan.state_of:
            return f"seq_{self.plan.state_of[u]}[1:].reshape(T * B, H)"
        if u in self.plan.gates:
            slot = self.plan.gates[u]
            return f"gates_{slot.gemm}[:, :, {columns(slot.block, slot.block + 1)}].reshape(T * B, H)"
        return f"cache_{u}.reshape(T * B, H)"

    # -- the fused loop ----------------------------------------------------------------------------
    def loop_lines(self, loop: Loop, carried: set[str], carry_prefix: str, adjoints: bool) -> list[str]:
        """A loop over b and j: row views, the loads of values defined elsewhere, the body, the stores.

        `carried` are values computed in another loop of the step that have no storage: they go through
        (B, H) arrays `<carry_prefix><name>`.
        """
        views: dict[str, str] = {}

        def view(row: str) -> str:
            if row not in views:
                views[row] = f"buf_{len(views)}"
            return views[row]

        defined: set[str] = set()
        for _, _, writes in loop.body:
            defined |= writes
        reads: list[str] = []
        for _, r, _ in loop.body:
            reads += [v for v in sorted(r) if v not in defined and v not in reads]
        loads = []
        for v in reads:
            loads.append(f"{self.local(v)} = {self.read(v, carried, carry_prefix, adjoints, view)}")
        body = []
        for text, _, _ in loop.body:
            body.append(self.resolve(text, view))
        lines = ["for b in range(B):"]
        inner = [*loads, *body]
        lines += [f"    {v} = {row}" for row, v in views.items()]
        lines.append("    for j in range(H):")
        lines += [w for line in inner for w in self._wrap(line, 8)]
        lines += [f"    {line}" for line in loop.extra]
        return lines

    @staticmethod
    def _wrap(line: str, indent: int) -> list[str]:
        if line.startswith("#"):
            return [" " * indent + line]
        return [" " * indent + w for w in wrap(line, indent)]

    def resolve(self, text: str, view) -> str:
        """Replace `<OPEN>row<CLOSE>` markers in a statement by the row view that holds them."""
        while OPEN in text:
            a = text.index(OPEN)
            b = text.index(CLOSE, a)
            text = text[:a] + view(text[a + 1 : b]) + text[b + 1 :]
        return text

    def at(self, loc: Location) -> str:
        """A statement's text for coordinate j of a location (the marked row is replaced by its view):
        every array is indexed at `j`, a block other than a parameter vector's first through its view."""
        if loc.block or loc.row.startswith("gates_"):
            return block_of(loc.row, loc.block)
        return f"{OPEN}{loc.row}{CLOSE}[j]" if loc.per_row else f"{loc.row}[j]"

    def read(self, v: str, carried: set[str], prefix: str, adjoints: bool, view) -> str:
        """The expression loading value `v` (a forward value, an adjoint or an incoming gradient)."""
        s = self.s
        if adjoints and v.startswith("din_"):
            node = v.removeprefix("din_")
            parts = [f"{OPEN}dy[t, b]{CLOSE}[j]"] if node == s.output else []
            parts += [f"{OPEN}d_{st}_prev[b]{CLOSE}[j]" for st in s.states if s.update_of[st] == node]
            return self.resolve(" + ".join(parts), view)
        if adjoints and v.startswith("d_"):
            vector = v.removeprefix("d_")
            if vector in self.linear:
                u = self.plan.adjoint_order.index(vector)
                return self.resolve(block_of("grad_rows[t, b]", u), view)
            if vector in carried:
                return self.resolve(f"{OPEN}cache_d_{vector}[b]{CLOSE}[j]", view)
            raise AssertionError(f"adjoint {v} read before it is computed")
        if v in carried and not adjoints:  # in backward, `carried` names vectors whose adjoints are carried
            return self.resolve(f"{OPEN}{prefix}{v}[b]{CLOSE}[j]", view)
        loc = self.stored(v)
        if loc is None and v in self.linear:
            raise AssertionError(f"{v} read where it is not computed")
        return self.resolve(self.at(loc), view)

    # -- forward -----------------------------------------------------------------------------------
    def forward_program(self) -> list[Loop | tuple[str, Gemm]]:
        """The step: loops of nodes and, between them, the inner GEMMs."""
        program: list[Loop | tuple[str, Gemm]] = []
        loop = Loop()
        done = {g.name for g in self.per_step if g.kind == "recurrent"}
        d = self.d
        for n in self.s.nodes:
            number = d.equation_numbers[("fwd", n.name)]
            if isinstance(n, LinearNode):
                need = [g for w, _ in n.terms if (g := self.plan.gemm_of(w)[0]).name not in done]
                need = [g for g in self.per_step if g in need]  # declaration order, once each
                if need:
                    if loop.body:
                        program.append(loop)
                    program += [("gemm", g) for g in need]
                    done |= {g.name for g in need}
                    loop = Loop()
                terms = [self.at(loc) for loc in self.sources(n)]
                for b in n.biases:
                    g = self.s.group_of(b)
                    terms.append(self.at(Location(f"buf_{g.name}", g.members.index(b), per_row=False)))
                loop.body.append((f"# ({number}) {equation_text(n)}", set(), set()))
                loop.body.append((f"{self.local(n.name)} = {' + '.join(terms)}", set(), {n.name}))
                for loc in self.writes(n.name):
                    loop.body.append((f"{self.at(loc)} = {self.local(n.name)}", set(), set()))
                continue
            loop.body.append((f"# ({number}) {n.name} = {sp.sstr(n.expr)}", set(), set()))
            for m in d.intermediates_of(n.name):
                value = m.call.func(*(d.computational(a) for a in m.call.args))
                reads = {x.name for x in value.free_symbols}
                loop.body.append((f"{self.local(m.name)} = {self.pr(value)}", reads, {m.name}))
                for loc in self.writes(m.name):
                    loop.body.append((f"{self.at(loc)} = {self.local(m.name)}", set(), set()))
            value = d.computational(n.expr)
            reads = {x.name for x in value.free_symbols}
            loop.body.append((f"{self.local(n.name)} = {self.pr(value)}", reads, {n.name}))
            for loc in self.writes(n.name):
                loop.body.append((f"{self.at(loc)} = {self.local(n.name)}", set(), set()))
        if loop.body:
            program.append(loop)
        return program

    @staticmethod
    def crossing(program, defined_of, reads_of) -> set[str]:
        """Values a loop reads that an earlier loop of the step defined."""
        seen: set[str] = set()
        out: set[str] = set()
        for item in program:
            if isinstance(item, Loop):
                out |= reads_of(item) & seen
                seen |= defined_of(item)
        return out

    def forward(self, mod: NumbaModule) -> None:
        s = self.s
        program = self.forward_program()

        def defined(loop: Loop) -> set[str]:
            return {v for _, _, w in loop.body for v in w}

        def reads(loop: Loop) -> set[str]:
            out: set[str] = set()
            for _, r, _ in loop.body:
                out |= r
            return out - defined(loop)

        carried = {v for v in self.crossing(program, defined, reads) if self.stored(v) is None}
        # The kernel.
        body = [f"T = seq_{s.states[0]}.shape[0] - 1"]
        body += [f"B, H = seq_{s.states[0]}.shape[1], seq_{s.states[0]}.shape[2]", "for t in range(T):"]
        step = []
        for g in self.per_step:
            if g.kind == "recurrent":
                step += self.gemm_forward(g)
        for item in program:
            if isinstance(item, Loop):
                for v in sorted(carried & defined(item)):
                    item.body.append((f"{OPEN}cache_{v}[b]{CLOSE}[j] = {self.local(v)}", set(), set()))
                step += self.loop_lines(item, carried, "cache_", adjoints=False)
            else:
                step += self.gemm_forward(item[1])
        step += ["for b in range(B):  # past a sequence's length (lengths=) the states stay as they were",
                 "    if past[t, b]:"]  # fmt: skip
        step += [f"        seq_{st}[t + 1, b] = seq_{st}[t, b]" for st in s.states]
        body += [f"    {line}" for line in step]
        if any("dtype(" in line for line in body):  # numbers in the kernel's float type
            body.insert(0, f"dtype = seq_{s.states[0]}.dtype.type")
        arrays = self.kernel_arrays(body)
        mod.forward_kernel = [
            "@_jit",
            *call("def _forward_kernel", arrays, 0, ":"),
            '    """The time loop of forward: per-step GEMMs and one fused loop per part of the step."""',
            *(f"    {line}" for line in body),
        ]
        # The Python around it.
        setup = mod.forward_setup
        for name in arrays:
            if name.startswith("buf_"):
                setup.append(f'{name} = _kernel_array(params["{name.removeprefix("buf_")}"])')
        for g in self.inputs:
            n = g.blocks
            setup += self.scratch(f"gates_{g.name}", f"(T, B, {n} * H)")
            setup.append(f"# Input projection of all {g.name} blocks for every step: one GEMM.")
            setup += call(
                "_gemm_nt",
                [
                    "x.reshape(T * B, I)",
                    f'_kernel_array(params["{g.name}"])',
                    f"gates_{g.name}.reshape(T * B, {n} * H)",
                    "0.0",
                ],
                4,
            )
        for g in self.per_step:
            if g.name not in self.into:
                setup += self.scratch(f"gates_{g.name}", f"(B, {g.blocks} * H)")
        for st in s.states:
            setup += self.scratch(f"seq_{st}", "(T + 1, B, H)")
            setup.append(f"seq_{st}[0] = {st}0")
        for v in self.cached:
            setup += self.scratch(f"cache_{v}", "(T, B, H)")
        for v in sorted(carried):
            setup += self.scratch(f"cache_{v}", "(B, H)")
        if f"seq_{s.input}" in arrays:
            setup.append(f"seq_{s.input} = _kernel_array(x)")
        setup += call("_forward_kernel", arrays, 4)
        out = s.output
        y = f"seq_{self.plan.state_of[out]}[1:]" if out in self.plan.state_of else f"cache_{out}[:]"
        mod.forward_end += [f"y = {y}", "y.flags.writeable = False"]
        mod.cache_keys = [
            *(f"seq_{st}" for st in s.states),
            *(
                f"gates_{g.name}"
                for g in self.inputs
                if any(sl.gemm == g.name for sl in self.plan.gates.values())
            ),
            *(f"cache_{v}" for v in self.cached),
        ]
        mod.final_states = tuple_source([f"seq_{st}[T].copy()" for st in s.states], quote=False)
        mod.initial_states = tuple_source([f"{st}0" for st in s.states], quote=False)

    def scratch(self, name: str, shape: str, function: str = "forward") -> list[str]:
        return [f'{name} = _array(workspace, "{function}.{name}", {shape}, dtype)']

    def gemm_forward(self, g: Gemm) -> list[str]:
        """A per-step GEMM: into the input projection's blocks (beta = 1), or into its scratch."""
        u = self.slab(g.input)
        if g.name not in self.into:
            return [f"_gemm_nt({u}, buf_{g.name}, gates_{g.name}, 0.0)"]
        lines = []
        for j0, home, k0, n in self.into[g.name]:
            weight = f"buf_{g.name}" if n == g.blocks else f"buf_{g.name}[{columns(j0, j0 + n)}]"
            target = (
                f"gates_{home}[t]"
                if n == self.plan.gemms[home].blocks
                else f"gates_{home}[t, :, {columns(k0, k0 + n)}]"
            )
            lines.append(f"_gemm_nt({u}, {weight}, {target}, 1.0)")
        return lines

    @staticmethod
    def kernel_arrays(body: list[str]) -> list[str]:
        """The arrays a kernel body reads (its arguments), in a fixed order: parameters, GEMM outputs,
        sequences, caches, adjoints."""
        import re

        text = "\n".join(body)
        found = set(
            re.findall(
                r"\b(?:buf_[A-Za-z]\w*|gates_\w+|seq_\w+|cache_\w+|grad_\w+|d_\w+_prev|dy|dx|past)\b", text
            )
        )
        assigned = set(re.findall(r"^\s*((?:buf|cache|grad)_\w+) = ", text, flags=re.M))
        names = sorted(found - assigned)
        kinds = ("buf_", "gates_", "seq_", "cache_", "dy", "d_", "grad_", "dx", "past")
        return sorted(names, key=lambda n: (next(k for k, p in enumerate(kinds) if n.startswith(p)), n))

    # -- backward ----------------------------------------------------------------------------------
    def kept_expression(self, v: str) -> sp.Expr:
        """The folded adjoint of kept vector `v` with the coefficient slots written out."""
        step = self.plan.step
        slots = {coefficient(j): c for j, c in enumerate(step.coefficients)}
        return sp.sympify(step.exprs[v]).xreplace(slots)

    def backward_program(self) -> list[Loop | tuple[str, str]]:
        """The reverse step: loops of adjoints and, between them, the inner GEMMs' transposed products
        (("gemm", u): d_u's part W^T d_a over the inner GEMMs that multiply u)."""
        s, d, plan = self.s, self.d, self.plan
        folded = plan.step.folding.folded
        program: list[Loop | tuple[str, str]] = []
        loop = Loop()
        inner_of = {g.input: [] for g in self.per_step if g.kind == "inner"}
        for g in self.per_step:
            if g.kind == "inner":
                inner_of[g.input].append(g)

        def syms(e: sp.Expr) -> set[str]:
            return {x.name for x in sp.sympify(e).free_symbols}

        for a in d.vjp:
            v = a.vector
            number = d.equation_numbers[("adj", v)]
            if v in folded:
                continue
            if v == s.input:
                expr = plan.step.folding.substitute(a.elementwise)
                if expr != 0:
                    loop.body.append((f"# ({number}) {adjoint(v)}: its elementwise part", set(), set()))
                    loop.body.append((f"{OPEN}dx[t, b]{CLOSE}[j] = {self.pr(expr)}", syms(expr), set()))
                continue
            expr = self.kept_expression(v)
            if v in s.prev_names:
                st = v.removesuffix("_prev")
                recurrent = any(g.input == v for g in self.per_step)
                if expr != 0 or not recurrent:
                    loop.body.append((f"# ({number}) {adjoint(v)}: its elementwise part", set(), set()))
                    value = self.pr(expr) if expr != 0 else "dtype(0)"
                    loop.body.append((f"{OPEN}d_{st}_prev[b]{CLOSE}[j] = {value}", syms(expr), set()))
                continue
            if v in inner_of:
                if loop.body:
                    program.append(loop)
                program.append(("gemm", v))
                loop = Loop()
            terms = []
            if a.incoming:
                terms.append(incoming(v))
            if expr != 0:
                terms.append(self.pr(expr))
            if v in inner_of:
                terms.append(f"{OPEN}grad_in_{v}[b]{CLOSE}[j]")
            text = " + ".join(terms) if terms else "dtype(0)"
            reads = syms(expr) | ({incoming(v)} if a.incoming else set())
            loop.body.append((f"# ({number}) {adjoint(v)} = {self.adjoint_text(a)}", set(), set()))
            loop.body.append((f"{self.local(adjoint(v))} = {text}", reads, {adjoint(v)}))
            if v in self.linear:
                u = plan.adjoint_order.index(v)
                loop.body.append(
                    (f"{block_of('grad_rows[t, b]', u)} = {self.local(adjoint(v))}", set(), set())
                )
        for q, g in enumerate(self.elementwise_gradients()):
            expr = plan.param_gradients[g.param]
            number = d.equation_numbers[("grad", g.param)]
            loop.body.append((f"# ({number}) {adjoint(g.param)} += {sp.sstr(g.expr)}", set(), set()))
            loop.body.append((f"{block_of('grad_params[b]', q)} += {self.pr(expr)}", syms(expr), set()))
        if loop.body:
            program.append(loop)
        return program

    @staticmethod
    def adjoint_text(a) -> str:
        """An adjoint's equation as the derivation writes it: `din_c + d_h*o*(1 - tanh_c**2)`."""
        total = a.elementwise + (sp.Symbol(incoming(a.vector), real=True) if a.incoming else 0)
        text = sp.sstr(total) if total != 0 else ""
        text += "".join(f" + {w}^T {adjoint(n)}" for w, n in a.linear)
        return text.removeprefix(" + ") or "0"

    def elementwise_gradients(self):
        return [g for g in self.d.param_gradients if g.kind == "elementwise"]

    def backward(self, mod: NumbaModule) -> None:
        s, plan = self.s, self.plan
        program = self.backward_program()

        def defined(loop: Loop) -> set[str]:
            return {v for _, _, w in loop.body for v in w}

        def reads(loop: Loop) -> set[str]:
            out: set[str] = set()
            for _, r, _ in loop.body:
                out |= r
            return out - defined(loop)

        crossing = self.crossing(program, defined, reads)
        carried = {v.removeprefix("d_") for v in crossing if v.startswith("d_")} - set(self.linear)
        U = len(plan.adjoint_order)
        body = ["T, B, H = dy.shape", "for t in range(T - 1, -1, -1):"]
        # Past a sequence's length the step is skipped: the gradients arriving at its new states pass to
        # the previous ones unchanged (kept aside while the step computes zero adjoints for that row).
        step = ["for b in range(B):", "    if past[t, b]:"]
        for st in s.states:
            step += [f"        grad_carry_{st}[b] = d_{st}_prev[b]", f"        d_{st}_prev[b] = 0.0"]
        for item in program:
            if isinstance(item, Loop):
                for v in sorted(carried):
                    if adjoint(v) in defined(item):
                        item.body.append(
                            (f"{OPEN}cache_d_{v}[b]{CLOSE}[j] = {self.local(adjoint(v))}", set(), set())
                        )
                step += self.loop_lines(item, carried, "cache_", adjoints=True)
            else:
                step += self.gemm_backward_inner(item[1])
        biases = [g for g in self.d.param_gradients if g.kind == "bias"]
        if biases:
            step += [
                "for b in range(B):  # the bias gradients: sums of the adjoints, while they are in cache",
                "    buf_0 = grad_rows[t, b]",
                f"    for j in range({U} * H):" if U > 1 else "    for j in range(H):",
                "        grad_sums[j] += buf_0[j]",
            ]
        for st in s.states:
            v = s.prev(st)
            beta = "1.0" if self.kept_expression(v) != 0 else "0.0"
            for g in self.per_step:
                if g.input != v:
                    continue
                for k0, u0, n in plan.adjoint_runs[g.name]:
                    rows = f"buf_{g.name}" if n == g.blocks else f"buf_{g.name}[{columns(k0, k0 + n)}]"
                    step.append(
                        f"_gemm_nn(grad_rows[t, :, {columns(u0, u0 + n)}], {rows}, d_{st}_prev, {beta})"
                    )
                    beta = "1.0"
        step += ["for b in range(B):", "    if past[t, b]:"]
        step += [f"        d_{st}_prev[b] = grad_carry_{st}[b]" for st in s.states]
        body += [f"    {line}" for line in step]
        if any("dtype(" in line for line in body):
            body.insert(0, "dtype = dy.dtype.type")
        arrays = self.kernel_arrays(body)
        mod.backward_kernel = [
            "@_jit",
            *call("def _backward_kernel", arrays, 0, ":"),
            '    """The reverse time loop of backward: the folded adjoints and the per-step GEMMs."""',
            *(f"    {line}" for line in body),
        ]
        # The Python around it.
        setup = mod.backward_setup
        for name in arrays:
            if name.startswith("buf_"):
                setup.append(f'{name} = _kernel_array(params["{name.removeprefix("buf_")}"])')
        if f"seq_{s.input}" in arrays:
            setup.append(f"seq_{s.input} = _kernel_array(x)")
        setup.append("dy = _kernel_array(dy)")
        setup.append(
            f"# Adjoints of the linear nodes {', '.join(plan.adjoint_order)}, one (B, {U} * H) row per step."
        )
        setup += self.scratch("grad_rows", f"(T, B, {U} * H)", "backward")
        if biases:
            setup.append(f"grad_sums = np.zeros({U} * H, dtype=dtype)")
        if "grad_params" in arrays:
            setup.append(f"grad_params = np.zeros((B, {len(self.elementwise_gradients())} * H), dtype=dtype)")
        if "dx" in arrays:
            setup.append("dx = np.zeros((T, B, I), dtype=dtype)")
        for k, st in enumerate(s.states):
            setup.append(
                f"d_{st}_prev = np.zeros((B, H), dtype=dtype) if dstate is None else dstate[{k}].copy()"
            )
        for v in sorted(a for a in arrays if a.startswith("grad_in_")):
            setup += self.scratch(v, "(B, H)", "backward")
        for v in sorted(a for a in arrays if a.startswith(("cache_d_", "grad_carry_"))):
            setup += self.scratch(v, "(B, H)", "backward")
        setup += call("_backward_kernel", arrays, 4)
        mod.backward_cache = [k for k in mod.cache_keys if k in arrays or self._reads_after(k)]
        mod.backward_end += self.gradients("dx" in arrays)

    def _reads_after(self, key: str) -> bool:
        """Whether the NumPy code after the backward kernel reads cache entry `key` (an inner GEMM's
        operand sequence)."""
        return any(key in self.sequence(g.input) for g in self.plan.gemms.values())

    def gemm_backward_inner(self, u: str) -> list[str]:
        """d_u's GEMM part: the transposed products of the inner GEMMs that multiply u."""
        lines = []
        beta = "0.0"
        for g in self.per_step:
            if g.input != u:
                continue
            for k0, u0, n in self.plan.adjoint_runs[g.name]:
                rows = f"buf_{g.name}" if n == g.blocks else f"buf_{g.name}[{columns(k0, k0 + n)}]"
                lines.append(f"_gemm_nn(grad_rows[t, :, {columns(u0, u0 + n)}], {rows}, grad_in_{u}, {beta})")
                beta = "1.0"
        return lines

    def gradients(self, x_elementwise: bool) -> list[str]:
        """After the kernel: weight gradients and dx as GEMMs over all steps, biases and parameter
        vectors from the kernel's sums."""
        s, plan, d = self.s, self.plan, self.d
        U = len(plan.adjoint_order)
        end = ["# Weight gradients of all steps at once: one GEMM per run of blocks of each fused weight."]
        end.append(f"grad_all = grad_rows.reshape(T * B, {U} * H)")

        def grad_columns(u0: int, n: int) -> str:
            return "grad_all" if (u0, n) == (0, U) else f"grad_all[:, {columns(u0, u0 + n)}]"

        for g in plan.gemms.values():
            src = self.sequence(g.input)
            runs = plan.adjoint_runs[g.name]
            end.append(f'd_{g.name} = np.empty(params["{g.name}"].shape, dtype=dtype)')
            for k0, u0, n in runs:
                out = f"d_{g.name}" if n == g.blocks else f"d_{g.name}[{columns(k0, k0 + n)}]"
                end += call("_gemm_tn", [grad_columns(u0, n), src, out, "0.0"], 4)
        x_runs = [(g, run) for g in self.inputs for run in plan.adjoint_runs[g.name]]
        if not x_elementwise:  # dx is the GEMMs' alone (zero when no GEMM reads x)
            end.append(f"dx = np.{'empty' if x_runs else 'zeros'}((T, B, I), dtype=dtype)")
        beta = "1.0" if x_elementwise else "0.0"
        for g in dict.fromkeys(g for g, _ in x_runs):
            end.append(f'weights_{g.name} = _kernel_array(params["{g.name}"])')
        for g, (k0, u0, n) in x_runs:
            rows = f"weights_{g.name}" if n == g.blocks else f"weights_{g.name}[{columns(k0, k0 + n)}]"
            end += call("_gemm_nn", [grad_columns(u0, n), rows, "dx.reshape(T * B, I)", beta], 4)
            beta = "1.0"
        # Vector parameters: a bias's gradient is the sum of its nodes' adjoints, an elementwise
        # parameter's the kernel's sum of its per-step terms.
        parts: dict[str, list[tuple[int, str, int]]] = {}
        for g in d.param_gradients:
            grp = s.group_of(g.param)
            k = grp.members.index(g.param)
            if g.kind == "bias":
                parts.setdefault(grp.name, []).append((k, "grad_sums", plan.adjoint_order.index(g.node)))
            elif g.kind == "elementwise":
                q = [e.param for e in self.elementwise_gradients()].index(g.param)
                parts.setdefault(grp.name, []).append((k, "grad_param_sums", q))
        if any(src == "grad_param_sums" for ps in parts.values() for _, src, _ in ps):
            end.insert(0, "grad_param_sums = grad_params.sum(axis=0)")
        groups = {g.name: g for g in s.groups}
        for name, ps in parts.items():
            grp = groups[name]
            runs: list[list] = []
            for k, src, j in sorted(ps):
                if (
                    runs
                    and runs[-1][1] == src
                    and runs[-1][0] + runs[-1][3] == k
                    and runs[-1][2] + runs[-1][3] == j
                ):
                    runs[-1][3] += 1
                else:
                    runs.append([k, src, j, 1])
            whole = len(runs) == 1 and runs[0][0] == 0 and runs[0][3] == len(grp.members)
            if whole:
                _, src, j, n = runs[0]
                total = U if src == "grad_sums" else len(self.elementwise_gradients())
                cols = "" if (j, n) == (0, total) else f"[{columns(j, j + n)}]"
                end.append(f"d_{name} = {src}{cols}.copy()")
                continue
            end.append(f'd_{name} = np.zeros_like(params["{name}"])')
            for k, src, j, n in runs:
                end.append(f"d_{name}[{columns(k, k + n)}] += {src}[{columns(j, j + n)}]")
        end.append("dparams = {" + ", ".join(f'"{g.name}": d_{g.name}' for g in s.groups) + "}")
        end.append("dstate0 = " + tuple_source([f"d_{st}_prev" for st in s.states], quote=False))
        return end


def numba_module(d: Derivation) -> NumbaModule:
    """The numba module of a derived cell: its two kernels and the Python around them, printed."""
    emitter = NumbaEmitter(plan_cell(d))
    mod = NumbaModule(head=module_head(d))
    emitter.forward(mod)
    emitter.backward(mod)
    return mod
