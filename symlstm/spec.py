"""Declaring a recurrent cell: a small, ordered graph of vector nodes of two kinds.

A cell has one input vector `x` (size I), named state vectors carried between steps (size H), parameters,
and ordered equations:

* **linear** nodes, `a = sum_j W_j u_j + sum_k b_k`: weight matrices times vectors plus bias vectors;
* **elementwise** nodes, `v = expr`: a scalar SymPy expression of per-coordinate symbols, applied to every
  coordinate (`c = f*c_prev + i*g`). Elementwise expressions may use parameter vectors (peepholes).

`Cell` is the builder; `Cell.build()` validates the graph and returns an immutable `CellSpec`. Every
name is checked to be a safe Python identifier before it can reach a template, and every error is a
`SpecError` that says what was wrong and what is expected.

Example (the vanilla RNN)::

    cell = Cell("rnn", title="Elman RNN")
    x, h_prev = cell.input("x"), cell.state("h")
    a = cell.linear("a", {"W_ih": x, "W_hh": h_prev}, biases=["b_ih", "b_hh"])
    h = cell.elementwise("h", tanh(a))
    cell.update(h=h)
    spec = cell.build()
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp

__all__ = [
    "Cell",
    "CellSpec",
    "ElementwiseNode",
    "FuseGroup",
    "LinearNode",
    "Param",
    "SpecError",
]

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Names the generated modules use for their own variables; a cell may not take them.
RESERVED = frozenset(
    {
        "np", "numpy", "params", "xs", "ys", "cache", "state", "state0", "dstate", "dstate0", "dparams",
        "dx", "dy", "y", "t", "T", "B", "I", "H", "dtype", "seed", "rng", "out", "buf", "self",
        "forward", "backward", "jvp", "init_params", "from_torch", "to_torch", "from_keras", "to_keras",
        "initialize", "sigmoid", "relu",
        "step", "tanh", "input_size", "hidden_size", "workspace", "claim", "inputs", "outputs",
        "check_finite", "tape", "jax", "jnp", "lax", "carry", "adjoints", "steps", "dy_t", "tape_t",
        "forward_step", "backward_step", "tangent_step", "step_adjoints", "layers", "init_layers",
        "forward_layers", "backward_layers", "from_torch_layers", "to_torch_layers", "past", "past_mask",
    }
)  # fmt: skip


# Prefixes of the generated code's derived names: adjoints d_h, incoming adjoints din_h, tangents tan_h,
# cached values cache_h, buffers buf_W_ih, coefficients coef_0, common subexpressions cse_0, gate runs
# gates_i_f, the adjoint buffer grad_rows, state sequences seq_h, the reference module's named constants
# const_0; and the suffix of a node's per-step view sequence, i_seq.
RESERVED_PREFIXES = (
    "d_", "din_", "tan_", "cache_", "buf_", "coef_", "cse_", "gates_", "grad_", "seq_", "const_",
)  # fmt: skip
RESERVED_SUFFIXES = ("_seq",)


# The sizes every cell has: its input's and the hidden size.
BASE_SIZES: tuple[tuple[str, str], ...] = (("I", "input_size"), ("H", "hidden_size"))
_SIZE_LABEL = re.compile(r"^[A-Z][A-Z0-9]*$")
# Keywords the generated functions take besides the sizes: a size keyword may not be one of them.
_TAKEN_KEYWORDS = frozenset({"seed", "dtype", "scheme", "forget_bias", "chrono", "num_layers", "bias",
                             "bidirectional", "batch_first", "device", "lengths", "workspace"})  # fmt: skip


class SpecError(ValueError):
    """A cell specification is malformed; the message names the cell, the item and what is expected."""


def check_identifier(name: object, what: str, cell: str = "?") -> str:
    """Return `name` if it is a safe identifier for generated code, else raise `SpecError`."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SpecError(
            f"cell {cell!r}: {what} name {name!r} is not a safe identifier "
            "(expected an ASCII letter followed by letters, digits or underscores)"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name):
        raise SpecError(f"cell {cell!r}: {what} name {name!r} is a Python keyword or builtin")
    if name in RESERVED or name.startswith(RESERVED_PREFIXES) or name.endswith(RESERVED_SUFFIXES):
        raise SpecError(
            f"cell {cell!r}: {what} name {name!r} is reserved by the generated code "
            f"(reserved: {', '.join(sorted(RESERVED))}, the prefixes {', '.join(RESERVED_PREFIXES)} "
            f"and the suffix {', '.join(RESERVED_SUFFIXES)})"
        )
    return name


