"""The derivation engine: the matrix-level chain rule over a cell's graph, with SymPy for scalar calculus.

`derive(spec)` returns a `Derivation` holding, for one time step:

* the forward program, with each activation call given a name so that derivatives can reuse it
  (`i` for sigmoid(a_i), an intermediate `tanh_c` for the tanh(c) inside h = o*tanh(c));
* `jacobian(of, wrt)`: the Jacobian between any two vectors as a SymPy matrix expression built from
  `Diag(scalar)` factors and weight matrices (`jacobian("c", "c_prev")` of the LSTM is `Diag(f)`);
* the backward (VJP) program: one `Adjoint` per vector, in reverse order, and the `ParamGradient`s;
* the tangent (JVP) program: one `Tangent` per node, in forward order;
* the BPTT recurrence `delta s_{t-1} = sum_s' J(s'_t, s_{t-1})^T delta s'_t`.

Elementwise partial derivatives come from `sympy.diff`; linear nodes follow fixed rules (d/du of W u is W).
`symlstm.proof` proves every one of these results equal to SymPy's scalar `Matrix.jacobian` of the
fully expanded cell at a small size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from . import naming
from .spec import CellSpec, ElementwiseNode, LinearNode, SpecError, check_identifier

__all__ = ["Adjoint", "Derivation", "Diag", "ParamGradient", "Tangent", "derive", "size_symbol"]

H, I = sp.symbols("H I", positive=True, integer=True)


def size_symbol(label: str) -> sp.Symbol:
    """The symbol of a size label: H, I, or a size the cell declares (P)."""
    return sp.Symbol(label, positive=True, integer=True)


class Diag(sp.MatrixExpr):
    """diag(v) for a vector whose every coordinate is the scalar expression `expr` (n x n)."""

    def __new__(cls, expr: sp.Expr, n: sp.Expr = H):
        return sp.Basic.__new__(cls, sp.sympify(expr), sp.sympify(n))

    @property
    def expr(self) -> sp.Expr:
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[1], self.args[1])

    def _eval_transpose(self) -> Diag:
        return self

    def _entry(self, i, j, **kwargs):  # only meaningful per coordinate; see symlstm.proof
        return sp.KroneckerDelta(i, j) * self.expr

    def _sympystr(self, printer) -> str:
        return f"diag({printer._print(self.expr)})"

    def _latex(self, printer) -> str:
        return rf"\operatorname{{diag}}\left({printer._print(self.expr)}\right)"


# A Jacobian is a sum of terms; a term is a product of factors, each ("diag", expr) or ("mat", weight).
Factor = tuple[str, object]
Term = tuple[Factor, ...]


def _prepend(factor: Factor, terms: list[Term]) -> list[Term]:
    out = []
    for term in terms:
        if factor[0] == "diag" and term and term[0][0] == "diag":
            merged = ("diag", factor[1] * term[0][1])
            out.append((merged, *term[1:]))
        else:
            out.append((factor, *term))
    return out


def _collect(terms: list[Term]) -> list[Term]:
    """Add terms that differ only in their leading diagonal factor; drop zero terms."""
    acc: dict[Term, sp.Expr] = {}
    order: list[Term] = []
    for term in terms:
        lead, rest = (term[0][1], term[1:]) if term and term[0][0] == "diag" else (sp.S.One, term)
        if rest not in acc:
            acc[rest] = sp.S.Zero
            order.append(rest)
        acc[rest] += lead
    out = []
    for rest in order:
        lead = sp.factor_terms(acc[rest])
        if lead == 0:
            continue
        out.append(rest if lead == 1 else (("diag", lead), *rest))
    return out


@dataclass(frozen=True)
class Adjoint:
    """d_<vector> = [din_<vector>] + elementwise + sum over `linear` of W^T d_<node>."""

    vector: str
    incoming: bool  # the step's outputs receive gradient from outside: dy_t and later steps
    elementwise: sp.Expr  # sum over elementwise consumers v of d_v * dv/d<vector>
    linear: tuple[tuple[str, str], ...]  # (weight W, linear node a): adds W^T d_a


@dataclass(frozen=True)
class ParamGradient:
    """How a parameter's gradient accumulates at each step (summed over batch and time)."""

    param: str
    kind: str  # "weight": d_node u^T; "bias": d_node; "elementwise": expr
    node: str | None = None
    input: str | None = None
    expr: sp.Expr | None = None