@dataclass(frozen=True)
class Param:
    """A parameter: a matrix (rows, cols) or a vector (rows,), sizes named by their labels ('I' the
    input's, 'H' the hidden size, or a size the cell declares with `Cell.size`)."""

    name: str
    shape: tuple[str, ...]

    @property
    def is_matrix(self) -> bool:
        return len(self.shape) == 2


@dataclass(frozen=True)
class LinearNode:
    """`name = sum_j W_j @ u_j + sum_k b_k`; `terms` maps each weight to the vector it multiplies."""

    name: str
    terms: tuple[tuple[str, str], ...]  # (weight, input vector)
    biases: tuple[str, ...]


@dataclass(frozen=True)
class ElementwiseNode:
    """`name = expr`, a scalar expression of per-coordinate symbols applied to every coordinate."""

    name: str
    expr: sp.Expr


@dataclass(frozen=True)
class FuseGroup:
    """Parameters stored as one array: the members' blocks stacked along the first axis, in order."""

    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class CellSpec:
    """A validated cell. Build one with `Cell`; see the module docstring."""

    name: str
    title: str
    doc: str
    source: str
    input: str
    states: tuple[str, ...]  # state names; their previous values are `<name>_prev`
    params: tuple[Param, ...]
    nodes: tuple[LinearNode | ElementwiseNode, ...]
    updates: tuple[tuple[str, str], ...]  # (state, node giving its new value)
    output: str  # the node returned as y_t
    groups: tuple[FuseGroup, ...]
    torch: Mapping[str, object] = field(default_factory=dict)
    same_size: bool = False  # the cell needs input size == hidden size
    keras: Mapping[str, object] = field(default_factory=dict)  # Keras layer and weight layout (interop)
    gates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "keep"/"write" gate biases
    # Every size of the cell, (label, keyword) in order: ("I", "input_size"), ("H", "hidden_size"), then
    # those declared with Cell.size (("P", "proj_size")); and the label of each vector that is not H.
    sizes: tuple[tuple[str, str], ...] = BASE_SIZES
    vector_sizes: Mapping[str, str] = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------------
    def prev(self, state: str) -> str:
        return f"{state}_prev"

    @property
    def prev_names(self) -> tuple[str, ...]:
        return tuple(self.prev(s) for s in self.states)

    @property
    def leaves(self) -> tuple[str, ...]:
        """Vectors that enter a step from outside: the input and the previous states."""
        return (self.input, *self.prev_names)

    def node(self, name: str) -> LinearNode | ElementwiseNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def group_of(self, param: str) -> FuseGroup:
        for g in self.groups:
            if param in g.members:
                return g
        raise KeyError(param)

    def size(self, vector: str) -> str:
        """The label of a vector's size: 'I' for the input, 'H' unless the cell says otherwise."""
        if vector == self.input:
            return "I"
        return self.vector_sizes.get(vector, "H")

    @property
    def extra_sizes(self) -> tuple[tuple[str, str], ...]:
        """The sizes declared with `Cell.size`, (label, keyword) in order: () for most cells."""
        return self.sizes[len(BASE_SIZES) :]

    @property
    def state_sizes(self) -> tuple[str, ...]:
        """The size label of each state, in the order of `states`."""
        return tuple(self.size(self.prev(st)) for st in self.states)

    def symbol(self, name: str) -> sp.Symbol:
        return sp.Symbol(name, real=True)

    @property
    def update_of(self) -> dict[str, str]:
        return dict(self.updates)

    def consumers(self, vector: str) -> list[LinearNode | ElementwiseNode]:
        """Nodes that read `vector` (a leaf or node name) directly."""
        out = []
        sym = self.symbol(vector)
        for n in self.nodes:
            if isinstance(n, LinearNode):
                if any(u == vector for _, u in n.terms):
                    out.append(n)
            elif sym in n.expr.free_symbols:
                out.append(n)
        return out

    def elementwise_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.is_matrix and self._used_elementwise(p.name))

    def _used_elementwise(self, pname: str) -> bool:
        sym = self.symbol(pname)
        return any(isinstance(n, ElementwiseNode) and sym in n.expr.free_symbols for n in self.nodes)

    def param_count(self, input_size: int, hidden_size: int, **extra_sizes: int) -> int:
        """The number of parameters at these sizes (a declared size by its keyword: proj_size=...)."""
        dims = {"I": input_size, "H": hidden_size}
        for label, name in self.extra_sizes:
            if name not in extra_sizes:
                raise TypeError(f"cell {self.name!r}: param_count needs {name}=")
            dims[label] = extra_sizes[name]
        return sum(math.prod(dims[d] for d in p.shape) for p in self.params)


class Cell:
    """Builder for a `CellSpec`. Methods return the per-coordinate SymPy symbol of what they declare."""

    def __init__(
        self, name: str, *, title: str = "", doc: str = "", source: str = "", same_size: bool = False
    ):
        self.name = check_identifier(name, "cell", name if isinstance(name, str) else "?")
        self.title = title or name
        self.doc = doc
        self.source = source
        self.same_size = same_size
        self._input: str | None = None
        self._sizes: dict[str, str] = dict(BASE_SIZES)  # label -> keyword
        self._vector_sizes: dict[str, str] = {}  # vector -> label, where it is not "H"
        self._resolved: set[str] = set()  # parameter vectors whose size an elementwise node has fixed
        self._states: list[str] = []
        self._params: dict[str, Param] = {}
        self._nodes: list[LinearNode | ElementwiseNode] = []
        self._vectors: set[str] = set()  # every declared vector name (leaves and nodes)
        self._updates: dict[str, str] = {}
        self._output: str | None = None
        self._groups: list[FuseGroup] = []
        self.torch: dict[str, object] = {}
        self.keras: dict[str, object] = {}
        # Biases of the gate whose value 1 keeps the old state ("keep": an LSTM's forget gate) and of
        # the gate that writes new content ("write": the input gate), for the initializers.
        self.gates: dict[str, tuple[str, ...]] = {}

    # -- declarations ------------------------------------------------------------------------
    def _new_vector(self, name: str, what: str) -> sp.Symbol:
        check_identifier(name, what, self.name)
        if name in self._vectors or name in self._params:
            raise SpecError(f"cell {self.name!r}: {what} {name!r} is declared twice")
        self._vectors.add(name)
        return sp.Symbol(name, real=True)

    def input(self, name: str = "x") -> sp.Symbol:
        """Declare the input vector x_t (size I)."""
        if self._input is not None:
            raise SpecError(f"cell {self.name!r}: only one input vector is supported")
        sym = self._new_vector(name, "input")
        self._input = name
        return sym

    def size(self, label: str, keyword: str) -> str:
        """Declare a size besides I and H, e.g. `size("P", "proj_size")`: vectors of that size are
        declared with `state(..., size="P")` or `linear(..., size="P")`, and the generated functions
        take it as a keyword argument (`init_params(I, H, proj_size=...)`). Returns the label."""
        if not isinstance(label, str) or not _SIZE_LABEL.match(label):
            raise SpecError(
                f"cell {self.name!r}: size label {label!r} must be capital letters and digits, starting "
                "with a letter (e.g. 'P')"
            )
        check_identifier(label, "size label", self.name)
        check_identifier(keyword, "size keyword", self.name)
        if label in self._sizes or keyword in self._sizes.values():
            raise SpecError(f"cell {self.name!r}: size {label!r} ({keyword!r}) is declared twice")
        if keyword in _TAKEN_KEYWORDS:
            raise SpecError(
                f"cell {self.name!r}: size keyword {keyword!r} is an argument of the generated functions"
            )
        self._sizes[label] = keyword
        return label

    def _size_label(self, size: str, what: str) -> str:
        if size not in self._sizes:
            raise SpecError(
                f"cell {self.name!r}: {what} has size {size!r}, which is not declared (sizes: "
                f"{', '.join(self._sizes)}; declare another with cell.size('P', 'proj_size'))"
            )
        if size == "I":
            raise SpecError(f"cell {self.name!r}: {what} cannot have the input's size 'I'")
        return size

    def state(self, name: str, size: str = "H") -> sp.Symbol:
        """Declare a state carried between steps (of size `size`, 'H' by default); returns the symbol
        of its previous value."""
        check_identifier(name, "state", self.name)
        label = self._size_label(size, f"state {name!r}")
        sym = self._new_vector(f"{name}_prev", "previous state")
        self._states.append(name)
        if label != "H":
            self._vector_sizes[f"{name}_prev"] = label
        return sym

    def _vector_size(self, name: str) -> str:
        return "I" if name == self._input else self._vector_sizes.get(name, "H")

    def param(self, name: str) -> sp.Symbol:
        """Declare a parameter vector (size H) used inside elementwise expressions (a peephole)."""
        self._declare_param(name, ("H",))
        return sp.Symbol(name, real=True)

    def _declare_param(self, name: str, shape: tuple[str, ...]) -> None:
        check_identifier(name, "parameter", self.name)
        if name in self._vectors:
            raise SpecError(f"cell {self.name!r}: parameter {name!r} clashes with a vector name")
        old = self._params.get(name)
        unresolved = old is not None and not old.is_matrix and len(shape) == 1 and name not in self._resolved
        if old is not None and old.shape != shape and not unresolved:
            raise SpecError(
                f"cell {self.name!r}: parameter {name!r} used with shapes {old.shape} and {shape}"
            )
        self._params[name] = Param(name, shape)

    def linear(
        self, name: str, terms: Mapping[str, sp.Symbol], biases: Sequence[str] = (), size: str = "H"
    ) -> sp.Symbol:
        """Declare `name = sum W @ u + sum b` (of size `size`, 'H' by default); `terms` maps each weight
        name to the vector it multiplies."""
        label = self._size_label(size, f"linear node {name!r}")
        if not isinstance(terms, Mapping) or not terms:
            raise SpecError(
                f"cell {self.name!r}: linear node {name!r} needs terms as a non-empty mapping "
                "{weight name: vector symbol}"
            )
        parsed = []
        for weight, vec in terms.items():
            if not isinstance(vec, sp.Symbol) or vec.name not in self._vectors:
                raise SpecError(
                    f"cell {self.name!r}: linear node {name!r}: weight {weight!r} multiplies {vec!r}, "
                    "which is not a declared vector (expected the symbol returned by input(), "
                    "state() or an earlier node)"
                )
            self._declare_param(weight, (label, self._vector_size(vec.name)))
            parsed.append((weight, vec.name))
        for b in biases:
            self._declare_param(b, (label,))
            self._resolved.add(b)
        sym = self._new_vector(name, "node")
        self._nodes.append(LinearNode(name, tuple(parsed), tuple(biases)))
        if label != "H":
            self._vector_sizes[name] = label
        return sym

    def elementwise(self, name: str, expr: sp.Expr) -> sp.Symbol:
        """Declare `name = expr`, applied to each coordinate; `expr` uses symbols declared earlier."""
        try:
            expr = sp.sympify(expr, strict=True)
        except (sp.SympifyError, TypeError) as err:
            raise SpecError(
                f"cell {self.name!r}: elementwise node {name!r}: {expr!r} is not a SymPy expression"
            ) from err
        if not isinstance(expr, sp.Expr):
            raise SpecError(
                f"cell {self.name!r}: elementwise node {name!r}: expected a scalar SymPy expression, "
                f"got {type(expr).__name__}"
            )
        _check_elementwise(self.name, name, expr)
        for s in expr.free_symbols:
            if s.name not in self._vectors and s.name not in self._params:
                raise SpecError(
                    f"cell {self.name!r}: elementwise node {name!r} uses undefined symbol {s.name!r} "
                    f"(declared so far: {', '.join(sorted(self._vectors | set(self._params)))})"
                )
        label = self._elementwise_size(name, expr)
        sym = self._new_vector(name, "node")
        self._nodes.append(ElementwiseNode(name, expr))
        if label != "H":
            self._vector_sizes[name] = label
        return sym

    def _elementwise_size(self, name: str, expr: sp.Expr) -> str:
        """The size of an elementwise node: that of the vectors it reads, which must agree (the input
        counts as H: reading it elementwise needs a same-size cell); its parameter vectors take it."""
        found: dict[str, list[str]] = {}
        for s in sorted(expr.free_symbols, key=lambda s: s.name):
            if s.name in self._vectors:
                label = self._vector_size(s.name)
                label = "H" if label == "I" else label  # the input read elementwise needs I == H
                found.setdefault(label, []).append(s.name)
        if len(found) > 1:
            mixed = "; ".join(f"{', '.join(v)} of size {k}" for k, v in found.items())
            raise SpecError(
                f"cell {self.name!r}: elementwise node {name!r} mixes vectors of different sizes ({mixed}); "
                "an elementwise node reads vectors of one size (map one to the other's size with a "
                "linear node)"
            )
        label = next(iter(found), "H")
        for s in expr.free_symbols:
            if s.name in self._params and not self._params[s.name].is_matrix:
                param = self._params[s.name]
                if s.name in self._resolved and param.shape != (label,):
                    raise SpecError(
                        f"cell {self.name!r}: parameter vector {s.name!r} is used with sizes "
                        f"{param.shape[0]} and {label} (in elementwise node {name!r})"
                    )
                self._params[s.name] = Param(s.name, (label,))
                self._resolved.add(s.name)
        return label

    def update(self, **new_values: sp.Symbol) -> None:
        """Say which node gives each state's new value, e.g. `update(h=h, c=c)`."""
        for state, sym in new_values.items():
            if state not in self._states:
                raise SpecError(
                    f"cell {self.name!r}: update of unknown state {state!r} (states: {self._states})"
                )
            if not isinstance(sym, sp.Symbol) or sym.name not in {n.name for n in self._nodes}:
                raise SpecError(
                    f"cell {self.name!r}: new value of state {state!r} must be a node symbol, got {sym!r}"
                )
            self._updates[state] = sym.name

    def output(self, sym: sp.Symbol) -> None:
        """Say which node is the cell's output y_t (default: the first state's new value)."""
        self._output = sym.name if isinstance(sym, sp.Symbol) else sym

    def fuse(self, name: str, members: Iterable[str]) -> None:
        """Store parameters `members` as one array `name` (blocks stacked in this order)."""
        check_identifier(name, "fused parameter", self.name)
        self._groups.append(FuseGroup(name, tuple(members)))

    # -- validation --------------------------------------------------------------------------
    def build(self) -> CellSpec:
        """Validate and freeze the cell; raises `SpecError` naming the first problem found."""
        n = self.name
        if self._input is None:
            raise SpecError(f"cell {n!r}: no input declared (call cell.input('x'))")
        if not self._states:
            raise SpecError(f"cell {n!r}: no state declared (call cell.state('h'))")
        missing = [s for s in self._states if s not in self._updates]
        if missing:
            raise SpecError(f"cell {n!r}: states {missing} have no new value (call cell.update())")
        output = self._output or self._updates[self._states[0]]
        if output not in {nd.name for nd in self._nodes}:
            raise SpecError(
                f"cell {n!r}: output {output!r} is not a node (expected the symbol returned by "
                "cell.linear() or cell.elementwise())"
            )
        groups = self._complete_groups()
        spec = CellSpec(
            name=n,
            title=self.title,
            doc=self.doc,
            source=self.source,
            input=self._input,
            states=tuple(self._states),
            params=tuple(self._params.values()),
            nodes=tuple(self._nodes),
            updates=tuple((s, self._updates[s]) for s in self._states),
            output=output,
            groups=groups,
            torch=dict(self.torch),
            same_size=self.same_size,
            keras=dict(self.keras),
            gates={role: tuple(members) for role, members in self.gates.items()},
            sizes=tuple(self._sizes.items()),
            vector_sizes=dict(self._vector_sizes),
        )
        for role, members in spec.gates.items():
            if role not in ("keep", "write"):
                raise SpecError(f"cell {n!r}: gate role {role!r} is not one of 'keep', 'write'")
            for m in members:
                if m not in self._params or self._params[m].is_matrix:
                    raise SpecError(f"cell {n!r}: {role} gate bias {m!r} is not a bias vector of the cell")
        for nd in spec.nodes:
            if isinstance(nd, ElementwiseNode):
                for s in nd.expr.free_symbols:
                    if s.name in self._params and spec.param(s.name).is_matrix:
                        raise SpecError(
                            f"cell {n!r}: weight matrix {s.name!r} used inside elementwise node "
                            f"{nd.name!r}; matrices may only appear in linear nodes"
                        )
        _check_structure(spec)
        return spec

    def _complete_groups(self) -> tuple[FuseGroup, ...]:
        n = self.name
        seen: dict[str, str] = {}
        for g in self._groups:
            if not g.members:
                raise SpecError(f"cell {n!r}: fused parameter {g.name!r} has no members")
            if g.name in self._vectors:
                raise SpecError(f"cell {n!r}: fused parameter {g.name!r} clashes with a vector name")
            for m in g.members:
                if m not in self._params:
                    raise SpecError(f"cell {n!r}: fused parameter {g.name!r}: unknown member {m!r}")
                if m in seen:
                    raise SpecError(
                        f"cell {n!r}: parameter {m!r} is in fused groups {seen[m]!r} and {g.name!r}"
                    )
                seen[m] = g.name
            shapes = {self._params[m].shape for m in g.members}
            if len(shapes) != 1:
                raise SpecError(
                    f"cell {n!r}: fused parameter {g.name!r} mixes shapes {sorted(shapes)}; "
                    "members must have one shape"
                )
            inputs = {u for nd in self._nodes if isinstance(nd, LinearNode) for w, u in nd.terms
                      if w in g.members}  # fmt: skip
            if len(inputs) > 1:
                raise SpecError(
                    f"cell {n!r}: fused weight {g.name!r} multiplies different vectors "
                    f"{sorted(inputs)}; a fused weight needs one input for one GEMM"
                )
        uses = [w for nd in self._nodes if isinstance(nd, LinearNode) for w, _ in nd.terms]
        dup = {w for w in uses if uses.count(w) > 1}
        if dup:
            raise SpecError(f"cell {n!r}: weights {sorted(dup)} are used by more than one term")
        groups = list(self._groups)
        for p in self._params:
            if p not in seen:
                groups.append(FuseGroup(p, (p,)))
        names = [g.name for g in groups]
        clash = {g for g in names if names.count(g) > 1}
        if clash:
            raise SpecError(f"cell {n!r}: stored parameter names {sorted(clash)} are not unique")
        return tuple(groups)