@dataclass(frozen=True)
class Tangent:
    """tan_<node>: the directional derivative of a node (JVP). Linear nodes: sum W tan_u + tan_W u + tan_b."""

    node: str
    expr: sp.Expr | None  # elementwise nodes: sum over args of d node/d arg * tan_arg (params included)


@dataclass(frozen=True)
class Intermediate:
    """A named activation call inside a node's expression, computed before the node (tanh_c = tanh(c))."""

    name: str
    call: sp.Expr
    node: str


class Derivation:
    """Everything derived from one cell; build with `derive(spec)`."""

    def __init__(self, spec: CellSpec):
        self.spec = spec
        self.sym = {name: spec.symbol(name) for name in self._all_names()}
        self.intermediates: list[Intermediate] = []
        self.aliases: dict[sp.Expr, sp.Symbol] = {}
        self._memo: dict[tuple[str, str], list[Term]] = {}
        self._name_calls()

    # -- naming ----------------------------------------------------------------------------------
    def _all_names(self) -> list[str]:
        return [*self.spec.leaves, *(n.name for n in self.spec.nodes), *(p.name for p in self.spec.params)]

    def _name_calls(self) -> None:
        taken = set(self.sym)
        for node in self.spec.nodes:
            if not isinstance(node, ElementwiseNode):
                continue
            # A call of a constant (sigmoid(0), relu(sigmoid(1))) is a constant, not a per-coordinate
            # value: the printers write it as a number.
            calls = [
                e for e in sp.postorder_traversal(node.expr) if isinstance(e, sp.Function) and e.free_symbols
            ]
            for call in calls:
                if call in self.aliases:
                    continue
                if call == node.expr:
                    self.aliases[call] = self.sym[node.name]
                    continue
                name = self._intermediate_name(call, node.name, taken)
                taken.add(name)
                self.sym[name] = sp.Symbol(name, real=True)
                self.aliases[call] = self.sym[name]
                self.intermediates.append(Intermediate(name, call, node.name))

    def _intermediate_name(self, call: sp.Expr, node: str, taken: set[str]) -> str:
        fname = type(call).__name__.lower()
        fname = fname if fname.isidentifier() and fname.isascii() else "act"
        arg = call.args[0] if len(call.args) == 1 else None
        base = f"{fname}_{arg.name}" if isinstance(arg, sp.Symbol) else f"{fname}_{node}"
        try:
            check_identifier(base, "intermediate", self.spec.name)
        except SpecError:  # tan(a) would be tan_a, which has the tangents' prefix: act_tan_a instead
            base = f"act_{base}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}{k}"
        return check_identifier(name, "intermediate", self.spec.name)

    def computational(self, expr: sp.Expr) -> sp.Expr:
        """`expr` with named activation calls replaced by their names (innermost first)."""
        out = expr
        for inter in self.intermediates:
            out = out.xreplace({inter.call: self.sym[inter.name]})
        return out

    def intermediates_of(self, node: str) -> list[Intermediate]:
        return [m for m in self.intermediates if m.node == node]

    # -- scalar calculus -------------------------------------------------------------------------
    def partial(self, node: ElementwiseNode, wrt: str) -> sp.Expr:
        """d node / d wrt for one coordinate, in terms of forward values (the output form)."""
        d = sp.diff(node.expr, self.sym[wrt])
        d = d.xreplace(self.aliases)
        return self.computational(d)

    def args_of(self, node: LinearNode | ElementwiseNode) -> list[str]:
        """The vectors a node reads (not its parameters), in declaration order."""
        if isinstance(node, LinearNode):
            return list(dict.fromkeys(u for _, u in node.terms))
        names = {s.name for s in node.expr.free_symbols}
        return [v for v in self._vector_order() if v in names]

    def params_of(self, node: ElementwiseNode) -> list[str]:
        names = {s.name for s in node.expr.free_symbols}
        return [p.name for p in self.spec.params if p.name in names]

    def _vector_order(self) -> list[str]:
        return [*self.spec.leaves, *(n.name for n in self.spec.nodes)]

    # -- Jacobians -------------------------------------------------------------------------------
    def _terms(self, of: str, wrt: str) -> list[Term]:
        key = (of, wrt)
        if key in self._memo:
            return self._memo[key]
        if of == wrt:
            out: list[Term] = [()]
        elif of in self.spec.leaves:
            out = []
        else:
            node = self.spec.node(of)
            out = []
            if isinstance(node, LinearNode):
                for weight, u in node.terms:
                    out += _prepend(("mat", weight), self._terms(u, wrt))
            else:
                for arg in self.args_of(node):
                    sub = self._terms(arg, wrt)
                    if sub:
                        out += _prepend(("diag", self.partial(node, arg)), sub)
            out = _collect(out)
        self._memo[key] = out
        return out

    def _check_vector(self, name: str) -> None:
        if name not in self._vector_order():
            raise SpecError(
                f"cell {self.spec.name!r}: {name!r} is not a vector of the cell "
                f"(vectors: {', '.join(self._vector_order())})"
            )

    def jacobian(self, of: str, wrt: str) -> sp.MatrixExpr:
        """d of / d wrt as a matrix expression, e.g. `jacobian("c", "c_prev")` -> Diag(f)."""
        self._check_vector(of)
        self._check_vector(wrt)
        return self.to_matrix(self._terms(of, wrt), of, wrt)

    def jacobian_terms(self, of: str, wrt: str) -> list[Term]:
        """The Jacobian as a list of products of factors (("diag", expr) or ("mat", weight))."""
        self._check_vector(of)
        self._check_vector(wrt)
        return list(self._terms(of, wrt))

    def size_label(self, name: str) -> str:
        """The size label of a vector, a node or an intermediate (that of the node it is inside)."""
        for inter in self.intermediates:
            if inter.name == name:
                return self.spec.size(inter.node)
        return self.spec.size(name)

    def size(self, vector: str) -> sp.Symbol:
        return size_symbol(self.size_label(vector))

    def weight_matrix(self, weight: str) -> sp.MatrixSymbol:
        rows, cols = self.spec.param(weight).shape
        return sp.MatrixSymbol(weight, size_symbol(rows), size_symbol(cols))

    def to_matrix(self, terms: list[Term], of: str, wrt: str) -> sp.MatrixExpr:
        shape = (self.size(of), self.size(wrt))
        mats = []
        for term in terms:
            if not term:
                mats.append(sp.Identity(shape[0]))
                continue
            factors = []
            rows = shape[0]  # a diagonal factor has the size of the vector it scales
            for kind, v in term:
                if kind == "diag":
                    factors.append(Diag(v, rows))
                else:
                    factors.append(self.weight_matrix(v))  # type: ignore[arg-type]
                    rows = factors[-1].shape[1]
            mats.append(factors[0] if len(factors) == 1 else sp.MatMul(*factors))
        if not mats:
            return sp.ZeroMatrix(*shape)
        return mats[0] if len(mats) == 1 else sp.MatAdd(*mats)

    def step_jacobian(self) -> sp.BlockMatrix:
        """The Jacobian of the new states with respect to the previous ones, as a block matrix."""
        s = self.spec
        rows = [[self.jacobian(s.update_of[a], s.prev(b)) for b in s.states] for a in s.states]
        return sp.BlockMatrix(rows)

    # -- backward (VJP) ----------------------------------------------------------------------------
    @cached_property
    def incoming(self) -> tuple[str, ...]:
        """Vectors that receive gradient from outside the step: the new states and the output."""
        s = self.spec
        return tuple(dict.fromkeys([*(s.update_of[st] for st in s.states), s.output]))

    @cached_property
    def vjp(self) -> tuple[Adjoint, ...]:
        """The backward program: adjoints of every node (reverse order), then of the leaves."""
        order = [n.name for n in reversed(self.spec.nodes)] + list(self.spec.leaves)
        program = []
        for v in order:
            elementwise = sp.S.Zero
            linear = []
            for consumer in self.spec.consumers(v):
                if isinstance(consumer, LinearNode):
                    linear += [(w, consumer.name) for w, u in consumer.terms if u == v]
                else:
                    dv = sp.Symbol(naming.adjoint(consumer.name), real=True)
                    elementwise += dv * self.partial(consumer, v)
            program.append(Adjoint(v, v in self.incoming, elementwise, tuple(linear)))
        return tuple(program)

    def adjoint(self, vector: str) -> Adjoint:
        for a in self.vjp:
            if a.vector == vector:
                return a
        raise KeyError(vector)

    @cached_property
    def param_gradients(self) -> tuple[ParamGradient, ...]:
        out = []
        for p in self.spec.params:
            for node in self.spec.nodes:
                if isinstance(node, LinearNode):
                    for w, u in node.terms:
                        if w == p.name:
                            out.append(ParamGradient(p.name, "weight", node.name, u))
                    if p.name in node.biases:
                        out.append(ParamGradient(p.name, "bias", node.name))
            expr = sp.S.Zero
            for node in self.spec.nodes:
                if isinstance(node, ElementwiseNode) and p.name in self.params_of(node):
                    expr += sp.Symbol(naming.adjoint(node.name), real=True) * self.partial(node, p.name)
            if expr != 0:
                out.append(ParamGradient(p.name, "elementwise", expr=expr))
        return tuple(out)

    def bptt(self) -> dict[str, sp.MatrixExpr]:
        """delta s_{t-1} = sum over the step's outputs n of J(n_t, s_{t-1})^T din n_t, per state s.

        The outputs are the nodes that give the states their new values and the output y (`incoming`),
        each once. din n_t is the gradient arriving at n from outside the step (the loss at t and the
        later steps, summed over the states n updates); the paths inside the step, such as c_t -> h_t,
        are inside the Jacobians.
        """
        s = self.spec
        out = {}
        for st in s.states:
            prev = s.prev(st)
            terms = []
            for node in self.incoming:  # each node once, even when it gives several states their value
                J = self.jacobian(node, prev)
                if not isinstance(J, sp.ZeroMatrix):
                    terms.append(sp.MatMul(J.T, sp.MatrixSymbol(naming.incoming(node), self.size(node), 1)))
            if not terms:  # no new state reads this previous state: no gradient flows back to it
                out[prev] = sp.ZeroMatrix(self.size(prev), 1)
            else:
                out[prev] = sp.MatAdd(*terms) if len(terms) > 1 else terms[0]
        return out

    @cached_property
    def equation_numbers(self) -> dict[tuple[str, str], int]:
        """The numbering shared by the LaTeX documents and the generated code's comments.

        ("fwd", node) for the forward equations, ("adj", vector) for the backward program and
        ("grad", param) for the parameter gradients, numbered in that order from 1.
        """
        keys = [("fwd", n.name) for n in self.spec.nodes]
        keys += [("adj", a.vector) for a in self.vjp]
        keys += list(dict.fromkeys(("grad", g.param) for g in self.param_gradients))
        return {key: k for k, key in enumerate(keys, start=1)}

    # -- forward-mode (JVP) --------------------------------------------------------------------------
    @cached_property
    def jvp(self) -> tuple[Tangent, ...]:
        program = []
        for node in self.spec.nodes:
            if isinstance(node, LinearNode):
                program.append(Tangent(node.name, None))
                continue
            expr = sp.S.Zero
            for arg in [*self.args_of(node), *self.params_of(node)]:
                expr += self.partial(node, arg) * sp.Symbol(naming.tangent(arg), real=True)
            program.append(Tangent(node.name, expr))
        return tuple(program)


def derive(spec: CellSpec | str) -> Derivation:
    """Derive a cell given as a `CellSpec` or the name of a built-in cell."""
    if isinstance(spec, str):
        from .cells import cell

        spec = cell(spec)
    if not isinstance(spec, CellSpec):
        raise TypeError(f"derive() expects a CellSpec or a built-in cell name, got {type(spec).__name__}")
    return Derivation(spec)