def _check_structure(spec: CellSpec) -> None:
    """Refuse graphs the code generators do not support, each with what to write instead."""
    n = spec.name
    if not spec.params:
        raise SpecError(
            f"cell {n!r}: the cell has no parameters (no weight, bias or parameter vector); the generated "
            "code reads the sizes and the dtype from them, and there would be nothing to train"
        )
    kinds = {nd.name: nd for nd in spec.nodes}
    vectors = {*spec.leaves, *kinds}
    used = {
        name
        for nd in spec.nodes
        if isinstance(nd, LinearNode)
        for name in (*(w for w, _ in nd.terms), *nd.biases)
    }
    used |= {s.name for nd in spec.nodes if isinstance(nd, ElementwiseNode) for s in nd.expr.free_symbols}
    unused = [p.name for p in spec.params if p.name not in used]
    if unused:
        raise SpecError(
            f"cell {n!r}: parameters {unused} are declared (cell.param) but no node uses them; use them "
            "in an elementwise expression or do not declare them"
        )
    if not spec.consumers(spec.input):
        raise SpecError(
            f"cell {n!r}: no node reads the input {spec.input!r}; a recurrent cell maps its input "
            "sequence (read it in a linear node, e.g. cell.linear('a', {'W': x, ...}))"
        )
    for nd in spec.nodes:
        if isinstance(nd, LinearNode):
            for _, u in nd.terms:
                if isinstance(kinds.get(u), LinearNode):
                    raise SpecError(
                        f"cell {n!r}: linear node {nd.name!r} reads linear node {u!r}; merge them into one "
                        f"linear node, or put an elementwise node between them (cell.elementwise('z', {u}))"
                    )
            continue
        read = {s.name for s in nd.expr.free_symbols} & vectors
        if not read:
            raise SpecError(
                f"cell {n!r}: elementwise node {nd.name!r} reads no vector (only parameters and constants); "
                "an elementwise node must read the input, a state or another node (fold a constant value "
                "into the node that uses it, or make it a bias)"
            )
        if spec.input in read and not spec.same_size:
            raise SpecError(
                f"cell {n!r}: elementwise node {nd.name!r} reads the input {spec.input!r} coordinate by "
                "coordinate, which needs input size == hidden size: declare the cell with "
                f"Cell({n!r}, same_size=True)"
            )
    _check_sizes(spec)
    for what, node in [*((f"state {st!r}", node) for st, node in spec.updates), ("the output", spec.output)]:
        if isinstance(kinds[node], LinearNode):
            raise SpecError(
                f"cell {n!r}: {what} is linear node {node!r}; a state's new value and the output must be "
                f"elementwise nodes (add one: cell.elementwise('{node}_out', {node}))"
            )


# Whether the code generators take cells with sizes besides I and H (the symbolic layer does).
EXTRA_SIZES_GENERATED = True


def _check_sizes(spec: CellSpec) -> None:
    """A state's new value has the state's size; a declared size is read off some parameter's shape
    (the generated code takes the sizes from the parameters) and its label names nothing else."""
    n = spec.name
    if spec.extra_sizes and not EXTRA_SIZES_GENERATED:
        raise SpecError(f"cell {n!r}: sizes besides I and H (cell.size) are not generated yet")
    for st, node in spec.updates:
        if spec.size(node) != spec.size(spec.prev(st)):
            raise SpecError(
                f"cell {n!r}: state {st!r} has size {spec.size(spec.prev(st))} but its new value {node!r} "
                f"has size {spec.size(node)}"
            )
    names = {*spec.leaves, *(nd.name for nd in spec.nodes), *(p.name for p in spec.params)}
    for label, name in spec.extra_sizes:
        if label in names or name in names:
            raise SpecError(f"cell {n!r}: size {label!r} ({name!r}) has the name of a vector or parameter")
    used = {spec.size(v) for v in [*spec.prev_names, *(nd.name for nd in spec.nodes)]}
    unused = [label for label, _ in spec.extra_sizes if label not in used]
    if unused:
        raise SpecError(
            f"cell {n!r}: sizes {unused} are declared (cell.size) but no vector has them; give a state "
            "or a linear node that size, or do not declare it"
        )
    if spec.extra_sizes and "H" not in used:
        raise SpecError(
            f"cell {n!r}: no vector has the hidden size H (every state and node has a declared size); "
            "give one of them the size H (the default of cell.state and cell.linear)"
        )
    for label, name in spec.sizes[1:]:
        if label in used and not any(label in p.shape for p in spec.params):
            raise SpecError(
                f"cell {n!r}: no parameter has size {label!r} ({name}) in its shape; the generated code "
                "reads every size off the parameters' shapes (give a vector of that size a weight or bias)"
            )


def _check_elementwise(cell: str, name: str, expr: sp.Expr) -> None:
    """Reject constructs that are not per-coordinate scalar arithmetic."""
    from .activations import ACTIVATIONS

    non_smooth = (sp.Max, sp.Min, sp.sign, sp.floor, sp.ceiling, sp.Heaviside, sp.Piecewise, sp.Abs, sp.Mod,
                  sp.frac, sp.re, sp.im, sp.arg)  # fmt: skip
    for node in sp.preorder_traversal(expr):
        if isinstance(node, non_smooth):
            raise SpecError(
                f"cell {cell!r}: elementwise node {name!r} uses {type(node).__name__}, which is not "
                "differentiable everywhere; use the activation relu for max(a, 0)"
            )
        if isinstance(node, (sp.MatrixBase, sp.MatrixExpr)):
            raise SpecError(
                f"cell {cell!r}: elementwise node {name!r} contains a matrix ({node}); cross-coordinate "
                "operations are not elementwise. Supported: linear nodes (W @ u + b) and scalar "
                "per-coordinate expressions"
            )
        if isinstance(node, (sp.Sum, sp.Product, sp.Integral, sp.Derivative, sp.Indexed)):
            raise SpecError(
                f"cell {cell!r}: elementwise node {name!r} uses {type(node).__name__}, which is not "
                "supported. Supported: +, -, *, /, powers, known activations "
                f"({', '.join(ACTIVATIONS)}) and differentiable SymPy functions of one coordinate"
            )
        infinite = node in (sp.oo, -sp.oo, sp.zoo, sp.nan)
        if infinite or (node.is_number and node.is_real is False):  # I, 1 + 2 I, log(-2), ...
            raise SpecError(
                f"cell {cell!r}: elementwise node {name!r} uses the constant {node}; a cell computes with "
                "finite real numbers only"
            )
        if isinstance(node, sp.core.function.AppliedUndef):
            raise SpecError(
                f"cell {cell!r}: elementwise node {name!r} uses undefined function {node.func}; "
                "give it as a SymPy expression or a Function subclass with fdiff"
            )
    _check_printable(cell, name, expr)


def _check_printable(cell: str, name: str, expr: sp.Expr) -> None:
    """Reject functions outside the table every backend computes (`activations.ELEMENTWISE_FUNCTIONS`):
    erf, gamma, Bessel functions, ... have no numpy ufunc, and the generated code imports numpy only."""
    from .activations import ELEMENTWISE_FUNCTIONS

    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Function) and type(node) not in ELEMENTWISE_FUNCTIONS:
            supported = ", ".join(sorted(f.__name__ for f in ELEMENTWISE_FUNCTIONS))
            raise SpecError(
                f"cell {cell!r}: elementwise node {name!r}: {sp.sstr(node)} cannot be computed with "
                "numpy alone (the generated code imports numpy only). Supported: arithmetic, powers and "
                f"{supported}"
            )
